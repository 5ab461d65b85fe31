//! One live stream: its publisher, its headers and a shared ring of recent frames
//! that every consumer reads from at its own pace.
//!
//! Why a shared ring and not a queue per player: the publisher does O(1) work per
//! frame whatever the number of players (one push and one wake-up broadcast), a
//! media payload exists once however many players hold it, and the GOP cache is
//! nothing more than the tail of the ring from the last keyframe. A slow player is
//! a cursor that falls out of the retained window; it is moved forward to a
//! keyframe by its own task ([`super::Consumer`]) and costs the others nothing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use tokio::sync::watch;

use super::codec_info::{self, AudioCodecInfo, VideoCodecInfo};
use super::frame::{Frame, FrameKind};
use super::StreamKey;

/// The frame-paced decision (sans clock: times in ms on one monotonic scale): does a
/// frame of `kind` arriving at `now` wake the readers?
pub fn frame_paced_wake(
    kind: Option<FrameKind>,
    now: u64,
    last_wake: u64,
    last_video: u64,
) -> bool {
    match kind {
        Some(FrameKind::Audio) => {
            let video_flowing = now.saturating_sub(last_video) < VIDEO_FLOWING_MS;
            let held = now.saturating_sub(last_wake);
            !(video_flowing && held < AUDIO_HOLD_MS)
        }
        _ => true,
    }
}

/// Frame-paced policy: video counts as flowing while a frame came this recently; past
/// it, audio wakes readers on its own (audio-only streams, a stalled camera).
pub const VIDEO_FLOWING_MS: u64 = 100;
/// Frame-paced policy: audio waits for the next video frame at most this long after
/// readers were last woken (one frame interval at 25 fps).
pub const AUDIO_HOLD_MS: u64 = 40;

/// Hard caps on what one stream may retain, whatever the config and the stream
/// (a publisher that never sends a keyframe must not make us keep everything).
pub const MAX_RING_ENTRIES: usize = 16 * 1024;
pub const MAX_RING_BYTES: usize = 128 * 1024 * 1024;
/// Audio-only streams have no keyframes: a new player gets this much recent audio.
pub const PURE_AUDIO_CACHE_MS: u64 = 2_000;
/// How often a publish looks up how far its slowest reader is ([`Ring::behind`]).
/// Readers only move forward, so a stale answer keeps more, never too little.
pub const READERS_SCAN_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// What the ring holds: frames, and the publish/unpublish edges in their place in
/// the sequence so that every consumer sees them in order.
#[derive(Debug, Clone)]
pub enum Entry {
    Frame(Frame),
    Published,
    Unpublished,
}

#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub entry: Entry,
    /// Timestamp of the frame, or of the last frame before a marker.
    pub ts: u64,
    /// Which set of headers was current when this entry was pushed.
    pub header_gen: u64,
    /// Which publish this entry belongs to; timestamps compare only within one.
    pub epoch: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSettings {
    pub gop_cache: bool,
    pub queue_length_ms: u64,
}

#[derive(Debug, Clone)]
pub struct PublisherInfo {
    pub client_id: String,
    pub since: Instant,
}

#[derive(Debug)]
pub(super) struct Ring {
    pub slots: VecDeque<Slot>,
    /// Sequence number of `slots[0]`.
    pub base: u64,
    pub bytes: usize,
    pub newest_ts: u64,
    /// Sequence number of the newest video keyframe of the current publish.
    pub last_keyframe: Option<u64>,
    pub has_video: bool,
    pub metadata: Option<Frame>,
    pub video_sh: Option<Frame>,
    pub audio_sh: Option<Frame>,
    pub header_gen: u64,
    /// Incremented by every publish: a new publisher brings a new timeline.
    pub epoch: u64,
    pub publisher: Option<PublisherInfo>,
    pub settings: SourceSettings,
    pub video_info: Option<VideoCodecInfo>,
    pub audio_info: Option<AudioCodecInfo>,
    /// Since when nobody publishes (the source's creation, or the last unpublish);
    /// None while a publisher holds the stream.
    pub unpublished_since: Option<Instant>,
    /// The vhost's ATC policy, set by the publisher before it publishes.
    pub atc_policy: super::AtcPolicy,
    /// Absolute time is on for the current publish (`atc`, or `atc_auto` and the
    /// metadata asked for it): players and HLS take timestamps untouched.
    pub atc: bool,
    /// The publish edge and headers at the start of the current publish, waiting for
    /// the time of its first frame (they are pushed before it is known).
    pub unstamped_from: Option<u64>,
    /// Every reader's cursor was at or past this sequence at the last scan: what lies
    /// before it (and outside the GOP cache) is read by all and is dropped at once
    /// instead of being kept for the whole queue window (`queue_length` is how far a
    /// reader may fall behind, not how much every stream keeps).
    pub behind: u64,
    pub scanned: Instant,
}

