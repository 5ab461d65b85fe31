//! A stream's RTP packet history: the payloads its WHEP players send, made once per stream
//! by its [`super::feed`] and shared by every player.
//!
//! Each packet has a number on the stream (its index, counting from the feed's start). A
//! frame of the feed's Source carries only a [`Span`] (its first packet's index and its
//! packet count), so what the delivery path hands each player is 12 bytes per frame, not
//! the frame. The UDP task looks the span up here and gives each player's `str0m` stream
//! the same `Arc<[u8]>` payloads under that player's own sequence numbers; str0m's
//! retransmission cache of each player keeps those `Arc`s, so a NACK from any player is
//! answered from these bytes: a stream's packets are held once however many players it
//! has (a player's cache is a list of references).
//!
//! What is kept: everything from the newest keyframe on (a new player starts there, as the
//! feed's GOP cache says), and at least [`RETAIN_MS`] of media behind the newest packet
//! (what a NACK can still ask for: str0m answers NACKs for 3 s), within [`MAX_BYTES`].
//! A player asking for a span that is gone has fallen that far behind: it waits for the
//! next keyframe.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Media time kept behind the newest packet, beyond the current GOP.
pub const RETAIN_MS: u64 = 3_000;
/// Bytes one stream's history may hold (payloads plus a per-packet overhead): 16 MiB is
/// a 4 s GOP of a 30 Mb/s stream. Past it the oldest packets go, keyframe or not.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// What a packet costs beyond its payload (the `Arc` header, the entry).
const PACKET_OVERHEAD: usize = 48;

/// A run of packets in a stream's history: one frame's. Encoded as 12 bytes (the first
/// index, u64 BE, then the count, u32 BE), the payload of the feed's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub first: u64,
    pub count: u32,
}

impl Span {
    pub const LEN: usize = 12;

    pub fn encode(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&self.first.to_be_bytes());
        b[8..].copy_from_slice(&self.count.to_be_bytes());
        b
    }

    /// None unless `b` is exactly one encoded span.
    pub fn decode(b: &[u8]) -> Option<Span> {
        let b: &[u8; Self::LEN] = b.try_into().ok()?;
        let (first, count) = b.split_at(8);
        Some(Span {
            first: u64::from_be_bytes(first.try_into().ok()?),
            count: u32::from_be_bytes(count.try_into().ok()?),
        })
    }
}

struct Packet {
    payload: Arc<[u8]>,
    time_ms: u64,
}

#[derive(Default)]
struct Inner {
    /// Index of `packets[0]`.
    first: u64,
    packets: VecDeque<Packet>,
    bytes: usize,
    /// Index of the newest keyframe's first packet.
    keyframe: Option<u64>,
    newest_ms: u64,
}

/// One stream's packets (see the module's doc).
#[derive(Default)]
pub struct PacketHistory {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for PacketHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = crate::util::lock(&self.inner);
        f.debug_struct("PacketHistory")
            .field("packets", &st.packets.len())
            .field("bytes", &st.bytes)
            .finish()
    }
}

impl PacketHistory {
    /// Adds one frame's packets (media time `time_ms`) and returns their span; drops what
    /// no longer needs keeping.
    pub fn push(&self, packets: Vec<Vec<u8>>, time_ms: u64, keyframe: bool) -> Span {
        let mut st = crate::util::lock(&self.inner);
        let first = st.first + st.packets.len() as u64;
        let count = packets.len().min(u32::MAX as usize) as u32;
        if keyframe && count > 0 {
            st.keyframe = Some(first);
        }
        st.newest_ms = st.newest_ms.max(time_ms);
        for p in packets.into_iter().take(count as usize) {
            st.bytes += p.len() + PACKET_OVERHEAD;
            st.packets.push_back(Packet {
                payload: p.into(),
                time_ms,
            });
        }
        st.trim();
        Span { first, count }
    }

