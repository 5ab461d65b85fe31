//! A stream's WebRTC feed: one hub consumer per stream with WHEP players, whatever their
//! number. Each frame is converted once (FLV AVC → Annex B access unit, parameter sets
//! before keyframes) into an `Arc<[u8]>` that every player's RTP packetizer borrows; the
//! per-player work left is str0m's packetization, SRTP and the send.
//!
//! The feed reads at its own pace (`Consumer::changed` + `fetch`), like HLS: when the UDP
//! task is slow the channel fills, the feed waits, and the hub's queue policy moves it to
//! a keyframe (`Skipped`), which is what a slow player should get.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::hub::{Consumer, FrameKind, Item};

/// One access unit for WebRTC players of a stream.
#[derive(Debug)]
pub struct RtcFrame {
    /// Presentation time in ms on the publisher's clock (DTS + composition time).
    pub pts_ms: u64,
    pub keyframe: bool,
    /// Annex B access unit, shared by every player's packetizer.
    pub data: Arc<[u8]>,
}

/// One Opus packet for WebRTC players of a stream (transcoded once from its AAC).
#[derive(Debug)]
pub struct RtcAudio {
    /// RTP time at 48 kHz on the publisher's clock.
    pub ts48: u64,
    pub data: Arc<[u8]>,
}

/// What a feed tells the UDP task.
pub enum FeedEvent {
    Video(Arc<RtcFrame>),
    Audio(Arc<RtcAudio>),
    /// The publish ended: its players' sessions end (as in SRS).
    Unpublished,
    /// The feed fell behind and was moved to a keyframe; the GOP so far is void.
    Skipped,
}

pub struct FeedMsg {
    pub feed: u64,
    pub event: FeedEvent,
}

/// Frames a feed may have queued for the UDP task before it waits.
pub const FEED_QUEUE: usize = 512;

/// Runs until `stop` (the stream has no player left) or the UDP task is gone; then lets
/// the hub forget the stream if nobody else uses it.
pub async fn run(
    ctx: Arc<crate::context::Context>,
    id: u64,
    consumer: Consumer,
    tx: mpsc::Sender<FeedMsg>,
    stop: CancellationToken,
) {
    let key = consumer.source().key.clone();
    feed(id, consumer, tx, stop).await;
    ctx.hub.release(&key);
}

async fn feed(id: u64, mut consumer: Consumer, tx: mpsc::Sender<FeedMsg>, stop: CancellationToken) {
    let mut conv = media::annexb::ToAnnexB::new();
    conv.drop_b_frames = true;
    let mut items = Vec::new();
    let mut buf = Vec::new();
    let mut warned = false;
    let mut warned_b = false;
    let mut aac: Option<super::audio::AacToOpus> = None;
    let mut opus = Vec::new();
    loop {
        items.clear();
        let skipped = consumer.fetch(&mut items);
        let more = items.len() >= crate::hub::MAX_BATCH;
        if skipped.is_some()
            && tx
                .send(FeedMsg {
                    feed: id,
                    event: FeedEvent::Skipped,
                })
                .await
                .is_err()
        {
            return;
        }
        for item in items.drain(..) {
            let event = match item {
                Item::Frame(f) if f.kind == FrameKind::Video => {
                    let Some(h) = media::codec::parse_video_header(&f.payload) else {
                        continue;
                    };
                    if h.info.codec != media::codec::VideoCodec::Avc {
                        if !warned {
                            tracing::warn!(
                                "rtc feed {}: video is not H.264; WebRTC players get no video",
                                consumer.source().key
                            );
                            warned = true;
                        }
                        continue;
                    }
                    let Some(body) = h.data_offset.and_then(|o| f.payload.get(o..)) else {
                        continue;
                    };
                    if f.sequence_header {
                        if let Err(e) = conv.sequence_header(body) {
                            tracing::warn!(
                                "rtc feed {}: bad AVC sequence header: {e}",
                                consumer.source().key
                            );
                        }
                        continue;
                    }
                    if h.kind != media::codec::VideoPacketKind::Frames || !conv.has_params() {
                        continue;
                    }
                    if let Err(e) = conv.frame(body, f.keyframe, &mut buf) {
                        tracing::debug!("rtc feed: frame dropped: {e}");
                        continue;
                    }
                    if buf.is_empty() {
                        if !warned_b && h.info.composition_time != 0 {
                            tracing::warn!(
                                "rtc feed {}: the stream has B frames, which Chromium cannot decode over WebRTC: its WebRTC players get the I and P frames only (publish with -bf 0 for the full rate)",
                                consumer.source().key
                            );
                            warned_b = true;
                        }
                        continue;
                    }
                    let cts = i64::from(h.info.composition_time).max(0) as u64;
                    FeedEvent::Video(Arc::new(RtcFrame {
                        pts_ms: f.timestamp.saturating_add(cts),
                        keyframe: f.keyframe,
                        data: Arc::from(buf.as_slice()),
                    }))
                }
                Item::Frame(f) if f.kind == FrameKind::Audio => {
                    let Some(h) = media::codec::parse_audio_header(&f.payload) else {
                        continue;
                    };
                    if h.info.codec != media::codec::AudioCodec::Aac {
                        continue;
                    }
                    let Some(body) = h.data_offset.and_then(|o| f.payload.get(o..)) else {
                        continue;
                    };
                    if h.info.sequence_header {
                        aac = match super::audio::AacToOpus::new(body) {
                            Ok(t) => Some(t),
                            Err(e) => {
                                tracing::warn!(
                                    "rtc feed {}: no audio for WebRTC players: {e}",
                                    consumer.source().key
                                );
                                None
                            }
                        };
                        continue;
                    }
                    let Some(t) = aac.as_mut() else {
                        continue;
                    };
                    opus.clear();
                    t.push(body, f.timestamp, &mut opus);
                    for p in opus.drain(..) {
                        let event = FeedEvent::Audio(Arc::new(RtcAudio {
                            ts48: p.ts48,
                            data: Arc::from(p.data),
                        }));
                        if tx.send(FeedMsg { feed: id, event }).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Item::Frame(_) => continue,
                Item::Published => continue,
                Item::Unpublished => FeedEvent::Unpublished,
            };
            if tx.send(FeedMsg { feed: id, event }).await.is_err() {
                return;
            }
        }
        if more {
            if stop.is_cancelled() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = consumer.changed() => {}
        }
    }
}
