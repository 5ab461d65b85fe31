//! The HTTP API and `/metrics` end to end: the real `sluice` binary, real ffmpeg
//! publishers and players, and a tiny HTTP/1.1 client over `std::net::TcpStream`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Time for a publisher to connect and send its sequence headers.
const PUBLISH_SETTLE: Duration = Duration::from_millis(2500);
/// A kicked client's ffmpeg must exit well before the 10 s clip would end.
const KICK_EXIT_TIMEOUT: Duration = Duration::from_secs(4);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One request on a fresh connection (`Connection: close`), whole reply read.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect_timeout(&addr(port), HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to API port {port}: {e}"));
    s.set_read_timeout(Some(HTTP_TIMEOUT)).expect("timeout");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read reply");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn get(port: u16, path: &str) -> Value {
    let r = http(port, "GET", path, &[]);
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    let v = r.json();
    assert_eq!(v["code"], 0, "GET {path}: {v}");
    v
}

/// A server with the API on its own free port; `api_extra` goes inside `http_api { }`.
fn start(tag: &str, api_extra: &str) -> (Server, u16) {
    let api_port = free_port();
    let body = format!(
        "max_connections 100;\ndaemon off;\nsrs_log_tank console;\n\
         http_api {{ enabled on; listen 127.0.0.1:{api_port}; {api_extra} }}\n\
         vhost __defaultVhost__ {{ gop_cache on; }}\n"
    );
    let server = Server::start_with(tag, &body);
    let up = wait_for(Duration::from_secs(5), || {
        TcpStream::connect_timeout(&addr(api_port), Duration::from_millis(200)).ok()
    });
    assert!(
        up.is_some(),
        "API did not listen on {api_port}; log:\n{}",
        server.log()
    );
    (server, api_port)
}

