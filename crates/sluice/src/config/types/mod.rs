//! The typed, validated configuration handed to the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

// One file per family of sections, so this one stays short; the types are re-exported here
// one by one, and `config` re-exports what the rest of the crate names.
mod bandcheck;
mod cluster;
mod dvr;
mod ffmpeg;
mod hooks;
mod http;
mod rtc;
mod srt;

pub use bandcheck::{BandcheckConfig, MAX_BANDCHECK_LIMIT_KBPS};
pub use cluster::{ClusterConfig, ClusterMode, ForwardConfig, DEFAULT_DIRECTORY_TTL_MS};
pub use dvr::{DvrApply, DvrConfig, DvrPlan};
pub use ffmpeg::{EngineConfig, FfmpegLogConfig, IngestConfig, IngestInputType, TranscodeConfig};
pub use hooks::{
    network_of, AccessScope, AccessTarget, HeartbeatConfig, HookUrl, HookUrlError, HttpHooksConfig,
    ReferConfig, SecurityConfig, SecurityRule, DEFAULT_HEARTBEAT_INTERVAL, MAX_HOOK_TIMEOUT_MS,
};
pub use http::{
    DashConfig, HlsAcodec, HlsConfig, HlsOnError, HlsVcodec, HttpApiConfig, HttpAuth,
    HttpRemuxConfig, HttpServerConfig, RawApiConfig, TlsListenConfig, VhostTlsConfig,
};
pub use rtc::{RtcServerConfig, VhostRtcConfig};
pub use srt::{SrtServerConfig, VhostSrtConfig, DEFAULT_SRT_PORT};

/// Name of the catch-all vhost, as in SRS.
pub const DEFAULT_VHOST: &str = "__defaultVhost__";

/// Where log lines go. Console is our default in the foreground (SRS defaults to file)
/// because sluice runs in the foreground unless told otherwise; with `daemon on` and no
/// `srs_log_tank` the default is file, as SRS's (see `build::daemon_log_default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTank {
    Console,
    File,
}

/// SRS's log levels, most verbose first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Verbose,
    Info,
    Trace,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub tank: LogTank,
    pub file: PathBuf,
    pub level: LogLevel,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            tank: LogTank::Console,
            // SRS's default `srs_log_file`.
            file: PathBuf::from("./objs/srs.log"),
            level: LogLevel::Trace,
        }
    }
}

/// SRS's timestamp correction for players.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeJitter {
    /// Start at zero and force monotonically increasing timestamps.
    Full,
    /// Only shift the stream to start at zero.
    Zero,
    /// Pass timestamps through untouched.
    Off,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlayConfig {
    /// Overrides `VhostConfig::gop_cache` when set.
    pub gop_cache: Option<bool>,
    /// Overrides `VhostConfig::queue_length` when set (seconds).
    pub queue_length: Option<f64>,
    /// Merged-write latency. 100 ms instead of SRS's 350: lower latency matters more to us than
    /// the few syscalls it saves.
    pub mw_latency: Duration,
    /// Overrides `VhostConfig::time_jitter` when set.
    pub time_jitter: Option<TimeJitter>,
    /// How long a player may wait on a stream nobody publishes (never started, or
    /// its publisher left) before it is closed; zero waits forever, as SRS does.
    /// sluice's own directive: players that never receive anything otherwise hold
    /// their connection slot for ever.
    pub unpublished_timeout: Duration,
    /// `play { atc }` (SRS 3+): overrides the vhost-level `atc` when set.
    pub atc: Option<bool>,
    /// `play { atc_auto }` (SRS 3+): overrides the vhost-level `atc_auto` when set.
    pub atc_auto: Option<bool>,
}

