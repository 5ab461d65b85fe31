//! Report arithmetic: percentiles and bit rates, kept apart so they can be checked by hand.

use std::time::Duration;

/// Nearest-rank percentile (`p` in 0..=100) of an already sorted slice; None when empty.
/// Nearest-rank rather than interpolation: every figure reported is a value that was measured.
pub fn percentile_sorted<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.saturating_sub(1).min(sorted.len() - 1);
    sorted.get(idx).copied()
}

/// Kilobits (1000 bits) per second; 0 for an empty interval rather than infinity.
pub fn kbps(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    bytes as f64 * 8.0 / 1000.0 / secs
}

/// Share in percent; 100 % when nothing was expected (nothing was missed).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 100.0;
    }
    part as f64 * 100.0 / whole as f64
}

/// Latency histogram in whole milliseconds: constant memory whatever the player count
/// (millions of samples per run), exact at millisecond resolution up to [`Self::MAX_MS`].
#[derive(Debug, Clone)]
pub struct MsHistogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for MsHistogram {
    fn default() -> Self {
        MsHistogram {
            counts: vec![0; Self::MAX_MS as usize + 1],
            total: 0,
            max: 0,
        }
    }
}

impl MsHistogram {
    /// Samples above this land in the last bucket (their true maximum is still kept).
    pub const MAX_MS: u64 = 60_000;

    pub fn record(&mut self, ms: u64) {
        let idx = ms.min(Self::MAX_MS) as usize;
        if let Some(c) = self.counts.get_mut(idx) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(ms);
    }

    /// Adds `n` samples of `ms` at once.
    pub fn record_n(&mut self, ms: u64, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(c) = self.counts.get_mut(ms.min(Self::MAX_MS) as usize) {
            *c += n;
        }
        self.total += n;
        self.max = self.max.max(ms);
    }

    /// Raises the recorded maximum (for samples that overflowed into the last bucket).
    pub fn raise_max(&mut self, ms: u64) {
        if self.total > 0 {
            self.max = self.max.max(ms);
        }
    }

    pub fn merge(&mut self, other: &MsHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    /// Nearest-rank percentile, as [`percentile_sorted`] would give on the raw samples.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let p = p.clamp(0.0, 100.0);
        let rank = (((p / 100.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (ms, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // The overflow bucket reports the true maximum, not the cap.
                return Some(if ms as u64 == Self::MAX_MS {
                    self.max
                } else {
                    ms as u64
                });
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(50));
        assert_eq!(percentile_sorted(&v, 99.0), Some(99));
        assert_eq!(percentile_sorted(&v, 100.0), Some(100));
        assert_eq!(percentile_sorted(&v, 0.0), Some(1));
        assert_eq!(percentile_sorted(&[7u64], 99.0), Some(7));
        assert_eq!(percentile_sorted::<u64>(&[], 50.0), None);
        // 4 samples: p50 is the 2nd, p99 the 4th.
        assert_eq!(percentile_sorted(&[10, 20, 30, 40], 50.0), Some(20));
        assert_eq!(percentile_sorted(&[10, 20, 30, 40], 99.0), Some(40));
    }

    #[test]
    fn histogram_matches_sorted_percentiles() {
        let samples: Vec<u64> = (0..1000u64).map(|i| (i * 7919) % 503).collect();
        let mut h = MsHistogram::default();
        for &s in &samples {
            h.record(s);
        }
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        for p in [1.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            assert_eq!(h.percentile(p), percentile_sorted(&sorted, p), "p{p}");
        }
        assert_eq!(h.max(), sorted.last().copied());
        assert_eq!(h.count(), 1000);
    }

    #[test]
    fn histogram_overflow_and_merge() {
        let mut a = MsHistogram::default();
        a.record(5);
        let mut b = MsHistogram::default();
        b.record(90_000);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.percentile(50.0), Some(5));
        assert_eq!(a.percentile(100.0), Some(90_000));
        assert_eq!(a.max(), Some(90_000));
        assert_eq!(MsHistogram::default().percentile(50.0), None);
    }

    #[test]
    fn rates() {
        // 62 500 bytes in one second is 500 kbps.
        assert_eq!(kbps(62_500, Duration::from_secs(1)), 500.0);
        assert_eq!(kbps(62_500, Duration::from_millis(500)), 1000.0);
        assert_eq!(kbps(1, Duration::ZERO), 0.0);
        assert_eq!(percent(99, 100), 99.0);
        assert_eq!(percent(0, 0), 100.0);
    }
}
