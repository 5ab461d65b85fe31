//! The committed fuzz inputs of the targets whose parsers live in `sluice` (seed corpus and past
//! crashes), replayed through the very functions the cargo-fuzz targets call: see
//! `fuzz/entries/`. CI runs these on stable without cargo-fuzz.

#[path = "../../../fuzz/entries/replay.rs"]
mod replay;

#[path = "../../../fuzz/entries/config.rs"]
mod config;

#[path = "../../../fuzz/entries/http_path.rs"]
mod http_path;

#[path = "../../../fuzz/entries/srt_stream_id.rs"]
mod srt_stream_id;

#[test]
fn srt_stream_id_corpus_and_regressions() {
    replay::replay("srt_stream_id", srt_stream_id::run);
}

#[test]
fn config_corpus_and_regressions() {
    replay::replay("config", config::run);
}

#[test]
fn http_path_corpus_and_regressions() {
    replay::replay("http_path", http_path::run);
}

#[path = "../../../fuzz/entries/rtc_h264.rs"]
mod rtc_h264;

#[test]
fn rtc_h264_corpus_and_regressions() {
    replay::replay("rtc_h264", rtc_h264::run);
}

#[path = "../../../fuzz/entries/rtc_opus_aac.rs"]
mod rtc_opus_aac;

#[test]
fn rtc_opus_aac_corpus_and_regressions() {
    replay::replay("rtc_opus_aac", rtc_opus_aac::run);
}

#[path = "../../../fuzz/entries/cluster_reply.rs"]
mod cluster_reply;

#[test]
fn cluster_reply_corpus_and_regressions() {
    replay::replay("cluster_reply", cluster_reply::run);
}
