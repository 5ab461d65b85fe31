//! Who may open a connection: the shared `max_connections` cap, sluice's
//! `max_connections_per_ip`, and the HTTP API's own cap.
//!
//! One cap shared by every listener let ~1,000 idle players from one address hold
//! every slot, locking out new players and the API itself (the operator could not
//! even list or kick them). So the API listener has its own small cap that players
//! never touch ([`API_MAX_CONNECTIONS`]), and no peer address may hold more than
//! `max_connections_per_ip` of the RTMP and HTTP server connections.
//!
//! A refusal is one WARN line, but at most one per second per reason (and, for the
//! per-IP limit, per address, within a global budget of lines), with the number of
//! refusals left out since the previous line: a flood of connections must not
//! become a flood of log.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

/// Connections the HTTP API listener (`http_api`) takes, apart from `max_connections`:
/// a web console opens a handful, a Prometheus scraper one, scripts a few; 64 leaves
/// room for several of each while bounding what a hostile client of an exposed API
/// can hold (API connections are not counted per IP: put the API on a private address
/// or behind auth). When the API shares the HTTP server's port, these are the slots
/// a connection gets once `max_connections` is full, and such a connection is served
/// the API only.
pub const API_MAX_CONNECTIONS: usize = 64;

/// At most one refusal line per this, per reason (per address for the per-IP limit).
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Per-IP refusal lines over all addresses per [`REFUSAL_LOG_INTERVAL`]: a flood from
/// many addresses (an IPv6 range, a botnet) gets this many lines a second, not one per
/// address; the others are counted in each address's next line.
pub const PER_IP_LOG_LINES: u32 = 10;

/// The per-IP table, shared by every RTMP and HTTP server listener.
#[derive(Debug, Default)]
pub struct Admission {
    table: Arc<Mutex<Table>>,
    global_log: Throttle,
    api_log: Throttle,
    /// Connections holding a `max_connections` slot, and one of the API's.
    shared_open: Arc<AtomicU64>,
    api_open: Arc<AtomicU64>,
}

/// Which cap an admitted connection holds a slot of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// `max_connections`, shared by RTMP and the HTTP server.
    Shared,
    /// The HTTP API's own [`API_MAX_CONNECTIONS`].
    Api,
}

/// Counts one connection in [`Admission::open`] for as long as it lives.
#[derive(Debug)]
pub struct OpenGuard(Arc<AtomicU64>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Table {
    by_ip: HashMap<IpAddr, Entry>,
    /// Per-IP lines logged in the current interval, across addresses.
    window: Option<Instant>,
    lines: u32,
}

#[derive(Debug, Default)]
struct Entry {
    open: usize,
    last_line: Option<Instant>,
    suppressed: u64,
}

/// One connection counted against its address; the count goes down on drop. Held
/// with the connection's `max_connections` permit, for the connection's life.
#[derive(Debug)]
pub struct IpGuard {
    table: Arc<Mutex<Table>>,
    key: IpAddr,
}

/// A per-IP refusal: `log` is `Some(refusals not logged since the previous line)`
/// when this one is to be logged.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub key: IpAddr,
    pub log: Option<u64>,
}

/// The address a connection is counted under: IPv4 as is (IPv4-mapped IPv6 too, as
/// a dual-stack `[::]` listener sees IPv4 peers), IPv6 by its /64, the block one
/// subscriber is given and can pick addresses from at will.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// `ip_key`'s key as an operator reads it: `192.0.2.1`, `2001:db8::/64`.
pub fn show_key(key: IpAddr) -> String {
    match key {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/64"),
    }
}

impl Admission {
    /// Counts a new connection from `ip` unless its address holds `limit` already
    /// (`limit` 0: no limit, but still counted, so that turning the limit on by a
    /// reload sees the connections already open).
    pub fn admit_ip(&self, ip: IpAddr, limit: usize) -> Result<IpGuard, Refused> {
        let key = ip_key(ip);
        let mut t = lock(&self.table);
        let now = Instant::now();
        let entry = t.by_ip.entry(key).or_default();
        if limit == 0 || entry.open < limit {
            entry.open += 1;
            return Ok(IpGuard {
                table: self.table.clone(),
                key,
            });
        }
        let due = entry
            .last_line
            .is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_INTERVAL);
        if !due {
            entry.suppressed += 1;
            return Err(Refused { key, log: None });
        }
        let t = &mut *t;
        if t.window
            .is_none_or(|w| now.duration_since(w) >= REFUSAL_LOG_INTERVAL)
        {
            t.window = Some(now);
            t.lines = 0;
        }
        let Some(entry) = t.by_ip.get_mut(&key) else {
            return Err(Refused { key, log: None });
        };
        if t.lines >= PER_IP_LOG_LINES {
            entry.suppressed += 1;
            return Err(Refused { key, log: None });
        }
        t.lines += 1;
        entry.last_line = Some(now);
        let n = std::mem::take(&mut entry.suppressed);
        Err(Refused { key, log: Some(n) })
    }

    /// Counts a connection admitted under `cap` until the guard is dropped.
    pub fn opened(&self, cap: Cap) -> OpenGuard {
        let n = match cap {
            Cap::Shared => &self.shared_open,
            Cap::Api => &self.api_open,
        };
        n.fetch_add(1, Ordering::Relaxed);
        OpenGuard(n.clone())
    }

    /// Connections holding a slot of `cap` now (for `/metrics`: how close to full).
    pub fn open(&self, cap: Cap) -> u64 {
        match cap {
            Cap::Shared => self.shared_open.load(Ordering::Relaxed),
            Cap::Api => self.api_open.load(Ordering::Relaxed),
        }
    }

    /// Connections open from `ip`'s address (its /64 for IPv6).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        lock(&self.table)
            .by_ip
            .get(&ip_key(ip))
            .map_or(0, |e| e.open)
    }

    /// Addresses with at least one connection open.
    pub fn addresses(&self) -> usize {
        lock(&self.table).by_ip.len()
    }

    /// Whether a refusal by `max_connections` is to be logged now: `Some(refusals
    /// not logged since the previous line)`.
    pub fn log_global(&self) -> Option<u64> {
        self.global_log.due()
    }

    /// As [`Admission::log_global`], for the API's own cap.
    pub fn log_api(&self) -> Option<u64> {
        self.api_log.due()
    }
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut t = lock(&self.table);
        let Some(e) = t.by_ip.get_mut(&self.key) else {
            return;
        };
        e.open = e.open.saturating_sub(1);
        if e.open > 0 {
            return;
        }
        // The entry goes with its last connection: say what its next line would have.
        let suppressed = e.suppressed;
        t.by_ip.remove(&self.key);
        drop(t);
        if suppressed > 0 {
            warn!(
                "{suppressed} more connections from {} were refused by max_connections_per_ip \
                 (its last connection has now closed)",
                show_key(self.key)
            );
        }
    }
}

