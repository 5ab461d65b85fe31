//! FLV container: file header, tag headers, an incremental reader and a writer.
//!
//! The same reader serves files on disk, HTTP-FLV bodies and edge pulls, so it works on whatever
//! bytes have arrived so far and never buffers more than one bounded tag.

use bytes::{Buf, Bytes, BytesMut};

pub use crate::error::FlvError;

/// FLV tag types (the low 5 bits of the tag's first byte).
pub mod tag_type {
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const SCRIPT: u8 = 18;
}

/// Size of the FLV file header without PreviousTagSize0.
pub const HEADER_LEN: usize = 9;
/// Size of a tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Size of the PreviousTagSize field after the header and every tag.
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// Largest header data offset accepted: real files use 9; a few tools pad the header, but a
/// huge offset is only ever a way to make us skip or wait forever.
pub const MAX_DATA_OFFSET: u32 = 1024;
/// Largest tag the 24-bit DataSize field can describe.
pub const MAX_TAG_DATA_SIZE: u32 = 0x00ff_ffff;

const FLAG_AUDIO: u8 = 0x04;
const FLAG_VIDEO: u8 = 0x01;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    pub has_audio: bool,
    pub has_video: bool,
}

impl FlvHeader {
    /// 9-byte header + 4-byte PreviousTagSize0.
    pub fn encode(&self) -> [u8; 13] {
        let mut flags = 0;
        if self.has_audio {
            flags |= FLAG_AUDIO;
        }
        if self.has_video {
            flags |= FLAG_VIDEO;
        }
        [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
    }

    /// Returns the header and the bytes it occupies, including PreviousTagSize0 and any padding
    /// announced by the data offset. The version byte is not checked: nothing but version 1
    /// exists, and players ignore it too.
    pub fn parse(buf: &[u8]) -> Result<(FlvHeader, usize), FlvError> {
        let head = buf.get(..HEADER_LEN).ok_or(FlvError::Truncated {
            needed: HEADER_LEN,
            have: buf.len(),
        })?;
        if &head[..3] != b"FLV" {
            return Err(FlvError::BadSignature([head[0], head[1], head[2]]));
        }
        let flags = head[4];
        let data_offset = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
        if !(HEADER_LEN as u32..=MAX_DATA_OFFSET).contains(&data_offset) {
            return Err(FlvError::BadDataOffset(data_offset));
        }
        let consumed = data_offset as usize + PREVIOUS_TAG_SIZE_LEN;
        if buf.len() < consumed {
            return Err(FlvError::Truncated {
                needed: consumed,
                have: buf.len(),
            });
        }
        Ok((
            FlvHeader {
                has_audio: flags & FLAG_AUDIO != 0,
                has_video: flags & FLAG_VIDEO != 0,
            },
            consumed,
        ))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlvTag {
    pub tag_type: u8,
    /// Milliseconds: the 24-bit field extended by the 8-bit TimestampExtended as the high byte.
    pub timestamp: u32,
    pub data: Bytes,
}

/// 11-byte tag header (24-bit timestamp + 8-bit extension, stream id 0).
///
/// `data_len` above 24 bits cannot be represented; it is truncated to 24 bits, so callers must
/// keep payloads under [`MAX_TAG_DATA_SIZE`] (RTMP messages always are).
pub fn tag_header(tag_type: u8, data_len: u32, timestamp: u32) -> [u8; 11] {
    let l = data_len.to_be_bytes();
    let t = timestamp.to_be_bytes();
    [tag_type, l[1], l[2], l[3], t[1], t[2], t[3], t[0], 0, 0, 0]
}

pub fn previous_tag_size(data_len: u32) -> [u8; 4] {
    data_len.saturating_add(TAG_HEADER_LEN as u32).to_be_bytes()
}

/// Appends one tag (header, data, previous tag size) to `out`.
pub fn write_tag(out: &mut Vec<u8>, tag_type: u8, timestamp: u32, data: &[u8]) {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.reserve(TAG_HEADER_LEN + data.len() + PREVIOUS_TAG_SIZE_LEN);
    out.extend_from_slice(&tag_header(tag_type, len, timestamp));
    out.extend_from_slice(data);
    out.extend_from_slice(&previous_tag_size(len));
}

/// Incremental reader for files and HTTP bodies: feed bytes, take tags. Bounded: tags over
/// `max_tag_size` are an error, so a hostile DataSize cannot make us buffer 16 MiB per peer.
#[derive(Debug)]
pub struct FlvReader {
    max_tag_size: u32,
    header: Option<FlvHeader>,
}

impl FlvReader {
    pub fn new(max_tag_size: u32) -> Self {
        FlvReader {
            max_tag_size,
            header: None,
        }
    }

    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// Ok(None) = need more bytes. Consumes from `buf` only when a whole header or tag
    /// (including its PreviousTagSize) is there, so the caller can simply append and retry.
    /// PreviousTagSize is not checked: enough writers get it wrong that refusing it would
    /// break real files, and the tag type and size checks already catch desynchronisation.
    pub fn next_tag(&mut self, buf: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        if self.header.is_none() {
            match FlvHeader::parse(buf) {
                Ok((header, consumed)) => {
                    buf.advance(consumed);
                    self.header = Some(header);
                }
                Err(FlvError::Truncated { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let Some(head) = buf.get(..TAG_HEADER_LEN) else {
            return Ok(None);
        };
        // The filter (encryption) bit and reserved bits are left in place so that an encrypted
        // tag shows up as an unknown type instead of being fed to a decoder as clear data.
        let tag_type = head[0];
        if !matches!(
            tag_type,
            tag_type::AUDIO | tag_type::VIDEO | tag_type::SCRIPT
        ) {
            return Err(FlvError::UnknownTagType(tag_type));
        }
        let size = u32::from_be_bytes([0, head[1], head[2], head[3]]);
        if size > self.max_tag_size {
            return Err(FlvError::TagTooLarge {
                size,
                max: self.max_tag_size,
            });
        }
        let timestamp = u32::from_be_bytes([head[7], head[4], head[5], head[6]]);
        let total = TAG_HEADER_LEN + size as usize + PREVIOUS_TAG_SIZE_LEN;
        // No reserve here: a peer that sends only a header claiming a huge tag must not make
        // us allocate for it; the buffer grows only with bytes that actually arrive.
        if buf.len() < total {
            return Ok(None);
        }
        buf.advance(TAG_HEADER_LEN);
        let data = buf.split_to(size as usize).freeze();
        buf.advance(PREVIOUS_TAG_SIZE_LEN);
        Ok(Some(FlvTag {
            tag_type,
            timestamp,
            data,
        }))
    }
}

/// Whole-file convenience for tools/tests. Strict: trailing bytes that do not form a whole tag
/// are reported as [`FlvError::Truncated`].
pub fn read_flv(data: Bytes) -> Result<(FlvHeader, Vec<FlvTag>), FlvError> {
    let mut reader = FlvReader::new(MAX_TAG_DATA_SIZE);
    let mut buf = BytesMut::from(data);
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag(&mut buf)? {
        tags.push(tag);
    }
    let Some(header) = reader.header() else {
        // Only reachable when the header itself is incomplete.
        return Err(FlvHeader::parse(&buf).err().unwrap_or(FlvError::Truncated {
            needed: HEADER_LEN + PREVIOUS_TAG_SIZE_LEN,
            have: buf.len(),
        }));
    };
    if !buf.is_empty() {
        let needed = match buf.get(1..4) {
            Some(s) => {
                TAG_HEADER_LEN
                    + u32::from_be_bytes([0, s[0], s[1], s[2]]) as usize
                    + PREVIOUS_TAG_SIZE_LEN
            }
            None => TAG_HEADER_LEN,
        };
        return Err(FlvError::Truncated {
            needed,
            have: buf.len(),
        });
    }
    Ok((header, tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        for (a, v) in [(true, true), (true, false), (false, true), (false, false)] {
            let h = FlvHeader {
                has_audio: a,
                has_video: v,
            };
            assert_eq!(FlvHeader::parse(&h.encode()).unwrap(), (h, 13));
        }
    }

    #[test]
    fn header_errors() {
        assert!(matches!(
            FlvHeader::parse(b"FLV\x01\x05"),
            Err(FlvError::Truncated { .. })
        ));
        assert!(matches!(
            FlvHeader::parse(b"FLX\x01\x05\0\0\0\x09\0\0\0\0"),
            Err(FlvError::BadSignature(_))
        ));
        assert!(matches!(
            FlvHeader::parse(b"FLV\x01\x05\0\0\0\x08\0\0\0\0"),
            Err(FlvError::BadDataOffset(8))
        ));
        assert!(matches!(
            FlvHeader::parse(b"FLV\x01\x05\xff\xff\xff\xff\0\0\0\0"),
            Err(FlvError::BadDataOffset(_))
        ));
        // Padded header: offset 12 means three extra bytes before PreviousTagSize0.
        let (_, n) = FlvHeader::parse(b"FLV\x01\x05\0\0\0\x0cabc\0\0\0\0").unwrap();
        assert_eq!(n, 16);
    }

    #[test]
    fn extended_timestamp() {
        let h = tag_header(tag_type::VIDEO, 5, 0x1234_5678);
        assert_eq!(h, [9, 0, 0, 5, 0x34, 0x56, 0x78, 0x12, 0, 0, 0]);
        let mut out = FlvHeader {
            has_audio: false,
            has_video: true,
        }
        .encode()
        .to_vec();
        write_tag(&mut out, tag_type::VIDEO, 0x1234_5678, b"hello");
        let (_, tags) = read_flv(Bytes::from(out)).unwrap();
        assert_eq!(tags[0].timestamp, 0x1234_5678);
    }

    #[test]
    fn reader_limits() {
        let mut out = FlvHeader {
            has_audio: true,
            has_video: false,
        }
        .encode()
        .to_vec();
        write_tag(&mut out, tag_type::AUDIO, 0, &[0u8; 100]);
        let mut r = FlvReader::new(99);
        let mut buf = BytesMut::from(&out[..]);
        assert_eq!(
            r.next_tag(&mut buf),
            Err(FlvError::TagTooLarge { size: 100, max: 99 })
        );
        let mut r = FlvReader::new(100);
        let mut buf = BytesMut::from(&out[..]);
        assert_eq!(r.next_tag(&mut buf).unwrap().unwrap().data.len(), 100);
        assert_eq!(r.next_tag(&mut buf), Ok(None));
    }

    #[test]
    fn unknown_tag_type() {
        let mut out = FlvHeader {
            has_audio: true,
            has_video: true,
        }
        .encode()
        .to_vec();
        write_tag(&mut out, 0x28, 0, b"x");
        let mut r = FlvReader::new(1000);
        let mut buf = BytesMut::from(&out[..]);
        assert_eq!(r.next_tag(&mut buf), Err(FlvError::UnknownTagType(0x28)));
    }

    #[test]
    fn read_flv_truncated() {
        let mut out = FlvHeader {
            has_audio: true,
            has_video: true,
        }
        .encode()
        .to_vec();
        write_tag(&mut out, tag_type::AUDIO, 0, b"abc");
        for cut in 0..out.len() {
            let r = read_flv(Bytes::copy_from_slice(&out[..cut]));
            if cut == 13 {
                // A header with no tags is a valid (empty) file.
                assert_eq!(r.unwrap().1.len(), 0);
            } else {
                assert!(r.is_err(), "{cut}");
            }
        }
        assert!(read_flv(Bytes::from(out)).is_ok());
    }
}
