//! TLS end to end: RTMPS and HTTPS listeners with a certificate from a CA the test
//! makes itself (rcgen), driven by real peers: ffmpeg publishes and plays over
//! rtmps://, ffmpeg/ffprobe play HTTP-FLV and HLS over https://, curl reads the API
//! trusting only that CA. Then what must not hurt live players: plain RTMP and
//! garbage on the RTMPS port, a flood of half-open handshakes.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::*;

struct Ports {
    rtmps: u16,
    api: u16,
    https_api: u16,
    http: u16,
    https: u16,
}

fn tls_server(tag: &str, pki: &Pki, extra: &str) -> (Server, Ports) {
    let ports = Ports {
        rtmps: free_port(),
        api: free_port(),
        https_api: free_port(),
        http: free_port(),
        https: free_port(),
    };
    let html = unique_dir(&format!("{tag}-html"));
    let body = format!(
        "max_connections 3000;\nmax_connections_per_ip 0;\n\
         rtmps {{ enabled on; listen 127.0.0.1:{rtmps}; key {key}; cert {cert}; }}\n\
         http_api {{ enabled on; listen 127.0.0.1:{api};\n\
           https {{ enabled on; listen 127.0.0.1:{https_api}; key {key}; cert {cert}; }} }}\n\
         http_server {{ enabled on; listen 127.0.0.1:{http}; dir {html};\n\
           https {{ enabled on; listen 127.0.0.1:{https}; key {key}; cert {cert}; }} }}\n\
         {extra}\n\
         vhost __defaultVhost__ {{\n\
           http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}\n\
           hls {{ enabled on; hls_fragment 1; hls_window 6; hls_path {html}; }}\n\
         }}\n",
        rtmps = ports.rtmps,
        api = ports.api,
        https_api = ports.https_api,
        http = ports.http,
        https = ports.https,
        key = pki.key.display(),
        cert = pki.cert.display(),
        html = html.display(),
    );
    (Server::start_with(tag, &body), ports)
}

fn wait_port(port: u16) {
    let up = wait_for(Duration::from_secs(10), || {
        TcpStream::connect(addr(port)).ok().map(|_| ())
    });
    assert!(up.is_some(), "port {port} never opened");
}

