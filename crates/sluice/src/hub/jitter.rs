//! Timestamp handling: unwrapping the publisher's 32-bit clock and SRS's jitter
//! correction (`time_jitter full|zero|off`).
//!
//! RTMP timestamps are 32-bit milliseconds and wrap after ~49.7 days. The source
//! unwraps them once ([`Unwrapper`]) so that everything behind it works on a
//! monotonic 64-bit clock; each player then corrects jitter on its own
//! ([`Jitter`]), as SRS does, so that a player that joins late still sees its
//! stream start near zero with `full` or `zero`.

use crate::config::TimeJitter;

/// A jump larger than this (either way) between two A/V frames is treated as a
/// glitch of the encoder, not as real time passing (SRS: CONST_MAX_JITTER_MS).
const MAX_JITTER_MS: i64 = 250;
/// The delta used in place of a glitch: small, so a glitch is visible but harmless.
const DEFAULT_FRAME_TIME_MS: i64 = 10;

/// Extends 32-bit RTMP timestamps to 64 bits.
#[derive(Debug, Default, Clone)]
pub struct Unwrapper {
    last: Option<u32>,
    epoch: u64,
}

impl Unwrapper {
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        if let Some(last) = self.last {
            // A step back by more than half the range is a wrap forwards; a step
            // forwards by more than half the range right after a wrap is a late
            // frame from before it.
            if ts < last && last - ts > 0x8000_0000 {
                self.epoch += 1 << 32;
            } else if ts > last && ts - last > 0x8000_0000 && self.epoch > 0 {
                return (self.epoch - (1 << 32)) + u64::from(ts);
            }
        }
        self.last = Some(ts);
        self.epoch + u64::from(ts)
    }
}

/// Per-consumer jitter correction.
#[derive(Debug, Clone)]
pub struct Jitter {
    mode: TimeJitter,
    last_in: Option<u64>,
    last_out: i64,
    zero_base: Option<u64>,
}

impl Jitter {
    pub fn new(mode: TimeJitter) -> Self {
        Jitter {
            mode,
            last_in: None,
            last_out: 0,
            zero_base: None,
        }
    }

    /// Returns the timestamp to send for a frame. `av` is false for script data,
    /// which `full` pins to the current time as SRS pins it to zero for metadata.
    pub fn correct(&mut self, ts: u64, av: bool) -> u64 {
        match self.mode {
            TimeJitter::Off => ts,
            TimeJitter::Zero => {
                let base = *self.zero_base.get_or_insert(ts);
                ts.saturating_sub(base)
            }
            TimeJitter::Full => {
                if !av {
                    return self.last_out.max(0) as u64;
                }
                let delta = match self.last_in {
                    // The first frame: start the stream at a small time.
                    None => DEFAULT_FRAME_TIME_MS,
                    Some(last) => {
                        let d = ts as i128 - last as i128;
                        if !(-(MAX_JITTER_MS as i128)..=MAX_JITTER_MS as i128).contains(&d) {
                            DEFAULT_FRAME_TIME_MS
                        } else {
                            d as i64
                        }
                    }
                };
                self.last_in = Some(ts);
                self.last_out = (self.last_out + delta).max(0);
                self.last_out as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrap_crosses_2_pow_32() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(0xFFFF_FF00), 0xFFFF_FF00);
        assert_eq!(u.unwrap(0xFFFF_FFF0), 0xFFFF_FFF0);
        assert_eq!(u.unwrap(0x10), 0x1_0000_0010);
        assert_eq!(u.unwrap(0x50), 0x1_0000_0050);
        // a late frame from just before the wrap stays before it
        assert_eq!(u.unwrap(0xFFFF_FFF8), 0xFFFF_FFF8);
        assert_eq!(u.unwrap(0x60), 0x1_0000_0060);
        // second wrap
        assert_eq!(u.unwrap(0x8000_0010), 0x1_8000_0010);
        assert_eq!(u.unwrap(0xFFFF_FFFF), 0x1_FFFF_FFFF);
        assert_eq!(u.unwrap(5), 0x2_0000_0005);
    }

    #[test]
    fn unwrap_small_backwards_steps_are_not_wraps() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(1000), 1000);
        assert_eq!(u.unwrap(980), 980);
        assert_eq!(u.unwrap(1020), 1020);
    }

    #[test]
    fn full_starts_near_zero_and_keeps_deltas() {
        let mut j = Jitter::new(TimeJitter::Full);
        assert_eq!(j.correct(5_000_000, true), 10);
        assert_eq!(j.correct(5_000_040, true), 50);
        assert_eq!(j.correct(5_000_020, true), 30); // small negative allowed
        assert_eq!(j.correct(5_000_080, true), 90);
        // a jump of 10 s is a glitch: replaced by 10 ms
        assert_eq!(j.correct(5_010_080, true), 100);
        assert_eq!(j.correct(5_010_120, true), 140);
        // metadata stays at the current time
        assert_eq!(j.correct(1, false), 140);
    }

    #[test]
    fn full_across_the_32_bit_wrap_is_smooth() {
        let mut u = Unwrapper::default();
        let mut j = Jitter::new(TimeJitter::Full);
        let mut prev = None;
        let mut ts: u32 = 0xFFFF_F000;
        for _ in 0..400 {
            let out = j.correct(u.unwrap(ts), true);
            if let Some(p) = prev {
                assert_eq!(out, p + 40);
            }
            prev = Some(out);
            ts = ts.wrapping_add(40);
        }
    }

    #[test]
    fn zero_subtracts_first_and_off_passes_through() {
        let mut z = Jitter::new(TimeJitter::Zero);
        assert_eq!(z.correct(7000, true), 0);
        assert_eq!(z.correct(7040, true), 40);
        assert_eq!(z.correct(100, true), 0); // never negative
        let mut o = Jitter::new(TimeJitter::Off);
        assert_eq!(o.correct(0x1_0000_0005, true), 0x1_0000_0005);
    }
}
