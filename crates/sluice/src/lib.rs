//! sluice: a live streaming server (RTMP in, RTMP/HTTP-FLV/HLS out).
pub mod config;