fn record(server: &Server, url: &str, tag: &str, secs: &str) -> (Proc, PathBuf) {
    let out = server.tmp(&format!("{tag}.flv"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i", url])
        .args(["-t", secs, "-c", "copy", "-f", "flv", "-y"])
        .arg(&out);
    let p = Proc::spawn(
        &format!("ffmpeg {tag}"),
        cmd,
        server.tmp(&format!("{tag}.log")),
    );
    (p, out)
}

/// ffmpeg publishes over RTMPS; ffmpeg plays it back over RTMPS and over HTTPS-FLV
/// with every track intact; ffprobe reads the HLS playlist over HTTPS; curl reads the
/// API over HTTPS trusting only the test CA (so the chain, the names and ALPN are
/// right, not just "some TLS").
#[test]
fn rtmps_and_https_serve_what_the_plain_listeners_serve() {
    require_ffmpeg();
    require_tool("curl");
    let dir = unique_dir("tls-pki");
    let pki = Pki::new(&dir, "a");
    let (server, ports) = tls_server("tls-e2e", &pki, "");
    wait_port(ports.rtmps);
    let publish_url = format!("rtmps://127.0.0.1:{}/live/s", ports.rtmps);
    let mut publisher = spawn_publisher_args(
        &server,
        "avc-aac-640x360-10s.flv",
        &publish_url,
        "rtmps",
        &[],
    );
    // Players join while the publisher runs and record until it ends.
    let live = wait_for(Duration::from_secs(10), || {
        let out = Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(&pki.ca)
            .arg(format!(
                "https://127.0.0.1:{}/api/v1/streams/",
                ports.https_api
            ))
            .output()
            .ok()?;
        let body = String::from_utf8_lossy(&out.stdout).to_string();
        (body.contains("\"name\":\"s\"") && body.contains("\"active\":true")).then_some(body)
    });
    assert!(
        live.is_some(),
        "the API over HTTPS never showed the RTMPS publisher"
    );
    let (mut rtmps_player, rtmps_out) = record(
        &server,
        &format!("rtmps://127.0.0.1:{}/live/s", ports.rtmps),
        "rtmps-player",
        "6",
    );
    let (mut flv_player, flv_out) = record(
        &server,
        &format!("https://127.0.0.1:{}/live/s.flv", ports.https),
        "https-flv-player",
        "6",
    );
    // HLS over HTTPS, once a playlist exists.
    let m3u8 = format!("https://127.0.0.1:{}/live/s.m3u8", ports.https);
    let probed = wait_for(Duration::from_secs(15), || {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
            ])
            .arg(&m3u8)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (text.contains("h264") && text.contains("aac")).then_some(text)
    });
    assert!(probed.is_some(), "ffprobe could not read HLS over HTTPS");
    rtmps_player.expect_success(Duration::from_secs(30));
    flv_player.expect_success(Duration::from_secs(30));
    publisher.expect_success(Duration::from_secs(30));
    for (label, out) in [("RTMPS", &rtmps_out), ("HTTPS-FLV", &flv_out)] {
        let got = flv_stats(out);
        assert!(
            got.video_frames > 100 && got.audio_frames > 150,
            "{label} player got {got:?}"
        );
        assert_eq!(got.width_height, Some((640, 360)), "{label}: {got:?}");
        assert!(
            got.video_seq_before_frames && got.audio_seq_before_frames,
            "{label}: {got:?}"
        );
        assert_eq!(
            got.video_ts_regressions + got.audio_ts_regressions,
            0,
            "{label}: {got:?}"
        );
    }
    // The API answers over HTTPS with the CA alone, and the version reply is SRS's.
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&pki.ca)
        .arg(format!(
            "https://localhost:{}/api/v1/versions",
            ports.https_api
        ))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("\"code\":0"), "{body} {out:?}");
    // A client that does not trust the CA is refused by its own verification.
    let out = Command::new("curl")
        .arg("-sS")
        .arg(format!(
            "https://127.0.0.1:{}/api/v1/versions",
            ports.https_api
        ))
        .output()
        .unwrap();
    assert!(!out.status.success(), "curl trusted an unknown CA?");
    drop(server);
}

