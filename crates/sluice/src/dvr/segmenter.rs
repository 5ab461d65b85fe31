//! Decides where DVR files start and end and what bytes go in them; no I/O, so the plans
//! are tested with frames in memory.
//!
//! Every file is playable on its own: it starts with the FLV header, the latest metadata and
//! sequence headers, and (with `dvr_wait_keyframe on`) a video keyframe; its timestamps start
//! at zero. The metadata is rewritten with a `duration` placeholder as its last property so the
//! writer can patch the real duration in place on close, which is what players and ffprobe
//! read for a VOD file.

use amf::Amf0Value;
use bytes::Bytes;

use crate::config::{DvrConfig, DvrPlan};
use crate::hub::jitter::Jitter;
use crate::hub::{Frame, FrameKind};

/// What the writer must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a new file with these bytes. `duration_at` is the offset of the metadata's
    /// `duration` (an 8-byte big-endian double) in the file, when there is one.
    Open {
        preamble: Vec<u8>,
        duration_at: Option<u64>,
    },
    Write(Vec<u8>),
    /// Finish the current file.
    Close {
        duration_ms: u64,
    },
}

#[derive(Debug)]
struct OpenFile {
    base: u64,
    last: u64,
}

#[derive(Debug)]
pub struct Segmenter {
    plan: DvrPlan,
    duration_ms: u64,
    wait_keyframe: bool,
    jitter: Jitter,
    metadata: Option<Bytes>,
    video_sh: Option<Bytes>,
    audio_sh: Option<Bytes>,
    seen_audio: bool,
    seen_video: bool,
    file: Option<OpenFile>,
}

fn tag(out: &mut Vec<u8>, kind: u8, ts: u64, data: &[u8]) {
    // FLV has 32-bit timestamps: a file longer than 49 days wraps, as any FLV writer does.
    media::flv::write_tag(out, kind, ts as u32, data);
}

/// `onMetaData` with `duration` last; None when the payload is not the usual shape.
fn metadata_with_duration(payload: &[u8]) -> Option<(Vec<u8>, usize)> {
    let values = amf::decode_all(payload).ok()?;
    let pos = values
        .iter()
        .position(|v| v.as_str() == Some("onMetaData"))?;
    let props = values.get(pos + 1)?.properties()?;
    let mut kept: Vec<(String, Amf0Value)> = props
        .iter()
        .filter(|(k, _)| k != "duration" && k != "filesize")
        .cloned()
        .collect();
    kept.push(("duration".to_string(), Amf0Value::Number(0.0)));
    let mut out = Vec::new();
    Amf0Value::string("onMetaData").encode(&mut out);
    Amf0Value::EcmaArray(kept).encode(&mut out);
    // The array ends with the double of "duration" and the 3-byte object-end marker.
    let at = out.len().checked_sub(3 + 8)?;
    (out.get(at.checked_sub(1)?) == Some(&0x00)).then_some((out, at))
}

