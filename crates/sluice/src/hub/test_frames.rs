//! FLV frames for unit tests of stream readers (DVR writers, feeds): a real H.264
//! sequence header (one SPS and PPS), tiny key and inter frames, AAC header and frames.

use super::{Frame, FrameKind};

pub const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10,
];
pub const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

pub fn frame(kind: FrameKind, ts: u64, payload: Vec<u8>, key: bool, sh: bool) -> Frame {
    Frame {
        kind,
        timestamp: ts,
        payload: payload.into(),
        keyframe: key,
        sequence_header: sh,
    }
}

/// AVC sequence header (AVCDecoderConfigurationRecord of [`SPS`] and [`PPS`]).
pub fn video_sh() -> Frame {
    let mut p = vec![0x17, 0, 0, 0, 0, 1, SPS[1], SPS[2], SPS[3], 0xff, 0xe1];
    p.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    p.extend_from_slice(SPS);
    p.push(1);
    p.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
    p.extend_from_slice(PPS);
    frame(FrameKind::Video, 0, p, true, true)
}

/// One AVC frame (an IDR slice when `key`), length-prefixed as in FLV.
pub fn video(ts: u64, key: bool) -> Frame {
    let nal: &[u8] = if key {
        &[0x65, 0x88, 0x84]
    } else {
        &[0x41, 0x9a, 0x02]
    };
    let mut p = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    p.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    p.extend_from_slice(nal);
    frame(FrameKind::Video, ts, p, key, false)
}

/// AAC-LC: the sequence header (44.1 kHz stereo) when `sh`, else a two-byte frame.
pub fn aac(ts: u64, sh: bool) -> Frame {
    let p = if sh {
        vec![0xaf, 0, 0x12, 0x10]
    } else {
        vec![0xaf, 1, 0x21, 0x22]
    };
    frame(FrameKind::Audio, ts, p, false, sh)
}
