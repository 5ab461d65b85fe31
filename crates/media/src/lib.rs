//! Media formats for sluice: the FLV container and the codec headers a live server must
//! understand (AVC, HEVC, AAC, MP3). Sans-IO: bytes in, values out; every parser is safe on
//! hostile input.

pub mod aac;
pub mod annexb;
pub mod audio_remux;
pub mod avc;
mod bits;
pub mod civil;
pub mod codec;
pub mod dash;
pub mod error;
pub mod flv;
pub mod fmp4;
pub mod hevc;
pub mod hls;
pub mod mp3;
pub mod rtp_h264;
pub mod ts;

pub use bits::nal_to_rbsp;
pub use error::{CodecError, FlvError};
