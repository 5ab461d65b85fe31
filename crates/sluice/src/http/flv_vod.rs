//! FLV VOD seeking (SRS's "flv inject"): `file.flv?start=BYTES` plays the file from the first
//! keyframe at or after that byte offset, preceded by a fresh FLV header, the file's
//! onMetaData and the codec sequence headers, so a player that seeks by byte offset (the
//! offsets come from the keyframes index in onMetaData) gets a stream it can decode.
//!
//! Files need no keyframe index: the tags are scanned from the start, reading only tag
//! headers and the few payloads worth keeping, so memory stays bounded whatever the file.

use std::io::{self, BufReader, ErrorKind, Read, Seek};
use std::path::{Path, PathBuf};

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use media::codec::{parse_audio_header, parse_video_header, VideoPacketKind};
use media::flv::{
    previous_tag_size, tag_header, tag_type, FlvError, FlvHeader, HEADER_LEN, MAX_DATA_OFFSET,
    PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN,
};

/// Largest onMetaData kept for injection: big enough for the keyframe index of a long file.
pub const MAX_METADATA: u32 = 4 * 1024 * 1024;
/// Largest sequence header kept; real ones are a few hundred bytes.
pub const MAX_SEQUENCE_HEADER: u32 = 1024 * 1024;
/// Tags scanned at most before giving up (about 20 h of 30 fps video with audio).
pub const MAX_SCAN_TAGS: u64 = 5_000_000;
/// Bytes of a payload read to classify it (codec, sequence header, keyframe).
const CLASSIFY_BYTES: u32 = 64;
const SCAN_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum VodError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("not an FLV file: {0}")]
    NotFlv(FlvError),
    #[error("unknown tag type {tag_type} at byte {offset}: corrupt file")]
    Desync { offset: u64, tag_type: u8 },
    #[error("start {start} is beyond the end of the file ({len} bytes)")]
    StartBeyondEnd { start: u64, len: u64 },
    #[error("no keyframe within the scan bound (MAX_SCAN_TAGS tags)")]
    TooManyTags,
}

/// The `start` query parameter: Ok(None) when absent or 0 (the plain file is served), Err
/// when it is not a byte offset.
#[allow(clippy::result_unit_err)]
pub fn start_param(query: Option<&str>) -> Result<Option<u64>, ()> {
    let Some(v) = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("start="))
    else {
        return Ok(None);
    };
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(());
    }
    match v.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(()),
    }
}

/// What to send for a seek: `prefix`, then the file from `offset` to its end (nothing more
/// when no tag to cut at was found).
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    pub prefix: Bytes,
    pub offset: Option<u64>,
}

/// One tag kept for the prefix.
#[derive(Debug, Clone)]
struct Kept {
    tag_type: u8,
    timestamp: u32,
    data: Vec<u8>,
}

impl Kept {
    fn write(&self, out: &mut Vec<u8>) {
        let len = self.data.len() as u32;
        out.extend_from_slice(&tag_header(self.tag_type, len, self.timestamp));
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&previous_tag_size(len));
    }
}

