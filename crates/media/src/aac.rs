//! AAC: AudioSpecificConfig (ISO 14496-3 1.6.2.1) and ADTS headers (for HLS/TS audio).

use crate::bits::BitReader;
use crate::error::CodecError;

const WHAT_ASC: &str = "aac AudioSpecificConfig";
const WHAT_ADTS: &str = "aac adts";

/// Sampling frequencies by index (ISO 14496-3 table 1.18); 13 and 14 are reserved.
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Object types that signal SBR/PS explicitly and are followed by the core object type.
const AOT_SBR: u8 = 5;
const AOT_PS: u8 = 29;
const AOT_ESCAPE: u8 = 31;
const SFI_EXPLICIT: u8 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// As signalled first: 2 = LC, 5 = HE (SBR), 29 = HEv2 (PS), ...
    pub object_type: u8,
    /// Index of the core sampling rate; 15 when the rate is written out explicitly.
    pub sample_rate_index: u8,
    /// Core (AAC) sampling rate. With explicit HE-AAC signalling this is the rate before SBR,
    /// which is also the one ADTS must carry.
    pub sample_rate: u32,
    pub channels: u8,
}

fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    let t = r.read_u8(5)?;
    if t == AOT_ESCAPE {
        Ok(32 + r.read_u8(6)?)
    } else {
        Ok(t)
    }
}

fn read_sample_rate(r: &mut BitReader<'_>) -> Result<(u8, u32), CodecError> {
    let index = r.read_u8(4)?;
    if index == SFI_EXPLICIT {
        let rate = r.read_bits(24)?;
        if rate == 0 {
            return Err(CodecError::invalid(WHAT_ASC, "sampling rate 0"));
        }
        return Ok((index, rate));
    }
    let rate = SAMPLE_RATES
        .get(usize::from(index))
        .copied()
        .ok_or(CodecError::invalid(
            WHAT_ASC,
            "reserved sampling frequency index",
        ))?;
    Ok((index, rate))
}

/// Parses an AudioSpecificConfig (payload after the 2-byte FLV audio header). Object type 0 is
/// refused (it means "null", as SRS's tests require), as is anything under 2 bytes.
pub fn parse_asc(asc: &[u8]) -> Result<AudioSpecificConfig, CodecError> {
    if asc.len() < 2 {
        return Err(CodecError::truncated(WHAT_ASC));
    }
    let mut r = BitReader::new(asc, WHAT_ASC);
    let object_type = read_object_type(&mut r)?;
    if object_type == 0 {
        return Err(CodecError::invalid(WHAT_ASC, "object type 0"));
    }
    let (sample_rate_index, sample_rate) = read_sample_rate(&mut r)?;
    let channels = r.read_u8(4)?;
    Ok(AudioSpecificConfig {
        object_type,
        sample_rate_index,
        sample_rate,
        channels,
    })
}

/// Builds the 2-byte AudioSpecificConfig for the common case (object type < 31, indexed rate),
/// e.g. when remuxing ADTS input into FLV.
pub fn encode_asc(object_type: u8, sample_rate_index: u8, channels: u8) -> [u8; 2] {
    let v: u16 = (u16::from(object_type & 0x1f) << 11)
        | (u16::from(sample_rate_index & 0x0f) << 7)
        | (u16::from(channels & 0x0f) << 3);
    v.to_be_bytes()
}

/// Largest raw frame an ADTS header can describe (13-bit frame length minus the header).
pub const MAX_ADTS_RAW_LEN: usize = 0x1fff - 7;

/// ADTS header (MPEG-4, no CRC) for one raw AAC frame. ADTS has a 2-bit profile, so object types
/// beyond 4 (HE, HEv2) are written as LC: the SBR/PS layers are found implicitly by decoders.
/// A `raw_frame_len` over [`MAX_ADTS_RAW_LEN`] cannot be expressed and is clamped.
pub fn adts_header(asc: &AudioSpecificConfig, raw_frame_len: usize) -> [u8; 7] {
    let profile: u8 = match asc.object_type {
        1..=4 => asc.object_type - 1,
        _ => 1,
    };
    let sfi = if usize::from(asc.sample_rate_index) < SAMPLE_RATES.len() {
        asc.sample_rate_index
    } else {
        nearest_rate_index(asc.sample_rate)
    };
    let channels = asc.channels & 0x07;
    let frame_len = (raw_frame_len.min(MAX_ADTS_RAW_LEN) + 7) as u16;
    let fullness: u16 = 0x7ff;
    [
        0xff,
        0xf1,
        (profile << 6) | (sfi << 2) | (channels >> 2),
        ((channels & 0x03) << 6) | ((frame_len >> 11) as u8 & 0x03),
        (frame_len >> 3) as u8,
        (((frame_len & 0x07) as u8) << 5) | ((fullness >> 6) as u8 & 0x1f),
        ((fullness & 0x3f) as u8) << 2,
    ]
}

