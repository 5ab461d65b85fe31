//! What other cluster nodes send: SRS coworker query replies (`/api/v1/clusters` JSON) and
//! Redis stream directory entries (`OWNER|RTMP|API`).
//!
//! The body of the `cluster_reply` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/cluster_reply/` and `fuzz/regressions/cluster_reply/` under plain `cargo test`.

use sluice::cluster::coworkers::parse_reply;
use sluice::cluster::directory::Entry;

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    if let Some(addr) = parse_reply(data) {
        // An address to dial: HOST:PORT with a real port, no path or space.
        let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
        assert!(!host.is_empty() && !addr.contains('/') && !addr.contains(' '));
        assert!(port.parse::<u16>().is_ok_and(|p| p > 0));
    }
    let text = String::from_utf8_lossy(data);
    if let Some(e) = Entry::decode(&text) {
        assert!(!e.owner.is_empty() && !e.rtmp.is_empty());
        assert_eq!(Entry::decode(&e.encode()), Some(e));
    }
}
