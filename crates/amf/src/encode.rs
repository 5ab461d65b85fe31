//! AMF0 encoder. Encoding cannot fail: anything that does not fit a length
//! field is cut (never written with a wrong length), so callers never have to
//! handle an error for values they built themselves.

use crate::marker;
use crate::Amf0Value;

/// Longest text an AMF0 `String` (u16 length) can carry.
const SHORT_STRING_MAX: usize = u16::MAX as usize;
/// Longest text a `LongString` (u32 length) can carry.
const LONG_STRING_MAX: usize = u32::MAX as usize;

impl Amf0Value {
    /// Appends this value's AMF0 encoding to `out`. A `String` longer than
    /// 65535 bytes is written as a long string, since a u16 length cannot
    /// hold it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Amf0Value::Number(n) => {
                out.push(marker::NUMBER);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Amf0Value::Boolean(b) => {
                out.push(marker::BOOLEAN);
                out.push(u8::from(*b));
            }
            Amf0Value::String(s) if s.len() <= SHORT_STRING_MAX => {
                out.push(marker::STRING);
                put_utf8(out, s);
            }
            Amf0Value::String(s) | Amf0Value::LongString(s) => {
                out.push(marker::LONG_STRING);
                let s = truncate_utf8(s, LONG_STRING_MAX);
                out.extend_from_slice(&len_u32(s.len()).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Amf0Value::Object(props) => {
                out.push(marker::OBJECT);
                put_properties(out, props);
            }
            Amf0Value::Null => out.push(marker::NULL),
            Amf0Value::Undefined => out.push(marker::UNDEFINED),
            Amf0Value::EcmaArray(props) => {
                out.push(marker::ECMA_ARRAY);
                out.extend_from_slice(&len_u32(props.len()).to_be_bytes());
                put_properties(out, props);
            }
            Amf0Value::StrictArray(items) => {
                out.push(marker::STRICT_ARRAY);
                // Count and elements must agree, so write no more than fits.
                let count = len_u32(items.len());
                out.extend_from_slice(&count.to_be_bytes());
                for item in items.iter().take(count as usize) {
                    item.encode(out);
                }
            }
            Amf0Value::Date { millis, tz } => {
                out.push(marker::DATE);
                out.extend_from_slice(&millis.to_be_bytes());
                out.extend_from_slice(&tz.to_be_bytes());
            }
        }
    }

    /// The AMF0 encoding of this value in a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends the encodings of `values` back to back, as in a command or data
/// message body.
pub fn encode_all(values: &[Amf0Value], out: &mut Vec<u8>) {
    for value in values {
        value.encode(out);
    }
}

fn put_properties(out: &mut Vec<u8>, props: &[(String, Amf0Value)]) {
    for (key, value) in props {
        put_utf8(out, key);
        value.encode(out);
    }
    out.extend_from_slice(&[0x00, 0x00, marker::OBJECT_END]);
}

/// u16-length text; keys longer than that are cut at a char boundary.
fn put_utf8(out: &mut Vec<u8>, s: &str) {
    let s = truncate_utf8(s, SHORT_STRING_MAX);
    out.extend_from_slice(&len_u16(s.len()).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn len_u16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_cut_on_a_char_boundary() {
        let key = "é".repeat(40_000); // 80000 bytes, 2 bytes per char
        let v = Amf0Value::object([(key, Amf0Value::Null)]);
        let bytes = v.to_bytes();
        // 65535 is odd: the cut must back off to 65534.
        assert_eq!(bytes.get(1..3), Some(&[0xff, 0xfe][..]));
        assert_eq!(bytes.len(), 1 + 2 + 65534 + 1 + 3);
    }

    #[test]
    fn string_switches_to_long_string() {
        let short = Amf0Value::string("a".repeat(65535)).to_bytes();
        assert_eq!(short.first(), Some(&marker::STRING));
        assert_eq!(short.len(), 3 + 65535);
        let long = Amf0Value::string("a".repeat(65536)).to_bytes();
        assert_eq!(long.get(..5), Some(&[0x0c, 0x00, 0x01, 0x00, 0x00][..]));
        assert_eq!(long.len(), 5 + 65536);
    }
}
