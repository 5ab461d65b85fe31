//! Delivery to players without a wake-up per player.
//!
//! Why: with one task per player woken on every merged-write tick, most of the
//! user-space cost of a player was the wake-up itself (notify, schedule, poll the
//! connection's future, re-arm its read) rather than the write. Here a stream's
//! players are grouped in shards of [`SHARD_SIZE`]; a tick wakes one task per
//! shard, which sends each of its players what is ready with a non-blocking
//! vectored write straight from the ring. A player's own task sleeps on its socket
//! and only runs when the peer sends something, or when its socket is full (then
//! it waits for room and catches up itself). Shards are separate tasks so that a
//! multi-threaded runtime spreads one stream's players over its cores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

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
}

struct Shard {
    sinks: Mutex<Vec<Arc<dyn Sink>>>,
    notify: Notify,
    closed: AtomicBool,
}

/// The players of one source that are fed by shards.
#[derive(Default)]
pub struct Fanout {
    shards: Mutex<Vec<Arc<Shard>>>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("shards", &lock(&self.shards).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Sinks never panic while a shard's list is locked; if one did, the list is
    // still a valid list.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn same(a: &Arc<dyn Sink>, b: &Arc<dyn Sink>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

impl Fanout {
    /// Adds a sink and has it served at once (a new player gets the GOP cache
    /// without waiting for the next tick). Must be called inside the runtime.
    pub fn add(&self, sink: Arc<dyn Sink>) {
        let mut shards = lock(&self.shards);
        for shard in shards.iter() {
            let mut sinks = lock(&shard.sinks);
            if sinks.len() < SHARD_SIZE {
                sinks.push(sink);
                drop(sinks);
                shard.notify.notify_one();
                return;
            }
        }
        let shard = Arc::new(Shard {
            sinks: Mutex::new(vec![sink]),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        });
        shards.push(Arc::clone(&shard));
        shard.notify.notify_one();
        tokio::spawn(run_shard(shard));
    }

    /// Removes a sink; a shard left empty ends its task.
    pub fn remove(&self, sink: &Arc<dyn Sink>) {
        let mut shards = lock(&self.shards);
        let mut emptied = None;
        for (i, shard) in shards.iter().enumerate() {
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
            let shard = shards.swap_remove(i);
            shard.closed.store(true, Ordering::Release);
            shard.notify.notify_one();
        }
    }

    /// Has every shard send what is ready.
    pub fn wake(&self) {
        for shard in lock(&self.shards).iter() {
            shard.notify.notify_one();
        }
    }

    /// Sinks fed by shards.
    pub fn len(&self) -> usize {
        lock(&self.shards)
            .iter()
            .map(|s| lock(&s.sinks).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn run_shard(shard: Arc<Shard>) {
    let mut scratch = Scratch::default();
    let mut pass: Vec<Arc<dyn Sink>> = Vec::with_capacity(SHARD_SIZE);
    loop {
        shard.notify.notified().await;
        if shard.closed.load(Ordering::Acquire) {
            return;
        }
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

    #[tokio::test]
    async fn every_sink_is_served_on_add_and_on_wake() {
        let fanout = Fanout::default();
        let sinks: Vec<Arc<Counting>> = (0..SHARD_SIZE + 3)
            .map(|_| Arc::new(Counting::default()))
            .collect();
        for s in &sinks {
            fanout.add(s.clone());
        }
        assert_eq!(fanout.len(), SHARD_SIZE + 3);
        assert_eq!(lock(&fanout.shards).len(), 2);
        settle().await;
        assert!(sinks.iter().all(|s| s.0.load(Ordering::SeqCst) >= 1));
        let before: Vec<usize> = sinks.iter().map(|s| s.0.load(Ordering::SeqCst)).collect();
        fanout.wake();
        settle().await;
        for (s, b) in sinks.iter().zip(before) {
            assert_eq!(s.0.load(Ordering::SeqCst), b + 1);
        }
    }

    /// Takes itself out of the fanout the first time it is served, as a player
    /// whose client left does while a shard is between sinks.
    struct Leaver {
        fanout: Arc<Fanout>,
        me: Mutex<Option<Arc<dyn Sink>>>,
        served: AtomicUsize,
    }
    impl Sink for Leaver {
        fn deliver(&self, _: &mut Scratch) {
            self.served.fetch_add(1, Ordering::SeqCst);
            let me = lock(&self.me).take();
            if let Some(me) = me {
                self.fanout.remove(&me);
            }
        }
    }

    #[tokio::test]
    async fn a_sink_leaving_mid_pass_makes_no_other_skip_it() {
        let fanout = Arc::new(Fanout::default());
        let leaver = Arc::new(Leaver {
            fanout: fanout.clone(),
            me: Mutex::new(None),
            served: AtomicUsize::new(0),
        });
        let as_sink: Arc<dyn Sink> = leaver.clone();
        *lock(&leaver.me) = Some(as_sink.clone());
        fanout.add(as_sink);
        let others: Vec<Arc<Counting>> = (0..3).map(|_| Arc::new(Counting::default())).collect();
        for s in &others {
            fanout.add(s.clone());
        }
        // One pass: the leaver goes first and removes itself, which moves the last
        // sink into its slot.
        settle().await;
        assert_eq!(leaver.served.load(Ordering::SeqCst), 1);
        assert_eq!(fanout.len(), 3);
        for (i, s) in others.iter().enumerate() {
            assert_eq!(s.0.load(Ordering::SeqCst), 1, "sink {i} skipped its pass");
        }
    }

    #[tokio::test]
    async fn removed_sinks_are_not_served_and_empty_shards_end() {
        let fanout = Fanout::default();
        let a: Arc<dyn Sink> = Arc::new(Counting::default());
        let b = Arc::new(Counting::default());
        fanout.add(a.clone());
        fanout.add(b.clone());
        settle().await;
        fanout.remove(&a);
        assert_eq!(fanout.len(), 1);
        let before = b.0.load(Ordering::SeqCst);
        fanout.wake();
        settle().await;
        assert_eq!(b.0.load(Ordering::SeqCst), before + 1);
        let b: Arc<dyn Sink> = b;
        fanout.remove(&b);
        assert!(fanout.is_empty());
        assert!(lock(&fanout.shards).is_empty());
        // The shard task saw `closed` and ended: only `fanout` and our handles remain.
        settle().await;
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(Arc::strong_count(&b), 1);
    }
}
