//! MPEG-TS (HLS segments pulled or ingested) fed in pieces.
//!
//! The body of the `ts_demux` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/ts_demux/` and `fuzz/regressions/ts_demux/` under plain `cargo test`.

use media::ts::TsDemuxer;

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let mut demux = TsDemuxer::new();
    let mut events = Vec::new();
    for piece in data.chunks(usize::from(step) + 1) {
        demux.push(piece, &mut events);
        events.clear();
    }
    demux.finish(&mut events);
    let _ = (demux.cc_errors(), demux.streams(), demux.packets());
    // The packet-level entry point, on whatever lengths the input gives.
    let mut demux = TsDemuxer::new();
    for pkt in data.chunks(188) {
        let _ = demux.push_packet(pkt, &mut events);
    }
}
