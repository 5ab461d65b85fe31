//! RTSP ingest end to end (issue 22): an RTSP camera, ingested by sluice's ffmpeg ingest
//! (`input { type stream; url rtsp://...; }`), plays over RTMP; the camera goes away and
//! comes back, and the ingest resumes on its own.
//!
//! The camera: ffmpeg's RTSP muxer only pushes (ANNOUNCE/RECORD) to a server, and
//! `-rtsp_flags listen` is an input-only flag (on output ffmpeg still connects, and gets
//! "connection refused"), so ffmpeg alone cannot be a camera that players pull from.
//! [`Camera`] is therefore a minimal RTSP relay in this test: ffmpeg pushes the fixture to it
//! over TCP, and it serves DESCRIBE/SETUP/PLAY to the ingest's ffmpeg, forwarding the
//! interleaved RTP/RTCP packets as they are. Like many cameras it refuses UDP (461), which
//! also shows that ffmpeg's default transport order falls back to TCP by itself.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;

/// What the relay shares between its connections.
#[derive(Default)]
struct Shared {
    /// The publisher's SDP, served to players.
    sdp: Mutex<Option<String>>,
    /// Write halves of the players that sent PLAY.
    players: Mutex<Vec<TcpStream>>,
    /// Every accepted connection, to cut them all when the camera goes away.
    all: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

/// One RTSP request: method, URL, headers (lower-case names), body.
struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request whose first byte (`first`) was already read; None at EOF.
fn read_request(r: &mut BufReader<TcpStream>, first: u8) -> Option<Request> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let line = format!("{}{}", first as char, line.trim_end());
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let url = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        url,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn reply(w: &mut TcpStream, req: &Request, status: &str, extra: &[String], body: &str) -> bool {
    let mut text = format!(
        "RTSP/1.0 {status}\r\nCSeq: {}\r\n",
        req.header("cseq").unwrap_or("0")
    );
    for h in extra {
        text.push_str(h);
        text.push_str("\r\n");
    }
    if !body.is_empty() {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    w.write_all(text.as_bytes()).is_ok()
}

/// One connection: RTSP requests, and `$`-framed interleaved packets, forwarded to the
/// players when this connection is the publisher (after RECORD), dropped otherwise (RTCP
/// receiver reports of players).
fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    let session = "Session: 4711";
    let mut recording = false;
    loop {
        let mut first = [0u8; 1];
        if r.read_exact(&mut first).is_err() {
            return;
        }
        if first[0] == b'$' {
            let mut head = [0u8; 3];
            if r.read_exact(&mut head).is_err() {
                return;
            }
            let len = usize::from(u16::from_be_bytes([head[1], head[2]]));
            let mut packet = vec![0u8; 4 + len];
            packet[0] = b'$';
            packet[1..4].copy_from_slice(&head);
            if r.read_exact(&mut packet[4..]).is_err() {
                return;
            }
            if recording {
                shared
                    .players
                    .lock()
                    .expect("players")
                    .retain_mut(|p| p.write_all(&packet).is_ok());
            }
            continue;
        }
        let Some(req) = read_request(&mut r, first[0]) else {
            return;
        };
        let ok = match req.method.as_str() {
            "OPTIONS" => reply(
                &mut w,
                &req,
                "200 OK",
                &[
                    "Public: DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, TEARDOWN, GET_PARAMETER"
                        .into(),
                ],
                "",
            ),
            "ANNOUNCE" => {
                *shared.sdp.lock().expect("sdp") = Some(req.body.clone());
                reply(&mut w, &req, "200 OK", &[], "")
            }
            "DESCRIBE" => match shared.sdp.lock().expect("sdp").clone() {
                Some(sdp) => reply(
                    &mut w,
                    &req,
                    "200 OK",
                    &[
                        "Content-Type: application/sdp".into(),
                        format!("Content-Base: {}/", req.url),
                    ],
                    &sdp,
                ),
                None => reply(&mut w, &req, "404 Not Found", &[], ""),
            },
            "SETUP" => {
                let transport = req.header("transport").unwrap_or("");
                match transport.split(';').find(|p| p.starts_with("interleaved=")) {
                    Some(channels) => reply(
                        &mut w,
                        &req,
                        "200 OK",
                        &[
                            format!("Transport: RTP/AVP/TCP;unicast;{channels}"),
                            session.into(),
                        ],
                        "",
                    ),
                    // Only TCP, as many cameras behind NAT are used.
                    None => reply(&mut w, &req, "461 Unsupported Transport", &[], ""),
                }
            }
            "RECORD" => {
                recording = true;
                reply(&mut w, &req, "200 OK", &[session.into()], "")
            }
            "PLAY" => {
                let ok = reply(
                    &mut w,
                    &req,
                    "200 OK",
                    &[session.into(), "Range: npt=0.000-".into()],
                    "",
                );
                if let Ok(p) = w.try_clone() {
                    let _ = p.set_write_timeout(Some(Duration::from_secs(2)));
                    shared.players.lock().expect("players").push(p);
                }
                ok
            }
            "TEARDOWN" => {
                let _ = reply(&mut w, &req, "200 OK", &[session.into()], "");
                return;
            }
            _ => reply(&mut w, &req, "200 OK", &[session.into()], ""),
        };
        if !ok {
            return;
        }
    }
}

/// The camera: the relay on `port` and the ffmpeg that pushes the fixture into it.
struct Camera {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    ffmpeg: Proc,
}

impl Camera {
    fn start(server: &Server, port: u16, tag: &str) -> Camera {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the camera's port");
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        if let Ok(c) = stream.try_clone() {
                            s.all.lock().expect("all").push(c);
                        }
                        let s2 = s.clone();
                        std::thread::spawn(move || serve(stream, s2));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        let input = fixture(AVC_AAC);
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
            .args(["-stream_loop", "-1", "-i"])
            .arg(&input)
            .args(["-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp"])
            .arg(format!("rtsp://127.0.0.1:{port}/cam"));
        let ffmpeg = Proc::spawn(
            &format!("ffmpeg camera {tag}"),
            cmd,
            server.tmp(&format!("camera-{tag}.log")),
        );
        let camera = Camera {
            shared,
            accept: Some(accept),
            ffmpeg,
        };
        let announced = wait_for(Duration::from_secs(10), || {
            camera.shared.sdp.lock().expect("sdp").clone()
        });
        assert!(
            announced.is_some_and(|sdp| sdp.contains("H264")),
            "the camera's ffmpeg did not announce H.264: {}",
            camera.ffmpeg.output()
        );
        camera
    }

