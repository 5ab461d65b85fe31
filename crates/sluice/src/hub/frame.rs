//! The unit that flows from a publisher to every consumer.

use bytes::Bytes;
use rtmp::server::MediaKind;

/// What a frame carries; the numbers are the RTMP/FLV message type ids so that
/// writers never need a mapping table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    Audio = 8,
    Video = 9,
    /// AMF0 data (onMetaData and other script tags).
    Script = 18,
}

impl FrameKind {
    pub fn type_id(self) -> u8 {
        self as u8
    }
}

/// One published message, parsed once. `payload` is shared by reference by every
/// consumer: cloning a `Frame` never copies media bytes.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: FrameKind,
    /// Milliseconds on the publisher's clock, unwrapped to 64 bits so that sessions
    /// longer than 2^32 ms (49.7 days) keep increasing.
    pub timestamp: u64,
    pub payload: Bytes,
    /// A video keyframe (a player can start decoding here).
    pub keyframe: bool,
    /// An AVC/HEVC decoder configuration or AAC AudioSpecificConfig.
    pub sequence_header: bool,
}

impl Frame {
    pub fn is_video(&self) -> bool {
        self.kind == FrameKind::Video
    }
    pub fn is_audio(&self) -> bool {
        self.kind == FrameKind::Audio
    }
    /// Bytes this frame holds, for memory bounds and byte counters.
    pub fn size(&self) -> usize {
        self.payload.len()
    }
}

/// Classifies a published RTMP message once, for every consumer: what it is, whether
/// a player can start on it. Used by every publisher (RTMP clients, edge pulls).
pub fn make_frame(kind: MediaKind, timestamp: u64, payload: Bytes) -> Option<Frame> {
    let first = *payload.first()?;
    let (kind, keyframe, sequence_header) = match kind {
        MediaKind::Video => match media::codec::parse_video_header(&payload) {
            Some(h) => (
                FrameKind::Video,
                h.info.keyframe && h.kind == media::codec::VideoPacketKind::Frames,
                h.kind == media::codec::VideoPacketKind::SequenceHeader,
            ),
            // Unknown codecs are relayed as they are; FLV frame type 1 is a keyframe.
            None => (FrameKind::Video, first >> 4 == 1, false),
        },
        MediaKind::Audio => (
            FrameKind::Audio,
            false,
            media::codec::parse_audio(&payload).is_some_and(|a| a.sequence_header),
        ),
        MediaKind::Metadata => (FrameKind::Script, false, false),
    };
    Some(Frame {
        kind,
        timestamp,
        payload,
        keyframe,
        sequence_header,
    })
}

pub fn media_kind(kind: FrameKind) -> MediaKind {
    match kind {
        FrameKind::Audio => MediaKind::Audio,
        FrameKind::Video => MediaKind::Video,
        FrameKind::Script => MediaKind::Metadata,
    }
}
