//! SRS's own web console (srs-console: `trunk/research/console` in SRS, an AngularJS app that
//! talks JSONP) against a live sluice: every API call the console makes is replayed the way it
//! makes it (`?callback=` with the name AngularJS puts there, `&method=DELETE` for a kick,
//! `rpc=raw` for the config page), and every JSON field its pages read is checked to exist
//! with the type the page uses. The list of calls and fields is in docs/srs-compat.md
//! ("SRS's web console"). A real ffmpeg publishes and a real ffmpeg plays, so the streams
//! and clients pages have something to show.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// What AngularJS 1.x writes in place of the console's `JSON_CALLBACK`.
const CALLBACK: &str = "angular.callbacks._0";
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET path` the console's way (JSONP), the JavaScript unwrapped back to JSON.
fn jsonp(port: u16, path: &str) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    let target = format!("{path}{sep}callback=JSON_CALLBACK").replace("JSON_CALLBACK", CALLBACK);
    let mut s = TcpStream::connect_timeout(&addr(port), HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to API port {port}: {e}"));
    s.set_read_timeout(Some(HTTP_TIMEOUT)).expect("timeout");
    // A browser's script tag: no Origin, Accept */*.
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read reply");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GET {target}: a script tag only runs a 200:\n{text}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/javascript"),
        "GET {target}: not JavaScript:\n{head}"
    );
    let body = if head.to_ascii_lowercase().contains("chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    let inner = body
        .strip_prefix(&format!("{CALLBACK}("))
        .and_then(|b| b.strip_suffix(')'))
        .unwrap_or_else(|| panic!("GET {target}: not a call of {CALLBACK}: {body}"));
    serde_json::from_str(inner).unwrap_or_else(|e| panic!("GET {target}: not JSON ({e}): {inner}"))
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

#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Num,
    Bool,
    Obj,
    Arr,
}

/// `v` at the dotted `path` exists and has the JavaScript type the console's page uses.
fn field<'a>(page: &str, v: &'a Value, path: &str, kind: Kind) -> &'a Value {
    let mut at = v;
    for key in path.split('.') {
        at = &at[key];
    }
    let ok = match kind {
        Kind::Str => at.is_string(),
        Kind::Num => at.is_number(),
        Kind::Bool => at.is_boolean(),
        Kind::Obj => at.is_object(),
        Kind::Arr => at.is_array(),
    };
    assert!(
        ok,
        "{page}: `{path}` should be {kind:?}, is {at} in\n{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    );
    at
}

fn fields(page: &str, v: &Value, list: &[(&str, Kind)]) {
    for (path, kind) in list {
        field(page, v, path, *kind);
    }
}

/// What the streams and stream pages read of one stream.
const STREAM_FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::Str),
    ("name", Kind::Str),
    ("vhost", Kind::Str),
    ("app", Kind::Str),
    ("url", Kind::Str),
    ("tcUrl", Kind::Str),
    ("clients", Kind::Num),
    ("publish.active", Kind::Bool),
    ("publish.cid", Kind::Str),
    ("kbps.recv_30s", Kind::Num),
    ("kbps.send_30s", Kind::Num),
    ("video.codec", Kind::Str),
    ("video.profile", Kind::Str),
    ("video.level", Kind::Str),
    ("video.width", Kind::Num),
    ("video.height", Kind::Num),
    ("audio.codec", Kind::Str),
    ("audio.sample_rate", Kind::Num),
    ("audio.channel", Kind::Num),
    ("audio.profile", Kind::Str),
];

/// What the clients and client pages read of one client.
const CLIENT_FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::Str),
    ("ip", Kind::Str),
    ("vhost", Kind::Str),
    ("stream", Kind::Str),
    ("publish", Kind::Bool),
    ("alive", Kind::Num),
    ("url", Kind::Str),
    ("tcUrl", Kind::Str),
    ("type", Kind::Str),
    ("pageUrl", Kind::Str),
    ("swfUrl", Kind::Str),
];

/// What the vhosts and vhost pages read of one vhost.
const VHOST_FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::Str),
    ("name", Kind::Str),
    ("enabled", Kind::Bool),
    ("streams", Kind::Num),
    ("clients", Kind::Num),
    ("kbps.recv_30s", Kind::Num),
    ("kbps.send_30s", Kind::Num),
    ("hls.enabled", Kind::Bool),
];

/// The summary page (and the byte counters its bandwidth graph differentiates).
const SUMMARY_FIELDS: &[(&str, Kind)] = &[
    ("data", Kind::Obj),
    ("data.ok", Kind::Bool),
    ("data.now_ms", Kind::Num),
    ("data.self.version", Kind::Str),
    ("data.self.pid", Kind::Num),
    ("data.self.ppid", Kind::Num),
    ("data.self.srs_uptime", Kind::Num),
    ("data.self.cpu_percent", Kind::Num),
    ("data.self.mem_percent", Kind::Num),
    ("data.self.mem_kbyte", Kind::Num),
    ("data.system.cpus", Kind::Num),
    ("data.system.cpus_online", Kind::Num),
    ("data.system.cpu_percent", Kind::Num),
    ("data.system.uptime", Kind::Num),
    ("data.system.mem_ram_kbyte", Kind::Num),
    ("data.system.mem_ram_percent", Kind::Num),
    ("data.system.load_1m", Kind::Num),
    ("data.system.load_5m", Kind::Num),
    ("data.system.load_15m", Kind::Num),
    ("data.system.conn_srs", Kind::Num),
    ("data.system.conn_sys", Kind::Num),
    ("data.system.conn_sys_et", Kind::Num),
    ("data.system.conn_sys_tw", Kind::Num),
    ("data.system.conn_sys_udp", Kind::Num),
    ("data.system.disk_busy_percent", Kind::Num),
    ("data.system.disk_read_KBps", Kind::Num),
    ("data.system.disk_write_KBps", Kind::Num),
    ("data.system.net_sample_time", Kind::Num),
    ("data.system.net_recv_bytes", Kind::Num),
    ("data.system.net_send_bytes", Kind::Num),
    ("data.system.net_recvi_bytes", Kind::Num),
    ("data.system.net_sendi_bytes", Kind::Num),
    ("data.system.srs_sample_time", Kind::Num),
    ("data.system.srs_recv_bytes", Kind::Num),
    ("data.system.srs_send_bytes", Kind::Num),
];

fn start(tag: &str, api_extra: &str) -> (Server, u16) {
    let api = free_port();
    let body = format!(
        "max_connections 100;\ndaemon off;\nsrs_log_tank console;\n\
         http_api {{ enabled on; listen 127.0.0.1:{api}; {api_extra} }}\n\
         vhost __defaultVhost__ {{ hls {{ enabled off; }} }}\n"
    );
    let server = Server::start_with(tag, &body);
    let up = wait_for(Duration::from_secs(10), || {
        TcpStream::connect_timeout(&addr(api), Duration::from_millis(200)).ok()
    });
    assert!(up.is_some(), "API did not listen; log:\n{}", server.log());
    (server, api)
}

#[test]
fn srs_console_pages_find_every_field_they_read() {
    require_ffmpeg();
    let (server, api) = start("srs-console", "crossdomain on;");
    let url = server.url("live/console");
    let mut publisher = Proc::spawn(
        "ffmpeg publisher",
        {
            let mut c = std::process::Command::new("ffmpeg");
            c.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
                .args(["-stream_loop", "-1", "-i"])
                .arg(fixture(AVC_AAC))
                .args(["-c", "copy", "-f", "flv"])
                .arg(&url);
            c
        },
        server.tmp("publisher.log"),
    );
    // The stream is listed with its codecs once the sequence headers arrived.
    let streams = wait_for(Duration::from_secs(20), || {
        let v = jsonp(api, "/api/v1/streams/");
        let s = v["streams"].as_array()?.first()?.clone();
        (s["video"].is_object() && s["audio"].is_object() && s["publish"]["active"] == true)
            .then_some(v)
    })
    .unwrap_or_else(|| panic!("no published stream with codecs; log:\n{}", server.log()));
    let (mut player, _) = spawn_player(&server, &url, "console");

    // The connect page: versions.
    let v = jsonp(api, "/api/v1/versions");
    field("connect", &v, "data.version", Kind::Str);

    // The summary page.
    let v = jsonp(api, "/api/v1/summaries");
    fields("summaries", &v, SUMMARY_FIELDS);

    // The vhosts page, then one vhost by the id the list gave.
    let v = jsonp(api, "/api/v1/vhosts/");
    let vhosts = field("vhosts", &v, "vhosts", Kind::Arr)
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!vhosts.is_empty(), "no vhost: {v}");
    for vh in &vhosts {
        fields("vhosts", vh, VHOST_FIELDS);
    }
    let vid = vhosts[0]["id"].as_str().unwrap_or_default().to_string();
    let v = jsonp(api, &format!("/api/v1/vhosts/{vid}"));
    fields("vhost", &v["vhost"], VHOST_FIELDS);

    // The streams page: each stream's `vhost` names a vhost id (the page looks its name up).
    let list = field("streams", &streams, "streams", Kind::Arr)
        .as_array()
        .cloned()
        .unwrap_or_default();
    let stream = &list[0];
    fields("streams", stream, STREAM_FIELDS);
    assert!(
        vhosts.iter().any(|vh| vh["id"] == stream["vhost"]),
        "stream.vhost {} is no vhost id of {vhosts:?}",
        stream["vhost"]
    );
    assert_eq!(stream["name"], "console", "{stream}");
    assert_eq!(stream["app"], "live", "{stream}");
    assert_eq!(stream["video"]["codec"], "H264", "{stream}");
    assert_eq!(stream["audio"]["codec"], "AAC", "{stream}");
    assert_eq!(stream["video"]["width"], 640, "{stream}");
    let sid = stream["id"].as_str().unwrap_or_default().to_string();
    let v = jsonp(api, &format!("/api/v1/streams/{sid}"));
    fields("stream", &v["stream"], STREAM_FIELDS);

    // The clients page (the publisher and the player), then one client by id.
    let clients = wait_for(Duration::from_secs(10), || {
        let v = jsonp(api, "/api/v1/clients/");
        let list = v["clients"].as_array()?.clone();
        // Both past their handshake: a client still connecting has no stream yet.
        let named = list
            .iter()
            .filter(|c| c["stream"].as_str().is_some_and(|s| !s.is_empty()));
        (named.count() >= 2).then_some(list)
    })
    .unwrap_or_else(|| panic!("publisher and player not both listed"));
    for c in &clients {
        fields("clients", c, CLIENT_FIELDS);
        assert_eq!(
            c["stream"].as_str(),
            Some(sid.as_str()),
            "client.stream: {c}"
        );
    }
    assert!(
        clients.iter().any(|c| c["publish"] == true)
            && clients.iter().any(|c| c["publish"] == false),
        "{clients:?}"
    );
    let player_id = clients
        .iter()
        .find(|c| c["publish"] == false)
        .and_then(|c| c["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let v = jsonp(api, &format!("/api/v1/clients/{player_id}"));
    fields("client", &v["client"], CLIENT_FIELDS);

    // The config page and the streams page ask the raw API whether it is on: the console reads
    // `http_api.enabled` and `http_api.raw_api.enabled` (absent means off) or a code 1061.
    let v = jsonp(api, "/api/v1/raw?rpc=raw");
    assert!(
        v["code"] == 1061 || v["http_api"]["enabled"].is_boolean(),
        "raw: {v}"
    );

    // Kick the player the console's way (JSONP `method=DELETE`): its ffmpeg ends.
    let v = jsonp(api, &format!("/api/v1/clients/{player_id}?method=DELETE"));
    assert_eq!(v["code"], 0, "kick player: {v}");
    assert!(
        player.wait_timeout(Duration::from_secs(10)).is_some(),
        "the kicked player did not end"
    );
    // The streams page's Kickoff: DELETE of stream.publish.cid ends the publisher.
    let cid = stream["publish"]["cid"].as_str().unwrap_or_default();
    let v = jsonp(api, &format!("/api/v1/clients/{cid}?method=DELETE"));
    assert_eq!(v["code"], 0, "kick publisher: {v}");
    let gone = wait_for(Duration::from_secs(10), || {
        let v = jsonp(api, "/api/v1/streams/");
        let active = v["streams"]
            .as_array()?
            .iter()
            .any(|s| s["publish"]["active"] == true && s["id"] == sid.as_str());
        (!active).then_some(())
    });
    assert!(gone.is_some(), "the stream still publishes after its kick");
    publisher.kill();
    drop(server);
}

/// The streams page's "Preview" opens `srs_player.html` on the HTTP server (port 8080 by
/// default): sluice sends it on to its own player with the stream's HTTP-FLV URL.
#[test]
fn srs_console_preview_link_opens_our_player() {
    let http = free_port();
    let root = unique_dir("srs-console-preview");
    let body = format!(
        "max_connections 100;\ndaemon off;\nsrs_log_tank console;\n\
         http_server {{ enabled on; listen 127.0.0.1:{http}; dir {}; }}\n\
         vhost __defaultVhost__ {{ }}\n",
        root.display()
    );
    let server = Server::start_with("srs-console-preview", &body);
    let up = wait_for(Duration::from_secs(10), || {
        TcpStream::connect_timeout(&addr(http), Duration::from_millis(200)).ok()
    });
    assert!(
        up.is_some(),
        "HTTP server did not listen; log:\n{}",
        server.log()
    );
    let mut s = TcpStream::connect(addr(http)).expect("connect");
    s.set_read_timeout(Some(HTTP_TIMEOUT)).expect("timeout");
    let path = "/players/srs_player.html?vhost=__defaultVhost__&app=live&stream=cam.flv&server=127.0.0.1&port=8080&autostart=true&schema=http";
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    assert!(raw.starts_with("HTTP/1.1 302"), "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains("location: /players/?url=http%3a%2f%2f127.0.0.1%3a8080%2flive%2fcam.flv"),
        "{raw}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn srs_console_config_page_reads_the_raw_api_switch() {
    let (_server, api) = start(
        "srs-console-raw",
        "raw_api { enabled on; allow_reload on; }",
    );
    let v = jsonp(api, "/api/v1/raw?rpc=raw");
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["http_api"]["enabled"], true, "{v}");
    assert_eq!(v["http_api"]["raw_api"]["enabled"], true, "{v}");
}
