//! Typed config of the HTTP side: the management API (`http_api`), the HTTP server
//! (`http_server`), HTTP-FLV remux (`vhost.http_remux`) and HLS (`vhost.hls`).
//!
//! Defaults are SRS's (checked against SRS 6/7 `SrsConfig::get_*` getters and
//! `trunk/conf/full.conf`); the source of each is noted beside it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// SRS `get_http_api_listens`: "1985".
const DEFAULT_HTTP_API_PORT: u16 = 1985;
/// SRS `get_http_stream_listens`: "8080".
const DEFAULT_HTTP_SERVER_PORT: u16 = 8080;
/// SRS `get_http_stream_dir` and `get_hls_path`: "./objs/nginx/html".
const DEFAULT_HTTP_DIR: &str = "./objs/nginx/html";

/// SRS `get_https_api_listen` / `get_https_stream_listen` defaults, and its default
/// key and certificate paths (`./conf/server.key`, `./conf/server.crt`).
const DEFAULT_HTTPS_API_PORT: u16 = 1990;
const DEFAULT_HTTPS_SERVER_PORT: u16 = 8088;
/// RTMPS is not in SRS 7's config; 1936 is what other servers and encoders' docs
/// use beside RTMP's 1935 (443 is the URL default, but needs privileges).
const DEFAULT_RTMPS_PORT: u16 = 1936;
const DEFAULT_TLS_KEY: &str = "./conf/server.key";
const DEFAULT_TLS_CERT: &str = "./conf/server.crt";

/// A TLS listener: `rtmps { }`, `http_api { https { } }`, `http_server { https { } }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListenConfig {
    /// Default: off.
    pub enabled: bool,
    pub listen: SocketAddr,
    /// PEM private key (PKCS#8, RSA or EC).
    pub key: PathBuf,
    /// PEM certificate chain, leaf first (certbot's `fullchain.pem`).
    pub cert: PathBuf,
}

impl TlsListenConfig {
    fn with_port(port: u16) -> Self {
        TlsListenConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], port)),
            key: PathBuf::from(DEFAULT_TLS_KEY),
            cert: PathBuf::from(DEFAULT_TLS_CERT),
        }
    }

    pub fn rtmps() -> Self {
        Self::with_port(DEFAULT_RTMPS_PORT)
    }

    pub fn https_api() -> Self {
        Self::with_port(DEFAULT_HTTPS_API_PORT)
    }

    pub fn https_server() -> Self {
        Self::with_port(DEFAULT_HTTPS_SERVER_PORT)
    }
}

/// `vhost NAME { tls { cert FILE; key FILE; } }` (sluice): the certificate a TLS
/// client gets when it asks for this vhost's name (SNI), on every TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhostTlsConfig {
    pub key: PathBuf,
    pub cert: PathBuf,
}

/// `http_api { auth { } }`; present only when `auth.enabled` is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAuth {
    pub username: String,
    pub password: String,
}

/// `http_api { raw_api { } }`: the config-changing RPCs. Everything defaults to off (SRS
/// `get_raw_api*`). SRS since 4.0 forces `allow_query` and `allow_update` off whatever the
/// file says (ossrs/srs#2653); they are kept here as written so the API layer can decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawApiConfig {
    pub enabled: bool,
    pub allow_reload: bool,
    pub allow_query: bool,
    pub allow_update: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpApiConfig {
    /// SRS default: off.
    pub enabled: bool,
    /// SRS default: 1985 on all IPv4 interfaces.
    pub listen: SocketAddr,
    /// Send CORS headers. SRS default: on.
    pub crossdomain: bool,
    pub auth: Option<HttpAuth>,
    pub raw_api: RawApiConfig,
    /// `https { }`: the same API over TLS.
    pub https: TlsListenConfig,
}

impl Default for HttpApiConfig {
    fn default() -> Self {
        HttpApiConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_API_PORT)),
            crossdomain: true,
            auth: None,
            raw_api: RawApiConfig::default(),
            https: TlsListenConfig::https_api(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpServerConfig {
    /// SRS default: off.
    pub enabled: bool,
    /// SRS default: 8080 on all IPv4 interfaces.
    pub listen: SocketAddr,
    /// Root of the static files (and, by default, of the HLS output).
    pub dir: PathBuf,
    /// Send CORS headers. SRS default: on.
    pub crossdomain: bool,
    /// `https { }`: everything the server serves, over TLS.
    pub https: TlsListenConfig,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_SERVER_PORT)),
            dir: PathBuf::from(DEFAULT_HTTP_DIR),
            crossdomain: true,
            https: TlsListenConfig::https_server(),
        }
    }
}

/// SRS `get_vhost_http_remux_mount`.
const DEFAULT_HTTP_REMUX_MOUNT: &str = "[vhost]/[app]/[stream].flv";

