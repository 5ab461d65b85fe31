//! sluice-bench: a load generator and fan-out benchmark for live streaming servers.
//!
//! `publish` pushes a looped FLV in real time, `play` runs N players (RTMP, HTTP-FLV,
//! HLS), `fanout` does both in one process and measures per-frame delivery latency. The
//! figures in docs/performance.md come from here, run by bench/fanout.sh.
pub mod bandcheck;
pub mod http;
pub mod matching;
pub mod player;
pub mod procstat;
pub mod publisher;
pub mod report;
pub mod run;
pub mod shared;
pub mod source;
pub mod stats;
pub mod whep;
