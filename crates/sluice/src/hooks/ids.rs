//! SRS's `server_id` and `service_id`, which hooks and the heartbeat carry so a backend can
//! tell servers (and restarts of one server) apart.

use std::sync::OnceLock;

use crate::util::ids::{base36, scramble};

/// FNV-1a then a splitmix finaliser: a stable, well-spread 64-bit digest (not a secret).
fn digest(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    scramble(h)
}

/// Stable for one installation (host name and working directory), like SRS's persisted
/// `vid-...` id: a restart keeps it, another machine or directory gets another.
pub fn server_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        format!(
            "vid-{}",
            base36(digest(&[host.trim().as_bytes(), cwd.as_bytes()]), 7)
        )
    })
}

/// New for each process start.
pub fn service_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let ms = crate::util::unix_ms();
        let pid = std::process::id();
        base36(digest(&[&ms.to_le_bytes(), &pid.to_le_bytes()]), 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_in_a_process() {
        assert_eq!(server_id(), server_id());
        assert!(server_id().starts_with("vid-") && server_id().len() == 11);
        assert_eq!(service_id().len(), 8);
        assert_eq!(service_id(), service_id());
    }
}
