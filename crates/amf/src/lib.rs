//! AMF0 (Action Message Format), the encoding of RTMP command and data
//! messages, with the AMF3 switch (0x11) for the simple AMF3 types.
//!
//! Sans-IO: bytes in, [`Amf0Value`]s out, and back. Decoding treats its input
//! as hostile (bounded nesting, bounded reference expansion, no panics); see
//! [`Decoder`] for how references are scoped.

mod amf3;
mod budget;
mod decode;
mod encode;
mod error;
mod marker;
mod reader;
mod value;

pub use budget::MAX_EXPANSION;
pub use decode::{Decoder, MAX_DEPTH};
pub use encode::encode_all;
pub use error::AmfError;
pub use value::Amf0Value;

/// Decodes one value and advances `buf` past it (on error `buf` is left as
/// it was). References can only point inside this one value.
pub fn decode(buf: &mut &[u8]) -> Result<Amf0Value, AmfError> {
    Decoder::new().decode(buf)
}

/// Decodes values until the input ends (used for command and data message
/// bodies). References may point into earlier values of the same body.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Amf0Value>, AmfError> {
    Decoder::new().decode_all(buf)
}
