//! A short real run: the sluice binary, one publisher and 5 RTMP players for 5 seconds;
//! every player must receive every frame sent from the one it started with (its GOP cache
//! start) to the end.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sluice_bench::player::Protocol;
use sluice_bench::run::{fanout, FanoutConfig, PlayConfig};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/avc-aac-640x360-10s.flv"
);

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

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sluice did not listen on {port}");
}

#[test]
fn five_players_receive_every_frame() {
    let dir = std::env::temp_dir().join(format!("sluice-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let conf = dir.join("sluice.conf");
    std::fs::write(
        &conf,
        format!(
            "listen 127.0.0.1:{port};\nmax_connections 100;\ndaemon off;\npid {pid};\n\
             srs_log_tank file;\nsrs_log_file {log};\n\
             vhost __defaultVhost__ {{ play {{ mw_latency 100; }} }}\n",
            pid = dir.join("sluice.pid").display(),
            log = dir.join("sluice.log").display(),
        ),
    )
    .unwrap();
    let server = Server(
        Command::new(sluice_binary())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sluice"),
    );
    wait_for_port(port);
    let url = format!("rtmp://127.0.0.1:{port}/live/smoke");
    let cfg = FanoutConfig {
        play: PlayConfig {
            url: url.clone(),
            protocol: Protocol::Rtmp,
            clients: 5,
            ramp: 2.0,
            duration: Duration::from_secs(5),
            grace: Duration::from_secs(2),
            server_pid: Some(server.0.id()),
            threads: 1,
            read_tick: Duration::from_millis(1),
            progress: false,
            tls: None,
        },
        publish_url: url,
        file: PathBuf::from(FIXTURE),
    };
    let r = fanout(&cfg).expect("fanout run");
    drop(server);
    eprintln!("{}", r.to_text());
    assert_eq!((r.connected, r.failed), (5, 0), "{:?}", r.errors);
    assert!(r.frames_sent > 100, "{} frames sent", r.frames_sent);
    // Players joined at different times (ramp 2/s), so each expects a different count.
    assert!(r.frames_expected > 0);
    assert_eq!(r.frames_matched, r.frames_expected, "frames lost");
    assert_eq!(
        r.frames_received, r.frames_matched,
        "frames not in the publisher's log"
    );
    assert_eq!((r.frames_skipped, r.frames_unmatched), (0, 0));
    assert_eq!(r.players_complete, 5);
    assert_eq!(r.ts_regressions, 0);
    assert!(r.latency.count() > 0);
    assert!(r.resources.server_cpu_pct.is_some());
    let _ = std::fs::remove_dir_all(&dir);
}
