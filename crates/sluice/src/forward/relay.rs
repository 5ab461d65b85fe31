//! What forward and edge share: turning RTMP messages into hub frames and back, the
//! upstream URLs, and the guard against forwarding a stream to ourselves.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::{VhostConfig, DEFAULT_VHOST};
use crate::hub::{SourceSettings, StreamKey};

/// First wait after a failed attempt; doubled on each failure up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A connection that lasted this long resets the back-off: it was not a flapping peer.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// TCP connect, handshake and command replies to an upstream server.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// An upstream that accepts nothing for this long is given up and reconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub use crate::hub::{make_frame, media_kind};

/// The queue settings a relay's consumer uses: the vhost's, like any player.
pub fn settings_of(vhost: &VhostConfig) -> SourceSettings {
    let q = vhost.effective_queue_length();
    SourceSettings {
        gop_cache: vhost.effective_gop_cache(),
        queue_length_ms: if q.is_finite() && q > 0.0 {
            (q * 1000.0) as u64
        } else {
            0
        },
    }
}

/// `rtmp://HOST:PORT/app[?vhost=V]/stream[?param]`: the same stream on another server. The
/// vhost rides in the app (SRS's way) unless it is the default one, which every server
/// (nginx-rtmp included, which would take `live?vhost=...` as the application name) has.
pub fn upstream_url(host_port: &str, key: &StreamKey, param: &str) -> String {
    let (scheme, host_port) = split_scheme(host_port);
    let mut url = format!("{scheme}://{host_port}/{}", key.app);
    if key.vhost != DEFAULT_VHOST {
        url.push_str("?vhost=");
        url.push_str(&key.vhost);
    }
    url.push('/');
    url.push_str(&key.stream);
    let param = param.trim_start_matches('?');
    if !param.is_empty() {
        url.push('?');
        url.push_str(param);
    }
    url
}

/// `rtmps://HOST:PORT` → ("rtmps", "HOST:PORT"); a bare `HOST:PORT` (or `rtmp://`) is plain RTMP.
pub fn split_scheme(server: &str) -> (&'static str, &str) {
    let lower = |p: &str| server.len() >= p.len() && server[..p.len()].eq_ignore_ascii_case(p);
    if lower("rtmps://") {
        ("rtmps", &server[8..])
    } else if lower("rtmp://") {
        ("rtmp", &server[7..])
    } else {
        ("rtmp", server)
    }
}

/// The client's stream parameters without the vhost (which [`upstream_url`] sets itself).
pub fn strip_vhost_param(param: &str) -> String {
    param
        .trim_start_matches('?')
        .split('&')
        .filter(|kv| {
            let k = kv.split_once('=').map_or(*kv, |(k, _)| k);
            !kv.is_empty() && !k.eq_ignore_ascii_case("vhost") && !k.eq_ignore_ascii_case("domain")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether `host_port` reaches one of our own RTMP listeners: forwarding there would feed
/// the stream back into itself. Only literal addresses and `localhost` are checked (no DNS
/// lookup on the publish path).
pub fn is_own_address(host_port: &str, listen: &[SocketAddr]) -> bool {
    let Some(target) = literal_addr(host_port) else {
        return false;
    };
    listen.iter().any(|l| {
        l.port() == target.port()
            && (l.ip() == target.ip() || l.ip().is_unspecified() && is_local(target.ip()))
    })
}

fn literal_addr(host_port: &str) -> Option<SocketAddr> {
    let (scheme, host_port) = split_scheme(host_port);
    let default_port = if scheme == "rtmps" {
        rtmp::client::DEFAULT_TLS_PORT
    } else {
        rtmp::client::DEFAULT_PORT
    };
    if let Ok(a) = host_port.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p.parse().ok()?),
        _ => (host_port, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().ok()?
    };
    Some(SocketAddr::new(ip, port))
}

/// Loopback, or an address of one of this host's interfaces we can bind to.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::TcpListener::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtmp::client::MediaKind;

    fn key(vhost: &str) -> StreamKey {
        StreamKey {
            vhost: vhost.into(),
            app: "live".into(),
            stream: "s".into(),
        }
    }

    #[test]
    fn urls_carry_the_vhost_except_the_default() {
        assert_eq!(
            upstream_url("127.0.0.1:1936", &key("v1.test"), ""),
            "rtmp://127.0.0.1:1936/live?vhost=v1.test/s"
        );
        assert_eq!(
            upstream_url("h", &key(DEFAULT_VHOST), "?token=a"),
            "rtmp://h/live/s?token=a"
        );
        assert_eq!(
            upstream_url("rtmps://h:1936", &key(DEFAULT_VHOST), "?token=a"),
            "rtmps://h:1936/live/s?token=a"
        );
        let u = rtmp::client::RtmpUrl::parse(&upstream_url("h:1", &key("v"), "t=1")).unwrap();
        assert_eq!(
            (u.app.as_str(), u.stream.as_str()),
            ("live?vhost=v", "s?t=1")
        );
    }

    #[test]
    fn vhost_is_stripped_from_params() {
        assert_eq!(strip_vhost_param("?vhost=a&token=b"), "token=b");
        assert_eq!(strip_vhost_param("token=b&&domain=x"), "token=b");
        assert_eq!(strip_vhost_param(""), "");
    }

    #[test]
    fn own_address_detection() {
        let listen = [SocketAddr::from(([0, 0, 0, 0], 19351))];
        assert!(is_own_address("127.0.0.1:19351", &listen));
        assert!(!is_own_address("127.0.0.1:19352", &listen));
        let listen = [SocketAddr::from(([127, 0, 0, 1], 1935))];
        assert!(is_own_address("127.0.0.1", &listen));
        assert!(!is_own_address("not a host:x", &listen));
    }

    #[test]
    fn frames_are_classified() {
        // AVC keyframe NALU, AVC sequence header, AAC sequence header.
        let f = make_frame(MediaKind::Video, 1, Bytes::from_static(&[0x17, 1, 0, 0, 0])).unwrap();
        assert!(f.keyframe && !f.sequence_header);
        let f = make_frame(MediaKind::Video, 1, Bytes::from_static(&[0x17, 0, 0, 0, 0])).unwrap();
        assert!(f.sequence_header);
        let f = make_frame(
            MediaKind::Audio,
            1,
            Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        )
        .unwrap();
        assert!(f.sequence_header && f.is_audio());
        assert!(make_frame(MediaKind::Video, 1, Bytes::new()).is_none());
    }
}
