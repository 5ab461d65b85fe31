//! Feeding a stream's players without a wake-up per player.
//!
//! Why: with one task per player woken on every merged-write tick, most of the
//! user-space cost of a player was the wake-up itself (notify, schedule, poll the
//! connection's future, re-arm its read) rather than the write. Here a stream's
//! players are grouped in shards of [`SHARD_SIZE`]; each shard is one task that
//! waits on the stream's change signal and sends each of its players what is ready
//! with a non-blocking vectored write straight from the ring. A player's own task
//! sleeps on its socket and only runs when the peer sends something, or when its
//! socket is full (then it waits for room and catches up itself). Shards are
//! separate tasks so that a multi-threaded runtime spreads one stream's players
//! over its cores.
//!
//! The shards of a stream are held by the delivery service ([`super::Delivery`]),
//! not by the stream: a stream knows nothing of who reads it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{watch, Notify};

/// Players per shard: small enough that shards spread over cores and a slow shard
/// holds few players back, large enough that a tick wakes few tasks.
pub const SHARD_SIZE: usize = 128;

/// Scratch space a shard lends to each of its sinks in turn (chunk headers of one
/// batch), so that no player keeps buffers of its own between ticks.
#[derive(Debug, Default)]
pub struct Scratch {
    pub headers: Vec<u8>,
}

impl Scratch {
    /// Large batches (a GOP burst copied for small chunk sizes) do not pin memory.
    const KEEP: usize = 64 * 1024;

    pub fn reset(&mut self) {
        self.headers.clear();
        if self.headers.capacity() > Self::KEEP {
            self.headers.shrink_to(Self::KEEP);
        }
    }
}

/// A player fed by a shard.
pub trait Sink: Send + Sync + 'static {
    /// Sends what is ready without blocking. A sink that cannot send everything
    /// keeps the rest and hands over to its own task; a finished sink does nothing.
    fn deliver(&self, scratch: &mut Scratch);

    /// Asks the player's task to end the player, saying why.
    fn close_for(&self, _reason: crate::stats::KickReason) {}
}

pub(super) struct Shard {
    sinks: Mutex<Vec<Arc<dyn Sink>>>,
    /// Serves the shard now (a sink joined) rather than at the stream's next change.
    notify: Notify,
    closed: AtomicBool,
}

impl Shard {
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Sinks never panic while a shard's list is locked; if one did, the list is
    // still a valid list.
    crate::util::lock(m)
}

