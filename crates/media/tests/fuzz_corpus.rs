//! The committed fuzz inputs of the targets whose parsers live in `media` (seed corpus and past
//! crashes), replayed through the very functions the cargo-fuzz targets call: see
//! `fuzz/entries/`. CI runs these on stable without cargo-fuzz.

#[path = "../../../fuzz/entries/replay.rs"]
mod replay;

#[path = "../../../fuzz/entries/flv.rs"]
mod flv;

#[path = "../../../fuzz/entries/ts_demux.rs"]
mod ts_demux;

#[path = "../../../fuzz/entries/rtp_h264.rs"]
mod rtp_h264;

#[path = "../../../fuzz/entries/ts_ingest.rs"]
mod ts_ingest;

#[test]
fn ts_ingest_corpus_and_regressions() {
    replay::replay("ts_ingest", ts_ingest::run);
}

#[path = "../../../fuzz/entries/hls_playlist.rs"]
mod hls_playlist;

#[test]
fn flv_corpus_and_regressions() {
    replay::replay("flv", flv::run);
}

#[test]
fn rtp_h264_corpus_and_regressions() {
    replay::replay("rtp_h264", rtp_h264::run);
}

#[test]
fn ts_demux_corpus_and_regressions() {
    replay::replay("ts_demux", ts_demux::run);
}

#[test]
fn hls_playlist_corpus_and_regressions() {
    replay::replay("hls_playlist", hls_playlist::run);
}

#[path = "../../../fuzz/entries/fmp4.rs"]
mod fmp4;

#[test]
fn fmp4_corpus_and_regressions() {
    replay::replay("fmp4", fmp4::run);
}

#[path = "../../../fuzz/entries/hls_writer.rs"]
mod hls_writer;

#[test]
fn hls_writer_corpus_and_regressions() {
    replay::replay("hls_writer", hls_writer::run);
}

#[path = "../../../fuzz/entries/dash_mpd.rs"]
mod dash_mpd;

#[test]
fn dash_mpd_corpus_and_regressions() {
    replay::replay("dash_mpd", dash_mpd::run);
}
