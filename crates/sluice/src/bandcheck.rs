//! Who may run SRS's RTMP bandwidth test (`vhost { bandcheck { } }`): the key, one test
//! per address per `interval`, and a cap on tests at once. The exchange itself is in
//! `rtmp_service::connection::bandcheck` (I/O) and `rtmp::bandcheck` (the protocol).
//!
//! The test makes the server send and receive `limit_kbps` for seconds on request: without
//! these gates it is a traffic amplifier. SRS keeps one global "last check" time; sluice
//! keeps it per vhost and address (so one user cannot lock everyone out) and adds the cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::BandcheckConfig;

/// Most tests running at once in one server.
pub const MAX_RUNNING: usize = 8;
/// Most addresses remembered for the interval; past it, older entries are forgotten
/// first, and if every entry is still within its interval the test is refused.
pub const MAX_REMEMBERED: usize = 4096;

/// Why a test was refused (sent to the client in the connect's `_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("bandcheck: key missing or wrong")]
    Key,
    #[error("bandcheck rejected: last check from this address {0} ms ago (interval {1} ms)")]
    Interval(u64, u64),
    #[error("bandcheck rejected: {MAX_RUNNING} checks already running")]
    Busy,
}

/// Whether `tc_url` (and the connect's app, where some clients put the query) carries
/// `key=KEY`. An exact parameter, not SRS's substring search; `&` and `,` both separate
/// parameters (SRS's own tool documents `?key=xxx,vhost=xxx`).
pub fn key_matches(cfg: &BandcheckConfig, tc_url: &str, app: &str) -> bool {
    if cfg.key.is_empty() {
        return false;
    }
    [tc_url, app]
        .iter()
        .filter_map(|s| s.split_once('?').map(|(_, q)| q))
        .flat_map(|q| q.split(['&', ',', '?']))
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| k == "key" && v == cfg.key)
}

#[derive(Debug, Default)]
struct State {
    /// When each (vhost, address) last started a test.
    last: HashMap<(String, IpAddr), Instant>,
    running: usize,
}

/// The interval and concurrency gate, shared by every connection of a server.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    state: Arc<Mutex<State>>,
}

/// A test in progress; dropping it frees its place.
#[derive(Debug)]
pub struct Running {
    state: Arc<Mutex<State>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut st = crate::util::lock(&self.state);
        st.running = st.running.saturating_sub(1);
    }
}

impl Gate {
    /// The gate of this process (one server per process).
    pub fn global() -> &'static Gate {
        static GATE: std::sync::OnceLock<Gate> = std::sync::OnceLock::new();
        GATE.get_or_init(Gate::default)
    }

    /// Admits a test of `vhost` from `ip` at `now`, or says why not.
    pub fn admit(
        &self,
        vhost: &str,
        ip: IpAddr,
        now: Instant,
        interval: Duration,
    ) -> Result<Running, Refusal> {
        let mut st = crate::util::lock(&self.state);
        let key = (vhost.to_string(), ip);
        if let Some(&t) = st.last.get(&key) {
            let since = now.saturating_duration_since(t);
            if since < interval {
                return Err(Refusal::Interval(
                    since.as_millis() as u64,
                    interval.as_millis() as u64,
                ));
            }
        }
        if st.running >= MAX_RUNNING {
            return Err(Refusal::Busy);
        }
        if st.last.len() >= MAX_REMEMBERED {
            // Forget what is past its interval; if nothing is, refuse rather than grow.
            st.last
                .retain(|_, t| now.saturating_duration_since(*t) < interval);
            if st.last.len() >= MAX_REMEMBERED {
                return Err(Refusal::Busy);
            }
        }
        st.last.insert(key, now);
        st.running += 1;
        Ok(Running {
            state: Arc::clone(&self.state),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(key: &str) -> BandcheckConfig {
        BandcheckConfig {
            enabled: true,
            key: key.into(),
            ..BandcheckConfig::default()
        }
    }

    #[test]
    fn key_is_an_exact_parameter() {
        let c = cfg("35c9b402c12a7246868752e2878f7e0e");
        let k = "35c9b402c12a7246868752e2878f7e0e";
        assert!(key_matches(&c, &format!("rtmp://h/app?key={k}"), "app"));
        assert!(key_matches(
            &c,
            "rtmp://h/app",
            &format!("app?vhost=b&key={k}")
        ));
        assert!(key_matches(
            &c,
            &format!("rtmp://h/app?key={k},vhost=b"),
            "app"
        ));
        assert!(!key_matches(&c, "rtmp://h/app?key=wrong", "app"));
        assert!(!key_matches(&c, &format!("rtmp://h/app?key={k}x"), "app"));
        assert!(!key_matches(&c, &format!("rtmp://h/app?xkey={k}"), "app"));
        assert!(!key_matches(&c, "rtmp://h/app", "app"));
        assert!(!key_matches(&cfg(""), "rtmp://h/app?key=", "app"));
    }

    #[test]
    fn one_test_per_address_per_interval_and_a_cap() {
        let g = Gate::default();
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let iv = Duration::from_secs(30);
        let first = g.admit("v", a, t0, iv).unwrap();
        assert!(matches!(
            g.admit("v", a, t0 + Duration::from_secs(10), iv),
            Err(Refusal::Interval(10_000, 30_000))
        ));
        let other = g.admit("v", b, t0, iv).unwrap();
        let elsewhere = g.admit("w", a, t0, iv).unwrap();
        drop(elsewhere);
        drop(first);
        drop(other);
        assert!(g.admit("v", a, t0 + Duration::from_secs(31), iv).is_ok());
        let mut held = Vec::new();
        for i in 0..MAX_RUNNING {
            held.push(
                g.admit("v", IpAddr::from([10, 1, 0, i as u8]), t0, iv)
                    .unwrap(),
            );
        }
        assert_eq!(
            g.admit("v", "10.2.0.1".parse().unwrap(), t0, iv)
                .unwrap_err(),
            Refusal::Busy
        );
        held.clear();
        assert!(g.admit("v", "10.2.0.1".parse().unwrap(), t0, iv).is_ok());
    }
}
