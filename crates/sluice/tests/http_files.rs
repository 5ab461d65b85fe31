//! The HTTP file server end to end: the real `sluice` binary, files in its `http_server.dir`,
//! and a raw HTTP/1.1 client so that hostile request targets reach the server byte for byte
//! (a URL library would normalise `..` away before sending).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use media::codec::{parse_audio_header, parse_video_header, VideoPacketKind};

const HTTP_START_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

struct HttpServer {
    server: Server,
    port: u16,
    www: PathBuf,
}

/// A server whose `http_server.dir` is `./www` under its temp dir. `vhosts` replaces the
/// harness's default vhost list; `http_extra` goes inside the `http_server` block.
fn start(tag: &str, http_extra: &str, vhosts: &str) -> HttpServer {
    let port = free_port();
    let body = format!(
        "daemon off;\nsrs_log_tank console;\n{vhosts}\n\
         http_server {{ enabled on; listen 127.0.0.1:{port}; dir ./www; {http_extra} }}\n"
    );
    let server = Server::start_with(tag, &body);
    let up = wait_for(HTTP_START_TIMEOUT, || {
        TcpStream::connect_timeout(&addr(port), Duration::from_millis(200)).ok()
    });
    assert!(
        up.is_some(),
        "http_server did not listen on {port}; log:\n{}",
        server.log()
    );
    let www = server.dir.join("www");
    fs::create_dir_all(&www).expect("create www");
    HttpServer { server, port, www }
}