impl Ring {
    pub fn end(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    pub fn get(&self, seq: u64) -> Option<&Slot> {
        let idx = seq.checked_sub(self.base)?;
        self.slots.get(usize::try_from(idx).ok()?)
    }

    /// Where a new player starts reading, as SRS's GOP cache would have it.
    pub fn start_position(&self) -> u64 {
        if !self.settings.gop_cache || self.publisher.is_none() {
            return self.end();
        }
        if self.has_video {
            return self.last_keyframe.unwrap_or_else(|| self.end());
        }
        // Pure audio: the last couple of seconds.
        let from_ts = self.newest_ts.saturating_sub(PURE_AUDIO_CACHE_MS);
        let mut seq = self.end();
        for (i, s) in self.slots.iter().enumerate().rev() {
            if s.ts < from_ts || matches!(s.entry, Entry::Published | Entry::Unpublished) {
                break;
            }
            seq = self.base + i as u64;
        }
        seq
    }

    fn push(&mut self, entry: Entry, ts: u64) {
        if let Entry::Frame(f) = &entry {
            self.bytes += f.size();
        }
        self.slots.push_back(Slot {
            entry,
            ts,
            header_gen: self.header_gen,
            epoch: self.epoch,
        });
        self.trim();
    }

    /// Drops what no consumer may still need: older than the queue window and not
    /// part of the cached GOP, or anything beyond the hard caps.
    fn trim(&mut self) {
        let window_start = self.newest_ts.saturating_sub(self.settings.queue_length_ms);
        let gop_start = if self.settings.gop_cache {
            self.last_keyframe
        } else {
            None
        };
        while let Some(front) = self.slots.front() {
            let over_cap = self.slots.len() > MAX_RING_ENTRIES || self.bytes > MAX_RING_BYTES;
            // A previous publish's entries are of no use to anyone: its timeline
            // is not comparable, and consumers still in it are moved forward.
            let stale = front.epoch < self.epoch;
            // Audio-only streams keep their short cache for new players.
            let read_by_all = self.base < self.behind
                && (self.has_video
                    || front.ts.saturating_add(PURE_AUDIO_CACHE_MS) < self.newest_ts);
            let old = stale
                || (front.ts < window_start || read_by_all)
                    && gop_start.is_none_or(|g| self.base < g);
            if !(over_cap || old) || self.slots.len() == 1 {
                break;
            }
            if let Some(slot) = self.slots.pop_front() {
                if let Entry::Frame(f) = &slot.entry {
                    self.bytes = self.bytes.saturating_sub(f.size());
                }
            }
            self.base += 1;
            if self.last_keyframe.is_some_and(|k| k < self.base) {
                self.last_keyframe = None;
            }
        }
    }
}

/// A read-locked ring (see [`Source::view`]); opaque outside the hub.
pub struct RingView<'a> {
    pub(super) guard: RwLockReadGuard<'a, Ring>,
    pub(super) source: &'a Source,
}

impl RingView<'_> {
    /// Whether the stream runs on absolute time (SRS's ATC): players then take the
    /// publisher's timestamps untouched, whatever their `time_jitter`.
    pub fn atc(&self) -> bool {
        self.guard.atc
    }
}

/// Counters read by the API and logs.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub frames: AtomicU64,
    pub video_frames: AtomicU64,
    pub audio_frames: AtomicU64,
    pub recv_bytes: AtomicU64,
    pub consumers: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("stream {0} is already publishing (by client {1})")]
    AlreadyPublishing(String, String),
}

