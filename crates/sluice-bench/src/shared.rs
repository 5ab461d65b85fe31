//! State every player task updates and the progress line and report read: atomics only on
//! the per-frame path (a lock per frame across thousands of players would be the bench's
//! own bottleneck), plus the publisher's log behind a read-mostly lock.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::matching::Sent;
use crate::stats::MsHistogram;

/// A player whose newest frame is older than this is late (the stream has ~25+ frames/s).
pub const STALL: Duration = Duration::from_secs(2);
/// ... or whose newest frame took longer than this to arrive.
pub const LATE_LATENCY_MS: u64 = 1000;
/// Entries kept in the publisher log: a day of a 70 frames/s stream; beyond that latency is
/// no longer measured rather than memory growing without bound.
pub const MAX_LOG: usize = 6_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PlayerState {
    Pending = 0,
    Connected = 1,
    Failed = 2,
    Done = 3,
}

/// What the progress line needs to know about one player.
#[derive(Debug, Default)]
pub struct Slot {
    state: AtomicU8,
    /// Milliseconds since [`Shared::start`] of the newest frame, 0 = none yet.
    last_frame_ms: AtomicU64,
    last_latency_ms: AtomicU64,
}

impl Slot {
    pub fn set_state(&self, s: PlayerState) {
        self.state.store(s as u8, Relaxed);
    }

    pub fn state(&self) -> PlayerState {
        match self.state.load(Relaxed) {
            1 => PlayerState::Connected,
            2 => PlayerState::Failed,
            3 => PlayerState::Done,
            _ => PlayerState::Pending,
        }
    }

    pub fn frame(&self, since_start: Duration, latency_ms: Option<u64>) {
        self.last_frame_ms
            .store((since_start.as_millis() as u64).max(1), Relaxed);
        if let Some(l) = latency_ms {
            self.last_latency_ms.store(l, Relaxed);
        }
    }

    /// Connected, and either stalled or far behind.
    pub fn is_late(&self, since_start: Duration) -> bool {
        if self.state() != PlayerState::Connected {
            return false;
        }
        let last = self.last_frame_ms.load(Relaxed);
        let now = since_start.as_millis() as u64;
        (last > 0 && now.saturating_sub(last) > STALL.as_millis() as u64)
            || self.last_latency_ms.load(Relaxed) > LATE_LATENCY_MS
    }
}

/// Latency histogram updated concurrently by every player.
pub struct AtomicHistogram {
    counts: Vec<AtomicU64>,
    max: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            counts: (0..=MsHistogram::MAX_MS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            max: AtomicU64::new(0),
        }
    }
}

impl AtomicHistogram {
    pub fn record(&self, ms: u64) {
        if let Some(c) = self.counts.get(ms.min(MsHistogram::MAX_MS) as usize) {
            c.fetch_add(1, Relaxed);
        }
        // Almost every sample is below the maximum: a plain load spares the locked update.
        if ms > self.max.load(Relaxed) {
            self.max.fetch_max(ms, Relaxed);
        }
    }

    pub fn snapshot(&self) -> MsHistogram {
        let mut h = MsHistogram::default();
        for (ms, c) in self.counts.iter().enumerate() {
            h.record_n(ms as u64, c.load(Relaxed));
        }
        h.raise_max(self.max.load(Relaxed));
        h
    }
}

pub struct Shared {
    pub start: Instant,
    pub slots: Vec<Slot>,
    /// Frames the publisher sent, in order (empty when players run without our publisher).
    pub log: RwLock<Vec<Sent>>,
    pub bytes: AtomicU64,
    /// Shared by every stream of a multi-stream run: one histogram is ~0.5 MB, too much
    /// to keep per stream when there are a thousand.
    pub latency: Arc<AtomicHistogram>,
}

impl Shared {
    pub fn new(players: usize) -> Shared {
        Shared::with_latency(players, Arc::default())
    }

    /// A stream's state whose latencies go into `latency`, shared with other streams.
    pub fn with_latency(players: usize, latency: Arc<AtomicHistogram>) -> Shared {
        Shared {
            start: Instant::now(),
            slots: (0..players).map(|_| Slot::default()).collect(),
            log: RwLock::new(Vec::new()),
            bytes: AtomicU64::new(0),
            latency,
        }
    }

    pub fn push_sent(&self, sent: &[Sent]) {
        if let Ok(mut log) = self.log.write() {
            if log.len() + sent.len() <= MAX_LOG {
                log.extend_from_slice(sent);
            }
        }
    }

    pub fn log_len(&self) -> usize {
        self.log.read().map_or(0, |l| l.len())
    }

    /// (connected, failed, late) right now.
    pub fn counts(&self) -> (usize, usize, usize) {
        let now = self.start.elapsed();
        let mut out = (0, 0, 0);
        for s in &self.slots {
            match s.state() {
                PlayerState::Connected => {
                    out.0 += 1;
                    if s.is_late(now) {
                        out.2 += 1;
                    }
                }
                PlayerState::Failed => out.1 += 1,
                _ => {}
            }
        }
        out
    }
}
