//! Errors of the config loader. Every variant names the file (and line when there is one),
//! because the operator must be able to jump straight to the offending spot.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read (missing, permissions, too large, not UTF-8).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A config file (with its includes) without a single directive: empty, comments only, or
    /// truncated by a deploy. Applying it would silently reset everything to the defaults
    /// (see `reload.rs`), so it is refused.
    #[error(
        "{}: no directive at all (empty, comment-only or truncated file?); refused, because it \
         would reset everything to the defaults (RTMP on 1935 only, no HTTP API or server, no \
         HLS); write at least one directive (\"listen 1935;\" is a complete config), or start \
         without -c for the embedded default",
        path.display()
    )]
    Empty { path: PathBuf },
    /// The text does not follow the `name args;` / `name args { ... }` grammar.
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: u32,
        message: String,
    },
    /// A directive nobody knows (neither sluice nor SRS): most likely a typo.
    #[error("{file}:{line}: unknown directive \"{name}\"{context}")]
    UnknownDirective {
        file: String,
        line: u32,
        name: String,
        /// e.g. ` in vhost __defaultVhost__`, empty at the top level.
        context: String,
    },
    /// A known directive with a bad value, a bad argument count or a misplaced block.
    #[error("{file}:{line}: {directive}: {message}")]
    Invalid {
        file: String,
        line: u32,
        directive: String,
        message: String,
    },
    /// `include` failed: target missing, cycle, or nesting too deep.
    #[error("{file}:{line}: include \"{target}\": {message}")]
    Include {
        file: String,
        line: u32,
        target: String,
        message: String,
    },
}

impl ConfigError {
    /// The line the error points at, if any (tests and tooling use it).
    pub fn line(&self) -> Option<u32> {
        match self {
            ConfigError::Io { .. } | ConfigError::Empty { .. } => None,
            ConfigError::Syntax { line, .. }
            | ConfigError::UnknownDirective { line, .. }
            | ConfigError::Invalid { line, .. }
            | ConfigError::Include { line, .. } => Some(*line),
        }
    }
}
