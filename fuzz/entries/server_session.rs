//! A server session after the handshake: arbitrary chunk-stream bytes from a client, in pieces.
//! The caller's side is played too (accept connect/publish/play) so later states are reached.
//!
//! The body of the `server_session` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/server_session/` and `fuzz/regressions/server_session/` under plain `cargo test`.

use bytes::BytesMut;
use rtmp::chunk::DecoderLimits;
use rtmp::server::{Event, ServerConfig, ServerSession};

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let config = ServerConfig {
        limits: DecoderLimits {
            max_message_size: 1 << 20,
            max_chunk_streams: 16,
            max_buffered: 4 * 1024 * 1024,
        },
        ..ServerConfig::default()
    };
    let mut session = ServerSession::new(config);
    let mut buf = BytesMut::new();
    let step = if step == 0 {
        usize::MAX
    } else {
        usize::from(step)
    };
    for piece in data.chunks(step.min(data.len().max(1))) {
        buf.extend_from_slice(piece);
        loop {
            match session.feed(&mut buf) {
                Ok(Some(ev)) => match ev {
                    Event::Connect(_) => session.accept_connect(),
                    Event::Publish { stream_id, .. } => session.accept_publish(stream_id),
                    Event::Play {
                        stream_id,
                        name,
                        reset,
                        ..
                    } => session.accept_play(stream_id, &name, reset),
                    _ => {}
                },
                Ok(None) => break,
                Err(_) => return,
            }
            let _ = session.take_output();
        }
    }
    let _ = session.bytes_in();
}
