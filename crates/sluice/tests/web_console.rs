//! The web console in a real browser: headless Chromium (driven by tests/web/console.mjs with
//! playwright-core) uses sluice's embedded console against a server with API auth, while
//! ffmpeg publishes the fixture and plays it over RTMP. The driver logs in (a wrong password
//! is refused first), sees the summary, sees the stream with its codec and resolution,
//! previews it over HTTP-FLV, kicks the RTMP player, reloads the config, starts a DVR, opens
//! the player, publisher and landing pages and the console on the API port. Here we check
//! what it saw against the API and the processes, that every request went to 127.0.0.1, that
//! the screenshots are not blank, and print the console's page weight and load time.
//!
//! Needs: chromium, node and npm (`apt-get install chromium nodejs npm`); the npm packages
//! pinned in tests/web/package-lock.json are installed here with `npm ci` when missing.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::browser::{browser_slot, driver_json, ensure_node_modules, find_chromium, node_driver};
use common::*;
use serde_json::{json, Value};

const USER: &str = "admin";
const PASS: &str = "s3cret";
/// `admin:s3cret` in base64, for the API requests made here.
const BASIC: &str = "YWRtaW46czNjcmV0";
/// How long each browser step may wait for what it expects.
const STEP_TIMEOUT_SECS: u64 = 15;
/// The budget for the console's assets, players included, as sent.
const MAX_WEIGHT_BYTES: u64 = 300 * 1024;

