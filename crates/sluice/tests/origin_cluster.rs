//! Origin cluster end to end: a real `redis-server` (the stream directory), several sluice
//! origins and edges on loopback, ffmpeg publishers and players, recordings checked with our
//! own FLV parser (every frame in order, no timestamp hole).
//!
//! Needs ffmpeg, ffprobe and redis-server; panics (never skips) without them. Each test
//! runs its own cluster on its own ports, so the tests of this file run in parallel.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::recording::*;
use common::*;
use media::codec::{AudioCodec, VideoCodec};

/// Seconds of media each player records.
const PLAY_SECONDS: &str = "4";
/// Longest a player may take to record its seconds (start-up, lookups, pulls included).
const PLAY_TIMEOUT: Duration = Duration::from_secs(40);
/// The directory TTL the tests configure (`directory_ttl`), short to keep the file quick.
const TTL_SECONDS: u64 = 3;

// ---------------------------------------------------------------- redis-server

/// A `redis-server` on its own port, no persistence; killed on drop.
struct Redis {
    port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl Redis {
    fn start(tag: &str) -> Redis {
        require_tool("redis-server");
        let dir = unique_dir(tag);
        let mut r = Redis {
            port: free_port(),
            dir,
            proc: None,
        };
        r.restart();
        r
    }

    /// (Re)starts the server on the same port.
    fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ])
        .current_dir(&self.dir);
        let log = self.dir.join("redis.log");
        self.proc = Some(Proc::spawn("redis-server", cmd, log));
        let up = wait_for(Duration::from_secs(10), || {
            redis_cmd(self.port, &["PING"]).filter(|r| r == "PONG")
        });
        assert!(
            up.is_some(),
            "redis-server did not answer PING on port {}:\n{}",
            self.port,
            self.proc.as_ref().map(Proc::output).unwrap_or_default()
        );
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The directory entry of a default-vhost stream, if any.
    fn entry(&self, app: &str, stream: &str) -> Option<String> {
        redis_cmd(
            self.port,
            &[
                "GET",
                &format!("sluice:stream:__defaultVhost__/{app}/{stream}"),
            ],
        )
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One RESP command; the reply as text (simple string, integer or bulk), `None` for a nil
/// reply or no answer.
fn redis_cmd(port: u16, args: &[&str]) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).ok()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let line = line.trim_end();
    match line.as_bytes().first()? {
        b'+' | b':' => Some(line[1..].to_string()),
        b'$' => {
            let n: i64 = line[1..].parse().ok()?;
            if n < 0 {
                return None;
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf).ok()?;
            buf.truncate(n as usize);
            String::from_utf8(buf).ok()
        }
        _ => None,
    }
}

// ---------------------------------------------------------------- sluice nodes

/// Ports of one node besides RTMP (which the harness picks).
#[derive(Clone, Copy)]
struct Ports {
    api: u16,
    http: u16,
}

fn ports() -> Ports {
    Ports {
        api: free_port(),
        http: free_port(),
    }
}

fn head(p: Ports) -> String {
    format!(
        "daemon off;\nsrs_log_tank console;\nmax_connections 100;\n\
         http_api {{ enabled on; listen 127.0.0.1:{}; }}\n\
         http_server {{ enabled on; listen 127.0.0.1:{}; dir ./html; }}\n",
        p.api, p.http
    )
}

const REMUX: &str = "http_remux { enabled on; mount [app]/[stream].flv; }";

/// An origin of the cluster: coworkers (their API ports), the directory, extra directives.
fn origin_body(p: Ports, coworkers: &[Ports], redis: Option<&Redis>, extra: &str) -> String {
    let mut cluster = String::from("mode local; origin_cluster on; ");
    if !coworkers.is_empty() {
        let list: Vec<String> = coworkers
            .iter()
            .map(|c| format!("127.0.0.1:{}", c.api))
            .collect();
        cluster.push_str(&format!("coworkers {}; ", list.join(" ")));
    }
    if let Some(r) = redis {
        cluster.push_str(&format!(
            "directory {}; directory_ttl {TTL_SECONDS}; ",
            r.url()
        ));
    }
    cluster.push_str(extra);
    format!(
        "{}vhost __defaultVhost__ {{ cluster {{ {cluster} }} {REMUX} }}\n",
        head(p)
    )
}

