//! Low-Latency HLS (RFC 8216bis, `hls_ll on`): the live playlist with its parts, held in
//! memory and served by sluice's HTTP server, with blocking playlist reloads.
//!
//! Why memory: a part lives a few seconds and is asked for by every player within
//! milliseconds of existing; writing each to disk and re-reading it would cost more than the
//! media itself. Segments still go to disk (for players without LL-HLS, and for other servers
//! reading the files); the playlist on disk stays a plain fMP4 playlist.
//!
//! A blocked reload is a future waiting on a `watch` channel: no thread, a bounded wait
//! (three target durations, as the RFC says), and a per-stream cap on how many may wait at
//! once, beyond which requests are refused with 503 at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::hls::{LowLatency, MediaPlaylist, Part};
use tokio::sync::watch;

/// Completed segments whose parts stay listed and served (the RFC wants parts for the last
/// three target durations at least; segments are at least one target long).
const KEEP_PART_SEGMENTS: usize = 4;
/// Segments a delta update (`_HLS_skip=YES`) may leave out start this many target durations
/// before the end (the RFC's minimum for `CAN-SKIP-UNTIL`).
const SKIP_TARGETS: u64 = 6;
/// A request for a segment further ahead than this is refused (400), as the RFC says.
const MAX_MSN_AHEAD: u64 = 2;
// How many requests may wait at once is `hls_ll_max_blocked` (default 5000): each costs a
// connection and a small future, no thread.

/// Counters of blocked reloads, for `/metrics` (all streams).
#[derive(Debug, Default)]
pub struct BlockedStats {
    /// Blocking requests that had to wait.
    pub parked_total: AtomicU64,
    /// Total time they waited, in microseconds.
    pub wait_us_total: AtomicU64,
    /// Answered because the wait limit passed (503).
    pub timeouts_total: AtomicU64,
    /// Refused because too many were waiting.
    pub refused_total: AtomicU64,
    /// Waiting now.
    pub parked_now: AtomicUsize,
}

/// What the HTTP handler answers.
#[derive(Debug)]
pub enum Answer {
    Playlist(Bytes),
    Part(Bytes),
    /// 400: a request the RFC says to refuse (msn too far ahead, bad parameters).
    BadRequest(&'static str),
    /// 503: the wait limit passed, or too many requests are waiting.
    Unavailable(&'static str),
    NotFound,
}

#[derive(Debug, Default)]
struct State {
    /// The complete segments, as the on-disk playlist lists them.
    base: Option<MediaPlaylist>,
    /// Parts of the most recent complete segments, by msn.
    recent: VecDeque<(u64, Vec<Part>)>,
    /// The segment being written: its msn, and its parts so far.
    open_msn: u64,
    open_parts: Vec<Part>,
    /// Part bytes by file name, for the open and the recent segments.
    bytes: HashMap<String, Bytes>,
    ended: bool,
    full: Bytes,
    delta: Option<Bytes>,
}

/// One stream's LL-HLS state.
#[derive(Debug)]
pub struct LlStream {
    /// The playlist's file stem: parts are `<stem>-<msn>.<part>.m4s` beside it.
    stem: String,
    part_target: Duration,
    max_parked: usize,
    state: Mutex<State>,
    /// Bumped at every change; blocked requests wait on it.
    version: watch::Sender<u64>,
    parked: AtomicUsize,
}

/// Decrements the parked counts when a wait ends, however it ends.
struct Parked<'a> {
    stream: &'a LlStream,
    stats: &'a BlockedStats,
    since: Instant,
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.stream.parked.fetch_sub(1, Ordering::Relaxed);
        self.stats.parked_now.fetch_sub(1, Ordering::Relaxed);
        let us = self.since.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        self.stats.wait_us_total.fetch_add(us, Ordering::Relaxed);
    }
}

