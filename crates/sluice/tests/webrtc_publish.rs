//! WebRTC publisher side and loss, with real peers: headless Chromium publishes its fake
//! camera and microphone by WHIP, and ffprobe reads H.264 and AAC (Opus transcoded in
//! process) back over RTMP and HLS; Chromium plays an RTMP stream by WHEP through a
//! lossy UDP link (5 % each way) and repairs it with NACKs.
//!
//! Needs: chromium, node and npm, ffmpeg/ffprobe (`apt-get install chromium nodejs npm
//! ffmpeg`); the npm packages pinned in tests/web/package-lock.json.
//!
//! These tests run Chromium (and one an x264 encoder): run them one at a time, and not
//! beside tests/webrtc.rs's (under nextest: one test group with max-threads 1).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::rtc::*;
use common::*;

/// One browser test at a time, machine-wide (see `common::browser::browser_slot`).
fn serial() -> common::browser::BrowserSlot {
    common::browser::browser_slot()
}

struct RtcServer {
    server: Server,
    api: u16,
    udp: u16,
    hls: PathBuf,
}

/// A server with WebRTC, the API, HLS; `rtc_server` gets `rtc_extra`.
fn start(tag: &str, rtc_extra: &str) -> RtcServer {
    let api = free_port();
    let udp = free_udp_port();
    let hls = unique_dir(&format!("{tag}-hls"));
    let body = format!(
        "max_connections 200;
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; }}
rtc_server {{ enabled on; listen {udp}; candidate 127.0.0.1; {rtc_extra} }}
vhost __defaultVhost__ {{
    gop_cache on;
    hls {{ enabled on; hls_path {hls}; hls_fragment 2; hls_window 60; hls_dispose 0; }}
    rtc {{ enabled on; rtmp_to_rtc on; rtc_to_rtmp on; }}
}}
",
        hls = hls.display()
    );
    let server = Server::start_with(tag, &body);
    wait_rtc_listening(&server);
    RtcServer {
        server,
        api,
        udp,
        hls,
    }
}

/// What ffprobe reads of one input: each stream's codec, and its packets' times.
#[derive(Debug, Default)]
struct Probe {
    codecs: Vec<(u64, String)>,
    /// (stream index, pts in s)
    packets: Vec<(u64, f64)>,
}

impl Probe {
    fn codec_index(&self, name: &str) -> Option<u64> {
        self.codecs.iter().find(|(_, c)| c == name).map(|(i, _)| *i)
    }

    fn times(&self, index: u64) -> Vec<f64> {
        self.packets
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, t)| *t)
            .collect()
    }
}

fn probe(url: &str, extra: &[&str]) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(extra)
        .args([
            "-show_entries",
            "stream=index,codec_name:packet=stream_index,pts_time",
        ])
        .args(["-of", "compact=p=0:nk=0"])
        .arg(url)
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut p = Probe::default();
    for line in text.lines() {
        let fields: std::collections::HashMap<&str, &str> = line
            .split('|')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        if let (Some(i), Some(c)) = (fields.get("index"), fields.get("codec_name")) {
            if let Ok(i) = i.parse() {
                p.codecs.push((i, c.to_string()));
            }
        } else if let (Some(i), Some(t)) = (fields.get("stream_index"), fields.get("pts_time")) {
            if let (Ok(i), Ok(t)) = (i.parse(), t.parse()) {
                p.packets.push((i, t));
            }
        }
    }
    eprintln!(
        "ffprobe {url}: {:?}, {} packets; stderr: {}",
        p.codecs,
        p.packets.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

/// Increasing with no gap over `max_gap` s; returns frames per second over the span.
fn assert_continuous(what: &str, times: &[f64], max_gap: f64) -> f64 {
    assert!(times.len() > 20, "{what}: {} packets", times.len());
    let mut sorted = times.to_vec();
    // Video packets are in decoding order; with no B frames (WebRTC H.264) that is
    // presentation order too, and audio is always in order.
    for (i, w) in times.windows(2).enumerate() {
        assert!(
            w[1] >= w[0] && w[1] - w[0] <= max_gap,
            "{what}: timestamps jump: {w:?} (packet {i}; around it: {:?})",
            &times[i.saturating_sub(5)..(i + 6).min(times.len())]
        );
    }
    sorted.sort_by(f64::total_cmp);
    let span = sorted[sorted.len() - 1] - sorted[0];
    (sorted.len() - 1) as f64 / span
}

/// CPU seconds (user + system) of the thread of `pid` named `name`, and the seconds since
/// it started; from /proc.
fn thread_cpu(pid: u32, name: &str) -> Option<(f64, f64)> {
    let tick = 100.0; // USER_HZ on Linux
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // Fields after the ")" that ends the name: utime is the 12th, stime the 13th,
        // starttime the 20th.
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let utime: f64 = rest.get(11)?.parse().ok()?;
        let stime: f64 = rest.get(12)?.parse().ok()?;
        let start: f64 = rest.get(19)?.parse().ok()?;
        return Some(((utime + stime) / tick, uptime - start / tick));
    }
    None
}

