//! One MPEG-TS mux per stream, shared by every SRT player of it.
//!
//! A feed is an own-pace reader of the stream's Source (like HLS): it muxes each frame
//! into TS packets once (media's `TsMuxer`, the one HLS uses) and pushes them, as frames
//! of whole TS packets, into a Source of its own that is not in the hub. SRT players read
//! that Source through the one delivery path (`Framing::Ts`, `Transport::Srt`), so the
//! fan-out, backpressure and GOP cache are those of every other player: a new player
//! starts on the last keyframe, which the feed writes right after a PAT and a PMT.
//! The feed lives while one of its players holds it (its task is aborted with the last).

use std::sync::Arc;

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
pub type TsFeed = crate::feeds::Feed;

/// The feeds of the streams that have SRT or HTTP-TS players.
#[derive(Debug, Default)]
pub struct Feeds(crate::feeds::Feeds);

impl Feeds {
    /// The feed of `key`'s stream, started if it has none. Must be called inside the runtime.
    pub fn get(
        &self,
        ctx: &Arc<Context>,
        key: &StreamKey,
        settings: SourceSettings,
        notify_interval: std::time::Duration,
    ) -> Arc<TsFeed> {
        self.0
            .get(ctx, key, settings, "srt-ts", notify_interval, run)
    }