/// A live stream, shared by its publisher and consumers.
#[derive(Debug)]
pub struct Source {
    /// Short id for the API (`/api/v1/streams/{id}`).
    pub id: String,
    pub key: StreamKey,
    pub(super) ring: RwLock<Ring>,
    /// Carries the ring's end sequence; every change wakes waiting consumers.
    pub(super) notify: watch::Sender<u64>,
    /// The ring's end on every change, whatever the pacing: for the readers that re-frame
    /// the stream for players whose path gains nothing from merged writes (the WebRTC
    /// feed, which sends each frame as its own RTP packets anyway), so that `mw_latency`
    /// does not add its 100 ms or more to their delay. Only sent to while such a reader
    /// exists ([`Consumer::unpaced`](super::Consumer::unpaced)).
    pub(super) unpaced: watch::Sender<u64>,
    pub stats: SourceStats,
    pub created: Instant,
    events: tokio::sync::broadcast::Sender<super::HubEvent>,
    /// Ourselves, for the events and the pacer (set by `Arc::new_cyclic`).
    me: std::sync::Weak<Source>,
    /// Merged-write interval in ms (the vhost's `mw_latency`); 0 wakes consumers on
    /// every frame.
    notify_interval_ms: AtomicU64,
    /// `min_latency`: without merged writes, wake readers for video frames (and what
    /// came before them) rather than for every message; see [`Source::wake_for`].
    frame_paced: std::sync::atomic::AtomicBool,
    /// When readers were last woken and when the last video frame came, in ms since
    /// `born` (for the frame-paced policy).
    last_wake_ms: AtomicU64,
    last_video_ms: AtomicU64,
    born: std::time::Instant,
    /// Handed to the pacer, which ticks `notify` (see [`Source::pace`]).
    paced: std::sync::atomic::AtomicBool,
    pacing: std::sync::Arc<super::Pacing>,
    /// Each live consumer's cursor, published by the consumer after every fetch; see
    /// [`Ring::behind`]. Dead consumers leave a dead `Weak`, pruned at the next scan.
    readers: std::sync::Mutex<Vec<std::sync::Weak<AtomicU64>>>,
}

impl Source {
    pub fn new(
        id: String,
        key: StreamKey,
        settings: SourceSettings,
        events: tokio::sync::broadcast::Sender<super::HubEvent>,
        pacing: std::sync::Arc<super::Pacing>,
    ) -> std::sync::Arc<Source> {
        let (notify, _) = watch::channel(0);
        let (unpaced, _) = watch::channel(0);
        std::sync::Arc::new_cyclic(|me| Source {
            events,
            me: me.clone(),
            id,
            key,
            ring: RwLock::new(Ring {
                slots: VecDeque::new(),
                base: 0,
                bytes: 0,
                newest_ts: 0,
                last_keyframe: None,
                has_video: false,
                metadata: None,
                video_sh: None,
                audio_sh: None,
                header_gen: 0,
                epoch: 0,
                publisher: None,
                settings,
                video_info: None,
                audio_info: None,
                unpublished_since: Some(Instant::now()),
                atc_policy: super::AtcPolicy::default(),
                atc: false,
                unstamped_from: None,
                behind: 0,
                scanned: Instant::now(),
            }),
            readers: std::sync::Mutex::new(Vec::new()),
            notify,
            unpaced,
            stats: SourceStats::default(),
            created: Instant::now(),
            notify_interval_ms: AtomicU64::new(0),
            frame_paced: std::sync::atomic::AtomicBool::new(false),
            last_wake_ms: AtomicU64::new(0),
            last_video_ms: AtomicU64::new(0),
            born: std::time::Instant::now(),
            paced: std::sync::atomic::AtomicBool::new(false),
            pacing,
        })
    }

