//! SRS's bandwidth-test packets (`rtmp::bandcheck`) from arbitrary AMF0 command payloads: what
//! a hostile client (to the server) or server (to `sluice-bench bandcheck`) can send.
//!
//! The body of the `bandcheck` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/bandcheck/` and `fuzz/regressions/bandcheck/` under plain `cargo test`.

use bytes::Bytes;
use rtmp::bandcheck::{Packet, Report};
use rtmp::message::{msg_type, Message};

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let Ok(Message::Command(cmd)) =
        Message::decode(msg_type::COMMAND_AMF0, Bytes::copy_from_slice(data))
    else {
        return;
    };
    let Some(p) = Packet::from_command(&cmd) else {
        return;
    };
    let r = Report::from_packet(&p);
    let _ = (r.play.kbps(), r.publish.kbps(), Report::kbps(&p));
    for key in ["limit_kbps", "duration_ms", "interval_ms"] {
        let _ = p.number(key);
    }
    // What we would send back encodes.
    let _ = p.to_message().encode_payload();
}