impl LlStream {
    pub fn new(stem: &str, part_target: Duration, max_parked: usize) -> LlStream {
        LlStream {
            stem: stem.to_string(),
            part_target,
            max_parked,
            state: Mutex::new(State::default()),
            version: watch::channel(0).0,
            parked: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::util::lock(&self.state)
    }

    /// The name (and URI, relative to the playlist) of part `idx` of segment `msn`.
    pub fn part_name(&self, msn: u64, idx: usize) -> String {
        format!("{}-{msn}.{idx}.m4s", self.stem)
    }

    /// Whether `name` (a file name in the playlist's directory) is one of this stream's parts.
    pub fn owns_part_name(&self, name: &str) -> bool {
        name.strip_prefix(&self.stem)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.strip_suffix(".m4s"))
            .and_then(|r| r.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            })
    }

    fn changed(&self, st: &mut State) {
        self.render(st);
        self.version.send_modify(|v| *v += 1);
    }

    /// A new segment is being written (its parts follow). Parts of an earlier open segment
    /// with the same msn (dropped: too short, or lost to a disk error) are forgotten.
    pub fn open_segment(&self, msn: u64) {
        let mut st = self.lock();
        let stale: Vec<Part> = std::mem::take(&mut st.open_parts);
        for p in stale {
            st.bytes.remove(&p.uri);
        }
        st.open_msn = msn;
        st.ended = false;
        self.changed(&mut st);
    }

    /// A part of the open segment is complete.
    pub fn add_part(&self, bytes: Bytes, duration: Duration, independent: bool) {
        let mut st = self.lock();
        let uri = self.part_name(st.open_msn, st.open_parts.len());
        st.bytes.insert(uri.clone(), bytes);
        st.open_parts.push(Part {
            uri,
            duration: duration.as_secs_f64(),
            independent,
        });
        self.changed(&mut st);
    }

    /// The open segment is complete and listed in `playlist` (the window of complete
    /// segments), or dropped when it is not there.
    pub fn segment_done(&self, playlist: MediaPlaylist, ended: bool) {
        let mut st = self.lock();
        let msn = st.open_msn;
        let parts = std::mem::take(&mut st.open_parts);
        if playlist.segments.iter().any(|s| s.sequence == msn) {
            st.recent.push_back((msn, parts));
        } else {
            for p in parts {
                st.bytes.remove(&p.uri);
            }
        }
        while st.recent.len() > KEEP_PART_SEGMENTS {
            if let Some((_, old)) = st.recent.pop_front() {
                for p in old {
                    st.bytes.remove(&p.uri);
                }
            }
        }
        st.open_msn = playlist.media_sequence + playlist.segments.len() as u64;
        st.base = Some(playlist);
        st.ended = ended;
        self.changed(&mut st);
    }

    fn render(&self, st: &mut State) {
        let Some(base) = &st.base else {
            st.full = Bytes::new();
            st.delta = None;
            return;
        };
        let mut pl = base.clone();
        for seg in pl.segments.iter_mut() {
            if let Some((_, parts)) = st.recent.iter().find(|(m, _)| *m == seg.sequence) {
                seg.parts = parts.clone();
            }
        }
        let target = pl.effective_target_duration().max(1);
        let part = self.part_target.as_secs_f64();
        pl.low_latency = Some(LowLatency {
            part_target: part,
            part_hold_back: part * 3.0,
            can_skip_until: Some((target * SKIP_TARGETS) as f64),
        });
        if !st.ended {
            pl.pending_parts = st.open_parts.clone();
            pl.preload_hint = Some(self.part_name(st.open_msn, st.open_parts.len()));
        }
        pl.ended = st.ended;
        st.full = Bytes::from(pl.render());
        // Delta update: segments ending more than CAN-SKIP-UNTIL before the end are left
        // out. Only worth it (and only allowed) when something is skipped.
        let total_ms: u64 = pl
            .segments
            .iter()
            .map(|s| (s.duration * 1000.0) as u64)
            .sum();
        let keep_ms = target * SKIP_TARGETS * 1000;
        let mut skip = 0usize;
        let mut rest = total_ms;
        for s in &pl.segments {
            let d = (s.duration * 1000.0) as u64;
            if rest.saturating_sub(d) < keep_ms || skip + 1 >= pl.segments.len() {
                break;
            }
            rest -= d;
            skip += 1;
        }
        st.delta = (skip > 0).then(|| {
            let mut d = pl.clone();
            d.segments.drain(..skip);
            d.skipped_segments = skip as u64;
            Bytes::from(d.render())
        });
    }

    /// Whether the playlist holds part `part` of segment `msn` (or all of it).
    fn has(&self, st: &State, msn: u64, part: Option<u64>) -> bool {
        if st.ended || msn < st.open_msn {
            return true;
        }
        match part {
            Some(p) => msn == st.open_msn && (p as usize) < st.open_parts.len(),
            None => false,
        }
    }

    /// The time a blocked request may wait: three target durations (RFC 8216bis §6.2.5.2).
    fn max_wait(&self, st: &State) -> Duration {
        let target = st
            .base
            .as_ref()
            .map_or(1, MediaPlaylist::effective_target_duration)
            .max(1);
        Duration::from_secs(target * 3)
    }

    /// Answers a playlist request: at once without `_HLS_msn`, else once the asked part
    /// (or segment) exists, within the wait limit.
    pub async fn playlist(
        &self,
        stats: &BlockedStats,
        msn: Option<u64>,
        part: Option<u64>,
        skip: bool,
    ) -> Answer {
        let pick = |st: &State| -> Answer {
            if st.full.is_empty() {
                return Answer::NotFound;
            }
            match (&st.delta, skip) {
                (Some(d), true) => Answer::Playlist(d.clone()),
                _ => Answer::Playlist(st.full.clone()),
            }
        };
        let Some(msn) = msn else {
            if part.is_some() {
                return Answer::BadRequest("_HLS_part without _HLS_msn");
            }
            return pick(&self.lock());
        };
        let limit = {
            let st = self.lock();
            if self.has(&st, msn, part) {
                return pick(&st);
            }
            if msn > st.open_msn + MAX_MSN_AHEAD {
                return Answer::BadRequest("_HLS_msn is more than two segments ahead");
            }
            self.max_wait(&st)
        };
        let Some(_parked) = self.park(stats) else {
            return Answer::Unavailable("too many blocked playlist reloads");
        };
        let wait = self.wait_for(limit, |st| self.has(st, msn, part)).await;
        match wait {
            true => pick(&self.lock()),
            false => {
                stats.timeouts_total.fetch_add(1, Ordering::Relaxed);
                Answer::Unavailable("the asked part did not come within three target durations")
            }
        }
    }

    /// Answers a part request; the part the preload hint names is waited for.
    pub async fn part(&self, stats: &BlockedStats, name: &str) -> Answer {
        let limit = {
            let st = self.lock();
            if let Some(b) = st.bytes.get(name) {
                return Answer::Part(b.clone());
            }
            let hinted = !st.ended && name == self.part_name(st.open_msn, st.open_parts.len());
            if !hinted {
                return Answer::NotFound;
            }
            self.max_wait(&st)
        };
        let Some(_parked) = self.park(stats) else {
            return Answer::Unavailable("too many blocked part requests");
        };
        // The hint may not come true: the segment can end before that part (a keyframe
        // cut it). Then the answer is 404 as soon as the segment is complete.
        let msn = part_msn(name);
        let ready = self
            .wait_for(limit, |st| {
                st.bytes.contains_key(name) || st.ended || msn.is_some_and(|m| st.open_msn > m)
            })
            .await;
        let st = self.lock();
        match (ready, st.bytes.get(name)) {
            (_, Some(b)) => Answer::Part(b.clone()),
            (false, None) => {
                stats.timeouts_total.fetch_add(1, Ordering::Relaxed);
                Answer::Unavailable("the hinted part did not come within three target durations")
            }
            (true, None) => Answer::NotFound,
        }
    }

    fn park<'a>(&'a self, stats: &'a BlockedStats) -> Option<Parked<'a>> {
        let n = self.parked.fetch_add(1, Ordering::Relaxed);
        if n >= self.max_parked {
            self.parked.fetch_sub(1, Ordering::Relaxed);
            stats.refused_total.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        stats.parked_now.fetch_add(1, Ordering::Relaxed);
        stats.parked_total.fetch_add(1, Ordering::Relaxed);
        Some(Parked {
            stream: self,
            stats,
            since: Instant::now(),
        })
    }

    /// Waits until `ready` holds or `limit` passes; true when it holds.
    async fn wait_for(&self, limit: Duration, ready: impl Fn(&State) -> bool) -> bool {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if ready(&self.lock()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                // The stream was dropped (disposed): answer with what there is.
                Ok(Err(_)) => return ready(&self.lock()),
                Err(_) => return false,
            }
        }
    }

    /// Requests waiting on this stream now.
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// What the API shows.
    pub fn status(&self) -> (u64, usize, usize) {
        let st = self.lock();
        (st.open_msn, st.open_parts.len(), self.parked())
    }
}