/// What the RTMPS port gets that is not TLS, or never finishes its handshake: a
/// plain RTMP handshake, random bytes, a garbled ClientHello, and 1,000 connections that
/// send nothing. Each is closed (the flood within the handshake time-out, with never more
/// than the cap of 256 handshakes in progress), the server logs why, and a
/// live RTMPS player keeps receiving throughout; afterwards a new RTMPS client works.
#[test]
fn garbage_and_half_open_handshakes_on_rtmps_leave_live_players_alone() {
    require_ffmpeg();
    raise_fd_limit(4096);
    let dir = unique_dir("tls-flood-pki");
    let pki = Pki::new(&dir, "a");
    let (server, ports) = tls_server("tls-flood", &pki, "");
    wait_port(ports.rtmps);
    // Thirty seconds (the fixture three times): live until the end of the test.
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "2", "-i"])
        .arg(fixture("avc-aac-640x360-10s.flv"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.url("live/s"));
    let _publisher = Proc::spawn("ffmpeg publisher", cmd, server.tmp("publisher.log"));
    std::thread::sleep(Duration::from_millis(800));
    let (mut player, player_out) = record(
        &server,
        &format!("rtmps://127.0.0.1:{}/live/s", ports.rtmps),
        "rtmps-player",
        "7",
    );
    std::thread::sleep(Duration::from_millis(500));

    // A plain RTMP client on the TLS port: its C0/C1 is not a ClientHello.
    let mut plain = TcpStream::connect(addr(ports.rtmps)).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend(pseudo_random(1, 1536));
    plain.write_all(&c0c1).unwrap();
    assert_closed(&mut plain, "plain RTMP on the RTMPS port");
    // Random bytes.
    let mut garbage = TcpStream::connect(addr(ports.rtmps)).unwrap();
    let _ = garbage.write_all(&pseudo_random(2, 4096));
    assert_closed(&mut garbage, "garbage on the RTMPS port");
    // TLS garbage: a handshake record header, then nonsense inside it.
    let mut tls_garbage = TcpStream::connect(addr(ports.rtmps)).unwrap();
    let mut hello = vec![0x16, 0x03, 0x01, 0x02, 0x00];
    hello.extend(pseudo_random(3, 512));
    let _ = tls_garbage.write_all(&hello);
    assert_closed(&mut tls_garbage, "a garbled ClientHello");
    // A thousand connections that never say anything.
    let mut idle = Vec::new();
    for _ in 0..1000 {
        match TcpStream::connect(addr(ports.rtmps)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect {}: {e}", idle.len()),
        }
    }
    // The cap holds: no more than MAX_HANDSHAKES (256) are in progress, the rest wait.
    // Read while every idle connection is still open (they are closed at 10 s).
    let in_progress = wait_for(Duration::from_secs(5), || {
        let n = metric(ports.api, "sluice_tls_handshakes_in_progress")?;
        (n == 256).then_some(n)
    });
    assert_eq!(
        in_progress,
        Some(256),
        "handshakes in progress during the flood of 1,000 (last read: {:?})",
        metric(ports.api, "sluice_tls_handshakes_in_progress")
    );
    // All are closed within the handshake time-out (10 s): those past the cap either
    // never get a turn (logged as such) or get one too late to finish; the log says why.
    // Which of the two a waiter meets depends on how the accepts spread over time, so
    // only the time-out line is required.
    let n = idle.len();
    for i in [0, n - 1] {
        let s = &mut idle[i];
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 64];
        let r = s.read(&mut buf);
        assert!(
            matches!(r, Ok(0)) || r.as_ref().is_err_and(|e| !is_timeout(e)),
            "an idle TLS connection is still open: {r:?}"
        );
    }
    let log = wait_for(Duration::from_secs(10), || {
        let log = server.log();
        log.contains("TLS handshake not finished within")
            .then_some(log)
    });
    assert!(
        log.is_some(),
        "no log line for the timed-out handshakes (\"TLS handshake not finished within\")"
    );
    player.expect_success(Duration::from_secs(30));
    let got = flv_stats(&player_out);
    assert!(
        got.video_frames > 120 && got.audio_frames > 200,
        "the RTMPS player starved during the flood: {got:?}"
    );
    drop(idle);
    // The cap is free again: a new RTMPS player plays.
    let (mut again, again_out) = record(
        &server,
        &format!("rtmps://127.0.0.1:{}/live/s", ports.rtmps),
        "rtmps-again",
        "1",
    );
    again.expect_success(Duration::from_secs(20));
    assert!(flv_stats(&again_out).video_frames > 0);
    assert!(
        server.log().contains("TLS handshake failed"),
        "no log line for the non-TLS clients"
    );
    let failed = metric(ports.api, "sluice_tls_handshakes_failed_total")
        .unwrap_or_else(|| panic!("no TLS metrics at /metrics"));
    assert!(failed >= 700, "{failed} failed handshakes counted");
}

/// One unlabelled value from `/metrics`, or None when it cannot be read.
fn metric(api: u16, name: &str) -> Option<u64> {
    let out = Command::new("curl")
        .arg("-s")
        .arg(format!("http://127.0.0.1:{api}/metrics"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

fn assert_closed(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            // An alert, then the end.
            Ok(_) => continue,
            Err(e) if is_timeout(&e) => panic!("{what}: still open after {:?}", started.elapsed()),
            // A reset is a close too.
            Err(_) => return,
        }
    }
}

fn raise_fd_limit(want: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).unwrap();
    }
}