/// Finds where to cut the file for `start` and builds the prefix. The cut is the first video
/// keyframe whose tag starts at or after `start` (any audio or video tag for files without
/// video); the metadata is the first script tag and the sequence headers the last ones seen
/// before the cut. Without a tag to cut at, the prefix alone is sent.
pub fn scan<R: Read + Seek>(reader: R, start: u64) -> Result<Injection, VodError> {
    let mut r = BufReader::with_capacity(SCAN_BUFFER, reader);
    let mut head = [0u8; HEADER_LEN];
    r.read_exact(&mut head)
        .map_err(|e| not_flv(e, HEADER_LEN))?;
    let data_offset = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
    if !(HEADER_LEN as u32..=MAX_DATA_OFFSET).contains(&data_offset) {
        return Err(VodError::NotFlv(FlvError::BadDataOffset(data_offset)));
    }
    let mut whole = head.to_vec();
    whole.resize(data_offset as usize + PREVIOUS_TAG_SIZE_LEN, 0);
    r.read_exact(&mut whole[HEADER_LEN..])
        .map_err(|e| not_flv(e, whole.len()))?;
    let (header, consumed) = FlvHeader::parse(&whole).map_err(VodError::NotFlv)?;
    let mut pos = consumed as u64;

    let mut metadata: Option<Kept> = None;
    let mut video_sh: Option<Kept> = None;
    let mut audio_sh: Option<Kept> = None;
    let mut video_seen = header.has_video;
    let mut cut = None;
    let mut scanned = 0u64;
    loop {
        if scanned == MAX_SCAN_TAGS {
            if pos < start {
                return Err(VodError::TooManyTags);
            }
            break;
        }
        scanned += 1;
        let mut th = [0u8; TAG_HEADER_LEN];
        if !read_or_eof(&mut r, &mut th)? {
            break;
        }
        let ty = th[0];
        if !matches!(ty, tag_type::AUDIO | tag_type::VIDEO | tag_type::SCRIPT) {
            return Err(VodError::Desync {
                offset: pos,
                tag_type: ty,
            });
        }
        let size = u32::from_be_bytes([0, th[1], th[2], th[3]]);
        let timestamp = u32::from_be_bytes([th[7], th[4], th[5], th[6]]);
        let peek_len = size.min(CLASSIFY_BYTES);
        let mut peek = vec![0u8; peek_len as usize];
        if !read_or_eof(&mut r, &mut peek)? {
            break;
        }
        let mut keep = None;
        let mut is_cut_point = false;
        match ty {
            tag_type::VIDEO => {
                video_seen = true;
                if let Some(h) = parse_video_header(&peek) {
                    if h.info.sequence_header && size <= MAX_SEQUENCE_HEADER {
                        keep = Some(&mut video_sh);
                    } else if h.kind == VideoPacketKind::Frames && h.info.keyframe {
                        is_cut_point = true;
                    }
                }
            }
            tag_type::AUDIO => {
                if let Some(h) = parse_audio_header(&peek) {
                    if h.info.sequence_header && size <= MAX_SEQUENCE_HEADER {
                        keep = Some(&mut audio_sh);
                    } else if !video_seen {
                        is_cut_point = true;
                    }
                }
            }
            _ => {
                if metadata.is_none() && size <= MAX_METADATA {
                    keep = Some(&mut metadata);
                }
            }
        }
        if is_cut_point && pos >= start {
            cut = Some(pos);
            break;
        }
        let rest = size - peek_len;
        if let Some(slot) = keep {
            let mut data = peek;
            data.resize(size as usize, 0);
            if !read_or_eof(&mut r, &mut data[peek_len as usize..])? {
                break;
            }
            *slot = Some(Kept {
                tag_type: ty,
                timestamp,
                data,
            });
        } else {
            r.seek_relative(i64::from(rest))?;
        }
        r.seek_relative(PREVIOUS_TAG_SIZE_LEN as i64)?;
        pos += (TAG_HEADER_LEN + PREVIOUS_TAG_SIZE_LEN) as u64 + u64::from(size);
    }
    let mut prefix = Vec::new();
    prefix.extend_from_slice(&header.encode());
    for k in [&metadata, &video_sh, &audio_sh].into_iter().flatten() {
        k.write(&mut prefix);
    }
    Ok(Injection {
        prefix: Bytes::from(prefix),
        offset: cut,
    })
}

fn not_flv(e: io::Error, needed: usize) -> VodError {
    if e.kind() == ErrorKind::UnexpectedEof {
        VodError::NotFlv(FlvError::Truncated { needed, have: 0 })
    } else {
        VodError::Io(e)
    }
}

