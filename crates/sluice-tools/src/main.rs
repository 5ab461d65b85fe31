//! `sluice-tools`: what an operator reaches for when a stream looks wrong: the PSI and PES of
//! an MPEG-TS file, the tags and metadata of an FLV file, and a check of an HLS playlist and
//! its segments. Everything is read with the `media` crate's demuxers, so what these tools
//! see is what sluice itself would see.

/// Prints a line to stdout, ignoring errors: `sluice-tools ts --packets FILE | head` closes
/// the pipe early, and a tool should stop quietly rather than panic there.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod flv;
mod hls;
mod ts;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice-tools",
    version,
    about = "Inspect MPEG-TS, FLV and HLS media"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// PAT/PMT and a per-PID summary of an MPEG-TS file.
    Ts {
        file: PathBuf,
        /// Print every PES (PID, PTS, DTS, size, random-access flag, keyframe).
        #[arg(long)]
        packets: bool,
    },
    /// Header, onMetaData, sequence headers and a tag summary of an FLV file.
    Flv {
        file: PathBuf,
        /// Print every tag.
        #[arg(long)]
        tags: bool,
    },
    /// Check a media playlist (or the one playlist in a directory) and its segments; exits 1
    /// on any problem.
    Hls {
        playlist: PathBuf,
        /// Seconds an EXTINF may differ from the segment's measured duration.
        #[arg(long, default_value_t = 0.25)]
        tolerance: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ts { file, packets } => ts::run(&file, packets),
        Command::Flv { file, tags } => flv::run(&file, tags),
        Command::Hls {
            playlist,
            tolerance,
        } => hls::run(&playlist, tolerance),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        // The report already says what is wrong.
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sluice-tools: {e}");
            ExitCode::from(2)
        }
    }
}