/// An API GET with the test's credentials: (status, JSON body).
fn api_get(port: u16, path: &str) -> (u16, Value) {
    let mut s =
        TcpStream::connect_timeout(&addr(port), Duration::from_secs(2)).expect("connect API");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {BASIC}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A GET with extra header lines: (status, lower-cased head, body).
fn raw_get(port: u16, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
    let r = common::http::get_with(port, path, headers);
    (r.status, r.head.to_ascii_lowercase(), r.body)
}

/// Whether a URL the browser requested stays on this host.
fn is_loopback(url: &str) -> bool {
    if url.starts_with("data:") || url.starts_with("about:") {
        return true;
    }
    let url = url.strip_prefix("blob:").unwrap_or(url);
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host == "127.0.0.1"
}

fn sum_bytes(list: &Value) -> u64 {
    list.as_array()
        .map(|a| a.iter().filter_map(|e| e["bytes"].as_u64()).sum())
        .unwrap_or(0)
}

#[test]
fn chromium_runs_the_console() {
    let _slot = browser_slot();
    require_ffmpeg();
    let chromium = find_chromium();
    ensure_node_modules(&["playwright-core"]);
    let started = Instant::now();

    let root = unique_dir("web-console-root");
    let shots = root.join("screenshots");
    fs::create_dir_all(&shots).expect("screenshot dir");
    let html = root.join("html");
    fs::create_dir_all(&html).expect("http root");
    let http = free_port();
    let api = free_port();
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
http_api {{
    enabled on; listen 127.0.0.1:{api}; crossdomain on;
    auth {{ enabled on; username {USER}; password {PASS}; }}
    raw_api {{ enabled on; allow_reload on; }}
}}
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {html}; }}
vhost __defaultVhost__ {{
    gop_cache on;
    http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}
    hls {{ enabled on; hls_path {html}; hls_fragment 1; hls_window 6; }}
}}
",
        html = html.display()
    );
    let server = Server::start_with("web-console", &body);

    // The fixture, looped, so the stream stays live for the whole browser session.
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(fixture(AVC_AAC))
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.url("live/test"));
    let _publisher = Proc::spawn("ffmpeg publisher", cmd, server.tmp("publisher.log"));
    let (mut player, _) = spawn_player(&server, &server.url("live/test"), "kicked");

    let params = json!({
        "chromium": chromium,
        "http": format!("http://127.0.0.1:{http}"),
        "api": format!("http://127.0.0.1:{api}"),
        // A port nothing listens on (taken from the OS, then released).
        "deadApi": format!("http://127.0.0.1:{}", free_port()),
        "user": USER,
        "pass": PASS,
        "stream": "test",
        "flvUrl": format!("http://127.0.0.1:{http}/live/test.flv"),
        "shots": shots,
        "timeoutSecs": STEP_TIMEOUT_SECS,
    });
    let v = driver_json(node_driver("console.mjs").arg(params.to_string()));
    let mut brief = v.clone();
    if let Some(o) = brief.as_object_mut() {
        o.remove("requests");
    }
    eprintln!("browser: {brief:#}");
    assert!(
        v["error"].is_null(),
        "a console step failed: {}",
        v["error"]
    );

    // Logged in against the right API, and the summary is sluice's.
    assert_eq!(
        v["api"],
        format!("http://127.0.0.1:{api}"),
        "API found from the HTTP port"
    );
    assert_eq!(
        v["apiPortConsole"],
        format!("http://127.0.0.1:{api}"),
        "same origin on the API port"
    );
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_ne!(v["overview"]["mem"], "–", "memory shown: {}", v["overview"]);

    // The stream's row: the fixture's codec and resolution, within a few seconds.
    let cells: Vec<&str> = v["streamRow"]["cells"]
        .as_array()
        .expect("stream row")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(cells.get(1), Some(&"live"), "{cells:?}");
    assert!(
        cells.get(3).is_some_and(|c| c.starts_with("H264")),
        "{cells:?}"
    );
    assert_eq!(cells.get(4), Some(&"640×360"), "{cells:?}");
    assert!(
        cells.get(6).is_some_and(|c| c.starts_with("AAC")),
        "{cells:?}"
    );
    assert!(v["streamShownMs"].as_u64().is_some_and(|ms| ms < 10_000));

    // The preview decoded frames (or, in a chromium without H.264, buffered the stream).
    if v["h264"] == true {
        assert!(
            v["preview"]["frames"].as_u64().is_some_and(|f| f > 0),
            "{}",
            v["preview"]
        );
        assert_eq!(v["preview"]["w"], 640);
        assert_eq!(v["preview"]["h"], 360);
    } else {
        eprintln!("this chromium cannot decode H.264: checked that the preview buffered");
        assert!(v["preview"]["buffered"].as_f64().is_some_and(|b| b > 0.0));
    }

    // The HLS preview too, with hls.js.
    if v["h264"] == true {
        assert!(
            v["hlsPreview"]["frames"].as_u64().is_some_and(|f| f > 0),
            "{}",
            v["hlsPreview"]
        );
        assert_eq!(v["hlsPreview"]["w"], 640);
    } else {
        assert!(v["hlsPreview"]["buffered"]
            .as_f64()
            .is_some_and(|b| b > 0.0));
    }
    assert_eq!(v["hlsPreview"]["title"], "live/test over HLS");

    // The kicked player: gone from the console, from the API, and its ffmpeg ended.
    let kicked = v["kickedId"].as_str().expect("kicked id");
    assert_eq!(v["kickedStillListed"], false);
    let (status, reply) = api_get(api, &format!("/api/v1/clients/{kicked}"));
    assert_eq!(
        (status, reply["code"].as_i64()),
        (200, Some(2049)),
        "{reply}"
    );
    let (_, clients) = api_get(api, "/api/v1/clients?count=100");
    let listed = clients["clients"].as_array().expect("clients");
    assert!(listed.iter().all(|c| c["id"] != kicked), "{clients}");
    assert!(
        player.wait_timeout(Duration::from_secs(10)).is_some(),
        "the kicked ffmpeg player is still running"
    );

    // Actions went through the API.
    assert_eq!(v["reload"], "Reloaded.");
    assert!(
        v["dvr"]
            .as_str()
            .is_some_and(|s| s.starts_with("DVR start")),
        "{}",
        v["dvr"]
    );
    let (_, dvrs) = api_get(api, "/api/v1/dvrs");
    assert!(
        dvrs["dvr"]["recorders"].as_array().is_some_and(|r| r
            .iter()
            .any(|r| r["stream"] == "test" && r["running"] == true)),
        "{dvrs}"
    );

    // The other pages.
    assert!(v["player"]["stats"]
        .as_str()
        .is_some_and(|s| s.contains("mpegts.js")));
    assert!(v["publisherCommand"]
        .as_str()
        .is_some_and(|c| c.contains(&format!("rtmp://127.0.0.1:{}/live/test", server.port))));
    let links: Vec<&str> = v["landingLinks"]
        .as_array()
        .expect("links")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        links.contains(&"/console/") && links.contains(&"/players/"),
        "{links:?}"
    );

    // An API that does not answer is said so.
    assert!(
        v["banner"]
            .as_str()
            .is_some_and(|b| b.contains("unreachable")),
        "{}",
        v["banner"]
    );

    // Nothing left the host.
    let requests: Vec<&str> = v["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        requests.len() > 20,
        "too few requests recorded: {requests:?}"
    );
    let outside: Vec<&&str> = requests.iter().filter(|u| !is_loopback(u)).collect();
    assert!(outside.is_empty(), "requests off the host: {outside:?}");

    // Screenshots: every view, none blank.
    for name in [
        "login",
        "overview",
        "streams",
        "clients",
        "actions",
        "player",
        "publisher",
        "landing",
    ] {
        let s = &v["shots"][name];
        let path = s["path"].as_str().unwrap_or("");
        assert!(Path::new(path).is_file(), "screenshot {name} missing: {s}");
        assert!(
            s["colors"].as_u64().is_some_and(|c| c >= 8)
                && s["notBackground"].as_f64().is_some_and(|f| f > 0.02),
            "screenshot {name} looks blank: {s}"
        );
    }

    // Page weight (as sent, compressed where it was) and load time on loopback.
    let console_bytes = sum_bytes(&v["consoleWeight"]);
    let players_bytes = sum_bytes(&v["playersWeight"]);
    let cold_ms = v["coldLoginMs"].as_f64().unwrap_or(f64::NAN);
    let ready_ms = v["readyMs"].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "console page weight: {:.1} KB ({} files) + players {:.1} KB = {:.1} KB; \
         cold load to login form {cold_ms:.0} ms; reload to summary shown {ready_ms:.0} ms",
        console_bytes as f64 / 1024.0,
        v["consoleWeight"].as_array().map_or(0, Vec::len),
        players_bytes as f64 / 1024.0,
        (console_bytes + players_bytes) as f64 / 1024.0,
    );
    assert!(
        console_bytes > 10_000,
        "console assets not measured: {}",
        v["consoleWeight"]
    );
    // Both players were loaded (by the two previews).
    assert_eq!(
        v["playersWeight"].as_array().map_or(0, Vec::len),
        2,
        "{}",
        v["playersWeight"]
    );
    assert!(
        console_bytes + players_bytes < MAX_WEIGHT_BYTES,
        "console weighs {} bytes",
        console_bytes + players_bytes
    );
    // Generous against a loaded 2-core machine; the README gives what an idle one measures.
    assert!(ready_ms < 3000.0, "console ready after {ready_ms} ms");
    eprintln!("screenshots in {}", shots.display());
    eprintln!("test took {:?}", started.elapsed());
    drop(server);
}