fn nearest_rate_index(rate: u32) -> u8 {
    let mut best = 0u8;
    let mut best_diff = u32::MAX;
    for (i, &r) in SAMPLE_RATES.iter().enumerate() {
        let d = r.abs_diff(rate);
        if d < best_diff {
            best_diff = d;
            best = i as u8;
        }
    }
    best
}

/// A parsed ADTS header, used to check what we write into TS and to read ADTS input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    pub protection_absent: bool,
    /// profile + 1.
    pub object_type: u8,
    pub sample_rate_index: u8,
    pub channels: u8,
    /// Whole frame, header included.
    pub frame_length: usize,
    /// 7, or 9 with CRC.
    pub header_length: usize,
}

impl AdtsHeader {
    pub fn raw_length(&self) -> usize {
        self.frame_length - self.header_length
    }
}

/// Parses one ADTS frame header; the whole frame must be in `buf` so a caller can slice it out.
pub fn parse_adts(buf: &[u8]) -> Result<AdtsHeader, CodecError> {
    let h = buf.get(..7).ok_or(CodecError::truncated(WHAT_ADTS))?;
    if h[0] != 0xff || h[1] & 0xf6 != 0xf0 {
        return Err(CodecError::invalid(WHAT_ADTS, "bad syncword or layer"));
    }
    let protection_absent = h[1] & 0x01 == 1;
    let object_type = (h[2] >> 6) + 1;
    let sample_rate_index = (h[2] >> 2) & 0x0f;
    if usize::from(sample_rate_index) >= SAMPLE_RATES.len() {
        return Err(CodecError::invalid(
            WHAT_ADTS,
            "reserved sampling frequency index",
        ));
    }
    let channels = ((h[2] & 0x01) << 2) | (h[3] >> 6);
    let frame_length =
        (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
    let header_length = if protection_absent { 7 } else { 9 };
    if frame_length < header_length {
        return Err(CodecError::invalid(
            WHAT_ADTS,
            "frame length shorter than header",
        ));
    }
    if frame_length > buf.len() {
        return Err(CodecError::truncated(WHAT_ADTS));
    }
    Ok(AdtsHeader {
        protection_absent,
        object_type,
        sample_rate_index,
        channels,
        frame_length,
        header_length,
    })
}

/// Profile names as SRS prints them.
pub fn aac_profile_name(object_type: u8) -> &'static str {
    match object_type {
        1 => "Main",
        2 => "LC",
        3 => "SSR",
        AOT_SBR => "HE",
        AOT_PS => "HEv2",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_basic() {
        let a = parse_asc(&[0x12, 0x10]).unwrap();
        assert_eq!(
            (
                a.object_type,
                a.sample_rate_index,
                a.sample_rate,
                a.channels
            ),
            (2, 4, 44100, 2)
        );
        assert_eq!(aac_profile_name(a.object_type), "LC");
        assert!(parse_asc(&[0x02, 0x00]).is_err());
        assert!(parse_asc(&[0x12]).is_err());
        assert!(parse_asc(&[0x16, 0x90]).is_err(), "reserved index 13");
    }

    #[test]
    fn asc_escapes() {
        // Explicit rate 0x00ac44 = 44100: 00010 1111 <24 bits> 0010 ...
        // bits: 00010 1111 000000001010110001000100 0010 000
        let a = parse_asc(&[0x17, 0x80, 0x56, 0x22, 0x10]).unwrap();
        assert_eq!(
            (a.sample_rate_index, a.sample_rate, a.channels),
            (15, 44100, 2)
        );
        let h = adts_header(&a, 0);
        assert_eq!(parse_adts(&h).unwrap().sample_rate_index, 4);
        // Escaped object type 31 + 6 bits (value 0 -> 32).
        let a = parse_asc(&[0xf8, 0x08, 0x20]).unwrap();
        assert_eq!(a.object_type, 32);
    }

    #[test]
    fn adts_roundtrip() {
        let asc = parse_asc(&[0x12, 0x10]).unwrap();
        for len in [0, 1, 100, 2047, MAX_ADTS_RAW_LEN] {
            let mut frame = adts_header(&asc, len).to_vec();
            frame.resize(7 + len, 0);
            let h = parse_adts(&frame).unwrap();
            assert_eq!(h.raw_length(), len);
            assert_eq!((h.object_type, h.sample_rate_index, h.channels), (2, 4, 2));
            assert!(h.protection_absent);
        }
        // HE-AAC is written as LC.
        let he = AudioSpecificConfig {
            object_type: 5,
            sample_rate_index: 6,
            sample_rate: 24000,
            channels: 2,
        };
        assert_eq!(parse_adts(&adts_header(&he, 0)).unwrap().object_type, 2);
    }
}
