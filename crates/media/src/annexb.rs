//! H.264 between FLV/RTMP (length-prefixed NALUs, ISO 14496-15, parameter sets in a
//! separate AVCDecoderConfigurationRecord) and WebRTC (Annex B access units, parameter sets
//! in band before each IDR). Sans-IO: bytes in, bytes out.
//!
//! [`ToAnnexB`] serves WHEP players of an RTMP stream: once per stream, each frame becomes
//! one Annex B access unit that every player's RTP packetizer slices. [`FromAnnexB`] serves
//! WHIP publishers: each depacketized access unit becomes FLV video payloads (a sequence
//! header when the SPS/PPS change, then the frame).

use crate::avc::{parse_avc_config, split_annexb, split_length_prefixed};
use crate::error::CodecError;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// NAL unit types this module looks at.
pub mod nal_type {
    pub const IDR: u8 = 5;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
}

fn nal_type_of(nalu: &[u8]) -> u8 {
    nalu.first().map_or(0, |b| b & 0x1f)
}

/// Largest access unit either direction builds (a 4K IDR is a few MB at most): input
/// past this is refused rather than copied.
pub const MAX_ACCESS_UNIT: usize = 16 * 1024 * 1024;
/// Largest SPS or PPS kept (real ones are tens of bytes).
const MAX_PARAM_SET: usize = 1024;

/// Reads one unsigned Exp-Golomb value at bit `pos` of `b`; None past the end or for a
/// value over 32 bits.
fn read_ue(b: &[u8], pos: &mut usize) -> Option<u32> {
    let bit = |i: usize| -> Option<u32> { Some(u32::from((b.get(i / 8)? >> (7 - i % 8)) & 1)) };
    let mut zeros = 0;
    while bit(*pos)? == 0 {
        zeros += 1;
        *pos += 1;
        if zeros > 31 {
            return None;
        }
    }
    *pos += 1;
    let mut v: u32 = 0;
    for _ in 0..zeros {
        v = (v << 1) | bit(*pos)?;
        *pos += 1;
    }
    Some((1u32 << zeros) - 1 + v)
}

/// Whether a (non-IDR) slice NALU is a B slice: `slice_type` (after `first_mb_in_slice`)
/// is 1 or 6. The first bytes of a slice header hold no emulation prevention bytes in
/// practice (they would need two zero bytes), so the NALU is read as it is.
pub fn is_b_slice(nalu: &[u8]) -> bool {
    if nal_type_of(nalu) != 1 {
        return false;
    }
    let body = nalu.get(1..).unwrap_or(&[]);
    let mut pos = 0;
    read_ue(body, &mut pos).is_some() && read_ue(body, &mut pos).is_some_and(|t| t % 5 == 1)
}

/// FLV AVC frames → Annex B access units, with the stream's SPS/PPS before each keyframe.
#[derive(Debug, Clone, Default)]
pub struct ToAnnexB {
    /// Leave B frames out (out = empty): Chromium's WebRTC H.264 decoder cannot take
    /// frames out of presentation order, and fails (then asks for keyframes) on them.
    pub drop_b_frames: bool,
    nal_length_size: u8,
    /// SPS and PPS, in the order they go before a keyframe.
    params: Vec<Vec<u8>>,
}

impl ToAnnexB {
    pub fn new() -> Self {
        ToAnnexB {
            drop_b_frames: false,
            nal_length_size: 4,
            params: Vec::new(),
        }
    }

    /// Whether a sequence header was seen (a player needs one before any frame).
    pub fn has_params(&self) -> bool {
        !self.params.is_empty()
    }

    /// Takes an AVCDecoderConfigurationRecord (the FLV payload after its 5-byte header).
    pub fn sequence_header(&mut self, record: &[u8]) -> Result<(), CodecError> {
        let cfg = parse_avc_config(record)?;
        let mut params = Vec::new();
        for ps in cfg.sps.iter().chain(cfg.pps.iter()) {
            if ps.is_empty() || ps.len() > MAX_PARAM_SET {
                continue;
            }
            params.push(ps.to_vec());
        }
        self.nal_length_size = cfg.nal_length_size;
        self.params = params;
        Ok(())
    }

    /// Converts one frame's NALUs (the FLV payload after its 5-byte header) into `out`
    /// (cleared first), an Annex B access unit: [`ToAnnexB::nal_units`] with start codes.
    pub fn frame(&self, data: &[u8], keyframe: bool, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.clear();
        let mut nalus = Vec::new();
        self.nal_units(data, keyframe, &mut nalus)?;
        for n in nalus {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(n);
        }
        Ok(())
    }

