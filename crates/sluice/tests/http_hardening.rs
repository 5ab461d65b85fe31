//! Hostile HTTP clients against the real `sluice` binary: malformed requests, a very long URL
//! and very long headers, slow and half-sent requests, and two thousand idle connections, all
//! while ffmpeg publishes and plays over RTMP. Every bad request must get a clear error status
//! (400/414/431) at once or be closed by the header-read time-out, the API must keep answering
//! and the RTMP player must still get the whole stream.
//!
//! What the server answered for each case is printed (`--nocapture`) as a table.

mod common;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use sluice::http::HEADER_READ_TIMEOUT;

/// Idle connections opened against the http_server port.
const IDLE_CONNECTIONS: usize = 2000;
/// Way above the idle connections plus everything else, so the cap is not what is tested.
const MAX_CONNECTIONS: usize = 5000;
/// Slack on top of the header-read time-out for a timed-out connection to be seen closed.
const CLOSE_SLACK: Duration = Duration::from_secs(4);
/// A complete bad request must be answered and closed within this.
const PROMPT: Duration = Duration::from_secs(2);
/// An API request during the flood must be answered within this.
const API_DEADLINE: Duration = Duration::from_secs(2);
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(25);
const PLAYER_EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// How one hostile connection ended.
#[derive(Debug, Clone)]
struct Outcome {
    /// Status code of the first response, if any was sent.
    status: Option<u16>,
    /// How the connection ended, and when (from the first byte sent).
    end: End,
    after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The server closed the connection (FIN).
    Closed,
    /// The connection was reset (RST), e.g. closed with our unread bytes in its buffer.
    Reset,
    /// Still open when we gave up.
    StillOpen,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "no response".into());
        let end = match self.end {
            End::Closed => "closed",
            End::Reset => "reset",
            End::StillOpen => "STILL OPEN",
        };
        write!(f, "{status}, {end} after {:.1} s", self.after.as_secs_f64())
    }
}

/// What a case must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// An error status from this set, and the connection closed at once.
    Status(&'static [u16]),
    /// An incomplete request: closed by the header-read time-out (any response allowed).
    TimedOut,
}

struct Case {
    name: &'static str,
    /// Which listener: true for the API port.
    api: bool,
    /// Bytes sent at once; the connection then waits for the server.
    bytes: Vec<u8>,
    /// After `bytes`, send one more header line every second (a slowloris).
    trickle: bool,
    expect: Expect,
}

const BAD_REQUEST: &[u16] = &[400];
const TOO_LONG: &[u16] = &[414, 431];
const TOO_LARGE: &[u16] = &[431];
const BAD_VERSION: &[u16] = &[400, 505];

fn case(name: &'static str, bytes: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        api: false,
        bytes: bytes.into(),
        trickle: false,
        expect,
    }
}

