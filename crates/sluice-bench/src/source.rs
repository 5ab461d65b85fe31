//! An FLV file as an endless real-time source: loops with continuous timestamps, so that a
//! server sees one long live stream rather than a clock that jumps back every pass.

use bytes::Bytes;
use media::flv::{read_flv, tag_type};
use rtmp::client::MediaKind;

/// Frame interval assumed when the file has fewer than two video (or audio) tags.
pub const DEFAULT_FRAME_MS: u32 = 40;

#[derive(Debug, Clone, PartialEq)]
pub struct SourceTag {
    pub kind: MediaKind,
    /// Milliseconds from the start of the first pass.
    pub timestamp: u32,
    pub payload: Bytes,
    /// Sequence headers and metadata: sent once, not part of the per-frame accounting.
    pub config: bool,
}

/// The tags of one file, rebased to start at 0.
#[derive(Debug, Clone)]
pub struct LoopSource {
    tags: Vec<SourceTag>,
    /// Added to timestamps on each new pass: the file's duration plus one frame, so the first
    /// frame of a pass follows the last of the previous one by a normal frame interval.
    pass_ms: u32,
}

/// Whether a payload is codec configuration (or end of sequence) rather than a frame: the
/// server stores and re-sends these on its own schedule, so they cannot be matched in order.
pub fn is_config(kind: MediaKind, payload: &[u8]) -> bool {
    match kind {
        MediaKind::Metadata => true,
        MediaKind::Video => {
            let Some(&first) = payload.first() else {
                return false;
            };
            if first & 0x80 != 0 {
                // Enhanced RTMP: packet type in the low nibble; 0 = sequence start,
                // 2 = sequence end, 4 = multichannel config, 5 = metadata.
                return matches!(first & 0x0f, 0 | 2 | 4 | 5);
            }
            // AVC (7) and HEVC as nginx/SRS send it (12): AVCPacketType 0 = sequence header,
            // 2 = end of sequence.
            matches!(first & 0x0f, 7 | 12) && matches!(payload.get(1), Some(0 | 2))
        }
        MediaKind::Audio => {
            // AAC (10): AACPacketType 0 = AudioSpecificConfig.
            payload.first().map(|b| b >> 4) == Some(10) && payload.get(1) == Some(&0)
        }
    }
}

/// Why an FLV file cannot be looped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Flv(#[from] media::flv::FlvError),
    #[error("the FLV file holds no tags")]
    NoTags,
    #[error("the FLV file holds no audio or video frames")]
    NoFrames,
}

impl LoopSource {
    pub fn from_flv(data: Bytes) -> Result<LoopSource, SourceError> {
        let (_, tags) = read_flv(data)?;
        let tags: Vec<(MediaKind, u32, Bytes)> = tags
            .into_iter()
            .filter_map(|t| {
                let kind = match t.tag_type {
                    tag_type::AUDIO => MediaKind::Audio,
                    tag_type::VIDEO => MediaKind::Video,
                    tag_type::SCRIPT => MediaKind::Metadata,
                    _ => return None,
                };
                Some((kind, t.timestamp, t.data))
            })
            .collect();
        LoopSource::new(tags)
    }

    pub fn new(tags: Vec<(MediaKind, u32, Bytes)>) -> Result<LoopSource, SourceError> {
        let first = tags.iter().map(|t| t.1).min().ok_or(SourceError::NoTags)?;
        let tags: Vec<SourceTag> = tags
            .into_iter()
            .map(|(kind, ts, payload)| SourceTag {
                config: is_config(kind, &payload),
                kind,
                timestamp: ts - first,
                payload,
            })
            .collect();
        if !tags.iter().any(|t| !t.config) {
            return Err(SourceError::NoFrames);
        }
        let last = tags.iter().map(|t| t.timestamp).max().unwrap_or(0);
        let pass_ms = last.saturating_add(frame_interval(&tags));
        Ok(LoopSource { tags, pass_ms })
    }

    pub fn pass_ms(&self) -> u32 {
        self.pass_ms
    }

    pub fn tags(&self) -> &[SourceTag] {
        &self.tags
    }

    /// Average bit rate of the file's payloads, in kbps.
    pub fn kbps(&self) -> f64 {
        let bytes: u64 = self.tags.iter().map(|t| t.payload.len() as u64).sum();
        crate::stats::kbps(
            bytes,
            std::time::Duration::from_millis(u64::from(self.pass_ms)),
        )
    }

    /// The endless sequence of tags: the first pass whole, later passes without the config
    /// tags (a real encoder sends its sequence headers once), each pass shifted by
    /// [`Self::pass_ms`].
    pub fn iter(&self) -> impl Iterator<Item = SourceTag> + '_ {
        (0u32..).flat_map(move |pass| {
            let offset = pass.saturating_mul(self.pass_ms);
            self.tags
                .iter()
                .filter(move |t| pass == 0 || !t.config)
                .map(move |t| SourceTag {
                    timestamp: t.timestamp.saturating_add(offset),
                    ..t.clone()
                })
        })
    }
}

