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