fn cases() -> Vec<Case> {
    let mut rtmp_c0c1 = vec![3u8];
    rtmp_c0c1.extend(pseudo_random(11, 1536));
    let long_url = format!(
        "GET /{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "b".repeat(64 * 1024)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n",
        (0..200)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let mut all =
        vec![
        case(
            "4 KB of random bytes",
            pseudo_random(7, 4096),
            Expect::Status(BAD_REQUEST),
        ),
        case("1 KB of NUL bytes", vec![0u8; 1024], Expect::Status(BAD_REQUEST)),
        case(
            "an RTMP handshake (C0+C1)",
            rtmp_c0c1,
            Expect::Status(BAD_REQUEST),
        ),
        case(
            "request line without version",
            "GET /\r\n\r\n",
            Expect::Status(BAD_REQUEST),
        ),
        case(
            "request line with HTTP/9.9",
            "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
            Expect::Status(BAD_VERSION),
        ),
        case(
            "space inside the path",
            "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
            Expect::Status(BAD_REQUEST),
        ),
        case(
            "bad character in the method",
            "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
            Expect::Status(BAD_REQUEST),
        ),
        case(
            "header without colon",
            "GET / HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
            Expect::Status(BAD_REQUEST),
        ),
        case(
            "space before the colon",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            Expect::Status(BAD_REQUEST),
        ),
        case(
            "control byte in a header name",
            "GET / HTTP/1.1\r\nHost: x\r\nX\x01Y: z\r\n\r\n",
            Expect::Status(BAD_REQUEST),
        ),
        case(
            "obsolete folded header line",
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
            Expect::Status(BAD_REQUEST),
        ),
        case(
            "two different Content-Length",
            "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            Expect::Status(BAD_REQUEST),
        ),
        case(
            "non-numeric Content-Length",
            "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: five\r\n\r\n",
            Expect::Status(BAD_REQUEST),
        ),
        case("100 KB URL", long_url.clone(), Expect::Status(TOO_LONG)),
        case("64 KB header", long_header.clone(), Expect::Status(TOO_LARGE)),
        case("200 headers", many_headers, Expect::Status(TOO_LARGE)),
        case(
            "half a request line",
            "GET /live/test.flv HT",
            Expect::TimedOut,
        ),
        case(
            "headers that never end",
            "GET /live/test.flv HTTP/1.1\r\nHost: x\r\n",
            Expect::TimedOut,
        ),
        Case {
            name: "slowloris: a header line every second",
            api: false,
            bytes: b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec(),
            trickle: true,
            expect: Expect::TimedOut,
        },
    ];
    // The API listener is the same stack: a sample there too.
    for (name, bytes, expect) in [
        (
            "API: 4 KB of random bytes",
            pseudo_random(13, 4096),
            Expect::Status(BAD_REQUEST),
        ),
        (
            "API: 100 KB URL",
            long_url.into_bytes(),
            Expect::Status(TOO_LONG),
        ),
        (
            "API: 64 KB header",
            long_header.into_bytes(),
            Expect::Status(TOO_LARGE),
        ),
        (
            "API: half a request line",
            b"GET /api/v1/versions HT".to_vec(),
            Expect::TimedOut,
        ),
    ] {
        all.push(Case {
            name,
            api: true,
            bytes,
            trickle: false,
            expect,
        });
    }
    all
}

/// Sends a case and reads until the server closes or the time-out plus slack passes.
fn run_case(port: u16, case: &Case) -> Outcome {
    let mut s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{}: connect: {e}", case.name));
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("write timeout");
    let start = Instant::now();
    // The server may answer and close before it read everything: a failed write is fine,
    // what it sent back is what counts.
    let _ = s.write_all(&case.bytes);
    let deadline = start + HEADER_READ_TIMEOUT + CLOSE_SLACK;
    let mut got = Vec::new();
    let mut next_trickle = start + Duration::from_secs(1);
    let mut n_trickle = 0u32;
    let mut buf = [0u8; 4096];
    let end = loop {
        let now = Instant::now();
        if now >= deadline {
            break End::StillOpen;
        }
        let wake = if case.trickle {
            next_trickle.min(deadline)
        } else {
            deadline
        };
        let wait = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        s.set_read_timeout(Some(wait)).expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => break End::Closed,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break End::Reset,
            Err(e) => panic!("{}: read failed: {e}", case.name),
        }
        if case.trickle && Instant::now() >= next_trickle {
            n_trickle += 1;
            let _ = s.write_all(format!("X-Slow-{n_trickle}: y\r\n").as_bytes());
            next_trickle += Duration::from_secs(1);
        }
    };
    Outcome {
        status: status_of(&got),
        end,
        after: start.elapsed(),
    }
}

fn status_of(reply: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(reply);
    let line = text.lines().next()?;
    line.strip_prefix("HTTP/1.")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Status of a GET on a fresh connection, reading only the response head (a live FLV body
/// never ends), and how long it took.
fn get_status(port: u16, path: &str) -> Result<(u16, Duration), String> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr(port), API_DEADLINE)
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(API_DEADLINE))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read after {:?}: {e}", start.elapsed())),
        }
    }
    let status = status_of(&got).ok_or_else(|| format!("no status line in {got:?}"))?;
    Ok((status, start.elapsed()))
}

/// The kernel's count of connections dropped because a listener's accept queue was full
/// (TcpExt ListenOverflows, for this network namespace), to tell a slow accept loop from a
/// slow client.
fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = rows.next()?.split_whitespace();
    let values = rows.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
}

/// Lets this process hold the idle connections (one descriptor each).
fn raise_open_file_limit() {
    let l = sluice::limits::raise_nofile().expect("raise RLIMIT_NOFILE");
    let need = (IDLE_CONNECTIONS + 200) as u64;
    assert!(
        l.soft >= need,
        "open-file limit {} (hard {}) is below the {need} this test needs: raise it (ulimit -n)",
        l.soft,
        l.hard
    );
}

