//! The HLS decisions that need no I/O: when to cut a segment, which tracks a stream has, and
//! which segments the live playlist lists. The service feeds these with frames and times and
//! does the file work itself (see `writer.rs`).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use media::hls::{MediaPlaylist, Segment, SegmentKey};

/// SRS never cuts a segment shorter than 2 x 100 ms (`SRS_HLS_SEGMENT_MIN_DURATION`).
pub const MIN_CUT_MS: u64 = 200;
/// A closed segment shorter than this is dropped rather than listed (SRS does the same).
pub const MIN_SEGMENT_MS: u64 = 100;
/// How much media the probe waits for before it gives up on the missing track.
pub const PROBE_MAX_MS: u64 = 1_000;
pub const PROBE_MAX_FRAMES: usize = 100;

/// What kind of frame arrives, as far as cutting cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    Keyframe,
    Video,
    Audio,
}

/// SRS's cut rule (`is_segment_overflow` / `is_segment_absolutely_overflow`):
/// - a video frame cuts once the segment reached `fragment x td_ratio`, at a keyframe when
///   `hls_wait_keyframe` is on, at any frame otherwise;
/// - an audio frame cuts once the segment reached `fragment x aof_ratio` (this is how pure
///   audio is segmented, and the safety net of a video stream without keyframes).
///
/// One addition: a video frame also cuts at `fragment x aof_ratio`, so a video-only stream
/// whose keyframes stop cannot grow one segment forever (SRS would).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutPolicy {
    pub td_ms: u64,
    pub aof_ms: u64,
    pub wait_keyframe: bool,
}

impl CutPolicy {
    pub fn new(fragment: Duration, td_ratio: f64, aof_ratio: f64, wait_keyframe: bool) -> Self {
        let frag = fragment.as_secs_f64() * 1000.0;
        CutPolicy {
            td_ms: (frag * td_ratio.max(1.0)).round() as u64,
            aof_ms: (frag * aof_ratio.max(1.0)).round() as u64,
            wait_keyframe,
        }
    }

    /// Whether `frame`, arriving `elapsed_ms` after the current segment started, starts a new one.
    pub fn should_cut(&self, elapsed_ms: u64, frame: FrameClass) -> bool {
        if elapsed_ms < MIN_CUT_MS {
            return false;
        }
        match frame {
            FrameClass::Audio => elapsed_ms >= self.aof_ms,
            FrameClass::Keyframe => elapsed_ms >= self.td_ms,
            FrameClass::Video => {
                elapsed_ms >= self.aof_ms || (!self.wait_keyframe && elapsed_ms >= self.td_ms)
            }
        }
    }
}

impl CutPolicy {
    /// The cut rule under ATC (absolute time): segments follow slots of the absolute
    /// clock, `hls_fragment` long, so that two origins fed by one encoder cut at the same
    /// frames whenever each started. A frame cuts when its slot is past the segment's and
    /// it is a place to cut (a keyframe; any video frame without `hls_wait_keyframe`;
    /// audio in an audio-only stream). The overflow safety net (`fragment x aof_ratio`)
    /// stays, for streams without keyframes. No 200 ms floor: it would depend on where
    /// an origin started.
    pub fn should_cut_atc(
        &self,
        fragment_ms: u64,
        start_dts: u64,
        ts: u64,
        frame: FrameClass,
        has_video: bool,
    ) -> bool {
        let boundary = atc_slot(ts, fragment_ms) > atc_slot(start_dts, fragment_ms)
            && match frame {
                FrameClass::Keyframe => true,
                FrameClass::Video => !self.wait_keyframe,
                FrameClass::Audio => !has_video,
            };
        let elapsed = ts.saturating_sub(start_dts);
        boundary || elapsed >= self.aof_ms.max(MIN_CUT_MS)
    }
}

/// The slot of the absolute clock a timestamp falls in, under ATC: its segment's number.
pub fn atc_slot(ts: u64, fragment_ms: u64) -> u64 {
    ts / fragment_ms.max(1)
}

/// Which tracks the muxer is created with. TS declares its streams in the PMT once, so the
/// service waits a little for both before muxing (and for audio-only or video-only streams
/// gives up after [`PROBE_MAX_MS`] or [`PROBE_MAX_FRAMES`]).
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub video: bool,
    pub video_header: bool,
    pub audio: bool,
    first_ts: Option<u64>,
    last_ts: u64,
    frames: usize,
}