/// `vhost { http_remux { } }`: live HTTP-FLV served by the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRemuxConfig {
    /// SRS default: off.
    pub enabled: bool,
    /// URL template; `[vhost]`, `[app]` and `[stream]` are replaced per stream. Always ends in
    /// `.flv` (the build rejects the other SRS remux formats, which sluice does not do).
    pub mount: String,
    /// FLV header flags: whether to announce audio / video. SRS default: on, on.
    pub has_audio: bool,
    pub has_video: bool,
    /// Derive the two flags from the sequence headers seen so far instead. SRS default: on.
    pub guess_has_av: bool,
}

impl Default for HttpRemuxConfig {
    fn default() -> Self {
        HttpRemuxConfig {
            enabled: false,
            mount: DEFAULT_HTTP_REMUX_MOUNT.to_string(),
            has_audio: true,
            has_video: true,
            guess_has_av: true,
        }
    }
}

/// What a failing HLS muxer does to the publisher (`hls_on_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsOnError {
    /// Stop HLS for this stream, keep the publisher.
    Ignore,
    /// Drop the publisher so the encoder republishes.
    Disconnect,
    /// Keep the publisher and try to keep writing HLS (SRS default).
    Continue,
}

/// `hls_acodec`: audio codec announced in the PMT before the first audio frame (SRS values;
/// others there silently mean aac, here they are errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsAcodec {
    Aac,
    Mp3,
    /// No audio.
    An,
}

/// `hls_vcodec`: video codec announced in the PMT before the first video frame. SRS accepts
/// only these two (`SrsHlsMuxer::segment_open`); other values there silently mean h264.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsVcodec {
    H264,
    /// No video (pure audio streams).
    Vn,
}

/// SRS `get_hls_m3u8_file` / `get_hls_ts_file`.
const DEFAULT_HLS_M3U8_FILE: &str = "[app]/[stream].m3u8";
const DEFAULT_HLS_TS_FILE: &str = "[app]/[stream]-[seq].ts";
const DEFAULT_HLS_KEY_FILE: &str = "[app]/[stream]-[seq].key";
const DEFAULT_HLS_FRAGMENTS_PER_KEY: u32 = 5;
/// SRS `get_hls_fmp4_file` / `get_hls_init_file`.
const DEFAULT_HLS_FMP4_FILE: &str = "[app]/[stream]-[seq].m4s";
const DEFAULT_HLS_INIT_FILE: &str = "[app]/[stream]/init.mp4";
/// LL-HLS part target (`hls_part`): Apple's and hls.js's usual 200 ms... 1 s range.
pub const DEFAULT_HLS_PART: Duration = Duration::from_millis(200);

/// `vhost { hls { } }`. Times are validated: `fragment > 0`, `window >= fragment`.
#[derive(Debug, Clone, PartialEq)]
pub struct HlsConfig {
    /// SRS default: off.
    pub enabled: bool,
    /// Target segment duration. SRS default: 10 s.
    pub fragment: Duration,
    /// EXT-X-TARGETDURATION = td_ratio * fragment. SRS default: 1.0.
    pub td_ratio: f64,
    /// Pure-audio streams cut a segment at aof_ratio * fragment. SRS default: 2.1.
    pub aof_ratio: f64,
    /// Total duration of the segments listed in the playlist. SRS default: 60 s.
    pub window: Duration,
    /// SRS default: continue.
    pub on_error: HlsOnError,
    /// Output root; m3u8_file and ts_file are relative to it. SRS default: ./objs/nginx/html.
    pub path: PathBuf,
    /// Playlist path template: `[vhost]`, `[app]`, `[stream]`. Ends in `.m3u8`.
    pub m3u8_file: String,
    /// Segment path template: also `[seq]`, `[timestamp]`, `[duration]` and the time fields
    /// `[2006] [01] [02] [15] [04] [05] [999]`. Ends in `.ts`, has `[seq]` or `[timestamp]`.
    pub ts_file: String,
    /// `[timestamp]` becomes floor(time / fragment), aligning segments across servers.
    /// SRS default: off.
    pub ts_floor: bool,
    /// Base URL put in front of the segment URLs in the playlist. SRS default: empty.
    pub entry_prefix: String,
    /// Delete segments that left the window. SRS default: on.
    pub cleanup: bool,
    /// Delete all HLS files after the publisher has been silent this long; zero means never.
    /// SRS default: 120 s.
    pub dispose: Duration,
    /// Bytes of a segment read by `on_hls_notify`. SRS default: 64.
    pub nb_notify: u32,
    /// Cut segments only at a keyframe. SRS default: on.
    pub wait_keyframe: bool,
    /// Audio DTS straight from the FLV timestamp instead of rebuilt from AAC sample counts.
    /// SRS default: on.
    pub dts_directly: bool,
    /// SRS default: aac.
    pub acodec: HlsAcodec,
    /// SRS default: h264.
    pub vcodec: HlsVcodec,
    /// Encrypt segments with AES-128 (`hls_keys`). SRS default: off.
    pub keys: bool,
    /// Segments encrypted with one key before a new random key is made. SRS default: 5.
    pub fragments_per_key: u32,
    /// Key file path template: `[vhost]`, `[app]`, `[stream]`, `[seq]` (the sequence
    /// number of the first segment under the key). Ends in `.key`, has `[seq]`.
    /// SRS default: `[app]/[stream]-[seq].key`.
    pub key_file: String,
    /// Root of the key files; `None` is `path` (SRS's default: keys beside the segments).
    pub key_file_path: Option<PathBuf>,
    /// Put in front of the key file name in `EXT-X-KEY` URIs (SRS concatenates, so it
    /// usually ends in `/`); empty means the key's path relative to the playlist, like the
    /// segments'. SRS default: empty.
    pub key_url: String,
    /// fMP4 (CMAF) segments and an init segment instead of MPEG-TS (`hls_use_fmp4`).
    /// SRS default: off.
    pub use_fmp4: bool,
    /// fMP4 segment path template, like `ts_file` but ending in `.m4s`.
    /// SRS default: `[app]/[stream]-[seq].m4s`.
    pub fmp4_file: String,
    /// Init segment path template (`[vhost]`, `[app]`, `[stream]`); a stream whose codec
    /// configuration changes gets `-<seq>` before `.mp4` for the new one.
    /// SRS default: `[app]/[stream]/init.mp4`.
    pub init_file: String,
    /// Low-Latency HLS parts for fMP4 streams (`hls_ll`, a sluice directive). Default: off.
    pub ll: bool,
    /// LL-HLS part target duration (`hls_part`, sluice). Default: 200 ms.
    pub part: Duration,
    /// LL-HLS requests one stream lets wait for a part at once; more get 503
    /// (`hls_ll_max_blocked`, sluice). Default: 5000.
    pub ll_max_blocked: usize,
}