/// Connects the given connection numbers; odd ones send half a request line. Returns them
/// with their connect times, and the slowest connect.
fn open_some(
    port: u16,
    numbers: impl Iterator<Item = usize>,
) -> (Vec<(TcpStream, Instant)>, Duration) {
    let mut conns = Vec::new();
    let mut slowest = Duration::ZERO;
    for i in numbers {
        let asked = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("idle connection {i}: connect: {e}"));
        let connected = Instant::now();
        slowest = slowest.max(connected - asked);
        if i % 2 == 1 {
            s.write_all(b"GET /live/test.flv HT")
                .unwrap_or_else(|e| panic!("idle connection {i}: write: {e}"));
        }
        s.set_nonblocking(true).expect("nonblocking");
        conns.push((s, connected));
    }
    (conns, slowest)
}

/// Idle connections: half send nothing, half send half a request line.
struct Flood {
    /// Each connection with the time its connect completed.
    conns: Vec<Option<(TcpStream, Instant)>>,
    /// Slowest single connect (a full accept backlog shows as SYN retries of 1 s and more).
    slowest_connect: Duration,
    /// When the last connection was made: all must be closed by then plus the time-out.
    last_opened: Instant,
    /// Time from connect to the server's close, per closed connection.
    close_times: Vec<Duration>,
    resets: usize,
    responses: Vec<u16>,
}

impl Flood {
    /// Opens `n` connections from a few threads, so that a connect whose SYN the kernel
    /// dropped (full accept queue: retried after 1 s) does not hold up all the others.
    fn open(port: u16, n: usize) -> Flood {
        const THREADS: usize = 4;
        let opened: Vec<(Vec<(TcpStream, Instant)>, Duration)> = thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| scope.spawn(move || open_some(port, (t..n).step_by(THREADS))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("connect thread panicked"))
                .collect()
        });
        let slowest_connect = opened.iter().map(|(_, d)| *d).max().unwrap_or_default();
        let conns: Vec<_> = opened.into_iter().flat_map(|(c, _)| c).map(Some).collect();
        assert_eq!(conns.len(), n);
        Flood {
            conns,
            slowest_connect,
            last_opened: Instant::now(),
            close_times: Vec::new(),
            resets: 0,
            responses: Vec::new(),
        }
    }

    fn open_count(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    /// Notes every connection the server has closed since the last poll.
    fn poll(&mut self) {
        let mut buf = [0u8; 1024];
        for slot in &mut self.conns {
            let Some((s, connected)) = slot else {
                continue;
            };
            let closed = loop {
                match s.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(n) => {
                        if let Some(code) = status_of(&buf[..n]) {
                            self.responses.push(code);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.resets += 1;
                        break true;
                    }
                }
            };
            if closed {
                self.close_times.push(connected.elapsed());
                *slot = None;
            }
        }
    }
}