    /// The camera goes away: its ffmpeg dies, the relay closes every connection and its port.
    fn stop(&mut self) {
        self.ffmpeg.kill();
        self.shared.stop.store(true, Ordering::Relaxed);
        for c in self.shared.all.lock().expect("all").drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ffmpeg -i URL -t SECONDS -c copy out.flv`: what an RTMP player gets for a few seconds.
fn play_for(server: &Server, url: &str, tag: &str, seconds: u32) -> FlvStats {
    let out = server.tmp(&format!("player-{tag}.flv"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i", url])
        .arg("-t")
        .arg(seconds.to_string())
        .args(["-c", "copy", "-f", "flv", "-y"])
        .arg(&out);
    let mut p = Proc::spawn(
        &format!("ffmpeg player {tag}"),
        cmd,
        server.tmp(&format!("player-{tag}.log")),
    );
    p.expect_success(Duration::from_secs(20));
    flv_stats(&out)
}

#[test]
fn rtsp_camera_is_ingested_and_resumes_after_it_comes_back() {
    require_ffmpeg();
    let cam_port = free_port();
    let server = Server::start_with(
        "rtsp-ingest",
        &format!(
            "max_connections 100;\ndaemon off;\nsrs_log_tank console;\nff_log_dir ./fflogs;\n\
             vhost __defaultVhost__ {{ gop_cache on; queue_length 10;\n\
             ingest cam {{ enabled on; input {{ type stream; url rtsp://127.0.0.1:{cam_port}/cam; }}\n\
             engine {{ enabled off; output rtmp://127.0.0.1:[port]/live?vhost=[vhost]/cam; }} }}\n}}\n"
        ),
    );
    let url = server.url("live/cam");
    let mut camera = Camera::start(&server, cam_port, "first");
    let publishes = || server.log().matches("publish ip=").count();
    let published = |count: usize| {
        wait_for(Duration::from_secs(20), || {
            (publishes() >= count).then_some(())
        })
    };
    assert!(
        published(1).is_some(),
        "the ingest never published; ingest log:\n{}",
        std::fs::read_to_string(server.tmp("fflogs/ffmpeg-ingest-__defaultVhost__-cam-0.log"))
            .unwrap_or_default()
    );
    let s = play_for(&server, &url, "first", 3);
    assert_eq!(s.width_height, Some((640, 360)), "{s:#?}");
    assert!(s.video_frames > 40 && s.audio_frames > 60, "{s:#?}");
    assert_eq!(s.first_video_frame_key, Some(true), "{s:#?}");

    // The camera goes away for 3 s: the ingest's ffmpeg ends, the supervisor retries
    // (back-off 1 s, 2 s, 4 s...) and picks the camera up again once it is back.
    camera.stop();
    std::thread::sleep(Duration::from_secs(3));
    let before = publishes();
    let _camera = Camera::start(&server, cam_port, "second");
    assert!(
        published(before + 1).is_some(),
        "the ingest did not publish again after the camera came back; log:\n{}",
        server.log()
    );
    let s = play_for(&server, &url, "second", 3);
    assert_eq!(s.width_height, Some((640, 360)), "{s:#?}");
    assert!(
        s.video_frames > 40 && s.audio_frames > 60,
        "after the camera came back: {s:#?}"
    );
    assert!(
        server.log().contains("ingest __defaultVhost__/cam/0: pid"),
        "the ingest's exit was not logged"
    );
}