impl Probe {
    pub fn see(&mut self, ts: u64, is_video: bool, sequence_header: bool) {
        self.first_ts.get_or_insert(ts);
        self.last_ts = self.last_ts.max(ts);
        self.frames += 1;
        if is_video {
            self.video = true;
            self.video_header |= sequence_header;
        } else {
            self.audio = true;
        }
    }

    /// True when the tracks are known well enough to write the PMT.
    pub fn ready(&self, want_video: bool, want_audio: bool) -> bool {
        let video_done = !want_video || self.video_header;
        let audio_done = !want_audio || self.audio;
        if video_done && audio_done && self.frames > 0 {
            return true;
        }
        let span = self
            .last_ts
            .saturating_sub(self.first_ts.unwrap_or(self.last_ts));
        span >= PROBE_MAX_MS || self.frames >= PROBE_MAX_FRAMES
    }
}

/// A step back larger than this within one track is a new timeline, not jitter
/// (SRS's `CONST_MAX_JITTER_MS`: FLV timestamps are DTS, monotonic per track).
pub const MAX_BACKWARD_MS: u64 = 250;
/// A step forward longer than this many target durations within one track is a jump of the
/// publisher's clock: players would stall on it, so it starts a new timeline.
pub const JUMP_TARGETS: u64 = 3;
/// The smallest forward jump threshold, for tiny fragments: a slow slideshow or a short
/// network stall must not make discontinuities.
pub const MIN_JUMP_MS: u64 = 5_000;
/// A skip is only blamed on a slow disk when the writer was behind for at least the skipped
/// span of media, less this much (the publisher may send a little ahead of real time).
pub const SKIP_SLACK_MS: u64 = 2_000;

/// How a track's timestamp moved from its previous frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jump {
    Forward(u64),
    Backward(u64),
}

/// Detects publisher timestamp jumps, per track (audio and video interleave loosely, so
/// they are never compared with each other).
#[derive(Debug, Clone)]
pub struct JumpDetector {
    forward_ms: u64,
    last_video: Option<u64>,
    last_audio: Option<u64>,
}

impl JumpDetector {
    /// `td_ms` is the segment target (`hls_fragment x hls_td_ratio`).
    pub fn new(td_ms: u64) -> Self {
        JumpDetector {
            forward_ms: td_ms.saturating_mul(JUMP_TARGETS).max(MIN_JUMP_MS),
            last_video: None,
            last_audio: None,
        }
    }

    /// Records a frame and says whether its track jumped to get there.
    pub fn see(&mut self, ts: u64, is_video: bool) -> Option<Jump> {
        let last = if is_video {
            &mut self.last_video
        } else {
            &mut self.last_audio
        };
        let prev = last.replace(ts)?;
        if ts > prev.saturating_add(self.forward_ms) {
            Some(Jump::Forward(ts - prev))
        } else if prev > ts.saturating_add(MAX_BACKWARD_MS) {
            Some(Jump::Backward(prev - ts))
        } else {
            None
        }
    }

    /// Forgets the previous frames (after media was skipped, which is handled on its own).
    pub fn reset(&mut self) {
        self.last_video = None;
        self.last_audio = None;
    }
}

/// Why the hub moved the writer forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipCause {
    /// The writer was behind for as long as the media it lost: the disk is too slow.
    SlowWriter,
    /// The writer was caught up moments ago, so the lag is the publisher's clock jumping.
    TimestampJump,
}

/// `lag_ms` is the media span the hub reported skipped; `behind_ms` how long (wall clock)
/// since the writer last reached the newest media.
pub fn skip_cause(lag_ms: u64, behind_ms: u64) -> SkipCause {
    if lag_ms > behind_ms.saturating_add(SKIP_SLACK_MS) {
        SkipCause::TimestampJump
    } else {
        SkipCause::SlowWriter
    }
}

