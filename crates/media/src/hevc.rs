//! H.265 (best effort): the HEVCDecoderConfigurationRecord and the SPS fields a server reports.

use bytes::Bytes;

use crate::bits::{nal_to_rbsp, BitReader};
use crate::error::CodecError;

const WHAT_HVCC: &str = "hvcC";
const WHAT_SPS: &str = "h265 sps";
const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;
/// Same bound as for H.264: far beyond any level, so only garbage hits it.
const MAX_DIMENSION: u64 = 16384;

#[derive(Debug, Clone, PartialEq)]
pub struct HevcConfig {
    pub profile_idc: u8,
    pub tier_high: bool,
    /// general_level_idc: 30 x the level number (93 = level 3.1).
    pub level_idc: u8,
    pub nal_length_size: u8,
    pub width: u32,
    pub height: u32,
    pub vps: Vec<Bytes>,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcSpsInfo {
    pub profile_idc: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
}

/// HEVCDecoderConfigurationRecord (payload after the FLV video header). Width and height come
/// from the first SPS in the record, so a record without a parsable SPS is an error.
pub fn parse_hevc_config(hvcc: &[u8]) -> Result<HevcConfig, CodecError> {
    let fixed = hvcc.get(..23).ok_or(CodecError::truncated(WHAT_HVCC))?;
    let profile_idc = fixed[1] & 0x1f;
    let tier_high = fixed[1] & 0x20 != 0;
    let level_idc = fixed[12];
    let nal_length_size = (fixed[21] & 0x03) + 1;
    if nal_length_size == 3 {
        return Err(CodecError::invalid(WHAT_HVCC, "NALU length size 3"));
    }
    let num_arrays = fixed[22];
    let mut pos = 23usize;
    let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
    let byte = |p: usize| hvcc.get(p).copied().ok_or(CodecError::truncated(WHAT_HVCC));
    for _ in 0..num_arrays {
        let nal_type = byte(pos)? & 0x3f;
        let count = u16::from_be_bytes([byte(pos + 1)?, byte(pos + 2)?]);
        pos += 3;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([byte(pos)?, byte(pos + 1)?]));
            pos += 2;
            let nal = hvcc
                .get(pos..pos + len)
                .ok_or(CodecError::truncated(WHAT_HVCC))?;
            pos += len;
            let nal = Bytes::copy_from_slice(nal);
            match nal_type {
                NAL_VPS => vps.push(nal),
                NAL_SPS => sps.push(nal),
                NAL_PPS => pps.push(nal),
                _ => {}
            }
        }
    }
    let first_sps = sps
        .first()
        .ok_or(CodecError::invalid(WHAT_HVCC, "no SPS"))?;
    let info = parse_hevc_sps(first_sps)?;
    Ok(HevcConfig {
        profile_idc,
        tier_high,
        level_idc,
        nal_length_size,
        width: info.width,
        height: info.height,
        vps,
        sps,
        pps,
    })
}

/// Parses an H.265 SPS NAL unit (with its 2-byte NAL header) up to the conformance window.
pub fn parse_hevc_sps(nal: &[u8]) -> Result<HevcSpsInfo, CodecError> {
    let header = nal.get(..2).ok_or(CodecError::truncated(WHAT_SPS))?;
    if (header[0] >> 1) & 0x3f != NAL_SPS {
        return Err(CodecError::invalid(WHAT_SPS, "not an SPS NAL unit"));
    }
    let rbsp = nal_to_rbsp(nal.get(2..).unwrap_or_default());
    let mut r = BitReader::new(&rbsp, WHAT_SPS);
    let _vps_id = r.read_bits(4)?;
    let max_sub_layers_minus1 = r.read_bits(3)? as usize;
    let _temporal_id_nesting = r.read_bit()?;
    // profile_tier_level(1, max_sub_layers_minus1)
    let _profile_space = r.read_bits(2)?;
    let _tier = r.read_bit()?;
    let profile_idc = r.read_u8(5)?;
    r.skip(32 + 48)?; // compatibility flags, constraint flags
    let level_idc = r.read_u8(8)?;
    let mut sub_profile = [false; 8];
    let mut sub_level = [false; 8];
    for i in 0..max_sub_layers_minus1 {
        sub_profile[i] = r.read_bit()?;
        sub_level[i] = r.read_bit()?;
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1))?;
    }
    for i in 0..max_sub_layers_minus1 {
        if sub_profile[i] {
            r.skip(88)?;
        }
        if sub_level[i] {
            r.skip(8)?;
        }
    }
    let _sps_id = r.read_ue()?;
    let chroma_format_idc = r.read_ue()?;
    if chroma_format_idc > 3 {
        return Err(CodecError::invalid(WHAT_SPS, "chroma_format_idc > 3"));
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.read_bit()?;
    let mut width = u64::from(r.read_ue()?);
    let mut height = u64::from(r.read_ue()?);
    if r.read_bit()? {
        let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let l = u64::from(r.read_ue()?);
        let rt = u64::from(r.read_ue()?);
        let t = u64::from(r.read_ue()?);
        let b = u64::from(r.read_ue()?);
        width = width
            .checked_sub(sub_w * (l + rt))
            .ok_or(CodecError::invalid(WHAT_SPS, "cropping exceeds width"))?;
        height = height
            .checked_sub(sub_h * (t + b))
            .ok_or(CodecError::invalid(WHAT_SPS, "cropping exceeds height"))?;
    }
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(CodecError::invalid(WHAT_SPS, "picture size out of range"));
    }
    Ok(HevcSpsInfo {
        profile_idc,
        level_idc,
        width: width as u32,
        height: height as u32,
    })
}

/// Profile names as SRS prints them.
pub fn hevc_profile_name(profile_idc: u8) -> &'static str {
    match profile_idc {
        1 => "Main",
        2 => "Main10",
        3 => "MainStillPicture",
        4 => "Rext",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hvcC written by ffmpeg + libx265 for a 352x198 yuv420p picture (coded 352x200 with a
    /// 2-line conformance window); ffprobe reports profile Main, level 60.
    const HVCC_352X198: &str = "0101600000009000000000003cf000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003003c959809a10001002b42010101600000030090000003000003003ca00b080c9f596566924caf0168080000030008000003002840a2000100074401c172b46240";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn x265_record() {
        let c = parse_hevc_config(&hex(HVCC_352X198)).unwrap();
        assert_eq!((c.width, c.height), (352, 198));
        assert_eq!((c.profile_idc, c.level_idc), (1, 60));
        assert!(!c.tier_high);
        assert_eq!(c.nal_length_size, 4);
        assert_eq!((c.vps.len(), c.sps.len(), c.pps.len()), (1, 1, 1));
        assert_eq!(hevc_profile_name(c.profile_idc), "Main");
    }

    #[test]
    fn truncated_record() {
        let full = hex(HVCC_352X198);
        for cut in 0..full.len() {
            assert!(parse_hevc_config(&full[..cut]).is_err(), "{cut}");
        }
    }
}
