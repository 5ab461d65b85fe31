//! Log setup: SRS's levels and tanks mapped onto `tracing`.
//!
//! Every line of a client carries its context id through the connection span
//! (`rtmp{cid=...}`), so `grep cid` tells one client's whole story.
//!
//! Every field of every line, the message included, goes through [`EscapedFields`]:
//! control characters are escaped and long values cut, so a client-supplied name
//! (a stream name with a newline, a 4 MB tcUrl) can neither forge a log line nor
//! flood the log, whichever line logs it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogLevel, LogTank};

fn filter_of(level: LogLevel) -> &'static str {
    // SRS's `trace` is its normal level: what an operator reads day to day.
    match level {
        LogLevel::Verbose => "trace",
        LogLevel::Info => "debug",
        LogLevel::Trace => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides the configured level.
pub fn init(log: &LogConfig) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter_of(log.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .fmt_fields(EscapedFields);
    match log.tank {
        LogTank::Console => {
            use std::io::IsTerminal;
            let ansi = std::io::stderr().is_terminal();
            builder.with_ansi(ansi).with_writer(std::io::stderr).init()
        }
        LogTank::File => {
            if let Some(dir) = log.file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("cannot create log dir {}: {e}", dir.display()))?;
            }
            let file = open(&log.file)?;
            let _ = LOG_FILE.set(LogFile {
                path: log.file.clone(),
                file: Mutex::new(file),
            });
            builder.with_ansi(false).with_writer(|| LogWriter).init()
        }
    }
    Ok(())
}

fn open(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open log file {}: {e}", path.display()))
}

/// The log file, reopened by [`reopen`] (SIGUSR1) after logrotate moved it.
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

static LOG_FILE: OnceLock<LogFile> = OnceLock::new();

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match LOG_FILE.get() {
            Some(l) => crate::util::lock(&l.file).write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match LOG_FILE.get() {
            Some(l) => crate::util::lock(&l.file).flush(),
            None => Ok(()),
        }
    }
}

/// Reopens the log file at its configured path (for logrotate's SIGUSR1).
/// With console logging there is nothing to do.
pub fn reopen() -> anyhow::Result<bool> {
    let Some(l) = LOG_FILE.get() else {
        return Ok(false);
    };
    let file = open(&l.path)?;
    *crate::util::lock(&l.file) = file;
    Ok(true)
}

/// Longest message of one log line, and longest value of one field, in bytes; the
/// rest is replaced by a count. Names clients may send are bounded far below this
/// at admission; these bounds are for whatever else ends up in a line.
pub const MAX_LOG_MESSAGE: usize = 4096;
pub const MAX_LOG_FIELD: usize = 1024;

/// Formats a line's fields (and its message) with control characters escaped
/// (`\n`, `\r`, `\t`, `\0`, others as `\u{..}`) and values cut at
/// [`MAX_LOG_FIELD`] bytes ([`MAX_LOG_MESSAGE`] for the message).
pub struct EscapedFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for EscapedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'w> {
    writer: tracing_subscriber::fmt::format::Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl EscapingVisitor<'_> {
    fn put(&mut self, field: &tracing::field::Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let message = name == "message";
        let sep = if self.first { "" } else { " " };
        self.first = false;
        let max = if message {
            MAX_LOG_MESSAGE
        } else {
            MAX_LOG_FIELD
        };
        self.result = if message {
            write!(self.writer, "{sep}{}", Escaped::new(value, max))
        } else {
            write!(self.writer, "{sep}{name}={}", Escaped::new(value, max))
        };
    }
}

impl tracing::field::Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field, value);
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        // Logs are not a hot path: one string per field keeps the escaping in one place.
        let text = format!("{value:?}");
        self.put(field, &text);
    }
}

/// A string as it may appear in a log line: control characters escaped, at most
/// `max` bytes of it shown.
pub struct Escaped<'a> {
    text: &'a str,
    max: usize,
}

impl<'a> Escaped<'a> {
    pub fn new(text: &'a str, max: usize) -> Self {
        Escaped { text, max }
    }
}

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        let mut shown = 0;
        for (i, c) in self.text.char_indices() {
            if shown >= self.max {
                return write!(f, "...({} more bytes)", self.text.len() - i);
            }
            shown += c.len_utf8();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\0' => f.write_str("\\0")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A hostile name stays one escaped line of bounded size, in the message, in a
    /// field and in a span's field.
    #[test]
    fn hostile_names_stay_one_bounded_line() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(EscapedFields)
            .finish();
        let forged = "live\n2026-01-01T00:00:00Z  INFO publish ip=1.2.3.4 stream=forged\0\x1b[31m";
        let huge = "x".repeat(4 * 1024 * 1024);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("rtmp", cid = %forged);
            let _in = span.enter();
            tracing::info!(tc_url = %forged, "publish stream={forged} huge={huge}");
        });
        let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.matches('\n').count(), 1, "one line: {out}");
        assert!(out.ends_with('\n'));
        assert!(!out.contains('\0') && !out.contains('\x1b'), "{out}");
        assert!(out.contains("live\\n2026-01-01"), "{out}");
        assert!(out.contains("\\u{1b}[31m"), "{out}");
        assert!(
            out.len() < MAX_LOG_MESSAGE + 3 * MAX_LOG_FIELD,
            "{} bytes",
            out.len()
        );
        assert!(out.contains("more bytes)"), "{out}");
    }
}
