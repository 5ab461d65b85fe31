//! RTMP protocol: handshake, chunk stream, messages and sessions (sans-IO), and a small tokio client.
pub mod chunk;
pub mod client;
mod control;
pub mod handshake;
pub mod message;
pub mod server;
