//! Harness for end-to-end tests: runs the real `sluice` binary on a free loopback port with its
//! own config and temp dir, drives real ffmpeg publishers and players against it, and checks
//! what the players recorded with our own `media` parsers (and ffprobe as a second opinion).
//!
//! Every process a test starts is owned by a guard that kills and reaps it on drop, so a failed
//! assertion never leaves a server or an ffmpeg behind, and every wait has a deadline.
#![allow(dead_code)]

pub mod browser;
pub mod hook_server;
pub mod http;
pub mod pki;
pub mod recording;
pub mod rtc;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amf::Amf0Value;
use bytes::{Bytes, BytesMut};
use media::codec::{parse_audio_header, parse_video_header, AudioCodec, VideoCodec};
use media::flv::{FlvReader, MAX_TAG_DATA_SIZE};
use rtmp::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits, MessageHeader};
use rtmp::handshake::ClientHandshake;
use rtmp::message::{Command as RtmpCommand, Message, UserControl};

/// How long the server may take to accept connections after it was spawned.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of server log shown when a test fails.
const LOG_TAIL_LINES: usize = 80;

pub const FLV_AUDIO: u8 = 8;
pub const FLV_VIDEO: u8 = 9;
pub const FLV_SCRIPT: u8 = 18;

/// A fixture by file name (an absolute path, e.g. a clip made by the test, is used as is).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures")).join(name)
}

pub const AVC_AAC: &str = "avc-aac-640x360-10s.flv";
pub const VIDEO_ONLY: &str = "video-only-avc-10s.flv";
pub const AUDIO_AAC: &str = "audio-only-aac-10s.flv";
pub const AUDIO_MP3: &str = "audio-only-mp3-10s.flv";

/// Panics (never skips) when a peer tool is missing: a test that passes without its peer
/// proves nothing.
pub fn require_tool(name: &str) {
    // ffmpeg's tools answer `-version`, most others `--version`.
    let ok = ["-version", "--version"].iter().any(|flag| {
        Command::new(name)
            .arg(flag)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });
    assert!(
        ok,
        "{name} not found: install it (scripts/test.sh installs every peer) or run the README's test command"
    );
}

pub fn require_ffmpeg() {
    require_tool("ffmpeg");
    require_tool("ffprobe");
}

/// A port the kernel just handed out; the tiny race with other tests is covered by
/// [`Server::start`] retrying on another port when the server fails to come up.
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A fresh directory under the system temp dir, unique across parallel tests and runs.
pub fn unique_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "sluice-it-{tag}-{}-{n}-{nanos}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process that is killed and reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = File::create(&log).expect("create process log");
        let file2 = file.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file2));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits up to `timeout` for the process to end; None if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(timeout, || self.try_status())
    }

    /// Waits for a clean exit; panics with the process output when it does not end in time
    /// or ends with an error.
    pub fn expect_success(&mut self, timeout: Duration) {
        match self.wait_timeout(timeout) {
            Some(s) if s.success() => {}
            Some(s) => panic!("{} exited with {s}; output:\n{}", self.name, self.output()),
            None => panic!(
                "{} still running after {timeout:?}; output:\n{}",
                self.name,
                self.output()
            ),
        }
    }

    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Vhosts every test server knows, besides the default one.
pub const DEFAULT_CONFIG_BODY: &str = "max_connections 100;
daemon off;
srs_log_tank console;
vhost __defaultVhost__ { gop_cache on; queue_length 10; }
vhost v1.test { }
vhost v2.test { }
";

/// A running sluice on its own port and directory; stopped on drop.
pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
    proc: Proc,
}

impl Server {
    pub fn start(tag: &str) -> Server {
        Server::start_with(tag, DEFAULT_CONFIG_BODY)
    }

    /// `body` is the config without its `listen` line (the harness picks the port).
    pub fn start_with(tag: &str, body: &str) -> Server {
        Server::start_with_env(tag, body, &[])
    }

