//! One player per tokio task: RTMP (the `rtmp` crate's client), HTTP-FLV or HLS. Each parses
//! just enough to count frames and bytes, check timestamps and match frames to the
//! publisher's log; nothing is copied or kept beyond that.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use media::flv::{tag_type, FlvError, FlvReader};
use media::hls::HlsError;
use rtmp::client::{Client, ClientError, ClientOptions, MediaKind};
use tokio::io::AsyncReadExt;

use crate::http::{self, Dechunker, HttpError, HttpUrl};
use crate::matching::{Cursor, FrameKey, Matched};
use crate::shared::{PlayerState, Shared};
use crate::source::is_config;

/// Bytes asked for per read: a whole merged write of a 500 kbps stream at a few hundred
/// milliseconds of `mw_latency` fits, so one wake-up drains it.
pub const READ_CHUNK: usize = 64 * 1024;
/// Largest FLV tag a player accepts (a 4K keyframe fits easily).
pub const MAX_TAG: u32 = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Rtmp,
    Flv,
    Hls,
}

/// A `--protocol` value that is none of the three (clap prints it under the option).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (rtmp, flv or hls)")]
pub struct UnknownProtocol(pub String);

impl std::str::FromStr for Protocol {
    type Err = UnknownProtocol;
    fn from_str(s: &str) -> Result<Self, UnknownProtocol> {
        match s {
            "rtmp" => Ok(Protocol::Rtmp),
            "flv" | "http-flv" => Ok(Protocol::Flv),
            "hls" => Ok(Protocol::Hls),
            _ => Err(UnknownProtocol(s.to_string())),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Flv => "flv",
            Protocol::Hls => "hls",
        })
    }
}

/// What one player saw, handed back when it ends.
#[derive(Debug, Clone, Default)]
pub struct PlayerResult {
    pub connected: bool,
    pub error: Option<String>,
    /// Payload bytes of media and metadata received (RTMP), or bytes read (HTTP).
    pub bytes: u64,
    /// Audio and video frames, sequence headers excluded.
    pub frames: u64,
    pub config_frames: u64,
    /// Frames whose timestamp went back on their track.
    pub ts_regressions: u64,
    /// From the start of the connection to the first audio or video frame.
    pub first_frame: Option<Duration>,
    /// From the first frame to the last: the span the bit rate is measured over.
    pub active: Duration,
    pub cursor: Cursor,
}

/// Per-frame bookkeeping shared by all protocols.
struct Tracker<'a> {
    shared: &'a Shared,
    slot: usize,
    started: Instant,
    /// When play started: frames sent before it came from the GOP cache and say nothing
    /// about delivery latency.
    joined: Option<Instant>,
    first_frame_at: Option<Instant>,
    last_frame_at: Option<Instant>,
    last_ts: [Option<u32>; 2],
    /// Frames seen since the slot was last updated, and the newest latency among them: the
    /// progress line only needs the newest state, so the slot is written once per batch.
    batch: Option<Option<u64>>,
    result: PlayerResult,
}

impl<'a> Tracker<'a> {
    fn new(shared: &'a Shared, slot: usize) -> Self {
        Tracker {
            shared,
            slot,
            started: Instant::now(),
            joined: None,
            first_frame_at: None,
            last_frame_at: None,
            last_ts: [None; 2],
            batch: None,
            result: PlayerResult::default(),
        }
    }

    fn connected(&mut self) {
        self.joined = Some(Instant::now());
        self.result.connected = true;
        if let Some(s) = self.shared.slots.get(self.slot) {
            s.set_state(PlayerState::Connected);
        }
    }

    fn bytes(&mut self, n: usize) {
        self.result.bytes += n as u64;
        self.shared.bytes.fetch_add(n as u64, Relaxed);
    }

