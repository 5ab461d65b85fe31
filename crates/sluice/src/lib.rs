//! sluice: a live streaming server (RTMP in, RTMP/HTTP-FLV/HLS out).
pub mod config;
pub mod context;
pub mod http;
pub mod hub;
pub mod logging;
pub mod rtmp_service;
pub mod server;
pub mod stats;
pub mod stream_url;
