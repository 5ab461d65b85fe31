//! FLV/RTMP frames in, fMP4 init segment and fragments out: the counterpart of
//! [`crate::ts::TsMuxer`] for HLS with `hls_use_fmp4`, LL-HLS parts and DASH.
//!
//! A sample's duration is the distance to the next sample of its track, so each track keeps
//! its newest sample pending until the next one arrives (or [`Fmp4Muxer::finish`]). A
//! fragment taken when a keyframe has just arrived therefore ends right before it, and the
//! keyframe opens the next fragment: that is where the service cuts segments.

use bytes::Bytes;

use super::write::{write_fragment, write_init, Run, Sample, Track, TrackCodec};
use super::Fmp4Error;
use crate::aac::parse_asc;
use crate::avc::{detect_nalu_format, parse_avc_config, parse_sps, split_annexb, NaluFormat};
use crate::codec::{
    parse_audio_header, parse_video_header, AudioCodec, VideoCodec, VideoPacketKind,
};
use crate::hevc::parse_hevc_config;
use crate::mp3::{parse_mp3_header, MpegVersion};

pub const VIDEO_TRACK: u32 = 1;
pub const AUDIO_TRACK: u32 = 2;
const VIDEO_TIMESCALE: u32 = 90_000;
/// Duration given to a track's last sample when no gap was seen yet.
const DEFAULT_FRAME_MS: u64 = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmp4Video {
    H264,
    H265,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmp4Audio {
    Aac,
    Mp3,
}

/// The tracks a stream has, decided from its first tags like the TS muxer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fmp4Streams {
    pub video: Option<Fmp4Video>,
    pub audio: Option<Fmp4Audio>,
}

impl Fmp4Video {
    pub fn from_flv(payload: &[u8]) -> Option<Self> {
        match parse_video_header(payload)?.info.codec {
            VideoCodec::Avc => Some(Fmp4Video::H264),
            VideoCodec::Hevc => Some(Fmp4Video::H265),
            _ => None,
        }
    }
}

impl Fmp4Audio {
    pub fn from_flv(payload: &[u8]) -> Option<Self> {
        match parse_audio_header(payload)?.info.codec {
            AudioCodec::Aac => Some(Fmp4Audio::Aac),
            AudioCodec::Mp3 => Some(Fmp4Audio::Mp3),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    dts: u64,
    cts_offset: i32,
    sync: bool,
    data: Bytes,
}

#[derive(Debug, Clone)]
struct TrackState {
    timescale: u32,
    codec: Option<TrackCodec>,
    pending: Option<Pending>,
    ready: Vec<Sample>,
    /// DTS of the first ready sample.
    base: Option<u64>,
    last_duration: u32,
    ready_bytes: usize,
}

impl TrackState {
    fn new(timescale: u32) -> Self {
        TrackState {
            timescale,
            codec: None,
            pending: None,
            ready: Vec::new(),
            base: None,
            last_duration: 0,
            ready_bytes: 0,
        }
    }

    fn ticks(&self, ms: u64) -> u64 {
        ((u128::from(ms) * u128::from(self.timescale) + 500) / 1000) as u64
    }

    fn to_ms(&self, ticks: u64) -> u64 {
        let ts = u128::from(self.timescale.max(1));
        ((u128::from(ticks) * 1000 + ts / 2) / ts) as u64
    }

    fn push(&mut self, next: Pending) {
        if let Some(p) = self.pending.take() {
            let d = next.dts.saturating_sub(p.dts);
            let duration = u32::try_from(d).unwrap_or(u32::MAX);
            if duration > 0 {
                self.last_duration = duration;
            }
            self.ready_one(p, duration);
        }
        self.pending = Some(next);
    }

    fn ready_one(&mut self, p: Pending, duration: u32) {
        self.base.get_or_insert(p.dts);
        self.ready_bytes += p.data.len();
        self.ready.push(Sample {
            duration,
            cts_offset: p.cts_offset,
            sync: p.sync,
            data: p.data,
        });
    }

    fn flush_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            let d = if self.last_duration > 0 {
                self.last_duration
            } else {
                self.ticks(DEFAULT_FRAME_MS) as u32
            };
            self.ready_one(p, d);
        }
    }

    fn take_run(&mut self, track_id: u32) -> Option<Run> {
        let base = self.base.take()?;
        self.ready_bytes = 0;
        Some(Run {
            track_id,
            base_dts: base,
            samples: std::mem::take(&mut self.ready),
        })
    }

    /// Ready media in ms: from the first ready sample to the pending one (or the end of the
    /// last ready one).
    fn ready_span_ms(&self) -> u64 {
        let Some(base) = self.base else { return 0 };
        let end = match &self.pending {
            Some(p) => p.dts,
            None => {
                base + self
                    .ready
                    .iter()
                    .map(|s| u64::from(s.duration))
                    .sum::<u64>()
            }
        };
        self.to_ms(end.saturating_sub(base))
    }
}

