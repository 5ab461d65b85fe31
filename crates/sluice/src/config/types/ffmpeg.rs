//! ffmpeg processes: `ff_log_dir`, `vhost { transcode { } }` and `vhost { ingest { } }`.

use std::path::PathBuf;

/// SRS's default: ffmpeg logs next to the server's own.
const DEFAULT_FF_LOG_DIR: &str = "./objs";
const DEFAULT_FF_LOG_LEVEL: &str = "info";

#[derive(Debug, Clone, PartialEq)]
pub struct FfmpegLogConfig {
    /// `/dev/null` discards ffmpeg's output.
    pub dir: PathBuf,
    /// Passed to ffmpeg as `-loglevel`.
    pub level: String,
}

impl Default for FfmpegLogConfig {
    fn default() -> Self {
        FfmpegLogConfig {
            dir: PathBuf::from(DEFAULT_FF_LOG_DIR),
            level: DEFAULT_FF_LOG_LEVEL.to_string(),
        }
    }
}

impl FfmpegLogConfig {
    pub fn discard(&self) -> bool {
        self.dir == std::path::Path::new("/dev/null")
    }
}

/// One encoding of a stream (SRS's `engine NAME { }`). Codec names are passed to ffmpeg
/// as given; `vn`/`an` drop the track, `copy` passes it through.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineConfig {
    pub name: String,
    pub enabled: bool,
    /// `-KEY VALUE` pairs put before the codec options (`vfilter { vf scale=...; }`).
    pub vfilter: Vec<(String, String)>,
    pub vcodec: Option<String>,
    /// kbps.
    pub vbitrate: Option<u32>,
    pub vfps: Option<f64>,
    pub vwidth: Option<u32>,
    pub vheight: Option<u32>,
    pub vthreads: Option<u32>,
    pub vprofile: Option<String>,
    pub vpreset: Option<String>,
    pub vparams: Vec<(String, String)>,
    pub acodec: Option<String>,
    /// kbps.
    pub abitrate: Option<u32>,
    pub asample_rate: Option<u32>,
    pub achannels: Option<u32>,
    pub aparams: Vec<(String, String)>,
    /// Output container, `flv` unless set.
    pub oformat: Option<String>,
    /// `iformat`: the input's container, given to ffmpeg as `-f` before `-i` (transcode:
    /// `flv` unless set).
    pub iformat: Option<String>,
    /// `perfile { KEY [VALUE]; }`: input options, given as `-KEY VALUE` before `-i`
    /// (SRS's example: `perfile { re; rtsp_transport tcp; }`).
    pub perfile: Vec<(String, String)>,
    /// URL template: [vhost] [port] [app] [stream] [engine].
    pub output: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TranscodeConfig {
    /// `APP` or `APP/STREAM` this block applies to; empty for every stream of the vhost.
    pub scope: String,
    pub enabled: bool,
    pub ffmpeg: Option<PathBuf>,
    pub engines: Vec<EngineConfig>,
}

impl TranscodeConfig {
    pub fn matches(&self, app: &str, stream: &str) -> bool {
        if self.scope.is_empty() {
            return true;
        }
        match self.scope.split_once('/') {
            Some((a, s)) => a == app && s == stream,
            None => self.scope == app,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestInputType {
    /// A file, looped forever in real time.
    File,
    /// Any URL ffmpeg can read (RTMP, HTTP, SRT...), reconnected when it drops.
    Stream,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    pub id: String,
    pub enabled: bool,
    pub input_type: IngestInputType,
    pub input_url: String,
    pub ffmpeg: Option<PathBuf>,
    /// Engines; one disabled engine (or none enabled) copies the input as is.
    pub engines: Vec<EngineConfig>,
}