    /// Like [`Server::start_with`], with environment variables for the process.
    pub fn start_with_env(tag: &str, body: &str, env: &[(&str, &str)]) -> Server {
        let dir = unique_dir(tag);
        let mut last_log = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("sluice-{attempt}.conf"));
            fs::write(
                &conf,
                format!(
                    "listen 127.0.0.1:{port};\npid {};\n{body}",
                    dir.join(format!("sluice-{attempt}.pid")).display()
                ),
            )
            .expect("write config");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
            cmd.arg("-c").arg(&conf).current_dir(&dir);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut proc = Proc::spawn("sluice", cmd, dir.join(format!("sluice-{attempt}.log")));
            let up = wait_for(SERVER_START_TIMEOUT, || {
                if !proc.is_running() {
                    return Some(false);
                }
                TcpStream::connect_timeout(&addr(port), Duration::from_millis(200))
                    .ok()
                    .map(|_| true)
            });
            if up == Some(true) {
                return Server { port, dir, proc };
            }
            proc.kill();
            last_log = proc.output();
        }
        panic!("sluice did not start listening within {SERVER_START_TIMEOUT:?} (3 attempts); last log:\n{last_log}");
    }

    pub fn addr(&self) -> SocketAddr {
        addr(self.port)
    }

    /// `rtmp://127.0.0.1:PORT/{path}`, e.g. `live/s` or `live?vhost=v1.test/s`.
    pub fn url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.port)
    }

    pub fn log(&self) -> String {
        self.proc.output()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn is_alive(&mut self) -> bool {
        self.proc.is_running()
    }

    /// Number of open file descriptors of the server (Linux), to spot leaked connections.
    pub fn open_fds(&self) -> Option<usize> {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .ok()
            .map(|d| d.count())
    }

    pub fn tmp(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Sends a signal to the server (SIGHUP reloads).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig)
            .expect("signal the server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- sluice log tail ({}) -----\n{}\n----- end of sluice log -----",
                self.dir.display(),
                tail(&self.proc.output(), LOG_TAIL_LINES)
            );
        }
        self.proc.kill();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `ffmpeg -nostdin -hide_banner -loglevel error ARGS`.
pub fn ffmpeg(args: &[&str]) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
    cmd.args(args);
    cmd
}

/// `ffmpeg -re -i FIXTURE -c copy -f flv URL`: publishes a clip in real time.
pub fn spawn_publisher(server: &Server, fixture_name: &str, url: &str, tag: &str) -> Proc {
    spawn_publisher_args(server, fixture_name, url, tag, &[])
}

/// Like [`spawn_publisher`] with extra output options (e.g. `-t 3`).
pub fn spawn_publisher_args(
    server: &Server,
    fixture_name: &str,
    url: &str,
    tag: &str,
    extra: &[&str],
) -> Proc {
    let input = fixture(fixture_name);
    let input = input.to_str().expect("utf-8 fixture path");
    let mut args = vec!["-re", "-i", input, "-c", "copy"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "flv", url]);
    Proc::spawn(
        &format!("ffmpeg publisher {tag}"),
        ffmpeg(&args),
        server.tmp(&format!("publisher-{tag}.log")),
    )
}

/// `ffmpeg -i URL -c copy -f flv OUT`: records what a player receives.
pub fn spawn_player(server: &Server, url: &str, tag: &str) -> (Proc, PathBuf) {
    let out = server.tmp(&format!("player-{tag}.flv"));
    let out_s = out.to_str().expect("utf-8 temp path").to_owned();
    let proc = Proc::spawn(
        &format!("ffmpeg player {tag}"),
        ffmpeg(&["-i", url, "-c", "copy", "-f", "flv", "-y", &out_s]),
        server.tmp(&format!("player-{tag}.log")),
    );
    (proc, out)
}