fn edge_body(p: Ports, origins: &[&Server], redis: Option<&Redis>) -> String {
    let list: Vec<String> = origins
        .iter()
        .map(|o| format!("127.0.0.1:{}", o.port))
        .collect();
    let mut cluster = format!("mode remote; origin {}; ", list.join(" "));
    if let Some(r) = redis {
        cluster.push_str(&format!(
            "directory {}; directory_ttl {TTL_SECONDS}; ",
            r.url()
        ));
    }
    format!(
        "{}vhost __defaultVhost__ {{ cluster {{ {cluster} }} {REMUX} }}\n",
        head(p)
    )
}

/// The recording is the clip's codecs, starts decodable, and its timestamps only move
/// forward without holes, over at least `min_ms`; ffprobe reads it as H.264 + AAC.
fn assert_good_recording(label: &str, path: &Path, min_ms: u32) {
    let s = flv_stats(path);
    assert_eq!(s.video_codec, Some(VideoCodec::Avc), "{label}: {s:?}");
    assert_eq!(s.audio_codec, Some(AudioCodec::Aac), "{label}: {s:?}");
    assert!(s.video_seq_before_frames, "{label}: no AVC header first");
    assert!(s.audio_seq_before_frames, "{label}: no AAC header first");
    assert_eq!(s.first_video_frame_key, Some(true), "{label}: {s:?}");
    assert_eq!(s.video_ts_regressions, 0, "{label}: video went back: {s:?}");
    assert_eq!(s.audio_ts_regressions, 0, "{label}: audio went back: {s:?}");
    let span = s
        .last_ts
        .unwrap_or(0)
        .saturating_sub(s.first_ts.unwrap_or(0));
    assert!(span >= min_ms, "{label}: only {span} ms recorded: {s:?}");
    let tl = timeline(path);
    let (gv, ga) = (max_gap(&tl, FLV_VIDEO), max_gap(&tl, FLV_AUDIO));
    assert!(
        gv <= 1000 && ga <= 1000,
        "{label}: timestamp hole (video {gv} ms, audio {ga} ms)"
    );
    let probed = ffprobe(path);
    assert!(
        probed.iter().any(|p| p.codec_name == "h264")
            && probed.iter().any(|p| p.codec_name == "aac"),
        "{label}: ffprobe sees {probed:?}"
    );
}

/// A plain HTTP/1.0 GET; returns the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr(port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Whether the node's API lists `live/stream` as published (by anyone, a pull included).
fn publishes(api: u16, stream: &str) -> bool {
    let Some(body) = http_get(api, "/api/v1/streams?count=100") else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["streams"].as_array().is_some_and(|list| {
        list.iter()
            .any(|s| s["name"] == stream && s["publish"]["active"] == true)
    })
}

fn clusters_query(api: u16, stream: &str) -> serde_json::Value {
    let body = http_get(
        api,
        &format!("/api/v1/clusters?vhost=__defaultVhost__&ip=127.0.0.1&app=live&stream={stream}&coworker=127.0.0.1:{api}"),
    )
    .expect("clusters query answered");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("clusters JSON {body:?}: {e}"))
}

/// Waits until `server`'s directory entry of `live/stream` is registered.
fn wait_registered(redis: &Redis, stream: &str, owner: &Server) {
    let want = format!("127.0.0.1:{}|", owner.port);
    let ok = wait_for(Duration::from_secs(15), || {
        redis.entry("live", stream).filter(|e| e.starts_with(&want))
    });
    assert!(
        ok.is_some(),
        "live/{stream} not registered by {want}: {:?}\n{}",
        redis.entry("live", stream),
        owner.log()
    );
}

fn expect_players(players: Vec<(Proc, PathBuf, &str)>) {
    for (mut p, f, label) in players {
        p.expect_success(PLAY_TIMEOUT);
        assert_good_recording(label, &f, 3000);
    }
}

// ---------------------------------------------------------------- tests