pub const DEFAULT_MW_LATENCY: Duration = Duration::from_millis(100);
pub const DEFAULT_UNPUBLISHED_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for PlayConfig {
    fn default() -> Self {
        PlayConfig {
            gop_cache: None,
            queue_length: None,
            mw_latency: DEFAULT_MW_LATENCY,
            time_jitter: None,
            unpublished_timeout: DEFAULT_UNPUBLISHED_TIMEOUT,
            atc: None,
            atc_auto: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PublishConfig {
    /// How long a new publisher may stay silent before the first media packet.
    pub firstpkt_timeout: Duration,
    /// How long an established publisher may stay silent.
    pub normal_timeout: Duration,
}

pub const DEFAULT_FIRSTPKT_TIMEOUT: Duration = Duration::from_millis(20_000);
pub const DEFAULT_NORMAL_TIMEOUT: Duration = Duration::from_millis(5_000);

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            firstpkt_timeout: DEFAULT_FIRSTPKT_TIMEOUT,
            normal_timeout: DEFAULT_NORMAL_TIMEOUT,
        }
    }
}

pub const DEFAULT_QUEUE_LENGTH: f64 = 30.0;

#[derive(Debug, Clone, PartialEq)]
pub struct VhostConfig {
    pub name: String,
    pub enabled: bool,
    pub chunk_size: Option<u32>,
    pub gop_cache: bool,
    pub queue_length: f64,
    pub time_jitter: TimeJitter,
    /// `tcp_nodelay`: TCP_NODELAY on players' sockets. On by default, unlike SRS
    /// (off): with Nagle's algorithm the tail of every merged write can wait for
    /// the player's ACK, a round trip of latency for no saving in system calls.
    pub tcp_nodelay: bool,
    /// `min_latency` (SRS's name): merged writes off, and players written to when a
    /// video frame arrives (with the audio before it) instead of once per message.
    /// Default off.
    pub min_latency: bool,
    pub play: PlayConfig,
    pub publish: PublishConfig,
    pub http_remux: HttpRemuxConfig,
    pub hls: HlsConfig,
    pub dash: DashConfig,
    pub cluster: ClusterConfig,
    pub forward: ForwardConfig,
    pub http_hooks: HttpHooksConfig,
    pub refer: ReferConfig,
    pub security: SecurityConfig,
    pub dvr: DvrConfig,
    /// `rtc { }`: WHIP/WHEP on this vhost and the bridge with RTMP.
    pub rtc: VhostRtcConfig,
    pub transcodes: Vec<TranscodeConfig>,
    pub ingests: Vec<IngestConfig>,
    /// `tls { }`: this vhost's own certificate, chosen by SNI.
    pub tls: Option<VhostTlsConfig>,
    /// `atc` (SRS 1/2 spelling at vhost level; SRS 3+ has it in `play`): absolute time,
    /// the publisher's timestamps passed to players and HLS untouched.
    pub atc: bool,
    /// `atc_auto`: turns `atc` on for a publish whose onMetaData says `bravo_atc: "true"`.
    pub atc_auto: bool,
    /// `bandcheck { }`: SRS's RTMP bandwidth test.
    pub bandcheck: BandcheckConfig,
    /// `srt { }`: SRT publish and play for this vhost.
    pub srt: VhostSrtConfig,
}

impl VhostConfig {
    /// A vhost with SRS's defaults.
    pub fn new(name: &str) -> Self {
        VhostConfig {
            name: name.to_string(),
            enabled: true,
            chunk_size: None,
            gop_cache: true,
            queue_length: DEFAULT_QUEUE_LENGTH,
            time_jitter: TimeJitter::Full,
            tcp_nodelay: true,
            min_latency: false,
            play: PlayConfig::default(),
            publish: PublishConfig::default(),
            http_remux: HttpRemuxConfig::default(),
            hls: HlsConfig::default(),
            dash: DashConfig::default(),
            cluster: ClusterConfig::default(),
            forward: ForwardConfig::default(),
            http_hooks: HttpHooksConfig::default(),
            refer: ReferConfig::default(),
            security: SecurityConfig::default(),
            dvr: DvrConfig::default(),
            rtc: VhostRtcConfig::default(),
            transcodes: Vec::new(),
            ingests: Vec::new(),
            tls: None,
            atc: false,
            atc_auto: false,
            bandcheck: BandcheckConfig::default(),
            srt: VhostSrtConfig::default(),
        }
    }

    /// How a stream of this vhost wakes its players: the merged-write interval
    /// (`play.mw_latency`, zero under `min_latency`) and whether wakes follow video
    /// frames (`min_latency`). Every publisher applies it through
    /// [`crate::hub::Source::apply_pacing`].
    pub fn pacing(&self) -> (std::time::Duration, bool) {
        if self.min_latency {
            (std::time::Duration::ZERO, true)
        } else {
            (self.play.mw_latency, false)
        }
    }