/// What a recorded (or fixture) FLV contains, as far as the tests care.
#[derive(Debug, Default, Clone)]
pub struct FlvStats {
    pub metadata_tags: usize,
    pub video_frames: usize,
    pub video_keyframes: usize,
    pub audio_frames: usize,
    pub video_seq_headers: usize,
    pub audio_seq_headers: usize,
    pub video_codec: Option<VideoCodec>,
    pub audio_codec: Option<AudioCodec>,
    /// From the first AVC sequence header's SPS.
    pub width_height: Option<(u32, u32)>,
    /// From the first AAC AudioSpecificConfig.
    pub aac_rate_channels: Option<(u32, u8)>,
    /// From the first MP3 frame header.
    pub mp3_rate_channels: Option<(u32, u8)>,
    /// Whether the first coded video frame is a keyframe (None without video frames).
    pub first_video_frame_key: Option<bool>,
    /// Whether a video sequence header came before the first coded video frame.
    pub video_seq_before_frames: bool,
    pub audio_seq_before_frames: bool,
    /// Number of times a track's timestamp went back.
    pub video_ts_regressions: usize,
    pub audio_ts_regressions: usize,
    /// Timestamps of the first and last coded frames (any track).
    pub first_ts: Option<u32>,
    pub last_ts: Option<u32>,
    pub last_video_ts: Option<u32>,
    pub last_audio_ts: Option<u32>,
}

impl FlvStats {
    /// Accumulates one tag (FLV tag or RTMP message: same payload layout).
    pub fn add(&mut self, tag_type: u8, timestamp: u32, data: &[u8]) {
        match tag_type {
            FLV_SCRIPT => self.metadata_tags += 1,
            FLV_VIDEO => self.add_video(timestamp, data),
            FLV_AUDIO => self.add_audio(timestamp, data),
            _ => {}
        }
    }

    fn add_video(&mut self, ts: u32, data: &[u8]) {
        let Some(h) = parse_video_header(data) else {
            return;
        };
        self.video_codec.get_or_insert(h.info.codec);
        if h.info.sequence_header {
            self.video_seq_headers += 1;
            if self.width_height.is_none() && h.info.codec == VideoCodec::Avc {
                self.width_height = h
                    .data_offset
                    .and_then(|o| data.get(o..))
                    .and_then(|avcc| media::avc::parse_avc_config(avcc).ok())
                    .and_then(|cfg| cfg.sps.first().cloned())
                    .and_then(|sps| media::avc::parse_sps(&sps).ok())
                    .map(|s| (s.width, s.height));
            }
            return;
        }
        if !matches!(h.kind, media::codec::VideoPacketKind::Frames) {
            return;
        }
        if self.video_frames == 0 {
            self.first_video_frame_key = Some(h.info.keyframe);
            self.video_seq_before_frames = self.video_seq_headers > 0;
        }
        self.video_frames += 1;
        if h.info.keyframe {
            self.video_keyframes += 1;
        }
        self.track_ts(ts, true);
    }

    fn add_audio(&mut self, ts: u32, data: &[u8]) {
        let Some(h) = parse_audio_header(data) else {
            return;
        };
        self.audio_codec.get_or_insert(h.info.codec);
        let body = h.data_offset.and_then(|o| data.get(o..));
        if h.info.sequence_header {
            self.audio_seq_headers += 1;
            if self.aac_rate_channels.is_none() {
                self.aac_rate_channels = body
                    .and_then(|asc| media::aac::parse_asc(asc).ok())
                    .map(|a| (a.sample_rate, a.channels));
            }
            return;
        }
        if self.audio_frames == 0 {
            self.audio_seq_before_frames = self.audio_seq_headers > 0;
        }
        if h.info.codec == AudioCodec::Mp3 && self.mp3_rate_channels.is_none() {
            self.mp3_rate_channels = body
                .and_then(media::mp3::parse_mp3_header)
                .map(|m| (m.sample_rate, m.channels));
        }
        self.audio_frames += 1;
        self.track_ts(ts, false);
    }

    fn track_ts(&mut self, ts: u32, video: bool) {
        let last = if video {
            &mut self.last_video_ts
        } else {
            &mut self.last_audio_ts
        };
        if let Some(prev) = *last {
            if ts < prev {
                if video {
                    self.video_ts_regressions += 1;
                } else {
                    self.audio_ts_regressions += 1;
                }
            }
        }
        *last = Some(ts);
        self.first_ts.get_or_insert(ts);
        self.last_ts = Some(ts);
    }
}

