//! MPEG-TS in, FLV payloads out: what an SRT (or any TS) publisher sends, turned into the
//! frames every other output of the server reads. Sans-IO: bytes in, frames out.
//!
//! - Video: H.264 and HEVC Annex B access units become length-prefixed FLV frames (legacy
//!   header; HEVC with codec id 12, as SRS writes it). Parameter sets become the sequence
//!   header, sent again whenever they change; AUDs and in-band parameter sets are dropped.
//!   Frames before the first parameter sets are dropped: nobody could decode them.
//! - Audio: each ADTS frame of an AAC PES becomes one FLV AAC frame (with a sequence header
//!   built from the ADTS header, sent again when it changes); MP3 PES go as they are.
//! - Time: one timeline for the program, in 90 kHz units, unwrapped across the 33-bit wrap
//!   and kept continuous across jumps (an encoder restarting its clock, a splice): a step of
//!   more than [`MAX_STEP`] continues the timeline from where it was instead. Milliseconds out
//!   start at the first timestamp's own value, as SRS does.

use bytes::Bytes;

use super::demux::{TsDemuxer, TsEvent};
use super::psi::stream_type;
use crate::aac::{encode_asc, parse_adts, parse_asc};
use crate::avc::split_annexb;

/// A step between consecutive timestamps (of any stream) larger than this, forward or
/// back, is a discontinuity, not time passing: 10 s.
pub const MAX_STEP: i64 = 10 * 90_000;
const TS_MODULUS: i64 = 1 << 33;

/// One frame as an FLV tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestFrame {
    pub video: bool,
    /// Milliseconds (DTS for video, PTS for audio) on the continuous timeline.
    pub timestamp: u64,
    pub payload: Bytes,
}

/// Counts of what the ingest saw, for logs and the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Timestamp jumps smoothed over.
    pub discontinuities: u64,
    /// Continuity-counter errors (lost TS packets).
    pub cc_errors: u64,
    /// PES of codecs we do not carry, or unparsable.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Timeline {
    last_raw: Option<i64>,
    out: i64,
}

impl Timeline {
    /// The 90 kHz time on the continuous timeline for a raw 33-bit timestamp.
    fn map(&mut self, raw: u64, stats: &mut IngestStats) -> i64 {
        let raw = (raw & (TS_MODULUS as u64 - 1)) as i64;
        match self.last_raw {
            None => self.out = raw,
            Some(prev) => {
                let mut d = (raw - prev).rem_euclid(TS_MODULUS);
                if d >= TS_MODULUS / 2 {
                    d -= TS_MODULUS;
                }
                if d.abs() > MAX_STEP {
                    stats.discontinuities += 1;
                    d = 0;
                }
                self.out += d;
            }
        }
        self.last_raw = Some(raw);
        self.out
    }
}

fn ms(t90: i64) -> u64 {
    u64::try_from(t90.max(0) / 90).unwrap_or(0)
}

/// TS → FLV frames for one publisher.
#[derive(Debug, Default)]
pub struct TsIngest {
    demux: TsDemuxer,
    events: Vec<TsEvent>,
    timeline: Timeline,
    /// The video and audio PIDs taken (the first of each kind the PMT announces).
    video_pid: Option<(u16, u8)>,
    audio_pid: Option<(u16, u8)>,
    /// The last sequence header sent, per kind.
    video_config: Option<Vec<u8>>,
    audio_config: Option<[u8; 2]>,
    /// Parameter sets as last seen (H.264: SPS, PPS; HEVC: VPS, SPS, PPS).
    params: [Option<Vec<u8>>; 3],
    stats: IngestStats,
    /// Frames waiting for the other stream to catch up, in timestamp order (see
    /// [`TsIngest::release`]), and the newest timestamp seen per stream.
    pending: std::collections::VecDeque<IngestFrame>,
    newest: [Option<u64>; 2],
}

/// Frames held back for interleaving, at most: an encoder whose other stream stalls
/// must not make us hold its frames for ever.
pub const MAX_REORDER_FRAMES: usize = 256;

impl TsIngest {
    pub fn new() -> TsIngest {
        TsIngest::default()
    }

