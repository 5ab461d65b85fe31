//! Low-Latency HLS (`hls_ll on`) end to end: a real ffmpeg publisher, a test client doing
//! blocking playlist reloads over real HTTP, the playlist rules of RFC 8216bis checked on
//! every answer, the parts read by our fMP4 reader, and 1,000 parked blocking requests.

mod common;

use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use media::fmp4::read::parse_fragments;
use media::hls::{parse_media_playlist, MediaPlaylist};

const PART: f64 = 0.2;

struct Ll {
    server: Server,
    root: PathBuf,
    http: u16,
    api: u16,
}

impl Ll {
    fn start(tag: &str, extra_hls: &str, max_connections: u32) -> Ll {
        require_ffmpeg();
        let root = unique_dir(&format!("{tag}-root")).join("hls");
        fs::create_dir_all(&root).expect("hls root");
        let http = free_port();
        let api = free_port();
        let body = format!(
            "max_connections {max_connections};
max_connections_per_ip {max_connections};
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; }}
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {root}; }}
vhost __defaultVhost__ {{
    hls {{ enabled on; hls_use_fmp4 on; hls_ll on; hls_part 200ms; hls_path {root}; {extra_hls} }}
}}
",
            root = root.display()
        );
        let server = Server::start_with(tag, &body);
        Ll {
            server,
            root,
            http,
            api,
        }
    }
}

impl Drop for Ll {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            if let Some(parent) = self.root.parent() {
                let _ = fs::remove_dir_all(parent);
            }
        }
    }
}

fn get(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    let r = common::http::get(port, path);
    (r.status, r.head, r.body)
}

/// The segment being written (its msn) and how many of its parts are listed.
fn live_edge(pl: &MediaPlaylist) -> (u64, usize) {
    (
        pl.media_sequence + pl.segments.len() as u64,
        pl.pending_parts.len(),
    )
}