    /// One audio/video/metadata message. `log` (the publisher's log, read-locked) and `now`
    /// are taken by the caller once per batch of frames: all of a batch arrived in one read.
    /// Call [`Tracker::end_batch`] after the batch.
    fn frame(
        &mut self,
        log: &[crate::matching::Sent],
        now: Instant,
        kind: MediaKind,
        ts: u32,
        payload: &[u8],
    ) {
        if is_config(kind, payload) {
            self.result.config_frames += 1;
            return;
        }
        if self.first_frame_at.is_none() {
            self.first_frame_at = Some(now);
            self.result.first_frame = Some(now - self.started);
        }
        self.result.frames += 1;
        self.last_frame_at = Some(now);
        let track = usize::from(kind == MediaKind::Video);
        if let Some(last) = self.last_ts[track] {
            if ts < last {
                self.result.ts_regressions += 1;
            }
        }
        self.last_ts[track] = Some(ts);
        let mut latency = None;
        if !log.is_empty() {
            if let Matched::At { sent, .. } = self
                .result
                .cursor
                .on_frame(log, FrameKey::new(kind, payload))
            {
                if self.joined.is_some_and(|j| sent >= j) {
                    let ms = now.saturating_duration_since(sent).as_millis() as u64;
                    self.shared.latency.record(ms);
                    latency = Some(ms);
                }
            }
        }
        self.batch = Some(latency.or(self.batch.flatten()));
    }

    /// Publishes the newest frame of the batch to the progress line.
    fn end_batch(&mut self, now: Instant) {
        if let Some(latency) = self.batch.take() {
            if let Some(s) = self.shared.slots.get(self.slot) {
                s.frame(now - self.shared.start, latency);
            }
        }
    }

    fn finish(mut self, error: Option<PlayError>) -> PlayerResult {
        if let (Some(first), Some(last)) = (self.first_frame_at, self.last_frame_at) {
            self.result.active = last - first;
        }
        let state = if error.is_some() && !self.result.connected {
            PlayerState::Failed
        } else {
            PlayerState::Done
        };
        self.result.error = error.map(|e| e.to_string());
        if let Some(s) = self.shared.slots.get(self.slot) {
            s.set_state(state);
        }
        self.result
    }
}

