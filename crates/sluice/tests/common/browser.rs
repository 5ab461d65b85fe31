//! What the browser tests share: the system's Chromium and the npm packages pinned in
//! tests/web (playwright-core drives Chromium; hls.js, mpegts.js are served to pages).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/web");

/// The system's Chromium; panics (never skips) when there is none.
pub fn find_chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|p| !p.is_empty());
        if let Some(p) = found {
            return PathBuf::from(p);
        }
    }
    panic!("chromium not found: install it (apt-get install chromium; scripts/test.sh does) to run the browser tests");
}

/// node and npm present, and `needed` (paths under tests/web/node_modules) installed:
/// `npm ci` from the lock file when one is missing.
pub fn ensure_node_modules(needed: &[&str]) {
    for tool in ["node", "npm"] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "{tool} not found: install it (apt-get install nodejs npm)"
        );
    }
    let modules = Path::new(WEB_DIR).join("node_modules");
    if needed.iter().all(|p| modules.join(p).exists()) {
        return;
    }
    let st = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(WEB_DIR)
        .stdin(Stdio::null())
        .status()
        .expect("run npm ci");
    assert!(st.success(), "npm ci --prefix tests/web failed");
}

/// Held by a browser test while it runs: one such test at a time on the machine. Each runs
/// Chromium decoding video (and a server and an ffmpeg publisher); two at once on a 2-core
/// machine starve each other, and the players stall or fall behind live for reasons that are
/// not the server's. `cargo test` runs a file's tests on parallel threads and cargo-nextest
/// runs every test in its own process, so the lock is a file lock (flock), which both
/// respect; the kernel releases it when the test ends, however it ends.
pub struct BrowserSlot {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Waits for the machine's browser-test slot (see [`BrowserSlot`]).
pub fn browser_slot() -> BrowserSlot {
    let path = std::env::temp_dir().join("sluice-browser-tests.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("lock {}: {e}", path.display()));
    BrowserSlot { _lock: lock }
}

/// A `node` command running `script` (a driver in tests/web) from tests/web, stdin closed;
/// the caller adds the driver's arguments and runs it with [`driver_json`].
pub fn node_driver(script: &str) -> Command {
    let web = Path::new(WEB_DIR);
    let mut cmd = Command::new("node");
    cmd.arg(web.join(script))
        .current_dir(web)
        .stdin(Stdio::null());
    cmd
}

/// Runs a browser driver and returns the JSON object on the last line of its output (every
/// driver in tests/web prints its result so); a driver that fails or prints no JSON fails
/// the test with its output.
pub fn driver_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser driver failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "driver output {line:?}: {e}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
