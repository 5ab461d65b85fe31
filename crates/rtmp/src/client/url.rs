//! `rtmp://` URLs, split into what connect and publish/play need.

/// Port used when the URL names none.
pub const DEFAULT_PORT: u16 = 1935;
/// Port of an `rtmps://` URL that names none (as ffmpeg and the platforms use).
pub const DEFAULT_TLS_PORT: u16 = 443;

/// A parsed `rtmp://host[:port]/app[?query]/stream[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or address, without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// First path segment, with a `?vhost=...` query that follows it (SRS style).
    pub app: String,
    /// The rest of the path, with its query (tokens, vhost) kept: servers read it from the
    /// publish/play name.
    pub stream: String,
    /// `rtmp://host[:port]/app`, as sent in connect.
    pub tc_url: String,
    /// `rtmps://`: RTMP over TLS (port 443 unless given).
    pub secure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RTMP URL {url:?}: {reason}")]
pub struct UrlError {
    pub url: String,
    pub reason: &'static str,
}

impl RtmpUrl {
    /// The app is the first path segment (so `live?vhost=v` stays in the app); the stream is
    /// everything after the next `/`. `rtmp` and `rtmps` (TLS) are accepted: rtmpe/rtmpt
    /// need transports this client does not have.
    pub fn parse(url: &str) -> Result<RtmpUrl, UrlError> {
        let err = |reason| UrlError {
            url: url.to_string(),
            reason,
        };
        let (scheme, rest) = url.split_once("://").ok_or(err("missing rtmp:// scheme"))?;
        let secure = if scheme.eq_ignore_ascii_case("rtmp") {
            false
        } else if scheme.eq_ignore_ascii_case("rtmps") {
            true
        } else {
            return Err(err("only the rtmp:// and rtmps:// schemes are supported"));
        };
        let scheme = if secure { "rtmps" } else { "rtmp" };
        let (authority, path) = rest
            .split_once('/')
            .ok_or(err("missing /app/stream path"))?;
        // Credentials are not part of RTMP's connect; drop them rather than send them as host.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_host_port(authority).ok_or(err("bad host or port"))?;
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let (app, stream) = path
            .split_once('/')
            .ok_or(err("missing stream name after the app"))?;
        if app.is_empty() {
            return Err(err("empty app name"));
        }
        if stream.is_empty() {
            return Err(err("empty stream name"));
        }
        let host_for_url = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let tc_url = match port {
            Some(p) => format!("{scheme}://{host_for_url}:{p}/{app}"),
            None => format!("{scheme}://{host_for_url}/{app}"),
        };
        let default_port = if secure {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        };
        Ok(RtmpUrl {
            host: host.to_string(),
            port: port.unwrap_or(default_port),
            app: app.to_string(),
            stream: stream.to_string(),
            tc_url,
            secure,
        })
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`. Outer None = malformed.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.split_once(':') {
        None => Some((authority, None)),
        Some((host, p)) => Some((host, Some(p.parse().ok()?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1/live/test").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.app.as_str(),
                u.stream.as_str(),
                u.tc_url.as_str()
            ),
            ("127.0.0.1", 1935, "live", "test", "rtmp://127.0.0.1/live")
        );
    }

    #[test]
    fn port_vhost_and_queries() {
        let u = RtmpUrl::parse("rtmp://example.com:19350/live?vhost=v1/cam/1?token=abc").unwrap();
        assert_eq!(u.port, 19350);
        assert_eq!(u.app, "live?vhost=v1");
        assert_eq!(u.stream, "cam/1?token=abc");
        assert_eq!(u.tc_url, "rtmp://example.com:19350/live?vhost=v1");
    }

    #[test]
    fn ipv6() {
        let u = RtmpUrl::parse("rtmp://[::1]:1936/app/s").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1936));
        assert_eq!(u.tc_url, "rtmp://[::1]:1936/app");
    }

    #[test]
    fn rtmps() {
        let u = RtmpUrl::parse("rtmps://live.example.com/app/key").unwrap();
        assert!(u.secure);
        assert_eq!(u.port, 443);
        assert_eq!(u.tc_url, "rtmps://live.example.com/app");
        let u = RtmpUrl::parse("RTMPS://h:1936/app/key").unwrap();
        assert_eq!((u.port, u.tc_url.as_str()), (1936, "rtmps://h:1936/app"));
        assert!(!RtmpUrl::parse("rtmp://h/a/s").unwrap().secure);
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "http://h/a/s",
            "rtmp://h",
            "rtmp://h/app",
            "rtmp://h/app/",
            "rtmp:///app/s",
            "rtmp://h:99999/a/s",
            "rtmp://h:x/a/s",
            "rtmp://[::1/a/s",
            "rtmp://h//s",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