    pub fn stats(&self) -> IngestStats {
        let mut s = self.stats;
        s.cc_errors = self.demux.cc_errors().values().sum();
        s
    }

    /// Feeds TS bytes (any split); appends the frames completed to `out`, in timestamp
    /// order across streams.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<IngestFrame>) {
        let mut events = std::mem::take(&mut self.events);
        self.demux.push(data, &mut events);
        let mut made = Vec::new();
        self.handle(&mut events, &mut made);
        self.events = events;
        self.release(made, false, out);
    }

    /// The end of the input: the PES still being assembled are completed, and every
    /// frame held back is given out.
    pub fn finish(&mut self, out: &mut Vec<IngestFrame>) {
        let mut events = std::mem::take(&mut self.events);
        self.demux.finish(&mut events);
        let mut made = Vec::new();
        self.handle(&mut events, &mut made);
        self.events = events;
        self.release(made, true, out);
    }

    /// Interleaves the streams: an encoder puts several audio frames in one PES, and its
    /// audio and video PES need not come in timestamp order, while FLV and RTMP readers
    /// (and the hub's jitter correction) expect one timeline that does not go back. A frame
    /// goes out once the other stream has reached its timestamp (or at once when there is
    /// one stream), keeping at most [`MAX_REORDER_FRAMES`].
    fn release(&mut self, made: Vec<IngestFrame>, all: bool, out: &mut Vec<IngestFrame>) {
        for f in made {
            let slot = &mut self.newest[usize::from(!f.video)];
            *slot = Some(slot.map_or(f.timestamp, |t| t.max(f.timestamp)));
            // After every frame of the same or an earlier time: a sequence header stays
            // before its frame.
            let at = self
                .pending
                .iter()
                .rposition(|p| p.timestamp <= f.timestamp)
                .map_or(0, |i| i + 1);
            self.pending.insert(at, f);
        }
        let both = self.video_pid.is_some() && self.audio_pid.is_some();
        let watermark = match self.newest {
            [Some(v), Some(a)] if both => v.min(a),
            _ if both => 0,
            _ => u64::MAX,
        };
        while let Some(front) = self.pending.front() {
            if !(all || front.timestamp <= watermark || self.pending.len() > MAX_REORDER_FRAMES) {
                break;
            }
            if let Some(f) = self.pending.pop_front() {
                out.push(f);
            }
        }
    }

    fn handle(&mut self, events: &mut Vec<TsEvent>, out: &mut Vec<IngestFrame>) {
        for ev in events.drain(..) {
            match ev {
                TsEvent::Pmt { pmt, .. } => {
                    for s in &pmt.streams {
                        match s.stream_type {
                            stream_type::H264 | stream_type::HEVC if self.video_pid.is_none() => {
                                self.video_pid = Some((s.elementary_pid, s.stream_type))
                            }
                            stream_type::AAC_ADTS
                            | stream_type::MPEG1_AUDIO
                            | stream_type::MPEG2_AUDIO
                                if self.audio_pid.is_none() =>
                            {
                                self.audio_pid = Some((s.elementary_pid, s.stream_type))
                            }
                            _ => {}
                        }
                    }
                }
                TsEvent::Pes(pes) => {
                    if self.video_pid.is_some_and(|(p, _)| p == pes.pid) {
                        let Some(dts) = pes.dts.or(pes.pts) else {
                            self.stats.dropped += 1;
                            continue;
                        };
                        let pts = pes.pts.unwrap_or(dts);
                        let hevc = self.video_pid.is_some_and(|(_, t)| t == stream_type::HEVC);
                        self.video(hevc, dts, pts, &pes.data, out);
                    } else if self.audio_pid.is_some_and(|(p, _)| p == pes.pid) {
                        let Some(pts) = pes.pts else {
                            self.stats.dropped += 1;
                            continue;
                        };
                        if self
                            .audio_pid
                            .is_some_and(|(_, t)| t == stream_type::AAC_ADTS)
                        {
                            self.aac(pts, &pes.data, out);
                        } else {
                            let t = ms(self.timeline.map(pts, &mut self.stats));
                            let mut payload = Vec::with_capacity(pes.data.len() + 1);
                            payload.push(0x2f);
                            payload.extend_from_slice(&pes.data);
                            out.push(IngestFrame {
                                video: false,
                                timestamp: t,
                                payload: payload.into(),
                            });
                        }
                    } else {
                        self.stats.dropped += 1;
                    }
                }
                _ => {}
            }
        }
    }

    fn video(&mut self, hevc: bool, dts: u64, pts: u64, data: &[u8], out: &mut Vec<IngestFrame>) {
        let t = self.timeline.map(dts, &mut self.stats);
        let mut cts = (pts as i64 - dts as i64).rem_euclid(TS_MODULUS);
        if cts >= TS_MODULUS / 2 {
            cts -= TS_MODULUS;
        }
        let cts_ms = (cts / 90).clamp(-(1 << 23), (1 << 23) - 1) as i32;
        let nals = split_annexb(data);
        let mut keyframe = false;
        let mut frame_nals: Vec<&[u8]> = Vec::with_capacity(nals.len());
        for nal in nals {
            let Some(&first) = nal.first() else { continue };
            if hevc {
                let ty = (first >> 1) & 0x3f;
                match ty {
                    32..=34 => self.params[usize::from(ty - 32)] = Some(nal.to_vec()),
                    35 => {}
                    16..=21 => {
                        keyframe = true;
                        frame_nals.push(nal);
                    }
                    _ => frame_nals.push(nal),
                }
            } else {
                match first & 0x1f {
                    7 => self.params[0] = Some(nal.to_vec()),
                    8 => self.params[1] = Some(nal.to_vec()),
                    9 => {}
                    5 => {
                        keyframe = true;
                        frame_nals.push(nal);
                    }
                    _ => frame_nals.push(nal),
                }
            }
        }
        let record = if hevc {
            match &self.params {
                [Some(vps), Some(sps), Some(pps)] => hvcc(vps, sps, pps),
                _ => None,
            }
        } else {
            match &self.params {
                [Some(sps), Some(pps), _] => avcc(sps, pps),
                _ => None,
            }
        };
        let codec = if hevc { 12 } else { 7 };
        if let Some(record) = record {
            if self.video_config.as_ref() != Some(&record) {
                let mut payload = vec![0x10 | codec, 0, 0, 0, 0];
                payload.extend_from_slice(&record);
                out.push(IngestFrame {
                    video: true,
                    timestamp: ms(t),
                    payload: payload.into(),
                });
                self.video_config = Some(record);
            }
        }
        if self.video_config.is_none() || frame_nals.is_empty() {
            return;
        }
        let size: usize = frame_nals.iter().map(|n| n.len() + 4).sum();
        let mut payload = Vec::with_capacity(size + 5);
        let kind = if keyframe { 0x10 } else { 0x20 };
        payload.push(kind | codec);
        payload.push(1);
        payload.extend_from_slice(&cts_ms.to_be_bytes()[1..]);
        for nal in frame_nals {
            payload.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            payload.extend_from_slice(nal);
        }
        out.push(IngestFrame {
            video: true,
            timestamp: ms(t),
            payload: payload.into(),
        });
    }

    fn aac(&mut self, pts: u64, mut data: &[u8], out: &mut Vec<IngestFrame>) {
        let mut first = true;
        let mut t = 0i64;
        while !data.is_empty() {
            let Ok(h) = parse_adts(data) else {
                self.stats.dropped += 1;
                return;
            };
            let asc = encode_asc(h.object_type, h.sample_rate_index, h.channels);
            let rate = parse_asc(&asc).map(|a| a.sample_rate).unwrap_or(0);
            if first {
                t = self.timeline.map(pts, &mut self.stats);
                first = false;
            }
            if self.audio_config != Some(asc) {
                out.push(IngestFrame {
                    video: false,
                    timestamp: ms(t),
                    payload: Bytes::from(vec![0xaf, 0, asc[0], asc[1]]),
                });
                self.audio_config = Some(asc);
            }
            let raw = &data[h.header_length..h.frame_length];
            let mut payload = Vec::with_capacity(raw.len() + 2);
            payload.extend_from_slice(&[0xaf, 1]);
            payload.extend_from_slice(raw);
            out.push(IngestFrame {
                video: false,
                timestamp: ms(t),
                payload: payload.into(),
            });
            if rate > 0 {
                t += 1024 * 90_000 / i64::from(rate);
            }
            data = &data[h.frame_length..];
        }
    }
}

