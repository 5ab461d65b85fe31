//! FLV/RTMP audio and video tag headers: which codec, which kind of packet, where the codec
//! data starts. Covers the legacy headers and Enhanced RTMP (v1 and v2) ex-headers.

/// Legacy FLV video codec ids.
pub mod video_codec_id {
    pub const AVC: u8 = 7;
    /// Not in Adobe's spec: the id Chinese CDNs (and SRS, ffmpeg forks) use for HEVC.
    pub const HEVC: u8 = 12;
}

/// Legacy FLV sound formats.
pub mod sound_format {
    pub const MP3: u8 = 2;
    pub const AAC: u8 = 10;
    /// Enhanced RTMP: the header is an ExAudioTagHeader carrying a FourCC.
    pub const EX_HEADER: u8 = 9;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Avc,
    Hevc,
    Av1,
    Vp9,
    Other(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    Mp3,
    Opus,
    Other(u8),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoInfo {
    pub codec: VideoCodec,
    pub keyframe: bool,
    pub sequence_header: bool,
    pub composition_time: i32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioInfo {
    pub codec: AudioCodec,
    pub sequence_header: bool,
    /// Legacy 2-bit rate field (0 = 5.5 kHz .. 3 = 44 kHz); 0 for Enhanced RTMP audio.
    pub sound_rate: u8,
    /// Legacy 1-bit size field (0 = 8-bit, 1 = 16-bit); 0 for Enhanced RTMP audio.
    pub sound_size: u8,
    pub stereo: bool,
}

/// What a video packet carries, unified over legacy and enhanced headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacketKind {
    /// Decoder configuration (avcC, hvcC, av1C, vpcC).
    SequenceHeader,
    /// Coded frames.
    Frames,
    /// End of sequence.
    EndOfSequence,
    /// Enhanced RTMP AMF metadata (HDR colour info and the like).
    Metadata,
    /// Video command frame (frame type 5) or any other packet type; no frame data.
    Other(u8),
}

/// Full result of [`parse_video_header`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoHeader {
    pub info: VideoInfo,
    pub kind: VideoPacketKind,
    /// Enhanced RTMP header (FourCC) rather than a legacy codec id.
    pub enhanced: bool,
    /// Offset in the payload where the codec data (config record or frames) starts. `None` for
    /// multitrack packets, whose body holds several tracks.
    pub data_offset: Option<usize>,
}

/// Full result of [`parse_audio_header`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioHeader {
    pub info: AudioInfo,
    pub enhanced: bool,
    /// Offset of the codec data (AudioSpecificConfig, raw frame, ...); `None` for multitrack.
    pub data_offset: Option<usize>,
}

/// Parses the first bytes of an FLV/RTMP video payload. None on garbage.
pub fn parse_video(payload: &[u8]) -> Option<VideoInfo> {
    parse_video_header(payload).map(|h| h.info)
}

/// Parses the first bytes of an FLV/RTMP audio payload. None on garbage.
pub fn parse_audio(payload: &[u8]) -> Option<AudioInfo> {
    parse_audio_header(payload).map(|h| h.info)
}

const EX_PACKET_SEQUENCE_START: u8 = 0;
const EX_PACKET_CODED_FRAMES: u8 = 1;
const EX_PACKET_SEQUENCE_END: u8 = 2;
const EX_PACKET_CODED_FRAMES_X: u8 = 3;
const EX_PACKET_METADATA: u8 = 4;
const EX_PACKET_MULTITRACK: u8 = 6;
const EX_PACKET_MOD_EX: u8 = 7;
const FRAME_TYPE_KEY: u8 = 1;
const FRAME_TYPE_COMMAND: u8 = 5;
/// ModEx prefixes may chain; real streams use one. The cap keeps a hostile chain cheap.
const MAX_MOD_EX: usize = 8;

fn si24(b: &[u8]) -> Option<i32> {
    let b = b.get(..3)?;
    let v = i32::from_be_bytes([0, b[0], b[1], b[2]]);
    Some((v << 8) >> 8)
}

