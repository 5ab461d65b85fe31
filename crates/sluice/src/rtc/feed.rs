//! A stream's WebRTC feed: the conversion of its media for WebRTC players, made once per
//! stream whatever their number, and shared by every WHEP player of it through the one
//! delivery path.
//!
//! A feed is an own-pace reader of the stream's Source (like HLS and SRT's TS feed): it
//! turns each FLV AVC frame into H.264 RTP payloads (parameter sets before keyframes,
//! B frames left out, see docs/webrtc.md; [`media::rtp_h264`]) kept in the stream's
//! [`PacketHistory`], and each AAC frame into Opus packets ([`super::audio`]), and pushes
//! them as frames into a Source of its own that is not in the hub: a video frame's payload
//! is its [`super::history::Span`] (which packets of the history), an audio frame's the
//! Opus packet (audio is not retransmitted, so it needs no history). WHEP players read
//! that Source like any other player (`Framing::Rtc`,
//! `Transport::Rtc`, [`super::peer`]): the shards' fan-out, the backpressure, the GOP cache
//! (a new player starts at once on the last keyframe) and the queue policy (a player that
//! falls behind skips to a keyframe) are those of every other output. Frame times: video
//! is the presentation time in ms (DTS + composition time), audio the Opus packet's time
//! in ms (a whole number: 20 ms packets from a ms start). The feed lives while one of its
//! players (or a session waiting for its handshake) holds it.

use std::sync::Arc;

use bytes::Bytes;

use super::history::PacketHistory;
use crate::context::Context;
use crate::hub::{Frame, FrameKind, Item, Source, SourceSettings, StreamKey};

/// The client id the feed's own Source is published under.
const FEED_PUBLISHER: &str = "rtc-feed";

/// Largest H.264 RTP payload: str0m's datagram target (1150 bytes) less the SRTP tag,
/// rounded down to the SRTP block, as str0m's own packetizer sizes it. The RTP header and
/// its extensions come on top, within str0m's 1280-byte warning size.
pub const VIDEO_PAYLOAD: usize = {
    let rtp = str0m::DATAGRAM_MTU_TARGET - 16;
    rtp - rtp % 16
};

/// A stream's media converted once for WebRTC players, and its video packets.
pub type RtcFeed = crate::feeds::Feed<Arc<PacketHistory>>;

/// The feeds of the streams that have WHEP players.
#[derive(Debug, Default)]
pub struct Feeds(crate::feeds::Feeds<Arc<PacketHistory>>);

impl Feeds {
    /// The feed of `key`'s stream, started if it has none. Must be called inside the runtime.
    /// No merged writes: each frame goes out when it is converted (latency matters more
    /// than system calls here; a player's write is a queue push, not a syscall).
    pub fn get(
        &self,
        ctx: &Arc<Context>,
        key: &StreamKey,
        settings: SourceSettings,
    ) -> Arc<RtcFeed> {
        self.0.get(
            ctx,
            key,
            settings,
            "rtc-feed",
            std::time::Duration::ZERO,
            run,
        )
    }

    /// Bytes the running feeds' packet histories hold, all streams together.
    pub fn history_bytes(&self) -> u64 {
        self.0
            .running()
            .iter()
            .map(|f| f.extra.size().1 as u64)
            .sum()
    }

