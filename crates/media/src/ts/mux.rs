//! The TS muxer: FLV/RTMP audio and video payloads in, 188-byte packets out.

use bytes::Bytes;

use super::packet::{encode_timestamp, write_pes_packets, write_section_packet, TS_MASK};
use super::psi::{build_pat, build_pmt, stream_type};
use super::{pid, TsError};
use crate::aac::{adts_header, parse_asc, AudioSpecificConfig, MAX_ADTS_RAW_LEN};
use crate::avc::NaluFormat;
use crate::avc::{detect_nalu_format, parse_avc_config, split_annexb, split_length_prefixed};
use crate::codec::{
    parse_audio_header, parse_video_header, AudioCodec, VideoCodec, VideoPacketKind,
};
use crate::hevc::parse_hevc_config;
use crate::mp3::{parse_mp3_header, MpegVersion};

const STREAM_ID_VIDEO: u8 = 0xe0;
const STREAM_ID_AUDIO: u8 = 0xc0;
const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// H.264 access unit delimiter, primary_pic_type 7 (any slice type).
const AUD_H264: [u8; 2] = [0x09, 0xf0];
/// H.265 access unit delimiter (NAL type 35), pic_type 2 (any slice type).
const AUD_HEVC: [u8; 3] = [0x46, 0x01, 0x50];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsVideo {
    H264,
    H265,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsAudio {
    Aac,
    /// MPEG audio layer 3 carried as is. `mpeg2` selects stream type 0x04 (MPEG-2/2.5 low
    /// sampling rates, under 32 kHz) instead of 0x03, as ffmpeg does.
    Mp3 {
        mpeg2: bool,
    },
}

impl TsVideo {
    /// The TS video stream for an FLV video payload (any of a stream's tags), if TS can carry it.
    pub fn from_flv(payload: &[u8]) -> Option<Self> {
        match parse_video_header(payload)?.info.codec {
            VideoCodec::Avc => Some(TsVideo::H264),
            VideoCodec::Hevc => Some(TsVideo::H265),
            _ => None,
        }
    }

    fn stream_type(self) -> u8 {
        match self {
            TsVideo::H264 => stream_type::H264,
            TsVideo::H265 => stream_type::HEVC,
        }
    }
}

impl TsAudio {
    /// The TS audio stream for an FLV audio payload. For MP3 the frame header decides the
    /// MPEG version; without one the legacy FLV rate field does (11/22 kHz mean MPEG-2).
    pub fn from_flv(payload: &[u8]) -> Option<Self> {
        let h = parse_audio_header(payload)?;
        match h.info.codec {
            AudioCodec::Aac => Some(TsAudio::Aac),
            AudioCodec::Mp3 => {
                let frame = h.data_offset.and_then(|o| payload.get(o..));
                let mpeg2 = match frame.and_then(parse_mp3_header) {
                    Some(m) => m.version != MpegVersion::Mpeg1,
                    None => !h.enhanced && h.info.sound_rate < 3,
                };
                Some(TsAudio::Mp3 { mpeg2 })
            }
            _ => None,
        }
    }

    fn stream_type(self) -> u8 {
        match self {
            TsAudio::Aac => stream_type::AAC_ADTS,
            TsAudio::Mp3 { mpeg2: false } => stream_type::MPEG1_AUDIO,
            TsAudio::Mp3 { mpeg2: true } => stream_type::MPEG2_AUDIO,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TsStreams {
    pub video: Option<TsVideo>,
    pub audio: Option<TsAudio>,
}

/// Layout knobs. The defaults are SRS's; ffmpeg's differ only in the PMT PID (0x1000) and a
/// PCR that runs 700 ms behind the DTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsConfig {
    pub pmt_pid: u16,
    pub program_number: u16,
    /// How far the PCR trails the DTS, giving decoders that much buffering headroom.
    pub pcr_lag_ms: u64,
}

impl Default for TsConfig {
    fn default() -> Self {
        TsConfig {
            pmt_pid: pid::PMT,
            program_number: 1,
            pcr_lag_ms: 0,
        }
    }
}

/// What a video sequence header gives us: how NALUs are framed, and the parameter sets to
/// repeat before every IDR so each HLS segment decodes on its own.
#[derive(Debug, Clone, Default)]
struct VideoParams {
    nal_length_size: u8,
    param_sets: Vec<Bytes>,
}

/// Continuity counters per PID; they carry on across segments as RFC 8216 §3 requires.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    pat: u8,
    pmt: u8,
    video: u8,
    audio: u8,
}

/// The TS muxer. One per HLS stream, kept across segments.
#[derive(Debug, Clone)]
pub struct TsMuxer {
    streams: TsStreams,
    config: TsConfig,
    cc: Counters,
    video: Option<VideoParams>,
    audio: Option<AudioSpecificConfig>,
}

fn to_90k(ms: u64) -> u64 {
    ms.wrapping_mul(90) & TS_MASK
}

/// PES header with PTS, plus DTS when it differs. `es_len` sets PES_packet_length when it fits
/// 16 bits; video uses 0 (unbounded), as a frame often does not fit.
fn pes_header(stream_id: u8, pts: u64, dts: u64, es_len: Option<usize>) -> Vec<u8> {
    let with_dts = pts != dts;
    let hdl: u8 = if with_dts { 10 } else { 5 };
    let len = es_len
        .and_then(|n| n.checked_add(3 + usize::from(hdl)))
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(0);
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(&[0, 0, 1, stream_id]);
    h.extend_from_slice(&len.to_be_bytes());
    h.push(0x80);
    h.push(if with_dts { 0xc0 } else { 0x80 });
    h.push(hdl);
    if with_dts {
        h.extend_from_slice(&encode_timestamp(0x3, pts));
        h.extend_from_slice(&encode_timestamp(0x1, dts));
    } else {
        h.extend_from_slice(&encode_timestamp(0x2, pts));
    }
    h
}

/// Splits a frame into NALUs. FLV mandates length prefixes, but some encoders send Annex B
/// (SRS accepts it). A start-code prefix alone cannot decide: a 4-byte length of 256..511
/// reads `00 00 01 xx`. So a clean length-prefixed parse wins, and Annex B is the fallback.
fn split_nalus(data: &[u8], nal_length_size: u8) -> Result<Vec<&[u8]>, TsError> {
    match split_length_prefixed(data, nal_length_size) {
        Ok(nals)
            if nals
                .iter()
                .all(|n| n.first().is_some_and(|b| b & 0x80 == 0)) =>
        {
            Ok(nals)
        }
        Ok(_) | Err(_) if detect_nalu_format(data) == NaluFormat::AnnexB => Ok(split_annexb(data)),
        Ok(nals) => Ok(nals),
        Err(e) => Err(e.into()),
    }
}

fn nal_type(codec: TsVideo, nal: &[u8]) -> Option<u8> {
    let b = *nal.first()?;
    Some(match codec {
        TsVideo::H264 => b & 0x1f,
        TsVideo::H265 => (b >> 1) & 0x3f,
    })
}

fn is_aud(codec: TsVideo, t: u8) -> bool {
    match codec {
        TsVideo::H264 => t == 9,
        TsVideo::H265 => t == 35,
    }
}

fn is_param_set(codec: TsVideo, t: u8) -> bool {
    match codec {
        TsVideo::H264 => t == 7 || t == 8,
        TsVideo::H265 => (32..=34).contains(&t),
    }
}

fn is_irap(codec: TsVideo, t: u8) -> bool {
    match codec {
        TsVideo::H264 => t == 5,
        TsVideo::H265 => (16..=23).contains(&t),
    }
}

impl TsMuxer {
    /// A muxer with SRS's layout (PMT 0x1001, video 0x100, audio 0x101, program 1). The
    /// declared streams fix the PMT, so decide them from the first tags of the stream.
    pub fn new(streams: TsStreams) -> Self {
        Self::with_config(streams, TsConfig::default())
    }

    /// Same with another layout, e.g. ffmpeg's (tests compare against its bytes).
    pub fn with_config(streams: TsStreams, config: TsConfig) -> Self {
        TsMuxer {
            streams,
            config,
            cc: Counters::default(),
            video: None,
            audio: None,
        }
    }

    pub fn streams(&self) -> TsStreams {
        self.streams
    }

    /// The PID whose packets carry the PCR: video when there is video, else audio.
    fn pcr_pid(&self) -> u16 {
        if self.streams.video.is_some() || self.streams.audio.is_none() {
            pid::VIDEO
        } else {
            pid::AUDIO
        }
    }

    fn pcr(&self, dts_90k: u64) -> u64 {
        dts_90k.wrapping_sub(to_90k(self.config.pcr_lag_ms)) & TS_MASK
    }

    /// PAT + PMT, to be written at the start of each segment so each segment is decodable on
    /// its own; the continuity counters carry on from the previous segment.
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        let pat = build_pat(self.config.program_number, self.config.pmt_pid);
        write_section_packet(out, pid::PAT, &mut self.cc.pat, &pat);
        let mut es = Vec::with_capacity(2);
        if let Some(v) = self.streams.video {
            es.push((v.stream_type(), pid::VIDEO));
        }
        if let Some(a) = self.streams.audio {
            es.push((a.stream_type(), pid::AUDIO));
        }
        let pmt = build_pmt(self.config.program_number, self.pcr_pid(), &es);
        write_section_packet(out, self.config.pmt_pid, &mut self.cc.pmt, &pmt);
    }

    fn video_codec(&self, payload: &[u8]) -> Result<(TsVideo, crate::codec::VideoHeader), TsError> {
        let declared = self.streams.video.ok_or(TsError::NoStream("video"))?;
        let h = parse_video_header(payload).ok_or(TsError::BadFlvHeader("video"))?;
        let got = match h.info.codec {
            VideoCodec::Avc => TsVideo::H264,
            VideoCodec::Hevc => TsVideo::H265,
            _ => {
                return Err(TsError::CodecMismatch(
                    "video codec cannot be carried in TS",
                ))
            }
        };
        if got != declared {
            return Err(TsError::CodecMismatch(
                "video codec differs from the declared one",
            ));
        }
        Ok((got, h))
    }

    /// Takes an FLV video sequence header payload (legacy or enhanced, AVC or HEVC).
    pub fn set_video_config(&mut self, seq_header_payload: &[u8]) -> Result<(), TsError> {
        let (codec, h) = self.video_codec(seq_header_payload)?;
        if h.kind != VideoPacketKind::SequenceHeader {
            return Err(TsError::BadFlvHeader("video sequence header"));
        }
        let offset = h.data_offset.ok_or(TsError::Multitrack)?;
        let record = seq_header_payload.get(offset..).unwrap_or_default();
        let params = match codec {
            TsVideo::H264 => {
                let c = parse_avc_config(record)?;
                VideoParams {
                    nal_length_size: c.nal_length_size,
                    param_sets: c.sps.into_iter().chain(c.pps).collect(),
                }
            }
            TsVideo::H265 => {
                let c = parse_hevc_config(record)?;
                VideoParams {
                    nal_length_size: c.nal_length_size,
                    param_sets: c.vps.into_iter().chain(c.sps).chain(c.pps).collect(),
                }
            }
        };
        self.video = Some(params);
        Ok(())
    }

    /// Muxes one FLV video payload (`dts_ms` unwrapped) as one PES: AVCC to Annex B, an AUD
    /// first, the parameter sets of the last sequence header before IRAP frames that lack them,
    /// PTS = DTS + composition time, PCR on every video PES (so at frame rate, well under the
    /// 100 ms bound), random_access_indicator on keyframes. Sequence headers update the config
    /// and write nothing; end-of-sequence, metadata and command packets are ignored.
    pub fn write_video(
        &mut self,
        dts_ms: u64,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TsError> {
        let (codec, h) = self.video_codec(payload)?;
        match h.kind {
            VideoPacketKind::SequenceHeader => return self.set_video_config(payload),
            VideoPacketKind::Frames => {}
            _ => return Ok(()),
        }
        let offset = h.data_offset.ok_or(TsError::Multitrack)?;
        let data = payload.get(offset..).unwrap_or_default();
        let size = self.video.as_ref().map_or(4, |v| v.nal_length_size);
        let nals = split_nalus(data, size)?;
        let nals: Vec<&[u8]> = nals
            .into_iter()
            .filter(|n| nal_type(codec, n).is_some_and(|t| !is_aud(codec, t)))
            .collect();
        if nals.is_empty() {
            return Ok(());
        }
        let types = || nals.iter().filter_map(|n| nal_type(codec, n));
        let has_irap = types().any(|t| is_irap(codec, t));
        let has_params = types().any(|t| is_param_set(codec, t));
        let keyframe = h.info.keyframe || has_irap;

        let dts = to_90k(dts_ms);
        let pts_ms = i128::from(dts_ms) + i128::from(h.info.composition_time);
        let pts = to_90k(u64::try_from(pts_ms.max(0)).unwrap_or(dts_ms));

        let es_len: usize = nals.iter().map(|n| n.len() + 4).sum::<usize>() + 8;
        let mut pes = pes_header(STREAM_ID_VIDEO, pts, dts, None);
        pes.reserve(es_len + 256);
        pes.extend_from_slice(&START_CODE);
        match codec {
            TsVideo::H264 => pes.extend_from_slice(&AUD_H264),
            TsVideo::H265 => pes.extend_from_slice(&AUD_HEVC),
        }
        if keyframe && !has_params {
            if let Some(v) = &self.video {
                for ps in &v.param_sets {
                    pes.extend_from_slice(&START_CODE);
                    pes.extend_from_slice(ps);
                }
            }
        }
        for nal in &nals {
            pes.extend_from_slice(&START_CODE);
            pes.extend_from_slice(nal);
        }
        let pcr = self.pcr(dts);
        write_pes_packets(
            out,
            pid::VIDEO,
            &mut self.cc.video,
            &pes,
            Some(pcr),
            keyframe,
        );
        Ok(())
    }

    fn audio_codec(&self, payload: &[u8]) -> Result<(TsAudio, crate::codec::AudioHeader), TsError> {
        let declared = self.streams.audio.ok_or(TsError::NoStream("audio"))?;
        let h = parse_audio_header(payload).ok_or(TsError::BadFlvHeader("audio"))?;
        let ok = matches!(
            (h.info.codec, declared),
            (AudioCodec::Aac, TsAudio::Aac) | (AudioCodec::Mp3, TsAudio::Mp3 { .. })
        );
        if !ok {
            return Err(TsError::CodecMismatch(
                "audio codec differs from the declared one",
            ));
        }
        Ok((declared, h))
    }

    /// Takes an FLV AAC sequence header payload (the AudioSpecificConfig after the FLV header).
    pub fn set_audio_config(&mut self, seq_header_payload: &[u8]) -> Result<(), TsError> {
        let (codec, h) = self.audio_codec(seq_header_payload)?;
        if codec != TsAudio::Aac || !h.info.sequence_header {
            return Err(TsError::BadFlvHeader("AAC sequence header"));
        }
        let offset = h.data_offset.ok_or(TsError::Multitrack)?;
        let asc = parse_asc(seq_header_payload.get(offset..).unwrap_or_default())?;
        self.audio = Some(asc);
        Ok(())
    }

    /// Muxes one FLV audio payload as one PES (no batching): raw AAC gets an ADTS header built
    /// from the AudioSpecificConfig, MP3 goes as is. Without video the PCR rides on these
    /// packets. An AAC sequence header updates the config and writes nothing.
    pub fn write_audio(
        &mut self,
        pts_ms: u64,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TsError> {
        let (codec, h) = self.audio_codec(payload)?;
        if h.info.sequence_header {
            return if codec == TsAudio::Aac {
                self.set_audio_config(payload)
            } else {
                Ok(())
            };
        }
        let offset = h.data_offset.ok_or(TsError::Multitrack)?;
        let data = payload.get(offset..).unwrap_or_default();
        if data.is_empty() {
            return Ok(());
        }
        let adts = match codec {
            TsAudio::Aac => {
                let asc = self.audio.as_ref().ok_or(TsError::MissingAudioConfig)?;
                if data.len() > MAX_ADTS_RAW_LEN {
                    return Err(TsError::AacFrameTooLarge(data.len()));
                }
                Some(adts_header(asc, data.len()))
            }
            TsAudio::Mp3 { .. } => None,
        };
        let es_len = data.len() + adts.map_or(0, |a| a.len());
        let pts = to_90k(pts_ms);
        let mut pes = pes_header(STREAM_ID_AUDIO, pts, pts, Some(es_len));
        pes.reserve(es_len);
        if let Some(a) = adts {
            pes.extend_from_slice(&a);
        }
        pes.extend_from_slice(data);
        let pcr = (self.pcr_pid() == pid::AUDIO).then(|| self.pcr(pts));
        // Every audio frame is a random access point; ffmpeg flags them the same way.
        write_pes_packets(out, pid::AUDIO, &mut self.cc.audio, &pes, pcr, true);
        Ok(())
    }
}
