//! `vhost { bandcheck { } }`: SRS's RTMP bandwidth test (see `rtmp_service::bandcheck`).

use std::time::Duration;

/// SRS's default `interval`: one check per 30 s.
pub const DEFAULT_BANDCHECK_INTERVAL: Duration = Duration::from_secs(30);
/// SRS's default `limit_kbps`.
pub const DEFAULT_BANDCHECK_LIMIT_KBPS: u32 = 1000;
/// The highest `limit_kbps` accepted (10 Gbit/s): more is a typo.
pub const MAX_BANDCHECK_LIMIT_KBPS: u32 = 10_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct BandcheckConfig {
    pub enabled: bool,
    /// What the client must give as `key=` in its tcUrl's query.
    pub key: String,
    /// The least time between two checks (SRS: between any two; sluice: from one address).
    pub interval: Duration,
    /// The rate both directions of the test are held to.
    pub limit_kbps: u32,
}

impl Default for BandcheckConfig {
    fn default() -> Self {
        BandcheckConfig {
            enabled: false,
            key: String::new(),
            interval: DEFAULT_BANDCHECK_INTERVAL,
            limit_kbps: DEFAULT_BANDCHECK_LIMIT_KBPS,
        }
    }
}