fn same(a: &Arc<dyn Sink>, b: &Arc<dyn Sink>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// The shards of one stream.
#[derive(Default)]
pub(super) struct StreamShards {
    shards: Vec<Arc<Shard>>,
    /// The stream (weak: its players hold it, the fan-out does not).
    source: std::sync::Weak<crate::hub::Source>,
}

impl StreamShards {
    pub(super) fn new(source: &Arc<crate::hub::Source>) -> StreamShards {
        StreamShards {
            shards: Vec::new(),
            source: Arc::downgrade(source),
        }
    }

    pub(super) fn source(&self) -> Option<Arc<crate::hub::Source>> {
        self.source.upgrade()
    }

    /// Every sink of the stream, now.
    pub(super) fn sinks(&self) -> Vec<Arc<dyn Sink>> {
        self.shards
            .iter()
            .flat_map(|s| lock(&s.sinks).clone())
            .collect()
    }
}

impl StreamShards {
    /// Adds a sink to a shard with room and has that shard served at once (a new
    /// player gets the GOP cache without waiting for the next tick). Returns a new
    /// shard when every shard was full: the caller runs it ([`run_shard`]).
    pub(super) fn add(&mut self, sink: Arc<dyn Sink>) -> Option<Arc<Shard>> {
        for shard in &self.shards {
            let mut sinks = lock(&shard.sinks);
            if sinks.len() < SHARD_SIZE {
                sinks.push(sink);
                drop(sinks);
                shard.notify.notify_one();
                return None;
            }
        }
        let shard = Arc::new(Shard {
            sinks: Mutex::new(vec![sink]),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        });
        shard.notify.notify_one();
        self.shards.push(Arc::clone(&shard));
        Some(shard)
    }

    /// Removes a sink; a shard left empty is closed (its task ends).
    pub(super) fn remove(&mut self, sink: &Arc<dyn Sink>) {
        let mut emptied = None;
        for (i, shard) in self.shards.iter().enumerate() {
            let mut sinks = lock(&shard.sinks);
            if let Some(pos) = sinks.iter().position(|s| same(s, sink)) {
                sinks.swap_remove(pos);
                if sinks.is_empty() {
                    emptied = Some(i);
                }
                break;
            }
        }
        if let Some(i) = emptied {
            self.shards.swap_remove(i).close();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.sinks).len()).sum()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    pub(super) fn close_all(&mut self) {
        for shard in self.shards.drain(..) {
            shard.close();
        }
    }
}

/// A shard's task: serves every sink whenever the stream changes (the source's
/// watch, paced by merged writes) or a sink joins; ends when the shard is closed.
pub(super) async fn run_shard(shard: Arc<Shard>, mut changes: watch::Receiver<u64>) {
    let mut scratch = Scratch::default();
    let mut pass: Vec<Arc<dyn Sink>> = Vec::with_capacity(SHARD_SIZE);
    loop {
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    // The source is gone: nobody is left to feed.
                    return;
                }
            }
            _ = shard.notify.notified() => {}
        }
        if shard.closed.load(Ordering::Acquire) {
            return;
        }
        changes.mark_unchanged();
        // A snapshot of the list, which stays unlocked while the sinks write: players
        // join and leave on other threads meanwhile. Walking the live list by index
        // made the last sink skip the pass whenever one behind the cursor left
        // (`remove` swaps the last into the hole), and after the last frame of a
        // stream there is no next pass: that player never got its UnpublishNotify.
        // A sink that left mid-pass is still offered this pass (a closed sink takes
        // nothing); one that joined is in the next (`add` wakes the shard).
        pass.extend(lock(&shard.sinks).iter().cloned());
        for sink in pass.drain(..) {
            sink.deliver(&mut scratch);
            scratch.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Counting(AtomicUsize);
    impl Sink for Counting {
        fn deliver(&self, _: &mut Scratch) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    struct Harness {
        shards: Arc<Mutex<StreamShards>>,
        changes: watch::Sender<u64>,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                shards: Arc::default(),
                changes: watch::channel(0).0,
            }
        }
        fn add(&self, sink: Arc<dyn Sink>) {
            if let Some(shard) = lock(&self.shards).add(sink) {
                tokio::spawn(run_shard(shard, self.changes.subscribe()));
            }
        }
        fn remove(&self, sink: &Arc<dyn Sink>) {
            lock(&self.shards).remove(sink);
        }
        fn wake(&self) {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    #[tokio::test]
    async fn every_sink_is_served_on_add_and_on_change() {
        let h = Harness::new();
        let sinks: Vec<Arc<Counting>> = (0..SHARD_SIZE + 3)
            .map(|_| Arc::new(Counting::default()))
            .collect();
        for s in &sinks {
            h.add(s.clone());
        }
        assert_eq!(lock(&h.shards).len(), SHARD_SIZE + 3);
        assert_eq!(lock(&h.shards).shards.len(), 2);
        settle().await;
        assert!(sinks.iter().all(|s| s.0.load(Ordering::SeqCst) >= 1));
        let before: Vec<usize> = sinks.iter().map(|s| s.0.load(Ordering::SeqCst)).collect();
        h.wake();
        settle().await;
        for (s, b) in sinks.iter().zip(before) {
            assert_eq!(s.0.load(Ordering::SeqCst), b + 1);
        }
    }

    /// Takes itself out of its stream the first time it is served, as a player
    /// whose client left does while a shard is between sinks.
    struct Leaver {
        shards: Arc<Mutex<StreamShards>>,
        me: Mutex<Option<Arc<dyn Sink>>>,
        served: AtomicUsize,
    }
    impl Sink for Leaver {
        fn deliver(&self, _: &mut Scratch) {
            self.served.fetch_add(1, Ordering::SeqCst);
            let me = lock(&self.me).take();
            if let Some(me) = me {
                lock(&self.shards).remove(&me);
            }
        }
    }

    #[tokio::test]
    async fn a_sink_leaving_mid_pass_makes_no_other_skip_it() {
        let h = Harness::new();
        let leaver = Arc::new(Leaver {
            shards: h.shards.clone(),
            me: Mutex::new(None),
            served: AtomicUsize::new(0),
        });
        let as_sink: Arc<dyn Sink> = leaver.clone();
        *lock(&leaver.me) = Some(as_sink.clone());
        h.add(as_sink);
        let others: Vec<Arc<Counting>> = (0..3).map(|_| Arc::new(Counting::default())).collect();
        for s in &others {
            h.add(s.clone());
        }
        // One pass: the leaver goes first and removes itself, which moves the last
        // sink into its slot.
        settle().await;
        assert_eq!(leaver.served.load(Ordering::SeqCst), 1);
        assert_eq!(lock(&h.shards).len(), 3);
        for (i, s) in others.iter().enumerate() {
            assert_eq!(s.0.load(Ordering::SeqCst), 1, "sink {i} skipped its pass");
        }
    }

    #[tokio::test]
    async fn removed_sinks_are_not_served_and_empty_shards_end() {
        let h = Harness::new();
        let a: Arc<dyn Sink> = Arc::new(Counting::default());
        let b = Arc::new(Counting::default());
        h.add(a.clone());
        h.add(b.clone());
        settle().await;
        h.remove(&a);
        assert_eq!(lock(&h.shards).len(), 1);
        let before = b.0.load(Ordering::SeqCst);
        h.wake();
        settle().await;
        assert_eq!(b.0.load(Ordering::SeqCst), before + 1);
        let b: Arc<dyn Sink> = b;
        h.remove(&b);
        assert!(lock(&h.shards).is_empty());
        // The shard task saw `closed` and ended: only our handles remain.
        settle().await;
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(Arc::strong_count(&b), 1);
    }
}
