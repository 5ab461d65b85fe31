//! What the WebRTC tests share (tests/webrtc.rs, tests/webrtc_publish.rs): a free UDP
//! port for `rtc_server`, the wait for its socket, the Chromium driver
//! (tests/web/webrtc.mjs), SDP offers shaped like a browser's, and a bare HTTP POST of
//! one for the hostile-input tests (which need to send what no HTTP client library would).

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};

use std::time::Duration;

use super::browser::{driver_json, ensure_node_modules, find_chromium, node_driver};
use super::{wait_for, Server};

/// The frame rate of the fixture the WebRTC tests publish.
pub const SOURCE_FPS: f64 = 25.0;

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free udp port")
}

/// Waits for the rtc service's UDP socket: it is bound after the TCP listeners, which are
/// all [`Server::start_with`] waits for.
pub fn wait_rtc_listening(server: &Server) {
    let up = wait_for(Duration::from_secs(10), || {
        server
            .log()
            .contains("rtc_server: listening on udp port")
            .then_some(())
    });
    assert!(up.is_some(), "rtc_server did not start:\n{}", server.log());
}

/// Runs tests/web/webrtc.mjs (`mode`: whep, whip, whip-whep, pages...) against `base`
/// (the API's URL, or several for the pages mode) and returns its JSON line; a driver
/// failure or a browser error fails the test.
pub fn browser(
    mode: &str,
    base: &str,
    seconds: u32,
    stream: &str,
    players: u32,
) -> serde_json::Value {
    let chromium = find_chromium();
    ensure_node_modules(&["playwright-core"]);
    let mut driver = node_driver("webrtc.mjs");
    driver
        .arg(mode)
        .arg(base)
        .arg(&chromium)
        .arg(seconds.to_string())
        .arg("live")
        .arg(stream)
        .arg(players.to_string());
    let v = driver_json(&mut driver);
    eprintln!("browser ({mode}): {v}");
    assert!(v["error"].is_null(), "browser error: {v}");
    v
}

/// POSTs `body` as `application/sdp` with a bare HTTP/1.1 request and returns the whole
/// response (head and body) as text.
pub fn http_post_sdp(port: u16, path: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A minimal but valid browser-like offer with one H.264 video m-line: `recvonly` for
/// WHEP, `sendonly` for WHIP (which also names its track and SSRC, as browsers do).
pub fn h264_offer(ufrag: &str, direction: &str) -> String {
    let track = if direction == "sendonly" {
        "a=msid:s v\r\na=ssrc:1234 cname:x\r\n"
    } else {
        ""
    };
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:{ufrag}\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\na=mid:0\r\na={direction}\r\na=rtcp-mux\r\n{track}\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
    )
}

/// Posts `per_thread` offers from each of 8 threads at once, none ever followed by ICE, so
/// that more than the server's handshake bound are in flight before the first ones time
/// out however slow the machine; `request(thread, i)` gives each one's path and SDP.
/// Returns (answered 201, refused 503); any other answer fails the test.
pub fn offer_flood(
    api: u16,
    per_thread: usize,
    request: fn(usize, usize) -> (String, String),
) -> (usize, usize) {
    let workers: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let (mut created, mut refused) = (0usize, 0usize);
                for i in 0..per_thread {
                    let (path, sdp) = request(t, i);
                    let r = http_post_sdp(api, &path, sdp.as_bytes());
                    if r.starts_with("HTTP/1.1 201") {
                        created += 1;
                    } else if r.starts_with("HTTP/1.1 503") {
                        refused += 1;
                    } else {
                        panic!("unexpected answer: {r}");
                    }
                }
                (created, refused)
            })
        })
        .collect();
    let (mut created, mut refused) = (0, 0);
    for w in workers {
        let (c, r) = w.join().expect("offer thread");
        created += c;
        refused += r;
    }
    (created, refused)
}