/// One closed segment as the playlist knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub uri: String,
    pub path: PathBuf,
    pub duration_ms: u64,
    pub discontinuity: bool,
    /// The key that encrypts it (`hls_keys`): its file, its URI and the segment's IV.
    pub key: Option<EntryKey>,
    /// Its init segment (`hls_use_fmp4`): the file and the URI `EXT-X-MAP` gives.
    pub map: Option<EntryMap>,
}

/// An fMP4 segment's init segment.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryMap {
    pub path: PathBuf,
    pub uri: String,
}

/// A segment's encryption: the key file to remove with the last segment that uses it, and
/// what the playlist says (`EXT-X-KEY`).
#[derive(Debug, Clone, PartialEq)]
pub struct EntryKey {
    pub path: PathBuf,
    pub playlist: SegmentKey,
}

/// The live window: segments listed in the playlist, the sequence numbers, and the target
/// duration (which only grows, as RFC 8216 §6.2.1 forbids changing it in a live playlist;
/// growing is the least bad when a segment overshoots).
#[derive(Debug, Clone)]
pub struct Window {
    segments: VecDeque<Entry>,
    media_sequence: u64,
    discontinuity_sequence: u64,
    target: u64,
    window_ms: u64,
}

impl Window {
    /// `target` is `ceil(fragment x td_ratio)`; `window` is `hls_window`.
    pub fn new(fragment: Duration, td_ratio: f64, window: Duration) -> Self {
        let target = (fragment.as_secs_f64() * td_ratio.max(1.0)).ceil().max(1.0) as u64;
        Window {
            segments: VecDeque::new(),
            media_sequence: 0,
            discontinuity_sequence: 0,
            target,
            window_ms: window.as_millis() as u64,
        }
    }

    /// Sequence number the next segment gets (one past the last; under ATC a segment may
    /// take a higher one, see [`Window::push`]).
    pub fn next_seq(&self) -> u64 {
        self.segments
            .back()
            .map_or(self.media_sequence, |s| s.seq + 1)
    }

    pub fn segments(&self) -> impl Iterator<Item = &Entry> {
        self.segments.iter()
    }

    pub fn target(&self) -> u64 {
        self.target
    }

    pub fn total_ms(&self) -> u64 {
        self.segments.iter().map(|s| s.duration_ms).sum()
    }

    /// Adds a closed segment and returns the ones that left the window. A head segment
    /// leaves only while what remains still covers `hls_window` and three target durations
    /// (RFC 8216 §6.2.2: a live playlist never gets shorter than 3 x target duration).
    pub fn push(&mut self, entry: Entry) -> Vec<Entry> {
        self.target = self.target.max(entry.duration_ms.div_ceil(1000));
        if self.segments.is_empty() {
            // The playlist's media sequence is its first segment's number (they are
            // consecutive, except under ATC when a slot of the clock had no segment).
            self.media_sequence = entry.seq;
        }
        self.segments.push_back(entry);
        let keep_ms = self.window_ms.max(self.target * 3000);
        let mut total = self.total_ms();
        let mut removed = Vec::new();
        while let Some(head) = self.segments.front() {
            let rest = total - head.duration_ms;
            if rest < keep_ms || self.segments.len() <= 1 {
                break;
            }
            total = rest;
            if let Some(h) = self.segments.pop_front() {
                self.media_sequence = self.segments.front().map_or(h.seq + 1, |f| f.seq);
                if h.discontinuity {
                    self.discontinuity_sequence += 1;
                }
                removed.push(h);
            }
        }
        removed
    }

    /// Removes everything (dispose); the sequence numbers stay.
    pub fn drain(&mut self) -> Vec<Entry> {
        let next = self.next_seq();
        let out: Vec<Entry> = self.segments.drain(..).collect();
        self.discontinuity_sequence += out.iter().filter(|e| e.discontinuity).count() as u64;
        self.media_sequence = next;
        out
    }

    pub fn playlist(&self, ended: bool) -> MediaPlaylist {
        MediaPlaylist {
            target_duration: self.target,
            media_sequence: self.media_sequence,
            discontinuity_sequence: self.discontinuity_sequence,
            segments: self
                .segments
                .iter()
                .map(|e| Segment {
                    uri: e.uri.clone(),
                    duration: e.duration_ms as f64 / 1000.0,
                    sequence: e.seq,
                    discontinuity: e.discontinuity,
                    program_date_time_ms: None,
                    key: e.key.as_ref().map(|k| k.playlist.clone()),
                    map: e.map.as_ref().map(|m| m.uri.clone()),
                    parts: Vec::new(),
                })
                .collect(),
            ended,
            low_latency: None,
            pending_parts: Vec::new(),
            preload_hint: None,
            skipped_segments: 0,
        }
    }
}

