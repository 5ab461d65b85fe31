//! Both handshake ends on arbitrary bytes, split at fuzzer-chosen points.
//!
//! The body of the `handshake` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/handshake/` and `fuzz/regressions/handshake/` under plain `cargo test`.

use bytes::BytesMut;
use rtmp::handshake::{ClientHandshake, ServerHandshake};

/// Feeds `data` in pieces whose sizes cycle through `steps`; stops on error or completion.
fn drive(
    data: &[u8],
    steps: &[u8],
    mut process: impl FnMut(
        &mut BytesMut,
        &mut Vec<u8>,
    ) -> Result<bool, rtmp::handshake::HandshakeError>,
) {
    let mut input = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < data.len() {
        let step = steps.get(i % steps.len().max(1)).copied().unwrap_or(0);
        let n = (usize::from(step) * 13 + 1).min(data.len() - pos);
        input.extend_from_slice(&data[pos..pos + n]);
        pos += n;
        i += 1;
        match process(&mut input, &mut out) {
            Ok(true) => return,
            Ok(false) => {}
            Err(_) => {
                // A failed handshake stays failed.
                assert!(process(&mut input, &mut out).is_err());
                return;
            }
        }
    }
}

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (steps, body) = rest.split_at(usize::from(mode & 0x07).min(rest.len()));
    let seed = u64::from(mode).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    if mode & 0x80 == 0 {
        let mut server = ServerHandshake::new(seed, 0);
        drive(body, steps, |i, o| server.process(i, o));
        let _ = server.kind();
    } else {
        let mut client = ClientHandshake::new(mode & 0x40 != 0, seed, 0);
        let mut out = Vec::new();
        if mode & 0x20 != 0 {
            client.start(&mut out);
        }
        drive(body, steps, |i, o| client.process(i, o));
        let _ = (client.kind(), client.s2_valid());
    }
}