/// Without a browser: where the embedded pages are served and where files on disk win, the
/// players' gzip copies decompress to what is sent uncompressed, and the pages on the API
/// port are outside its auth while the API is not.
#[test]
fn embedded_pages_yield_to_files_and_skip_api_auth() {
    let html = unique_dir("web-console-files");
    let http = free_port();
    let api = free_port();
    let body = format!(
        "daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; auth {{ enabled on; username {USER}; password {PASS}; }} }}
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {html}; }}
vhost __defaultVhost__ {{ http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }} }}
",
        html = html.display()
    );
    let _server = Server::start_with("web-console-files", &body);

    // No index.html: the landing page; with one, the file.
    let (status, head, page) = raw_get(http, "/", "");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(String::from_utf8_lossy(&page).contains("/console/"));
    fs::write(html.join("index.html"), "my own page").expect("write index");
    assert_eq!(raw_get(http, "/", "").2, b"my own page");

    // The console, until dir has its own.
    let (status, head, page) = raw_get(http, "/console/", "");
    assert_eq!(status, 200);
    assert!(head.contains("etag: \""), "{head}");
    assert!(String::from_utf8_lossy(&page).contains("sluice console"));
    fs::create_dir_all(html.join("console")).expect("console dir");
    fs::write(html.join("console/index.html"), "srs console").expect("write console");
    assert_eq!(raw_get(http, "/console/", "").2, b"srs console");
    assert_eq!(raw_get(http, "/players/nope.js", "").0, 404);

    // config.json: where the API is, for a console on this port.
    let (_, _, cfg) = raw_get(http, "/console/config.json", "");
    let cfg: Value = serde_json::from_slice(&cfg).expect("config.json");
    assert_eq!(cfg["api"]["port"], api);
    assert_eq!(cfg["api"]["same_origin"], false);
    assert_eq!(cfg["http_port"], http);

    // The players: gzipped when accepted, and the same bytes once decompressed.
    let js = "/console/vendor/mpegts-1.8.2.min.js";
    let (status, head, plain) = raw_get(http, js, "");
    assert_eq!(status, 200);
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(head.contains("immutable"), "{head}");
    let (_, head, gz) = raw_get(http, js, "Accept-Encoding: gzip, br\r\n");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let gz_file = html.join("mpegts.js.gz");
    fs::write(&gz_file, &gz).expect("write gz");
    let unzipped = Command::new("gzip")
        .arg("-dc")
        .arg(&gz_file)
        .output()
        .expect("run gzip");
    assert!(unzipped.status.success());
    assert!(
        unzipped.stdout == plain,
        "gzip copy differs from the plain file"
    );

    // The API port: pages without credentials, the API with them only.
    let (status, _, page) = raw_get(api, "/console/", "");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("sluice console"));
    let (_, _, cfg) = raw_get(api, "/console/config.json", "");
    let cfg: Value = serde_json::from_slice(&cfg).expect("config.json");
    assert_eq!(cfg["api"]["same_origin"], true);
    assert_eq!(raw_get(api, "/players/", "").0, 200);
    assert_eq!(raw_get(api, "/api/v1/summaries", "").0, 401);
    assert_eq!(api_get(api, "/api/v1/summaries").0, 200);
    let _ = fs::remove_dir_all(&html);
}
