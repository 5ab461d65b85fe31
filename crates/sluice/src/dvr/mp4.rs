//! DVR to MP4 (`dvr_path` ending in `.mp4`): the same plans as FLV ([`super::segmenter`]),
//! written as fragmented MP4 by the muxer HLS uses for `hls_use_fmp4`
//! (`media::fmp4::Fmp4Muxer`): `ftyp`+`moov` first, then a `moof`+`mdat` fragment per GOP
//! (or per two seconds of media without keyframes). ffprobe, ffmpeg and browsers read such
//! a file as an ordinary MP4, and a recording cut short (a crash, a full disk) is still
//! playable up to its last whole fragment, which a single-`moov` MP4 written at the end
//! would not be. No I/O here: frames in, the writer's [`Action`]s out.
//!
//! A file's timestamps start at zero. An MP4 declares its tracks once, so a codec
//! configuration that changes mid-file (a new sequence header with other bytes) closes
//! the file; the next frame opens a new one, with the new configuration.

use bytes::Bytes;
use media::fmp4::{Fmp4Audio, Fmp4Muxer, Fmp4Streams, Fmp4Video};

use super::segmenter::Action;
use crate::config::{DvrConfig, DvrPlan};
use crate::hub::jitter::Jitter;
use crate::hub::{Frame, FrameKind};

/// Media in a fragment at most (ms) when no keyframe cuts it first (audio only, long GOPs).
const MAX_FRAGMENT_MS: u64 = 2000;

struct OpenFile {
    base: u64,
    last: u64,
    mux: Fmp4Muxer,
    /// The configurations the file's `moov` declares.
    video_sh: Option<Bytes>,
    audio_sh: Option<Bytes>,
}

pub struct Mp4Segmenter {
    plan: DvrPlan,
    duration_ms: u64,
    wait_keyframe: bool,
    jitter: Jitter,
    video_sh: Option<Bytes>,
    audio_sh: Option<Bytes>,
    seen_video: bool,
    /// The stream's audio is MP3 (no sequence header says so; its frames do).
    mp3: bool,
    file: Option<OpenFile>,
    buf: Vec<u8>,
}

impl Mp4Segmenter {
    pub fn new(cfg: &DvrConfig) -> Mp4Segmenter {
        Mp4Segmenter {
            plan: cfg.plan,
            duration_ms: cfg.duration.as_millis() as u64,
            wait_keyframe: cfg.wait_keyframe,
            jitter: Jitter::new(cfg.time_jitter),
            video_sh: None,
            audio_sh: None,
            seen_video: false,
            mp3: false,
            file: None,
            buf: Vec::new(),
        }
    }

    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// The actions one frame calls for.
    pub fn push(&mut self, f: &Frame) -> Vec<Action> {
        let mut actions = Vec::new();
        if f.kind == FrameKind::Script {
            // MP4 has no place for onMetaData; its moov says what a player needs.
            return actions;
        }
        let ts = self.jitter.correct(f.timestamp, true);
        if f.sequence_header {
            let (slot, declared) = match (f.kind, &self.file) {
                (FrameKind::Video, file) => {
                    (&mut self.video_sh, file.as_ref().map(|o| &o.video_sh))
                }
                (_, file) => (&mut self.audio_sh, file.as_ref().map(|o| &o.audio_sh)),
            };
            *slot = Some(f.payload.clone());
            // The same configuration again (encoders repeat it) changes nothing; another
            // one cannot go into this file's moov.
            if declared.is_some_and(|d| d.as_ref() != Some(&f.payload)) {
                actions.extend(self.close());
            }
            return actions;
        }
        if f.is_audio() && !self.mp3 {
            self.mp3 = Fmp4Audio::from_flv(&f.payload) == Some(Fmp4Audio::Mp3);
        }
        let has_video = self.video_sh.is_some() || self.seen_video;
        let key = f.is_video() && f.keyframe;
        match &self.file {
            None => {
                if self.wait_keyframe && has_video && !key {
                    return actions;
                }
                if !self.open(f, ts, &mut actions) {
                    return actions;
                }
            }
            Some(file) => {
                let due = self.plan == DvrPlan::Segment
                    && ts.saturating_sub(file.base) >= self.duration_ms;
                let cut_here = if has_video && self.wait_keyframe {
                    key
                } else {
                    !has_video || f.is_video()
                };
                if due && cut_here {
                    actions.extend(self.close());
                    if !self.open(f, ts, &mut actions) {
                        return actions;
                    }
                }
            }
        }
        self.seen_video |= f.is_video();
        let Some(file) = &mut self.file else {
            return actions;
        };
        file.last = file.last.max(ts);
        let rel = ts.saturating_sub(file.base);
        let carried = match f.kind {
            FrameKind::Video => file.mux.streams().video.is_some(),
            _ => file.mux.streams().audio.is_some(),
        };
        if carried {
            let r = match f.kind {
                FrameKind::Video => file.mux.write_video(rel, &f.payload),
                _ => file.mux.write_audio(rel, &f.payload),
            };
            if let Err(e) = r {
                tracing::debug!("dvr mp4: frame left out: {e}");
            }
        }
        // A keyframe starts the next fragment: what came before it is ready (the muxer
        // keeps each track's newest sample until the next gives its duration).
        if key || file.mux.ready_ms() >= MAX_FRAGMENT_MS {
            self.buf.clear();
            if file.mux.take_fragment(&mut self.buf).is_some() {
                actions.push(Action::Write(std::mem::take(&mut self.buf)));
            }
        }
        actions
    }

