//! Hostile clients against the real server while a live stream runs: every bad connection
//! must be closed by the server (read returns 0 or the connection is reset) within the
//! handshake time-out plus a margin, the live stream must not notice, and the server must
//! still be up at the end.
//!
//! All attacks run at the same time as one ffmpeg publisher and one ffmpeg player, so the
//! whole file takes about as long as the slowloris case (~13 s) plus start-up.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rtmp::handshake::HANDSHAKE_SIZE;

/// Server-side handshake time-out (a constant in the server).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Scheduling slack on a busy 2-core machine.
const MARGIN: Duration = Duration::from_secs(3);
/// Invalid input the server can reject on sight should not wait for any time-out.
const PROMPT: Duration = Duration::from_secs(3);

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5)).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("write timeout");
    s
}

/// Outcome of one attack, reported together so one failure shows them all.
type Outcome = (&'static str, Closed, Duration);

fn attack(name: &'static str, limit: Duration, f: impl FnOnce() -> Closed) -> Outcome {
    (name, f(), limit)
}

/// Bytes that are not RTMP at all: an HTTP request followed by noise.
fn garbage(port: u16) -> Closed {
    let mut s = connect(port);
    let mut bytes = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec();
    bytes.extend(pseudo_random(1, 4000));
    let t = Instant::now();
    let _ = s.write_all(&bytes);
    wait_closed(&mut s, t, HANDSHAKE_TIMEOUT + MARGIN)
}

/// C0 and half of C1, then silence: only the handshake time-out can end it.
fn truncated_handshake(port: u16) -> Closed {
    let mut s = connect(port);
    let mut bytes = vec![3u8];
    bytes.extend(pseudo_random(2, HANDSHAKE_SIZE / 2));
    let t = Instant::now();
    s.write_all(&bytes).expect("write half C0C1");
    wait_closed(&mut s, t, HANDSHAKE_TIMEOUT + MARGIN)
}

/// A whole C0C1 whose version byte is not 3 (nor 6, RTMPE).
fn wrong_version(port: u16) -> Closed {
    let mut s = connect(port);
    let mut bytes = vec![0x42u8];
    bytes.extend(pseudo_random(3, HANDSHAKE_SIZE));
    let t = Instant::now();
    let _ = s.write_all(&bytes);
    wait_closed(&mut s, t, HANDSHAKE_TIMEOUT + MARGIN)
}

/// A valid handshake, then a fmt 0 chunk announcing a 16 MiB - 1 command message (over the
/// 8 MiB limit), followed by a first chunk of it.
fn huge_message(port: u16) -> Closed {
    // The churn thread fills max_connections on purpose: a refusal at accept (a
    // reset) is the server doing its job, so try again until a slot is free.
    let mut tries = 0;
    let mut c = loop {
        match RawClient::handshake(port, None) {
            Ok(c) => break c,
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("huge message: handshake refused ({e}), retrying");
                thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("handshake: {e}"),
        }
    };
    let mut bytes = vec![0x03]; // fmt 0, csid 3
    bytes.extend_from_slice(&[0, 0, 0]); // timestamp
    bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF]); // message length
    bytes.push(20); // AMF0 command
    bytes.extend_from_slice(&0u32.to_le_bytes()); // message stream id
    bytes.extend(pseudo_random(4, 128));
    let t = Instant::now();
    let _ = c.stream.write_all(&bytes);
    wait_closed(&mut c.stream, t, PROMPT)
}

/// One byte of the handshake per second: the time-out must cover the whole handshake, not
/// each read. Gives up (still open) after 15 s.
fn slowloris(port: u16) -> Closed {
    let mut s = connect(port);
    let t = Instant::now();
    let mut hello = vec![3u8];
    hello.extend(pseudo_random(5, HANDSHAKE_SIZE));
    for byte in hello {
        if s.write_all(&[byte]).is_err() {
            // The server's close shows up as EPIPE/ECONNRESET on write; confirm by reading.
            return wait_closed(&mut s, t, Duration::from_secs(15));
        }
        match wait_closed(&mut s, Instant::now(), Duration::from_secs(1)) {
            Closed::StillOpen => {}
            Closed::Cleanly(_) => return Closed::Cleanly(t.elapsed()),
            other => return other,
        }
        if t.elapsed() >= Duration::from_secs(15) {
            return Closed::StillOpen;
        }
    }
    Closed::StillOpen
}

/// 200 connections opened and dropped as fast as possible, a third of them after part of a
/// C0C1. Returns how many could not even connect.
fn churn(port: u16) -> usize {
    let mut refused = 0;
    for i in 0..200u64 {
        match TcpStream::connect_timeout(&addr(port), Duration::from_secs(2)) {
            Ok(mut s) => {
                if i % 3 == 0 {
                    let _ = s.write_all(&[3u8; 700]);
                }
            }
            Err(_) => refused += 1,
        }
    }
    refused
}

#[test]
fn hostile_clients_are_closed_and_the_live_stream_is_unaffected() {
    require_ffmpeg();
    let mut server = Server::start("hostile");
    let url = server.url("live/calm");
    let mut publisher = spawn_publisher(&server, AVC_AAC, &url, "calm");
    thread::sleep(Duration::from_millis(500));
    let (mut player, out) = spawn_player(&server, &url, "calm");
    thread::sleep(Duration::from_millis(500));
    let fds_before = server.open_fds();

    let port = server.port;
    let long = HANDSHAKE_TIMEOUT + MARGIN;
    let attacks = vec![
        thread::spawn(move || attack("garbage", long, || garbage(port))),
        thread::spawn(move || attack("truncated handshake", long, || truncated_handshake(port))),
        thread::spawn(move || attack("wrong C0 version", long, || wrong_version(port))),
        thread::spawn(move || attack("huge message length", PROMPT, || huge_message(port))),
        thread::spawn(move || attack("slowloris", long, || slowloris(port))),
    ];
    let churner = thread::spawn(move || churn(port));

    let refused = churner.join().expect("churn thread");
    let outcomes: Vec<Outcome> = attacks
        .into_iter()
        .map(|h| h.join().expect("attack thread"))
        .collect();

    eprintln!("attack outcomes: {outcomes:?}");
    publisher.expect_success(Duration::from_secs(25));
    player.expect_success(Duration::from_secs(8));
    assert!(server.is_alive(), "server died; outcomes: {outcomes:#?}");

    let failures: Vec<_> = outcomes
        .iter()
        .filter(|(_, closed, limit)| !matches!(closed, Closed::Cleanly(d) if d <= limit))
        .collect();
    assert!(
        failures.is_empty(),
        "not closed cleanly in time: {failures:#?}\nall: {outcomes:#?}"
    );
    assert_eq!(refused, 0, "{refused} of 200 fast connections were refused");

    // The churned connections are gone on the server side too (no leaked sockets).
    if let Some(before) = fds_before {
        let settled = wait_for(Duration::from_secs(5), || {
            server.open_fds().filter(|&n| n <= before + 2)
        });
        assert!(
            settled.is_some(),
            "server holds {:?} fds, {before} before the attacks",
            server.open_fds()
        );
    }

    // Still serving: a fresh client completes a handshake.
    RawClient::handshake(server.port, None).expect("handshake after the attacks");
    assert_same_stream(
        "player during attacks",
        &flv_stats(&out),
        &fixture_stats(AVC_AAC),
    );
    assert!(server.is_alive(), "server died at the end");
}
