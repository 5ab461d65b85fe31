//! SRS's RTMP bandwidth test end to end: the real sluice binary with bandcheck vhosts and
//! the real `sluice-bench bandcheck` command over sockets. The rates are checked loosely
//! (the limit is an upper bound the server enforces; below it only that data flowed): the
//! measured figures are in bench/results, not asserted here.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const KEY: &str = "35c9b402c12a7246868752e2878f7e0e";

/// The server binary lives next to the test's deps directory (target/<profile>/sluice);
/// cargo does not build other packages' binaries for this crate's tests.
fn sluice_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary has no target dir");
    let bin = profile_dir.join("sluice");
    assert!(
        bin.exists(),
        "{} is missing: build the server first (cargo build -p sluice, or build the whole workspace)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- sluice log -----\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// A server with two bandcheck vhosts (limits 2,000 and 10,000 kbps, 30 s interval).
fn server(tag: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("sluice-bandcheck-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let conf = dir.join("sluice.conf");
    let log = dir.join("sluice.log");
    std::fs::write(
        &conf,
        format!(
            "listen 127.0.0.1:{port};\ndaemon off;\npid {pid};\n\
             srs_log_tank file;\nsrs_log_file {log};\n\
             vhost __defaultVhost__ {{ }}\n\
             vhost slow.bandcheck {{ bandcheck {{ enabled on; key \"{KEY}\"; interval 30; limit_kbps 2000; }} }}\n\
             vhost fast.bandcheck {{ bandcheck {{ enabled on; key {KEY}; interval 30; limit_kbps 10000; }} }}\n",
            pid = dir.join("sluice.pid").display(),
            log = log.display(),
        ),
    )
    .unwrap();
    let child = Command::new(sluice_binary())
        .arg("-c")
        .arg(&conf)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sluice");
    let server = Server { child, port, log };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sluice did not listen on {port}");
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(args)
        .output()
        .expect("run sluice-bench")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "sluice-bench bandcheck failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

fn url(s: &Server, vhost: &str, key: &str) -> String {
    format!("rtmp://127.0.0.1:{}/app?key={key}&vhost={vhost}", s.port)
}

/// Both directions of the test respect the vhost's limit (with the 20 % the issue
/// allows for the first packet's burst), and really moved data.
fn check_rates(v: &serde_json::Value, limit: u64) {
    assert_eq!(v["limit_kbps"].as_u64(), Some(limit), "{v}");
    for what in ["play_kbps", "publish_kbps"] {
        let kbps = v[what].as_u64().unwrap_or(0);
        assert!(
            kbps <= limit * 12 / 10,
            "{what} {kbps} over the {limit} kbps limit: {v}"
        );
        assert!(
            kbps >= limit / 4,
            "{what} {kbps}: (almost) no data moved at a {limit} kbps limit: {v}"
        );
    }
    assert!(v["play_bytes"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(v["publish_bytes"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(v["rtt_ms"].as_f64().is_some_and(|r| r >= 0.0), "{v}");
}

#[test]
fn bandcheck_runs_at_the_limits_and_once_per_interval() {
    let s = server("limits");
    let slow = json(&bench(&[
        "bandcheck",
        "--json",
        &url(&s, "slow.bandcheck", KEY),
    ]));
    eprintln!("2000 kbps limit: {slow}");
    check_rates(&slow, 2000);
    let fast = json(&bench(&[
        "bandcheck",
        "--json",
        &url(&s, "fast.bandcheck", KEY),
    ]));
    eprintln!("10000 kbps limit: {fast}");
    check_rates(&fast, 10_000);

    // A second check from the same address within the interval is refused.
    let again = bench(&["bandcheck", &url(&s, "slow.bandcheck", KEY)]);
    assert!(!again.status.success(), "second check within 30 s ran");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("interval"), "{err}");

    let log = std::fs::read_to_string(&s.log).unwrap();
    assert_eq!(log.matches("bandcheck ok").count(), 2, "{log}");
}

#[test]
fn a_wrong_or_missing_key_is_refused() {
    let s = server("key");
    for u in [
        url(&s, "slow.bandcheck", "wrong"),
        format!("rtmp://127.0.0.1:{}/app?vhost=slow.bandcheck", s.port),
    ] {
        let out = bench(&["bandcheck", &u]);
        assert!(!out.status.success(), "{u} ran the check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Connect.Rejected") && err.contains("key"),
            "{u}: {err}"
        );
    }
    // A refused key does not use up the address's interval.
    let ok = json(&bench(&[
        "bandcheck",
        "--json",
        &url(&s, "slow.bandcheck", KEY),
    ]));
    check_rates(&ok, 2000);
}