/// Chromium's fake camera and microphone (a beep) published by WHIP for 20 s: RTMP and
/// HLS players get its H.264 and its Opus as AAC, with continuous timestamps and the
/// frame rate the browser sent.
#[test]
fn chromium_publishes_audio_and_video_by_whip_and_rtmp_and_hls_get_h264_and_aac() {
    let _serial = serial();
    require_tool("ffprobe");
    let s = start("rtc-whip-av", "");
    let api = s.api;
    let browser_thread =
        thread::spawn(move || browser("publish", &format!("http://127.0.0.1:{api}"), 20, "av", 1));
    let live = wait_for(Duration::from_secs(20), || {
        s.server
            .log()
            .contains("rtc publisher connected")
            .then_some(())
    });
    assert!(
        live.is_some(),
        "no WHIP publisher connected:\n{}",
        s.server.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    // RTMP, while the browser publishes: 8 s of packets.
    let rtmp_url = s.server.url("live/av");
    let rtmp = probe(
        &rtmp_url,
        &["-rw_timeout", "10000000", "-read_intervals", "%+8"],
    );
    // What the Opus → AAC worker thread cost so far (a figure for docs/performance.md,
    // not a check: the machine is shared).
    if let Some((cpu, wall)) = thread_cpu(s.server.pid(), "rtc-opus-aac") {
        eprintln!(
            "opus→aac thread: {cpu:.2} s of CPU over {wall:.1} s ({:.1} % of a core)",
            cpu / wall * 100.0
        );
    }
    let v = browser_thread.join().expect("browser thread");
    let sent = v["framesSent"].as_f64().unwrap_or(0.0);
    assert!(sent > 100.0, "{v}");
    let browser_fps = sent / 20.0;
    let log = s.server.log();
    assert!(log.contains("close rtc publisher"), "{log}");

    // HLS, after the publish: the playlist (ended, so that ffprobe does not wait for
    // more segments) and its segments on disk.
    let playlist = s.hls.join("live/av.m3u8");
    let ok = wait_for(Duration::from_secs(15), || {
        std::fs::read_to_string(&playlist)
            .ok()
            .filter(|t| t.contains("#EXT-X-ENDLIST"))
    });
    assert!(
        ok.is_some(),
        "no ended HLS playlist at {}:\n{}",
        playlist.display(),
        s.server.log()
    );
    let hls = probe(&playlist.display().to_string(), &[]);

    for (what, p) in [("RTMP", &rtmp), ("HLS", &hls)] {
        let video = p
            .codec_index("h264")
            .unwrap_or_else(|| panic!("{what}: no H.264 stream: {p:?}\n{log}"));
        let audio = p
            .codec_index("aac")
            .unwrap_or_else(|| panic!("{what}: no AAC stream: {p:?}\n{log}"));
        let fps = assert_continuous(&format!("{what} video"), &p.times(video), 0.5);
        assert!(
            (fps - browser_fps).abs() <= browser_fps * 0.2,
            "{what}: {fps:.1} frames/s, the browser sent {browser_fps:.1}"
        );
        // AAC frames are 1024 samples (21.3 ms at 48 kHz): about 47 a second, no holes.
        let aps = assert_continuous(&format!("{what} audio"), &p.times(audio), 0.1);
        assert!(
            (40.0..=55.0).contains(&aps),
            "{what}: {aps:.1} AAC frames/s (48 kHz: 46.9)"
        );
    }
}

/// A lossy link in user space between Chromium and the server's RTC port: this kernel
/// has no `sch_netem`, so `tc netem loss 5%` in a network namespace cannot be made here.
/// The relay listens on `port` (the port the server announces, `candidate_port`), gives
/// each peer address its own socket towards the server (so the server sees as many peers
/// as there are), and drops `loss_percent` of the datagrams each way with a fixed seed.
struct LossyRelay {
    port: u16,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    passed: Arc<AtomicU64>,
    threads: Arc<Mutex<Vec<thread::JoinHandle<()>>>>,
}

/// A deterministic coin: true for `percent` % of the calls.
fn lose(rng: &mut u32, percent: u32) -> bool {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 17;
    *rng ^= *rng << 5;
    *rng % 100 < percent
}

impl LossyRelay {
    fn start(server_port: u16, loss_percent: u32) -> LossyRelay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind relay"));
        front
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let port = front.local_addr().expect("addr").port();
        let server = addr(server_port);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let passed = Arc::new(AtomicU64::new(0));
        let threads: Arc<Mutex<Vec<thread::JoinHandle<()>>>> = Arc::default();
        let (stop2, dropped2, passed2, threads2) = (
            stop.clone(),
            dropped.clone(),
            passed.clone(),
            threads.clone(),
        );
        let upstream = thread::spawn(move || {
            let mut backs: std::collections::HashMap<SocketAddr, Arc<UdpSocket>> =
                Default::default();
            let mut rng = 0x2545_f491u32;
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = front.recv_from(&mut buf) else {
                    continue;
                };
                let back = backs.entry(peer).or_insert_with(|| {
                    // This peer's socket towards the server, and its downstream thread.
                    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind relay"));
                    back.set_read_timeout(Some(Duration::from_millis(100)))
                        .expect("timeout");
                    let (b, f, st, dr, pa) = (
                        back.clone(),
                        front.clone(),
                        stop2.clone(),
                        dropped2.clone(),
                        passed2.clone(),
                    );
                    let seed = 0x9e37_79b9u32 ^ u32::from(peer.port());
                    let t = thread::spawn(move || {
                        let mut rng = seed;
                        let mut buf = [0u8; 2048];
                        while !st.load(Ordering::Relaxed) {
                            let Ok((n, _)) = b.recv_from(&mut buf) else {
                                continue;
                            };
                            if lose(&mut rng, loss_percent) {
                                dr.fetch_add(1, Ordering::Relaxed);
                            } else {
                                pa.fetch_add(1, Ordering::Relaxed);
                                let _ = f.send_to(&buf[..n], peer);
                            }
                        }
                    });
                    threads2.lock().unwrap_or_else(|e| e.into_inner()).push(t);
                    back
                });
                if lose(&mut rng, loss_percent) {
                    dropped2.fetch_add(1, Ordering::Relaxed);
                } else {
                    passed2.fetch_add(1, Ordering::Relaxed);
                    let _ = back.send_to(&buf[..n], server);
                }
            }
        });
        threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(upstream);
        LossyRelay {
            port,
            stop,
            dropped,
            passed,
            threads,
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The upstream thread may add a downstream one until it stops: join until none.
        loop {
            let t = self.threads.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match t {
                Some(t) => {
                    let _ = t.join();
                }
                None => break,
            }
        }
    }
}