/// Publish to A: B, C (RTMP and HTTP-FLV) and both edges play it; a second stream on C plays
/// from A; the same stream published to B while A holds it is refused. A dies: its entries
/// leave the directory within the TTL, and a republish to B is found by every player path.
#[test]
fn three_origins_and_two_edges_find_every_stream() {
    require_ffmpeg();
    let redis = Redis::start("oc-redis");
    let (pa, pb, pc) = (ports(), ports(), ports());
    let a = Server::start_with("oc-a", &origin_body(pa, &[pb, pc], Some(&redis), ""));
    let b = Server::start_with("oc-b", &origin_body(pb, &[pa, pc], Some(&redis), ""));
    let c = Server::start_with("oc-c", &origin_body(pc, &[pa, pb], Some(&redis), ""));
    let e1 = Server::start_with("oc-e1", &edge_body(ports(), &[&b, &c], Some(&redis)));
    let e2 = Server::start_with("oc-e2", &edge_body(ports(), &[&c, &b], Some(&redis)));

    let pub_s = looped_publisher(&a, &a.url("live/s"), "a-s");
    let _pub_t = looped_publisher(&c, &c.url("live/t"), "c-t");
    let _pub_solo = looped_publisher(&a, &a.url("live/solo"), "a-solo");
    wait_registered(&redis, "s", &a);
    wait_registered(&redis, "t", &c);
    wait_registered(&redis, "solo", &a);

    // The coworker query answers for what A publishes, in SRS's shape.
    let q = clusters_query(pa.api, "s");
    assert_eq!(q["code"], 0, "{q}");
    assert_eq!(q["data"]["origin"]["port"], a.port, "{q}");
    assert_eq!(q["data"]["origin"]["ip"], "127.0.0.1", "{q}");

    let (pl_b, f_b) = player(&b, &b.url("live/s"), "b", PLAY_SECONDS);
    let (pl_c, f_c) = player(&c, &c.url("live/s"), "c", PLAY_SECONDS);
    let (pl_cf, f_cf) = player(
        &c,
        &format!("http://127.0.0.1:{}/live/s.flv", pc.http),
        "c-flv",
        PLAY_SECONDS,
    );
    let (pl_e1, f_e1) = player(&e1, &e1.url("live/s"), "e1", PLAY_SECONDS);
    let (pl_e2, f_e2) = player(&e2, &e2.url("live/s"), "e2", PLAY_SECONDS);
    let (pl_t, f_t) = player(&a, &a.url("live/t"), "a-t", PLAY_SECONDS);

    // Same stream on another origin while A holds it: refused cluster-wide.
    let mut dup = looped_publisher(&b, &b.url("live/solo"), "b-solo");
    let refused = dup.wait_timeout(Duration::from_secs(20));
    assert!(
        refused.is_some_and(|s| !s.success()),
        "second publisher of live/solo on B was not refused:\n{}",
        b.log()
    );
    assert!(
        b.log().contains("already published on origin"),
        "B's log does not say why:\n{}",
        b.log()
    );
    expect_players(vec![
        (pl_b, f_b, "origin B"),
        (pl_c, f_c, "origin C"),
        (pl_cf, f_cf, "origin C over HTTP-FLV"),
        (pl_e1, f_e1, "edge 1"),
        (pl_e2, f_e2, "edge 2"),
        (pl_t, f_t, "stream of C played from A"),
    ]);
    // B never announced what it only pulls (no loop between origins).
    let q = clusters_query(pb.api, "s");
    assert!(q["data"]["origin"].is_null(), "B announced a pull: {q}");

    // A dies without a goodbye: its entries leave within the TTL.
    drop(pub_s);
    let a_port = a.port;
    a.signal(nix::sys::signal::Signal::SIGKILL);
    let gone = wait_for(Duration::from_secs(TTL_SECONDS * 3), || {
        (redis.entry("live", "s").is_none() && redis.entry("live", "solo").is_none()).then_some(())
    });
    assert!(
        gone.is_some(),
        "A's entries outlived the TTL: {:?}",
        redis.entry("live", "s")
    );
    drop(a);

    // B's own pull of live/s (for its first player) ends within its failover grace; a
    // local publisher is admitted after that (one publisher per Source).
    let idle = wait_for(Duration::from_secs(20), || {
        (!publishes(pb.api, "s")).then_some(())
    });
    assert!(idle.is_some(), "B still pulls live/s:\n{}", b.log());
    // Republished to B: every player path finds it there.
    let _pub_s2 = looped_publisher(&b, &b.url("live/s"), "b-s");
    wait_registered(&redis, "s", &b);
    let (pl_c, f_c) = player(&c, &c.url("live/s"), "c2", PLAY_SECONDS);
    let (pl_cf, f_cf) = player(
        &c,
        &format!("http://127.0.0.1:{}/live/s.flv", pc.http),
        "c2-flv",
        PLAY_SECONDS,
    );
    let (pl_e1, f_e1) = player(&e1, &e1.url("live/s"), "e1-2", PLAY_SECONDS);
    let (pl_e2, f_e2) = player(&e2, &e2.url("live/s"), "e2-2", PLAY_SECONDS);
    expect_players(vec![
        (pl_c, f_c, "origin C after A died"),
        (pl_cf, f_cf, "origin C over HTTP-FLV after A died"),
        (pl_e1, f_e1, "edge 1 after A died"),
        (pl_e2, f_e2, "edge 2 after A died"),
    ]);
    // The edges asked the directory: they pull from B itself, not through C.
    for (label, e) in [("edge 1", &e1), ("edge 2", &e2)] {
        assert!(
            e.log()
                .contains(&format!("playing rtmp://127.0.0.1:{}/live/s", b.port)),
            "{label} did not find the stream on B (A was {a_port}):\n{}",
            e.log()
        );
    }
}

