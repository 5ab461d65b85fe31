//! Log setup: SRS's levels and tanks mapped onto `tracing`.
//!
//! Every line of a client carries its context id through the connection span
//! (`rtmp{cid=...}`), so `grep cid` tells one client's whole story.

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
        .with_target(false);
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
            Some(l) => l.file.lock().unwrap_or_else(|e| e.into_inner()).write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match LOG_FILE.get() {
            Some(l) => l.file.lock().unwrap_or_else(|e| e.into_inner()).flush(),
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
    *l.file.lock().unwrap_or_else(|e| e.into_inner()) = file;
    Ok(true)
}
