//! WebRTC's H.264 conversions and datagram routing: FLV AVC frames → NAL units → RTP
//! payloads (WHEP: `ToAnnexB::nal_units`, `rtp_h264::packetize`, checked by reading the
//! payloads back), Annex B access units → FLV payloads (WHIP), B-slice detection, the
//! packet history's span codec, and the STUN USERNAME lookup that routes a datagram on
//! the shared RTC port.
//!
//! The body of the `rtc_h264` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/rtc_h264/` and `fuzz/regressions/rtc_h264/` under plain `cargo test`.

use media::annexb::{is_b_slice, FromAnnexB, ToAnnexB};
use media::rtp_h264;

/// One fuzz input; panics only on a bug. The first byte picks how the rest is split.
pub fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(sel).min(rest.len());
    let (record, frames) = rest.split_at(cut);
    let mut to = ToAnnexB::new();
    to.drop_b_frames = sel & 1 == 1;
    let _ = to.sequence_header(record);
    let mut out = Vec::new();
    if to.frame(frames, sel & 2 == 2, &mut out).is_ok() {
        // What WHEP sends must read back as what WHIP takes.
        let mut from = FromAnnexB::new();
        let v = from.access_unit(&out);
        if let Some(f) = v.frame {
            assert!(f.len() >= 5);
        }
    }
    let mut nalus = Vec::new();
    if to.nal_units(frames, sel & 2 == 2, &mut nalus).is_ok() {
        // Every payload within its size, and read back as the NAL units sent (the empty,
        // delimiter, filler and unspecified ones left out).
        let max = rtp_h264::MIN_PAYLOAD + usize::from(sel >> 2) * 8;
        let mut payloads = Vec::new();
        rtp_h264::packetize(&nalus, max, &mut payloads);
        assert!(payloads.iter().all(|p| !p.is_empty() && p.len() <= max));
        let sent: Vec<Vec<u8>> = nalus
            .iter()
            .filter(|n| n.first().is_some_and(|b| rtp_h264::sendable_type(b & 0x1f)))
            .map(|n| n.to_vec())
            .collect();
        assert_eq!(rtp_h264::depacketize(&payloads), Some(sent));
    }
    let mut payloads = Vec::new();
    rtp_h264::packetize(&[rest, frames, record], 1100, &mut payloads);
    let _ = rtp_h264::depacketize(&payloads);
    let _ = rtp_h264::depacketize(&[rest.to_vec(), frames.to_vec()]);
    if let Some(span) = sluice::rtc::history::Span::decode(rest) {
        assert_eq!(span.encode().as_slice(), rest);
    }
    let mut from = FromAnnexB::new();
    let _ = from.access_unit(rest);
    let _ = from.access_unit(frames);
    let _ = is_b_slice(rest);
    let _ = sluice::rtc::stun::is_stun(rest);
    if let Some(u) = sluice::rtc::stun::local_ufrag(rest) {
        assert!(!u.is_empty() && u.len() <= 513);
    }
}
