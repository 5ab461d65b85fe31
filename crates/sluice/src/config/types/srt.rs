//! `srt_server { }` (the SRT listener and libsrt's options for its connections) and
//! `vhost { srt { } }`. Names and defaults are SRS's (v5+).

use std::net::SocketAddr;
use std::time::Duration;

/// SRS's default SRT port.
pub const DEFAULT_SRT_PORT: u16 = 10080;

#[derive(Debug, Clone, PartialEq)]
pub struct SrtServerConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// `maxbw`: bytes per second a connection may send, -1 for libsrt's "relative to input".
    pub maxbw: i64,
    /// `mss`: the largest UDP packet, bytes.
    pub mss: u32,
    /// `connect_timeout`: libsrt's SRTO_CONNTIMEO.
    pub connect_timeout: Duration,
    /// `peer_idle_timeout`: a peer silent this long is disconnected (SRTO_PEERIDLETIMEO).
    pub peer_idle_timeout: Duration,
    /// `default_app`: the app of a stream id that names only a stream.
    pub default_app: String,
    /// `latency`: sets both directions (SRTO_LATENCY), ms; `recvlatency`/`peerlatency`
    /// override it per direction.
    pub latency: Option<u32>,
    pub recvlatency: u32,
    pub peerlatency: u32,
    pub tsbpdmode: bool,
    pub tlpktdrop: bool,
    pub sendbuf: u32,
    pub recvbuf: u32,
    /// `passphrase`: 10 to 79 characters; empty for no encryption.
    pub passphrase: String,
    /// `pbkeylen`: 0 (the caller's choice), 16, 24 or 32.
    pub pbkeylen: u32,
}

impl Default for SrtServerConfig {
    fn default() -> Self {
        SrtServerConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_SRT_PORT)),
            maxbw: -1,
            mss: 1500,
            connect_timeout: Duration::from_millis(3000),
            peer_idle_timeout: Duration::from_millis(10_000),
            default_app: "live".into(),
            latency: None,
            recvlatency: 120,
            peerlatency: 0,
            tsbpdmode: true,
            tlpktdrop: true,
            sendbuf: 8192 * (1500 - 28),
            recvbuf: 8192 * (1500 - 28),
            passphrase: String::new(),
            pbkeylen: 0,
        }
    }
}

/// `vhost { srt { enabled; srt_to_rtmp; } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct VhostSrtConfig {
    /// SRT clients may publish and play streams of this vhost (SRS: off by default).
    pub enabled: bool,
    /// SRS: bridge SRT publishes to RTMP. sluice always does (every output reads one
    /// Source); `off` is accepted and reported by `sluice -t`.
    pub srt_to_rtmp: bool,
}

impl Default for VhostSrtConfig {
    fn default() -> Self {
        VhostSrtConfig {
            enabled: false,
            srt_to_rtmp: true,
        }
    }
}