/// Full video header parse: legacy (codec id 7 = AVC, 12 = HEVC) and Enhanced RTMP
/// (ExVideoTagHeader with FourCC 'avc1','hvc1','av01','vp09'). None on garbage or an unknown
/// FourCC (which a legacy codec id cannot stand in for).
pub fn parse_video_header(payload: &[u8]) -> Option<VideoHeader> {
    let first = *payload.first()?;
    if first & 0x80 != 0 {
        return parse_ex_video(payload);
    }
    let frame_type = first >> 4;
    if !(1..=5).contains(&frame_type) {
        return None;
    }
    let codec_id = first & 0x0f;
    let codec = match codec_id {
        video_codec_id::AVC => VideoCodec::Avc,
        video_codec_id::HEVC => VideoCodec::Hevc,
        other => VideoCodec::Other(other),
    };
    let keyframe = frame_type == FRAME_TYPE_KEY;
    if !matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
        return Some(VideoHeader {
            info: VideoInfo {
                codec,
                keyframe,
                sequence_header: false,
                composition_time: 0,
            },
            kind: VideoPacketKind::Frames,
            enhanced: false,
            data_offset: Some(1),
        });
    }
    if frame_type == FRAME_TYPE_COMMAND {
        // A command frame carries one byte (seek start/end), no AVC packet type.
        let cmd = *payload.get(1)?;
        return Some(VideoHeader {
            info: VideoInfo {
                codec,
                keyframe: false,
                sequence_header: false,
                composition_time: 0,
            },
            kind: VideoPacketKind::Other(cmd),
            enhanced: false,
            data_offset: None,
        });
    }
    let packet_type = *payload.get(1)?;
    let composition_time = si24(payload.get(2..5)?)?;
    let kind = match packet_type {
        0 => VideoPacketKind::SequenceHeader,
        1 => VideoPacketKind::Frames,
        2 => VideoPacketKind::EndOfSequence,
        _ => return None,
    };
    Some(VideoHeader {
        info: VideoInfo {
            codec,
            keyframe,
            sequence_header: kind == VideoPacketKind::SequenceHeader,
            composition_time,
        },
        kind,
        enhanced: false,
        data_offset: Some(5),
    })
}

fn video_fourcc(f: &[u8]) -> Option<VideoCodec> {
    match f {
        b"avc1" => Some(VideoCodec::Avc),
        b"hvc1" => Some(VideoCodec::Hevc),
        b"av01" => Some(VideoCodec::Av1),
        b"vp09" => Some(VideoCodec::Vp9),
        _ => None,
    }
}

/// Skips Enhanced RTMP v2 ModEx prefixes and returns the real packet type and the offset
/// after the last one. `pos` points just past the byte that announced ModEx.
fn skip_mod_ex(payload: &[u8], mut pos: usize) -> Option<(u8, usize)> {
    for _ in 0..MAX_MOD_EX {
        let mut size = usize::from(*payload.get(pos)?) + 1;
        pos += 1;
        if size == 256 {
            let b = payload.get(pos..pos + 2)?;
            size = usize::from(u16::from_be_bytes([b[0], b[1]])) + 1;
            pos += 2;
        }
        pos = pos.checked_add(size)?;
        let next = *payload.get(pos)?;
        pos += 1;
        let packet_type = next & 0x0f;
        if packet_type != EX_PACKET_MOD_EX {
            return Some((packet_type, pos));
        }
    }
    None
}

fn parse_ex_video(payload: &[u8]) -> Option<VideoHeader> {
    let first = *payload.first()?;
    let frame_type = (first >> 4) & 0x07;
    if !(1..=5).contains(&frame_type) {
        return None;
    }
    let mut packet_type = first & 0x0f;
    let mut pos = 1;
    if packet_type == EX_PACKET_MOD_EX {
        (packet_type, pos) = skip_mod_ex(payload, pos)?;
    }
    let keyframe = frame_type == FRAME_TYPE_KEY;
    if packet_type == EX_PACKET_MULTITRACK {
        // Multitrack: one byte (multitrack type | inner packet type), then the FourCC shared
        // by all tracks, or for "many codecs" the first track's own FourCC after its id.
        let b = *payload.get(pos)?;
        let multitrack_type = b >> 4;
        let inner = b & 0x0f;
        pos += 1;
        let fourcc = if multitrack_type == 2 {
            payload.get(pos + 1..pos + 5)?
        } else {
            payload.get(pos..pos + 4)?
        };
        let codec = video_fourcc(fourcc)?;
        return Some(VideoHeader {
            info: VideoInfo {
                codec,
                keyframe,
                sequence_header: inner == EX_PACKET_SEQUENCE_START,
                composition_time: 0,
            },
            kind: ex_video_kind(inner),
            enhanced: true,
            data_offset: None,
        });
    }
    let codec = video_fourcc(payload.get(pos..pos + 4)?)?;
    pos += 4;
    if frame_type == FRAME_TYPE_COMMAND && packet_type != EX_PACKET_METADATA {
        let cmd = *payload.get(pos)?;
        return Some(VideoHeader {
            info: VideoInfo {
                codec,
                keyframe: false,
                sequence_header: false,
                composition_time: 0,
            },
            kind: VideoPacketKind::Other(cmd),
            enhanced: true,
            data_offset: None,
        });
    }
    let mut composition_time = 0;
    if packet_type == EX_PACKET_CODED_FRAMES && matches!(codec, VideoCodec::Avc | VideoCodec::Hevc)
    {
        composition_time = si24(payload.get(pos..pos + 3)?)?;
        pos += 3;
    }
    Some(VideoHeader {
        info: VideoInfo {
            codec,
            keyframe,
            sequence_header: packet_type == EX_PACKET_SEQUENCE_START,
            composition_time,
        },
        kind: ex_video_kind(packet_type),
        enhanced: true,
        data_offset: Some(pos),
    })
}