    /// Opens a file on `f`: its tracks are what the stream has sent the configuration of
    /// (or, for MP3, frames of). False when no track can be declared yet.
    fn open(&mut self, f: &Frame, ts: u64, actions: &mut Vec<Action>) -> bool {
        let streams = Fmp4Streams {
            video: self.video_sh.as_deref().and_then(Fmp4Video::from_flv),
            audio: self
                .audio_sh
                .as_deref()
                .and_then(Fmp4Audio::from_flv)
                .or(self.mp3.then_some(Fmp4Audio::Mp3)),
        };
        if streams.video.is_none() && streams.audio.is_none() {
            return false;
        }
        let mut mux = Fmp4Muxer::new(streams);
        if let (Some(sh), Some(_)) = (&self.video_sh, streams.video) {
            let _ = mux.write_video(0, sh);
        }
        if let (Some(sh), Some(_)) = (&self.audio_sh, streams.audio) {
            let _ = mux.write_audio(0, sh);
        }
        // MP3 declares its rate and channels with its first frame: the file opens on one,
        // whose header makes the moov (the frame itself is written by the caller, into a
        // muxer that has not seen it).
        if streams.audio == Some(Fmp4Audio::Mp3) && mux.init_segment().is_none() {
            let mut probe = mux.clone();
            if !f.is_audio() || probe.write_audio(0, &f.payload).is_err() {
                return false;
            }
            let Some(init) = probe.init_segment() else {
                return false;
            };
            return self.start(mux, init, ts, actions);
        }
        let Some(init) = mux.init_segment() else {
            return false;
        };
        self.start(mux, init, ts, actions)
    }

    fn start(&mut self, mux: Fmp4Muxer, init: Vec<u8>, ts: u64, actions: &mut Vec<Action>) -> bool {
        actions.push(Action::Open {
            preamble: init,
            duration_at: None,
        });
        self.file = Some(OpenFile {
            base: ts,
            last: ts,
            mux,
            video_sh: self.video_sh.clone(),
            audio_sh: self.audio_sh.clone(),
        });
        true
    }

    /// Ends the current file, if any: its last fragment, then the close.
    pub fn close(&mut self) -> Vec<Action> {
        let Some(mut file) = self.file.take() else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        file.mux.finish();
        let mut out = Vec::new();
        if file.mux.take_fragment(&mut out).is_some() {
            actions.push(Action::Write(out));
        }
        actions.push(Action::Close {
            duration_ms: file.last.saturating_sub(file.base),
        });
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TimeJitter;
    use crate::hub::test_frames::{aac, frame as f, video, video_sh};
    use std::time::Duration;

    fn cfg(plan: DvrPlan, secs: u64) -> DvrConfig {
        DvrConfig {
            enabled: true,
            plan,
            duration: Duration::from_secs(secs),
            time_jitter: TimeJitter::Off,
            ..DvrConfig::default()
        }
    }

    /// Runs `seconds` of 25 fps video (GOP 1 s) and 23 ms audio from `start`; returns the
    /// files as the writer would have them.
    fn record(seg: &mut Mp4Segmenter, start: u64, seconds: u64) -> Vec<(Vec<u8>, u64)> {
        let mut actions = Vec::new();
        actions.extend(seg.push(&video_sh()));
        actions.extend(seg.push(&aac(start, true)));
        let end = start + seconds * 1000;
        let (mut v, mut a) = (start, start);
        while v < end || a < end {
            if v <= a {
                actions.extend(seg.push(&video(v, (v - start).is_multiple_of(1000))));
                v += 40;
            } else {
                actions.extend(seg.push(&aac(a, false)));
                a += 23;
            }
        }
        actions.extend(seg.close());
        let mut files = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        for a in actions {
            match a {
                Action::Open { preamble, .. } => cur = Some(preamble),
                Action::Write(b) => cur.as_mut().expect("open").extend_from_slice(&b),
                Action::Close { duration_ms } => {
                    files.push((cur.take().expect("open"), duration_ms))
                }
            }
        }
        assert!(cur.is_none(), "every file closed");
        files
    }

    fn top_boxes(file: &[u8]) -> Vec<[u8; 4]> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= file.len() {
            let size = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as usize;
            out.push(file[pos + 4..pos + 8].try_into().unwrap());
            assert!(size >= 8 && pos + size <= file.len(), "box within the file");
            pos += size;
        }
        assert_eq!(pos, file.len());
        out
    }

