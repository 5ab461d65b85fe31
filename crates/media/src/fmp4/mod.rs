//! Fragmented MP4 (ISO/IEC 14496-12, CMAF-style) for HLS (`hls_use_fmp4`), Low-Latency HLS
//! parts and DASH: an init segment per stream configuration and `moof`+`mdat` fragments.
//! Sans-IO: FLV payloads in, bytes out; and a reader that checks what was written.

mod boxes;
mod mux;
pub mod read;
mod write;

use thiserror::Error;

use crate::error::CodecError;

pub use mux::{
    Fmp4Audio, Fmp4Muxer, Fmp4Streams, Fmp4Video, FragmentMeta, AUDIO_TRACK, VIDEO_TRACK,
};
pub use write::{
    write_fragment, write_init, Run, Sample, Track, TrackCodec, FLAGS_NON_SYNC, FLAGS_SYNC,
};

/// Why the muxer or the reader refused its input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Fmp4Error {
    #[error("fmp4: {0}")]
    Codec(#[from] CodecError),
    #[error("fmp4: unparsable FLV {0} tag header")]
    BadFlvHeader(&'static str),
    #[error("fmp4: {0}")]
    CodecMismatch(&'static str),
    #[error("fmp4: no {0} track was declared")]
    NoStream(&'static str),
    #[error("fmp4: {0} frame before its configuration")]
    MissingConfig(&'static str),
    #[error("fmp4: multitrack FLV payloads are not supported")]
    Multitrack,
    #[error("fmp4: video frame is neither length-prefixed NALUs nor Annex B")]
    BadFrame,
    #[error("fmp4: truncated {0}")]
    Truncated(&'static str),
    #[error("fmp4: {0}")]
    Invalid(&'static str),
    #[error("fmp4: no {} box", String::from_utf8_lossy(*.0))]
    Missing(&'static [u8; 4]),
    #[error("fmp4: {0} not supported")]
    Unsupported(&'static str),
}

#[cfg(test)]
mod tests;