fn ex_video_kind(packet_type: u8) -> VideoPacketKind {
    match packet_type {
        EX_PACKET_SEQUENCE_START => VideoPacketKind::SequenceHeader,
        EX_PACKET_CODED_FRAMES | EX_PACKET_CODED_FRAMES_X => VideoPacketKind::Frames,
        EX_PACKET_SEQUENCE_END => VideoPacketKind::EndOfSequence,
        EX_PACKET_METADATA => VideoPacketKind::Metadata,
        other => VideoPacketKind::Other(other),
    }
}

fn audio_fourcc(f: &[u8]) -> Option<AudioCodec> {
    match f {
        b"mp4a" => Some(AudioCodec::Aac),
        b".mp3" => Some(AudioCodec::Mp3),
        b"Opus" => Some(AudioCodec::Opus),
        // FLAC, AC-3, E-AC-3: known codecs we do not model; keep the ex-header marker.
        b"fLaC" | b"ac-3" | b"ec-3" => Some(AudioCodec::Other(sound_format::EX_HEADER)),
        _ => None,
    }
}

/// Full audio header parse: legacy (10 = AAC with a packet type byte, 2 = MP3, others as
/// `Other`) and Enhanced RTMP ExAudioTagHeader ('mp4a', '.mp3', 'Opus', ...).
pub fn parse_audio_header(payload: &[u8]) -> Option<AudioHeader> {
    let first = *payload.first()?;
    let format = first >> 4;
    if format == sound_format::EX_HEADER {
        return parse_ex_audio(payload);
    }
    let sound_rate = (first >> 2) & 0x03;
    let sound_size = (first >> 1) & 0x01;
    let stereo = first & 0x01 == 1;
    let (codec, sequence_header, offset) = match format {
        sound_format::AAC => {
            let packet_type = *payload.get(1)?;
            if packet_type > 1 {
                return None;
            }
            (AudioCodec::Aac, packet_type == 0, 2)
        }
        sound_format::MP3 => (AudioCodec::Mp3, false, 1),
        other => (AudioCodec::Other(other), false, 1),
    };
    Some(AudioHeader {
        info: AudioInfo {
            codec,
            sequence_header,
            sound_rate,
            sound_size,
            stereo,
        },
        enhanced: false,
        data_offset: Some(offset),
    })
}

fn parse_ex_audio(payload: &[u8]) -> Option<AudioHeader> {
    let first = *payload.first()?;
    let mut packet_type = first & 0x0f;
    let mut pos = 1;
    if packet_type == EX_PACKET_MOD_EX {
        (packet_type, pos) = skip_mod_ex(payload, pos)?;
    }
    // Audio packet types: 0 SequenceStart, 1 CodedFrames, 2 SequenceEnd, 4 MultichannelConfig,
    // 5 Multitrack.
    if packet_type == 5 {
        let b = *payload.get(pos)?;
        let inner = b & 0x0f;
        pos += 1;
        let fourcc = if b >> 4 == 2 {
            payload.get(pos + 1..pos + 5)?
        } else {
            payload.get(pos..pos + 4)?
        };
        return Some(AudioHeader {
            info: ex_audio_info(audio_fourcc(fourcc)?, inner),
            enhanced: true,
            data_offset: None,
        });
    }
    if !matches!(packet_type, 0 | 1 | 2 | 4) {
        return None;
    }
    let codec = audio_fourcc(payload.get(pos..pos + 4)?)?;
    Some(AudioHeader {
        info: ex_audio_info(codec, packet_type),
        enhanced: true,
        data_offset: Some(pos + 4),
    })
}

