//! `rtc_server { }` and `vhost { rtc { } }`: WebRTC (WHIP publish, WHEP play).

/// SRS's default UDP port for WebRTC media.
pub const DEFAULT_RTC_PORT: u16 = 8000;

/// Default of `rtc_server { max_handshakes }`.
pub const DEFAULT_MAX_HANDSHAKES: usize = 256;

/// Top-level `rtc_server { }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcServerConfig {
    /// SRS default: off.
    pub enabled: bool,
    /// The one UDP port every peer's media uses (ICE-lite, peers told apart by ufrag).
    pub listen: u16,
    /// The address announced in answers, as written: an IP, a host name, `*` (every
    /// address of the listening interfaces) or `$NAME` (read from the environment when
    /// the server starts). SRS default: `*`.
    pub candidate: String,
    /// `max_handshakes` (sluice's own): offers answered but not yet connected (ICE and
    /// DTLS) at once; more are refused with 503 until some connect or time out.
    pub max_handshakes: usize,
    /// `candidate_port` (sluice's own): the UDP port announced in answers when a port
    /// mapping (Docker's `-p 18000:8000/udp`, a NAT, a relay) makes it differ from
    /// `listen`; `None`: `listen`.
    pub candidate_port: Option<u16>,
}

impl Default for RtcServerConfig {
    fn default() -> Self {
        RtcServerConfig {
            enabled: false,
            listen: DEFAULT_RTC_PORT,
            candidate: "*".to_string(),
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            candidate_port: None,
        }
    }
}

/// `vhost { rtc { } }`. SRS's defaults: all off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VhostRtcConfig {
    pub enabled: bool,
    /// RTMP (and every other non-WebRTC) publish plays over WHEP.
    pub rtmp_to_rtc: bool,
    /// A WHIP publish is a normal stream for RTMP, HTTP-FLV, HLS, DVR, forward.
    pub rtc_to_rtmp: bool,
}
