//! MPEG-1/2/2.5 audio frame headers, enough to report an MP3 stream's rate and channels.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpegVersion {
    Mpeg1,
    Mpeg2,
    Mpeg25,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3FrameHeader {
    pub version: MpegVersion,
    /// 1, 2 or 3.
    pub layer: u8,
    /// 0 for free-format streams.
    pub bitrate_kbps: u16,
    pub sample_rate: u32,
    pub channels: u8,
    pub padding: bool,
    /// Whole frame in bytes, header included; 0 for free format (not derivable).
    pub frame_len: usize,
}

const BITRATES_V1: [[u16; 15]; 3] = [
    [
        0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ],
    [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ],
    [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ],
];
const BITRATES_V2: [[u16; 15]; 2] = [
    [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
];

/// Parses the 4-byte frame header at the start of `buf`. None if it is not a valid header
/// (bad sync, reserved version/layer, bad bitrate or sample-rate index).
pub fn parse_mp3_header(buf: &[u8]) -> Option<Mp3FrameHeader> {
    let h = buf.get(..4)?;
    if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
        return None;
    }
    let version = match (h[1] >> 3) & 0x03 {
        0 => MpegVersion::Mpeg25,
        2 => MpegVersion::Mpeg2,
        3 => MpegVersion::Mpeg1,
        _ => return None,
    };
    let layer = match (h[1] >> 1) & 0x03 {
        1 => 3,
        2 => 2,
        3 => 1,
        _ => return None,
    };
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 0x03);
    let padding = (h[2] >> 1) & 0x01 == 1;
    let channels = if h[3] >> 6 == 3 { 1 } else { 2 };
    let bitrate_kbps = match version {
        MpegVersion::Mpeg1 => *BITRATES_V1
            .get(usize::from(layer) - 1)?
            .get(bitrate_index)?,
        _ => *BITRATES_V2
            .get(if layer == 1 { 0 } else { 1 })?
            .get(bitrate_index)?,
    };
    let base_rate: u32 = *[44100u32, 48000, 32000].get(rate_index)?;
    let sample_rate = match version {
        MpegVersion::Mpeg1 => base_rate,
        MpegVersion::Mpeg2 => base_rate / 2,
        MpegVersion::Mpeg25 => base_rate / 4,
    };
    let br = usize::from(bitrate_kbps) * 1000;
    let sr = sample_rate as usize;
    let pad = usize::from(padding);
    let frame_len = match (layer, version) {
        (1, _) => (12 * br / sr + pad) * 4,
        (3, MpegVersion::Mpeg2 | MpegVersion::Mpeg25) => 72 * br / sr + pad,
        _ => 144 * br / sr + pad,
    };
    Some(Mp3FrameHeader {
        version,
        layer,
        bitrate_kbps,
        sample_rate,
        channels,
        padding,
        frame_len: if bitrate_kbps == 0 { 0 } else { frame_len },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_headers() {
        // MPEG-1 layer 3, 128 kbps, 44.1 kHz, stereo: 417-byte frames.
        let h = parse_mp3_header(&[0xff, 0xfb, 0x90, 0x00]).unwrap();
        assert_eq!(h.version, MpegVersion::Mpeg1);
        assert_eq!(
            (h.layer, h.bitrate_kbps, h.sample_rate, h.channels),
            (3, 128, 44100, 2)
        );
        assert_eq!(h.frame_len, 417);
        // MPEG-2 layer 3, 64 kbps, 22.05 kHz, mono.
        let h = parse_mp3_header(&[0xff, 0xf3, 0x80, 0xc0]).unwrap();
        assert_eq!(h.version, MpegVersion::Mpeg2);
        assert_eq!((h.bitrate_kbps, h.sample_rate, h.channels), (64, 22050, 1));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_mp3_header(&[0xff, 0xfb, 0x90]), None);
        assert_eq!(
            parse_mp3_header(&[0xff, 0xeb, 0x90, 0]),
            None,
            "reserved version"
        );
        assert_eq!(
            parse_mp3_header(&[0xff, 0xf9, 0x90, 0]),
            None,
            "reserved layer"
        );
        assert_eq!(
            parse_mp3_header(&[0xff, 0xfb, 0xf0, 0]),
            None,
            "bad bitrate"
        );
        assert_eq!(parse_mp3_header(&[0xff, 0xfb, 0x9c, 0]), None, "bad rate");
        assert_eq!(parse_mp3_header(&[0x00, 0xfb, 0x90, 0]), None);
    }
}