/// Fills `buf`; false when the file ends first (a truncated last tag ends the scan as if the
/// file ended before it, like a recording cut short).
fn read_or_eof<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Scans `path` on the blocking pool and returns the Content-Length and body of the seek
/// response (an empty body for HEAD).
pub async fn respond(
    path: &Path,
    file_len: u64,
    start: u64,
    head: bool,
) -> Result<(u64, Body), VodError> {
    if start >= file_len {
        return Err(VodError::StartBeyondEnd {
            start,
            len: file_len,
        });
    }
    let owned: PathBuf = path.to_path_buf();
    let inj = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&owned)?;
        scan(file, start)
    })
    .await
    .map_err(|e| VodError::Io(io::Error::other(e)))??;
    let offset = inj.offset.unwrap_or(file_len);
    let tail = file_len.saturating_sub(offset);
    let length = inj.prefix.len() as u64 + tail;
    if head {
        return Ok((length, Body::empty()));
    }
    let prefix = futures_util::stream::once(futures_util::future::ready(Ok::<Bytes, io::Error>(
        inj.prefix,
    )));
    if tail == 0 {
        return Ok((length, Body::from_stream(prefix)));
    }
    let rest = super::static_files::file_body(path, offset, tail)
        .await?
        .into_data_stream()
        .map(|r| r.map_err(io::Error::other));
    Ok((length, Body::from_stream(prefix.chain(rest))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::flv::write_tag;
    use std::io::Cursor;

    const AVC_SH: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff];
    const AAC_SH: &[u8] = &[0xaf, 0, 0x12, 0x10];
    const KEY: &[u8] = &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65];
    const INTER: &[u8] = &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41];
    const AAC: &[u8] = &[0xaf, 1, 0x21, 0x00];
    const META: &[u8] = &[
        2, 0, 10, b'o', b'n', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 5,
    ];

    /// A file: metadata, seq headers, then (key, inter, audio) x3 at 1 s steps; returns it and
    /// the offsets of the keyframe tags.
    fn sample() -> (Vec<u8>, Vec<u64>) {
        let mut f = FlvHeader {
            has_audio: true,
            has_video: true,
        }
        .encode()
        .to_vec();
        write_tag(&mut f, tag_type::SCRIPT, 0, META);
        write_tag(&mut f, tag_type::VIDEO, 0, AVC_SH);
        write_tag(&mut f, tag_type::AUDIO, 0, AAC_SH);
        let mut keys = Vec::new();
        for i in 0..3u32 {
            keys.push(f.len() as u64);
            write_tag(&mut f, tag_type::VIDEO, i * 1000, KEY);
            write_tag(&mut f, tag_type::VIDEO, i * 1000 + 40, INTER);
            write_tag(&mut f, tag_type::AUDIO, i * 1000 + 20, AAC);
        }
        (f, keys)
    }

    fn expected_prefix(f: &[u8], first_key: u64) -> Vec<u8> {
        let mut p = f[..13].to_vec();
        p.extend_from_slice(&f[13..first_key as usize]);
        p
    }

    #[test]
    fn cuts_at_keyframe_at_or_after_start() {
        let (f, keys) = sample();
        let prefix = expected_prefix(&f, keys[0]);
        for (start, want) in [
            (1, keys[0]),
            (keys[0], keys[0]),
            (keys[0] + 1, keys[1]),
            (keys[1], keys[1]),
            (keys[2] - 1, keys[2]),
        ] {
            let inj = scan(Cursor::new(&f), start).unwrap();
            assert_eq!(inj.offset, Some(want), "start {start}");
            assert_eq!(&inj.prefix[..], &prefix[..], "start {start}");
        }
        // Past the last keyframe: the prefix alone.
        let inj = scan(Cursor::new(&f), keys[2] + 1).unwrap();
        assert_eq!(inj.offset, None);
    }

    #[test]
    fn output_parses_and_starts_with_keyframe() {
        let (f, keys) = sample();
        let inj = scan(Cursor::new(&f), keys[1]).unwrap();
        let mut out = inj.prefix.to_vec();
        out.extend_from_slice(&f[inj.offset.unwrap() as usize..]);
        let (_, tags) = media::flv::read_flv(Bytes::from(out)).unwrap();
        let types: Vec<u8> = tags.iter().map(|t| t.tag_type).collect();
        assert_eq!(types, [18, 9, 8, 9, 9, 8, 9, 9, 8]);
        assert_eq!(&tags[3].data[..], KEY);
        assert_eq!(tags[3].timestamp, 1000);
    }

    #[test]
    fn latest_sequence_header_wins() {
        let (mut f, _) = sample();
        let sh2: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x4d, 0, 0x1e, 0xff];
        write_tag(&mut f, tag_type::VIDEO, 3000, sh2);
        let key = f.len() as u64;
        write_tag(&mut f, tag_type::VIDEO, 3000, KEY);
        let inj = scan(Cursor::new(&f), key).unwrap();
        assert_eq!(inj.offset, Some(key));
        let (_, tags) = media::flv::read_flv(inj.prefix).unwrap();
        assert_eq!(&tags[1].data[..], sh2);
    }

    #[test]
    fn audio_only_cuts_at_any_audio_frame() {
        let mut f = FlvHeader {
            has_audio: true,
            has_video: false,
        }
        .encode()
        .to_vec();
        write_tag(&mut f, tag_type::AUDIO, 0, AAC_SH);
        write_tag(&mut f, tag_type::AUDIO, 0, AAC);
        let second = f.len() as u64;
        write_tag(&mut f, tag_type::AUDIO, 23, AAC);
        let inj = scan(Cursor::new(&f), second - 3).unwrap();
        assert_eq!(inj.offset, Some(second));
        let (h, tags) = media::flv::read_flv(inj.prefix).unwrap();
        assert!(!h.has_video);
        assert_eq!(tags.len(), 1);
    }

    #[test]
    fn hostile_files_fail_cleanly() {
        assert!(matches!(
            scan(Cursor::new(b"FLV"), 1),
            Err(VodError::NotFlv(_))
        ));
        assert!(matches!(
            scan(Cursor::new(b"XYZ\x01\x05\0\0\0\x09\0\0\0\0"), 1),
            Err(VodError::NotFlv(_))
        ));
        let huge_offset = b"FLV\x01\x05\xff\xff\xff\xff\0\0\0\0";
        assert!(matches!(
            scan(Cursor::new(huge_offset), 1),
            Err(VodError::NotFlv(_))
        ));
        let (f, keys) = sample();
        let mut bad = f.clone();
        bad[keys[1] as usize] = 0x33;
        assert!(matches!(
            scan(Cursor::new(&bad), keys[1]),
            Err(VodError::Desync { offset, tag_type: 0x33 }) if offset == keys[1]
        ));
        // A tag claiming 16 MiB at the end: the file just ends, nothing is allocated for it.
        let mut t = f[..keys[1] as usize].to_vec();
        t.extend_from_slice(&tag_header(tag_type::SCRIPT, 0x00ff_ffff, 0));
        let inj = scan(Cursor::new(&t), keys[1]).unwrap();
        assert_eq!(inj.offset, None);
        // Every truncation of a valid file scans without panicking.
        for n in 0..f.len() {
            let _ = scan(Cursor::new(&f[..n]), 1);
        }
        // Random bytes after a valid header.
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..200 {
            let mut g = f[..13].to_vec();
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                g.push((x >> 24) as u8);
            }
            let _ = scan(Cursor::new(&g), 20);
        }
    }

    #[test]
    fn start_parameter() {
        assert_eq!(start_param(None), Ok(None));
        assert_eq!(start_param(Some("")), Ok(None));
        assert_eq!(start_param(Some("start=0")), Ok(None));
        assert_eq!(start_param(Some("a=1&start=1234")), Ok(Some(1234)));
        assert_eq!(start_param(Some("start=-1")), Err(()));
        assert_eq!(start_param(Some("start=abc")), Err(()));
        assert_eq!(start_param(Some("start=")), Err(()));
        assert_eq!(start_param(Some("start=99999999999999999999999")), Err(()));
    }
}
