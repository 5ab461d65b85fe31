//! WebRTC's Opus → AAC for WHIP publishers (`sluice::rtc::opus_aac`): whatever Opus
//! packets a publisher sends, at whatever RTP times (reordered, repeated, wrapping, far
//! apart), the transcoder neither panics nor allocates without bound, and the AAC
//! timestamps it gives never go back.
//!
//! The body of the `rtc_opus_aac` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/rtc_opus_aac/` and `fuzz/regressions/rtc_opus_aac/` under plain `cargo test`.

use sluice::rtc::opus_aac::OpusToAac;

/// One fuzz input: records of [rtp step (2 bytes, big-endian, in 2.5 ms units, signed),
/// length (1 byte), that many bytes of Opus].
pub fn run(data: &[u8]) {
    let Ok(mut t) = OpusToAac::new() else {
        return;
    };
    let mut out = Vec::new();
    let mut rtp: u64 = 1 << 32;
    let mut rest = data;
    let mut last_ts = 0u64;
    let mut packets = 0;
    while rest.len() >= 3 && packets < 64 {
        let step = i64::from(i16::from_be_bytes([rest[0], rest[1]])) * 120;
        let len = usize::from(rest[2]).min(rest.len() - 3);
        let payload = &rest[3..3 + len];
        rest = &rest[3 + len..];
        rtp = rtp.saturating_add_signed(step);
        t.push(rtp, 100, payload, &mut out);
        packets += 1;
        for o in out.drain(..) {
            assert!(o.payload.len() >= 2 && o.payload[0] == 0xAF);
            if o.payload[1] == 1 {
                assert!(o.ts_ms >= last_ts, "AAC time went back");
                last_ts = o.ts_ms;
            }
        }
    }
}