    /// Streams with a feed running.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

async fn run(
    ctx: Arc<Context>,
    key: StreamKey,
    settings: SourceSettings,
    out: Arc<Source>,
    history: Arc<PacketHistory>,
) {
    // Woken per frame: WHEP players' packets go out one by one whatever the batching, so
    // the vhost's merged writes would only add their interval to the glass-to-glass delay.
    let mut consumer = ctx.hub.subscribe(&key, settings).unpaced();
    let _reading = crate::feeds::Reading::new(ctx.clone(), key.clone());
    let mut conv = Convert::new(key, history);
    if consumer.source().is_publishing() {
        let _ = out.publish(FEED_PUBLISHER);
    }
    let mut items = Vec::new();
    loop {
        let skipped = consumer.fetch(&mut items);
        if skipped.is_some() {
            // The hub moved this reader to a keyframe: what follows starts a new GOP, and
            // the players' own consumers see the keyframe in the feed's ring.
            tracing::debug!("rtc feed {}: fell behind, moved to a keyframe", conv.key);
        }
        let more = items.len() >= crate::hub::MAX_BATCH;
        for item in items.drain(..) {
            match item {
                Item::Published => {
                    conv = Convert::new(conv.key.clone(), conv.history.clone());
                    let _ = out.publish(FEED_PUBLISHER);
                }
                Item::Unpublished => out.unpublish(FEED_PUBLISHER),
                Item::Frame(f) => conv.frame(&f, &out),
            }
        }
        if !more {
            consumer.changed().await;
        }
    }
}

/// The conversion state of one publish.
struct Convert {
    key: StreamKey,
    history: Arc<PacketHistory>,
    video: media::annexb::ToAnnexB,
    aac: Option<super::audio::AacToOpus>,
    opus: Vec<super::audio::OpusPacket>,
    warned_codec: bool,
    warned_b: bool,
}

impl Convert {
    fn new(key: StreamKey, history: Arc<PacketHistory>) -> Convert {
        let mut video = media::annexb::ToAnnexB::new();
        video.drop_b_frames = true;
        Convert {
            key,
            history,
            video,
            aac: None,
            opus: Vec::new(),
            warned_codec: false,
            warned_b: false,
        }
    }

    fn frame(&mut self, f: &Frame, out: &Source) {
        match f.kind {
            FrameKind::Video => self.video(f, out),
            FrameKind::Audio => self.audio(f, out),
            FrameKind::Script => {}
        }
    }

    fn video(&mut self, f: &Frame, out: &Source) {
        let Some(h) = media::codec::parse_video_header(&f.payload) else {
            return;
        };
        if h.info.codec != media::codec::VideoCodec::Avc {
            if !self.warned_codec {
                tracing::warn!(
                    "rtc feed {}: video is not H.264; WebRTC players get no video",
                    self.key
                );
                self.warned_codec = true;
            }
            return;
        }
        let Some(body) = h.data_offset.and_then(|o| f.payload.get(o..)) else {
            return;
        };
        if f.sequence_header {
            if let Err(e) = self.video.sequence_header(body) {
                tracing::warn!("rtc feed {}: bad AVC sequence header: {e}", self.key);
            }
            return;
        }
        if h.kind != media::codec::VideoPacketKind::Frames || !self.video.has_params() {
            return;
        }
        let mut nalus = Vec::new();
        if let Err(e) = self.video.nal_units(body, f.keyframe, &mut nalus) {
            tracing::debug!("rtc feed: frame dropped: {e}");
            return;
        }
        let mut packets = Vec::new();
        media::rtp_h264::packetize(&nalus, VIDEO_PAYLOAD, &mut packets);
        if packets.is_empty() {
            if !self.warned_b && h.info.composition_time != 0 {
                tracing::warn!(
                    "rtc feed {}: the stream has B frames, which Chromium cannot decode over WebRTC: its WebRTC players get the I and P frames only (publish with -bf 0 for the full rate)",
                    self.key
                );
                self.warned_b = true;
            }
            return;
        }
        let cts = i64::from(h.info.composition_time).max(0) as u64;
        let timestamp = f.timestamp.saturating_add(cts);
        let span = self.history.push(packets, timestamp, f.keyframe);
        out.push(Frame {
            kind: FrameKind::Video,
            timestamp,
            payload: Bytes::copy_from_slice(&span.encode()),
            keyframe: f.keyframe,
            sequence_header: false,
        });
    }

    fn audio(&mut self, f: &Frame, out: &Source) {
        let Some(h) = media::codec::parse_audio_header(&f.payload) else {
            return;
        };
        if h.info.codec != media::codec::AudioCodec::Aac {
            return;
        }
        let Some(body) = h.data_offset.and_then(|o| f.payload.get(o..)) else {
            return;
        };
        if h.info.sequence_header {
            self.aac = match super::audio::AacToOpus::new(body) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!("rtc feed {}: no audio for WebRTC players: {e}", self.key);
                    None
                }
            };
            return;
        }
        let Some(t) = self.aac.as_mut() else {
            return;
        };
        self.opus.clear();
        t.push(body, f.timestamp, &mut self.opus);
        for p in self.opus.drain(..) {
            out.push(Frame {
                kind: FrameKind::Audio,
                timestamp: p.ts48 / 48,
                payload: Bytes::from(p.data),
                keyframe: false,
                sequence_header: false,
            });
        }
    }
}
