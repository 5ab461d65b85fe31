//! MPEG-TS (ISO/IEC 13818-1) for HLS: a muxer fed with FLV/RTMP frames and a demuxer good enough
//! to check what the muxer wrote. Sans-IO: both work on byte slices and `Vec<u8>` outputs.

mod crc;
mod demux;
mod ingest;
mod mux;
mod packet;
mod psi;

use thiserror::Error;

use crate::error::CodecError;

pub use crc::crc32_mpeg2;
pub use demux::{Pcr, Pes, PsiError, TsDemuxer, TsEvent, TsPacketInfo, MAX_PES_SIZE};
pub use ingest::{IngestFrame, IngestStats, TsIngest};
pub use mux::{TsAudio, TsConfig, TsMuxer, TsStreams, TsVideo};
pub use packet::{
    decode_pcr, decode_timestamp, encode_pcr, encode_timestamp, PACKET_SIZE, SYNC_BYTE, TS_MASK,
};
pub use psi::{parse_pat, parse_pmt, stream_type, Pat, PatProgram, Pmt, PmtStream, PsiProblem};

/// PIDs of the SRS/ffmpeg layout, which HLS tooling is used to seeing.
pub mod pid {
    pub const PAT: u16 = 0x0000;
    /// SRS's PMT PID (ffmpeg uses 0x1000; see [`super::TsConfig::pmt_pid`]).
    pub const PMT: u16 = 0x1001;
    pub const VIDEO: u16 = 0x0100;
    pub const AUDIO: u16 = 0x0101;
}

/// Why the muxer or demuxer refused its input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TsError {
    #[error("ts: {0}")]
    Codec(#[from] CodecError),
    #[error("ts: unparsable FLV {0} tag header")]
    BadFlvHeader(&'static str),
    #[error("ts: {0}")]
    CodecMismatch(&'static str),
    #[error("ts: no {0} stream was declared in TsStreams")]
    NoStream(&'static str),
    #[error("ts: AAC frame before the AAC sequence header")]
    MissingAudioConfig,
    #[error("ts: multitrack FLV payloads are not supported")]
    Multitrack,
    #[error("ts: AAC frame of {0} bytes is too large for one ADTS frame")]
    AacFrameTooLarge(usize),
    #[error("ts: packet of {0} bytes, expected 188")]
    BadPacketLength(usize),
    #[error("ts: sync byte {0:#04x}, expected 0x47")]
    BadSync(u8),
}
