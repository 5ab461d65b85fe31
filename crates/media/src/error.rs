//! Error types shared by the FLV and codec parsers.

use thiserror::Error;

/// Why an FLV byte stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlvError {
    #[error("flv: need {needed} bytes, have {have}")]
    Truncated { needed: usize, have: usize },
    #[error("flv: bad signature {0:02x?}, expected \"FLV\"")]
    BadSignature([u8; 3]),
    #[error("flv: header data offset {0} is out of range (9..={max})", max = crate::flv::MAX_DATA_OFFSET)]
    BadDataOffset(u32),
    #[error("flv: unknown tag type {0} (or encrypted tag)")]
    UnknownTagType(u8),
    #[error("flv: tag of {size} bytes exceeds the limit of {max} bytes")]
    TagTooLarge { size: u32, max: u32 },
}

/// Why a codec header (AVC/HEVC/AAC) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("{what}: truncated")]
    Truncated { what: &'static str },
    #[error("{what}: invalid value: {detail}")]
    Invalid {
        what: &'static str,
        detail: &'static str,
    },
}

impl CodecError {
    pub(crate) fn truncated(what: &'static str) -> Self {
        CodecError::Truncated { what }
    }
    pub(crate) fn invalid(what: &'static str, detail: &'static str) -> Self {
        CodecError::Invalid { what, detail }
    }
}