    /// The NAL units one frame (the FLV payload after its 5-byte header) sends, into
    /// `out` (cleared first): a keyframe without its own SPS gets the stream's SPS/PPS
    /// first; access unit delimiters are dropped (the RTP timestamp delimits access units);
    /// none for a B frame when [`ToAnnexB::drop_b_frames`] is set.
    pub fn nal_units<'a>(
        &'a self,
        data: &'a [u8],
        keyframe: bool,
        out: &mut Vec<&'a [u8]>,
    ) -> Result<(), CodecError> {
        out.clear();
        if data.len() > MAX_ACCESS_UNIT {
            return Err(CodecError::Invalid {
                what: "avc frame",
                detail: "larger than the access unit limit",
            });
        }
        let nalus = split_length_prefixed(data, self.nal_length_size)?;
        if self.drop_b_frames && nalus.iter().any(|n| is_b_slice(n)) {
            return Ok(());
        }
        let has_sps = nalus.iter().any(|n| nal_type_of(n) == nal_type::SPS);
        if keyframe && !has_sps {
            out.extend(self.params.iter().map(Vec::as_slice));
        }
        out.extend(
            nalus
                .into_iter()
                .filter(|n| !n.is_empty() && nal_type_of(n) != nal_type::AUD),
        );
        Ok(())
    }
}

/// What [`FromAnnexB::access_unit`] made of one access unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlvVideo {
    /// A new FLV AVC sequence header (5-byte header + record), when the SPS/PPS changed.
    pub sequence_header: Option<Vec<u8>>,
    /// The FLV AVC frame (5-byte header + length-prefixed NALUs), if the unit had slices
    /// and parameter sets are known.
    pub frame: Option<Vec<u8>>,
    pub keyframe: bool,
}

/// Annex B access units (from a WebRTC publisher) → FLV AVC payloads.
#[derive(Debug, Clone, Default)]
pub struct FromAnnexB {
    sps: Vec<u8>,
    pps: Vec<u8>,
}

