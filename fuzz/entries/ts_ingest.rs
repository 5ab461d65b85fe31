//! MPEG-TS from SRT publishers, turned into FLV frames (`media::ts::TsIngest`).
//!
//! The body of the `ts_ingest` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/ts_ingest/` and `fuzz/regressions/ts_ingest/` under plain `cargo test`.

use media::ts::TsIngest;

/// One fuzz input; panics only on a bug. The first byte picks the size of the pieces the
/// input is fed in (SRT messages are up to 1316 bytes, but anything must be survived).
pub fn run(data: &[u8]) {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let mut ingest = TsIngest::new();
    let mut out = Vec::new();
    for piece in data.chunks(usize::from(step) * 7 + 1) {
        ingest.push(piece, &mut out);
        // Bounded: what comes out is at most what went in, plus headers.
        out.clear();
    }
    ingest.finish(&mut out);
    let _ = ingest.stats();
}
