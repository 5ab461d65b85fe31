//! RTMP protocol: handshake, chunk stream, messages and sessions (sans-IO), and a small tokio client.
//!
//! Everything but the tokio client is sans-IO: bytes in, events and bytes out, no runtime, so
//! the server (sluice's `rtmp_service`), the fuzz targets and the tests drive the same code.
//!
//! # Cargo features
//!
//! - `client` (off by default): `client::Client`, `client::Publisher` and
//!   `client::Player`, the sans-IO [`client::ClientSession`] glued to a tokio `TcpStream`
//!   (what sluice's forward and edge and sluice-bench use). Off by default so that a user of
//!   the protocol alone does not pull tokio in.
pub mod bandcheck;
pub mod chunk;
pub mod client;
mod control;
pub mod handshake;
pub mod message;
pub mod server;