fn ex_audio_info(codec: AudioCodec, packet_type: u8) -> AudioInfo {
    AudioInfo {
        codec,
        sequence_header: packet_type == EX_PACKET_SEQUENCE_START,
        sound_rate: 0,
        sound_size: 0,
        stereo: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_avc() {
        let h = parse_video_header(&[0x17, 0, 0, 0, 0]).unwrap();
        assert_eq!(h.info.codec, VideoCodec::Avc);
        assert!(h.info.keyframe && h.info.sequence_header);
        assert_eq!(h.data_offset, Some(5));
        let i = parse_video(&[0x27, 1, 0xff, 0xff, 0xfe]).unwrap();
        assert!(!i.keyframe && !i.sequence_header);
        assert_eq!(i.composition_time, -2);
        let i = parse_video(&[0x2c, 1, 0, 0, 0x50]).unwrap();
        assert_eq!(i.codec, VideoCodec::Hevc);
        assert_eq!(i.composition_time, 80);
        assert_eq!(parse_video(&[0x17, 0, 0, 0]), None);
        assert_eq!(parse_video(&[0x17, 9, 0, 0, 0]), None);
        assert_eq!(parse_video(&[0x07, 1, 0, 0, 0]), None);
        assert_eq!(parse_video(&[]), None);
        assert_eq!(parse_video(&[0x22]).unwrap().codec, VideoCodec::Other(2));
        // End of sequence, as ffmpeg writes at the end of a file.
        let h = parse_video_header(&[0x17, 2, 0, 0, 0]).unwrap();
        assert_eq!(h.kind, VideoPacketKind::EndOfSequence);
    }

    #[test]
    fn enhanced_video() {
        // Key frame, SequenceStart, hvc1.
        let h = parse_video_header(b"\x90hvc1\x01\x02").unwrap();
        assert_eq!(h.info.codec, VideoCodec::Hevc);
        assert!(h.info.keyframe && h.info.sequence_header && h.enhanced);
        assert_eq!(h.data_offset, Some(5));
        // Inter frame, CodedFrames, hvc1: SI24 composition time follows.
        let h = parse_video_header(b"\xa1hvc1\x00\x00\x21xx").unwrap();
        assert_eq!(h.info.composition_time, 33);
        assert!(!h.info.keyframe);
        assert_eq!(h.data_offset, Some(8));
        assert_eq!(h.kind, VideoPacketKind::Frames);
        // CodedFramesX: no composition time.
        let h = parse_video_header(b"\x93avc1xx").unwrap();
        assert_eq!(h.data_offset, Some(5));
        assert_eq!(h.info.codec, VideoCodec::Avc);
        // AV1 CodedFrames has no composition time either.
        let h = parse_video_header(b"\x91av01xx").unwrap();
        assert_eq!((h.info.codec, h.data_offset), (VideoCodec::Av1, Some(5)));
        let h = parse_video_header(b"\x90vp09").unwrap();
        assert_eq!(h.info.codec, VideoCodec::Vp9);
        // Metadata.
        let h = parse_video_header(b"\x94hvc1\x02").unwrap();
        assert_eq!(h.kind, VideoPacketKind::Metadata);
        // Unknown FourCC, truncated FourCC.
        assert_eq!(parse_video(b"\x90xxxx"), None);
        assert_eq!(parse_video(b"\x90hvc"), None);
        // ModEx (1 byte of data) wrapping CodedFramesX.
        let h = parse_video_header(b"\x97\x00\xaa\x03hvc1zz").unwrap();
        assert_eq!(h.kind, VideoPacketKind::Frames);
        assert_eq!(h.data_offset, Some(8));
        // Multitrack, one track, SequenceStart.
        let h = parse_video_header(b"\x96\x00av01\x00").unwrap();
        assert!(h.info.sequence_header);
        assert_eq!(h.data_offset, None);
    }

    #[test]
    fn legacy_audio() {
        let a = parse_audio(&[0xaf, 0x00, 0x12, 0x10]).unwrap();
        assert_eq!(a.codec, AudioCodec::Aac);
        assert!(a.sequence_header && a.stereo);
        assert_eq!((a.sound_rate, a.sound_size), (3, 1));
        assert!(!parse_audio(&[0xaf, 0x01]).unwrap().sequence_header);
        assert_eq!(parse_audio(&[0xaf]), None);
        assert_eq!(parse_audio(&[0xaf, 0x02]), None);
        let m = parse_audio(&[0x2e, 0xff]).unwrap();
        assert_eq!(m.codec, AudioCodec::Mp3);
        assert!(!m.stereo);
        assert_eq!(parse_audio(&[]), None);
    }

    #[test]
    fn enhanced_audio() {
        let h = parse_audio_header(b"\x90Opus\x01").unwrap();
        assert_eq!(h.info.codec, AudioCodec::Opus);
        assert!(h.info.sequence_header);
        assert_eq!(h.data_offset, Some(5));
        let h = parse_audio_header(b"\x91mp4a").unwrap();
        assert_eq!(h.info.codec, AudioCodec::Aac);
        assert!(!h.info.sequence_header);
        assert_eq!(parse_audio(b"\x90zzzz"), None);
        assert_eq!(parse_audio(b"\x93Opus"), None);
    }
}