    /// Appends the payloads of `span` to `out`; false (and nothing appended) when any of
    /// them is gone, or was never made.
    pub fn get(&self, span: Span, out: &mut Vec<Arc<[u8]>>) -> bool {
        let st = crate::util::lock(&self.inner);
        let Some(start) = span.first.checked_sub(st.first) else {
            return false;
        };
        let Ok(start) = usize::try_from(start) else {
            return false;
        };
        let end = start.saturating_add(span.count as usize);
        if end > st.packets.len() {
            return false;
        }
        out.extend(st.packets.range(start..end).map(|p| p.payload.clone()));
        true
    }

    /// Packets and bytes held.
    pub fn size(&self) -> (usize, usize) {
        let st = crate::util::lock(&self.inner);
        (st.packets.len(), st.bytes)
    }
}

impl Inner {
    fn trim(&mut self) {
        while let Some(front) = self.packets.front() {
            let in_gop = self.keyframe.is_some_and(|k| self.first >= k);
            let recent = self.newest_ms.saturating_sub(front.time_ms) <= RETAIN_MS;
            if self.bytes <= MAX_BYTES && (in_gop || recent) {
                break;
            }
            self.bytes -= front.payload.len() + PACKET_OVERHEAD;
            self.packets.pop_front();
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; len]).collect()
    }

    #[test]
    fn spans_encode_to_twelve_bytes_and_back() {
        let s = Span {
            first: 0x0102_0304_0506_0708,
            count: 9,
        };
        assert_eq!(Span::decode(&s.encode()), Some(s));
        assert_eq!(Span::decode(&s.encode()[..11]), None);
        assert_eq!(Span::decode(&[0; 13]), None);
    }

    #[test]
    fn a_span_gives_back_the_same_payloads_every_time() {
        let h = PacketHistory::default();
        let a = h.push(frame(3, 10), 0, true);
        let b = h.push(frame(2, 10), 40, false);
        assert_eq!(a, Span { first: 0, count: 3 });
        assert_eq!(b, Span { first: 3, count: 2 });
        let mut one = Vec::new();
        let mut two = Vec::new();
        assert!(h.get(b, &mut one));
        assert!(h.get(b, &mut two));
        assert_eq!(one.len(), 2);
        // Shared, not copied: the players' caches hold these very bytes.
        assert!(Arc::ptr_eq(&one[0], &two[0]));
        assert!(!h.get(Span { first: 4, count: 2 }, &mut one));
        assert_eq!(one.len(), 2);
    }

    #[test]
    fn the_current_gop_stays_and_older_packets_go_after_the_retention() {
        let h = PacketHistory::default();
        let k0 = h.push(frame(2, 100), 0, true);
        let p = h.push(frame(1, 100), 1_000, false);
        let k1 = h.push(frame(2, 100), 2_000, true);
        // Within the retention: all kept.
        let mut v = Vec::new();
        assert!(h.get(k0, &mut v));
        // A long GOP: the last keyframe stays whatever its age; what is older than it and
        // the retention goes.
        let mut last = k1;
        for t in 1..=100 {
            last = h.push(frame(1, 100), 2_000 + t * 100, false);
        }
        assert!(!h.get(k0, &mut v));
        assert!(!h.get(p, &mut v));
        assert!(h.get(k1, &mut v));
        assert!(h.get(last, &mut v));
        // A new keyframe lets the old GOP go once it is past the retention.
        let k2 = h.push(frame(1, 100), 12_100, true);
        h.push(frame(1, 100), 12_100 + RETAIN_MS + 1, false);
        assert!(!h.get(k1, &mut v));
        assert!(h.get(k2, &mut v));
    }

    #[test]
    fn the_byte_bound_holds_whatever_the_gop() {
        let h = PacketHistory::default();
        h.push(frame(1, 1000), 0, true);
        let per = 64 * 1024;
        for t in 0..(2 * MAX_BYTES / per) {
            h.push(frame(1, per), t as u64, false);
        }
        let (_, bytes) = h.size();
        assert!(bytes <= MAX_BYTES, "{bytes}");
    }
}
