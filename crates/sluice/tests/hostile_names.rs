//! Issue 24, items 1 and 2: client-supplied names are bounded and cannot forge or
//! flood log lines, and what a connection may make the server hold before it has
//! said who it is stays small, while a live stream plays on.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use amf::Amf0Value;
use common::*;

/// Handshake, then `connect` with `tc_url`; the server's answer to it.
fn connect_with(port: u16, app: &str, tc_url: &str) -> std::io::Result<()> {
    let mut c = RawClient::handshake(port, None)?;
    let obj = Amf0Value::object([
        ("app", Amf0Value::string(app)),
        ("tcUrl", Amf0Value::string(tc_url)),
    ]);
    let txn = c.command(0, "connect", obj, vec![])?;
    c.expect_result(txn).map(|_| ())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn hostile_names_are_refused_and_stay_one_bounded_log_line() {
    let server = Server::start("hostile-names");
    let port = server.addr().port();
    let before = server.log().len();

    // A stream name that would forge a whole log line, and one with a NUL.
    let forged = "s\n2026-12-04T00:00:00.000000Z  INFO forged publish ip=6.6.6.6";
    for name in [forged, "a\0b", &"n".repeat(300)] {
        let mut c = RawClient::play(port, "live", name, None).expect("play sent");
        let closed = wait_closed(&mut c.stream, Instant::now(), Duration::from_secs(5));
        assert!(
            matches!(closed, Closed::Cleanly(_)),
            "a bad name must close the player: {closed:?}"
        );
    }
    // A 4 MB name is a message far larger than any command: closed on sight.
    let huge = "h".repeat(4 * 1024 * 1024);
    if let Ok(mut c) = RawClient::handshake(port, None) {
        let obj = Amf0Value::object([("app", Amf0Value::string(&huge))]);
        let _ = c.command(0, "connect", obj, vec![]);
        let closed = wait_closed(&mut c.stream, Instant::now(), Duration::from_secs(5));
        assert!(matches!(closed, Closed::Cleanly(_)), "{closed:?}");
    }
    // A tcUrl over the bound is refused with _error.
    let long = format!("rtmp://127.0.0.1:{port}/live?{}", "t".repeat(2000));
    let refused = connect_with(port, "live", &long).expect_err("a 2 KB tcUrl is refused");
    assert!(refused.to_string().contains("tcUrl"), "{refused}");
    // A normal connect still works.
    connect_with(port, "live", &format!("rtmp://127.0.0.1:{port}/live")).expect("connect");

    let log = server.log();
    let added = &log[before.min(log.len())..];
    assert!(
        !added.lines().any(|l| l.starts_with("2026-12-04T00:00:00")),
        "a forged line reached the log:\n{added}"
    );
    assert!(!added.contains('\0'), "a NUL reached the log");
    assert!(
        added.contains("stream name contains a control character"),
        "the refusal says why:\n{added}"
    );
    assert!(
        added.len() < 64 * 1024,
        "{} bytes of log for a handful of hostile clients",
        added.len()
    );
}

#[test]
fn half_sent_messages_before_connect_hold_little_memory() {
    require_ffmpeg();
    let server = Server::start("pre-connect-memory");
    let port = server.addr().port();
    let mut publisher = spawn_publisher(&server, AVC_AAC, &server.url("live/mem"), "mem");
    let (mut player, recorded) = spawn_player(&server, &server.url("live/mem"), "mem");
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = rss_kib(server.pid());
    // 60 connections each start an 8 MiB message before connect and send 1 MiB of it.
    let mut attackers = Vec::new();
    for i in 0..60u64 {
        let Ok(mut c) = RawClient::handshake(port, None) else {
            continue;
        };
        let mut bytes = vec![0x03, 0, 0, 0, 0x80, 0, 0, 20, 0, 0, 0, 0]; // 8 MiB command
        bytes.extend(pseudo_random(i, 128));
        for _ in 0..(1024 * 1024 / 128) {
            bytes.push(0xC3); // fmt 3, csid 3
            bytes.extend(pseudo_random(i, 128));
        }
        let _ = c.stream.write_all(&bytes);
        attackers.push(c);
    }
    let rss_after = rss_kib(server.pid());
    for mut c in attackers {
        let closed = wait_closed(&mut c.stream, Instant::now(), Duration::from_secs(5));
        assert!(matches!(closed, Closed::Cleanly(_)), "{closed:?}");
    }
    assert!(
        rss_after < rss_before + 32 * 1024,
        "60 half-sent messages took RSS from {rss_before} KiB to {rss_after} KiB"
    );
    publisher.expect_success(Duration::from_secs(30));
    player.expect_success(Duration::from_secs(30));
    assert_probe_matches("live stream beside the attack", &recorded, AVC_AAC);
}

/// Issue 24, item 3: a player of a stream nobody publishes is closed after the
/// vhost's `play.unpublished_timeout`, with a close line that says why, and counted;
/// a player of a live stream is not.
#[test]
fn players_of_streams_nobody_publishes_are_closed_after_the_timeout() {
    require_ffmpeg();
    let http_port = free_port();
    let server = Server::start_with(
        "unpublished",
        &format!(
            "http_api {{ enabled on; listen 127.0.0.1:{http_port}; }}\n\
             vhost __defaultVhost__ {{ play {{ unpublished_timeout 2; }} }}\n"
        ),
    );
    let port = server.addr().port();
    let mut publisher = spawn_publisher(&server, AVC_AAC, &server.url("live/on"), "on");
    let (mut player, recorded) = spawn_player(&server, &server.url("live/on"), "on");
    let mut waiting = RawClient::play(port, "live", "never", None).expect("play");
    let t = Instant::now();
    let closed = wait_closed(&mut waiting.stream, t, Duration::from_secs(10));
    match closed {
        Closed::Cleanly(after) => assert!(
            after >= Duration::from_millis(1500),
            "closed after {after:?}, before its timeout"
        ),
        other => panic!("a player of an unpublished stream was not closed: {other:?}"),
    }
    publisher.expect_success(Duration::from_secs(30));
    player.expect_success(Duration::from_secs(30));
    assert_probe_matches("player of the live stream", &recorded, AVC_AAC);
    let log = server.log();
    assert!(
        log.contains("nobody published its stream for play.unpublished_timeout"),
        "{log}"
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http_port)).expect("api");
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").expect("send");
    let mut metrics = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut metrics);
    assert!(
        metrics.contains("sluice_clients_closed_total{reason=\"unpublished\"} 1"),
        "{metrics}"
    );
}
