//! H.264: the AVCDecoderConfigurationRecord (ISO 14496-15) and the SPS fields a server reports
//! (profile, level, picture size), plus NALU framing helpers.

use bytes::Bytes;

pub use crate::bits::nal_to_rbsp as remove_emulation_prevention;
use crate::bits::{nal_to_rbsp, BitReader};
use crate::error::CodecError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile_idc: u8,
    pub level_idc: u8,
    /// Bytes of the length prefix before each NALU in frames: 1, 2 or 4.
    pub nal_length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

const WHAT_AVCC: &str = "avcC";
const WHAT_SPS: &str = "h264 sps";

/// Byte cursor with checked reads, for length-prefixed records.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Result<u8, CodecError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(CodecError::truncated(self.what))?;
        self.pos += 1;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(CodecError::truncated(self.what))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or(CodecError::truncated(self.what))?;
        self.pos = end;
        Ok(s)
    }
}

/// AVCDecoderConfigurationRecord (payload after the 5-byte FLV video header).
///
/// Follows SRS: every SPS/PPS length and body must be present, at least one PPS is required
/// (encoders that send none cannot be decoded anyway), empty entries are tolerated, and the
/// configuration version is not checked because some encoders write 0.
pub fn parse_avc_config(avcc: &[u8]) -> Result<AvcConfig, CodecError> {
    let mut c = Cursor {
        data: avcc,
        pos: 0,
        what: WHAT_AVCC,
    };
    let _configuration_version = c.u8()?;
    let profile_idc = c.u8()?;
    let _compatibility = c.u8()?;
    let level_idc = c.u8()?;
    let nal_length_size = (c.u8()? & 0x03) + 1;
    if nal_length_size == 3 {
        return Err(CodecError::invalid(WHAT_AVCC, "NALU length size 3"));
    }
    let num_sps = c.u8()? & 0x1f;
    let mut sps = Vec::with_capacity(usize::from(num_sps));
    for _ in 0..num_sps {
        let len = c.u16()?;
        sps.push(Bytes::copy_from_slice(c.take(usize::from(len))?));
    }
    let num_pps = c.u8()?;
    if num_pps == 0 {
        return Err(CodecError::invalid(WHAT_AVCC, "no PPS"));
    }
    let mut pps = Vec::with_capacity(usize::from(num_pps));
    for _ in 0..num_pps {
        let len = c.u16()?;
        pps.push(Bytes::copy_from_slice(c.take(usize::from(len))?));
    }
    Ok(AvcConfig {
        profile_idc,
        level_idc,
        nal_length_size,
        sps,
        pps,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
}

/// Profiles whose SPS carries chroma format, bit depth and scaling lists (H.264 7.3.2.1.1).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Reads past one scaling_list() (H.264 7.3.2.1.1.1): only the bit position matters here.
///
/// H.264 7.4.2.1.1.1 bounds delta_scale to -128..=127; a larger value is refused (as ffmpeg
/// does) instead of being added, because an exp-Golomb value can be up to 2^31 and `last +
/// delta` would overflow (a panic in debug builds, a wrapped size in release: fuzz finding,
/// issue 24 item 6).
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last: i32 = 8;
    let mut next: i32 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = r.read_se()?;
            if !(-128..=127).contains(&delta) {
                return Err(CodecError::invalid(
                    WHAT_SPS,
                    "delta_scale out of -128..127",
                ));
            }
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Largest picture dimension accepted; H.264 level 6.2 tops out at 8192x4320 luma samples, and
/// anything far beyond is garbage.
const MAX_DIMENSION: u64 = 16384;

/// Parses an SPS NAL unit (starting with its NAL header byte) down to the frame cropping, with
/// emulation-prevention removal, exp-Golomb and high-profile chroma/scaling lists.
pub fn parse_sps(sps_nal: &[u8]) -> Result<SpsInfo, CodecError> {
    let header = *sps_nal.first().ok_or(CodecError::truncated(WHAT_SPS))?;
    if header & 0x1f != 7 {
        return Err(CodecError::invalid(WHAT_SPS, "not an SPS NAL unit"));
    }
    let rbsp = nal_to_rbsp(sps_nal.get(1..).unwrap_or_default());
    let mut r = BitReader::new(&rbsp, WHAT_SPS);
    let profile_idc = r.read_u8(8)?;
    let _constraints = r.read_u8(8)?;
    let level_idc = r.read_u8(8)?;
    let _sps_id = r.read_ue()?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.read_ue()?;
        if chroma_format_idc > 3 {
            return Err(CodecError::invalid(WHAT_SPS, "chroma_format_idc > 3"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.read_bit()?;
        }
        let _bit_depth_luma = r.read_ue()?;
        let _bit_depth_chroma = r.read_ue()?;
        let _transform_bypass = r.read_bit()?;
        if r.read_bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.read_bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let _log2_max_frame_num = r.read_ue()?;
    let poc_type = r.read_ue()?;
    match poc_type {
        0 => {
            let _log2_max_poc_lsb = r.read_ue()?;
        }
        1 => {
            let _delta_always_zero = r.read_bit()?;
            let _offset_non_ref = r.read_se()?;
            let _offset_top_bottom = r.read_se()?;
            let cycle = r.read_ue()?;
            if cycle > 255 {
                return Err(CodecError::invalid(WHAT_SPS, "poc cycle > 255"));
            }
            for _ in 0..cycle {
                r.read_se()?;
            }
        }
        2 => {}
        _ => return Err(CodecError::invalid(WHAT_SPS, "pic_order_cnt_type > 2")),
    }
    let _max_ref_frames = r.read_ue()?;
    let _gaps = r.read_bit()?;
    let width_mbs = u64::from(r.read_ue()?) + 1;
    let height_map_units = u64::from(r.read_ue()?) + 1;
    let frame_mbs_only = r.read_bit()?;
    if !frame_mbs_only {
        let _mb_adaptive = r.read_bit()?;
    }
    let _direct_8x8 = r.read_bit()?;
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.read_bit()? {
        crop_l = u64::from(r.read_ue()?);
        crop_r = u64::from(r.read_ue()?);
        crop_t = u64::from(r.read_ue()?);
        crop_b = u64::from(r.read_ue()?);
    }
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let full_w = width_mbs * 16;
    let full_h = height_map_units * 16 * field_factor;
    let width = full_w
        .checked_sub((crop_l + crop_r) * crop_unit_x)
        .ok_or(CodecError::invalid(WHAT_SPS, "cropping exceeds width"))?;
    let height = full_h
        .checked_sub((crop_t + crop_b) * crop_unit_y)
        .ok_or(CodecError::invalid(WHAT_SPS, "cropping exceeds height"))?;
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(CodecError::invalid(WHAT_SPS, "picture size out of range"));
    }
    Ok(SpsInfo {
        profile_idc,
        level_idc,
        width: width as u32,
        height: height as u32,
    })
}

/// Profile names as SRS's API prints them.
pub fn profile_name(profile_idc: u8) -> &'static str {
    match profile_idc {
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High(10)",
        122 => "High(422)",
        144 => "High(444)",
        244 => "High(444+Predictive)",
        _ => "Other",
    }
}

/// Level names as SRS's API prints them ("3", "3.1", ...).
pub fn level_name(level_idc: u8) -> &'static str {
    match level_idc {
        10 => "1",
        11 => "1.1",
        12 => "1.2",
        13 => "1.3",
        20 => "2",
        21 => "2.1",
        22 => "2.2",
        30 => "3",
        31 => "3.1",
        32 => "3.2",
        40 => "4",
        41 => "4.1",
        50 => "5",
        51 => "5.1",
        _ => "Other",
    }
}

/// How NALUs are framed inside an FLV/RTMP video payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NaluFormat {
    /// Length-prefixed (ISO BMFF), as the spec requires.
    LengthPrefixed,
    /// Annex-B start codes: wrong for FLV but sent by some encoders; SRS accepts it.
    AnnexB,
}

