//! sluice: parse the command line, load the config, run the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser};
use sluice::config::{Config, ConfigError};

/// The default configuration, compiled in: `sluice` with no arguments serves RTMP on 1935.
const DEFAULT_CONFIG: &str = include_str!("../../../conf/sluice.conf");

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    about = "sluice: a live streaming server (RTMP in; RTMP out), in the lineage of SRS",
    version,
    disable_version_flag = true
)]
struct Cli {
    /// Config file (nginx-style, SRS directives). Without it the embedded conf/sluice.conf is used.
    #[arg(short = 'c', long = "conf", value_name = "FILE")]
    conf: Option<PathBuf>,
    /// Check the config and exit (like `nginx -t`).
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    version: Option<bool>,
}

fn load(cli: &Cli) -> Result<Config, ConfigError> {
    match &cli.conf {
        Some(path) => Config::load_with_env(path, std::env::vars()),
        None => Config::parse_with_env(
            DEFAULT_CONFIG,
            "conf/sluice.conf (embedded)",
            std::env::vars(),
        ),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice: config error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = cli
        .conf
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "conf/sluice.conf (embedded)".into());
    if cli.test {
        for w in &config.warnings {
            eprintln!("sluice: warning: {w}");
        }
        println!("sluice: the configuration file {name} syntax is ok");
        // The certificates too: a test that passes must mean the server starts.
        if let Err(e) = sluice::tls::Acceptors::build(&config) {
            eprintln!("sluice: {e}");
            eprintln!("sluice: configuration file {name} test failed");
            return ExitCode::FAILURE;
        }
        println!("sluice: configuration file {name} test is successful");
        return ExitCode::SUCCESS;
    }
    // The pid file is locked before detaching, so a second start fails in the
    // foreground where the operator sees it.
    let mut pid_file = match sluice::process::PidFile::acquire(&config.pid) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let startup = if config.daemon {
        match sluice::process::daemonize() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sluice: cannot run as a daemon: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        sluice::process::Startup::default()
    };
    let startup = std::sync::Arc::new(startup);
    if let Err(e) = pid_file.write_current() {
        startup.failed(&format!("cannot write the pid file: {e:#}"));
        return ExitCode::FAILURE;
    }
    if let Err(e) = sluice::logging::init(&config.log) {
        startup.failed(&e.to_string());
        eprintln!("sluice: {e}");
        return ExitCode::FAILURE;
    }
    let result = sluice::server::run(config, name, startup.clone());
    drop(pid_file);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            startup.failed(&format!("{e:#}"));
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}