/// RTMP publish → WHEP play in Chromium through 5 % loss each way: at least 90 % of the
/// source's frames are decoded, and Chromium sent NACKs (which the server answered: the
/// frames would not decode otherwise).
#[test]
fn whep_through_five_percent_loss_decodes_nine_frames_in_ten() {
    let _serial = serial();
    require_ffmpeg();
    // The relay needs the server's port, the server the relay's: pick the server's
    // first, then announce the relay's.
    let udp = free_udp_port();
    let relay = LossyRelay::start(udp, 5);
    let api = free_port();
    let body = format!(
        "max_connections 200;
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; }}
rtc_server {{ enabled on; listen {udp}; candidate 127.0.0.1; candidate_port {}; }}
vhost __defaultVhost__ {{
    gop_cache on;
    rtc {{ enabled on; rtmp_to_rtc on; }}
}}
",
        relay.port
    );
    let server = Server::start_with("rtc-loss", &body);
    wait_rtc_listening(&server);
    // The fixture re-encoded without B frames (WebRTC players get every frame).
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(fixture(AVC_AAC))
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "50",
        ])
        .args(["-c:a", "copy", "-f", "flv"])
        .arg(server.url("live/loss"));
    let _publisher = Proc::spawn("ffmpeg publisher", cmd, server.tmp("publisher.log"));
    let live = wait_for(Duration::from_secs(15), || {
        server
            .log()
            .contains("stream=__defaultVhost__/live/loss")
            .then_some(())
    });
    assert!(live.is_some(), "publisher did not start:\n{}", server.log());
    std::thread::sleep(Duration::from_secs(2));
    let v = browser("play", &format!("http://127.0.0.1:{api}"), 20, "loss", 1);
    let p = &v["players"][0];
    let fps = p["fps"].as_f64().unwrap_or(0.0);
    let nacks = p["nackCount"].as_u64().unwrap_or(0);
    let retransmitted = p["retransmitted"].as_u64().unwrap_or(0);
    let dropped = relay.dropped.load(Ordering::Relaxed);
    let passed = relay.passed.load(Ordering::Relaxed);
    eprintln!("relay: {dropped} datagrams dropped, {passed} passed");
    assert!(
        dropped * 100 >= (dropped + passed) * 3,
        "the link lost {dropped} of {}",
        dropped + passed
    );
    assert!(
        fps >= SOURCE_FPS * 0.9,
        "decoded {fps:.1} frames/s of the source's {SOURCE_FPS} through 5 % loss: {p}"
    );
    assert!(nacks > 0, "Chromium sent no NACK: {p}");
    // Answered: packets came again on the RTX stream, from the stream's packet history.
    assert!(retransmitted > 0, "no NACK was answered: {p}");
    assert_eq!(p["width"].as_u64(), Some(640), "{p}");
    assert!(
        server.log().contains("rtc player connected"),
        "{}",
        server.log()
    );
}

