//! Audio-only live remux, as SRS's `http_remux` serves it: FLV audio payloads in, the bytes
//! of an ADTS (`.aac`) or raw MP3 (`.mp3`) stream out. Sans-IO: a payload in, a
//! description of what to write out (a small header to copy, and the range of the payload
//! that follows it, so the caller can borrow the payload instead of copying it).
//!
//! SRS's encoders (`SrsAacTransmuxer`, `SrsMp3Transmuxer`) fail on the first audio frame of
//! another codec and the player's connection closes; [`AudioOut::Mismatch`] is that moment.

use std::ops::Range;

use crate::aac::{adts_header, parse_asc, AudioSpecificConfig, MAX_ADTS_RAW_LEN};
use crate::codec::{parse_audio_header, AudioCodec, AudioHeader};

/// Enhanced RTMP audio packet types that carry no frame (sequence end, multichannel
/// config, ModEx chains): not framed. Legacy headers always carry one.
fn carries_frames(h: &AudioHeader, payload: &[u8]) -> bool {
    !h.enhanced || payload.first().is_some_and(|b| matches!(b & 0x0f, 0 | 1))
}

/// What one FLV audio payload becomes on an audio-only stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioOut {
    /// Nothing to write (a sequence header, an empty or multitrack packet, garbage).
    Skip,
    /// `header` (may be empty), then `payload[data]`.
    Frame { header: Header, data: Range<usize> },
    /// The stream's audio is not the codec this output carries: the body should end.
    Mismatch(AudioCodec),
}

/// Up to 7 header bytes (an ADTS header) kept inline, so nothing is allocated per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    bytes: [u8; 7],
    len: u8,
}