fn assert_base(v: &Value) {
    assert!(
        v["server"].as_str().is_some_and(|s| s.starts_with("vid-")),
        "{v}"
    );
    assert!(v["service"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(
        v["pid"].as_str().is_some_and(|s| s.parse::<u32>().is_ok()),
        "{v}"
    );
}

fn client_ids(v: &Value) -> Vec<String> {
    v["clients"]
        .as_array()
        .expect("clients array")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn api_reports_streams_and_clients_and_kicks_them() {
    require_ffmpeg();
    let (server, api) = start("api", "crossdomain on;");
    let url = server.url("live/test");
    let mut publisher = spawn_publisher(&server, AVC_AAC, &url, "api");
    thread::sleep(Duration::from_millis(500));
    let (mut player, _out) = spawn_player(&server, &url, "api");
    thread::sleep(PUBLISH_SETTLE);

    for path in ["/api/", "/api/v1/"] {
        let v = get(api, path);
        assert_base(&v);
        assert!(v["urls"].is_object(), "{path}: {v}");
    }
    // SRS's fields name the SRS API level (scripts test `major >= 5`); ours sit beside.
    let v = get(api, "/api/v1/versions");
    assert_eq!(v["data"]["version"], "7.0.0", "{v}");
    assert!(v["data"]["major"].as_u64().is_some_and(|m| m >= 5), "{v}");
    assert_eq!(v["data"]["sluice"]["version"], env!("CARGO_PKG_VERSION"));
    // The rest of SRS's index, from /proc and getrusage.
    let index = get(api, "/api/v1/");
    for k in [
        "rusages",
        "self_proc_stats",
        "system_proc_stats",
        "meminfos",
        "features",
        "requests",
        "clusters",
    ] {
        assert!(index["urls"][k].is_string(), "{k} not in {index}");
        let v = get(api, &format!("/api/v1/{k}"));
        assert_base(&v);
        assert!(v["data"].is_object(), "{k}: {v}");
    }
    assert!(index["tests"]["errors"].is_string(), "{index}");
    assert_eq!(get(api, "/api/v1/rusages")["data"]["ok"], true);
    assert!(get(api, "/api/v1/rusages")["data"]["ru_maxrss"]
        .as_i64()
        .is_some_and(|n| n > 0));
    let procs = get(api, "/api/v1/self_proc_stats");
    assert_eq!(procs["data"]["pid"], server.pid(), "{procs}");
    assert_eq!(procs["data"]["ppid"], std::process::id(), "{procs}");
    assert!(procs["data"]["num_threads"].as_u64().unwrap_or(0) >= 1);
    let sys = get(api, "/api/v1/system_proc_stats");
    assert!(sys["data"]["user"].as_u64().unwrap_or(0) > 0, "{sys}");
    let mem = get(api, "/api/v1/meminfos");
    assert!(mem["data"]["MemTotal"].as_u64().unwrap_or(0) > 0, "{mem}");
    assert_eq!(
        get(api, "/api/v1/features")["data"]["features"]["hls"],
        true
    );
    let echo = get(api, "/api/v1/requests?x=1");
    assert_eq!(echo["data"]["METHOD"], "GET", "{echo}");
    assert_eq!(echo["data"]["uri"], "/api/v1/requests?x=1", "{echo}");
    let r = http(api, "GET", "/api/v1/tests/errors", &[]);
    assert_eq!((r.status, r.json()["code"].as_i64()), (200, Some(100)));
    let r = http(api, "GET", "/api/v1/tests/redirects", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/api/v1/tests/errors"));
    let v = get(api, "/api/v1/summaries");
    let data = &v["data"];
    assert_eq!(data["self"]["pid"], server.pid());
    assert!(data["self"]["mem_kbyte"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(
        data["system"]["mem_ram_kbyte"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    assert!(data["system"]["cpus"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert_eq!(data["system"]["conn_srs"], 2, "{v}");

    // Streams: one, with the fixture's codecs.
    let v = get(api, "/api/v1/streams");
    assert_base(&v);
    assert_eq!(v["total"], 1, "{v}");
    let s = &v["streams"][0];
    assert_eq!(
        (s["name"].as_str(), s["app"].as_str()),
        (Some("test"), Some("live"))
    );
    assert_eq!(s["url"], "/live/test");
    assert_eq!(s["clients"], 2, "{s}");
    assert_eq!(s["publish"]["active"], true);
    assert!(s["frames"].as_u64().unwrap_or(0) > 0, "{s}");
    assert!(s["recv_bytes"].as_u64().unwrap_or(0) > 0, "{s}");
    assert!(
        s["tcUrl"].as_str().is_some_and(|t| t.contains("/live")),
        "{s}"
    );
    let video = &s["video"];
    assert_eq!(video["codec"], "H264", "{s}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360))
    );
    let audio = &s["audio"];
    assert_eq!(audio["codec"], "AAC", "{s}");
    assert_eq!(audio["sample_rate"], 44100);
    assert_eq!(audio["channel"], 2);
    let stream_id = s["id"].as_str().expect("stream id").to_owned();
    let one = get(api, &format!("/api/v1/streams/{stream_id}"));
    assert_eq!(one["stream"]["id"], stream_id.as_str());

    // Vhosts: the default one, with our stream and both clients.
    let v = get(api, "/api/v1/vhosts");
    let vh = v["vhosts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "__defaultVhost__"))
        .unwrap_or_else(|| panic!("no default vhost in {v}"))
        .clone();
    assert_eq!(
        (vh["streams"].as_u64(), vh["clients"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(s["vhost"], vh["id"]);
    let vid = vh["id"].as_str().expect("vhost id");
    assert_eq!(
        get(api, &format!("/api/v1/vhosts/{vid}"))["vhost"]["name"],
        "__defaultVhost__"
    );

    // Origin-cluster query: the live stream is here, on our RTMP port.
    let c = get(
        api,
        "/api/v1/clusters?vhost=__defaultVhost__&ip=127.0.0.1&app=live&stream=test",
    );
    assert_eq!(c["data"]["query"]["stream"], "test", "{c}");
    assert_eq!(c["data"]["origin"]["port"], server.port, "{c}");
    assert_eq!(c["data"]["origin"]["ip"], "127.0.0.1", "{c}");
    assert_eq!(
        c["data"]["origin"]["api"],
        format!("127.0.0.1:{api}"),
        "{c}"
    );
    let c = get(api, "/api/v1/clusters?vhost=&app=live&stream=nope");
    assert!(c["data"]["origin"].is_null(), "{c}");

    // Paging as SRS 7.0.128+: without `count`, up to 10 (both of two); `count=1`, one.
    let v = get(api, "/api/v1/clients");
    assert_eq!((v["total"].as_u64(), client_ids(&v).len()), (Some(2), 2));
    let v = get(api, "/api/v1/clients?count=1");
    assert_eq!((v["total"].as_u64(), client_ids(&v).len()), (Some(2), 1));

    // Clients: the publisher and the player.
    let v = get(api, "/api/v1/clients?count=10");
    assert_eq!(v["total"], 2, "{v}");
    let clients = v["clients"].as_array().expect("clients").clone();
    let publisher_json = clients
        .iter()
        .find(|c| c["publish"] == true)
        .unwrap_or_else(|| panic!("no publisher in {v}"))
        .clone();
    assert_eq!(publisher_json["type"], "fmle-publish");
    assert_eq!(publisher_json["stream"], stream_id.as_str());
    assert_eq!(publisher_json["ip"], "127.0.0.1");
    assert_eq!(s["publish"]["cid"], publisher_json["id"]);
    let player_json = clients
        .iter()
        .find(|c| c["publish"] == false)
        .unwrap_or_else(|| panic!("no player in {v}"))
        .clone();
    assert_eq!(player_json["type"], "rtmp-play");
    assert!(
        player_json["send_bytes"].as_u64().unwrap_or(0) > 0,
        "{player_json}"
    );
    let pub_id = publisher_json["id"].as_str().expect("id").to_owned();
    let play_id = player_json["id"].as_str().expect("id").to_owned();
    assert_eq!(
        get(api, &format!("/api/v1/clients/{play_id}"))["client"]["id"],
        play_id.as_str()
    );

    // Paging.
    let p0 = client_ids(&get(api, "/api/v1/clients?start=0&count=1"));
    let p1 = client_ids(&get(api, "/api/v1/clients?start=1&count=1"));
    assert_eq!((p0.len(), p1.len()), (1, 1));
    assert_ne!(p0, p1);
    assert!(client_ids(&get(api, "/api/v1/clients?start=2")).is_empty());
    assert_eq!(
        get(api, "/api/v1/streams?count=1")["streams"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Unknown ids: as SRS, HTTP 200 with the code in the body.
    for (path, code) in [
        ("/api/v1/clients/nope", 2049),
        ("/api/v1/streams/nope", 2048),
        ("/api/v1/vhosts/nope", 2014),
    ] {
        let r = http(api, "GET", path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json()["code"], code, "{path}: {}", r.body);
        assert_base(&r.json());
    }
    let r = http(api, "DELETE", "/api/v1/clients/nope", &[]);
    assert_eq!((r.status, r.json()["code"].as_i64()), (200, Some(2049)));
    let r = http(
        api,
        "GET",
        "/api/v1/clients/nope?callback=cb&method=DELETE",
        &[],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body.starts_with("cb({") && r.body.contains("\"code\":2049"),
        "{}",
        r.body
    );
    let r = http(api, "POST", "/api/v1/clients/nope", &[]);
    assert_eq!(r.status, 405);
    let r = http(api, "GET", "/api/v1/nothing-here", &[]);
    assert_eq!(r.status, 404);

    // Raw API: off by default, SRS's 1061.
    let r = http(api, "GET", "/api/v1/raw?rpc=reload", &[]);
    assert_eq!(r.json()["code"], 1061, "{}", r.body);
    assert_eq!(
        get(api, "/api/v1/raw?rpc=raw")["http_api"]["raw_api"]["allow_reload"],
        false
    );

    // JSONP.
    let r = http(api, "GET", "/api/v1/versions?callback=cb_1", &[]);
    assert!(
        r.body.starts_with("cb_1({") && r.body.ends_with(')'),
        "{}",
        r.body
    );

    // Metrics: every line a comment or `name{labels} value`.
    let r = http(api, "GET", "/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    check_metrics(&r.body);
    assert!(r.body.contains("sluice_streams 1"), "{}", r.body);
    assert!(r.body.contains("sluice_clients 2"), "{}", r.body);
    assert!(
        r.body.contains(
            "sluice_stream_clients{vhost=\"__defaultVhost__\",app=\"live\",stream=\"test\"} 2"
        ),
        "{}",
        r.body
    );

    // Kick the player as SRS's console does (JSONP, a GET with `method=DELETE`): its
    // ffmpeg ends long before the clip would, and it leaves the list.
    let kicked = Instant::now();
    let r = http(
        api,
        "GET",
        &format!("/api/v1/clients/{play_id}?callback=kick_cb&method=DELETE"),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.starts_with("kick_cb({") && r.body.contains("\"code\":0"),
        "{}",
        r.body
    );
    assert!(
        player.wait_timeout(KICK_EXIT_TIMEOUT).is_some(),
        "player still running {:?} after the kick",
        kicked.elapsed()
    );
    let gone = wait_for(Duration::from_secs(3), || {
        (!client_ids(&get(api, "/api/v1/clients?count=10")).contains(&play_id)).then_some(())
    });
    assert!(gone.is_some(), "kicked player still listed");
    assert!(
        publisher.is_running(),
        "kicking the player must not end the publisher"
    );

    // Kick the publisher: the stream ends.
    let r = http(api, "DELETE", &format!("/api/v1/clients/{pub_id}"), &[]);
    assert_eq!(r.json()["code"], 0, "{}", r.body);
    assert!(
        publisher.wait_timeout(KICK_EXIT_TIMEOUT).is_some(),
        "publisher still running after the kick"
    );
    let ended = wait_for(Duration::from_secs(3), || {
        let v = get(api, "/api/v1/streams");
        let active = v["streams"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["publish"]["active"] == true));
        (!active).then_some(())
    });
    assert!(
        ended.is_some(),
        "stream still publishing after the publisher was kicked"
    );
    assert!(client_ids(&get(api, "/api/v1/clients?count=10")).is_empty());
}

fn check_metrics(text: &str) {
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("metric line without value: {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in {line:?}");
            let labels = &series[name_end + 1..series.len() - 1];
            for pair in labels.split("\",") {
                let (k, v) = pair
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label {pair:?} in {line:?}"));
                assert!(
                    k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                    "{line:?}"
                );
                let _ = v;
            }
        }
    }
}

#[test]
fn auth_and_cors() {
    let (_server, api) = start(
        "apiauth",
        "crossdomain on; auth { enabled on; username admin; password s3cret; }",
    );
    let r = http(api, "GET", "/api/v1/versions", &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Basic")));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let wrong = http(
        api,
        "GET",
        "/api/v1/versions",
        &[("Authorization", "Basic YWRtaW46d3Jvbmc=")], // admin:wrong
    );
    assert_eq!(wrong.status, 401);
    let r = http(api, "GET", "/metrics", &[]);
    assert_eq!(r.status, 401);
    let ok = http(
        api,
        "GET",
        "/api/v1/versions",
        &[("Authorization", "Basic YWRtaW46czNjcmV0")], // admin:s3cret
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["code"], 0);
    assert_eq!(ok.header("access-control-allow-origin"), Some("*"));
    // A browser's preflight carries no credentials and must still pass.
    let pre = http(
        api,
        "OPTIONS",
        "/api/v1/clients/x",
        &[
            ("Origin", "http://console.example"),
            ("Access-Control-Request-Method", "DELETE"),
        ],
    );
    assert_eq!(pre.status, 200);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert!(pre
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("DELETE")));
    assert!(pre.header("access-control-allow-headers").is_some());
}

#[test]
fn no_cors_when_crossdomain_off() {
    let (_server, api) = start("apinocors", "crossdomain off;");
    let r = http(api, "GET", "/api/v1/versions", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let pre = http(api, "OPTIONS", "/api/v1/versions", &[]);
    assert_eq!(pre.status, 405);
}
