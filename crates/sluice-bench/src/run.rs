//! Driving a run: the publisher on its own thread (its pacing must not depend on how busy
//! the players are), the players on a small runtime, a progress line once a second, and
//! the resource figures sampled over the steady-state window.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtmp::client::ClientError;
use tokio::sync::watch;

use crate::player::{self, PlayerResult, Protocol};
use crate::procstat::{CpuMark, Target};
use crate::publisher::{self, Phase, PublishStats};
use crate::report::{Report, Resources};
use crate::shared::{PlayerState, Shared};
use crate::source::{LoopSource, SourceError};
use crate::stats::kbps;

/// How long players wait for the publisher's stream to settle (a keyframe in the GOP cache)
/// before the first one connects.
pub const WARMUP: Duration = Duration::from_secs(1);
/// Most time allowed for the last players to finish connecting after the ramp.
pub const CONNECT_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct PlayConfig {
    /// The URL players open (rtmp://, or http:// .flv / .m3u8).
    pub url: String,
    pub protocol: Protocol,
    pub clients: usize,
    /// New players per second; 0 = all at once.
    pub ramp: f64,
    /// Steady-state window, after every player connected (or failed).
    pub duration: Duration,
    /// Time players keep reading after the publisher stopped, to drain what is in flight.
    pub grace: Duration,
    pub server_pid: Option<u32>,
    /// Player runtime threads; 1 = a current-thread runtime.
    pub threads: usize,
    /// An idle player thread sleeps this long before it polls its sockets again, so
    /// that one poll collects the writes of many players (see [`runtime`]).
    pub read_tick: Duration,
    pub progress: bool,
    /// Trust for `rtmps://` players (the server's CA).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Debug, Clone)]
pub struct FanoutConfig {
    pub play: PlayConfig,
    /// The RTMP URL published to.
    pub publish_url: String,
    pub file: PathBuf,
}

/// Why a run could not start or finish; `main` prints it and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read {}: {source}", path.display())]
    ReadSource {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: SourceError,
    },
    #[error("cannot start a tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot start the publisher thread: {0}")]
    PublisherThread(#[source] std::io::Error),
    #[error("publisher: {0}")]
    Publisher(#[source] ClientError),
    #[error("the publisher did not start within 15 s")]
    PublisherNotStarted,
    #[error("the publisher thread panicked")]
    PublisherPanicked,
    #[error("task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

pub fn load_source(file: &std::path::Path) -> Result<LoopSource, RunError> {
    let data = std::fs::read(file).map_err(|source| RunError::ReadSource {
        path: file.to_path_buf(),
        source,
    })?;
    LoopSource::from_flv(Bytes::from(data)).map_err(|source| RunError::Source {
        path: file.to_path_buf(),
        source,
    })
}

/// A runtime of `threads` threads. With a `read_tick`, a thread that ran out of
/// work while `ticking` is set sleeps that long before it waits on its sockets: a
/// server writes to its players one after another, and a thread woken by each
/// write would cost a wake-up (on loopback, partly charged to the server being
/// measured) and an `epoll_wait` per player; after the tick one wait collects
/// them all. Frames are then timed up to one tick late, so the tick is set only
/// for the steady state, not while players connect (first-frame times).
fn runtime(
    threads: usize,
    read_tick: Duration,
    ticking: Arc<std::sync::atomic::AtomicBool>,
) -> Result<tokio::runtime::Runtime, RunError> {
    let mut b = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    if !read_tick.is_zero() {
        b.on_thread_park(move || {
            if ticking.load(Relaxed) {
                std::thread::sleep(read_tick);
            }
        });
    }
    b.enable_all().build().map_err(RunError::Runtime)
}

/// One publisher and the players: the `fanout` command.
pub fn fanout(cfg: &FanoutConfig) -> Result<Report, RunError> {
    let source = Arc::new(load_source(&cfg.file)?);
    let shared = Arc::new(Shared::new(cfg.play.clients));
    let (phase_tx, phase_rx) = watch::channel(Phase::Send);
    let (published_tx, published_rx) = std::sync::mpsc::channel();
    let pub_thread = {
        let url = cfg.publish_url.clone();
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || -> Result<PublishStats, RunError> {
                let rt = runtime(1, Duration::ZERO, Default::default())?;
                let (tx, rx) = tokio::sync::oneshot::channel();
                let r = rt.block_on(async move {
                    let run =
                        publisher::publish(&url, source, None, Some(shared), phase_rx, Some(tx));
                    tokio::pin!(run);
                    tokio::select! {
                        r = &mut run => r,
                        ok = rx => {
                            let _ = published_tx.send(ok.is_ok());
                            run.await
                        }
                    }
                });
                r.map_err(RunError::Publisher)
            })
            .map_err(RunError::PublisherThread)?
    };
    // Wait for Publish.Start (or the publisher's failure).
    if published_rx.recv_timeout(Duration::from_secs(15)) != Ok(true) {
        let _ = phase_tx.send(Phase::Close);
        return match pub_thread.join() {
            Ok(Err(e)) => Err(e),
            _ => Err(RunError::PublisherNotStarted),
        };
    }
    std::thread::sleep(WARMUP);
    let report = players(&cfg.play, shared.clone(), Some(&phase_tx));
    let _ = phase_tx.send(Phase::Close);
    let pub_result = pub_thread.join().map_err(|_| RunError::PublisherPanicked)?;
    let report = report?;
    if let Err(e) = pub_result {
        eprintln!("warning: {e:#}");
    }
    Ok(report)
}

/// Players only (`play`), or the player half of `fanout` when `phase` is given.
pub fn players(
    cfg: &PlayConfig,
    shared: Arc<Shared>,
    phase: Option<&watch::Sender<Phase>>,
) -> Result<Report, RunError> {
    let stream = PlayedStream {
        url: Arc::from(cfg.url.as_str()),
        shared,
    };
    players_of_streams(cfg, std::slice::from_ref(&stream), phase)
}

/// One stream's players: the URL they open and the state they share (with its
/// publisher's log, when our publisher feeds it).
#[derive(Clone)]
pub struct PlayedStream {
    pub url: Arc<str>,
    pub shared: Arc<Shared>,
}

/// `cfg.clients` players of each stream (interleaved, so a ramp reaches every stream
/// early), the window measured over all of them, one report.
pub fn players_of_streams(
    cfg: &PlayConfig,
    streams: &[PlayedStream],
    phase: Option<&watch::Sender<Phase>>,
) -> Result<Report, RunError> {
    let ticking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rt = runtime(cfg.threads, cfg.read_tick, ticking.clone())?;
    let server = cfg.server_pid.map(Target::Pid);
    let bytes = || -> u64 { streams.iter().map(|s| s.shared.bytes.load(Relaxed)).sum() };
    rt.block_on(async {
        let (stop, stop_rx) = watch::channel(false);
        let progress = cfg.progress.then(|| {
            tokio::spawn(progress_loop(
                streams.iter().map(|s| s.shared.clone()).collect(),
            ))
        });
        let rss_base = server.and_then(|s| s.rss_bytes());
        let ramp_start = tokio::time::Instant::now();
        let mut handles: Vec<Vec<_>> = streams
            .iter()
            .map(|_| Vec::with_capacity(cfg.clients))
            .collect();
        let mut n = 0usize;
        for i in 0..cfg.clients {
            for (stream, handles) in streams.iter().zip(handles.iter_mut()) {
                if cfg.ramp > 0.0 {
                    let at = ramp_start + Duration::from_secs_f64(n as f64 / cfg.ramp);
                    tokio::time::sleep_until(at).await;
                }
                n += 1;
                handles.push(tokio::spawn(player::run(
                    cfg.protocol,
                    stream.url.clone(),
                    cfg.tls.clone(),
                    stream.shared.clone(),
                    i,
                    stop_rx.clone(),
                )));
            }
        }
        // The window starts once nobody is still connecting.
        let wait_until = tokio::time::Instant::now() + CONNECT_WAIT;
        while tokio::time::Instant::now() < wait_until
            && streams.iter().any(|s| {
                s.shared
                    .slots
                    .iter()
                    .any(|s| s.state() == PlayerState::Pending)
            })
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ticking.store(true, Relaxed);
        let server_start = server.and_then(CpuMark::take);
        let writes_start = server.and_then(|s| s.write_bytes());
        let bench_start = CpuMark::take(Target::SelfProcess);
        let bytes_start = bytes();
        let window_start = Instant::now();
        tokio::time::sleep(cfg.duration).await;
        let window = window_start.elapsed();
        let server_end = server.and_then(CpuMark::take);
        let bench_end = CpuMark::take(Target::SelfProcess);
        let resources = Resources {
            server_cpu_pct: server_start
                .zip(server_end)
                .map(|(a, b)| a.percent_until(&b)),
            server_rss_bytes: server.and_then(|s| s.rss_bytes()),
            server_rss_base_bytes: rss_base,
            bench_cpu_pct: bench_start.zip(bench_end).map(|(a, b)| a.percent_until(&b)),
            bench_rss_bytes: Target::SelfProcess.rss_bytes(),
            aggregate_kbps: kbps(bytes() - bytes_start, window),
            window_secs: window.as_secs_f64(),
            server_write_bytes: writes_start
                .zip(server.and_then(|s| s.write_bytes()))
                .map(|(a, b)| b.saturating_sub(a)),
        };
        ticking.store(false, Relaxed);
        if let Some(p) = phase {
            let _ = p.send(Phase::Hold);
        }
        tokio::time::sleep(cfg.grace).await;
        let _ = stop.send(true);
        let mut results = Vec::with_capacity(streams.len());
        for hs in handles {
            let mut rs = Vec::with_capacity(hs.len());
            for h in hs {
                rs.push(h.await.unwrap_or_default());
            }
            results.push(rs);
        }
        if let Some(p) = progress {
            p.abort();
        }
        let parts: Vec<(&[PlayerResult], u64)> = results
            .iter()
            .zip(streams)
            .map(|(rs, s)| (rs.as_slice(), s.shared.log_len() as u64))
            .collect();
        // Every stream of a run shares one histogram (see `Shared::latency`).
        let latency = streams
            .first()
            .map(|s| s.shared.latency.snapshot())
            .unwrap_or_default();
        Ok(Report::from_streams(
            &cfg.protocol.to_string(),
            &parts,
            latency,
            resources,
        ))
    })
}

async fn progress_loop(streams: Vec<Arc<Shared>>) {
    let start = Instant::now();
    let total = || -> u64 { streams.iter().map(|s| s.bytes.load(Relaxed)).sum() };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = (Instant::now(), total());
    loop {
        tick.tick().await;
        let now = Instant::now();
        let bytes = total();
        let (connected, failed, late) = streams
            .iter()
            .map(|s| s.counts())
            .fold((0, 0, 0), |(a, b, c), (x, y, z)| (a + x, b + y, c + z));
        eprintln!(
            "[{:>4.0}s] connected {connected} failed {failed} rate {:.1} Mbps late {late}",
            start.elapsed().as_secs_f64(),
            kbps(bytes - last.1, now - last.0) / 1000.0,
        );
        last = (now, bytes);
    }
}

/// `publish`: N streams (`stream`, `stream_1`, ...) for `duration` (or until Ctrl-C).
pub fn publish_streams(
    url: &str,
    file: &std::path::Path,
    streams: usize,
    duration: Option<Duration>,
) -> Result<Vec<Result<PublishStats, RunError>>, RunError> {
    let source = Arc::new(load_source(file)?);
    eprintln!(
        "{}: {:.0} kbps, loop every {} ms",
        file.display(),
        source.kbps(),
        source.pass_ms()
    );
    let rt = runtime(1, Duration::ZERO, Default::default())?;
    rt.block_on(async {
        let (_tx, rx) = watch::channel(Phase::Send);
        let mut handles = Vec::new();
        for i in 0..streams {
            let url = if i == 0 {
                url.to_string()
            } else {
                format!("{url}_{i}")
            };
            let (source, rx) = (source.clone(), rx.clone());
            handles.push(tokio::spawn(async move {
                publisher::publish(&url, source, duration, None, rx, None).await
            }));
        }
        let mut out = Vec::new();
        for h in handles {
            out.push(match h.await {
                Ok(r) => r.map_err(RunError::Publisher),
                Err(e) => Err(RunError::Task(e)),
            });
        }
        Ok(out)
    })
}

#[derive(Debug, Clone)]
pub struct MultiConfig {
    /// `clients` is the number of players of EACH stream (0 = publishers only).
    pub play: PlayConfig,
    /// rtmp://HOST:PORT/APP/STREAM: streams STREAM, STREAM_1, ... STREAM_{N-1}.
    pub publish_url: String,
    /// The URL players of stream `i` open, from that stream's publish URL.
    pub play_urls: Vec<String>,
    pub file: PathBuf,
    /// Threads of the publishers' runtime (their pacing must not depend on the players).
    pub publisher_threads: usize,
}

/// What the publishers of a multi-stream run did.
#[derive(Debug, Clone, Default)]
pub struct PublishersSummary {
    pub streams: usize,
    /// Publishers that got Publish.Start.
    pub started: usize,
    pub errors: std::collections::BTreeMap<String, usize>,
    pub frames: u64,
    /// Worst lateness of any publisher against its schedule, ms.
    pub max_late_ms: u64,
}

/// The name of stream `i` of a multi-stream run: `stream`, `stream_1`, ...
pub fn stream_url(base: &str, i: usize) -> String {
    if i == 0 {
        base.to_string()
    } else {
        format!("{base}_{i}")
    }
}

/// N publishers, each with its own players: many streams (`--streams 1000 --clients 10`),
/// ingest (`--clients 1`), or publishers alone (`--clients 0`, e.g. HLS at scale).
pub fn multi(cfg: &MultiConfig) -> Result<(Report, PublishersSummary), RunError> {
    let source = Arc::new(load_source(&cfg.file)?);
    let n = cfg.play_urls.len();
    let latency = Arc::new(crate::shared::AtomicHistogram::default());
    let streams: Vec<PlayedStream> = cfg
        .play_urls
        .iter()
        .map(|u| PlayedStream {
            url: Arc::from(u.as_str()),
            shared: Arc::new(Shared::with_latency(cfg.play.clients, latency.clone())),
        })
        .collect();
    let (phase_tx, phase_rx) = watch::channel(Phase::Send);
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let pub_thread = {
        let shared: Vec<Arc<Shared>> = streams.iter().map(|s| s.shared.clone()).collect();
        let base = cfg.publish_url.clone();
        let threads = cfg.publisher_threads;
        std::thread::Builder::new()
            .name("publishers".into())
            .spawn(
                move || -> Result<Vec<Result<PublishStats, String>>, RunError> {
                    let rt = runtime(threads, Duration::ZERO, Default::default())?;
                    rt.block_on(async move {
                        let mut handles = Vec::with_capacity(shared.len());
                        for (i, shared) in shared.into_iter().enumerate() {
                            let url = stream_url(&base, i);
                            let (source, phase) = (source.clone(), phase_rx.clone());
                            let started = started_tx.clone();
                            handles.push(tokio::spawn(async move {
                                let (tx, rx) = tokio::sync::oneshot::channel();
                                let run = publisher::publish(
                                    &url,
                                    source,
                                    None,
                                    Some(shared),
                                    phase,
                                    Some(tx),
                                );
                                tokio::pin!(run);
                                tokio::select! {
                                    r = &mut run => r,
                                    ok = rx => {
                                        if ok.is_ok() {
                                            let _ = started.send(());
                                        }
                                        run.await
                                    }
                                }
                            }));
                        }
                        drop(started_tx);
                        let mut out = Vec::with_capacity(handles.len());
                        for h in handles {
                            out.push(match h.await {
                                Ok(r) => r.map_err(|e| e.to_string()),
                                Err(e) => Err(e.to_string()),
                            });
                        }
                        Ok(out)
                    })
                },
            )
            .map_err(RunError::PublisherThread)?
    };
    // Wait until every publisher started, or those that will have (the rest failed).
    let deadline = Instant::now() + Duration::from_secs(15) + Duration::from_millis(20 * n as u64);
    let mut started = 0;
    while started < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match started_rx.recv_timeout(left) {
            Ok(()) => started += 1,
            Err(_) => break,
        }
    }
    if started == 0 {
        let _ = phase_tx.send(Phase::Close);
        let _ = pub_thread.join();
        return Err(RunError::PublisherNotStarted);
    }
    std::thread::sleep(WARMUP);
    let report = players_of_streams(&cfg.play, &streams, Some(&phase_tx));
    let _ = phase_tx.send(Phase::Close);
    let results = pub_thread
        .join()
        .map_err(|_| RunError::PublisherPanicked)??;
    let mut summary = PublishersSummary {
        streams: n,
        started,
        ..PublishersSummary::default()
    };
    for r in results {
        match r {
            Ok(s) => {
                summary.frames += s.frames;
                summary.max_late_ms = summary.max_late_ms.max(s.max_late_ms);
            }
            Err(e) => *summary.errors.entry(e).or_default() += 1,
        }
    }
    Ok((report?, summary))
}