/// A forward and an edge pull, both over RTMPS between sluice processes: the origin
/// forwards to a second server's RTMPS port, and an edge pulls from the origin's
/// RTMPS port. Both trust the test CA through SSL_CERT_FILE, as an operator's
/// servers trust their CA through the system store.
#[test]
fn forward_and_edge_pull_go_over_rtmps() {
    require_ffmpeg();
    let dir = unique_dir("tls-cluster-pki");
    let pki = Pki::new(&dir, "a");
    let ca = pki.ca.display().to_string();
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let rtmps = |port: u16| {
        format!(
            "rtmps {{ enabled on; listen 127.0.0.1:{port}; key {}; cert {}; }}\n",
            pki.key.display(),
            pki.cert.display()
        )
    };
    let target_port = free_port();
    let target = Server::start_with_env("tls-fwd-target", &rtmps(target_port), &env);
    let origin_port = free_port();
    let origin = Server::start_with_env(
        "tls-origin",
        &format!(
            "{}vhost __defaultVhost__ {{ forward {{ enabled on; destination rtmps://127.0.0.1:{target_port}; }} }}\n",
            rtmps(origin_port)
        ),
        &env,
    );
    let edge = Server::start_with_env(
        "tls-edge",
        &format!(
            "vhost __defaultVhost__ {{ cluster {{ mode remote; origin rtmps://127.0.0.1:{origin_port}; }} }}\n"
        ),
        &env,
    );
    wait_port(origin_port);
    wait_port(target_port);
    let mut publisher = spawn_publisher(
        &origin,
        "avc-aac-640x360-10s.flv",
        &origin.url("live/s"),
        "origin",
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (mut forwarded, forwarded_out) = record(&target, &target.url("live/s"), "forwarded", "5");
    let (mut pulled, pulled_out) = record(&edge, &edge.url("live/s"), "pulled", "5");
    forwarded.expect_success(Duration::from_secs(30));
    pulled.expect_success(Duration::from_secs(30));
    for (label, out) in [("forward", &forwarded_out), ("edge", &pulled_out)] {
        let got = flv_stats(out);
        assert!(
            got.video_frames > 80 && got.audio_frames > 120,
            "{label} over RTMPS: {got:?}"
        );
        assert_eq!(got.width_height, Some((640, 360)), "{label}: {got:?}");
    }
    publisher.expect_success(Duration::from_secs(30));
    assert!(
        origin.log().contains("rtmps://127.0.0.1"),
        "the origin's log does not name the RTMPS destination"
    );
}

/// Fifty RTMPS players keep playing through a SIGHUP that swaps the certificate
/// and key files for ones from another CA; a connection made after the reload is
/// served the new certificate (a client trusting only the old CA is refused, one
/// trusting only the new CA gets in).
#[test]
fn a_sighup_swaps_the_certificate_under_fifty_rtmps_players() {
    require_ffmpeg();
    let dir = unique_dir("tls-reload-pki");
    let old = Pki::new(&dir, "old");
    let (server, ports) = tls_server("tls-reload", &old, "");
    wait_port(ports.rtmps);
    // Twenty seconds: the fixture twice.
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "1", "-i"])
        .arg(fixture("avc-aac-640x360-10s.flv"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.url("live/s"));
    let mut publisher = Proc::spawn("ffmpeg publisher", cmd, server.tmp("publisher.log"));
    std::thread::sleep(Duration::from_millis(1000));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("rtmps://localhost:{}/live/s", ports.rtmps);
    let old_roots = client_tls(&old.ca);
    let reloaded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut players = Vec::new();
    for _ in 0..50 {
        let url = url.clone();
        let tls = old_roots.clone();
        let reloaded = reloaded.clone();
        players.push(rt.spawn(async move {
            let options = rtmp::client::ClientOptions {
                tls: Some(tls),
                ..Default::default()
            };
            let mut player = rtmp::client::Client::connect_with(&url, options)
                .await
                .map_err(|e| format!("connect: {e}"))?
                .play()
                .await
                .map_err(|e| format!("play: {e}"))?;
            let (mut before, mut after) = (0usize, 0usize);
            while let Some(_msg) = player.recv().await.map_err(|e| format!("recv: {e}"))? {
                if reloaded.load(std::sync::atomic::Ordering::Relaxed) {
                    after += 1;
                } else {
                    before += 1;
                }
            }
            Ok::<_, String>((before, after))
        }));
    }
    std::thread::sleep(Duration::from_secs(4));
    // New files at the same paths, from another CA; then SIGHUP.
    let new = Pki::new(&dir.join("new"), "new");
    fs::copy(&new.cert, &old.cert).unwrap();
    fs::copy(&new.key, &old.key).unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let line = wait_for(Duration::from_secs(30), || {
        server
            .log()
            .lines()
            .find(|l| l.contains("config reloaded"))
            .map(str::to_string)
    });
    assert!(
        line.as_deref()
            .is_some_and(|l| l.contains("TLS certificates loaded")),
        "reload line: {line:?}"
    );
    reloaded.store(true, std::sync::atomic::Ordering::Relaxed);
    // New connections get the new certificate.
    let probe = |roots: std::sync::Arc<rustls::ClientConfig>| {
        let url = url.clone();
        rt.block_on(async move {
            let options = rtmp::client::ClientOptions {
                tls: Some(roots),
                ..Default::default()
            };
            rtmp::client::Client::connect_with(&url, options)
                .await
                .map(|_| ())
        })
    };
    assert!(
        probe(client_tls(&new.ca)).is_ok(),
        "the new certificate is not served"
    );
    let refused = probe(old_roots.clone());
    assert!(
        matches!(refused, Err(rtmp::client::ClientError::Tls(_))),
        "a client trusting only the old CA got in: {refused:?}"
    );
    publisher.expect_success(Duration::from_secs(40));
    for (i, p) in players.into_iter().enumerate() {
        let r = rt.block_on(p).unwrap();
        let (before, after) = r.unwrap_or_else(|e| panic!("player {i}: {e}"));
        assert!(
            before > 100 && after > 300,
            "player {i} got {before} messages before the reload and {after} after"
        );
    }
}

