//! The open-file limit: every connection is a file descriptor, so it caps how many players
//! one process can hold. Distributions start processes with a low soft limit (often 1024)
//! under a much higher hard one; raising the soft limit to the hard one needs no privilege.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use tracing::{info, warn};

/// Descriptors kept for what is not a client connection: listeners, the log file, epoll
/// and timers, HLS/DVR files being written, forward and edge connections.
pub const RESERVED_FDS: u64 = 64;

/// The open-file limit after start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFile {
    pub soft: u64,
    pub hard: u64,
    /// The soft limit before we raised it, when we did.
    pub raised_from: Option<u64>,
}

/// Client connections a soft limit allows.
pub fn connections_allowed(soft: u64) -> u64 {
    soft.saturating_sub(RESERVED_FDS)
}

/// Raises the soft RLIMIT_NOFILE to the hard one.
pub fn raise_nofile() -> nix::Result<NoFile> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= hard {
        return Ok(NoFile {
            soft,
            hard,
            raised_from: None,
        });
    }
    // An unlimited hard limit cannot be the soft one for files (the kernel caps it at
    // fs.nr_open); 1M is that cap's default.
    let target = if hard == RLIM_INFINITY { 1 << 20 } else { hard };
    setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
    Ok(NoFile {
        soft: target,
        hard,
        raised_from: Some(soft),
    })
}

/// Raises the limit and says in the log how many connections it allows, warning when
/// `max_connections` and the API's own cap are above that (connections beyond it would
/// fail with EMFILE).
pub fn raise_and_log(max_connections: usize) {
    match raise_nofile() {
        Ok(l) => {
            let allowed = connections_allowed(l.soft);
            match l.raised_from {
                Some(old) => info!(
                    "open files: soft limit raised from {old} to {} (hard {}): about {allowed} connections",
                    l.soft, l.hard
                ),
                None => info!(
                    "open files: limit {} (hard {}): about {allowed} connections",
                    l.soft, l.hard
                ),
            }
            // The API's own connections come on top of max_connections.
            let api = crate::admission::API_MAX_CONNECTIONS as u64;
            if max_connections as u64 + api > allowed {
                warn!(
                    "max_connections {max_connections} plus the API's {api} connections is above \
                     the {allowed} connections the open-file limit allows"
                );
            }
        }
        Err(e) => warn!("open files: cannot read or raise RLIMIT_NOFILE: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve() {
        assert_eq!(connections_allowed(20_000), 20_000 - RESERVED_FDS);
        assert_eq!(connections_allowed(10), 0);
    }

    #[test]
    fn raising_is_idempotent_and_reaches_the_hard_limit() {
        let first = raise_nofile().unwrap();
        let again = raise_nofile().unwrap();
        assert_eq!(again.raised_from, None);
        assert_eq!(again.soft, first.soft);
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, first.soft);
        assert!(hard == RLIM_INFINITY || soft == hard);
    }
}
