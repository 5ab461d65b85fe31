//! Log setup: SRS's levels and tanks mapped onto `tracing`.
//!
//! Every line of a client carries its context id through the connection span
//! (`rtmp{cid=...}`), so `grep cid` tells one client's whole story.

use std::fs::OpenOptions;
use std::sync::Mutex;

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
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log.file)
                .map_err(|e| anyhow::anyhow!("cannot open log file {}: {e}", log.file.display()))?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .init()
        }
    }
    Ok(())
}
