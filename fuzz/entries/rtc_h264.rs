//! WebRTC's H.264 conversions and datagram routing: FLV AVC frames → Annex B access units
//! (WHEP), Annex B access units → FLV payloads (WHIP), B-slice detection, and the STUN
//! USERNAME lookup that routes a datagram on the shared RTC port.
//!
//! The body of the `rtc_h264` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/rtc_h264/` and `fuzz/regressions/rtc_h264/` under plain `cargo test`.

use media::annexb::{is_b_slice, FromAnnexB, ToAnnexB};

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
    let mut from = FromAnnexB::new();
    let _ = from.access_unit(rest);
    let _ = from.access_unit(frames);
    let _ = is_b_slice(rest);
    let _ = sluice::rtc::stun::is_stun(rest);
    if let Some(u) = sluice::rtc::stun::local_ufrag(rest) {
        assert!(!u.is_empty() && u.len() <= 513);
    }
}