/// `vhost { dash { } }` (SRS's directives). sluice's DASH is a live MPD over the fMP4
/// segments of HLS (`hls { enabled on; hls_use_fmp4 on; }`), written beside the playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct DashConfig {
    /// SRS default: off.
    pub enabled: bool,
    /// SRS default: 30 s. The segments are HLS's (`hls_fragment`); a different value is
    /// reported by `sluice -t`.
    pub fragment: Duration,
    /// `minimumUpdatePeriod` of the MPD. SRS default: 150 s; sluice caps it at the segment
    /// target so players see new segments in time.
    pub update_period: Duration,
    /// `timeShiftBufferDepth`. SRS default: 300 s.
    pub timeshift: Duration,
    /// SRS default: ./objs/nginx/html. Must be `hls_path` (the MPD lists HLS's segments).
    pub path: PathBuf,
    /// MPD path template: `[vhost]`, `[app]`, `[stream]`. SRS default: `[app]/[stream].mpd`.
    pub mpd_file: String,
}

impl Default for DashConfig {
    fn default() -> Self {
        DashConfig {
            enabled: false,
            fragment: Duration::from_secs(30),
            update_period: Duration::from_secs(150),
            timeshift: Duration::from_secs(300),
            path: PathBuf::from(DEFAULT_HTTP_DIR),
            mpd_file: "[app]/[stream].mpd".to_string(),
        }
    }
}

impl HlsConfig {
    /// Where key files are written.
    pub fn key_root(&self) -> &std::path::Path {
        self.key_file_path.as_deref().unwrap_or(&self.path)
    }
}

const DEFAULT_HLS_FRAGMENT: Duration = Duration::from_secs(10);
const DEFAULT_HLS_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_HLS_DISPOSE: Duration = Duration::from_secs(120);

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            enabled: false,
            fragment: DEFAULT_HLS_FRAGMENT,
            td_ratio: 1.0,
            aof_ratio: 2.1,
            window: DEFAULT_HLS_WINDOW,
            on_error: HlsOnError::Continue,
            path: PathBuf::from(DEFAULT_HTTP_DIR),
            m3u8_file: DEFAULT_HLS_M3U8_FILE.to_string(),
            ts_file: DEFAULT_HLS_TS_FILE.to_string(),
            ts_floor: false,
            entry_prefix: String::new(),
            cleanup: true,
            dispose: DEFAULT_HLS_DISPOSE,
            nb_notify: 64,
            wait_keyframe: true,
            dts_directly: true,
            acodec: HlsAcodec::Aac,
            vcodec: HlsVcodec::H264,
            keys: false,
            fragments_per_key: DEFAULT_HLS_FRAGMENTS_PER_KEY,
            key_file: DEFAULT_HLS_KEY_FILE.to_string(),
            key_file_path: None,
            key_url: String::new(),
            use_fmp4: false,
            fmp4_file: DEFAULT_HLS_FMP4_FILE.to_string(),
            init_file: DEFAULT_HLS_INIT_FILE.to_string(),
            ll: false,
            part: DEFAULT_HLS_PART,
            ll_max_blocked: 5_000,
        }
    }
}