impl Header {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The ID3v2.3 tag SRS writes before a live MP3 stream (`SrsMp3Transmuxer::write_header`):
/// an empty tag of 10 bytes after its 10-byte header. Players skip it.
pub const ID3_HEADER: [u8; 20] = [
    b'I', b'D', b'3', 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// FLV AAC → ADTS: remembers the AudioSpecificConfig of the last sequence header and puts
/// an ADTS header before each raw frame.
#[derive(Debug, Clone, Default)]
pub struct AdtsRemux {
    asc: Option<AudioSpecificConfig>,
}

impl AdtsRemux {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a sequence header has been seen (frames before it cannot be framed).
    pub fn configured(&self) -> bool {
        self.asc.is_some()
    }

    pub fn push(&mut self, payload: &[u8]) -> AudioOut {
        let Some(h) = parse_audio_header(payload) else {
            return AudioOut::Skip;
        };
        if h.info.codec != AudioCodec::Aac {
            return AudioOut::Mismatch(h.info.codec);
        }
        let Some(off) = h.data_offset.filter(|_| carries_frames(&h, payload)) else {
            return AudioOut::Skip;
        };
        let data = payload.get(off..).unwrap_or(&[]);
        if h.info.sequence_header {
            // A bad config leaves the previous one: frames keep their old framing rather
            // than going out without a header.
            if let Ok(asc) = parse_asc(data) {
                self.asc = Some(asc);
            }
            return AudioOut::Skip;
        }
        let Some(asc) = &self.asc else {
            return AudioOut::Skip;
        };
        // An ADTS frame cannot describe more; such a "frame" is not AAC anyway.
        if data.is_empty() || data.len() > MAX_ADTS_RAW_LEN {
            return AudioOut::Skip;
        }
        AudioOut::Frame {
            header: Header {
                bytes: adts_header(asc, data.len()),
                len: 7,
            },
            data: off..payload.len(),
        }
    }
}

/// FLV MP3 → raw MP3 frames: the payload after its FLV audio header, as it is.
pub fn mp3_frame(payload: &[u8]) -> AudioOut {
    let Some(h) = parse_audio_header(payload) else {
        return AudioOut::Skip;
    };
    if h.info.codec != AudioCodec::Mp3 {
        return AudioOut::Mismatch(h.info.codec);
    }
    match h.data_offset.filter(|_| carries_frames(&h, payload)) {
        Some(off) if off < payload.len() && !h.info.sequence_header => AudioOut::Frame {
            header: Header::default(),
            data: off..payload.len(),
        },
        _ => AudioOut::Skip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aac::parse_adts;

    /// AAC-LC, 44.1 kHz, stereo: FLV sequence header and a raw frame.
    const SH: [u8; 4] = [0xaf, 0x00, 0x12, 0x10];

    fn raw(len: usize) -> Vec<u8> {
        let mut p = vec![0xaf, 0x01];
        p.extend((0..len).map(|i| i as u8));
        p
    }

    fn write(out: &AudioOut, payload: &[u8], wire: &mut Vec<u8>) {
        if let AudioOut::Frame { header, data } = out {
            wire.extend_from_slice(header.as_slice());
            wire.extend_from_slice(&payload[data.clone()]);
        }
    }

    #[test]
    fn aac_frames_get_adts_headers_after_the_sequence_header() {
        let mut r = AdtsRemux::new();
        // Before the config: nothing can be framed.
        assert_eq!(r.push(&raw(10)), AudioOut::Skip);
        assert_eq!(r.push(&SH), AudioOut::Skip);
        assert!(r.configured());
        let mut wire = Vec::new();
        let frames = [raw(10), raw(300), raw(1)];
        for f in &frames {
            let out = r.push(f);
            assert!(matches!(out, AudioOut::Frame { .. }), "{out:?}");
            write(&out, f, &mut wire);
        }
        // The wire is a valid ADTS stream: each header says its frame's length and the
        // config of the sequence header.
        let mut pos = 0;
        for f in &frames {
            let h = parse_adts(&wire[pos..]).expect("adts");
            assert_eq!(h.raw_length(), f.len() - 2);
            assert_eq!(h.sample_rate_index, 4);
            assert_eq!(h.channels, 2);
            assert_eq!(h.object_type, 2, "LC");
            assert_eq!(&wire[pos + 7..pos + 7 + f.len() - 2], &f[2..]);
            pos += 7 + f.len() - 2;
        }
        assert_eq!(pos, wire.len());
    }

    #[test]
    fn a_new_sequence_header_changes_the_framing() {
        let mut r = AdtsRemux::new();
        r.push(&SH);
        // AAC-LC 48 kHz mono.
        r.push(&[0xaf, 0x00, 0x11, 0x88]);
        let f = raw(5);
        let mut wire = Vec::new();
        write(&r.push(&f), &f, &mut wire);
        let h = parse_adts(&wire).expect("adts");
        assert_eq!((h.sample_rate_index, h.channels), (3, 1));
        // A broken one keeps the last good config.
        r.push(&[0xaf, 0x00, 0x00]);
        let mut wire = Vec::new();
        write(&r.push(&f), &f, &mut wire);
        assert_eq!(parse_adts(&wire).expect("adts").sample_rate_index, 3);
    }

    #[test]
    fn other_codecs_are_mismatches_and_garbage_is_skipped() {
        let mut r = AdtsRemux::new();
        r.push(&SH);
        assert_eq!(
            r.push(&[0x2f, 0xff, 0xfb, 0x90, 0x00]),
            AudioOut::Mismatch(AudioCodec::Mp3)
        );
        assert_eq!(r.push(&[]), AudioOut::Skip);
        assert_eq!(r.push(&[0xaf]), AudioOut::Skip);
        assert_eq!(r.push(&[0xaf, 0x01]), AudioOut::Skip, "no raw data");
        assert_eq!(
            mp3_frame(&SH),
            AudioOut::Mismatch(AudioCodec::Aac),
            "an AAC stream on an .mp3 mount"
        );
    }

    #[test]
    fn mp3_frames_are_passed_as_they_are() {
        let p = [0x2f, 0xff, 0xfb, 0x90, 0x64, 1, 2, 3];
        let mut wire = Vec::new();
        let out = mp3_frame(&p);
        write(&out, &p, &mut wire);
        assert_eq!(wire, &p[1..]);
        assert_eq!(mp3_frame(&[0x2f]), AudioOut::Skip);
        // Enhanced RTMP '.mp3' coded frames: the data after the FourCC.
        let mut ex = vec![0x91];
        ex.extend_from_slice(b".mp3");
        ex.extend_from_slice(&[0xff, 0xfb, 0x90, 0x64]);
        let mut wire = Vec::new();
        write(&mp3_frame(&ex), &ex, &mut wire);
        assert_eq!(wire, [0xff, 0xfb, 0x90, 0x64]);
        assert_eq!(&ID3_HEADER[..3], b"ID3");
    }

    /// Hostile payloads never panic.
    #[test]
    fn any_bytes_are_safe() {
        let mut r = AdtsRemux::new();
        let mut x: u32 = 1;
        for len in 0..200usize {
            let p: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let mut with_aac = p.clone();
            if let Some(b) = with_aac.first_mut() {
                *b = 0xaf;
            }
            for q in [&p, &with_aac] {
                for out in [r.push(q), mp3_frame(q)] {
                    if let AudioOut::Frame { data, .. } = out {
                        assert!(data.end <= q.len() && data.start <= data.end);
                    }
                }
            }
        }
    }
}