fn start_default(tag: &str) -> HttpServer {
    start(tag, "", "vhost __defaultVhost__ { }")
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
fn request(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect(addr(port)).expect("connect http");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    if resp
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        resp.body = dechunk(&resp.body);
    }
    resp
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&b[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

fn get(port: u16, target: &str) -> Resp {
    request(port, "GET", target, &[])
}

#[test]
fn files_have_their_mime_types_and_headers() {
    let s = start_default("mime");
    let files: &[(&str, &str)] = &[
        ("index.html", "text/html; charset=utf-8"),
        ("live/s.m3u8", "application/vnd.apple.mpegurl"),
        ("live/s-1.ts", "video/mp2t"),
        ("v.flv", "video/x-flv"),
        ("v.mp4", "video/mp4"),
        ("app.js", "application/javascript"),
        ("style.css", "text/css"),
        ("data.json", "application/json"),
        ("img.png", "image/png"),
        ("img.jpg", "image/jpeg"),
        ("img.svg", "image/svg+xml"),
        ("favicon.ico", "image/x-icon"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("blob.bin", "application/octet-stream"),
    ];
    for (i, (name, _)) in files.iter().enumerate() {
        let p = s.www.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("content of {name} #{i}")).unwrap();
    }
    for (name, mime) in files {
        let r = get(s.port, &format!("/{name}"));
        assert_eq!(r.status, 200, "{name}: {r:?}");
        assert_eq!(r.header("content-type"), Some(*mime), "{name}");
        let want = fs::read(s.www.join(name)).unwrap();
        assert_eq!(r.body, want, "{name}");
        assert_eq!(
            r.header("content-length"),
            Some(want.len().to_string().as_str()),
            "{name}"
        );
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "{name}: crossdomain defaults on"
        );
        assert!(
            r.header("last-modified")
                .is_some_and(|v| v.ends_with(" GMT")),
            "{name}"
        );
    }
    // HLS: the playlist is never cached, segments may be.
    assert_eq!(
        get(s.port, "/live/s.m3u8").header("cache-control"),
        Some("no-cache")
    );
    let ts = get(s.port, "/live/s-1.ts");
    assert!(
        !ts.header("cache-control")
            .unwrap_or("")
            .contains("no-cache"),
        "{ts:?}"
    );

    // Directories: index.html at the root and in a subdirectory; no slash → redirect.
    fs::write(s.www.join("live/index.html"), "live index").unwrap();
    assert_eq!(
        get(s.port, "/").body,
        fs::read(s.www.join("index.html")).unwrap()
    );
    assert_eq!(get(s.port, "/live/").body, b"live index");
    let r = get(s.port, "/live");
    assert_eq!((r.status, r.header("location")), (301, Some("/live/")));
    fs::create_dir_all(s.www.join("empty")).unwrap();
    assert_eq!(get(s.port, "/empty/").status, 404);

    // A large file arrives intact (the body is streamed, not buffered).
    let big = pseudo_random(7, 5 * 1024 * 1024 + 123);
    fs::write(s.www.join("big.bin"), &big).unwrap();
    let r = get(s.port, "/big.bin");
    assert_eq!(r.status, 200);
    assert!(
        r.body == big,
        "big file differs ({} bytes received)",
        r.body.len()
    );
}

#[test]
fn head_ranges_conditionals_and_errors() {
    let s = start_default("range");
    let data = pseudo_random(3, 1000);
    fs::write(s.www.join("f.bin"), &data).unwrap();

    let r = request(s.port, "HEAD", "/f.bin", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1000"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.body.is_empty(), "HEAD has no body");

    let range = |spec: &str| request(s.port, "GET", "/f.bin", &[("Range", spec)]);
    for (spec, first, last) in [
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=995-5000", 995, 999),
        ("bytes=0-0", 0, 0),
    ] {
        let r = range(spec);
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {first}-{last}/1000").as_str()),
            "{spec}"
        );
        assert_eq!(r.body, &data[first..=last], "{spec}");
        assert_eq!(
            r.header("content-length"),
            Some((last - first + 1).to_string().as_str())
        );
    }
    for spec in ["bytes=1000-", "bytes=2000-3000", "bytes=-0"] {
        let r = range(spec);
        assert_eq!(r.status, 416, "{spec}");
        assert_eq!(r.header("content-range"), Some("bytes */1000"), "{spec}");
    }
    for spec in ["bytes=0-1,5-6", "bytes=x-y", "pages=1-2"] {
        let r = range(spec);
        assert_eq!((r.status, r.body.len()), (200, 1000), "{spec}");
    }
    let r = request(s.port, "HEAD", "/f.bin", &[("Range", "bytes=100-199")]);
    assert_eq!((r.status, r.header("content-length")), (206, Some("100")));
    assert!(r.body.is_empty());

    let lm = get(s.port, "/f.bin")
        .header("last-modified")
        .unwrap()
        .to_string();
    let r = request(s.port, "GET", "/f.bin", &[("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 304, "{r:?}");
    assert!(r.body.is_empty());
    let r = request(
        s.port,
        "GET",
        "/f.bin",
        &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
    );
    assert_eq!((r.status, r.body.len()), (200, 1000));

    let r = get(s.port, "/missing.txt");
    assert_eq!(r.status, 404);
    assert!(r.body.len() < 100);
    let r = request(s.port, "POST", "/f.bin", &[("Content-Length", "0")]);
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some_and(|a| a.contains("GET")));
    let r = request(s.port, "DELETE", "/f.bin", &[]);
    assert_eq!(r.status, 405);
    assert_eq!(fs::read(s.www.join("f.bin")).unwrap(), data);
}

#[test]
fn traversal_attempts_are_refused() {
    let s = start_default("traversal");
    fs::write(s.www.join("ok.txt"), "fine").unwrap();
    // A secret just outside the served directory, and symlinks inside it pointing out.
    let secret = "TOP-SECRET-5d41402abc4b2a76";
    fs::write(s.server.dir.join("secret.txt"), secret).unwrap();
    std::os::unix::fs::symlink("/etc", s.www.join("etc_link")).unwrap();
    std::os::unix::fs::symlink(
        s.server.dir.join("secret.txt"),
        s.www.join("secret_link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&s.server.dir, s.www.join("up")).unwrap();
    // A symlink that stays inside is fine.
    std::os::unix::fs::symlink(s.www.join("ok.txt"), s.www.join("inside_link.txt")).unwrap();
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let passwd_line = passwd.lines().next().unwrap_or("root:x:0:0").to_string();

    assert_eq!(get(s.port, "/ok.txt").body, b"fine");
    assert_eq!(get(s.port, "/inside_link.txt").body, b"fine");
    for target in [
        "/../etc/passwd",
        "/../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
        "/..%2fetc/passwd",
        "/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/%2fetc/passwd",
        "//etc/passwd",
        "/..\\..\\etc\\passwd",
        "/..%5c..%5cetc%5cpasswd",
        "/etc/passwd%00.txt",
        "/ok.txt%00/../../etc/passwd",
        "/etc_link/passwd",
        "/etc_link/",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/.%2e/secret.txt",
        "/secret_link.txt",
        "/up/secret.txt",
        "/up/",
        "/./../secret.txt",
    ] {
        let r = get(s.port, target);
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "{target}: status {} {r:?}",
            r.status
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains(secret) && !body.contains(&passwd_line) && !body.contains("root:"),
            "{target}: leaked {body}"
        );
        assert!(r.body.len() < 200, "{target}: body too big: {body}");
    }
    // The server survives all of it.
    assert_eq!(get(s.port, "/ok.txt").body, b"fine");
}

#[test]
fn cors_off_and_hls_path_lookup() {
    let s = start(
        "hlsdir",
        "crossdomain off;",
        "vhost __defaultVhost__ { hls { enabled on; hls_path ./hls; } }",
    );
    let hls = s.server.dir.join("hls/live");
    fs::create_dir_all(&hls).unwrap();
    fs::write(hls.join("s.m3u8"), "#EXTM3U\n").unwrap();
    fs::write(hls.join("s-0.ts"), [0x47u8; 188]).unwrap();
    fs::write(s.www.join("page.html"), "<p>hi</p>").unwrap();

    let r = get(s.port, "/live/s.m3u8");
    assert_eq!(r.status, 200, "found in hls_path: {r:?}");
    assert_eq!(r.body, b"#EXTM3U\n");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "crossdomain off"
    );
    let r = get(s.port, "/live/s-0.ts");
    assert_eq!((r.status, r.body.len()), (200, 188));
    assert_eq!(r.header("content-type"), Some("video/mp2t"));
    assert_eq!(get(s.port, "/page.html").body, b"<p>hi</p>");
    // The static dir wins when both have the file.
    fs::create_dir_all(s.www.join("live")).unwrap();
    fs::write(s.www.join("live/s.m3u8"), "#EXTM3U\n#static\n").unwrap();
    assert_eq!(get(s.port, "/live/s.m3u8").body, b"#EXTM3U\n#static\n");
    // Escapes out of the HLS dir are refused too.
    let r = get(s.port, "/../www/page.html");
    assert!(matches!(r.status, 400 | 403 | 404));
}

/// Media summary of an FLV body, read with our own parser.
struct Seeked {
    tag_types: Vec<u8>,
    first_video_is_seq: bool,
    first_audio_is_seq: bool,
    first_frame_is_key: bool,
}

fn inspect_seeked(body: &[u8]) -> Seeked {
    let (header, tags) = media::flv::read_flv(Bytes::copy_from_slice(body)).expect("valid FLV");
    assert!(header.has_video && header.has_audio);
    let video: Vec<_> = tags.iter().filter(|t| t.tag_type == FLV_VIDEO).collect();
    let audio: Vec<_> = tags.iter().filter(|t| t.tag_type == FLV_AUDIO).collect();
    let first_frame = video
        .iter()
        .filter_map(|t| parse_video_header(&t.data))
        .find(|h| h.kind == VideoPacketKind::Frames)
        .expect("a video frame");
    Seeked {
        tag_types: tags.iter().take(4).map(|t| t.tag_type).collect(),
        first_video_is_seq: video
            .first()
            .and_then(|t| parse_video_header(&t.data))
            .is_some_and(|h| h.info.sequence_header),
        first_audio_is_seq: audio
            .first()
            .and_then(|t| parse_audio_header(&t.data))
            .is_some_and(|h| h.info.sequence_header),
        first_frame_is_key: first_frame.info.keyframe,
    }
}

#[test]
fn flv_vod_seeks_to_a_keyframe_with_injected_headers() {
    require_tool("ffprobe");
    let s = start_default("flvvod");
    fs::copy(fixture(AVC_AAC), s.www.join("v.flv")).expect("copy fixture");
    let full = fs::read(fixture(AVC_AAC)).unwrap();

    // Without start (or start=0): the plain file.
    let r = get(s.port, "/v.flv");
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("video/x-flv"))
    );
    assert!(r.body == full);
    assert!(get(s.port, "/v.flv?start=0").body == full);

    let r = get(s.port, "/v.flv?start=200000");
    assert_eq!(r.status, 200, "{:?}", r.headers);
    assert_eq!(r.header("content-type"), Some("video/x-flv"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(r.body.len() < full.len(), "seeked body must be shorter");
    let seeked = inspect_seeked(&r.body);
    assert_eq!(
        seeked.tag_types,
        [FLV_SCRIPT, FLV_VIDEO, FLV_AUDIO, FLV_VIDEO],
        "metadata, both sequence headers, then a video frame"
    );
    assert!(seeked.first_video_is_seq && seeked.first_audio_is_seq);
    assert!(
        seeked.first_frame_is_key,
        "the first frame after the seek is a keyframe"
    );
    // The tail is the file's own bytes from a tag boundary at or after the start.
    let prefix_len = {
        let (_, tags) = media::flv::read_flv(Bytes::copy_from_slice(&r.body)).unwrap();
        13 + tags
            .iter()
            .take(3)
            .map(|t| 11 + t.data.len() + 4)
            .sum::<usize>()
    };
    let cut = full.len() - (r.body.len() - prefix_len);
    assert!(cut >= 200_000, "cut at {cut}, before start");
    assert!(r.body[prefix_len..] == full[cut..]);

    let out = s.server.dir.join("seeked.flv");
    fs::write(&out, &r.body).unwrap();
    let got = ffprobe(&out);
    let want = ffprobe(&fixture(AVC_AAC));
    let video = got
        .iter()
        .find(|p| p.codec_type == "video")
        .expect("video stream");
    let audio = got
        .iter()
        .find(|p| p.codec_type == "audio")
        .expect("audio stream");
    assert_eq!(video.codec_name, "h264");
    assert_eq!(audio.codec_name, "aac");
    assert_eq!((video.width, video.height), (Some(640), Some(360)));
    let want_video = want.iter().find(|p| p.codec_type == "video").unwrap();
    let (got_frames, all_frames) = (video.frames.unwrap_or(0), want_video.frames.unwrap_or(0));
    assert!(
        got_frames > 0 && got_frames < all_frames,
        "{got_frames} of {all_frames} frames"
    );

    // HEAD of a seek announces the same length.
    let h = request(s.port, "HEAD", "/v.flv?start=200000", &[]);
    assert_eq!(h.header("content-length"), r.header("content-length"));
    assert!(h.body.is_empty());

    // Bad starts.
    for q in [
        "start=abc",
        "start=-5",
        "start=",
        &format!("start={}", full.len() + 10),
    ] {
        let r = get(s.port, &format!("/v.flv?{q}"));
        assert_eq!(r.status, 400, "{q}");
    }
    // A non-FLV file with a .flv name: an error, not a crash.
    fs::write(s.www.join("fake.flv"), b"this is not an flv file at all").unwrap();
    let r = get(s.port, "/fake.flv?start=5");
    assert!(r.status >= 400, "{r:?}");
    assert_eq!(get(s.port, "/v.flv?start=1").status, 200);
}