    #[test]
    fn a_session_is_one_fragmented_mp4() {
        let mut seg = Mp4Segmenter::new(&cfg(DvrPlan::Session, 30));
        let files = record(&mut seg, 5000, 4);
        assert_eq!(files.len(), 1);
        let (bytes, duration) = &files[0];
        assert!((3900..=4000).contains(duration), "{duration}");
        let boxes = top_boxes(bytes);
        assert_eq!(&boxes[..2], &[*b"ftyp", *b"moov"]);
        let moofs = boxes.iter().filter(|b| b == &b"moof").count();
        assert_eq!(moofs, boxes.iter().filter(|b| b == &b"mdat").count());
        // One fragment per GOP (4 keyframes; the first opens the file).
        assert!((4..=5).contains(&moofs), "{moofs} fragments");
    }

    #[test]
    fn segments_cut_at_keyframes() {
        let mut seg = Mp4Segmenter::new(&cfg(DvrPlan::Segment, 2));
        let files = record(&mut seg, 0, 7);
        assert_eq!(files.len(), 4, "2 s segments of a 7 s stream");
        for (bytes, _) in &files {
            assert_eq!(&top_boxes(bytes)[..2], &[*b"ftyp", *b"moov"]);
        }
        assert!(files[..3].iter().all(|(_, d)| (1900..=2000).contains(d)));
    }

    #[test]
    fn a_new_codec_configuration_starts_a_new_file() {
        let mut seg = Mp4Segmenter::new(&cfg(DvrPlan::Session, 30));
        let mut actions = seg.push(&video_sh());
        actions.extend(seg.push(&aac(0, true)));
        actions.extend(seg.push(&video(0, true)));
        actions.extend(seg.push(&aac(0, false)));
        // The same header again: nothing happens.
        actions.extend(seg.push(&aac(10, true)));
        assert!(seg.is_open());
        // AAC 48 kHz mono: another moov.
        actions.extend(seg.push(&f(
            FrameKind::Audio,
            20,
            vec![0xaf, 0, 0x11, 0x88],
            false,
            true,
        )));
        assert!(!seg.is_open());
        actions.extend(seg.push(&video(40, true)));
        assert!(seg.is_open());
        let opens = actions
            .iter()
            .filter(|a| matches!(a, Action::Open { .. }))
            .count();
        assert_eq!(opens, 2);
    }

    #[test]
    fn audio_only_mp3_and_aac() {
        // AAC only: fragments every 2 s at most.
        let mut seg = Mp4Segmenter::new(&cfg(DvrPlan::Session, 30));
        let mut actions = seg.push(&aac(0, true));
        for i in 0..300u64 {
            actions.extend(seg.push(&aac(i * 23, false)));
        }
        actions.extend(seg.close());
        let writes = actions
            .iter()
            .filter(|a| matches!(a, Action::Write(_)))
            .count();
        assert!((3..=5).contains(&writes), "{writes} fragments for ~7 s");
        // MP3 only: opens on its first frame.
        let mut seg = Mp4Segmenter::new(&cfg(DvrPlan::Session, 30));
        let mp3 = |ts| {
            f(
                FrameKind::Audio,
                ts,
                vec![0x2f, 0xff, 0xfb, 0x90, 0x64, 0, 0, 0],
                false,
                false,
            )
        };
        let mut actions = Vec::new();
        for i in 0..100u64 {
            actions.extend(seg.push(&mp3(i * 26)));
        }
        actions.extend(seg.close());
        assert!(matches!(actions.first(), Some(Action::Open { .. })));
        assert!(matches!(
            actions.last(),
            Some(Action::Close { duration_ms: 2574 })
        ));
    }
}
