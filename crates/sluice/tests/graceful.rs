//! SIGQUIT with every service busy (issue 14): HLS, DVR, forward, an edge pull and an
//! ffmpeg transcode all work on live streams when the server is asked to stop
//! gracefully; each must finish its work before the process exits 0.
//!
//! What "finished" means here, and why each check can fail:
//! - HLS: the playlist ends with `#EXT-X-ENDLIST` and lists only segments that exist;
//!   the `on_hls` hook of the last segment completed. A writer cut short leaves the
//!   playlist open or the last hook unsent.
//! - DVR: exactly one complete file for the stream (no `.tmp` left), which ffprobe reads
//!   with a duration close to what was published; its `on_dvr` hook completed.
//! - The hook server answers `on_dvr` and `on_hls` only after a delay and counts a call
//!   only if sluice is still waiting for the answer then: a process that exits without
//!   waiting for its hook tasks loses them.
//! - forward and edge: their upstream connections were closed by the service (log lines).
//! - ffmpeg: the transcoder process is gone once the server has exited.
//!
//! Needs ffmpeg and ffprobe; panics (never skips) without them.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use media::hls::parse_media_playlist;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The server's own graceful deadline (`server::GRACEFUL_TIMEOUT`).
const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the hook server holds `/slow` calls before answering.
const SLOW_HOOK: Duration = Duration::from_millis(1500);

// ------------------------------------------------------------------------------ hook server

/// Records hook calls that completed: for `/slow...` paths the answer comes after
/// [`SLOW_HOOK`], and the call counts only if the caller still waits for it.
struct HookServer {
    port: u16,
    done: Arc<Mutex<Vec<(String, Value)>>>,
    stop: Arc<AtomicBool>,
}

impl HookServer {
    fn start() -> HookServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind hook server");
        let port = listener.local_addr().expect("addr").port();
        let done = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (done.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let d = d.clone();
                thread::spawn(move || serve_hook(conn, &d));
            }
        });
        HookServer { port, done, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn calls(&self, action: &str) -> Vec<Value> {
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, b)| b["action"] == action)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// Whether the peer still has the connection open (it waits for our answer).
fn peer_waits(conn: &TcpStream) -> bool {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(20)));
    let mut b = [0u8; 1];
    match conn.peek(&mut b) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => is_timeout(&e),
    }
}

fn serve_hook(mut conn: TcpStream, done: &Mutex<Vec<(String, Value)>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let Some((path, body)) = read_request(&mut conn) else {
        return;
    };
    if path.starts_with("/slow") {
        thread::sleep(SLOW_HOOK);
        if !peer_waits(&conn) {
            return;
        }
    }
    let resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\n0";
    if conn.write_all(resp.as_bytes()).is_ok() {
        done.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((path, body));
    }
}

// ------------------------------------------------------------------------------ helpers

/// A plain HTTP/1.0 GET of the API; the JSON body.
fn api_get(port: u16, path: &str) -> Value {
    let get = || -> Option<Value> {
        let mut s = TcpStream::connect(addr(port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        serde_json::from_str(out.split_once("\r\n\r\n")?.1).ok()
    };
    get().unwrap_or(Value::Null)
}

/// Pids of live (non-zombie) processes with an argument containing `needle`.
fn pids_with_arg(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, s)| s.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmdline
            .split(|b| *b == 0)
            .any(|a| String::from_utf8_lossy(a).contains(needle))
        {
            out.push(pid);
        }
    }
    out
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// ffprobe's idea of a file's duration, in seconds.
fn probed_duration(path: &Path) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=noprint_wrappers=1:nokey=1",
        ])
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The server under test, run as a child of its own so the test sees its exit status.
struct Sluice {
    proc: Proc,
    port: u16,
}

