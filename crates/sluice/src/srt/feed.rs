//! One MPEG-TS mux per stream, shared by every SRT player of it.
//!
//! A feed is an own-pace reader of the stream's Source (like HLS): it muxes each frame
//! into TS packets once (media's `TsMuxer`, the one HLS uses) and pushes them, as frames
//! of whole TS packets, into a Source of its own that is not in the hub. SRT players read
//! that Source through the one delivery path (`Framing::Ts`, `Transport::Srt`), so the
//! fan-out, backpressure and GOP cache are those of every other player: a new player
//! starts on the last keyframe, which the feed writes right after a PAT and a PMT.
//! The feed lives while one of its players holds it (its task is aborted with the last).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use media::ts::{TsAudio, TsMuxer, TsStreams, TsVideo};

use crate::context::Context;
use crate::hub::{Frame, FrameKind, Item, Source, SourceSettings, StreamKey};

/// The client id the feed's own Source is published under.
const FEED_PUBLISHER: &str = "srt-ts-feed";
/// Audio-only streams: PAT and PMT at least this often (ms), so that a player joining
/// finds them soon (video streams have them before every keyframe).
const AUDIO_TABLES_EVERY_MS: u64 = 500;
/// Audio before any video sequence header for this long (ms) means an audio-only stream.
const AUDIO_ONLY_AFTER_MS: u64 = 1000;

/// A stream's TS, muxed once.
pub struct TsFeed {
    pub source: Arc<Source>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TsFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The feeds of the streams that have SRT players.
#[derive(Default)]
pub struct Feeds {
    map: Mutex<HashMap<StreamKey, Weak<TsFeed>>>,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("streams", &crate::util::lock(&self.map).len())
            .finish()
    }
}