#[test]
fn hostile_http_clients_get_errors_or_time_outs_and_rtmp_keeps_working() {
    require_ffmpeg();
    raise_open_file_limit();

    let http = free_port();
    let api = free_port();
    let root = unique_dir("hardening-root");
    std::fs::write(root.join("index.html"), "<p>sluice</p>").expect("index.html");
    let body = format!(
        // Every client of this test comes from 127.0.0.1: the per-IP limit (its own
        // test is tests/admission.rs) would refuse the flood's connections at accept.
        "max_connections {MAX_CONNECTIONS};
max_connections_per_ip 0;
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; }}
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {root}; }}
vhost __defaultVhost__ {{
    gop_cache on;
    http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}
}}
",
        root = root.display()
    );
    let mut server = Server::start_with("http-hardening", &body);
    let up = wait_for(Duration::from_secs(5), || {
        let a = TcpStream::connect_timeout(&addr(api), Duration::from_millis(200)).ok()?;
        let h = TcpStream::connect_timeout(&addr(http), Duration::from_millis(200)).ok()?;
        Some((a, h))
    });
    assert!(up.is_some(), "HTTP listeners did not come up");

    let url = server.url("live/test");
    let mut publisher = spawn_publisher(&server, AVC_AAC, &url, "hard");
    thread::sleep(Duration::from_millis(500));
    let (mut player, recorded) = spawn_player(&server, &url, "hard");
    let fds_before = server.open_fds();

    // Every single-connection case in its own thread, so the slow ones overlap the flood.
    let case_threads: Vec<_> = cases()
        .into_iter()
        .map(|c| {
            let port = if c.api { api } else { http };
            thread::spawn(move || {
                let out = run_case(port, &c);
                (c.name, c.expect, out)
            })
        })
        .collect();

    let overflows_before = listen_overflows();
    let flood_start = Instant::now();
    let mut flood = Flood::open(http, IDLE_CONNECTIONS);
    let open_took = flood_start.elapsed();
    let overflows = listen_overflows()
        .zip(overflows_before)
        .map(|(a, b)| a.saturating_sub(b));

    // While the idle connections are held: the API and the live FLV mount answer, and the
    // server closes the idle ones when their header-read time-out runs out.
    let mut api_worst = Duration::ZERO;
    let mut api_calls = 0;
    let mut flv_status = None;
    let flood_deadline = flood.last_opened + HEADER_READ_TIMEOUT + CLOSE_SLACK;
    while flood.open_count() > 0 && Instant::now() < flood_deadline {
        for path in ["/api/v1/versions", "/api/v1/summaries"] {
            match get_status(api, path) {
                Ok((200, took)) => api_worst = api_worst.max(took),
                Ok((code, _)) => panic!("API {path} answered {code} during the flood"),
                Err(e) => panic!(
                    "API {path} did not answer during the flood ({} idle connections open): {e}",
                    flood.open_count()
                ),
            }
            api_calls += 1;
        }
        // Retried until it plays: the publisher may still be connecting at first.
        if !matches!(flv_status, Some(Ok((200, _)))) {
            flv_status = Some(get_status(http, "/live/test.flv"));
        }
        flood.poll();
        thread::sleep(Duration::from_millis(250));
    }
    let still_open = flood.open_count();
    let closed_min = flood.close_times.iter().min().copied();
    let closed_max = flood.close_times.iter().max().copied();

    let mut table = Vec::new();
    let mut failures = Vec::new();
    for t in case_threads {
        let (name, expect, out) = t.join().expect("case thread panicked");
        table.push(format!("{name:<42} {out}"));
        let ok = match expect {
            Expect::Status(codes) => {
                out.status.is_some_and(|s| codes.contains(&s))
                    && out.end != End::StillOpen
                    && out.after <= PROMPT
            }
            Expect::TimedOut => out.end != End::StillOpen,
        };
        if !ok {
            failures.push(format!("{name}: got {out}, expected {expect:?}"));
        }
    }
    eprintln!("----- what sluice answered -----");
    for line in &table {
        eprintln!("{line}");
    }
    eprintln!(
        "{IDLE_CONNECTIONS} idle connections (half silent, half with half a request line): \
         opened in {:.2} s (slowest connect {:.0} ms, accept-queue overflows {overflows:?}); {} closed by the server (soonest {:.1} s, \
         latest {:.1} s after its connect, {} by reset, responses {:?}), {still_open} still open \
         {:.0} s after the last connect",
        open_took.as_secs_f64(),
        flood.slowest_connect.as_secs_f64() * 1000.0,
        flood.close_times.len(),
        closed_min.unwrap_or_default().as_secs_f64(),
        closed_max.unwrap_or_default().as_secs_f64(),
        flood.resets,
        flood.responses.iter().fold(
            std::collections::BTreeMap::<u16, usize>::new(),
            |mut m, c| {
                *m.entry(*c).or_default() += 1;
                m
            }
        ),
        (HEADER_READ_TIMEOUT + CLOSE_SLACK).as_secs_f64()
    );
    eprintln!(
        "API during the flood: {api_calls} requests, slowest {:.0} ms; GET /live/test.flv: {flv_status:?}",
        api_worst.as_secs_f64() * 1000.0
    );
    assert!(failures.is_empty(), "bad answers:\n{}", failures.join("\n"));
    assert_eq!(
        still_open,
        0,
        "{still_open} idle connections still open {:?} after the last one was opened",
        HEADER_READ_TIMEOUT + CLOSE_SLACK
    );
    assert!(api_calls > 0, "the API was never asked");
    match flv_status {
        Some(Ok((200, _))) => {}
        other => panic!("live FLV mount during the flood: {other:?}"),
    }
    assert!(server.is_alive(), "sluice died");

    // The RTMP side never noticed.
    publisher.expect_success(PUBLISH_TIMEOUT);
    player.expect_success(PLAYER_EXIT_TIMEOUT);
    assert_same_stream(
        "RTMP player during the HTTP flood",
        &flv_stats(&recorded),
        &fixture_stats(AVC_AAC),
    );

    // And nothing leaked: the server's descriptors are back to (at most) where they were.
    let fds_after = wait_for(Duration::from_secs(3), || {
        let now = server.open_fds()?;
        (now <= fds_before? + 2).then_some(now)
    });
    assert!(
        fds_after.is_some(),
        "server descriptors: {fds_before:?} before the flood, {:?} after",
        server.open_fds()
    );
    eprintln!("server descriptors: {fds_before:?} before the flood, {fds_after:?} after");
    assert!(server.is_alive(), "sluice died");
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