    /// `play { gop_cache }` wins over the vhost-level value (SRS 4+ moved it into `play`).
    pub fn effective_gop_cache(&self) -> bool {
        self.play.gop_cache.unwrap_or(self.gop_cache)
    }

    /// `play { queue_length }` wins over the vhost-level value.
    pub fn effective_queue_length(&self) -> f64 {
        self.play.queue_length.unwrap_or(self.queue_length)
    }

    /// `play { atc }` wins over the vhost-level value.
    pub fn effective_atc(&self) -> bool {
        self.play.atc.unwrap_or(self.atc)
    }

    /// `play { atc_auto }` wins over the vhost-level value.
    pub fn effective_atc_auto(&self) -> bool {
        self.play.atc_auto.unwrap_or(self.atc_auto)
    }

    /// `play { time_jitter }` wins over the vhost-level value.
    pub fn effective_time_jitter(&self) -> TimeJitter {
        self.play.time_jitter.unwrap_or(self.time_jitter)
    }
}

pub const DEFAULT_PORT: u16 = 1935;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// `max_connections_per_ip` (sluice's; SRS has none): a quarter of the default
/// `max_connections`, so that one address can never take every slot, yet far above
/// what one viewer, encoder or a few hundred viewers behind one NAT open.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// SRS's default `pithy_print_ms`.
pub const DEFAULT_PITHY_PRINT: Duration = Duration::from_millis(10_000);
/// The longest `pithy_print_ms` accepted: a day (longer is a typo, not a wish).
pub const MAX_PITHY_PRINT_MS: u64 = 86_400_000;
pub const DEFAULT_CHUNK_SIZE: u32 = 60_000;
pub const MIN_CHUNK_SIZE: u32 = 128;
pub const MAX_CHUNK_SIZE: u32 = 65_536;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub max_connections: usize,
    /// Connections one peer address (an IPv6 /64) may hold on the RTMP and HTTP
    /// server listeners at once; 0 = no limit. Not counted: the HTTP API's own cap.
    pub max_connections_per_ip: usize,
    pub chunk_size: u32,
    /// Off by default (SRS: on): modern deployments run under a supervisor or in a container.
    pub daemon: bool,
    pub pid: PathBuf,
    pub log: LogConfig,
    pub http_api: HttpApiConfig,
    pub http_server: HttpServerConfig,
    /// `rtmps { }`: RTMP over TLS, serving what the RTMP listeners serve.
    pub rtmps: TlsListenConfig,
    /// `srt_server { }`: the SRT listener.
    pub srt_server: SrtServerConfig,
    pub heartbeat: HeartbeatConfig,
    /// `rtc_server { }`: the UDP port of WebRTC media.
    pub rtc_server: RtcServerConfig,
    /// `ff_log_dir` and `ff_log_level`, for transcode and ingest processes.
    pub ff_log: FfmpegLogConfig,
    /// `pithy_print_ms`: how often the log gets one stats line per live stream and per
    /// long-lived client (SRS's "pithy print"), so an operator reading only the log sees
    /// rates and audiences without the API; zero turns it off.
    pub pithy_print: Duration,
    pub vhosts: Vec<VhostConfig>,
    /// One line per ignored-but-known directive, as `FILE:LINE: message`.
    pub warnings: Vec<String>,
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))],
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            chunk_size: DEFAULT_CHUNK_SIZE,
            daemon: false,
            pid: PathBuf::from("./objs/sluice.pid"),
            log: LogConfig::default(),
            http_api: HttpApiConfig::default(),
            http_server: HttpServerConfig::default(),
            rtmps: TlsListenConfig::rtmps(),
            srt_server: SrtServerConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            rtc_server: RtcServerConfig::default(),
            ff_log: FfmpegLogConfig::default(),
            pithy_print: DEFAULT_PITHY_PRINT,
            vhosts: vec![VhostConfig::new(DEFAULT_VHOST)],
            warnings: Vec::new(),
            source: None,
        }
    }
}
