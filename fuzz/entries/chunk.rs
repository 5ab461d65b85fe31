//! The chunk stream with arbitrary splits and chunk-size changes: a control byte either sets
//! the chunk size (next 4 bytes, valid or not), aborts a chunk stream, or appends a piece.
//!
//! The body of the `chunk` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/chunk/` and `fuzz/regressions/chunk/` under plain `cargo test`.

use bytes::BytesMut;
use rtmp::chunk::{ChunkDecoder, DecoderLimits};

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let limits = DecoderLimits {
        max_message_size: 1 << 20,
        max_chunk_streams: 16,
        max_buffered: 4 * 1024 * 1024,
    };
    let mut dec = ChunkDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut rest = data;
    while let Some((&ctrl, tail)) = rest.split_first() {
        rest = tail;
        match ctrl >> 6 {
            0 if rest.len() >= 4 => {
                let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                rest = &rest[4..];
                // Small sizes make many chunks per message: the interesting case.
                let _ = dec.set_chunk_size(if ctrl & 1 == 0 { size % 300 } else { size });
            }
            1 => dec.abort(u32::from(ctrl & 0x3f)),
            _ => {
                let n = usize::from(ctrl & 0x7f).min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
        }
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(msg)) => {
                    // Act on Set Chunk Size like a session does.
                    if msg.header.type_id == 1 && msg.payload.len() >= 4 {
                        let p = &msg.payload;
                        let size = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                        if dec.set_chunk_size(size).is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