/// Redis stops mid-run: live players go on, a new player of a known stream still plays (the
/// coworkers and each node's last lookups), and when Redis returns the directory is whole.
#[test]
fn redis_outage_keeps_the_cluster_serving() {
    require_ffmpeg();
    let mut redis = Redis::start("oc-rredis");
    let (pa, pb, pc) = (ports(), ports(), ports());
    let a = Server::start_with("oc-ra", &origin_body(pa, &[pb, pc], Some(&redis), ""));
    let b = Server::start_with("oc-rb", &origin_body(pb, &[pa, pc], Some(&redis), ""));
    let c = Server::start_with("oc-rc", &origin_body(pc, &[pa, pb], Some(&redis), ""));
    let edge = Server::start_with("oc-redge", &edge_body(ports(), &[&b], Some(&redis)));
    let _pub = looped_publisher(&a, &a.url("live/s"), "a");
    wait_registered(&redis, "s", &a);

    // A long player on B and one on the edge, through the outage.
    let (long_b, f_long_b) = player(&b, &b.url("live/s"), "b-long", "12");
    let (long_e, f_long_e) = player(&edge, &edge.url("live/s"), "e-long", "12");
    let started = wait_for(Duration::from_secs(20), || {
        (std::fs::metadata(&f_long_b).map(|m| m.len()).unwrap_or(0) > 20_000).then_some(())
    });
    assert!(started.is_some(), "B's player got nothing:\n{}", b.log());
    redis.stop();

    // New players while Redis is down: C (never asked before: coworkers), the edge (its
    // last lookup), B (its pull).
    let (pl_c, f_c) = player(&c, &c.url("live/s"), "c-down", PLAY_SECONDS);
    let (pl_e, f_e) = player(&edge, &edge.url("live/s"), "e-down", PLAY_SECONDS);
    expect_players(vec![
        (pl_c, f_c, "new player on C while Redis is down"),
        (pl_e, f_e, "new player on the edge while Redis is down"),
    ]);
    let metrics = http_get(pa.api, "/metrics").unwrap_or_default();
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_directory_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(errors > 0, "directory errors not counted:\n{metrics}");
    assert!(
        a.log().contains("directory: register") || a.log().contains("directory: lookup"),
        "A did not log the outage:\n{}",
        a.log()
    );

    // Redis returns empty: the renewals register everything again.
    redis.restart();
    wait_registered(&redis, "s", &a);
    // The line follows the first renewal that Redis answered, by a moment.
    let recovered = wait_for(Duration::from_secs(5), || {
        a.log().contains("Redis answers again").then_some(())
    });
    assert!(recovered.is_some(), "no recovery line:\n{}", a.log());
    expect_players(vec![
        (long_b, f_long_b, "B's player through the outage"),
        (long_e, f_long_e, "edge player through the outage"),
    ]);
}