/// An AVCDecoderConfigurationRecord for one SPS and one PPS (ISO/IEC 14496-15 5.3.3.1).
fn avcc(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    if sps.len() < 4 || sps.len() > 0xffff || pps.is_empty() || pps.len() > 0xffff {
        return None;
    }
    let mut r = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    r.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    r.extend_from_slice(sps);
    r.push(1);
    r.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    r.extend_from_slice(pps);
    Some(r)
}

/// A NAL unit's payload without emulation-prevention bytes (enough of it for the header
/// fields read here).
fn rbsp(nal: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(limit);
    let mut zeros = 0;
    for &b in nal {
        if out.len() >= limit {
            break;
        }
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) for one VPS, SPS and PPS:
/// the general profile, tier and level are copied from the SPS's profile_tier_level; 4:2:0
/// 8-bit and 4-byte lengths are declared (decoders take the real values from the SPS).
fn hvcc(vps: &[u8], sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    if [vps, sps, pps].iter().any(|n| n.len() > 0xffff) {
        return None;
    }
    // NAL header (2), vps id / max sub layers / nesting (1), general PTL (12).
    let s = rbsp(sps, 15);
    let ptl = s.get(3..15)?;
    let mut r = Vec::with_capacity(23 + vps.len() + sps.len() + pps.len() + 15);
    r.push(1);
    r.extend_from_slice(ptl);
    r.extend_from_slice(&[0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00]);
    let sub_layers = ((s[2] >> 1) & 0x07) + 1;
    let nested = s[2] & 1;
    r.push((sub_layers << 3) | (nested << 2) | 3);
    r.push(3);
    for (ty, nal) in [(32u8, vps), (33, sps), (34, pps)] {
        r.push(0x80 | ty);
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        r.extend_from_slice(nal);
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::{TsAudio, TsMuxer, TsStreams, TsVideo};

    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    fn flv_avc_header() -> Vec<u8> {
        let mut p = vec![0x17, 0, 0, 0, 0];
        p.extend_from_slice(&avcc(SPS, PPS).unwrap());
        p
    }

    fn flv_avc_frame(key: bool, cts: u8, nal: &[u8]) -> Vec<u8> {
        let mut p = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, cts];
        p.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        p.extend_from_slice(nal);
        p
    }

    /// What the HLS muxer writes, read back: the same frames, headers first, timestamps
    /// (here offset by nothing: the muxer's PTS is the FLV time) and composition times kept.
    #[test]
    fn muxed_flv_frames_come_back() {
        let mut mux = TsMuxer::new(TsStreams {
            video: Some(TsVideo::H264),
            audio: Some(TsAudio::Aac),
        });
        let mut ts = Vec::new();
        mux.write_tables(&mut ts);
        mux.write_video(1000, &flv_avc_header(), &mut ts).unwrap();
        mux.write_audio(1000, &[0xaf, 0, 0x12, 0x10], &mut ts)
            .unwrap();
        let idr = [0x65, 0x88, 0x84, 0x00, 0x21];
        let p = [0x41, 0x9a, 0x02, 0x03];
        mux.write_video(1000, &flv_avc_frame(true, 40, &idr), &mut ts)
            .unwrap();
        mux.write_audio(1010, &[0xaf, 1, 0x21, 0x22, 0x23], &mut ts)
            .unwrap();
        mux.write_video(1040, &flv_avc_frame(false, 0, &p), &mut ts)
            .unwrap();
        mux.write_tables(&mut ts); // pushes the last PES out
        let mut ingest = TsIngest::new();
        let mut out = Vec::new();
        for chunk in ts.chunks(1316) {
            ingest.push(chunk, &mut out);
        }
        ingest.finish(&mut out);
        let video: Vec<_> = out.iter().filter(|f| f.video).collect();
        let audio: Vec<_> = out.iter().filter(|f| !f.video).collect();
        assert_eq!(video.len(), 3, "{out:?}");
        assert_eq!(&video[0].payload[..], &flv_avc_header()[..]);
        assert_eq!(video[1].timestamp, 1000);
        assert_eq!(&video[1].payload[..], &flv_avc_frame(true, 40, &idr)[..]);
        assert_eq!(video[2].timestamp, 1040);
        assert_eq!(&video[2].payload[..], &flv_avc_frame(false, 0, &p)[..]);
        assert_eq!(&audio[0].payload[..], &[0xaf, 0, 0x12, 0x10]);
        assert_eq!(&audio[1].payload[..], &[0xaf, 1, 0x21, 0x22, 0x23]);
        assert_eq!(audio[1].timestamp, 1010);
        assert_eq!(ingest.stats().discontinuities, 0);
    }

    /// Audio muxed ahead of video (as encoders pack several audio frames per PES) comes
    /// out interleaved: one timeline that never goes back.
    #[test]
    fn streams_come_out_interleaved() {
        let mut mux = TsMuxer::new(TsStreams {
            video: Some(TsVideo::H264),
            audio: Some(TsAudio::Aac),
        });
        let mut ts = Vec::new();
        mux.write_tables(&mut ts);
        mux.write_video(1000, &flv_avc_header(), &mut ts).unwrap();
        mux.write_audio(1000, &[0xaf, 0, 0x12, 0x10], &mut ts)
            .unwrap();
        for i in 0..10 {
            mux.write_audio(1000 + i * 23, &[0xaf, 1, 0x21, 0x22], &mut ts)
                .unwrap();
        }
        for i in 0..6 {
            let nal = [0x65, 0x88, 0x84, i as u8];
            mux.write_video(1000 + i * 40, &flv_avc_frame(i == 0, 0, &nal), &mut ts)
                .unwrap();
        }
        mux.write_tables(&mut ts);
        let mut ingest = TsIngest::new();
        let mut out = Vec::new();
        ingest.push(&ts, &mut out);
        ingest.finish(&mut out);
        let times: Vec<u64> = out.iter().map(|f| f.timestamp).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        assert_eq!(out.iter().filter(|f| f.video).count(), 7);
        assert_eq!(out.iter().filter(|f| !f.video).count(), 11);
        assert!(
            out[0].payload[1] == 0 || out[1].payload[1] == 0,
            "headers first"
        );
    }

    #[test]
    fn the_timeline_unwraps_and_smooths_jumps() {
        let mut t = Timeline::default();
        let mut s = IngestStats::default();
        let near_end = (1u64 << 33) - 9000;
        assert_eq!(t.map(near_end, &mut s), near_end as i64);
        // Across the wrap: 0.1 s later.
        assert_eq!(t.map(0, &mut s), near_end as i64 + 9000);
        assert_eq!(s.discontinuities, 0);
        // An encoder restart (back to 0): continues where it was.
        let before = t.out;
        assert_eq!(t.map(1u64 << 30, &mut s), before);
        assert_eq!(s.discontinuities, 1);
        assert_eq!(t.map((1u64 << 30) + 3600, &mut s), before + 3600);
    }

    #[test]
    fn hvcc_copies_the_profile_tier_level() {
        let vps = [0x40, 1, 0x0c];
        // NAL header, sub-layer byte, 12 bytes of PTL (with an emulation-prevention byte).
        let sps = [
            0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
            0x00, 0x00, 0x5d, 0xa0,
        ];
        let pps = [0x44, 1, 0xc1];
        let r = hvcc(&vps, &sps, &pps).unwrap();
        // profile_space/tier/profile, the compatibility flags (EPB removed), level.
        assert_eq!(&r[1..6], &[0x01, 0x60, 0x00, 0x00, 0x00]);
        assert_eq!(r[12], 0x5d);
        assert_eq!(r[21] & 3, 3, "4-byte lengths");
        assert_eq!(r[22], 3, "VPS, SPS, PPS arrays");
        assert_eq!(r[23], 0x80 | 32);
    }
}
