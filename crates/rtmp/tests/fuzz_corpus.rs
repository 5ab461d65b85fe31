//! The committed fuzz inputs of the targets whose parsers live in `rtmp` (seed corpus and past
//! crashes), replayed through the very functions the cargo-fuzz targets call: see
//! `fuzz/entries/`. CI runs these on stable without cargo-fuzz.

#[path = "../../../fuzz/entries/replay.rs"]
mod replay;

#[path = "../../../fuzz/entries/chunk.rs"]
mod chunk;

#[path = "../../../fuzz/entries/handshake.rs"]
mod handshake;

#[path = "../../../fuzz/entries/server_session.rs"]
mod server_session;

#[path = "../../../fuzz/entries/bandcheck.rs"]
mod bandcheck;

#[test]
fn chunk_corpus_and_regressions() {
    replay::replay("chunk", chunk::run);
}

#[test]
fn handshake_corpus_and_regressions() {
    replay::replay("handshake", handshake::run);
}

#[test]
fn server_session_corpus_and_regressions() {
    replay::replay("server_session", server_session::run);
}

#[test]
fn bandcheck_corpus_and_regressions() {
    replay::replay("bandcheck", bandcheck::run);
}