impl Sluice {
    fn start(dir: &Path, body: &str) -> Sluice {
        let mut last = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("origin-{attempt}.conf"));
            std::fs::write(&conf, format!("listen 127.0.0.1:{port};\n{body}"))
                .expect("write config");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
            cmd.arg("-c").arg(&conf).current_dir(dir);
            let mut proc = Proc::spawn("sluice", cmd, dir.join(format!("origin-{attempt}.log")));
            let up = wait_for(Duration::from_secs(10), || {
                if !proc.is_running() {
                    return Some(false);
                }
                TcpStream::connect_timeout(&addr(port), Duration::from_millis(200))
                    .ok()
                    .map(|_| true)
            });
            if up == Some(true) {
                return Sluice { proc, port };
            }
            proc.kill();
            last = proc.output();
        }
        panic!("sluice did not start:\n{last}");
    }

    fn url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.port)
    }
}

// ------------------------------------------------------------------------------ the test

#[test]
fn sigquit_lets_every_service_finish_its_work() {
    require_ffmpeg();
    let hooks = HookServer::start();
    // B: the forward's destination and the edge's origin.
    let upstream = Server::start("graceful-upstream");
    let _upstream_publisher = common::recording::looped_publisher_in(
        &upstream.dir,
        &upstream.url("live?vhost=v1.test/e"),
        "upstream",
    );

    let root = unique_dir("graceful");
    let api_port = free_port();
    // A unique stream name, so that the transcoder's command line is ours alone.
    let stream = format!("g{}", std::process::id());
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
ff_log_dir {root}/fflogs;
http_api {{ enabled on; listen 127.0.0.1:{api_port}; }}
vhost __defaultVhost__ {{
    gop_cache on;
    hls {{ enabled on; hls_fragment 1; hls_window 60; hls_path {root}/hls; }}
    dvr {{ enabled on; dvr_plan session; dvr_path {root}/dvr/[app]/[stream].[timestamp].flv; }}
    forward {{ enabled on; destination 127.0.0.1:{up}; }}
    transcode live {{ enabled on;
        engine copy {{ enabled on; vcodec copy; acodec copy;
            output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine]; }} }}
    http_hooks {{ enabled on; timeout_ms 10000;
        on_unpublish {unpublish}; on_dvr {dvr}; on_hls {hls}; }}
}}
vhost v1.test {{ cluster {{ mode remote; origin 127.0.0.1:{up}; }} }}
",
        root = root.display(),
        up = upstream.port,
        unpublish = hooks.url("/unpublish"),
        dvr = hooks.url("/slow/dvr"),
        hls = hooks.url("/slow/hls"),
    );
    let mut s = Sluice::start(&root, &body);
    let log = |s: &Sluice| s.proc.output();

    let mut publisher =
        common::recording::looped_publisher_in(&root, &s.url(&format!("live/{stream}")), "a");
    // A player of the edge vhost makes the edge service pull from B.
    let mut edge_player = Proc::spawn(
        "ffmpeg edge player",
        ffmpeg(&[
            "-i",
            &s.url("live?vhost=v1.test/e"),
            "-c",
            "copy",
            "-f",
            "flv",
            "-y",
            root.join("edge-player.flv").to_str().expect("utf-8 path"),
        ]),
        root.join("edge-player.log"),
    );
    let transcoder = format!("{stream}_copy");

    // Every service is busy before the stop.
    let busy = wait_for(Duration::from_secs(30), || {
        let fw = api_get(api_port, "/api/v1/forwards");
        let edge = api_get(api_port, "/api/v1/edges");
        let forwarding = fw["forward"]["forwards"]
            .as_array()
            .is_some_and(|l| l.iter().any(|f| f["connected"] == true));
        let pulling = edge["edge"]["edges"]
            .as_array()
            .is_some_and(|l| l.iter().any(|e| e["state"] == "pulling"));
        let transcoding = !pids_with_arg(&transcoder).is_empty();
        let segments = !hooks.calls("on_hls").is_empty();
        (forwarding && pulling && transcoding && segments).then_some(())
    });
    assert!(
        busy.is_some(),
        "services not all busy: forwards {} edges {} transcoder pids {:?} on_hls calls {}\n{}",
        api_get(api_port, "/api/v1/forwards"),
        api_get(api_port, "/api/v1/edges"),
        pids_with_arg(&transcoder),
        hooks.calls("on_hls").len(),
        tail(&log(&s), 40)
    );
    // Some seconds of media in the files.
    thread::sleep(Duration::from_secs(5));
    assert!(publisher.is_running(), "{}", publisher.output());
    assert!(edge_player.is_running(), "{}", edge_player.output());

    let quit_at = Instant::now();
    kill(Pid::from_raw(s.proc.pid() as i32), Signal::SIGQUIT).expect("SIGQUIT");
    let status = s
        .proc
        .wait_timeout(GRACEFUL_TIMEOUT + Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "sluice still running after SIGQUIT:\n{}",
                tail(&log(&s), 60)
            )
        });
    let took = quit_at.elapsed();
    let text = log(&s);
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        tail(&text, 60)
    );
    assert!(
        took < GRACEFUL_TIMEOUT,
        "graceful stop took {took:?}:\n{}",
        tail(&text, 60)
    );
    // Each service said it finished, and none was cut short.
    for needle in [
        "graceful shutdown: all clients closed",
        "hls: stopped",
        "dvr: stopped",
        "forward: stopped",
        "edge: stopped",
        "ffmpeg: stopped",
        "every service finished its work",
        "edge v1.test/live/e: server stopping, pull stopped",
    ] {
        assert!(
            text.contains(needle),
            "no {needle:?} in the log:\n{}",
            tail(&text, 60)
        );
    }
    assert!(!text.contains("did not finish"), "{}", tail(&text, 60));
    // The forward ended with the publish it carried, its connection closed by us.
    assert!(
        text.lines()
            .any(|l| l.contains("forward __defaultVhost__/live/")
                && (l.contains("local stream ended") || l.contains("connection closed"))),
        "forward did not end cleanly:\n{}",
        tail(&text, 60)
    );

    // ffmpeg: the transcoder is gone with the server.
    assert!(
        wait_for(Duration::from_secs(2), || pids_with_arg(&transcoder)
            .is_empty()
            .then_some(()))
        .is_some(),
        "transcoder still running: {:?}",
        pids_with_arg(&transcoder)
    );

    let files = files_under(&root);
    let tmp: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");

    // DVR: one complete session file of the stream, with the seconds published.
    let dvr: Vec<&PathBuf> = files
        .iter()
        .filter(|p| {
            p.starts_with(root.join("dvr/live"))
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{stream}.")))
        })
        .collect();
    assert_eq!(dvr.len(), 1, "DVR files: {files:?}");
    let published = took + Duration::from_secs(5);
    let duration = probed_duration(dvr[0]).unwrap_or(0.0);
    assert!(
        duration >= 4.0 && duration <= published.as_secs_f64() + 60.0,
        "DVR {} lasts {duration} s",
        dvr[0].display()
    );
    let rec = flv_stats(dvr[0]);
    assert_eq!(rec.first_video_frame_key, Some(true), "DVR: {rec:#?}");
    assert_eq!(rec.video_ts_regressions, 0, "DVR: {rec:#?}");
    let dvr_file = dvr[0].to_string_lossy().to_string();
    assert!(
        hooks
            .calls("on_dvr")
            .iter()
            .any(|b| b["file"].as_str().is_some_and(|f| dvr_file
                .ends_with(f.trim_start_matches("./"))
                || f.ends_with(&*dvr_file))),
        "on_dvr for {dvr_file} did not complete; completed: {:#?}",
        hooks.calls("on_dvr")
    );

    // HLS: an ended playlist of segments that exist; the last one's hook completed.
    let playlist = root.join(format!("hls/live/{stream}.m3u8"));
    let m3u8 = std::fs::read_to_string(&playlist)
        .unwrap_or_else(|e| panic!("{}: {e}; files {files:?}", playlist.display()));
    let pl = parse_media_playlist(&m3u8).expect("playlist parses");
    assert!(pl.ended, "no #EXT-X-ENDLIST after SIGQUIT:\n{m3u8}");
    assert!(pl.segments.len() >= 3, "{m3u8}");
    for seg in &pl.segments {
        let p = root.join("hls/live").join(&seg.uri);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 0 && len.is_multiple_of(188),
            "segment {} is {len} bytes",
            p.display()
        );
    }
    let last = pl
        .segments
        .last()
        .map(|s| s.uri.clone())
        .unwrap_or_default();
    assert!(
        hooks
            .calls("on_hls")
            .iter()
            .any(|b| b["url"].as_str().is_some_and(|u| u.ends_with(&last))),
        "on_hls of the last segment {last} did not complete; completed: {:?}",
        hooks
            .calls("on_hls")
            .iter()
            .map(|b| b["url"].clone())
            .collect::<Vec<_>>()
    );

    // The publisher's unpublish reached the hook server too.
    assert!(
        hooks
            .calls("on_unpublish")
            .iter()
            .any(|b| b["stream"] == stream.as_str()),
        "no on_unpublish for {stream}"
    );
    // The clients were closed by the server.
    assert!(publisher.wait_timeout(Duration::from_secs(5)).is_some());
    assert!(edge_player.wait_timeout(Duration::from_secs(5)).is_some());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn sigterm_stops_the_services_quickly_and_completes_the_files() {
    require_ffmpeg();
    let root = unique_dir("sigterm");
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
vhost __defaultVhost__ {{
    gop_cache on;
    hls {{ enabled on; hls_fragment 1; hls_window 60; hls_path {root}/hls; }}
    dvr {{ enabled on; dvr_plan session; dvr_path {root}/dvr/[app]/[stream].flv; }}
}}
",
        root = root.display()
    );
    let mut s = Sluice::start(&root, &body);
    let mut publisher = common::recording::looped_publisher_in(&root, &s.url("live/t"), "t");
    let segments = wait_for(Duration::from_secs(20), || {
        let m3u8 = std::fs::read_to_string(root.join("hls/live/t.m3u8")).ok()?;
        (parse_media_playlist(&m3u8).ok()?.segments.len() >= 3).then_some(())
    });
    assert!(segments.is_some(), "{}", tail(&s.proc.output(), 40));
    assert!(publisher.is_running(), "{}", publisher.output());

    let term_at = Instant::now();
    kill(Pid::from_raw(s.proc.pid() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = s
        .proc
        .wait_timeout(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("sluice still running after SIGTERM"));
    let took = term_at.elapsed();
    let text = s.proc.output();
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        tail(&text, 40)
    );
    // The services' deadline is 5 s (`server::FAST_STOP_TIMEOUT`).
    assert!(took < Duration::from_secs(6), "SIGTERM stop took {took:?}");
    assert!(
        text.contains("every service finished its work"),
        "{}",
        tail(&text, 40)
    );
    // The recording of the still-live stream was completed, not left as a .tmp.
    let files = files_under(&root.join("dvr"));
    assert_eq!(files.len(), 1, "DVR files: {files:?}");
    assert!(
        files[0].to_string_lossy().ends_with("live/t.flv"),
        "{files:?}"
    );
    let duration = probed_duration(&files[0]).unwrap_or(0.0);
    assert!(
        duration >= 2.0,
        "DVR {} lasts {duration} s",
        files[0].display()
    );
    // HLS: the listed segments exist and are whole.
    let m3u8 = std::fs::read_to_string(root.join("hls/live/t.m3u8")).unwrap_or_default();
    let pl = parse_media_playlist(&m3u8).expect("playlist parses");
    for seg in &pl.segments {
        let p = root.join("hls/live").join(&seg.uri);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 0 && len.is_multiple_of(188),
            "segment {} is {len} bytes",
            p.display()
        );
    }
    drop(publisher);
    let _ = std::fs::remove_dir_all(&root);
}