    /// Sets the merged-write interval: readers are woken at most this often (by the
    /// delivery service's pacer), so each wake-up finds a batch of frames and a
    /// player writes them with one system call.
    pub fn set_notify_interval(&self, interval: std::time::Duration) {
        self.notify_interval_ms.store(
            interval.as_millis().min(u128::from(u32::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// The low-delay policy (`min_latency on`): with merged writes off, readers are
    /// woken when a video frame arrives, so the audio that came before it goes out in
    /// the same vectored write, instead of once per message. Audio wakes readers on its
    /// own when the stream has no flowing video (audio-only, or video stalled for
    /// [`VIDEO_FLOWING_MS`]) or when readers have not been woken for [`AUDIO_HOLD_MS`].
    pub fn set_frame_paced(&self, on: bool) {
        self.frame_paced.store(on, Ordering::Relaxed);
    }

    /// Both pacing settings of a vhost ([`crate::config::VhostConfig::pacing`]).
    pub fn apply_pacing(&self, (interval, frame_paced): (std::time::Duration, bool)) {
        self.set_notify_interval(interval);
        self.set_frame_paced(frame_paced);
    }

    /// The signal readers wait on: it carries the ring's end and changes when
    /// something new is there to read (paced by merged writes).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Wakes readers now, or leaves it to the pacer when merged writes are on. With
    /// the frame-paced policy an audio frame may wait for the video frame that
    /// follows it (see [`Source::set_frame_paced`]).
    fn wake_for(&self, end: u64, kind: Option<FrameKind>) {
        self.wake_unpaced(end);
        let interval = self.notify_interval_ms.load(Ordering::Relaxed);
        if interval == 0 {
            if self.frame_paced.load(Ordering::Relaxed) {
                let now = self.born.elapsed().as_millis() as u64;
                if kind == Some(FrameKind::Video) {
                    self.last_video_ms.store(now, Ordering::Relaxed);
                }
                let wake = frame_paced_wake(
                    kind,
                    now,
                    self.last_wake_ms.load(Ordering::Relaxed),
                    self.last_video_ms.load(Ordering::Relaxed),
                );
                if !wake {
                    return;
                }
                self.last_wake_ms.store(now, Ordering::Relaxed);
            }
            self.notify.send_replace(end);
            return;
        }
        if self.paced.swap(true, Ordering::AcqRel) {
            return;
        }
        if !self.pacing.request(self.me.clone()) {
            // No pacer runs: wake at once.
            self.paced.store(false, Ordering::Release);
            self.notify.send_replace(end);
        }
    }

    /// One merged-write tick, called by the pacer: wakes readers if anything arrived
    /// since the last. Returns the pause until the next tick, or None when the
    /// stream no longer needs pacing (unpublished, or merged writes turned off);
    /// the next frame then asks again.
    pub fn pace(&self) -> Option<std::time::Duration> {
        self.touch();
        let interval = self.notify_interval_ms.load(Ordering::Relaxed);
        if interval > 0 && self.is_publishing() {
            return Some(std::time::Duration::from_millis(interval));
        }
        self.paced.store(false, Ordering::Release);
        // A publish may have raced with the decision to stop.
        if interval > 0 && self.is_publishing() && !self.paced.swap(true, Ordering::AcqRel) {
            return Some(std::time::Duration::from_millis(interval));
        }
        None
    }

    /// Leaves pacing for good (the pacer stopped): a last tick, then every frame wakes.
    pub fn unpace(&self) {
        self.paced.store(false, Ordering::Release);
        self.touch();
    }

    /// Wakes the unpaced readers, if there are any (one atomic load when there are none).
    fn wake_unpaced(&self, end: u64) {
        if self.unpaced.receiver_count() > 0 {
            self.unpaced.send_replace(end);
        }
    }

    /// Wakes readers if the ring moved since they were last woken.
    fn touch(&self) {
        let end = self.read().end();
        if *self.notify.borrow() != end {
            self.notify.send_replace(end);
        }
    }

    fn emit(&self, make: fn(std::sync::Arc<Source>) -> super::HubEvent) {
        if let Some(me) = self.me.upgrade() {
            // No receiver is fine: nobody needs to know.
            let _ = self.events.send(make(me));
        }
    }

    pub(super) fn read(&self) -> RwLockReadGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent in a
        // way that matters more than dropping the stream would: keep serving.
        crate::util::read(&self.ring)
    }

    /// The ring, read-locked, for [`super::Consumer::fetch_with`]. Held for one
    /// player's batch at a time: the publisher's push waits at most that long.
    pub fn view(&self) -> RingView<'_> {
        RingView {
            guard: self.read(),
            source: self,
        }
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Ring> {
        crate::util::write(&self.ring)
    }

    pub fn publisher(&self) -> Option<PublisherInfo> {
        self.read().publisher.clone()
    }

    pub fn is_publishing(&self) -> bool {
        self.read().publisher.is_some()
    }

    /// How long nobody has published the stream (None while somebody does).
    pub fn unpublished_for(&self) -> Option<std::time::Duration> {
        self.read().unpublished_since.map(|t| t.elapsed())
    }

    pub fn set_settings(&self, settings: SourceSettings) {
        self.write().settings = settings;
    }

    /// Sets the vhost's ATC policy; it takes effect at the next publish (a publisher
    /// sets it just before [`Source::publish`]).
    pub fn set_atc_policy(&self, policy: super::AtcPolicy) {
        self.write().atc_policy = policy;
    }

    /// Whether the current publish runs on absolute time (SRS's ATC).
    pub fn atc(&self) -> bool {
        self.read().atc
    }

    /// Claims the stream for a publisher; a second publisher is refused.
    pub fn publish(&self, client_id: &str) -> Result<(), PublishError> {
        let end = {
            let mut ring = self.write();
            if let Some(p) = &ring.publisher {
                return Err(PublishError::AlreadyPublishing(
                    self.key.to_string(),
                    p.client_id.clone(),
                ));
            }
            ring.publisher = Some(PublisherInfo {
                client_id: client_id.to_string(),
                since: Instant::now(),
            });
            ring.unpublished_since = None;
            ring.has_video = false;
            ring.last_keyframe = None;
            ring.metadata = None;
            ring.video_sh = None;
            ring.audio_sh = None;
            ring.video_info = None;
            ring.audio_info = None;
            ring.header_gen += 1;
            ring.epoch += 1;
            ring.newest_ts = 0;
            ring.atc = ring.atc_policy.atc;
            ring.unstamped_from = Some(ring.end());
            ring.push(Entry::Published, 0);
            ring.end()
        };
        self.notify.send_replace(end);
        self.wake_unpaced(end);
        self.emit(super::HubEvent::Published);
        Ok(())
    }

    /// Releases the stream if `client_id` holds it.
    pub fn unpublish(&self, client_id: &str) {
        let end = {
            let mut ring = self.write();
            if ring.publisher.as_ref().map(|p| p.client_id.as_str()) != Some(client_id) {
                return;
            }
            ring.publisher = None;
            ring.unpublished_since = Some(Instant::now());
            ring.last_keyframe = None;
            let ts = ring.newest_ts;
            ring.push(Entry::Unpublished, ts);
            ring.end()
        };
        self.notify.send_replace(end);
        self.wake_unpaced(end);
        self.emit(super::HubEvent::Unpublished);
    }

    /// Adds one frame from the publisher and wakes the consumers.
    pub fn push(&self, frame: Frame) {
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        self.stats
            .recv_bytes
            .fetch_add(frame.size() as u64, Ordering::Relaxed);
        match frame.kind {
            FrameKind::Video => self.stats.video_frames.fetch_add(1, Ordering::Relaxed),
            FrameKind::Audio => self.stats.audio_frames.fetch_add(1, Ordering::Relaxed),
            FrameKind::Script => 0,
        };
        let end = {
            let mut ring = self.write();
            if frame.kind != FrameKind::Script {
                // The latest, not the largest: a publisher whose clock jumps back must
                // not make every consumer look hours behind (and skip forever).
                ring.newest_ts = frame.timestamp;
            }
            if frame.sequence_header {
                match frame.kind {
                    FrameKind::Video => ring.video_info = codec_info::video_info(&frame.payload),
                    FrameKind::Audio => ring.audio_info = codec_info::audio_info(&frame.payload),
                    FrameKind::Script => {}
                }
            } else if frame.kind == FrameKind::Audio && ring.audio_info.is_none() {
                // MP3 has no sequence header: learn it from the first frame.
                ring.audio_info = codec_info::audio_info(&frame.payload);
            }
            if frame.sequence_header || frame.kind == FrameKind::Script {
                ring.header_gen += 1;
                match frame.kind {
                    FrameKind::Video => ring.video_sh = Some(frame.clone()),
                    FrameKind::Audio => ring.audio_sh = Some(frame.clone()),
                    FrameKind::Script => ring.metadata = Some(frame.clone()),
                }
            }
            if frame.kind == FrameKind::Script
                && ring.atc_policy.auto
                && !ring.atc
                && super::atc::metadata_asks_atc(&frame.payload)
            {
                ring.atc = true;
                tracing::info!(
                    "{}: metadata has bravo_atc (atc_auto): absolute time on",
                    self.key
                );
            }
            if frame.is_video() {
                ring.has_video = true;
                if frame.keyframe && !frame.sequence_header {
                    ring.last_keyframe = Some(ring.end());
                }
            }
            if ring.atc && frame.kind != FrameKind::Script && !frame.sequence_header {
                // Under absolute time a new player must not see its headers at the time
                // they were published and then its first frame hours later: they go out
                // stamped with the start of what it gets first (SRS restamps its cached
                // headers on every frame under ATC the same way).
                let start = if ring.has_video {
                    frame.keyframe.then_some(frame.timestamp)
                } else {
                    Some(frame.timestamp.saturating_sub(PURE_AUDIO_CACHE_MS))
                };
                if let Some(ts) = start {
                    let r: &mut Ring = &mut ring;
                    for h in [&mut r.metadata, &mut r.video_sh, &mut r.audio_sh]
                        .into_iter()
                        .flatten()
                    {
                        h.timestamp = ts;
                    }
                }
            }
            let ts = frame.timestamp;
            if frame.kind != FrameKind::Script && !frame.sequence_header {
                if let Some(from) = ring.unstamped_from.take() {
                    // The publish edge and the headers before the first frame take its
                    // time: stamped 0, they would look far behind (and be trimmed, or
                    // make readers skip) when the publisher's clock starts far from zero.
                    let epoch = ring.epoch;
                    let base = ring.base;
                    for slot in ring
                        .slots
                        .iter_mut()
                        .skip(from.saturating_sub(base) as usize)
                    {
                        if slot.epoch == epoch && slot.ts < ts {
                            slot.ts = ts;
                        }
                    }
                }
            }
            let kind = frame.kind;
            if ring.scanned.elapsed() >= READERS_SCAN_EVERY {
                ring.behind = self.slowest_reader(ring.end());
                ring.scanned = Instant::now();
            }
            ring.push(Entry::Frame(frame), ts);
            (ring.end(), kind)
        };
        self.wake_for(end.0, Some(end.1));
    }

    /// Registers a consumer's published cursor. Called with the ring read-locked, so
    /// that no scan runs between the consumer choosing its start and being counted.
    pub(super) fn register_reader(&self, cursor: &std::sync::Arc<AtomicU64>) {
        crate::util::lock(&self.readers).push(std::sync::Arc::downgrade(cursor));
    }

    /// The lowest cursor of any live consumer (`end` when there is none), pruning the
    /// dead ones. Once per [`READERS_SCAN_EVERY`] per stream: its cost is one load per
    /// consumer, not one per frame.
    fn slowest_reader(&self, end: u64) -> u64 {
        let mut readers = crate::util::lock(&self.readers);
        let mut lowest = end;
        readers.retain(|r| match r.upgrade() {
            Some(c) => {
                lowest = lowest.min(c.load(Ordering::Relaxed));
                true
            }
            None => false,
        });
        lowest
    }

    pub fn codec_info(&self) -> (Option<VideoCodecInfo>, Option<AudioCodecInfo>) {
        let ring = self.read();
        (ring.video_info.clone(), ring.audio_info.clone())
    }

    /// Number of entries in the ring and their bytes (GOP cache plus queue window).
    pub fn cached(&self) -> (usize, usize) {
        let ring = self.read();
        (ring.slots.len(), ring.bytes)
    }
}