impl Segmenter {
    pub fn new(cfg: &DvrConfig) -> Segmenter {
        Segmenter {
            plan: cfg.plan,
            duration_ms: cfg.duration.as_millis() as u64,
            wait_keyframe: cfg.wait_keyframe,
            jitter: Jitter::new(cfg.time_jitter),
            metadata: None,
            video_sh: None,
            audio_sh: None,
            seen_audio: false,
            seen_video: false,
            file: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    fn preamble(&self, first: &Frame) -> (Vec<u8>, Option<u64>) {
        let header = media::flv::FlvHeader {
            has_audio: self.audio_sh.is_some() || self.seen_audio || first.is_audio(),
            has_video: self.video_sh.is_some() || self.seen_video || first.is_video(),
        };
        let mut out = header.encode().to_vec();
        let mut duration_at = None;
        if let Some(m) = &self.metadata {
            match metadata_with_duration(m) {
                Some((data, at)) => {
                    duration_at = Some((out.len() + media::flv::TAG_HEADER_LEN + at) as u64);
                    tag(&mut out, media::flv::tag_type::SCRIPT, 0, &data);
                }
                None => tag(&mut out, media::flv::tag_type::SCRIPT, 0, m),
            }
        }
        if let Some(v) = &self.video_sh {
            tag(&mut out, media::flv::tag_type::VIDEO, 0, v);
        }
        if let Some(a) = &self.audio_sh {
            tag(&mut out, media::flv::tag_type::AUDIO, 0, a);
        }
        (out, duration_at)
    }

    fn open(&mut self, f: &Frame, ts: u64, actions: &mut Vec<Action>) {
        let (preamble, duration_at) = self.preamble(f);
        actions.push(Action::Open {
            preamble,
            duration_at,
        });
        self.file = Some(OpenFile { base: ts, last: ts });
    }

    /// The actions one frame calls for.
    pub fn push(&mut self, f: &Frame) -> Vec<Action> {
        let mut actions = Vec::new();
        let ts = self
            .jitter
            .correct(f.timestamp, f.kind != FrameKind::Script);
        if f.sequence_header || f.kind == FrameKind::Script {
            match f.kind {
                FrameKind::Video => self.video_sh = Some(f.payload.clone()),
                FrameKind::Audio => self.audio_sh = Some(f.payload.clone()),
                FrameKind::Script => self.metadata = Some(f.payload.clone()),
            }
            // A header change mid-file goes into the file where it happened.
            if let Some(file) = &self.file {
                let mut out = Vec::new();
                tag(
                    &mut out,
                    f.kind.type_id(),
                    file.last.saturating_sub(file.base),
                    &f.payload,
                );
                actions.push(Action::Write(out));
            }
            return actions;
        }
        let has_video = self.video_sh.is_some() || self.seen_video;
        let key = f.is_video() && f.keyframe;
        match &self.file {
            None => {
                if self.wait_keyframe && has_video && !key {
                    return actions;
                }
                self.open(f, ts, &mut actions);
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
                    if let Some(c) = self.close() {
                        actions.push(c);
                    }
                    self.open(f, ts, &mut actions);
                }
            }
        }
        self.seen_audio |= f.is_audio();
        self.seen_video |= f.is_video();
        if let Some(file) = &mut self.file {
            file.last = file.last.max(ts);
            let mut out = Vec::new();
            tag(
                &mut out,
                f.kind.type_id(),
                ts.saturating_sub(file.base),
                &f.payload,
            );
            actions.push(Action::Write(out));
        }
        actions
    }

    /// Ends the current file, if any (end of publish, or recording stopped).
    pub fn close(&mut self) -> Option<Action> {
        self.file.take().map(|f| Action::Close {
            duration_ms: f.last.saturating_sub(f.base),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TimeJitter;
    use std::time::Duration;

    fn frame(kind: FrameKind, ts: u64, key: bool, sh: bool) -> Frame {
        let payload: &[u8] = match (kind, sh, key) {
            (FrameKind::Video, true, _) => &[0x17, 0, 0, 0, 0, 1, 2, 3],
            (FrameKind::Video, false, true) => &[0x17, 1, 0, 0, 0, 9],
            (FrameKind::Video, false, false) => &[0x27, 1, 0, 0, 0, 9],
            (FrameKind::Audio, true, _) => &[0xaf, 0, 0x12, 0x10],
            (FrameKind::Audio, false, _) => &[0xaf, 1, 7],
            (FrameKind::Script, _, _) => &[],
        };
        Frame {
            kind,
            timestamp: ts,
            payload: Bytes::copy_from_slice(payload),
            keyframe: key,
            sequence_header: sh,
        }
    }

    fn metadata() -> Frame {
        let mut p = Vec::new();
        Amf0Value::string("onMetaData").encode(&mut p);
        Amf0Value::EcmaArray(vec![
            ("duration".into(), Amf0Value::Number(0.0)),
            ("width".into(), Amf0Value::Number(640.0)),
            ("filesize".into(), Amf0Value::Number(0.0)),
        ])
        .encode(&mut p);
        Frame {
            kind: FrameKind::Script,
            timestamp: 0,
            payload: Bytes::from(p),
            keyframe: false,
            sequence_header: false,
        }
    }

    fn cfg(plan: DvrPlan, secs: u64) -> DvrConfig {
        DvrConfig {
            enabled: true,
            plan,
            duration: Duration::from_secs(secs),
            time_jitter: TimeJitter::Off,
            ..DvrConfig::default()
        }
    }

    /// 25 fps video with a keyframe every `gop` frames and audio every 23 ms, from `start` ms.
    fn stream(seg: &mut Segmenter, start: u64, ms: u64, gop: u64) -> Vec<Action> {
        let mut out = Vec::new();
        for f in [
            metadata(),
            frame(FrameKind::Video, start, false, true),
            frame(FrameKind::Audio, start, false, true),
        ] {
            out.extend(seg.push(&f));
        }
        let (mut v, mut a, mut n) = (start, start, 0u64);
        while v < start + ms {
            if a <= v {
                out.extend(seg.push(&frame(FrameKind::Audio, a, false, false)));
                a += 23;
            } else {
                out.extend(seg.push(&frame(FrameKind::Video, v, n % gop == 0, false)));
                v += 40;
                n += 1;
            }
        }
        out.extend(seg.close());
        out
    }

    /// Splits actions into files: (bytes, duration_ms).
    fn files(actions: &[Action]) -> Vec<(Vec<u8>, Option<u64>, u64)> {
        let mut files = Vec::new();
        let mut cur: Option<(Vec<u8>, Option<u64>)> = None;
        for a in actions {
            match a {
                Action::Open {
                    preamble,
                    duration_at,
                } => {
                    assert!(cur.is_none(), "open while a file is open");
                    cur = Some((preamble.clone(), *duration_at));
                }
                Action::Write(b) => cur.as_mut().expect("write without open").0.extend(b),
                Action::Close { duration_ms } => {
                    let (b, d) = cur.take().expect("close without open");
                    files.push((b, d, *duration_ms));
                }
            }
        }
        assert!(cur.is_none());
        files
    }

    /// Tags of an FLV file, checked to parse cleanly.
    fn tags(file: &[u8]) -> Vec<media::flv::FlvTag> {
        let (h, tags) = media::flv::read_flv(Bytes::copy_from_slice(file)).expect("valid flv");
        assert!(h.has_video && h.has_audio);
        tags
    }

    #[test]
    fn session_is_one_playable_file() {
        let mut seg = Segmenter::new(&cfg(DvrPlan::Session, 30));
        let actions = stream(&mut seg, 5000, 10_000, 50);
        let files = files(&actions);
        assert_eq!(files.len(), 1);
        let (bytes, duration_at, duration) = &files[0];
        assert!((9_900..=10_000).contains(duration), "{duration}");
        let t = tags(bytes);
        assert_eq!(t[0].tag_type, media::flv::tag_type::SCRIPT);
        assert!(t[1].tag_type == media::flv::tag_type::VIDEO && t[1].timestamp == 0);
        assert_eq!(t[2].tag_type, media::flv::tag_type::AUDIO);
        // The first coded video frame is a keyframe at time zero.
        let first_video = t.iter().skip(3).find(|t| t.tag_type == 9).unwrap();
        assert_eq!(first_video.data.first(), Some(&0x17));
        assert_eq!(first_video.timestamp, 0);
        // The duration placeholder is where the writer will patch it.
        let at = duration_at.unwrap() as usize;
        assert_eq!(&bytes[at..at + 8], &0f64.to_be_bytes());
        let meta = amf::decode_all(&t[0].data).unwrap();
        let props = meta[1].properties().unwrap();
        assert_eq!(props.last().unwrap().0, "duration");
        assert!(props.iter().all(|(k, _)| k != "filesize"));
        assert!(props.iter().any(|(k, _)| k == "width"));
    }

    #[test]
    fn segments_cut_at_keyframes_and_add_up() {
        let mut seg = Segmenter::new(&cfg(DvrPlan::Segment, 3));
        // keyframe every 2 s: cuts at 4 s and 8 s.
        let actions = stream(&mut seg, 0, 10_000, 50);
        let files = files(&actions);
        assert_eq!(
            files.len(),
            3,
            "{:?}",
            files.iter().map(|f| f.2).collect::<Vec<_>>()
        );
        let total: u64 = files.iter().map(|f| f.2).sum();
        assert!((9_800..=10_000).contains(&total), "{total}");
        for (bytes, _, _) in &files {
            let t = tags(bytes);
            // header, sequence headers, then a keyframe at zero
            assert_eq!(t[0].tag_type, media::flv::tag_type::SCRIPT);
            assert_eq!(t[1].tag_type, media::flv::tag_type::VIDEO);
            assert_eq!(t[2].tag_type, media::flv::tag_type::AUDIO);
            let v = t.iter().skip(3).find(|t| t.tag_type == 9).unwrap();
            assert_eq!((v.data.first(), v.timestamp), (Some(&0x17), 0));
        }
    }

    #[test]
    fn waits_for_a_keyframe() {
        let mut seg = Segmenter::new(&cfg(DvrPlan::Session, 30));
        seg.push(&frame(FrameKind::Video, 0, false, true));
        assert!(seg
            .push(&frame(FrameKind::Video, 40, false, false))
            .is_empty());
        assert!(seg
            .push(&frame(FrameKind::Audio, 50, false, false))
            .is_empty());
        let a = seg.push(&frame(FrameKind::Video, 80, true, false));
        assert!(matches!(a.first(), Some(Action::Open { .. })));
        assert!(seg.is_open());
    }

    #[test]
    fn audio_only_segments_cut_anywhere() {
        let mut seg = Segmenter::new(&cfg(DvrPlan::Segment, 1));
        let mut actions = seg.push(&frame(FrameKind::Audio, 0, false, true));
        for i in 0..100 {
            actions.extend(seg.push(&frame(FrameKind::Audio, i * 23, false, false)));
        }
        actions.extend(seg.close());
        let files = files(&actions);
        assert_eq!(files.len(), 3);
        for (bytes, duration_at, _) in &files {
            assert!(duration_at.is_none());
            let (h, _) = media::flv::read_flv(Bytes::copy_from_slice(bytes)).unwrap();
            assert!(h.has_audio && !h.has_video);
        }
    }

    #[test]
    fn hostile_metadata_is_kept_as_is() {
        for payload in [&b""[..], &[0x02, 0xff][..], &[0x02, 0, 1, b'x', 0x00][..]] {
            assert!(metadata_with_duration(payload).is_none());
        }
    }
}