/// Stats of an FLV file; stops at a truncated last tag (a killed writer) instead of failing.
pub fn flv_stats(path: &Path) -> FlvStats {
    let data = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut reader = FlvReader::new(MAX_TAG_DATA_SIZE);
    let mut buf = BytesMut::from(&data[..]);
    let mut stats = FlvStats::default();
    loop {
        match reader.next_tag(&mut buf) {
            Ok(Some(tag)) => stats.add(tag.tag_type, tag.timestamp, &tag.data),
            Ok(None) => break,
            Err(e) => panic!("{}: bad FLV: {e}", path.display()),
        }
    }
    assert!(
        reader.header().is_some(),
        "{}: no FLV header ({} bytes)",
        path.display(),
        data.len()
    );
    stats
}

pub fn fixture_stats(name: &str) -> FlvStats {
    flv_stats(&fixture(name))
}

/// `got >= percent% of want`.
pub fn at_least_percent(got: usize, want: usize, percent: usize) -> bool {
    got * 100 >= want * percent
}

/// The checks every "player got the stream" scenario shares: same codecs as the fixture,
/// at least 90 % of its frames, per-track timestamps never going back, and playback that
/// starts on a keyframe after the sequence headers.
pub fn assert_same_stream(label: &str, got: &FlvStats, want: &FlvStats) {
    let ctx = format!("{label}: got {got:#?}\nexpected like {want:#?}");
    assert_eq!(got.video_codec, want.video_codec, "video codec; {ctx}");
    assert_eq!(got.audio_codec, want.audio_codec, "audio codec; {ctx}");
    assert!(
        at_least_percent(got.video_frames, want.video_frames, 90),
        "video frames {} < 90% of {}; {ctx}",
        got.video_frames,
        want.video_frames
    );
    assert!(
        at_least_percent(got.audio_frames, want.audio_frames, 90),
        "audio frames {} < 90% of {}; {ctx}",
        got.audio_frames,
        want.audio_frames
    );
    assert!(
        got.video_frames <= want.video_frames && got.audio_frames <= want.audio_frames,
        "more frames than published (duplicates?); {ctx}"
    );
    assert_eq!(
        got.video_ts_regressions, 0,
        "video timestamps go back; {ctx}"
    );
    assert_eq!(
        got.audio_ts_regressions, 0,
        "audio timestamps go back; {ctx}"
    );
    if want.video_frames > 0 {
        assert_eq!(
            got.first_video_frame_key,
            Some(true),
            "first video frame not a keyframe; {ctx}"
        );
        assert!(
            got.video_seq_before_frames,
            "no AVC sequence header before frames; {ctx}"
        );
        assert_eq!(got.width_height, want.width_height, "picture size; {ctx}");
    }
    if want.audio_codec == Some(AudioCodec::Aac) {
        assert!(
            got.audio_seq_before_frames,
            "no AAC sequence header before frames; {ctx}"
        );
        assert_eq!(
            got.aac_rate_channels, want.aac_rate_channels,
            "AAC config; {ctx}"
        );
    }
    if want.audio_codec == Some(AudioCodec::Mp3) {
        assert_eq!(
            got.mp3_rate_channels, want.mp3_rate_channels,
            "MP3 header; {ctx}"
        );
    }
}

/// One stream as ffprobe sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbedStream {
    pub codec_type: String,
    pub codec_name: String,
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub sample_rate: Option<u64>,
    pub channels: Option<u64>,
    pub frames: Option<u64>,
}