/// `redirect on`: an RTMP player of B is sent to A (SRS's RTMP 302), which the rtmp crate's
/// client and sluice edges follow; HTTP-FLV players of B are served by B's own pull.
#[test]
fn redirects_are_followed_by_the_rtmp_client_and_edges() {
    require_ffmpeg();
    let (pa, pb) = (ports(), ports());
    let a = Server::start_with("oc-da", &origin_body(pa, &[pb], None, "redirect on;"));
    let b = Server::start_with("oc-db", &origin_body(pb, &[pa], None, "redirect on;"));
    let edge = Server::start_with("oc-dedge", &edge_body(ports(), &[&b], None));
    let _pub = looped_publisher(&a, &a.url("live/s"), "a");
    let registered = wait_for(Duration::from_secs(15), || {
        clusters_query(pa.api, "s")["data"]["origin"]["port"]
            .as_u64()
            .filter(|p| *p == u64::from(a.port))
    });
    assert!(registered.is_some(), "A does not announce live/s");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use rtmp::client::{Client, ClientError, ClientOptions, MediaKind};
        let mut player = Client::play_url(&b.url("live/s"), ClientOptions::default())
            .await
            .unwrap_or_else(|e| panic!("play through the redirect: {e}\n{}", b.log()));
        let mut video = 0;
        while video < 30 {
            let m = tokio::time::timeout(Duration::from_secs(10), player.recv())
                .await
                .expect("media after the redirect")
                .expect("recv")
                .expect("stream ended");
            if m.kind == MediaKind::Video {
                video += 1;
            }
        }
        let _ = player.close().await;
        // Without hops allowed, the redirect is an error naming the target.
        let options = ClientOptions {
            max_redirects: 0,
            ..ClientOptions::default()
        };
        match Client::play_url(&b.url("live/s"), options).await {
            Err(ClientError::TooManyRedirects(0)) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("played without following the redirect"),
        }
        match Client::connect(&b.url("live/s"))
            .await
            .expect("connect")
            .play()
            .await
        {
            Err(ClientError::Redirected(to)) => {
                assert_eq!(to, format!("rtmp://127.0.0.1:{}/live/s", a.port))
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("B played a stream it does not have instead of redirecting"),
        }
    });
    assert!(
        b.log().contains(&format!(
            "play redirected to rtmp://127.0.0.1:{}/live/s",
            a.port
        )),
        "{}",
        b.log()
    );

    // ffmpeg as the player of B, while B holds no copy of the stream: ffmpeg's RTMP
    // client does not follow RTMP 302 (it reports "Server error: RTMP 302 Redirect" and
    // exits), which is why `redirect` is off by default and origins pull instead.
    let (mut pl_ff, _) = player(&b, &b.url("live/s"), "b-ffmpeg", PLAY_SECONDS);
    let st = pl_ff.wait_timeout(PLAY_TIMEOUT);
    let ff_log = std::fs::read_to_string(b.tmp("player-b-ffmpeg.log")).unwrap_or_default();
    assert!(
        st.is_some_and(|s| !s.success()) && ff_log.contains("RTMP 302 Redirect"),
        "ffmpeg followed (or hung on) the redirect: {st:?}\n{ff_log}"
    );

    // An edge whose origin is B follows the redirect to A; HTTP-FLV on B is B's pull.
    let (pl_e, f_e) = player(&edge, &edge.url("live/s"), "edge", PLAY_SECONDS);
    let (pl_f, f_f) = player(
        &b,
        &format!("http://127.0.0.1:{}/live/s.flv", pb.http),
        "b-flv",
        PLAY_SECONDS,
    );
    expect_players(vec![
        (pl_e, f_e, "edge following B's redirect"),
        (pl_f, f_f, "HTTP-FLV on B (server-side pull)"),
    ]);
    assert!(
        edge.log()
            .contains(&format!("playing rtmp://127.0.0.1:{}/live/s", b.port)),
        "{}",
        edge.log()
    );
}

/// The coworker query answers an SRS origin's question in SRS's JSON shape, for what it
/// publishes only; `origin` is null otherwise.
#[test]
fn coworker_query_answers_in_srs_shape() {
    require_ffmpeg();
    let (pa, pb) = (ports(), ports());
    let a = Server::start_with("oc-qa", &origin_body(pa, &[pb], None, ""));
    let _b = Server::start_with("oc-qb", &origin_body(pb, &[pa], None, ""));
    let _pub = looped_publisher(&a, &a.url("live/s"), "a");
    let q = wait_for(Duration::from_secs(15), || {
        let q = clusters_query(pa.api, "s");
        (!q["data"]["origin"].is_null()).then_some(q)
    })
    .expect("A announces live/s");
    assert_eq!(q["code"], 0);
    assert_eq!(q["data"]["query"]["ip"], "127.0.0.1");
    assert_eq!(q["data"]["query"]["vhost"], "__defaultVhost__");
    assert_eq!(q["data"]["query"]["app"], "live");
    assert_eq!(q["data"]["query"]["stream"], "s");
    let o = &q["data"]["origin"];
    assert_eq!(o["ip"], "127.0.0.1");
    assert_eq!(o["port"], a.port);
    assert_eq!(o["vhost"], "__defaultVhost__");
    assert_eq!(o["api"], format!("127.0.0.1:{}", pa.api));
    assert_eq!(o["routers"][0], format!("127.0.0.1:{}", pa.api));
    let none = clusters_query(pa.api, "nothing");
    assert_eq!(none["code"], 0);
    assert!(none["data"]["origin"].is_null(), "{none}");
    assert_eq!(none["data"]["query"]["stream"], "nothing");
}