/// One line per [`REFUSAL_LOG_INTERVAL`] at most, counting the rest.
#[derive(Debug, Default)]
pub struct Throttle(Mutex<(Option<Instant>, u64)>);

impl Throttle {
    /// Some(lines left out since the last one) when a line may be logged now.
    pub fn due(&self) -> Option<u64> {
        let mut s = crate::util::lock(&self.0);
        let now = Instant::now();
        if s.0
            .is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_INTERVAL)
        {
            s.0 = Some(now);
            Some(std::mem::take(&mut s.1))
        } else {
            s.1 += 1;
            None
        }
    }
}

fn lock(t: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    // Counts stay consistent under a poisoned lock: every update is one statement.
    crate::util::lock(t)
}

/// `" (N more refused since the previous line)"`, or nothing when N is 0.
pub fn suppressed_note(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more refused since the previous line)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_per_address_and_releases_on_drop() {
        let a = Admission::default();
        let g1 = a.admit_ip(ip("10.0.0.1"), 2).unwrap();
        let g2 = a.admit_ip(ip("10.0.0.1"), 2).unwrap();
        let refused = a.admit_ip(ip("10.0.0.1"), 2).unwrap_err();
        assert_eq!(refused.key, ip("10.0.0.1"));
        // Another address is not affected.
        let other = a.admit_ip(ip("10.0.0.2"), 2).unwrap();
        assert_eq!(a.open_from(ip("10.0.0.1")), 2);
        drop(g1);
        assert_eq!(a.open_from(ip("10.0.0.1")), 1);
        let g3 = a.admit_ip(ip("10.0.0.1"), 2).unwrap();
        drop((g2, g3, other));
        assert_eq!(a.addresses(), 0, "entries go with their last connection");
    }

    #[test]
    fn zero_is_no_limit_but_still_counts() {
        let a = Admission::default();
        let guards: Vec<_> = (0..1000)
            .map(|_| a.admit_ip(ip("10.0.0.1"), 0).unwrap())
            .collect();
        assert_eq!(a.open_from(ip("10.0.0.1")), 1000);
        // A reload that turns the limit on sees them.
        assert!(a.admit_ip(ip("10.0.0.1"), 256).is_err());
        drop(guards);
        assert!(a.admit_ip(ip("10.0.0.1"), 256).is_ok());
    }

    #[test]
    fn ipv6_by_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            ip_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(ip_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(show_key(ip_key(ip("2001:db8::5"))), "2001:db8::/64");
        let a = Admission::default();
        let _g = a.admit_ip(ip("2001:db8::1"), 1).unwrap();
        assert!(a.admit_ip(ip("2001:db8::2"), 1).is_err());
        assert!(a.admit_ip(ip("2001:db8:0:1::1"), 1).is_ok());
        let _h = a.admit_ip(ip("::ffff:192.0.2.7"), 1).unwrap();
        assert!(a.admit_ip(ip("192.0.2.7"), 1).is_err());
    }

    #[test]
    fn refusal_lines_are_rate_limited_per_address() {
        let a = Admission::default();
        let _g = a.admit_ip(ip("10.0.0.1"), 1).unwrap();
        let logged: Vec<Option<u64>> = (0..1000)
            .map(|_| a.admit_ip(ip("10.0.0.1"), 1).unwrap_err().log)
            .collect();
        assert_eq!(logged[0], Some(0));
        assert_eq!(logged.iter().filter(|l| l.is_some()).count(), 1);
        // Another address gets its own line.
        let _h = a.admit_ip(ip("10.0.0.2"), 1).unwrap();
        assert_eq!(a.admit_ip(ip("10.0.0.2"), 1).unwrap_err().log, Some(0));
    }

    #[test]
    fn many_addresses_share_a_line_budget() {
        let a = Admission::default();
        let mut guards = Vec::new();
        let mut lines = 0;
        for i in 0..100u8 {
            let addr = IpAddr::from([10, 1, 0, i]);
            guards.push(a.admit_ip(addr, 1).unwrap());
            if a.admit_ip(addr, 1).unwrap_err().log.is_some() {
                lines += 1;
            }
        }
        assert_eq!(lines, PER_IP_LOG_LINES);
    }

    #[test]
    fn throttle_counts_what_it_leaves_out() {
        let t = Throttle::default();
        assert_eq!(t.due(), Some(0));
        for _ in 0..5 {
            assert_eq!(t.due(), None);
        }
        // Pretend the interval passed.
        t.0.lock().unwrap().0 = Some(Instant::now() - REFUSAL_LOG_INTERVAL);
        assert_eq!(t.due(), Some(5));
    }
}