/// The segment number in a part name `<stem>-<msn>.<part>.m4s`.
fn part_msn(name: &str) -> Option<u64> {
    let body = name.strip_suffix(".m4s")?;
    let (head, _) = body.rsplit_once('.')?;
    head.rsplit_once('-')?.1.parse().ok()
}

/// The LL-HLS streams by the URL path of their playlist (`live/test.m3u8`), and the counters
/// for `/metrics`.
#[derive(Debug, Default)]
pub struct LlRegistry {
    streams: Mutex<HashMap<String, Arc<LlStream>>>,
    pub stats: BlockedStats,
}

impl LlRegistry {
    pub fn insert(&self, playlist_path: &str, s: Arc<LlStream>) {
        crate::util::lock(&self.streams).insert(playlist_path.to_string(), s);
    }

    pub fn remove(&self, playlist_path: &str) {
        crate::util::lock(&self.streams).remove(playlist_path);
    }

    pub fn get(&self, playlist_path: &str) -> Option<Arc<LlStream>> {
        crate::util::lock(&self.streams).get(playlist_path).cloned()
    }

    pub fn is_empty(&self) -> bool {
        crate::util::lock(&self.streams).is_empty()
    }

    /// The stream a request path belongs to: its playlist, or one of its parts
    /// (`dir/<stem>-<msn>.<part>.m4s` belongs to `dir/<stem>.m3u8`).
    pub fn route(&self, path: &str) -> Option<(Arc<LlStream>, Option<String>)> {
        if path.ends_with(".m3u8") {
            return self.get(path).map(|s| (s, None));
        }
        let name_at = path.rfind('/').map_or(0, |i| i + 1);
        let name = &path[name_at..];
        let body = name.strip_suffix(".m4s")?;
        // `<stem>-<msn>.<part>`: the stem is what precedes the last '-'.
        let dash = body.rfind('-')?;
        let playlist = format!("{}{}.m3u8", &path[..name_at], &body[..dash]);
        let s = self.get(&playlist)?;
        s.owns_part_name(name).then(|| (s, Some(name.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::hls::Segment;

    fn window(first: u64, n: u64) -> MediaPlaylist {
        MediaPlaylist {
            target_duration: 1,
            media_sequence: first,
            discontinuity_sequence: 0,
            segments: (first..first + n)
                .map(|seq| Segment {
                    uri: format!("test-{seq}.m4s"),
                    duration: 1.0,
                    sequence: seq,
                    discontinuity: false,
                    program_date_time_ms: None,
                    key: None,
                    map: Some("test/init.mp4".into()),
                    parts: Vec::new(),
                })
                .collect(),
            ended: false,
            low_latency: None,
            pending_parts: Vec::new(),
            preload_hint: None,
            skipped_segments: 0,
        }
    }

    fn text(a: Answer) -> String {
        match a {
            Answer::Playlist(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn blocking_reload_is_answered_when_the_part_arrives() {
        let s = Arc::new(LlStream::new("test", Duration::from_millis(250), 10));
        let stats = Arc::new(BlockedStats::default());
        s.open_segment(0);
        for _ in 0..4 {
            s.add_part(Bytes::from_static(b"p"), Duration::from_millis(250), false);
        }
        s.segment_done(window(0, 1), false);
        s.open_segment(1);
        let pl =
            media::hls::parse_media_playlist(&text(s.playlist(&stats, None, None, false).await))
                .expect("parses");
        assert_eq!(pl.segments[0].parts.len(), 4);
        assert_eq!(pl.preload_hint.as_deref(), Some("test-1.0.m4s"));
        // Part 0 of segment 1 does not exist yet: the request waits.
        let (s2, st2) = (s.clone(), stats.clone());
        let waiter =
            tokio::spawn(async move { text(s2.playlist(&st2, Some(1), Some(0), false).await) });
        let hinted = {
            let (s3, st3) = (s.clone(), stats.clone());
            tokio::spawn(async move { s3.part(&st3, "test-1.0.m4s").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(s.parked(), 2);
        assert!(!waiter.is_finished());
        s.add_part(Bytes::from_static(b"new"), Duration::from_millis(250), true);
        let got = waiter.await.expect("join");
        assert!(
            got.contains("#EXT-X-PART:DURATION=0.250,URI=\"test-1.0.m4s\",INDEPENDENT=YES"),
            "{got}"
        );
        assert!(matches!(hinted.await.expect("join"), Answer::Part(b) if &b[..] == b"new"));
        assert_eq!(s.parked(), 0);
        assert_eq!(stats.parked_total.load(Ordering::Relaxed), 2);
        // A hinted part that the end of its segment makes void: 404 as soon as it ends.
        let (s4, st4) = (s.clone(), stats.clone());
        let void = tokio::spawn(async move { s4.part(&st4, "test-1.1.m4s").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!void.is_finished());
        s.segment_done(window(0, 2), false);
        assert!(matches!(void.await.expect("join"), Answer::NotFound));
        // Too far ahead: refused at once.
        assert!(matches!(
            s.playlist(&stats, Some(9), None, false).await,
            Answer::BadRequest(_)
        ));
    }

    #[tokio::test]
    async fn the_cap_refuses_and_the_wait_is_bounded() {
        let s = Arc::new(LlStream::new("test", Duration::from_millis(250), 1));
        let stats = Arc::new(BlockedStats::default());
        s.open_segment(0);
        s.segment_done(window(0, 1), false);
        let (s2, st2) = (s.clone(), stats.clone());
        let first = tokio::spawn(async move { s2.playlist(&st2, Some(2), None, false).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            s.playlist(&stats, Some(2), None, false).await,
            Answer::Unavailable(_)
        ));
        assert_eq!(stats.refused_total.load(Ordering::Relaxed), 1);
        // Target 1 s: the first one gives up after 3 s.
        assert!(matches!(first.await.expect("join"), Answer::Unavailable(_)));
        assert_eq!(stats.timeouts_total.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn delta_updates_skip_old_segments_and_routes_find_parts() {
        let s = LlStream::new("test", Duration::from_millis(250), 1);
        s.open_segment(10);
        s.segment_done(window(3, 8), false);
        let st = s.lock();
        let delta = String::from_utf8_lossy(st.delta.as_ref().expect("delta")).into_owned();
        let pl = media::hls::parse_media_playlist(&delta).expect("parses");
        assert_eq!(pl.skipped_segments, 2);
        assert_eq!(pl.segments[0].sequence, 5);
        assert!(
            delta.contains("#EXT-X-MAP:URI=\"test/init.mp4\""),
            "{delta}"
        );
        drop(st);
        let reg = LlRegistry::default();
        reg.insert("live/test.m3u8", Arc::new(s));
        assert!(reg.route("live/test.m3u8").is_some());
        assert_eq!(
            reg.route("live/test-11.2.m4s").and_then(|r| r.1).as_deref(),
            Some("test-11.2.m4s")
        );
        assert!(
            reg.route("live/test-11.m4s").is_none(),
            "segments are files"
        );
        assert!(reg.route("live/other-1.0.m4s").is_none());
    }
}
