//! Checked big-endian reads from a byte slice cursor.
//!
//! Every read either takes exactly the bytes it needs and advances the cursor,
//! or returns [`AmfError::Truncated`] and leaves the cursor untouched, so no
//! input length can make a read panic.

use crate::AmfError;

pub(crate) fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], AmfError> {
    let (head, tail) = buf.split_at_checked(n).ok_or(AmfError::Truncated)?;
    *buf = tail;
    Ok(head)
}

fn take_array<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], AmfError> {
    let bytes = take(buf, N)?;
    bytes.try_into().map_err(|_| AmfError::Truncated)
}

pub(crate) fn u8(buf: &mut &[u8]) -> Result<u8, AmfError> {
    Ok(take_array::<1>(buf)?[0])
}

pub(crate) fn u16(buf: &mut &[u8]) -> Result<u16, AmfError> {
    take_array(buf).map(u16::from_be_bytes)
}

pub(crate) fn i16(buf: &mut &[u8]) -> Result<i16, AmfError> {
    take_array(buf).map(i16::from_be_bytes)
}

pub(crate) fn u32(buf: &mut &[u8]) -> Result<u32, AmfError> {
    take_array(buf).map(u32::from_be_bytes)
}

pub(crate) fn f64(buf: &mut &[u8]) -> Result<f64, AmfError> {
    take_array(buf).map(f64::from_be_bytes)
}

/// Reads `len` bytes as text; invalid UTF-8 from the network is replaced, not
/// rejected, because a garbled string in a command must not kill a session.
pub(crate) fn text(buf: &mut &[u8], len: usize) -> Result<String, AmfError> {
    take(buf, len).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// AMF0 "UTF-8": u16 length then bytes (object keys, strings, class names).
pub(crate) fn utf8(buf: &mut &[u8]) -> Result<String, AmfError> {
    let len = u16(buf)?;
    text(buf, usize::from(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_fail_without_advancing() {
        let data = [1u8, 2, 3];
        let mut buf = &data[..];
        assert_eq!(u32(&mut buf), Err(AmfError::Truncated));
        assert_eq!(buf.len(), 3);
        assert_eq!(u16(&mut buf), Ok(0x0102));
        assert_eq!(buf, &[3]);
    }

    #[test]
    fn lossy_text() {
        let data = [0x00, 0x02, 0xff, b'a'];
        let mut buf = &data[..];
        assert_eq!(utf8(&mut buf).as_deref(), Ok("\u{fffd}a"));
    }
}