/// What one fragment holds, for the playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentMeta {
    pub sequence: u32,
    /// Starts with a sync sample on every track (`INDEPENDENT=YES` of an LL-HLS part).
    pub independent: bool,
    /// Start and duration of the driving track (video if any), in ms.
    pub start_ms: u64,
    pub duration_ms: u64,
}

/// The fMP4 muxer of one stream (one publish).
#[derive(Debug, Clone)]
pub struct Fmp4Muxer {
    streams: Fmp4Streams,
    video: Option<TrackState>,
    audio: Option<TrackState>,
    nal_length_size: u8,
    sequence: u32,
}

impl Fmp4Muxer {
    pub fn new(streams: Fmp4Streams) -> Self {
        Fmp4Muxer {
            streams,
            video: streams.video.map(|_| TrackState::new(VIDEO_TIMESCALE)),
            audio: streams.audio.map(|_| TrackState::new(1000)),
            nal_length_size: 4,
            sequence: 0,
        }
    }

    pub fn streams(&self) -> Fmp4Streams {
        self.streams
    }

    /// The tracks, once every declared one has its configuration; `None` before.
    pub fn tracks(&self) -> Option<Vec<Track>> {
        let mut out = Vec::new();
        for (id, t) in [(VIDEO_TRACK, &self.video), (AUDIO_TRACK, &self.audio)] {
            if let Some(t) = t {
                out.push(Track {
                    id,
                    timescale: t.timescale,
                    codec: t.codec.clone()?,
                });
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// The init segment (`ftyp` + `moov`), once every declared track has its configuration.
    pub fn init_segment(&self) -> Option<Vec<u8>> {
        let tracks = self.tracks()?;
        let mut out = Vec::with_capacity(1024);
        write_init(&tracks, &mut out);
        Some(out)
    }

    /// Muxes one FLV video payload: a sequence header sets the track's `avcC`/`hvcC`, a
    /// frame becomes a sample (length-prefixed NALUs as sent, Annex B rewritten to length
    /// prefixes), with `composition_time` as its offset. Other packets are ignored.
    pub fn write_video(&mut self, dts_ms: u64, payload: &Bytes) -> Result<(), Fmp4Error> {
        let declared = self.streams.video.ok_or(Fmp4Error::NoStream("video"))?;
        let h = parse_video_header(payload).ok_or(Fmp4Error::BadFlvHeader("video"))?;
        let codec = match h.info.codec {
            VideoCodec::Avc => Fmp4Video::H264,
            VideoCodec::Hevc => Fmp4Video::H265,
            _ => return Err(Fmp4Error::CodecMismatch("video codec not carried in fMP4")),
        };
        if codec != declared {
            return Err(Fmp4Error::CodecMismatch(
                "video codec differs from the declared one",
            ));
        }
        let offset = h.data_offset.ok_or(Fmp4Error::Multitrack)?;
        let data = payload.get(offset..).unwrap_or_default();
        match h.kind {
            VideoPacketKind::SequenceHeader => {
                let record = payload.slice(offset..);
                let (config, nal_length_size) = match codec {
                    Fmp4Video::H264 => {
                        let c = parse_avc_config(data)?;
                        let (w, hgt) = c
                            .sps
                            .first()
                            .and_then(|s| parse_sps(s).ok())
                            .map_or((0, 0), |s| (s.width, s.height));
                        (
                            TrackCodec::H264 {
                                record,
                                width: w.min(0xffff) as u16,
                                height: hgt.min(0xffff) as u16,
                            },
                            c.nal_length_size,
                        )
                    }
                    Fmp4Video::H265 => {
                        let c = parse_hevc_config(data)?;
                        (
                            TrackCodec::H265 {
                                record,
                                width: c.width.min(0xffff) as u16,
                                height: c.height.min(0xffff) as u16,
                            },
                            c.nal_length_size,
                        )
                    }
                };
                self.nal_length_size = nal_length_size;
                if let Some(t) = self.video.as_mut() {
                    t.codec = Some(config);
                }
                Ok(())
            }
            VideoPacketKind::Frames => {
                if data.is_empty() {
                    return Ok(());
                }
                let sample = self.video_sample(payload.slice(offset..))?;
                let t = self.video.as_mut().ok_or(Fmp4Error::NoStream("video"))?;
                if t.codec.is_none() {
                    return Err(Fmp4Error::MissingConfig("video"));
                }
                let cts = i64::from(h.info.composition_time) * i64::from(VIDEO_TIMESCALE) / 1000;
                t.push(Pending {
                    dts: t.ticks(dts_ms),
                    cts_offset: cts.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
                    sync: h.info.keyframe,
                    data: sample,
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The sample bytes: the frame as sent when it parses as length-prefixed NALUs of the
    /// configured size (no copy), else Annex B rewritten with 4-byte... the configured size.
    fn video_sample(&self, data: Bytes) -> Result<Bytes, Fmp4Error> {
        let n = usize::from(self.nal_length_size);
        if length_prefixed_ok(&data, n) {
            return Ok(data);
        }
        if detect_nalu_format(&data) != NaluFormat::AnnexB {
            return Err(Fmp4Error::BadFrame);
        }
        let nals = split_annexb(&data);
        let mut out = Vec::with_capacity(data.len() + nals.len() * n);
        for nal in nals {
            let len = nal.len() as u64;
            if n < 8 && len >> (n * 8) != 0 {
                return Err(Fmp4Error::BadFrame);
            }
            out.extend_from_slice(&len.to_be_bytes()[8 - n..]);
            out.extend_from_slice(nal);
        }
        Ok(Bytes::from(out))
    }

    /// Muxes one FLV audio payload: the AAC sequence header sets the `esds`; an MP3 track
    /// takes its rate and channels from its first frame.
    pub fn write_audio(&mut self, dts_ms: u64, payload: &Bytes) -> Result<(), Fmp4Error> {
        let declared = self.streams.audio.ok_or(Fmp4Error::NoStream("audio"))?;
        let h = parse_audio_header(payload).ok_or(Fmp4Error::BadFlvHeader("audio"))?;
        let ok = matches!(
            (h.info.codec, declared),
            (AudioCodec::Aac, Fmp4Audio::Aac) | (AudioCodec::Mp3, Fmp4Audio::Mp3)
        );
        if !ok {
            return Err(Fmp4Error::CodecMismatch(
                "audio codec differs from the declared one",
            ));
        }
        let offset = h.data_offset.ok_or(Fmp4Error::Multitrack)?;
        let data = payload.slice(offset.min(payload.len())..);
        let t = self.audio.as_mut().ok_or(Fmp4Error::NoStream("audio"))?;
        if h.info.sequence_header {
            if declared == Fmp4Audio::Aac {
                let asc = parse_asc(&data)?;
                if t.codec.is_none() || t.ready.is_empty() && t.pending.is_none() {
                    t.timescale = asc.sample_rate;
                }
                t.codec = Some(TrackCodec::Aac {
                    asc: data,
                    sample_rate: asc.sample_rate,
                    channels: asc.channels,
                });
            }
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        if declared == Fmp4Audio::Mp3 && t.codec.is_none() {
            let m = parse_mp3_header(&data).ok_or(Fmp4Error::MissingConfig("mp3 frame header"))?;
            t.timescale = m.sample_rate;
            t.codec = Some(TrackCodec::Mp3 {
                sample_rate: m.sample_rate,
                channels: m.channels,
                mpeg2: m.version != MpegVersion::Mpeg1,
            });
        }
        if t.codec.is_none() {
            return Err(Fmp4Error::MissingConfig("audio"));
        }
        t.push(Pending {
            dts: t.ticks(dts_ms),
            cts_offset: 0,
            sync: true,
            data,
        });
        Ok(())
    }

    fn driving(&self) -> Option<&TrackState> {
        self.video.as_ref().or(self.audio.as_ref())
    }

    /// Media ready for the next fragment on the driving track, in ms.
    pub fn ready_ms(&self) -> u64 {
        self.driving().map_or(0, TrackState::ready_span_ms)
    }

    /// Bytes ready for the next fragment.
    pub fn ready_bytes(&self) -> usize {
        [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .map(|t| t.ready_bytes)
            .sum()
    }

    pub fn has_ready(&self) -> bool {
        [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .any(|t| !t.ready.is_empty())
    }

    /// Moves every pending sample to ready (the stream ends, or a cut must include them).
    pub fn finish(&mut self) {
        for t in [&mut self.video, &mut self.audio].into_iter().flatten() {
            t.flush_pending();
        }
    }

    /// Writes the ready samples as one fragment (`moof` + `mdat`) to `out`; `None` when
    /// nothing is ready.
    pub fn take_fragment(&mut self, out: &mut Vec<u8>) -> Option<FragmentMeta> {
        if !self.has_ready() {
            return None;
        }
        let (independent, start_ms, duration_ms) = match self.driving() {
            Some(t) => (
                t.ready.first().is_none_or(|s| s.sync),
                t.base.map_or(0, |b| t.to_ms(b)),
                t.ready_span_ms(),
            ),
            None => (true, 0, 0),
        };
        let mut runs = Vec::with_capacity(2);
        if let Some(r) = self.video.as_mut().and_then(|t| t.take_run(VIDEO_TRACK)) {
            runs.push(r);
        }
        if let Some(r) = self.audio.as_mut().and_then(|t| t.take_run(AUDIO_TRACK)) {
            runs.push(r);
        }
        self.sequence = self.sequence.wrapping_add(1);
        write_fragment(self.sequence, &runs, out);
        Some(FragmentMeta {
            sequence: self.sequence,
            independent,
            start_ms,
            duration_ms,
        })
    }
}

fn length_prefixed_ok(data: &[u8], n: usize) -> bool {
    if !matches!(n, 1 | 2 | 4) {
        return false;
    }
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(prefix) = data.get(pos..pos + n) else {
            return false;
        };
        let len = prefix
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        pos += n;
        match pos.checked_add(len) {
            Some(end) if end <= data.len() && len > 0 && data[pos] & 0x80 == 0 => pos = end,
            _ => return false,
        }
    }
    true
}