/// The URI of a segment in the playlist: its path relative to the playlist's directory
/// (both under the same root), behind `hls_entry_prefix` when one is set.
pub fn segment_uri(
    playlist_rel: &std::path::Path,
    segment_rel: &std::path::Path,
    prefix: &str,
) -> String {
    let pdir: Vec<_> = playlist_rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    let seg: Vec<_> = segment_rel.components().collect();
    let common = pdir.iter().zip(&seg).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = Vec::new();
    if prefix.is_empty() {
        parts.extend(std::iter::repeat_n("..".to_string(), pdir.len() - common));
        parts.extend(
            seg[common..]
                .iter()
                .map(|c| c.as_os_str().to_string_lossy().into_owned()),
        );
        return parts.join("/");
    }
    // With a prefix the URL is absolute: the prefix stands for the output root.
    let rel: Vec<String> = seg
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    format!("{}/{}", prefix.trim_end_matches('/'), rel.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn entry(seq: u64, ms: u64, disc: bool) -> Entry {
        Entry {
            seq,
            uri: format!("s-{seq}.ts"),
            path: PathBuf::from(format!("s-{seq}.ts")),
            duration_ms: ms,
            discontinuity: disc,
            key: None,
            map: None,
        }
    }

    #[test]
    fn cut_rule_follows_srs() {
        let p = CutPolicy::new(Duration::from_secs(10), 1.0, 2.1, true);
        assert_eq!((p.td_ms, p.aof_ms), (10_000, 21_000));
        assert!(!p.should_cut(9_999, FrameClass::Keyframe));
        assert!(p.should_cut(10_000, FrameClass::Keyframe));
        assert!(
            !p.should_cut(15_000, FrameClass::Video),
            "waits for a keyframe"
        );
        assert!(!p.should_cut(20_999, FrameClass::Audio));
        assert!(p.should_cut(21_000, FrameClass::Audio), "audio overflow");
        assert!(
            p.should_cut(21_000, FrameClass::Video),
            "no keyframe for too long"
        );
        let nowait = CutPolicy::new(Duration::from_secs(10), 1.0, 2.1, false);
        assert!(nowait.should_cut(10_000, FrameClass::Video));
        let tiny = CutPolicy::new(Duration::from_millis(50), 1.0, 1.0, true);
        assert!(!tiny.should_cut(150, FrameClass::Keyframe), "200 ms floor");
        assert!(tiny.should_cut(200, FrameClass::Keyframe));
        let td = CutPolicy::new(Duration::from_secs(10), 1.5, 2.1, true);
        assert!(!td.should_cut(14_000, FrameClass::Keyframe));
    }

    /// Under ATC the cut depends only on the absolute clock: two origins that started at
    /// different frames of one stream cut at the same frames from their second segment on.
    #[test]
    fn atc_cuts_on_slots_of_the_absolute_clock() {
        let p = CutPolicy::new(Duration::from_secs(2), 1.0, 2.1, true);
        let frag = 2_000;
        let t0 = 1_000_000_000; // a slot boundary
                                // Keyframes every second, frames every 40 ms.
        let class = |ts: u64| {
            if (ts - t0).is_multiple_of(1_000) {
                FrameClass::Keyframe
            } else {
                FrameClass::Video
            }
        };
        let cuts = |first: u64| {
            let mut start = first;
            let mut out = vec![first];
            let mut ts = first + 40;
            while ts < t0 + 20_000 {
                if p.should_cut_atc(frag, start, ts, class(ts), true) {
                    out.push(ts);
                    start = ts;
                }
                ts += 40;
            }
            out
        };
        let a = cuts(t0);
        let b = cuts(t0 + 3_000); // joined 3 s later, on a keyframe mid-slot
        assert_eq!(a[1..4], [t0 + 2_000, t0 + 4_000, t0 + 6_000]);
        assert_eq!(b[0], t0 + 3_000);
        assert_eq!(b[1..], a[2..], "same boundaries after the first segment");
        assert!(a.iter().all(|&t| atc_slot(t, frag) * frag == t));
        // A keyframe in the same slot does not cut; audio cuts only audio-only streams.
        assert!(!p.should_cut_atc(frag, t0, t0 + 1_000, FrameClass::Keyframe, true));
        assert!(!p.should_cut_atc(frag, t0, t0 + 2_000, FrameClass::Audio, true));
        assert!(p.should_cut_atc(frag, t0, t0 + 2_000, FrameClass::Audio, false));
        assert!(!p.should_cut_atc(frag, t0, t0 + 2_000, FrameClass::Video, true));
        let nowait = CutPolicy::new(Duration::from_secs(2), 1.0, 2.1, false);
        assert!(nowait.should_cut_atc(frag, t0, t0 + 2_000, FrameClass::Video, true));
        // The safety net: no keyframe for aof x fragment.
        assert!(p.should_cut_atc(frag, t0, t0 + 4_200, FrameClass::Video, true));
    }

    #[test]
    fn window_takes_the_numbers_it_is_given() {
        let mut w = Window::new(Duration::from_secs(2), 1.0, Duration::from_secs(6));
        w.push(entry(500_000, 2_000, false));
        assert_eq!(w.playlist(false).media_sequence, 500_000);
        assert_eq!(w.next_seq(), 500_001);
        w.push(entry(500_001, 2_000, false));
        w.push(entry(500_003, 2_000, false)); // a slot without a segment
        w.push(entry(500_004, 2_000, false));
        assert_eq!(w.playlist(false).media_sequence, 500_001);
        w.push(entry(500_005, 2_000, false));
        assert_eq!(w.playlist(false).media_sequence, 500_003);
        w.drain();
        assert_eq!(w.next_seq(), 500_006);
    }

    #[test]
    fn jumps_are_per_track_and_need_a_threshold() {
        // 2 s fragments: forward jumps beyond 6 s count.
        let mut j = JumpDetector::new(2_000);
        assert_eq!(j.see(0, true), None, "first frame");
        assert_eq!(j.see(5, false), None);
        assert_eq!(j.see(40, true), None);
        assert_eq!(j.see(5_900, true), None, "a 5.9 s stall is not a jump");
        assert_eq!(j.see(16_000, true), Some(Jump::Forward(10_100)));
        // Audio is judged against audio only, so the video jump does not count for it.
        assert_eq!(j.see(28, false), None);
        assert_eq!(j.see(16_040, true), None);
        assert_eq!(j.see(15_800, true), None, "240 ms back is jitter");
        assert_eq!(j.see(100, true), Some(Jump::Backward(15_700)));
        assert_eq!(j.see(100_000, false), Some(Jump::Forward(99_972)));
        j.reset();
        assert_eq!(j.see(0, false), None, "reset forgets the previous frames");
        // Tiny fragments still need a 5 s jump; long ones need three targets.
        let mut tiny = JumpDetector::new(200);
        tiny.see(0, true);
        assert_eq!(tiny.see(4_000, true), None);
        assert_eq!(tiny.see(9_001, true), Some(Jump::Forward(5_001)));
        let mut long = JumpDetector::new(10_000);
        long.see(0, true);
        assert_eq!(long.see(30_000, true), None);
        assert_eq!(long.see(60_001, true), Some(Jump::Forward(30_001)));
    }

    #[test]
    fn a_skip_right_after_catching_up_is_a_jump() {
        assert_eq!(skip_cause(60_000, 50), SkipCause::TimestampJump);
        assert_eq!(skip_cause(31_000, 35_000), SkipCause::SlowWriter);
        assert_eq!(
            skip_cause(31_000, 29_500),
            SkipCause::SlowWriter,
            "within the slack"
        );
        assert_eq!(skip_cause(31_000, 28_000), SkipCause::TimestampJump);
    }

    #[test]
    fn probe_waits_for_both_tracks_or_gives_up() {
        let mut p = Probe::default();
        p.see(0, true, true);
        assert!(!p.ready(true, true));
        p.see(0, false, true);
        assert!(p.ready(true, true));

        let mut audio_only = Probe::default();
        for i in 0..10 {
            audio_only.see(i * 23, false, false);
        }
        assert!(!audio_only.ready(true, true));
        assert!(
            audio_only.ready(false, true),
            "video dropped by hls_vcodec vn"
        );
        audio_only.see(1_000, false, false);
        assert!(
            audio_only.ready(true, true),
            "a second of audio and no video"
        );

        let mut burst = Probe::default();
        for _ in 0..PROBE_MAX_FRAMES {
            burst.see(0, true, false);
        }
        assert!(burst.ready(true, true));
    }

    #[test]
    fn window_slides_and_keeps_three_targets() {
        let mut w = Window::new(Duration::from_secs(10), 1.0, Duration::from_secs(60));
        let mut removed = Vec::new();
        for seq in 0..10 {
            removed.extend(w.push(entry(seq, 10_000, false)));
        }
        // 60 s of 10 s segments, exactly the window.
        assert_eq!(w.segments().count(), 6);
        assert_eq!(w.next_seq(), 10);
        assert_eq!(removed.len(), 4);
        let pl = w.playlist(false);
        assert_eq!(pl.media_sequence, 4);
        assert_eq!(pl.effective_target_duration(), 10);
        let total: f64 = pl.segments.iter().map(|s| s.duration).sum();
        assert!(total >= 3.0 * pl.effective_target_duration() as f64);

        // A window shorter than three targets still keeps three targets of media.
        let mut short = Window::new(Duration::from_secs(2), 1.0, Duration::from_secs(2));
        for seq in 0..10 {
            short.push(entry(seq, 2_000, false));
        }
        assert_eq!(short.segments().count(), 3);
    }

    #[test]
    fn target_grows_with_long_segments_and_never_shrinks() {
        let mut w = Window::new(Duration::from_secs(2), 1.0, Duration::from_secs(10));
        assert_eq!(w.target(), 2);
        w.push(entry(0, 4_100, false));
        assert_eq!(w.target(), 5);
        for seq in 1..20 {
            w.push(entry(seq, 2_000, false));
        }
        assert_eq!(w.target(), 5);
        assert_eq!(w.playlist(false).effective_target_duration(), 5);
    }

    #[test]
    fn discontinuity_sequence_counts_removed_tags() {
        let mut w = Window::new(Duration::from_secs(1), 1.0, Duration::from_secs(3));
        w.push(entry(0, 1_000, false));
        w.push(entry(1, 1_000, true));
        for seq in 2..8 {
            w.push(entry(seq, 1_000, false));
        }
        let pl = w.playlist(false);
        assert_eq!(pl.discontinuity_sequence, 1);
        assert!(pl.segments.iter().all(|s| !s.discontinuity));
        let text = pl.render();
        let parsed = media::hls::parse_media_playlist(&text).expect("parse");
        assert_eq!(parsed.media_sequence, 5);
        assert_eq!(parsed.discontinuity_sequence, 1);
    }

    #[test]
    fn drain_empties_the_window() {
        let mut w = Window::new(Duration::from_secs(1), 1.0, Duration::from_secs(3));
        w.push(entry(0, 1_000, false));
        w.push(entry(1, 1_000, false));
        assert_eq!(w.drain().len(), 2);
        assert_eq!(w.next_seq(), 2);
        assert_eq!(w.segments().count(), 0);
    }

    #[test]
    fn uris_are_relative_to_the_playlist() {
        let uri = |p: &str, s: &str, pre: &str| segment_uri(Path::new(p), Path::new(s), pre);
        assert_eq!(uri("live/s.m3u8", "live/s-1.ts", ""), "s-1.ts");
        assert_eq!(uri("live/s.m3u8", "live/s/1.ts", ""), "s/1.ts");
        assert_eq!(
            uri("live/s.m3u8", "ts/live/s-1.ts", ""),
            "../ts/live/s-1.ts"
        );
        assert_eq!(uri("s.m3u8", "live/s-1.ts", ""), "live/s-1.ts");
        assert_eq!(
            uri("live/s.m3u8", "live/s-1.ts", "http://cdn.example/hls/"),
            "http://cdn.example/hls/live/s-1.ts"
        );
    }
}
