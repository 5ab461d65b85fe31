//! H.264 RTP packetization (RFC 6184 mode 1, `media::rtp_h264`): any run of NAL units, cut
//! at any payload size, must make payloads within that size that read back as the NAL units
//! sent; and the depacketizer must take any payloads without panicking.
//!
//! The body of the `rtp_h264` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/rtp_h264/` and `fuzz/regressions/rtp_h264/` under plain `cargo test`.

use media::rtp_h264::{depacketize, packetize, sendable_type, MIN_PAYLOAD};

/// One fuzz input; panics only on a bug. The first two bytes pick the payload size (from
/// [`MIN_PAYLOAD`] to ~64 KiB); the rest is NAL units, each after a one-byte length.
pub fn run(data: &[u8]) {
    let Some((size, mut rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = MIN_PAYLOAD + usize::from(u16::from_be_bytes(*size));
    let mut nalus: Vec<&[u8]> = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        nalus.push(&tail[..n]);
        rest = &tail[n..];
    }
    let mut payloads = Vec::new();
    packetize(&nalus, max, &mut payloads);
    assert!(payloads.iter().all(|p| !p.is_empty() && p.len() <= max));
    let sent: Vec<Vec<u8>> = nalus
        .iter()
        .filter(|n| n.first().is_some_and(|b| sendable_type(b & 0x1f)))
        .map(|n| n.to_vec())
        .collect();
    assert_eq!(depacketize(&payloads), Some(sent));
    // The depacketizer on anything: the raw NAL units as payloads.
    let raw: Vec<Vec<u8>> = nalus.iter().map(|n| n.to_vec()).collect();
    let _ = depacketize(&raw);
}
