//! A reader of one Source: a cursor into its ring plus the per-player policy
//! (start on a keyframe, skip forward when lagging, resend headers when needed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use super::frame::Frame;
use super::source::{Entry, Ring, RingView, Source};

/// Most items handed out by one `fetch`, so that one write batch stays bounded.
pub const MAX_BATCH: usize = 128;

/// What a consumer delivers to its writer, in order.
#[derive(Debug, Clone)]
pub enum Item {
    Frame(Frame),
    /// A publisher started (or restarted) the stream.
    Published,
    /// The publisher left; the consumer stays for a republish.
    Unpublished,
}

/// An [`Item`] borrowed from the ring, for [`Consumer::fetch_with`].
#[derive(Debug, Clone, Copy)]
pub enum ItemRef<'r> {
    Frame(&'r Frame),
    Published,
    Unpublished,
}

/// How far a consumer fell behind when it was moved forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    pub entries: u64,
    pub lag_ms: u64,
}

pub struct Consumer {
    source: Arc<Source>,
    rx: watch::Receiver<u64>,
    cursor: u64,
    /// Video is held back until a keyframe (after a skip, or when starting with no GOP cache).
    need_keyframe: bool,
    /// The header generation this consumer has sent; when it differs after a skip,
    /// the current headers go out again.
    sent_header_gen: Option<u64>,
    queue_length_ms: u64,
    paused: bool,
    /// The publish this consumer is in, and whether it has seen it start: a skip
    /// over publish edges must still report them.
    epoch: u64,
    published: bool,
    /// `cursor` as the source sees it (published after each fetch), so that it can drop
    /// what every reader has passed; see `Ring::behind`.
    shown: Arc<AtomicU64>,
}

impl Consumer {
    /// A reader of a Source that is not in the hub (`srt::feed`'s TS): no demand is
    /// registered anywhere, it only reads.
    pub fn detached(source: Arc<Source>, queue_length_ms: u64) -> Consumer {
        Consumer::new(source, queue_length_ms)
    }

    pub(super) fn new(source: Arc<Source>, queue_length_ms: u64) -> Consumer {
        let rx = source.notify.subscribe();
        let shown = Arc::new(AtomicU64::new(0));
        let (cursor, need_keyframe, sent_header_gen, epoch, published) = {
            let ring = source.read();
            let start = ring.start_position();
            shown.store(start, Ordering::Relaxed);
            source.register_reader(&shown);
            // Without a cached keyframe a video player waits for the next one.
            let need_keyframe = ring.has_video && ring.get(start).is_none_or(|s| !is_keyframe(s));
            // Not published yet: the headers will come through the ring after the
            // Published marker, in order; nothing to send up front.
            let sent = ring.publisher.is_none().then_some(ring.header_gen);
            (
                start,
                need_keyframe,
                sent,
                ring.epoch,
                ring.publisher.is_some(),
            )
        };
        source.stats.consumers.fetch_add(1, Ordering::Relaxed);
        Consumer {
            source,
            rx,
            cursor,
            need_keyframe,
            sent_header_gen,
            queue_length_ms,
            paused: false,
            epoch,
            published,
            shown,
        }
    }

    pub fn source(&self) -> &Arc<Source> {
        &self.source
    }

    /// This reader is woken on every frame, whatever the stream's merged-write pacing
    /// (`mw_latency`), which stays in force for the other readers: for a feed whose
    /// players gain nothing from batches (see [`Source`]'s `unpaced`).
    pub fn unpaced(mut self) -> Consumer {
        self.rx = self.source.unpaced.subscribe();
        self
    }

    /// Waits until the source has something new. Cancel-safe.
    pub async fn changed(&mut self) {
        // The sender lives in the Source, which this consumer keeps alive, so this
        // only returns on a change.
        let _ = self.rx.changed().await;
    }

    /// While paused nothing is delivered; on resume the player restarts on a keyframe.
    pub fn set_paused(&mut self, paused: bool) {
        if self.paused && !paused {
            let ring = self.source.read();
            self.cursor = ring.end();
            self.need_keyframe = ring.has_video;
        }
        self.paused = paused;
    }

    /// Moves everything ready into `out` (at most [`MAX_BATCH`] items). Returns how
    /// much was skipped when the consumer had fallen out of the queue window.
    pub fn fetch(&mut self, out: &mut Vec<Item>) -> Option<Skipped> {
        let source = Arc::clone(&self.source);
        let ring = source.view();
        self.fetch_with(&ring, |item| {
            if out.len() >= MAX_BATCH {
                return false;
            }
            out.push(match item {
                ItemRef::Frame(f) => Item::Frame(f.clone()),
                ItemRef::Published => Item::Published,
                ItemRef::Unpublished => Item::Unpublished,
            });
            true
        })
    }