/// RFC 8216bis rules on one LL playlist: server control and part info, every part at most
/// PART-TARGET, parts numbered from 0 without gaps in each segment (and the open one), the
/// first part of each segment independent (it starts on a keyframe), the preload hint on
/// the next part.
fn check_rules(pl: &MediaPlaylist, text: &str) {
    let ll = pl
        .low_latency
        .as_ref()
        .expect("EXT-X-SERVER-CONTROL and EXT-X-PART-INF");
    assert!((ll.part_target - PART).abs() < 1e-9, "{text}");
    assert!(ll.part_hold_back >= 2.0 * ll.part_target, "{text}");
    assert!(text.contains("CAN-BLOCK-RELOAD=YES"), "{text}");
    let (open, _) = live_edge(pl);
    let mut with_parts: Vec<(u64, &Vec<media::hls::Part>)> = pl
        .segments
        .iter()
        .filter(|s| !s.parts.is_empty())
        .map(|s| (s.sequence, &s.parts))
        .collect();
    if !pl.pending_parts.is_empty() {
        with_parts.push((open, &pl.pending_parts));
    }
    for (msn, parts) in with_parts {
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(
                p.uri,
                format!("test-{msn}.{i}.m4s"),
                "part numbering:\n{text}"
            );
            assert!(
                p.duration <= ll.part_target + 0.0005,
                "part {} of {} s over PART-TARGET:\n{text}",
                p.uri,
                p.duration
            );
        }
        assert!(
            parts[0].independent,
            "first part of {msn} not INDEPENDENT:\n{text}"
        );
    }
    if !pl.ended {
        let hint = pl.preload_hint.as_deref().expect("EXT-X-PRELOAD-HINT");
        assert_eq!(hint, format!("test-{open}.{}.m4s", pl.pending_parts.len()));
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[test]
fn blocking_reloads_follow_the_live_edge_and_the_playlist_keeps_the_rules() {
    let h = Ll::start(
        "ll-reloads",
        "hls_fragment 1; hls_window 6; hls_dispose 0;",
        100,
    );
    let mut publisher = spawn_publisher(&h.server, AVC_AAC, &h.server.url("live/test"), "first");
    let first = wait_for(Duration::from_secs(20), || {
        let (status, _, body) = get(h.http, "live/test.m3u8");
        (status == 200).then(|| String::from_utf8_lossy(&body).into_owned())
    })
    .expect("LL playlist served within 20 s");
    let mut pl = parse_media_playlist(&first).expect("parses");
    check_rules(&pl, &first);
    let mut waits = Vec::new();
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline && !pl.ended {
        let (msn, part) = live_edge(&pl);
        let asked = Instant::now();
        let (status, head, body) = get(
            h.http,
            &format!("live/test.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
        );
        waits.push(asked.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("application/vnd.apple.mpegurl"), "{head}");
        let text = String::from_utf8_lossy(&body).into_owned();
        let next = parse_media_playlist(&text).expect("parses");
        check_rules(&next, &text);
        assert!(
            next.media_sequence >= pl.media_sequence,
            "media sequence went back"
        );
        let (open, parts) = live_edge(&next);
        assert!(
            open > msn || parts > part,
            "asked part {part} of {msn}, got a playlist without it:\n{text}"
        );
        // The part asked for is served from memory and is a fragment.
        let uri = if open == msn {
            next.pending_parts[part].uri.clone()
        } else {
            next.segments
                .iter()
                .find(|s| s.sequence == msn)
                .and_then(|s| s.parts.get(part))
                .map(|p| p.uri.clone())
                .unwrap_or_else(|| format!("test-{}.0.m4s", msn + 1))
        };
        let (status, head, bytes) = get(h.http, &format!("live/{uri}"));
        assert_eq!(status, 200, "GET {uri}: {head}");
        assert!(head.contains("video/iso.segment"), "{head}");
        let frags = parse_fragments(&bytes).expect("part is moof+mdat");
        assert_eq!(frags.len(), 1);
        answered += 1;
        pl = next;
    }
    waits.remove(0);
    let max = waits.iter().copied().fold(0.0, f64::max);
    let med = median(&mut waits);
    eprintln!(
        "LL-HLS blocking reloads: {answered} answered, wait median {med:.0} ms, max {max:.0} ms"
    );
    assert!(
        answered >= 10,
        "only {answered} blocking reloads answered in 6 s"
    );
    // Generous sanity bound only (a shared machine): a part comes every 200 ms.
    assert!(max < 3000.0, "a blocking reload waited {max} ms");
    publisher.expect_success(Duration::from_secs(60));

    // ENDLIST at unpublish (hls_dispose 0), in memory as on disk; no preload hint after it.
    let ended = wait_for(Duration::from_secs(10), || {
        let (_, _, body) = get(h.http, "live/test.m3u8");
        let text = String::from_utf8_lossy(&body).into_owned();
        let p = parse_media_playlist(&text).ok()?;
        p.ended.then_some(p)
    })
    .expect("EXT-X-ENDLIST at unpublish");
    assert!(ended.preload_hint.is_none() && ended.pending_parts.is_empty());
    let n_first = ended.media_sequence + ended.segments.len() as u64;
    // A blocking reload on an ended stream is answered at once.
    let (status, _, _) = get(h.http, &format!("live/test.m3u8?_HLS_msn={}", n_first + 1));
    assert_eq!(status, 200);

    // Republish: numbering continues, with a discontinuity.
    let mut again = spawn_publisher_args(
        &h.server,
        AVC_AAC,
        &h.server.url("live/test"),
        "second",
        &["-t", "4"],
    );
    again.expect_success(Duration::from_secs(60));
    let pl = wait_for(Duration::from_secs(10), || {
        let (_, _, body) = get(h.http, "live/test.m3u8");
        let text = String::from_utf8_lossy(&body).into_owned();
        let p = parse_media_playlist(&text).ok()?;
        (p.ended && p.media_sequence + p.segments.len() as u64 > n_first + 1).then_some((p, text))
    });
    let (pl, text) = pl.expect("second publish listed and ended");
    let disc: Vec<u64> = pl
        .segments
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.sequence)
        .collect();
    assert_eq!(disc, vec![n_first], "{text}");
    check_rules(&pl, &text);

    // The API reports the stream's HLS format and LL state; /metrics the blocked requests.
    let (_, _, body) = get(h.api, "api/v1/hls");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let s = &v["hls"][0];
    assert_eq!(s["format"], "fmp4", "{v}");
    assert_eq!(s["ll"]["part_target_ms"], 200, "{v}");
    let (_, _, body) = get(h.api, "metrics");
    let m = String::from_utf8_lossy(&body).into_owned();
    let total = metric(&m, "sluice_hls_blocked_requests_total");
    assert!(total >= 5.0, "blocked requests counted: {total}\n{m}");
    assert!(metric(&m, "sluice_hls_blocked_wait_seconds_total") > 0.0);
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// utime + stime of a process, in seconds (Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// 1,000 blocking reloads wait for a part that does not come (the publisher left): they
/// cost no busy CPU and bounded memory, the 1,001st is refused at once (cap
/// `hls_ll_max_blocked 1000`), and all are answered 503 when the wait limit passes.
#[test]
fn a_thousand_parked_blocking_reloads_are_bounded() {
    const N: usize = 1000;
    let h = Ll::start(
        "ll-parked",
        "hls_fragment 2; hls_window 10; hls_dispose 120; hls_ll_max_blocked 1000;",
        3000,
    );
    let mut p = spawn_publisher_args(
        &h.server,
        AVC_AAC,
        &h.server.url("live/test"),
        "pub",
        &["-t", "5"],
    );
    p.expect_success(Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _, body) = get(h.http, "live/test.m3u8");
    assert_eq!(status, 200);
    let pl = parse_media_playlist(&String::from_utf8_lossy(&body)).expect("parses");
    assert!(!pl.ended);
    let (msn, _) = live_edge(&pl);
    let pid = h.server.pid();
    let rss_before = rss_kib(pid);
    let path = format!("live/test.m3u8?_HLS_msn={msn}");
    let parked: Vec<TcpStream> = (0..N)
        .map(|_| common::http::send_get(h.http, &path))
        .collect();
    let all_parked = wait_for(Duration::from_secs(20), || {
        let (_, _, body) = get(h.api, "metrics");
        let m = String::from_utf8_lossy(&body).into_owned();
        (metric(&m, "sluice_hls_blocked_requests") as usize == N).then_some(())
    });
    assert!(all_parked.is_some(), "{N} requests parked");
    // Beyond the cap: refused at once.
    let (status, head, _) = get(h.http, &path);
    assert_eq!(status, 503, "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
    let cpu0 = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let cpu = cpu_seconds(pid) - cpu0;
    let rss = rss_kib(pid);
    eprintln!(
        "{N} parked LL-HLS reloads: server CPU {cpu:.2} s over 3 s, RSS {} -> {} KiB (+{} KiB)",
        rss_before,
        rss,
        rss.saturating_sub(rss_before)
    );
    assert!(
        cpu < 0.5,
        "parked requests should not spin: {cpu} s of CPU in 3 s"
    );
    assert!(
        rss.saturating_sub(rss_before) < 200 * 1024,
        "memory for {N} parked requests: {} KiB",
        rss.saturating_sub(rss_before)
    );
    // Target 2 s: the wait ends after 6 s with 503 for every one of them.
    let mut unavailable = 0;
    for s in parked {
        let status = common::http::read_reply(s).status;
        if status == 503 {
            unavailable += 1;
        }
    }
    assert_eq!(unavailable, N);
    let (_, _, body) = get(h.api, "metrics");
    let m = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(metric(&m, "sluice_hls_blocked_requests"), 0.0);
    assert!(metric(&m, "sluice_hls_blocked_timeouts_total") >= N as f64);
    assert!(metric(&m, "sluice_hls_blocked_refused_total") >= 1.0);
}