impl Feeds {
    /// The feed of `key`'s stream, started if it has none. Must be called inside the runtime.
    pub fn get(
        &self,
        ctx: &Arc<Context>,
        key: &StreamKey,
        settings: SourceSettings,
        notify_interval: std::time::Duration,
    ) -> Arc<TsFeed> {
        let mut map = crate::util::lock(&self.map);
        if let Some(feed) = map.get(key).and_then(Weak::upgrade) {
            return feed;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let (events, _) = tokio::sync::broadcast::channel(1);
        let source = Source::new(
            format!("srt-ts-{}", ctx.new_client_id()),
            key.clone(),
            settings,
            events,
            ctx.hub.pacing(),
        );
        source.set_notify_interval(notify_interval);
        let task = tokio::spawn(run(ctx.clone(), key.clone(), settings, source.clone()));
        let feed = Arc::new(TsFeed { source, task });
        map.insert(key.clone(), Arc::downgrade(&feed));
        feed
    }

    /// Streams with a feed running.
    pub fn len(&self) -> usize {
        crate::util::lock(&self.map)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Gives the stream back to the hub when the feed's task ends (or is aborted).
struct Reading {
    ctx: Arc<Context>,
    key: StreamKey,
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.ctx.hub.release(&self.key);
    }
}

async fn run(ctx: Arc<Context>, key: StreamKey, settings: SourceSettings, out: Arc<Source>) {
    let mut consumer = ctx.hub.subscribe(&key, settings);
    let _reading = Reading {
        ctx: ctx.clone(),
        key,
    };
    let mut mux = Mux::default();
    if consumer.source().is_publishing() {
        let _ = out.publish(FEED_PUBLISHER);
    }
    let mut items = Vec::new();
    loop {
        consumer.fetch(&mut items);
        let more = items.len() >= crate::hub::MAX_BATCH;
        for item in items.drain(..) {
            match item {
                Item::Published => {
                    mux = Mux::default();
                    let _ = out.publish(FEED_PUBLISHER);
                }
                Item::Unpublished => out.unpublish(FEED_PUBLISHER),
                Item::Frame(f) => mux.frame(&f, &out),
            }
        }
        if !more {
            consumer.changed().await;
        }
    }
}

/// The muxing state of one publish.
#[derive(Default)]
struct Mux {
    muxer: Option<TsMuxer>,
    video_sh: Option<Frame>,
    audio_sh: Option<Frame>,
    first_audio_ts: Option<u64>,
    last_tables_ts: Option<u64>,
    /// From a video keyframe on, while the audio stream is not known yet (see `frame`).
    held: Vec<Frame>,
    buf: Vec<u8>,
}

/// A video keyframe without a known audio stream waits this long (ms of media) for the
/// audio's sequence header before the program starts as video only: a TS publisher's
/// first audio frames often come a little after its first keyframe.
const AUDIO_WAIT_MS: u64 = 1000;
/// And at most this many frames.
const MAX_HELD: usize = 256;

impl Mux {
    fn frame(&mut self, f: &Frame, out: &Source) {
        if f.kind == FrameKind::Script {
            return;
        }
        if f.sequence_header {
            let changed = match f.kind {
                FrameKind::Video => {
                    let new = TsVideo::from_flv(&f.payload);
                    let was = self.muxer.as_ref().and_then(|m| m.streams().video);
                    self.video_sh = Some(f.clone());
                    self.muxer.is_some() && new != was
                }
                _ => {
                    let new = TsAudio::from_flv(&f.payload);
                    let was = self.muxer.as_ref().and_then(|m| m.streams().audio);
                    self.audio_sh = Some(f.clone());
                    self.muxer.is_some() && new != was
                }
            };
            if changed {
                // A new codec: a new program from the next keyframe on.
                self.muxer = None;
            } else if let Some(m) = self.muxer.as_mut() {
                let _ = match f.kind {
                    FrameKind::Video => m.set_video_config(&f.payload),
                    _ => m.set_audio_config(&f.payload),
                };
            } else if !self.held.is_empty() && f.kind == FrameKind::Audio {
                // The audio the held keyframe waited for.
                self.release_held(out);
            }
            return;
        }
        if self.muxer.is_none() {
            if !self.held.is_empty() {
                self.held.push(f.clone());
                let waited = f.timestamp.saturating_sub(self.held[0].timestamp);
                let audio_now = !f.is_video() && TsAudio::from_flv(&f.payload).is_some();
                if audio_now || waited >= AUDIO_WAIT_MS || self.held.len() >= MAX_HELD {
                    self.release_held(out);
                }
                return;
            }
            if f.is_video() && f.keyframe && self.video_sh.is_some() && self.audio_sh.is_none() {
                self.held.push(f.clone());
                return;
            }
            if !self.start(f) {
                return;
            }
        }
        self.mux(f, out);
    }

    /// Starts the program on the held keyframe (with audio if it is known by now) and
    /// muxes what was held.
    fn release_held(&mut self, out: &Source) {
        let held = std::mem::take(&mut self.held);
        let mut started = false;
        for f in &held {
            if !started {
                started = self.start_with_audio_from(f, &held);
                if !started {
                    continue;
                }
            }
            self.mux(f, out);
        }
    }

    fn start_with_audio_from(&mut self, f: &Frame, held: &[Frame]) -> bool {
        if self.audio_sh.is_none() {
            // MP3 has no sequence header: its first frame says what it is.
            if let Some(a) = held.iter().find(|h| !h.is_video()) {
                self.first_audio_ts = Some(0);
                return self.start_as(f, TsAudio::from_flv(&a.payload));
            }
        }
        self.start(f)
    }

    fn mux(&mut self, f: &Frame, out: &Source) {
        let Some(m) = self.muxer.as_mut() else {
            return;
        };
        self.buf.clear();
        let video = m.streams().video.is_some();
        let tables = if video {
            f.is_video() && f.keyframe
        } else {
            self.last_tables_ts.is_none_or(|t| {
                f.timestamp.saturating_sub(t) >= AUDIO_TABLES_EVERY_MS || f.timestamp < t
            })
        };
        if tables {
            m.write_tables(&mut self.buf);
            self.last_tables_ts = Some(f.timestamp);
        }
        let r = match f.kind {
            FrameKind::Video => m.write_video(f.timestamp, &f.payload, &mut self.buf),
            _ => m.write_audio(f.timestamp, &f.payload, &mut self.buf),
        };
        if let Err(e) = r {
            tracing::debug!("srt feed: frame not muxed: {e}");
        }
        if self.buf.is_empty() {
            return;
        }
        out.push(Frame {
            kind: f.kind,
            timestamp: f.timestamp,
            payload: Bytes::copy_from_slice(&self.buf),
            keyframe: f.is_video() && f.keyframe,
            sequence_header: false,
        });
    }

    /// Starts the program on a video keyframe (after the video sequence header), or, with
    /// no video header after a second of audio, audio only. False: not yet.
    fn start(&mut self, f: &Frame) -> bool {
        let audio = self
            .audio_sh
            .as_ref()
            .and_then(|h| TsAudio::from_flv(&h.payload))
            .or_else(|| {
                (!f.is_video())
                    .then(|| TsAudio::from_flv(&f.payload))
                    .flatten()
            });
        self.start_as(f, audio)
    }

    fn start_as(&mut self, f: &Frame, audio: Option<TsAudio>) -> bool {
        let video = self
            .video_sh
            .as_ref()
            .and_then(|h| TsVideo::from_flv(&h.payload));
        if f.is_video() {
            if !f.keyframe || video.is_none() {
                return false;
            }
        } else {
            if video.is_some() {
                return false;
            }
            let first = *self.first_audio_ts.get_or_insert(f.timestamp);
            if f.timestamp.saturating_sub(first) < AUDIO_ONLY_AFTER_MS || audio.is_none() {
                return false;
            }
        }
        let mut m = TsMuxer::new(TsStreams { video, audio });
        if let (Some(h), Some(_)) = (&self.video_sh, video) {
            let _ = m.set_video_config(&h.payload);
        }
        if let (Some(h), Some(TsAudio::Aac)) = (&self.audio_sh, audio) {
            let _ = m.set_audio_config(&h.payload);
        }
        self.muxer = Some(m);
        true
    }
}