fn client_tls(ca: &Path) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A certificate that cannot be used stops the start with the file named; at a
/// reload, a key that does not match keeps the certificate in force (new clients
/// still get in with the old CA).
#[test]
fn bad_certificates_refuse_the_start_and_leave_a_reload_unchanged() {
    let dir = unique_dir("tls-bad-pki");
    let pki = Pki::new(&dir, "a");
    let port = free_port();
    let conf = dir.join("bad.conf");
    fs::write(
        &conf,
        format!(
            "listen 127.0.0.1:{};\nrtmps {{ enabled on; listen 127.0.0.1:{port}; key {}; cert {}; }}\n",
            free_port(),
            pki.key.display(),
            dir.join("nowhere.crt").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("-c").arg(&conf).current_dir(&dir);
    let mut p = Proc::spawn("sluice bad cert", cmd, dir.join("bad.log"));
    let status = p.wait_timeout(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| !s.success()),
        "sluice started with a missing certificate: {status:?}"
    );
    let out = p.output();
    assert!(
        out.contains("certificate") && out.contains("nowhere.crt"),
        "{out}"
    );
    // `sluice -t` reads the certificates too.
    let t = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&t.stderr);
    assert!(
        !t.status.success() && text.contains("nowhere.crt"),
        "{text}"
    );

    let (server, ports) = tls_server("tls-bad-reload", &pki, "");
    wait_port(ports.rtmps);
    let other = Pki::new(&dir.join("other"), "other");
    fs::copy(&other.key, &pki.key).unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let line = wait_for(Duration::from_secs(30), || {
        server
            .log()
            .lines()
            .find(|l| l.contains("reload failed"))
            .map(str::to_string)
    });
    assert!(
        line.as_deref()
            .is_some_and(|l| l.contains("does not match")),
        "{line:?}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = rtmp::client::ClientOptions {
        tls: Some(client_tls(&pki.ca)),
        ..Default::default()
    };
    let url = format!("rtmps://localhost:{}/live/s", ports.rtmps);
    let connected = rt.block_on(rtmp::client::Client::connect_with(&url, options));
    assert!(connected.is_ok(), "{:?}", connected.err());
}