/// Why a player stopped before it was told to; kept as text in its [`PlayerResult`].
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error(transparent)]
    Rtmp(#[from] ClientError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("playlist: HTTP status {0}")]
    PlaylistStatus(u16),
    #[error("segment {uri}: HTTP status {status}")]
    SegmentStatus { uri: String, status: u16 },
    #[error(transparent)]
    Flv(#[from] FlvError),
    #[error(transparent)]
    Playlist(#[from] HlsError),
    #[error("reading: {0}")]
    Read(#[source] std::io::Error),
    /// A publisher thread panicked while logging what it sent: matching is meaningless then.
    #[error("log lock poisoned")]
    LogPoisoned,
}

/// Runs one player until `stop` turns true (or the stream ends); never fails: errors are in
/// the result.
pub async fn run(
    protocol: Protocol,
    url: Arc<str>,
    tls: Option<Arc<rustls::ClientConfig>>,
    shared: Arc<Shared>,
    slot: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> PlayerResult {
    let mut t = Tracker::new(&shared, slot);
    let r = tokio::select! {
        _ = stop.wait_for(|s| *s) => Ok(()),
        r = play(protocol, &url, tls, &mut t) => r,
    };
    t.finish(r.err())
}

async fn play(
    protocol: Protocol,
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    t: &mut Tracker<'_>,
) -> Result<(), PlayError> {
    match protocol {
        Protocol::Rtmp => play_rtmp(url, tls, t).await,
        Protocol::Flv => play_flv(url, t).await,
        Protocol::Hls => play_hls(url, t).await,
    }
}

async fn play_rtmp(
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    t: &mut Tracker<'_>,
) -> Result<(), PlayError> {
    let options = ClientOptions {
        // The simple handshake: no HMAC work per connection, and every server accepts it.
        complex_handshake: false,
        tls,
        ..ClientOptions::default()
    };
    let mut player = Client::connect_with(url, options).await?.play().await?;
    t.connected();
    while player.read_batch().await? {
        let shared = t.shared;
        let log = shared.log.read().map_err(|_| PlayError::LogPoisoned)?;
        let now = Instant::now();
        let mut bytes = 0;
        let drained = player.drain_batch(|m| {
            bytes += m.payload.len();
            t.frame(&log, now, m.kind, m.timestamp, m.payload);
        });
        drop(log);
        t.bytes(bytes);
        t.end_batch(now);
        drained?;
    }
    Ok(())
}

async fn play_flv(url: &str, t: &mut Tracker<'_>) -> Result<(), PlayError> {
    let url = HttpUrl::parse(url)?;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let (mut stream, head) = http::open(&url, &mut buf).await?;
    if head.status != 200 {
        return Err(PlayError::Status(head.status));
    }
    t.connected();
    let mut dechunker = head.chunked.then(Dechunker::default);
    let mut body = BytesMut::with_capacity(READ_CHUNK);
    let mut scratch = Vec::new();
    let mut reader = FlvReader::new(MAX_TAG);
    loop {
        t.bytes(buf.len());
        match &mut dechunker {
            Some(d) => {
                scratch.clear();
                d.decode(&mut buf, &mut scratch)?;
                body.extend_from_slice(&scratch);
            }
            None => body.unsplit(buf.split()),
        }
        {
            let shared = t.shared;
            let log = shared.log.read().map_err(|_| PlayError::LogPoisoned)?;
            let now = Instant::now();
            let tags = loop {
                let tag = match reader.next_tag(&mut body) {
                    Ok(Some(tag)) => tag,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                };
                let kind = match tag.tag_type {
                    tag_type::AUDIO => MediaKind::Audio,
                    tag_type::VIDEO => MediaKind::Video,
                    _ => continue,
                };
                t.frame(&log, now, kind, tag.timestamp, &tag.data);
            };
            t.end_batch(now);
            tags?;
        }
        buf.reserve(READ_CHUNK);
        if stream.read_buf(&mut buf).await.map_err(PlayError::Read)? == 0 {
            return Ok(());
        }
    }
}

/// Polls the playlist about twice per target duration and fetches each new segment once,
/// counting PES packets as frames (PTS must grow per stream). Latency is not matched: TS
/// payloads are not the FLV payloads the publisher sent.
async fn play_hls(url: &str, t: &mut Tracker<'_>) -> Result<(), PlayError> {
    let url = HttpUrl::parse(url)?;
    let mut next_seq: Option<u64> = None;
    let mut connected = false;
    let mut events = Vec::new();
    loop {
        let (status, body) = http::get(&url).await?;
        if status != 200 {
            return Err(PlayError::PlaylistStatus(status));
        }
        t.bytes(body.len());
        let text = String::from_utf8_lossy(&body);
        let playlist = media::hls::parse_media_playlist(&text)?;
        if !connected {
            connected = true;
            t.connected();
        }
        // Start like a player does: near the live edge (the last three segments).
        let first_new = next_seq.unwrap_or_else(|| {
            let n = playlist.segments.len() as u64;
            playlist.media_sequence + n.saturating_sub(3)
        });
        for seg in playlist.segments.iter().filter(|s| s.sequence >= first_new) {
            let (status, data) = http::get(&url.join(&seg.uri)?).await?;
            if status != 200 {
                return Err(PlayError::SegmentStatus {
                    uri: seg.uri.clone(),
                    status,
                });
            }
            t.bytes(data.len());
            let mut demux = media::ts::TsDemuxer::new();
            events.clear();
            demux.push(&data, &mut events);
            demux.finish(&mut events);
            let now = Instant::now();
            for ev in events.drain(..) {
                if let media::ts::TsEvent::Pes(pes) = ev {
                    let kind = if pes.stream_id & 0xf0 == 0xe0 {
                        MediaKind::Video
                    } else {
                        MediaKind::Audio
                    };
                    // 90 kHz to ms: the same unit as the other protocols.
                    let ts = (pes.dts.or(pes.pts).unwrap_or(0) / 90) as u32;
                    t.frame(&[], now, kind, ts, &pes.data);
                }
            }
            t.end_batch(now);
            next_seq = Some(seg.sequence + 1);
        }
        if playlist.ended {
            return Ok(());
        }
        let wait = (playlist.effective_target_duration() as f64 / 2.0).max(0.5);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}
