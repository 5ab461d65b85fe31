//! sluice-bench: parse the command line and run one command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice_bench::player::Protocol;
use sluice_bench::run::{self, FanoutConfig, PlayConfig};
use sluice_bench::shared::Shared;

#[derive(Parser, Debug)]
#[command(
    name = "sluice-bench",
    about = "Load generator and fan-out benchmark for live streaming servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug)]
struct PlayArgs {
    /// Players to run.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// New players per second (0 = all at once).
    #[arg(long, default_value_t = 1000.0)]
    ramp: f64,
    /// Seconds of steady state measured once every player has connected.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// rtmp, flv (HTTP-FLV) or hls.
    #[arg(long, default_value = "rtmp")]
    protocol: Protocol,
    /// Server process to sample CPU and RSS of (/proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Player runtime threads (1 = one current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// Seconds players keep reading after the publisher stops.
    #[arg(long, default_value_t = 3.0)]
    grace: f64,
    /// Milliseconds a player thread waits, once idle, before it polls its sockets
    /// again (0 = poll at once). Each poll then reads what came in meanwhile for
    /// many players, instead of waking per write; latencies read up to this late.
    #[arg(long, default_value_t = 1.0)]
    read_tick: f64,
    /// RTMP players over TLS: fanout plays rtmps://HOST:TLS_PORT/APP/STREAM (the
    /// publisher stays on plain RTMP). Needs --ca.
    #[arg(long)]
    tls: bool,
    /// Port of the server's RTMPS listener, with --tls.
    #[arg(long, default_value_t = 1936)]
    tls_port: u16,
    /// PEM file of the CA (or self-signed certificate) that rtmps:// players trust.
    #[arg(long)]
    ca: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Push an FLV file in real time over RTMP, looped with continuous timestamps.
    Publish {
        /// rtmp://HOST[:PORT]/APP/STREAM (more streams: STREAM_1, STREAM_2, ...).
        #[arg(long)]
        url: String,
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Seconds to publish (default: until interrupted).
        #[arg(long)]
        duration: Option<f64>,
    },
    /// N players of a live stream.
    Play {
        /// rtmp://..., http://.../STREAM.flv or http://.../STREAM.m3u8.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        args: PlayArgs,
    },
    /// SRS's RTMP bandwidth test against a vhost with `bandcheck` enabled: prints the play
    /// and publish kbps the server measured and the round-trip time (like SRS's
    /// srs_bandwidth_check).
    Bandcheck {
        /// rtmp://HOST[:PORT]/APP?key=KEY (add &vhost=NAME for a named vhost).
        url: String,
        /// Print the result as one JSON line on stdout.
        #[arg(long)]
        json: bool,
    },
    /// One publisher and N players: delivery latency, first-frame time, frames lost.
    Fanout {
        /// rtmp://HOST:PORT/APP/STREAM (published to; RTMP players play it too).
        #[arg(long)]
        url: String,
        #[arg(long)]
        file: PathBuf,
        /// HTTP port for flv/hls players (http://HOST:PORT/APP/STREAM.flv or .m3u8).
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
        #[command(flatten)]
        args: PlayArgs,
    },
    /// Many streams: N publishers (STREAM, STREAM_1, ...), each with --clients players
    /// (0 = publishers only). Many streams x few players, ingest (1 player each), HLS at
    /// scale (0 players; the server's disk writes are reported).
    Multi {
        /// rtmp://HOST:PORT/APP/STREAM (the first stream's name; the others get _1, _2 ...).
        #[arg(long)]
        url: String,
        #[arg(long)]
        file: PathBuf,
        /// Publishers (streams).
        #[arg(long)]
        streams: usize,
        /// Threads of the publishers' runtime.
        #[arg(long, default_value_t = 1)]
        publisher_threads: usize,
        /// HTTP port for flv/hls players.
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
        #[command(flatten)]
        args: PlayArgs,
    },
    /// N WebRTC players of one stream by WHEP (str0m clients, one UDP socket each): the
    /// frames and bytes each receives, and the server's CPU and RSS.
    Whep {
        /// http://HOST:PORT/rtc/v1/whep/?app=APP&stream=NAME
        #[arg(long)]
        url: String,
        /// Players to run.
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// New players per second (0 = all at once).
        #[arg(long, default_value_t = 50.0)]
        ramp: f64,
        /// Seconds measured once every player has connected and warmed up.
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
        /// Seconds between the last connection and the measurement.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        /// Seconds to wait for every player to connect.
        #[arg(long, default_value_t = 20.0)]
        connect_timeout: f64,
        /// Server process to sample CPU and RSS of (/proc).
        #[arg(long)]
        server_pid: Option<u32>,
        /// Worker threads the players run on.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// A number of seconds that is no duration (negative, NaN, too large).
#[derive(Debug, thiserror::Error)]
#[error("bad duration {0}")]
struct BadDuration(f64);

/// Anything that stops a command; printed once, before a non-zero exit.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Duration(#[from] BadDuration),
    #[error(transparent)]
    Url(#[from] rtmp::client::UrlError),
    #[error(transparent)]
    Run(#[from] run::RunError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("bandcheck: {0}")]
    Bandcheck(#[from] sluice_bench::bandcheck::BandcheckError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("whep: {0}")]
    Whep(#[from] sluice_bench::whep::WhepError),
}

fn secs(s: f64) -> Result<Duration, BadDuration> {
    Duration::try_from_secs_f64(s).map_err(|_| BadDuration(s))
}

/// A TLS client trusting the certificates of `ca` only.
fn client_tls(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, CliError> {
    use rustls_pki_types::pem::PemObject;
    let bad = |e: String| CliError::Tls(format!("{}: {e}", ca.display()));
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))? {
        roots
            .add(c.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

fn play_config(url: String, a: &PlayArgs) -> Result<PlayConfig, CliError> {
    let tls = match &a.ca {
        Some(ca) => Some(client_tls(ca)?),
        None if a.tls || url.to_ascii_lowercase().starts_with("rtmps://") => {
            return Err(CliError::Tls("rtmps:// players need --ca FILE".into()))
        }
        None => None,
    };
    Ok(PlayConfig {
        tls,
        url,
        protocol: a.protocol,
        clients: a.clients,
        ramp: a.ramp,
        duration: secs(a.duration)?,
        grace: secs(a.grace)?,
        server_pid: a.server_pid,
        threads: a.threads,
        read_tick: secs(a.read_tick / 1000.0)?,
        progress: !a.quiet,
    })
}

fn print(report: &sluice_bench::report::Report, json: bool) {
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
}

fn main() -> ExitCode {
    match real_main(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Publish {
            url,
            file,
            streams,
            duration,
        } => {
            let duration = duration.map(secs).transpose()?;
            let results = run::publish_streams(&url, &file, streams, duration)?;
            let mut ok = true;
            for (i, r) in results.iter().enumerate() {
                match r {
                    Ok(s) => println!("stream {i}: {} frames, {} bytes", s.frames, s.bytes),
                    Err(e) => {
                        ok = false;
                        println!("stream {i}: {e}");
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Play { url, args } => {
            let cfg = play_config(url, &args)?;
            let shared = Arc::new(Shared::new(cfg.clients));
            let report = run::players(&cfg, shared, None)?;
            print(&report, args.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bandcheck { url, json } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(CliError::Runtime)?;
            let outcome = rt.block_on(sluice_bench::bandcheck::run(&url))?;
            if json {
                println!("{}", outcome.to_json());
            } else {
                print!("{}", outcome.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Fanout {
            url,
            file,
            http_port,
            args,
        } => {
            let play_url = if args.tls {
                let u = rtmp::client::RtmpUrl::parse(&url)?;
                format!(
                    "rtmps://{}:{}/{}/{}",
                    u.host, args.tls_port, u.app, u.stream
                )
            } else {
                player_url(&url, args.protocol, http_port)?
            };
            let cfg = FanoutConfig {
                play: play_config(play_url, &args)?,
                publish_url: url,
                file,
            };
            let report = run::fanout(&cfg)?;
            print(&report, args.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Multi {
            url,
            file,
            streams,
            publisher_threads,
            http_port,
            args,
        } => {
            let play_urls = (0..streams)
                .map(|i| player_url(&run::stream_url(&url, i), args.protocol, http_port))
                .collect::<Result<Vec<_>, _>>()?;
            let cfg = run::MultiConfig {
                play: play_config(url.clone(), &args)?,
                publish_url: url,
                play_urls,
                file,
                publisher_threads,
            };
            let (report, publishers) = run::multi(&cfg)?;
            if args.json {
                let mut j = report.to_json();
                j["publishers"] = serde_json::json!({
                    "streams": publishers.streams,
                    "started": publishers.started,
                    "errors": publishers.errors,
                    "frames": publishers.frames,
                    "max_late_ms": publishers.max_late_ms,
                });
                println!("{j}");
            } else {
                print!("{}", report.to_text());
                println!(
                    "publishers  {} of {} started, {} frames, at most {} ms behind schedule",
                    publishers.started,
                    publishers.streams,
                    publishers.frames,
                    publishers.max_late_ms
                );
                for (e, n) in publishers.errors.iter().take(5) {
                    println!("  error ({n}x): {e}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Whep {
            url,
            clients,
            ramp,
            duration,
            warmup,
            connect_timeout,
            server_pid,
            threads,
            json,
        } => {
            let cfg = sluice_bench::whep::WhepConfig {
                url,
                clients,
                ramp,
                warmup: secs(warmup)?,
                duration: secs(duration)?,
                connect_timeout: secs(connect_timeout)?,
                server_pid,
                threads,
            };
            let report = sluice_bench::whep::run(&cfg)?;
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            Ok(if report.connected == report.clients {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// The URL players open for a published rtmp://HOST:PORT/APP/STREAM.
fn player_url(rtmp: &str, protocol: Protocol, http_port: u16) -> Result<String, CliError> {
    let u = rtmp::client::RtmpUrl::parse(rtmp)?;
    Ok(match protocol {
        Protocol::Rtmp => rtmp.to_string(),
        Protocol::Flv => format!("http://{}:{http_port}/{}/{}.flv", u.host, u.app, u.stream),
        Protocol::Hls => format!("http://{}:{http_port}/{}/{}.m3u8", u.host, u.app, u.stream),
    })
}