impl FromAnnexB {
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts one access unit. Frames before the first SPS/PPS are dropped (nobody
    /// could decode them); `keyframe` is set when the unit holds an IDR slice.
    pub fn access_unit(&mut self, data: &[u8]) -> FlvVideo {
        let mut out = FlvVideo::default();
        if data.len() > MAX_ACCESS_UNIT {
            return out;
        }
        let mut sps: Option<&[u8]> = None;
        let mut pps: Option<&[u8]> = None;
        let mut body = Vec::with_capacity(data.len() + 16);
        let mut keyframe = false;
        for n in split_annexb(data) {
            match nal_type_of(n) {
                nal_type::SPS if n.len() >= 4 && n.len() <= MAX_PARAM_SET => sps = Some(n),
                nal_type::PPS if n.len() <= MAX_PARAM_SET => pps = Some(n),
                nal_type::SPS | nal_type::PPS | nal_type::AUD => {}
                t => {
                    if t == nal_type::IDR {
                        keyframe = true;
                    }
                    // split_annexb bounds every NALU by the input, itself bounded.
                    body.extend_from_slice(&(n.len() as u32).to_be_bytes());
                    body.extend_from_slice(n);
                }
            }
        }
        let changed_sps = sps.is_some_and(|s| s != self.sps.as_slice());
        let changed_pps = pps.is_some_and(|p| p != self.pps.as_slice());
        if let Some(s) = sps {
            self.sps = s.to_vec();
        }
        if let Some(p) = pps {
            self.pps = p.to_vec();
        }
        if (changed_sps || changed_pps) && !self.sps.is_empty() && !self.pps.is_empty() {
            out.sequence_header = Some(avc_sequence_header(&self.sps, &self.pps));
        }
        if !body.is_empty() && !self.sps.is_empty() && !self.pps.is_empty() {
            let mut frame = Vec::with_capacity(body.len() + 5);
            frame.push(if keyframe { 0x17 } else { 0x27 });
            frame.extend_from_slice(&[1, 0, 0, 0]);
            frame.extend_from_slice(&body);
            out.frame = Some(frame);
        }
        out.keyframe = keyframe;
        out
    }
}

/// The FLV AVC sequence header for one SPS and one PPS: 5-byte FLV header, then the
/// AVCDecoderConfigurationRecord (4-byte NALU lengths). `sps` has at least 4 bytes.
pub fn avc_sequence_header(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + sps.len() + pps.len());
    v.extend_from_slice(&[0x17, 0, 0, 0, 0]);
    v.push(1);
    v.push(sps.get(1).copied().unwrap_or(66));
    v.push(sps.get(2).copied().unwrap_or(0));
    v.push(sps.get(3).copied().unwrap_or(31));
    v.push(0xff); // 6 bits reserved, NALU length size 4
    v.push(0xe1); // 3 bits reserved, one SPS
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(pps);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    #[test]
    fn round_trip_keyframe_and_delta() {
        let seq = avc_sequence_header(SPS, PPS);
        let mut to = ToAnnexB::new();
        to.sequence_header(&seq[5..]).unwrap();
        assert!(to.has_params());
        // AUD + IDR slice, 4-byte lengths.
        let mut flv = Vec::new();
        for n in [&[0x09u8, 0xf0][..], &[0x65, 0x88, 0x84, 0x00, 0x10][..]] {
            flv.extend_from_slice(&(n.len() as u32).to_be_bytes());
            flv.extend_from_slice(n);
        }
        let mut au = Vec::new();
        to.frame(&flv, true, &mut au).unwrap();
        let mut want = Vec::new();
        for n in [SPS, PPS, &[0x65, 0x88, 0x84, 0x00, 0x10][..]] {
            want.extend_from_slice(&START_CODE);
            want.extend_from_slice(n);
        }
        assert_eq!(au, want, "SPS and PPS first, AUD dropped");

        let mut from = FromAnnexB::new();
        let v = from.access_unit(&au);
        assert_eq!(v.sequence_header.as_deref(), Some(&seq[..]));
        assert!(v.keyframe);
        let frame = v.frame.unwrap();
        assert_eq!(frame[0], 0x17);
        assert_eq!(&frame[5..], &flv[6..], "the slice, length-prefixed, no AUD");

        // A delta frame: no parameter sets added, none emitted.
        let delta = [0, 0, 0, 6, 0x41, 0x9a, 0x02, 0x04, 0x05, 0x06];
        to.frame(&delta, false, &mut au).unwrap();
        assert_eq!(au, [0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x04, 0x05, 0x06]);
        let v = from.access_unit(&au);
        assert_eq!(v.sequence_header, None, "same SPS/PPS: no new header");
        assert!(!v.keyframe);
        assert_eq!(v.frame.unwrap()[0], 0x27);
    }

    #[test]
    fn b_slices_are_told_apart() {
        // first_mb_in_slice 0 ("1"), slice_type 1 ("010") / 0 ("1") / 6 ("00111").
        assert!(is_b_slice(&[0x01, 0b1010_0000]));
        assert!(!is_b_slice(&[0x41, 0b1100_0000]), "P slice");
        assert!(is_b_slice(&[0x01, 0b1001_1100]), "slice_type 6");
        assert!(!is_b_slice(&[0x65, 0b1010_0000]), "IDR NALU");
        assert!(!is_b_slice(&[0x01]), "truncated");
        assert!(!is_b_slice(&[0x01, 0, 0, 0, 0, 0]), "all zeros");
        let mut to = ToAnnexB::new();
        to.drop_b_frames = true;
        let mut out = vec![1];
        to.frame(&[0, 0, 0, 2, 0x01, 0b1010_0000], false, &mut out)
            .unwrap();
        assert!(out.is_empty(), "a B frame is left out");
    }

    #[test]
    fn frames_before_parameter_sets_are_dropped() {
        let mut from = FromAnnexB::new();
        let v = from.access_unit(&[0, 0, 0, 1, 0x41, 0x9a, 0x02]);
        assert_eq!(v, FlvVideo::default());
    }

    #[test]
    fn garbage_is_refused_or_ignored() {
        let to = ToAnnexB::new();
        let mut out = Vec::new();
        assert!(to.frame(&[0, 0, 0, 9, 1], false, &mut out).is_err());
        let mut from = FromAnnexB::new();
        assert_eq!(from.access_unit(&[1, 2, 3]), FlvVideo::default());
        assert_eq!(
            from.access_unit(&[0, 0, 1, 0x67]).sequence_header,
            None,
            "a truncated SPS is not taken"
        );
    }
}
