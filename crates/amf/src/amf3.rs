//! The AMF3 values that can follow the AMF0 `avmplus-object-marker` (0x11),
//! limited to the simple types that map one to one onto AMF0.
//!
//! Peers that negotiate `objectEncoding` 3 may send command arguments this
//! way; the complex AMF3 types (objects with traits, arrays, byte arrays...)
//! never appear in the RTMP commands we serve and are rejected.

use crate::budget::{Budget, NODE_WEIGHT};
use crate::marker::amf3 as m;
use crate::{reader, Amf0Value, AmfError};

/// Most strings kept in the AMF3 string table. A reference past it fails.
const MAX_STRINGS: usize = 1 << 16;

/// The AMF3 string reference table. It lives as long as the [`crate::Decoder`]
/// (one decode sequence, e.g. one message body), so a string sent in one
/// switched value can be referenced from a later one.
#[derive(Debug, Default)]
pub(crate) struct Strings {
    /// `None` marks a string that was not kept (table budget spent): indexes
    /// of later strings stay right, and only a reference to it fails.
    table: Vec<Option<String>>,
}

/// Decodes one AMF3 value (the 0x11 marker already consumed).
pub(crate) fn value(
    buf: &mut &[u8],
    strings: &mut Strings,
    budget: &mut Budget,
) -> Result<Amf0Value, AmfError> {
    let marker = reader::u8(buf)?;
    Ok(match marker {
        m::UNDEFINED => Amf0Value::Undefined,
        m::NULL => Amf0Value::Null,
        m::FALSE => Amf0Value::Boolean(false),
        m::TRUE => Amf0Value::Boolean(true),
        m::INTEGER => Amf0Value::Number(f64::from(sign_extend_29(u29(buf)?))),
        m::DOUBLE => Amf0Value::Number(reader::f64(buf)?),
        m::STRING => Amf0Value::String(string(buf, strings, budget)?),
        other => return Err(AmfError::Amf3Unsupported(other)),
    })
}

/// AMF3's variable-length unsigned 29-bit integer: up to three bytes of 7
/// bits with a continuation flag, then one full byte.
fn u29(buf: &mut &[u8]) -> Result<u32, AmfError> {
    let mut value = 0u32;
    for _ in 0..3 {
        let byte = reader::u8(buf)?;
        value = (value << 7) | u32::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    let byte = reader::u8(buf)?;
    Ok((value << 8) | u32::from(byte))
}

/// An AMF3 integer is a 29-bit two's complement number.
fn sign_extend_29(value: u32) -> i32 {
    // Move bit 28 to bit 31, reinterpret, then shift back arithmetically.
    ((value << 3) as i32) >> 3
}

fn string(buf: &mut &[u8], strings: &mut Strings, budget: &mut Budget) -> Result<String, AmfError> {
    let header = u29(buf)?;
    if header & 1 == 0 {
        let index = header >> 1;
        let stored = usize::try_from(index)
            .ok()
            .and_then(|i| strings.table.get(i))
            .and_then(Option::as_ref)
            .ok_or(AmfError::Amf3BadReference(index))?;
        budget.expand(NODE_WEIGHT.saturating_add(stored.len()))?;
        return Ok(stored.clone());
    }
    let len = usize::try_from(header >> 1).map_err(|_| AmfError::Truncated)?;
    let text = reader::text(buf, len)?;
    // The empty string is never sent by reference, so it is not in the table.
    if !text.is_empty() && strings.table.len() < MAX_STRINGS {
        let kept = budget
            .try_keep(NODE_WEIGHT.saturating_add(text.len()))
            .then(|| text.clone());
        strings.table.push(kept);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Amf0Value, AmfError> {
        let mut buf = bytes;
        value(&mut buf, &mut Strings::default(), &mut Budget::default())
    }

    #[test]
    fn u29_lengths() {
        let cases: &[(&[u8], u32)] = &[
            (&[0x00], 0),
            (&[0x7f], 0x7f),
            (&[0x81, 0x00], 0x80),
            (&[0xff, 0x7f], 0x3fff),
            (&[0x81, 0x80, 0x00], 0x4000),
            (&[0xff, 0xff, 0x7f], 0x1f_ffff),
            (&[0x80, 0xc0, 0x80, 0x00], 0x20_0000),
            (&[0xff, 0xff, 0xff, 0xff], 0x1fff_ffff),
        ];
        for (bytes, want) in cases {
            let mut buf = *bytes;
            assert_eq!(u29(&mut buf), Ok(*want), "{bytes:02x?}");
            assert!(buf.is_empty());
        }
        let mut short: &[u8] = &[0x80, 0x80];
        assert_eq!(u29(&mut short), Err(AmfError::Truncated));
    }

    #[test]
    fn integers_are_sign_extended() {
        assert_eq!(run(&[0x04, 0x05]), Ok(Amf0Value::Number(5.0)));
        assert_eq!(
            run(&[0x04, 0xff, 0xff, 0xff, 0xff]),
            Ok(Amf0Value::Number(-1.0))
        );
        assert_eq!(
            run(&[0x04, 0xc0, 0x80, 0x80, 0x00]),
            Ok(Amf0Value::Number(-268_435_456.0))
        );
        assert_eq!(
            run(&[0x04, 0xbf, 0xff, 0xff, 0xff]),
            Ok(Amf0Value::Number(268_435_455.0))
        );
    }

    #[test]
    fn simple_types() {
        assert_eq!(run(&[0x00]), Ok(Amf0Value::Undefined));
        assert_eq!(run(&[0x01]), Ok(Amf0Value::Null));
        assert_eq!(run(&[0x02]), Ok(Amf0Value::Boolean(false)));
        assert_eq!(run(&[0x03]), Ok(Amf0Value::Boolean(true)));
        let mut dbl = vec![0x05];
        dbl.extend_from_slice(&1.5f64.to_be_bytes());
        assert_eq!(run(&dbl), Ok(Amf0Value::Number(1.5)));
        assert_eq!(run(&[0x05, 0x00]), Err(AmfError::Truncated));
        assert_eq!(
            run(&[0x06, 0x07, b'a', b'b', b'c']),
            Ok(Amf0Value::string("abc"))
        );
        assert_eq!(run(&[0x06, 0x01]), Ok(Amf0Value::string("")));
        assert_eq!(run(&[0x06, 0x07, b'a']), Err(AmfError::Truncated));
        assert_eq!(run(&[0x06, 0x00]), Err(AmfError::Amf3BadReference(0)));
        for unsupported in 0x07..=0x11u8 {
            assert_eq!(
                run(&[unsupported, 0x01]),
                Err(AmfError::Amf3Unsupported(unsupported))
            );
        }
    }
}
