//! HTTP hooks, refer and allow/deny rules end to end: the real `sluice` binary, real ffmpeg
//! publishers and players (and a raw RTMP client where ffmpeg cannot send a pageUrl), and a
//! small HTTP/1.1 hook server run by the test that records every request and answers by a
//! policy written into the URL path and the request.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use amf::Amf0Value;
use common::*;
use rtmp::message::{Command as RtmpCommand, Message};
use serde_json::Value;

/// Hook time-out used by the test configs: short, so denials by time-out are quick.
const HOOK_TIMEOUT_MS: u64 = 1000;

// ------------------------------------------------------------------------------ hook server

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    body: Value,
    at: Instant,
}

/// Answers, by path: `/hang` never answers (until the test ends), `/deny` says
/// `{"code": 1}`, `/dupcode` says `{"code":1,"code":0}`, `/json...` says `{"code": 0}`, anything else says `0`; but any request whose
/// `param` or `stream` contains "deny" gets HTTP 403.
struct HookServer {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
}

impl HookServer {
    fn start() -> HookServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind hook server");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let (h, s) = (h.clone(), s.clone());
                thread::spawn(move || serve_hook(conn, &h, &s));
            }
        });
        HookServer { port, hits, stop }
    }

    /// The same server behind TLS, with the test PKI's certificate (blocking rustls).
    fn start_tls(pki: &common::pki::Pki) -> HookServer {
        use rustls_pki_types::pem::PemObject;
        let chain = rustls_pki_types::CertificateDer::pem_file_iter(&pki.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&pki.key).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
        );
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind hook server");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(tls) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let (h, s) = (h.clone(), s.clone());
                thread::spawn(move || serve_hook(rustls::StreamOwned::new(tls, conn), &h, &s));
            }
        });
        HookServer { port, hits, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn of(&self, action: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.body["action"] == action)
            .collect()
    }

    /// Waits for a request with that action whose body satisfies `pred`.
    fn wait(&self, action: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Hit {
        wait_for(timeout, || {
            self.of(action).into_iter().find(|h| pred(&h.body))
        })
        .unwrap_or_else(|| {
            panic!(
                "no {action} hook call within {timeout:?}; calls so far: {:#?}",
                self.hits()
            )
        })
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

fn serve_hook(mut conn: impl Read + Write, hits: &Mutex<Vec<Hit>>, stop: &AtomicBool) {
    let Some((path, body)) = read_request(&mut conn) else {
        return;
    };
    hits.lock().unwrap_or_else(|e| e.into_inner()).push(Hit {
        path: path.clone(),
        body: body.clone(),
        at: Instant::now(),
    });
    if path.starts_with("/hang") {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
        }
        return;
    }
    let wants_deny = |k: &str| body[k].as_str().is_some_and(|s| s.contains("deny"));
    let (status, text) = if wants_deny("param") || wants_deny("stream") {
        ("403 Forbidden", "denied".to_string())
    } else if path.starts_with("/deny") {
        ("200 OK", r#"{"code": 1}"#.to_string())
    } else if path.starts_with("/dupcode") {
        ("200 OK", r#"{"code":1,"code":0}"#.to_string())
    } else if path.starts_with("/json") {
        ("200 OK", r#"{"code": 0, "data": null}"#.to_string())
    } else {
        ("200 OK", "0".to_string())
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = conn.write_all(resp.as_bytes());
}

// ------------------------------------------------------------------------------ clients

/// Publishes the first `secs` seconds of the A/V clip in real time.
fn publish(server: &Server, url: &str, secs: u32, tag: &str) -> Proc {
    let t = secs.to_string();
    spawn_publisher_args(server, AVC_AAC, url, tag, &["-t", &t])
}

/// Plays `secs` seconds of `url` (with a pageUrl when given) into a file.
fn play(
    server: &Server,
    url: &str,
    page_url: Option<&str>,
    secs: u32,
    tag: &str,
) -> (Proc, std::path::PathBuf) {
    let out = server.tmp(&format!("player-{tag}.flv"));
    let t = secs.to_string();
    let mut args = vec!["-rw_timeout", "8000000"];
    if let Some(p) = page_url {
        args.extend_from_slice(&["-rtmp_pageurl", p]);
    }
    let out_s = out.to_str().expect("utf-8").to_string();
    args.extend_from_slice(&["-i", url, "-t", &t, "-c", "copy", "-f", "flv", "-y", &out_s]);
    let proc = Proc::spawn(
        &format!("ffmpeg player {tag}"),
        ffmpeg(&args),
        server.tmp(&format!("player-{tag}.log")),
    );
    (proc, out)
}

/// ffmpeg must fail (non-zero exit) within `within`.
fn expect_failure(p: &mut Proc, within: Duration) -> Duration {
    let started = Instant::now();
    match p.wait_timeout(within) {
        Some(s) if !s.success() => started.elapsed(),
        Some(s) => panic!(
            "{} succeeded ({s}) but should have been refused:\n{}",
            p.name,
            p.output()
        ),
        None => panic!(
            "{} still running after {within:?}; it should have been refused",
            p.name
        ),
    }
}

/// Media messages a raw RTMP player of `app`/`stream` receives within `window`.
fn raw_play_count(port: u16, app: &str, stream: &str, window: Duration) -> (usize, Vec<String>) {
    let mut c = RawClient::play(port, app, stream, None).expect("raw play");
    let deadline = Instant::now() + window;
    let (mut media, mut codes) = (0, Vec::new());
    loop {
        match c.next(deadline) {
            Ok(Some(r)) => {
                if let Some(code) = r.status_code() {
                    codes.push(code);
                }
                if matches!(r.message, Message::Audio(_) | Message::Video(_)) {
                    media += 1;
                }
            }
            Ok(None) | Err(_) => return (media, codes),
        }
    }
}

/// Connects with a pageUrl and publishes `stream`; returns the publish status code (or the
/// connect error).
fn raw_publish_status(port: u16, app: &str, stream: &str, page_url: &str) -> String {
    let mut c = RawClient::handshake(port, None).expect("handshake");
    let deadline = Instant::now() + Duration::from_secs(8);
    let connect = Amf0Value::object([
        ("app", Amf0Value::string(app)),
        ("flashVer", Amf0Value::string("FMLE/3.0")),
        (
            "tcUrl",
            Amf0Value::string(format!("rtmp://127.0.0.1:{port}/{app}")),
        ),
        ("pageUrl", Amf0Value::string(page_url)),
    ]);
    let cmd = |name: &str, txn: f64, obj: Amf0Value, args: Vec<Amf0Value>| {
        Message::Command(RtmpCommand::new(name, txn, obj, args))
    };
    c.send(3, 0, &cmd("connect", 1.0, connect, vec![]))
        .expect("send connect");
    c.send(3, 0, &cmd("createStream", 2.0, Amf0Value::Null, vec![]))
        .expect("send createStream");
    let mut sid = None;
    loop {
        let Ok(Some(r)) = c.next(deadline) else {
            return "closed".into();
        };
        if let Message::Command(m) = &r.message {
            if m.name == "_error" {
                return "NetConnection.Connect.Rejected".into();
            }
            if m.name == "_result" && m.transaction_id == 2.0 {
                sid = m.args.first().and_then(Amf0Value::as_number);
            }
        }
        if let Some(s) = sid {
            let publish = cmd(
                "publish",
                3.0,
                Amf0Value::Null,
                vec![Amf0Value::string(stream), Amf0Value::string("live")],
            );
            c.send(8, s as u32, &publish).expect("send publish");
            break;
        }
    }
    loop {
        match c.next(deadline) {
            Ok(Some(r)) => {
                if let Some(code) = r.status_code() {
                    return code;
                }
            }
            _ => return "closed".into(),
        }
    }
}

fn hooks_block(h: &HookServer, extra: &str) -> String {
    format!(
        "http_hooks {{ enabled on; timeout_ms {HOOK_TIMEOUT_MS};
            on_connect {c}; on_close {cl}; on_publish {p}; on_unpublish {u};
            on_play {pl}; on_stop {s}; {extra} }}",
        c = h.url("/connect"),
        cl = h.url("/close"),
        p = h.url("/json/publish"),
        u = h.url("/unpublish"),
        pl = h.url("/play"),
        s = h.url("/stop"),
    )
}

fn base_config(vhosts: &str) -> String {
    format!("max_connections 100;\ndaemon off;\nsrs_log_tank console;\n{vhosts}\n")
}

fn assert_common(body: &Value, action: &str) {
    for k in ["server_id", "service_id", "client_id", "ip", "vhost", "app"] {
        assert!(body[k].is_string(), "{action}: no string {k} in {body}");
    }
    assert_eq!(body["action"], action);
    assert_eq!(body["ip"], "127.0.0.1");
    assert!(body["server_id"]
        .as_str()
        .is_some_and(|s| s.starts_with("vid-")));
}

fn assert_stream_fields(body: &Value, action: &str, stream: &str, param: &str) {
    assert_common(body, action);
    assert_eq!(body["stream"], stream, "{action}: {body}");
    assert_eq!(body["param"], param, "{action}: {body}");
    assert_eq!(
        body["stream_url"],
        format!("/live/{stream}"),
        "{action}: {body}"
    );
    assert!(
        body["tcUrl"]
            .as_str()
            .is_some_and(|t| t.starts_with("rtmp://127.0.0.1:")),
        "{action}: {body}"
    );
}

// ------------------------------------------------------------------------------ tests

#[test]
fn allowed_publish_and_play_send_every_hook_with_srs_fields() {
    require_ffmpeg();
    let hooks = HookServer::start();
    let server = Server::start_with(
        "hooks-all",
        &base_config(&format!(
            "vhost __defaultVhost__ {{ {} }}",
            hooks_block(&hooks, "")
        )),
    );
    let url = server.url("live/s?token=secret42");
    let mut publisher = publish(&server, &url, 6, "all");
    let on_publish = hooks.wait("on_publish", Duration::from_secs(10), |_| true);
    assert_stream_fields(&on_publish.body, "on_publish", "s", "?token=secret42");
    assert_eq!(on_publish.path, "/json/publish");
    let pub_cid = on_publish.body["client_id"]
        .as_str()
        .expect("cid")
        .to_string();
    let on_connect = hooks.wait("on_connect", Duration::from_secs(1), |b| {
        b["client_id"] == pub_cid.as_str()
    });
    assert_common(&on_connect.body, "on_connect");
    assert_eq!(on_connect.body["vhost"], "__defaultVhost__");
    assert!(on_connect.body["tcUrl"].is_string() && on_connect.body["pageUrl"].is_string());
    // As SRS 3+: on_connect waits for the stream's name, so token checks see the token.
    assert_eq!(on_connect.body["stream"], "s", "{}", on_connect.body);
    assert_eq!(
        on_connect.body["param"], "?token=secret42",
        "{}",
        on_connect.body
    );
    assert!(on_connect.at <= on_publish.at);
    // The stream exists before on_publish, so its id is there (SRS 5+).
    assert!(
        on_publish.body["stream_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("vid-")),
        "{}",
        on_publish.body
    );

    thread::sleep(Duration::from_millis(1500));
    let (mut player, out) = play(
        &server,
        &server.url("live/s?token=viewer"),
        Some("http://page.test/index.html"),
        2,
        "all",
    );
    player.expect_success(Duration::from_secs(15));
    assert!(flv_stats(&out).video_frames > 10, "player got too little");
    let on_play = hooks.wait("on_play", Duration::from_secs(1), |_| true);
    assert_stream_fields(&on_play.body, "on_play", "s", "?token=viewer");
    assert_eq!(on_play.body["pageUrl"], "http://page.test/index.html");
    assert!(
        on_play.body["stream_id"].is_string(),
        "live stream has an id: {}",
        on_play.body
    );
    let play_cid = on_play.body["client_id"].clone();
    let on_stop = hooks.wait("on_stop", Duration::from_secs(10), |b| {
        b["client_id"] == play_cid
    });
    assert_stream_fields(&on_stop.body, "on_stop", "s", "?token=viewer");
    let close = hooks.wait("on_close", Duration::from_secs(10), |b| {
        b["client_id"] == play_cid
    });
    assert_common(&close.body, "on_close");
    assert!(
        close.body["send_bytes"]
            .as_u64()
            .is_some_and(|n| n > 10_000),
        "{}",
        close.body
    );
    assert!(close.body["recv_bytes"].as_u64().is_some_and(|n| n > 0));

    publisher.expect_success(Duration::from_secs(20));
    let unpub = hooks.wait("on_unpublish", Duration::from_secs(10), |b| {
        b["client_id"] == pub_cid.as_str()
    });
    assert_stream_fields(&unpub.body, "on_unpublish", "s", "?token=secret42");
    let close = hooks.wait("on_close", Duration::from_secs(10), |b| {
        b["client_id"] == pub_cid.as_str()
    });
    assert!(
        close.body["recv_bytes"]
            .as_u64()
            .is_some_and(|n| n > 100_000),
        "{}",
        close.body
    );
    assert!(unpub.at <= close.at, "on_unpublish comes before on_close");
    // The token reaches the hooks, never the log.
    assert!(
        !server.log().contains("secret42"),
        "token leaked into the log"
    );
}

#[test]
fn denied_publish_and_play_get_error_statuses() {
    require_ffmpeg();
    let hooks = HookServer::start();
    let server = Server::start_with(
        "hooks-deny",
        &base_config(&format!(
            "vhost __defaultVhost__ {{ {} }}",
            hooks_block(&hooks, "")
        )),
    );
    // Publish refused by the hook (HTTP 403): ffmpeg fails, nothing is live.
    let mut refused = publish(&server, &server.url("live/p?deny=1"), 5, "deny-pub");
    expect_failure(&mut refused, Duration::from_secs(10));
    // The hook server refuses any body whose param says deny: on_connect, which SRS
    // sends with the stream's query, is the first to see it.
    assert!(
        refused.output().contains("denied by the on_connect hook"),
        "ffmpeg was not told why: {}",
        refused.output()
    );
    assert!(
        hooks
            .of("on_publish")
            .iter()
            .all(|h| h.body["stream"] != "p"),
        "on_publish after a refused on_connect"
    );
    let (media, _) = raw_play_count(server.port, "live", "p", Duration::from_secs(2));
    assert_eq!(media, 0, "a refused publisher must not feed players");
    assert!(hooks
        .of("on_unpublish")
        .iter()
        .all(|h| h.body["stream"] != "p"));

    // Play refused, while the same stream plays for others.
    let mut publisher = publish(&server, &server.url("live/ok"), 8, "deny-ok");
    hooks.wait("on_publish", Duration::from_secs(10), |b| {
        b["stream"] == "ok"
    });
    thread::sleep(Duration::from_millis(1000));
    let (mut denied, _) = play(
        &server,
        &server.url("live/ok?deny=yes"),
        None,
        2,
        "deny-play",
    );
    expect_failure(&mut denied, Duration::from_secs(10));
    assert!(hooks
        .of("on_stop")
        .iter()
        .all(|h| h.body["param"] != "?deny=yes"));
    let (mut allowed, out) = play(&server, &server.url("live/ok"), None, 2, "allow-play");
    allowed.expect_success(Duration::from_secs(15));
    assert!(flv_stats(&out).video_frames > 10);
    publisher.kill();
}

#[test]
fn hanging_or_unreachable_hook_denies_in_time_and_others_keep_flowing() {
    require_ffmpeg();
    let hooks = HookServer::start();
    let dead_port = free_port();
    let conf = base_config(&format!(
        "vhost __defaultVhost__ {{ }}
         vhost hang.test {{ http_hooks {{ enabled on; timeout_ms {HOOK_TIMEOUT_MS}; on_publish {hang}; }} }}
         vhost down.test {{ http_hooks {{ enabled on; timeout_ms {HOOK_TIMEOUT_MS}; on_publish http://127.0.0.1:{dead_port}/x; }} }}",
        hang = hooks.url("/hang"),
    ));
    let server = Server::start_with("hooks-hang", &conf);
    let mut flowing = publish(&server, &server.url("live/a"), 10, "flow");
    thread::sleep(Duration::from_millis(1500));
    let port = server.port;
    let watcher = thread::spawn(move || raw_play_count(port, "live", "a", Duration::from_secs(4)));
    thread::sleep(Duration::from_millis(300));

    let mut hang = publish(&server, &server.url("live?vhost=hang.test/h"), 5, "hang");
    let mut down = publish(&server, &server.url("live?vhost=down.test/d"), 5, "down");
    let took = expect_failure(&mut hang, Duration::from_secs(8));
    assert!(
        took < Duration::from_secs(5),
        "hanging hook took {took:?} to deny"
    );
    let took = expect_failure(&mut down, Duration::from_secs(8));
    assert!(
        took < Duration::from_secs(5),
        "unreachable hook took {took:?} to deny"
    );
    assert!(hooks.hits().iter().any(|h| h.path == "/hang"));
    assert!(
        server.log().contains("no answer within 1000 ms"),
        "time-out not logged"
    );

    let (media, codes) = watcher.join().expect("watcher");
    assert!(
        media > 100,
        "the other stream stalled while hooks hung: {media} messages, statuses {codes:?}"
    );
    flowing.kill();
}

#[test]
fn several_urls_are_called_in_order_and_the_first_refusal_stops() {
    require_ffmpeg();
    let hooks = HookServer::start();
    let conf = base_config(&format!(
        "vhost __defaultVhost__ {{ }}
         vhost multi.test {{ http_hooks {{ enabled on; on_publish {a} {b} {c}; }} }}
         vhost stop.test {{ http_hooks {{ enabled on; on_publish {a} {deny} {c}; }} }}",
        a = hooks.url("/first"),
        b = hooks.url("/json/second"),
        c = hooks.url("/third"),
        deny = hooks.url("/deny"),
    ));
    let server = Server::start_with("hooks-multi", &conf);
    let mut ok = publish(&server, &server.url("live?vhost=multi.test/m"), 3, "multi");
    ok.expect_success(Duration::from_secs(15));
    let paths: Vec<String> = hooks.hits().iter().map(|h| h.path.clone()).collect();
    assert_eq!(paths, ["/first", "/json/second", "/third"]);
    let bodies: Vec<Value> = hooks.hits().iter().map(|h| h.body.clone()).collect();
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "same body to every URL"
    );
    assert_eq!(bodies[0]["vhost"], "multi.test");
    assert_eq!(bodies[0]["stream_url"], "multi.test/live/m");

    let mut refused = publish(&server, &server.url("live?vhost=stop.test/m"), 3, "stop");
    expect_failure(&mut refused, Duration::from_secs(10));
    let paths: Vec<String> = hooks
        .hits()
        .iter()
        .skip(3)
        .map(|h| h.path.clone())
        .collect();
    assert_eq!(paths, ["/first", "/deny"], "a refusal stops the chain");
}

/// Issue 24 item 9: a reply with `code` twice, a deny first, used to be read as its last
/// duplicate (an allow). It must refuse; the same vhost with a plain `{"code": 0}` publishes.
#[test]
fn hook_reply_with_duplicate_code_denies() {
    let hooks = HookServer::start();
    let conf = base_config(&format!(
        "vhost __defaultVhost__ {{ http_hooks {{ enabled on; on_publish {dup}; }} }}
         vhost ok.test {{ http_hooks {{ enabled on; on_publish {ok}; }} }}",
        dup = hooks.url("/dupcode"),
        ok = hooks.url("/json/ok"),
    ));
    let server = Server::start_with("hooks-dupcode", &conf);
    let status = raw_publish_status(server.port, "live", "dup", "");
    assert_ne!(status, "NetStream.Publish.Start", "duplicate code allowed");
    hooks.wait("on_publish", Duration::from_secs(5), |b| {
        b["stream"] == "dup"
    });
    let status = raw_publish_status(server.port, "live?vhost=ok.test", "fine", "");
    assert_eq!(status, "NetStream.Publish.Start");
}

#[test]
fn refer_checks_page_url_like_srs() {
    require_ffmpeg();
    let conf = base_config(
        "vhost __defaultVhost__ { }
         vhost refer.test { refer { enabled on; publish pub.test; play page.test; } }
         vhost all.test { refer { enabled on; all page.test; } }",
    );
    let server = Server::start_with("hooks-refer", &conf);
    // ffmpeg sends no pageUrl when publishing: refused by the publish list.
    let mut p = publish(
        &server,
        &server.url("live?vhost=refer.test/r"),
        3,
        "refer-ffmpeg",
    );
    expect_failure(&mut p, Duration::from_secs(10));
    // A client whose page is on the list may publish; a look-alike may not.
    assert_eq!(
        raw_publish_status(
            server.port,
            "live?vhost=refer.test",
            "x",
            "http://evil.test/pub.test/"
        ),
        "NetStream.Publish.Denied"
    );
    let mut publisher = publish(&server, &server.url("live/r"), 8, "refer-src");
    assert_eq!(
        raw_publish_status(
            server.port,
            "live?vhost=refer.test",
            "r2",
            "http://www.pub.test:8080/x"
        ),
        "NetStream.Publish.Start"
    );
    // Play: pageUrl on the list plays, another domain is refused.
    thread::sleep(Duration::from_millis(1500));
    let mut blocked = play(
        &server,
        &server.url("live?vhost=refer.test/r2"),
        Some("http://other.test/"),
        2,
        "refer-bad",
    )
    .0;
    expect_failure(&mut blocked, Duration::from_secs(10));
    // refer.all applies at connect.
    let mut at_connect = play(
        &server,
        &server.url("live?vhost=all.test/r"),
        Some("http://x.test/"),
        2,
        "refer-conn",
    )
    .0;
    expect_failure(&mut at_connect, Duration::from_secs(10));
    assert_eq!(
        raw_publish_status(server.port, "live?vhost=all.test", "y", "http://x.test/"),
        "NetConnection.Connect.Rejected"
    );
    // __defaultVhost__ without refer: anything goes.
    let (mut fine, out) = play(
        &server,
        &server.url("live/r"),
        Some("http://other.test/"),
        2,
        "refer-ok",
    );
    fine.expect_success(Duration::from_secs(15));
    assert!(flv_stats(&out).video_frames > 10);
    publisher.kill();
}

#[test]
fn allow_and_deny_rules_follow_srs_order() {
    require_ffmpeg();
    let conf = base_config(
        "vhost __defaultVhost__ { }
         vhost nopub.test { security { enabled on; deny publish 127.0.0.0/8; } }
         vhost onlyv4.test { security { enabled on; allow publish 127.0.0.1; allow play 10.0.0.0/8; allow play ::1; } }
         vhost empty.test { security { enabled on; } }
         vhost denywins.test { security { enabled on; allow play all; deny play 127.0.0.1; allow publish all; } }",
    );
    let server = Server::start_with("hooks-security", &conf);
    let mut p = publish(
        &server,
        &server.url("live?vhost=nopub.test/s"),
        3,
        "sec-nopub",
    );
    expect_failure(&mut p, Duration::from_secs(10));
    assert!(server
        .log()
        .contains("denied by rule \"deny publish 127.0.0.0/8\""));
    let mut p = publish(
        &server,
        &server.url("live?vhost=empty.test/s"),
        3,
        "sec-empty",
    );
    expect_failure(&mut p, Duration::from_secs(10));

    let mut ok = publish(
        &server,
        &server.url("live?vhost=onlyv4.test/s"),
        8,
        "sec-v4",
    );
    let mut ok2 = publish(
        &server,
        &server.url("live?vhost=denywins.test/s"),
        8,
        "sec-dw",
    );
    thread::sleep(Duration::from_millis(1500));
    assert!(
        ok.is_running() && ok2.is_running(),
        "allowed publishers were refused"
    );
    let mut denied = play(
        &server,
        &server.url("live?vhost=onlyv4.test/s"),
        None,
        2,
        "sec-play-v4",
    )
    .0;
    expect_failure(&mut denied, Duration::from_secs(10));
    let mut denied = play(
        &server,
        &server.url("live?vhost=denywins.test/s"),
        None,
        2,
        "sec-play-dw",
    )
    .0;
    expect_failure(&mut denied, Duration::from_secs(10));
    // Only deny rules for publish: play is open.
    let mut feed = publish(&server, &server.url("live/open"), 8, "sec-open");
    thread::sleep(Duration::from_millis(1000));
    let (mut player, out) = play(&server, &server.url("live/open"), None, 2, "sec-open-play");
    player.expect_success(Duration::from_secs(15));
    assert!(flv_stats(&out).video_frames > 10);
    for p in [&mut ok, &mut ok2, &mut feed] {
        p.kill();
    }
}

#[test]
fn dvr_and_hls_hooks_send_srs_fields() {
    use sluice::config::Config;
    use sluice::context::Context;
    use sluice::hub::StreamKey;
    let hooks = HookServer::start();
    let conf = format!(
        "vhost v.test {{ http_hooks {{ enabled on; on_dvr {d}; on_hls {h}; on_hls_notify {n}; }} }}\n",
        d = hooks.url("/dvr"),
        h = hooks.url("/json/hls"),
        n = hooks.url("/notify/[app]/[stream]/[ts_url]"),
    );
    let cfg = Config::parse(&conf, "t.conf").expect("config");
    let vhost = cfg.vhost("v.test").expect("vhost").clone();
    let ctx = Context::new(cfg);
    let key = StreamKey {
        vhost: "v.test".into(),
        app: "live".into(),
        stream: "s".into(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let publisher = sluice::hooks::HookRequest {
            client_id: "abcd1234".into(),
            ip: "192.0.2.7".into(),
            vhost: "v.test".into(),
            app: "live".into(),
            stream: "s".into(),
            param: "?token=t1".into(),
            tc_url: "rtmp://v.test/live".into(),
            page_url: String::new(),
        };
        sluice::hooks::on_dvr(&ctx, &vhost, &publisher, "vid-9", "./objs/live/s.flv")
            .await
            .expect("on_dvr allowed");
        sluice::hooks::on_hls(
            &ctx,
            &vhost,
            "abcd1234",
            &key,
            "./objs/live/s-7.ts",
            "s-7.ts",
            "./objs/live/s.m3u8",
            "live/s.m3u8",
            7,
            10.5,
        )
        .await
        .expect("on_hls allowed");
        sluice::hooks::on_hls_notify(&ctx, &vhost, "abcd1234", &key, "s-7.ts", 64).await;
    });
    let hits = hooks.hits();
    assert_eq!(hits.len(), 3, "{hits:#?}");
    let dvr = &hits[0].body;
    assert_eq!(dvr["action"], "on_dvr");
    for k in [
        "server_id",
        "service_id",
        "ip",
        "tcUrl",
        "param",
        "cwd",
        "stream_url",
    ] {
        assert!(dvr[k].is_string(), "on_dvr: {k} in {dvr}");
    }
    assert_eq!(dvr["file"], "./objs/live/s.flv");
    assert_eq!(dvr["client_id"], "abcd1234");
    assert_eq!(
        (&dvr["ip"], &dvr["tcUrl"], &dvr["param"], &dvr["stream_id"]),
        (
            &Value::from("192.0.2.7"),
            &Value::from("rtmp://v.test/live"),
            &Value::from("?token=t1"),
            &Value::from("vid-9")
        )
    );
    assert_eq!(dvr["stream_url"], "v.test/live/s");
    let hls = &hits[1].body;
    assert_eq!(hls["action"], "on_hls");
    assert_eq!(hls["url"], "live/s-7.ts");
    assert_eq!(hls["m3u8"], "./objs/live/s.m3u8");
    assert_eq!(hls["m3u8_url"], "live/s.m3u8");
    assert_eq!(hls["seq_no"], 7);
    assert_eq!(hls["duration"], 10.5);
    assert_eq!(hits[2].path, "/notify/live/s/s-7.ts");
}

#[test]
fn bad_rules_fail_at_config_check() {
    let dir = unique_dir("hooks-conf");
    let check = |name: &str, body: &str| -> (Option<i32>, String) {
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(&conf, format!("listen 127.0.0.1:{};\n{body}", free_port())).expect("write");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("-t").arg("-c").arg(&conf);
        let mut p = Proc::spawn("sluice -t", cmd, dir.join(format!("{name}.log")));
        let status = p
            .wait_timeout(Duration::from_secs(10))
            .expect("sluice -t exits");
        (status.code(), p.output())
    };
    let cases: HashMap<&str, (&str, &str)> = HashMap::from([
        (
            "rule",
            (
                "vhost v { security { enabled on; allow publish 10.0.0.0/33; } }",
                "prefix length",
            ),
        ),
        (
            "scope",
            (
                "vhost v { security { enabled on; allow record all; } }",
                "publish or play",
            ),
        ),
        (
            "timeout",
            ("vhost v { http_hooks { timeout_ms 0; } }", "timeout_ms"),
        ),
    ]);
    for (name, (body, want)) in cases {
        let (code, text) = check(name, body);
        assert_eq!(code, Some(1), "{name}: {text}");
        assert!(text.contains(want), "{name}: {text}");
    }
    let (code, text) = check(
        "good",
        "heartbeat { enabled on; interval 1; url http://127.0.0.1:1/hb; summaries on; }
         vhost v { http_hooks { enabled on; on_publish http://[::1]:8085/a http://h/b?x=1; }
                   refer { enabled on; all a.com b.com; } security { enabled on; allow play ::1; deny publish all; } }",
    );
    assert_eq!(code, Some(0), "{text}");
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

/// `https://` hooks: called over TLS with the server's certificate checked (trusted here
/// through SSL_CERT_FILE): an allowed publish carries SRS's body, a `{"code": 1}` over TLS
/// denies, and a hook server whose certificate is not trusted denies the publish with a log
/// line that says why.
#[test]
fn https_hooks_are_called_over_tls_and_checked() {
    require_ffmpeg();
    let dir = unique_dir("hooks-tls-pki");
    let pki = common::pki::Pki::new(&dir, "hooks");
    let hooks = HookServer::start_tls(&pki);
    let untrusted_pki = common::pki::Pki::new(&dir.join("other"), "other");
    let untrusted = HookServer::start_tls(&untrusted_pki);
    let url = |h: &HookServer, path: &str| format!("https://localhost:{}{path}", h.port);
    let body = base_config(&format!(
        "vhost __defaultVhost__ {{ http_hooks {{ enabled on; on_publish {}; }} }}
         vhost deny.test {{ http_hooks {{ enabled on; on_publish {}; }} }}
         vhost untrusted.test {{ http_hooks {{ enabled on; on_publish {}; }} }}
",
        url(&hooks, "/json"),
        url(&hooks, "/deny"),
        url(&untrusted, "/json"),
    ));
    let ca = pki.ca.display().to_string();
    let server = Server::start_with_env("hooks-tls", &body, &[("SSL_CERT_FILE", ca.as_str())]);
    let mut ok = publish(&server, &server.url("live/s"), 2, "ok");
    let hit = hooks.wait("on_publish", Duration::from_secs(10), |b| {
        b["stream"] == "s"
    });
    assert_common(&hit.body, "on_publish");
    ok.expect_success(Duration::from_secs(20));
    for (vhost, tag) in [("deny.test", "deny"), ("untrusted.test", "untrusted")] {
        let status = raw_publish_status(server.port, &format!("live?vhost={vhost}"), "s", "");
        assert!(
            status.contains("Denied") || status.contains("denied"),
            "{tag}: {status}"
        );
    }
    assert!(
        untrusted.hits().is_empty(),
        "the untrusted hook server got a request"
    );
    assert!(
        server.log().contains("TLS"),
        "no log line names the TLS failure"
    );
}

#[test]
fn heartbeat_posts_ids_and_summaries() {
    let hooks = HookServer::start();
    let conf = base_config(&format!(
        "heartbeat {{ enabled on; interval 0.3; url {}; device_id dev-7; summaries on; ports on; }}
         vhost __defaultVhost__ {{ }}",
        hooks.url("/hb")
    ));
    let server = Server::start_with("hooks-heartbeat", &conf);
    let first = wait_for(Duration::from_secs(5), || hooks.hits().first().cloned())
        .expect("no heartbeat within 5 s");
    assert_eq!(first.path, "/hb");
    let b = &first.body;
    assert_eq!(b["device_id"], "dev-7");
    assert_eq!(b["ip"], "127.0.0.1");
    assert!(b["server"].as_str().is_some_and(|s| s.starts_with("vid-")));
    assert!(b["service"].is_string());
    assert_eq!(b["pid"], server.pid().to_string());
    assert!(b["summaries"]["self"]["mem_kbyte"].is_u64(), "{b}");
    assert_eq!(b["rtmp"][0], format!("127.0.0.1:{}", server.port));
    assert!(
        wait_for(Duration::from_secs(3), || (hooks.hits().len() >= 3)
            .then_some(()))
        .is_some()
    );
}

/// Issue 15: on_dvr (sent when the file closes, after the publisher left) and on_hls carry
/// the publisher's ip, tcUrl, param and the stream's id, as SRS fills them.
#[test]
fn dvr_and_hls_hooks_carry_the_publisher_after_it_left() {
    require_ffmpeg();
    let hooks = HookServer::start();
    let server = Server::start_with(
        "hooks-dvr-e2e",
        &base_config(&format!(
            "vhost __defaultVhost__ {{
                dvr {{ enabled on; dvr_plan session; dvr_path ./rec/[app]/[stream].flv; }}
                hls {{ enabled on; hls_fragment 1; hls_window 10; hls_path ./hls; }}
                http_hooks {{ enabled on; on_dvr {d}; on_hls {h}; }}
            }}",
            d = hooks.url("/dvr"),
            h = hooks.url("/hls"),
        )),
    );
    let mut publisher = publish(&server, &server.url("live/rec?token=dvr7"), 4, "dvr-e2e");
    publisher.expect_success(Duration::from_secs(20));
    let on_hls = hooks.wait("on_hls", Duration::from_secs(5), |_| true);
    let on_dvr = hooks.wait("on_dvr", Duration::from_secs(10), |_| true);
    for (name, body) in [("on_hls", &on_hls.body), ("on_dvr", &on_dvr.body)] {
        assert_eq!(body["ip"], "127.0.0.1", "{name}: {body}");
        assert_eq!(body["param"], "?token=dvr7", "{name}: {body}");
        assert!(
            body["tcUrl"]
                .as_str()
                .is_some_and(|t| t.starts_with("rtmp://127.0.0.1:")),
            "{name}: {body}"
        );
        assert!(
            body["stream_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("vid-")),
            "{name}: {body}"
        );
        assert_eq!(body["stream_url"], "/live/rec", "{name}: {body}");
    }
}
