//! The committed fuzz inputs of the targets whose parsers live in `amf` (seed corpus and past
//! crashes), replayed through the very functions the cargo-fuzz targets call: see
//! `fuzz/entries/`. CI runs these on stable without cargo-fuzz.

#[path = "../../../fuzz/entries/replay.rs"]
mod replay;

#[path = "../../../fuzz/entries/amf0.rs"]
mod amf0;

#[test]
fn amf0_corpus_and_regressions() {
    replay::replay("amf0", amf0::run);
}