/// A STUN binding request naming `username`, with a MESSAGE-INTEGRITY that is not the
/// HMAC of the session's password.
fn stun_bad_integrity(username: &str, txid: u8) -> Vec<u8> {
    let mut user = username.as_bytes().to_vec();
    let user_len = user.len() as u16;
    user.resize(user.len().div_ceil(4) * 4, 0);
    let mut body = Vec::new();
    body.extend_from_slice(&[0x00, 0x06]);
    body.extend_from_slice(&user_len.to_be_bytes());
    body.extend_from_slice(&user);
    body.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
    body.extend_from_slice(&[0xAB; 20]);
    let mut d = vec![0x00, 0x01];
    d.extend_from_slice(&(body.len() as u16).to_be_bytes());
    d.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    d.extend_from_slice(&[txid; 12]);
    d.extend_from_slice(&body);
    d
}

/// Hostile input on the publisher side: malformed, huge and absurd SDP to the WHIP
/// endpoint; hundreds of WHIP offers (each claiming a stream) never followed by ICE;
/// STUN with a bad integrity naming a real session, then DTLS garbage from the address
/// it came from. Refused cleanly; the claims are released after the handshake time-out;
/// an RTMP stream plays on untouched, and the server lives.
#[test]
fn hostile_whip_input_is_refused_and_claims_are_released() {
    require_ffmpeg();
    require_tool("ffprobe");
    let s = start("rtc-whip-hostile", "max_handshakes 32;");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(fixture(AVC_AAC))
        .args(["-c", "copy", "-f", "flv"])
        .arg(s.server.url("live/rtmp"));
    let mut publisher = Proc::spawn("ffmpeg publisher", cmd, s.server.tmp("publisher.log"));
    let whip = |stream: &str| format!("/rtc/v1/whip/?app=live&stream={stream}");

    // Malformed, huge, and a valid-looking SDP with thousands of m-lines (under 64 KiB).
    let r = http_post_sdp(s.api, &whip("a"), b"v=0\r\nthis is not sdp\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = http_post_sdp(s.api, &whip("a"), &vec![b'v'; 300 * 1024]);
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let mut many = h264_offer("many", "sendonly");
    while many.len() < 60 * 1024 {
        many.push_str("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:x\r\n");
    }
    let r = http_post_sdp(s.api, &whip("a"), many.as_bytes());
    assert!(
        r.starts_with("HTTP/1.1 400") || r.starts_with("HTTP/1.1 201"),
        "{r}"
    );
    let r = http_post_sdp(s.api, &whip("a"), &[0xff, 0xfe, 0x00, 0x80]);
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    // A real WHIP offer: its answer names our ufrag.
    let r = http_post_sdp(
        s.api,
        &whip("victim"),
        h264_offer("peer", "sendonly").as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    let ours = r
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .expect("ufrag in the answer")
        .trim()
        .to_string();
    // STUN with a bad integrity for that session: never a success response.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.set_read_timeout(Some(Duration::from_millis(300))).ok();
    for i in 0..20u8 {
        let _ = sock.send_to(&stun_bad_integrity(&format!("{ours}:peer"), i), addr(s.udp));
        let mut buf = [0u8; 1500];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            assert!(
                n >= 2 && buf[..2] != [0x01, 0x01],
                "a STUN success answered a bad integrity: {:?}",
                &buf[..n]
            );
        }
    }
    // DTLS garbage (records of every content type) from the address the STUN came from.
    for i in 0..200u32 {
        let mut d = vec![20 + (i % 4) as u8, 0xfe, 0xfd];
        d.extend((0..(i % 300)).map(|k| (k * 31 + i) as u8));
        let _ = sock.send_to(&d, addr(s.udp));
    }

    // Hundreds of WHIP offers never followed by ICE, each for its own stream, from 8
    // threads: answered (201) up to the handshake bound, refused (503) past it.
    let (created, refused) = offer_flood(s.api, 40, |t, i| {
        (
            format!("/rtc/v1/whip/?app=live&stream=n{t}x{i}"),
            h264_offer(&format!("p{t}x{i}"), "sendonly"),
        )
    });
    assert!(
        created > 0 && refused > 0,
        "created {created}, refused {refused}"
    );
    // Every one of them (and the victim) is dropped after the handshake time-out, and
    // releases its stream: a new publisher may claim it.
    let cleaned = wait_for(Duration::from_secs(40), || {
        s.server
            .log()
            .matches("no ICE and DTLS handshake within")
            .count()
            .ge(&(created + 1))
            .then_some(())
    });
    assert!(
        cleaned.is_some(),
        "pending WHIP sessions were not dropped:\n{}",
        s.server.log()
    );
    let r = http_post_sdp(
        s.api,
        &whip("victim"),
        h264_offer("again", "sendonly").as_bytes(),
    );
    assert!(
        r.starts_with("HTTP/1.1 201"),
        "the stream was not released: {r}"
    );

    // The RTMP stream plays on.
    let p = probe(
        &s.server.url("live/rtmp"),
        &["-rw_timeout", "10000000", "-read_intervals", "%+3"],
    );
    assert!(p.codec_index("h264").is_some(), "{p:?}");
    assert!(p.packets.len() > 20, "{p:?}");
    let mut server = s.server;
    assert!(server.is_alive(), "the server died");
    publisher.kill();
}