    /// Streams with a feed running.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

async fn run(ctx: Arc<Context>, key: StreamKey, settings: SourceSettings, out: Arc<Source>, _: ()) {
    let mut consumer = ctx.hub.subscribe(&key, settings);
    let _reading = crate::feeds::Reading::new(ctx.clone(), key);
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
    /// The publisher's metadata names an audio codec and no video one: an audio-only
    /// program starts at once instead of after [`AUDIO_ONLY_AFTER_MS`].
    audio_only_by_metadata: bool,
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
            self.audio_only_by_metadata = metadata_is_audio_only(&f.payload);
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
            let waited = f.timestamp.saturating_sub(first) >= AUDIO_ONLY_AFTER_MS;
            if !(waited || self.audio_only_by_metadata) || audio.is_none() {
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

/// Whether an `onMetaData` says audio only: an `audiocodecid` and no `videocodecid`
/// (what ffmpeg and OBS write for an audio-only publish).
fn metadata_is_audio_only(payload: &[u8]) -> bool {
    let Ok(values) = amf::decode_all(payload) else {
        return false;
    };
    let Some(props) = values
        .iter()
        .position(|v| v.as_str() == Some("onMetaData"))
        .and_then(|i| values.get(i + 1))
        .and_then(|v| v.properties())
    else {
        return false;
    };
    let has = |k: &str| props.iter().any(|(name, _)| name == k);
    has("audiocodecid") && !has("videocodecid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::test_frames::{aac as audio, frame, video, video_sh};
    use crate::hub::{Consumer, Hub};

    /// What the feed's Source holds, demuxed back into FLV frames.
    fn read_back(out: &Arc<Source>, consumer: &mut Consumer) -> Vec<media::ts::IngestFrame> {
        let mut items = Vec::new();
        loop {
            let mut batch = Vec::new();
            consumer.fetch(&mut batch);
            if batch.is_empty() {
                break;
            }
            items.extend(batch);
        }
        let mut ingest = media::ts::TsIngest::new();
        let mut frames = Vec::new();
        for item in items {
            if let Item::Frame(f) = item {
                assert_eq!(f.payload.len() % 188, 0, "whole TS packets");
                ingest.push(&f.payload, &mut frames);
            }
        }
        ingest.finish(&mut frames);
        let _ = out;
        frames
    }

    fn feed_source() -> Arc<Source> {
        let hub = Hub::new();
        let key = StreamKey {
            vhost: "v".into(),
            app: "live".into(),
            stream: "s".into(),
        };
        let settings = SourceSettings {
            gop_cache: true,
            queue_length_ms: 10_000,
        };
        let out = Source::new(
            "feed".into(),
            key,
            settings,
            tokio::sync::broadcast::channel(1).0,
            hub.pacing(),
        );
        out.publish(FEED_PUBLISHER).expect("publish");
        out
    }

    /// A TS publisher's first keyframe comes before its first audio: the program waits for
    /// the audio (instead of starting video-only and restarting at the next keyframe), then
    /// has both streams from that keyframe on.
    #[test]
    fn the_program_waits_for_audio_after_the_first_keyframe() {
        let out = feed_source();
        let mut consumer = Consumer::detached(out.clone(), 10_000);
        let mut mux = Mux::default();
        for f in [
            video_sh(),
            video(1000, true),
            video(1040, false),
            audio(1050, true),
            audio(1050, false),
            video(1080, false),
            audio(1073, false),
        ] {
            mux.frame(&f, &out);
        }
        let frames = read_back(&out, &mut consumer);
        let video_frames = frames
            .iter()
            .filter(|f| f.video && f.payload[1] == 1)
            .count();
        let audio_frames = frames
            .iter()
            .filter(|f| !f.video && f.payload[1] == 1)
            .count();
        assert_eq!((video_frames, audio_frames), (3, 2), "{frames:?}");
        assert_eq!(
            frames
                .iter()
                .find(|f| f.video && f.payload[1] == 1)
                .map(|f| f.timestamp),
            Some(1000)
        );
    }

    /// With no audio header within a second of media after the keyframe, video only.
    #[test]
    fn video_only_after_a_second_without_audio() {
        let out = feed_source();
        let mut consumer = Consumer::detached(out.clone(), 10_000);
        let mut mux = Mux::default();
        mux.frame(&video_sh(), &out);
        for i in 0..30u64 {
            mux.frame(&video(1000 + i * 40, i == 0), &out);
        }
        let frames = read_back(&out, &mut consumer);
        assert_eq!(
            frames
                .iter()
                .filter(|f| f.video && f.payload[1] == 1)
                .count(),
            30
        );
        assert!(frames.iter().all(|f| f.video));
    }

    /// Metadata that names only an audio codec starts the audio-only program at once.
    #[test]
    fn audio_only_metadata_starts_the_program_at_once() {
        use amf::Amf0Value;
        let out = feed_source();
        let mut consumer = Consumer::detached(out.clone(), 10_000);
        let mut mux = Mux::default();
        let mut meta = Vec::new();
        Amf0Value::string("onMetaData").encode(&mut meta);
        Amf0Value::EcmaArray(vec![("audiocodecid".into(), Amf0Value::Number(10.0))])
            .encode(&mut meta);
        mux.frame(&frame(FrameKind::Script, 0, meta, false, false), &out);
        mux.frame(&audio(0, true), &out);
        for i in 0..10u64 {
            mux.frame(&audio(i * 23, false), &out);
        }
        let frames = read_back(&out, &mut consumer);
        assert_eq!(
            frames
                .iter()
                .filter(|f| !f.video && f.payload[1] == 1)
                .count(),
            10,
            "{frames:?}"
        );
    }

    /// Audio only: after a second of audio with no video header the program starts, and
    /// PAT/PMT come at least every half second.
    #[test]
    fn audio_only_programs_repeat_their_tables() {
        let out = feed_source();
        let mut consumer = Consumer::detached(out.clone(), 10_000);
        let mut mux = Mux::default();
        mux.frame(&audio(0, true), &out);
        for i in 0..200u64 {
            mux.frame(&audio(i * 23, false), &out);
        }
        let mut items = Vec::new();
        loop {
            let mut batch = Vec::new();
            consumer.fetch(&mut batch);
            if batch.is_empty() {
                break;
            }
            items.extend(batch);
        }
        let with_pat = items
            .iter()
            .filter(
                |i| matches!(i, Item::Frame(f) if f.payload[1] & 0x1f == 0 && f.payload[2] == 0),
            )
            .count();
        let at: Vec<u64> = items
            .iter()
            .filter_map(|i| match i {
                Item::Frame(f) if f.payload[1] & 0x1f == 0 && f.payload[2] == 0 => {
                    Some(f.timestamp)
                }
                _ => None,
            })
            .collect();
        // 200 frames of 23 ms from 1 s on: about 3.6 s, tables every 0.5 s.
        assert!(
            (7..=9).contains(&with_pat),
            "{with_pat} frames start with a PAT: {at:?}, {} items",
            items.len()
        );
    }
}