    /// Hands what is ready to `take`, in order and borrowed from the ring, until it
    /// returns false (that item stays for the next call). This is the fan-out form:
    /// a writer that sends straight from the ring clones nothing. `ring` must be a
    /// view of this consumer's source. The headers resent after a skip (at most
    /// three frames) come first and are not offered back if refused: `take` must
    /// have room for them at the start of a call.
    pub fn fetch_with<'r>(
        &mut self,
        ring: &'r RingView<'_>,
        take: impl FnMut(ItemRef<'r>) -> bool,
    ) -> Option<Skipped> {
        let skipped = self.fetch_from(ring, take);
        self.shown.store(self.cursor, Ordering::Relaxed);
        skipped
    }

    fn fetch_from<'r>(
        &mut self,
        ring: &'r RingView<'_>,
        mut take: impl FnMut(ItemRef<'r>) -> bool,
    ) -> Option<Skipped> {
        debug_assert!(std::ptr::eq(ring.source, Arc::as_ptr(&self.source)));
        self.rx.mark_unchanged();
        let ring: &'r Ring = &ring.guard;
        if self.paused {
            self.cursor = ring.end();
            return None;
        }
        let skipped = self.skip_if_lagging(ring);
        if skipped.is_some() {
            self.report_skipped_edges(ring, &mut take);
        }
        if self.sent_header_gen.is_some_and(|g| g != ring.header_gen) && skipped.is_some()
            || self.sent_header_gen.is_none()
        {
            self.push_headers(ring, &mut take);
        }
        let end = ring.end();
        while self.cursor < end {
            let Some(slot) = ring.get(self.cursor) else {
                break;
            };
            match &slot.entry {
                Entry::Frame(f) => {
                    // Sequence headers always pass: the decoder needs them first.
                    let waiting = self.need_keyframe && f.is_video() && !f.sequence_header;
                    if waiting && !f.keyframe {
                        self.cursor += 1;
                        continue;
                    }
                    if !take(ItemRef::Frame(f)) {
                        break;
                    }
                    if waiting {
                        self.need_keyframe = false;
                    }
                    self.sent_header_gen = Some(slot.header_gen);
                }
                Entry::Published => {
                    if !take(ItemRef::Published) {
                        break;
                    }
                    self.need_keyframe = false;
                    self.sent_header_gen = Some(slot.header_gen);
                    self.epoch = slot.epoch;
                    self.published = true;
                }
                Entry::Unpublished => {
                    if !take(ItemRef::Unpublished) {
                        break;
                    }
                    self.published = false;
                }
            }
            self.cursor += 1;
        }
        skipped
    }

    fn skip_if_lagging(&mut self, ring: &Ring) -> Option<Skipped> {
        let end = ring.end();
        let lag_ms = match ring.get(self.cursor) {
            Some(slot) => ring.newest_ts.saturating_sub(slot.ts),
            None if self.cursor < ring.base => u64::MAX,
            None => return None, // at the end: nothing to read
        };
        if self.cursor >= ring.base && lag_ms <= self.queue_length_ms {
            return None;
        }
        let from = self.cursor;
        // Prefer the cached GOP when it is inside the window; otherwise wait for
        // the next keyframe.
        match ring.last_keyframe {
            Some(k)
                if k > from
                    && ring.get(k).is_some_and(|s| {
                        ring.newest_ts.saturating_sub(s.ts) <= self.queue_length_ms
                    }) =>
            {
                self.cursor = k;
                self.need_keyframe = false;
            }
            _ => {
                self.cursor = end;
                self.need_keyframe = ring.has_video;
            }
        }
        Some(Skipped {
            entries: self.cursor.saturating_sub(from),
            lag_ms: if lag_ms == u64::MAX {
                self.queue_length_ms
            } else {
                lag_ms
            },
        })
    }

    /// After a skip, the publish/unpublish edges that were skipped over.
    fn report_skipped_edges<'r>(
        &mut self,
        ring: &'r Ring,
        take: &mut impl FnMut(ItemRef<'r>) -> bool,
    ) {
        if self.epoch != ring.epoch {
            if self.published {
                take(ItemRef::Unpublished);
            }
            self.published = false;
            self.epoch = ring.epoch;
            if ring.publisher.is_some() {
                take(ItemRef::Published);
                self.published = true;
                // Headers of the new publish go out with the skip.
                self.sent_header_gen = Some(u64::MAX);
            }
        } else if self.published && ring.publisher.is_none() {
            take(ItemRef::Unpublished);
            self.published = false;
        }
    }

    fn push_headers<'r>(&mut self, ring: &'r Ring, take: &mut impl FnMut(ItemRef<'r>) -> bool) {
        if ring.publisher.is_none() {
            return;
        }
        for f in [&ring.metadata, &ring.video_sh, &ring.audio_sh]
            .into_iter()
            .flatten()
        {
            take(ItemRef::Frame(f));
        }
        self.sent_header_gen = Some(ring.header_gen);
    }
}

fn is_keyframe(slot: &super::source::Slot) -> bool {
    matches!(&slot.entry, Entry::Frame(f) if f.is_video() && f.keyframe && !f.sequence_header)
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.source.stats.consumers.fetch_sub(1, Ordering::Relaxed);
    }
}