/// `ffprobe -v error -show_streams -count_frames -of json FILE`.
pub fn ffprobe(path: &Path) -> Vec<ProbedStream> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-count_frames",
            "-of",
            "json",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let num = |s: &serde_json::Value, k: &str| -> Option<u64> {
        s.get(k).and_then(|x| {
            x.as_u64()
                .or_else(|| x.as_str().and_then(|t| t.parse().ok()))
        })
    };
    let text = |s: &serde_json::Value, k: &str| -> String {
        s.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned()
    };
    v.get("streams")
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .map(|s| ProbedStream {
                    codec_type: text(s, "codec_type"),
                    codec_name: text(s, "codec_name"),
                    width: num(s, "width"),
                    height: num(s, "height"),
                    sample_rate: num(s, "sample_rate"),
                    channels: num(s, "channels"),
                    frames: num(s, "nb_read_frames"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// ffprobe of a recording compared with ffprobe of the fixture: same streams and codecs, and
/// at least 90 % of the frames.
pub fn assert_probe_matches(label: &str, recorded: &Path, fixture_name: &str) {
    let got = ffprobe(recorded);
    let want = ffprobe(&fixture(fixture_name));
    assert_eq!(
        got.len(),
        want.len(),
        "{label}: streams {got:#?} vs fixture {want:#?}"
    );
    for w in &want {
        let g = got
            .iter()
            .find(|g| g.codec_type == w.codec_type)
            .unwrap_or_else(|| panic!("{label}: no {} stream in {got:#?}", w.codec_type));
        assert_eq!(g.codec_name, w.codec_name, "{label}: {g:?} vs {w:?}");
        assert_eq!(
            (g.width, g.height),
            (w.width, w.height),
            "{label}: {g:?} vs {w:?}"
        );
        assert_eq!(
            (g.sample_rate, g.channels),
            (w.sample_rate, w.channels),
            "{label}: {g:?} vs {w:?}"
        );
        let (gf, wf) = (g.frames.unwrap_or(0), w.frames.unwrap_or(0));
        assert!(
            gf * 10 >= wf * 9,
            "{label}: {gf} frames < 90% of {wf}: {g:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A small blocking RTMP client built on the sans-IO `rtmp` crate, for what ffmpeg cannot show:
// exact arrival times, a player that stays connected across unpublish, one that never reads.

/// One message received by [`RawClient`].
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub header: MessageHeader,
    pub message: Message,
}

impl Received {
    /// `onStatus` code, if this is one.
    pub fn status_code(&self) -> Option<String> {
        match &self.message {
            Message::Command(c) if c.name == "onStatus" => c
                .args
                .first()
                .and_then(|info| info.get("code"))
                .and_then(|c| c.as_str())
                .map(str::to_owned),
            _ => None,
        }
    }
}

pub struct RawClient {
    pub stream: TcpStream,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    input: BytesMut,
    bytes_in: u64,
    acked: u64,
    window: u32,
    next_txn: f64,
}

/// Connects to 127.0.0.1:port; `recv_buffer` shrinks the socket receive buffer before the
/// connection is made (so the TCP window stays small), which makes a non-reading client
/// really push back on the server instead of having the kernel swallow the whole stream.
pub fn tcp_connect(port: u16, recv_buffer: Option<u32>) -> io::Result<TcpStream> {
    let Some(size) = recv_buffer else {
        return TcpStream::connect_timeout(&addr(port), Duration::from_secs(5));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.set_recv_buffer_size(size)?;
        let s = tokio::time::timeout(Duration::from_secs(5), sock.connect(addr(port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let s = s.into_std()?;
        s.set_nonblocking(false)?;
        Ok(s)
    })
}

/// Connects to 127.0.0.1:port from `from` (any 127.0.0.0/8 address: Linux loopback
/// answers them all), to be another client address than the other connections'.
pub fn tcp_connect_from(from: Ipv4Addr, port: u16) -> io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(SocketAddr::from((from, 0)))?;
        let s = tokio::time::timeout(Duration::from_secs(5), sock.connect(addr(port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let s = s.into_std()?;
        s.set_nonblocking(false)?;
        Ok(s)
    })
}

impl RawClient {
    /// TCP connect plus a simple handshake.
    pub fn handshake(port: u16, recv_buffer: Option<u32>) -> io::Result<RawClient> {
        RawClient::handshake_on(tcp_connect(port, recv_buffer)?)
    }

    /// A simple handshake on a connected socket.
    pub fn handshake_on(mut stream: TcpStream) -> io::Result<RawClient> {
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut hs = ClientHandshake::new(false, 0x5eed, 0);
        let mut out = Vec::new();
        hs.start(&mut out);
        stream.write_all(&out)?;
        let mut input = BytesMut::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            out.clear();
            let done = hs
                .process(&mut input, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if !out.is_empty() {
                stream.write_all(&out)?;
            }
            if done {
                break;
            }
            read_some(&mut stream, &mut input, deadline)?;
        }
        Ok(RawClient {
            stream,
            decoder: ChunkDecoder::new(DecoderLimits::default()),
            encoder: ChunkEncoder::new(),
            input,
            bytes_in: 0,
            acked: 0,
            window: 0,
            next_txn: 1.0,
        })
    }

    /// Handshake, connect to `app` (e.g. `live` or `live?vhost=v1.test`), createStream and
    /// play `stream`; returns once the play command is sent.
    pub fn play(
        port: u16,
        app: &str,
        stream: &str,
        recv_buffer: Option<u32>,
    ) -> io::Result<RawClient> {
        RawClient::play_on(tcp_connect(port, recv_buffer)?, port, app, stream)
    }

    /// As [`RawClient::play`], on a connected socket (see [`tcp_connect_from`]).
    pub fn play_on(socket: TcpStream, port: u16, app: &str, stream: &str) -> io::Result<RawClient> {
        let mut c = RawClient::handshake_on(socket)?;
        let tc_url = format!("rtmp://127.0.0.1:{port}/{app}");
        let connect_obj = Amf0Value::object([
            ("app", Amf0Value::string(app)),
            ("flashVer", Amf0Value::string("LNX 9,0,124,2")),
            ("tcUrl", Amf0Value::string(tc_url)),
            ("fpad", Amf0Value::Boolean(false)),
            ("capabilities", Amf0Value::Number(15.0)),
            ("audioCodecs", Amf0Value::Number(4071.0)),
            ("videoCodecs", Amf0Value::Number(252.0)),
            ("videoFunction", Amf0Value::Number(1.0)),
        ]);
        let txn = c.command(0, "connect", connect_obj, vec![])?;
        c.expect_result(txn)?;
        let txn = c.command(0, "createStream", Amf0Value::Null, vec![])?;
        let result = c.expect_result(txn)?;
        let sid = result
            .args
            .first()
            .and_then(Amf0Value::as_number)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "createStream: no id"))?
            as u32;
        c.send(
            8,
            sid,
            &Message::Command(RtmpCommand::new(
                "play",
                0.0,
                Amf0Value::Null,
                vec![Amf0Value::string(stream), Amf0Value::Number(-2000.0)],
            )),
        )?;
        c.send(
            2,
            0,
            &Message::UserControl(UserControl::SetBufferLength {
                stream_id: sid,
                buffer_ms: 3000,
            }),
        )?;
        Ok(c)
    }

    pub fn send(&mut self, csid: u32, stream_id: u32, msg: &Message) -> io::Result<()> {
        let payload = msg.encode_payload();
        let header = MessageHeader {
            timestamp: 0,
            length: 0,
            type_id: msg.type_id(),
            stream_id,
        };
        let mut out = Vec::new();
        self.encoder.encode_into(csid, &header, &payload, &mut out);
        self.stream.write_all(&out)
    }

    pub fn command(
        &mut self,
        stream_id: u32,
        name: &str,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) -> io::Result<f64> {
        let txn = self.next_txn;
        self.next_txn += 1.0;
        let msg = Message::Command(RtmpCommand::new(name, txn, object, args));
        self.send(3, stream_id, &msg)?;
        Ok(txn)
    }

    pub fn expect_result(&mut self, txn: f64) -> io::Result<RtmpCommand> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = self.next(deadline)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::TimedOut, format!("no _result for txn {txn}"))
            })?;
            if let Message::Command(c) = r.message {
                if c.transaction_id == txn && (c.name == "_result" || c.name == "_error") {
                    if c.name == "_error" {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            format!("_error: {c:?}"),
                        ));
                    }
                    return Ok(c);
                }
            }
        }
    }

    /// Next message, or None at the deadline. Handles chunk size and acknowledgements.
    /// Err(UnexpectedEof) when the server closed the connection.
    pub fn next(&mut self, deadline: Instant) -> io::Result<Option<Received>> {
        loop {
            match self.decoder.decode(&mut self.input) {
                Ok(Some(raw)) => {
                    let at = Instant::now();
                    let message = Message::decode(raw.header.type_id, raw.payload)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                    match &message {
                        Message::SetChunkSize(n) => {
                            self.decoder.set_chunk_size(*n).map_err(|e| {
                                io::Error::new(io::ErrorKind::InvalidData, e.to_string())
                            })?
                        }
                        Message::WindowAckSize(n) => self.window = *n,
                        _ => {}
                    }
                    return Ok(Some(Received {
                        at,
                        header: raw.header,
                        message,
                    }));
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
            match read_some(&mut self.stream, &mut self.input, deadline) {
                Ok(n) => {
                    self.bytes_in += n as u64;
                    if self.window > 0 && self.bytes_in - self.acked >= u64::from(self.window / 2) {
                        self.acked = self.bytes_in;
                        let seq = self.bytes_in as u32;
                        self.send(2, 0, &Message::Acknowledgement { sequence: seq })?;
                    }
                }
                Err(e) if is_timeout(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One read with the remaining time as time-out; EOF becomes Err(UnexpectedEof).
fn read_some(stream: &mut TcpStream, input: &mut BytesMut, deadline: Instant) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline"));
    }
    stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
    let mut buf = [0u8; 16 * 1024];
    let n = stream.read(&mut buf)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "server closed",
        ));
    }
    input.extend_from_slice(&buf[..n]);
    Ok(n)
}

/// How a hostile connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// read() returned 0 or the connection was reset, after this long.
    Cleanly(Duration),
    /// Still open at the deadline.
    StillOpen,
    /// Some other error (the server misbehaved at TCP level).
    Error(io::ErrorKind),
}

