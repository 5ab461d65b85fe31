//! Replays a fuzz target's committed inputs through its entry function under plain `cargo test`,
//! so that CI keeps every seed and every past crash passing without cargo-fuzz or nightly flags.
//! Included by `#[path]` from a test file in the crate that owns the parser.

use std::path::{Path, PathBuf};

/// Every file under `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` (the crash inputs
/// kept as regression tests; the directory may be missing for a target that never crashed).
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// Runs `run` on every input of `target` and fails naming each input that panicked. A target
/// with no committed input at all fails too: an empty replay would pass without testing anything.
pub fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no committed fuzz input for {target}");
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target}: inputs that panic: {failed:?}");
}