/// Guesses the framing from the first bytes: a start code `00 00 01` or `00 00 00 01`.
/// An AVCC length of 1 (`00 00 00 01`) is ambiguous, but a 1-byte NALU is only a NAL header and
/// never useful, so start-code wins, as in SRS.
pub fn detect_nalu_format(data: &[u8]) -> NaluFormat {
    if data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1]) {
        NaluFormat::AnnexB
    } else {
        NaluFormat::LengthPrefixed
    }
}

/// Splits length-prefixed NALUs. Errors if a length runs past the end.
pub fn split_length_prefixed(data: &[u8], nal_length_size: u8) -> Result<Vec<&[u8]>, CodecError> {
    const WHAT: &str = "avc frame";
    let n = usize::from(nal_length_size);
    if !matches!(n, 1 | 2 | 4) {
        return Err(CodecError::invalid(WHAT, "NALU length size"));
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let prefix = data.get(pos..pos + n).ok_or(CodecError::truncated(WHAT))?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        pos += n;
        let end = pos.checked_add(len).ok_or(CodecError::truncated(WHAT))?;
        out.push(data.get(pos..end).ok_or(CodecError::truncated(WHAT))?);
        pos = end;
    }
    Ok(out)
}

/// Splits an Annex-B byte stream on `00 00 01` start codes (the zero of a 4-byte start code is
/// trimmed from the previous NALU). Bytes before the first start code are ignored.
pub fn split_annexb(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &(_, body)) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&(sc, _)| sc);
        while end > body && data.get(end - 1) == Some(&0) && k + 1 < starts.len() {
            end -= 1;
        }
        if let Some(nalu) = data.get(body..end) {
            if !nalu.is_empty() {
                out.push(nalu);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sps_baseline_crop() {
        // Hand-built baseline SPS: 1280x720 (80x45 MBs), no cropping, poc type 2.
        // profile 66, constraints 0xc0, level 31, sps_id 0 -> 1, log2_max_frame_num_minus4 0 -> 1,
        // poc_type 2 -> 011, max_ref 1 -> 010, gaps 0, w-1 = 79 -> 0000001010000,
        // h-1 = 44 -> 00000101101, frame_mbs_only 1, direct8x8 1, crop 0, vui 0, stop 1.
        let bits = "1 1 011 010 0 0000001010000 00000101101 1 1 0 0 1";
        let mut bytes = vec![0x67, 66, 0xc0, 31];
        let bits: Vec<u8> = bits
            .bytes()
            .filter(|b| *b != b' ')
            .map(|b| b - b'0')
            .collect();
        for chunk in bits.chunks(8) {
            let mut v = 0u8;
            for (i, b) in chunk.iter().enumerate() {
                v |= b << (7 - i);
            }
            bytes.push(v);
        }
        let s = parse_sps(&bytes).unwrap();
        assert_eq!(
            (s.width, s.height, s.profile_idc, s.level_idc),
            (1280, 720, 66, 31)
        );
        assert_eq!(profile_name(s.profile_idc), "Baseline");
        assert_eq!(level_name(s.level_idc), "3.1");
    }

    /// Packs a string of '0'/'1' (spaces ignored) after `prefix`, zero-padding the last byte.
    fn pack(prefix: &[u8], bits: &str) -> Vec<u8> {
        let bits: Vec<u8> = bits
            .bytes()
            .filter(|b| *b != b' ')
            .map(|b| b - b'0')
            .collect();
        let mut bytes = prefix.to_vec();
        for chunk in bits.chunks(8) {
            let mut v = 0u8;
            for (i, b) in chunk.iter().enumerate() {
                v |= b << (7 - i);
            }
            bytes.push(v);
        }
        bytes
    }

    /// High-profile 1280x720 SPS with a scaling matrix whose first two lists start with the
    /// given delta_scale codes (se(v) bit strings), the other 15 deltas of each being 0.
    fn high_sps_with_scaling(delta_a: &str, delta_b: &str) -> Vec<u8> {
        let rest_of_list = "1".repeat(15);
        let bits = format!(
            "1 010 1 1 0 1 1 {delta_a} {rest_of_list} 1 {delta_b} {rest_of_list} 000000 \
             1 011 010 0 0000001010000 00000101101 1 1 0 0 1"
        );
        pack(&[0x67, 100, 0, 40], &bits)
    }

    #[test]
    fn sps_scaling_list_delta_bounds() {
        // se(127) = ue(253) and se(-128) = ue(256): the extremes H.264 allows parse.
        let ok = high_sps_with_scaling("0000000 11111110", "00000000 100000001");
        let s = parse_sps(&ok).unwrap();
        assert_eq!((s.width, s.height, s.profile_idc), (1280, 720, 100));
        // se(128) = ue(255) is one past the range: refused, not added.
        let bad = high_sps_with_scaling("00000000 100000000", "1");
        let e = parse_sps(&bad).unwrap_err();
        assert!(e.to_string().contains("delta_scale"), "{e}");
    }

    /// The largest exp-Golomb value a u32 holds (2^32 - 2) in every size and crop field: the
    /// arithmetic is in u64, so these are range errors, never an overflow.
    #[test]
    fn sps_extreme_sizes_and_crops_are_errors() {
        let max = format!("{}1{}", "0".repeat(31), "1".repeat(31));
        let h44 = "00000101101";
        let huge_w = format!("1 1 011 010 0 {max} {h44} 1 1 0 0 1");
        let e = parse_sps(&pack(&[0x67, 66, 0xc0, 31], &huge_w)).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let huge_crop =
            format!("1 1 011 010 0 0000001010000 {h44} 1 1 1 {max} {max} {max} {max} 0 1");
        let e = parse_sps(&pack(&[0x67, 66, 0xc0, 31], &huge_crop)).unwrap_err();
        assert!(e.to_string().contains("cropping exceeds"), "{e}");
    }

    #[test]
    fn sps_rejects_non_sps() {
        assert!(parse_sps(&[0x68, 1, 2, 3]).is_err());
        assert!(parse_sps(&[]).is_err());
        assert!(parse_sps(&[0x67]).is_err());
    }

    #[test]
    fn annexb_split() {
        let d = [
            0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 3, 0,
        ];
        let n = split_annexb(&d);
        assert_eq!(n, vec![&[0x67, 1][..], &[0x68, 2][..], &[0x65, 3, 0][..]]);
        assert!(split_annexb(&[0, 0]).is_empty());
    }

    #[test]
    fn length_prefixed_split() {
        let d = [0, 2, 0x65, 1, 0, 1, 0x41];
        assert_eq!(
            split_length_prefixed(&d, 2).unwrap(),
            vec![&[0x65, 1][..], &[0x41][..]]
        );
        assert!(split_length_prefixed(&d[..6], 2).is_err());
        assert!(split_length_prefixed(&d, 3).is_err());
    }
}