/// Reads and discards until the server closes the connection or `timeout` passes (measured
/// from `since`).
pub fn wait_closed(stream: &mut TcpStream, since: Instant, timeout: Duration) -> Closed {
    let deadline = since + timeout;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Closed::StillOpen;
        }
        if let Err(e) = stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))) {
            return Closed::Error(e.kind());
        }
        match stream.read(&mut buf) {
            Ok(0) => return Closed::Cleanly(since.elapsed()),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Closed::Cleanly(since.elapsed())
            }
            Err(e) => return Closed::Error(e.kind()),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), so a failing hostile test can be replayed.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Collects what a raw player receives until the deadline or until it is disconnected.
pub fn drain_player(
    client: &mut RawClient,
    deadline: Instant,
) -> (Vec<Received>, Option<io::Error>) {
    let mut got = Vec::new();
    loop {
        match client.next(deadline) {
            Ok(Some(r)) => got.push(r),
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

/// Media of received RTMP messages as FLV-like stats.
pub fn stats_of(received: &[Received]) -> FlvStats {
    let mut s = FlvStats::default();
    for r in received {
        match &r.message {
            Message::Video(p) => s.add(FLV_VIDEO, r.header.timestamp, p),
            Message::Audio(p) => s.add(FLV_AUDIO, r.header.timestamp, p),
            Message::Data { .. } => s.add(FLV_SCRIPT, r.header.timestamp, &[]),
            _ => {}
        }
    }
    s
}

/// Payload bytes of a media message, for identity checks.
pub fn media_payload(r: &Received) -> Option<&Bytes> {
    match &r.message {
        Message::Video(p) | Message::Audio(p) => Some(p),
        _ => None,
    }
}

/// One HTTP request as the hook servers of the tests read it: the path of its request line
/// and its body as JSON (`Null` when it is not JSON). None when the peer closes, times
/// out, or sends a head over 64 KiB first.
pub fn read_request(conn: &mut impl Read) -> Option<(String, serde_json::Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body =
        serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(serde_json::Value::Null);
    Some((path, body))
}
