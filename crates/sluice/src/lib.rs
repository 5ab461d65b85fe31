//! sluice: a live streaming server (RTMP in, RTMP/HTTP-FLV/HLS out).
pub mod config;
pub mod hub;
pub mod stream_url;