/// The most common gap between consecutive video frames (audio when there is no video).
fn frame_interval(tags: &[SourceTag]) -> u32 {
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let ts: Vec<u32> = tags
            .iter()
            .filter(|t| t.kind == kind && !t.config)
            .map(|t| t.timestamp)
            .collect();
        let mut gaps: Vec<u32> = ts
            .windows(2)
            .filter_map(|w| w[1].checked_sub(w[0]))
            .filter(|&g| g > 0)
            .collect();
        if gaps.is_empty() {
            continue;
        }
        gaps.sort_unstable();
        // Mode of the sorted gaps.
        let mut best = (gaps[0], 0usize);
        let mut run = (gaps[0], 0usize);
        for &g in &gaps {
            if g == run.0 {
                run.1 += 1;
            } else {
                run = (g, 1);
            }
            if run.1 > best.1 {
                best = run;
            }
        }
        return best.0;
    }
    DEFAULT_FRAME_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(ts: u32, key: bool, n: u8) -> (MediaKind, u32, Bytes) {
        let first = if key { 0x17 } else { 0x27 };
        (
            MediaKind::Video,
            ts,
            Bytes::from(vec![first, 1, 0, 0, 0, n]),
        )
    }

    fn sample() -> Vec<(MediaKind, u32, Bytes)> {
        vec![
            (
                MediaKind::Metadata,
                0,
                Bytes::from_static(b"\x02\x00\x0aonMetaData"),
            ),
            (
                MediaKind::Video,
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
            ),
            (
                MediaKind::Audio,
                0,
                Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
            ),
            video(1000, true, 1),
            (MediaKind::Audio, 1010, Bytes::from_static(&[0xaf, 1, 9])),
            video(1040, false, 2),
            video(1080, false, 3),
            video(1120, false, 4),
        ]
    }

    #[test]
    fn config_detection() {
        assert!(is_config(MediaKind::Video, &[0x17, 0, 0, 0, 0]));
        assert!(is_config(MediaKind::Video, &[0x17, 2, 0, 0, 0]));
        assert!(!is_config(MediaKind::Video, &[0x17, 1, 0, 0, 0]));
        assert!(!is_config(MediaKind::Video, &[0x27, 1]));
        assert!(!is_config(MediaKind::Video, &[]));
        assert!(is_config(MediaKind::Video, &[0x90, b'h', b'v', b'c', b'1']));
        assert!(!is_config(
            MediaKind::Video,
            &[0x91, b'h', b'v', b'c', b'1']
        ));
        assert!(is_config(MediaKind::Audio, &[0xaf, 0, 0x12]));
        assert!(!is_config(MediaKind::Audio, &[0xaf, 1, 0x12]));
        assert!(
            !is_config(MediaKind::Audio, &[0x2f, 0]),
            "MP3 has no config"
        );
        assert!(is_config(MediaKind::Metadata, &[]));
    }

    #[test]
    fn rebased_and_pass_length_is_duration_plus_one_frame() {
        let s = LoopSource::new(sample()).unwrap();
        // Rebased: first tag at 0, last at 1120; video frame interval 40.
        assert_eq!(s.tags()[0].timestamp, 0);
        assert_eq!(s.pass_ms(), 1120 + 40);
    }

    #[test]
    fn looping_keeps_timestamps_continuous() {
        let s = LoopSource::new(sample()).unwrap();
        let per_pass_frames = 5; // config tags only on the first pass
        let tags: Vec<SourceTag> = s.iter().take(3 + per_pass_frames * 3).collect();
        // Pass 2 starts with the keyframe one frame after pass 1's last frame.
        let second = &tags[3 + per_pass_frames];
        assert_eq!(second.kind, MediaKind::Video);
        assert_eq!(second.timestamp, 1000 + 1160);
        assert_eq!(tags[3 + per_pass_frames - 1].timestamp, 1120);
        assert!(tags.iter().skip(3).all(|t| !t.config));
        for kind in [MediaKind::Video, MediaKind::Audio] {
            let ts: Vec<u32> = tags
                .iter()
                .filter(|t| t.kind == kind && !t.config)
                .map(|t| t.timestamp)
                .collect();
            assert!(ts.windows(2).all(|w| w[1] > w[0]), "{kind:?}: {ts:?}");
        }
        // Third pass: offset twice.
        assert_eq!(tags[3 + 2 * per_pass_frames].timestamp, 1000 + 2 * 1160);
    }

    #[test]
    fn fixture_is_about_500_kbps() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/avc-aac-640x360-10s.flv"
        );
        let s = LoopSource::from_flv(Bytes::from(std::fs::read(path).unwrap())).unwrap();
        let kbps = s.kbps();
        assert!((400.0..600.0).contains(&kbps), "{kbps}");
        let ts: Vec<u32> = s
            .iter()
            .take(s.tags().len() * 3)
            .filter(|t| t.kind == MediaKind::Video && !t.config)
            .map(|t| t.timestamp)
            .collect();
        assert!(ts.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn empty_or_config_only_is_an_error() {
        assert!(LoopSource::new(vec![]).is_err());
        assert!(LoopSource::new(vec![(MediaKind::Metadata, 0, Bytes::new())]).is_err());
    }
}
