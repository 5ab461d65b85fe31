//! Wall-clock time as Unix-epoch numbers, as SRS puts it in its API, hooks, heartbeat and
//! file names.
//!
//! A clock set before 1970 gives 0 rather than an error: every caller uses the value as a
//! label or a sample time, where a wrong but valid number beats failing the request.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch of `t` (0 before the epoch).
pub fn unix_ms_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    unix_ms_of(SystemTime::now())
}

/// Seconds since the Unix epoch, now.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn epoch_numbers() {
        assert_eq!(
            unix_ms_of(UNIX_EPOCH + Duration::from_millis(1_709_211_909_042)),
            1_709_211_909_042
        );
        assert_eq!(unix_ms_of(UNIX_EPOCH - Duration::from_secs(1)), 0);
        // 2020-01-01: any machine running this is past it.
        assert!(unix_ms() > 1_577_836_800_000);
        assert!(unix_secs() > 1_577_836_800);
    }
}
