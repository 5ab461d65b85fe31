//! SRS's rules for naming a stream from an RTMP `tcUrl`, `app` and stream name.
//!
//! `rtmp://host[:port]/app[?vhost=v]/stream[?params]`: the vhost comes from a
//! `vhost=` parameter (in the app or in the stream name), else from the tcUrl's
//! host. SRS's old `...vhost...NAME` separator form (for clients that cannot put
//! `?` in a URL) is accepted too. Parameters other than vhost are kept as `param`
//! (hooks will want the token).

/// Longest app and stream name accepted, in bytes. Real names are a few dozen bytes;
/// SRS and nginx-rtmp accept what fits their buffers (a few KB). Every byte of a name
/// is repeated in log lines, hook bodies, the API and file paths.
pub const MAX_NAME_LEN: usize = 256;
/// Longest tcUrl, page URL, swf URL and Flash version a client may send, in bytes.
pub const MAX_URL_LEN: usize = 1024;
/// Longest query string (a token, `vhost=`, ...) of a stream or app, in bytes.
pub const MAX_PARAM_LEN: usize = 2048;

/// Why a client-supplied name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} is {len} bytes long (at most {max})")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what} contains a control character")]
    ControlCharacter { what: &'static str },
}

/// Checks one client-supplied string: at most `max` bytes, no control characters
/// (no real name has one; a newline or NUL is an attempt at something).
pub fn check(what: &'static str, value: &str, max: usize) -> Result<(), NameError> {
    if value.len() > max {
        return Err(NameError::TooLong {
            what,
            len: value.len(),
            max,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter { what });
    }
    Ok(())
}

/// A parsed request for a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamRequest {
    /// The vhost asked for (before resolution against the config).
    pub vhost: String,
    pub app: String,
    pub stream: String,
    /// Query string of the stream name (and app), without the leading `?`.
    pub param: String,
    pub host: String,
    pub port: u16,
    pub tc_url: String,
}

impl StreamRequest {
    /// The bounds every name of a request must keep (see [`MAX_NAME_LEN`]).
    pub fn check(&self) -> Result<(), NameError> {
        check("app", &self.app, MAX_NAME_LEN)?;
        check("stream name", &self.stream, MAX_NAME_LEN)?;
        check("vhost", &self.vhost, MAX_NAME_LEN)?;
        check("query string", &self.param, MAX_PARAM_LEN)?;
        check("tcUrl", &self.tc_url, MAX_URL_LEN)
    }

    /// `rtmp://host/app/stream`, for logs and the API.
    pub fn url(&self) -> String {
        format!("{}/{}/{}", self.vhost, self.app, self.stream)
    }
}

/// The default RTMP port, used when the tcUrl has none.
pub const DEFAULT_PORT: u16 = 1935;

/// Splits `schema://host[:port]/path` into (host, port, path).
fn split_tc_url(tc_url: &str) -> (String, u16, String) {
    let rest = tc_url.split_once("://").map(|(_, r)| r).unwrap_or(tc_url);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    // [v6]:port, host:port, host
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (
                h.to_string(),
                p.strip_prefix(':').and_then(|p| p.parse().ok()),
            ),
            None => (v6.to_string(), None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()),
            None => (authority.to_string(), None),
        }
    };
    (host, port.unwrap_or(DEFAULT_PORT), path.to_string())
}

/// SRS's `...` separator: `app...vhost...v1` means `app?vhost=v1`.
fn normalize_separators(s: &str) -> String {
    if !s.contains("...") {
        return s.to_string();
    }
    let mut parts = s.split("...");
    let mut out = parts.next().unwrap_or("").to_string();
    let rest: Vec<&str> = parts.collect();
    let pairs: Vec<String> = rest.chunks(2).map(|kv| kv.join("=")).collect();
    if !pairs.is_empty() {
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Splits `name?query` and returns (name, query).
fn split_query(s: &str) -> (String, String) {
    let s = normalize_separators(s);
    match s.split_once('?') {
        Some((n, q)) => (n.to_string(), q.to_string()),
        None => (s, String::new()),
    }
}

fn param_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split(['&', '?'])
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Builds the stream request from what `connect` and `publish`/`play` carried.
/// `app` is the connect command's `app` (it may be empty for some clients, then
/// the tcUrl's path is used).
pub fn parse(tc_url: &str, app: &str, stream: &str) -> StreamRequest {
    let (host, port, path) = split_tc_url(tc_url);
    let app_raw = if app.is_empty() { path.as_str() } else { app };
    let (app_name, app_query) = split_query(app_raw);
    let (stream_name, stream_query) = split_query(stream);
    let vhost = param_value(&stream_query, "vhost")
        .or_else(|| param_value(&app_query, "vhost"))
        .or_else(|| param_value(&app_query, "domain"))
        .map(str::to_string)
        .unwrap_or_else(|| host.clone());
    let param = [app_query.as_str(), stream_query.as_str()]
        .iter()
        .filter(|q| !q.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("&");
    StreamRequest {
        vhost,
        app: app_name.trim_matches('/').to_string(),
        stream: stream_name.trim_matches('/').to_string(),
        param,
        host,
        port,
        tc_url: tc_url.to_string(),
    }
}

/// Masks the values of secret-looking parameters for logs.
pub fn mask_param(param: &str) -> String {
    param
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _))
                if !k.eq_ignore_ascii_case("vhost") && !k.eq_ignore_ascii_case("domain") =>
            {
                format!("{k}=***")
            }
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_printable() {
        let ok = parse("rtmp://h/live", "live", "s?token=1");
        assert_eq!(ok.check(), Ok(()));
        let long = "a".repeat(MAX_NAME_LEN + 1);
        let r = parse("rtmp://h/live", "live", &long);
        assert!(matches!(
            r.check(),
            Err(NameError::TooLong {
                what: "stream name",
                ..
            })
        ));
        let r = parse("rtmp://h/live", "live", "a\nb");
        assert_eq!(
            r.check(),
            Err(NameError::ControlCharacter {
                what: "stream name"
            })
        );
        let r = parse(
            "rtmp://h/live",
            "live",
            &format!("s?t={}", "x".repeat(MAX_PARAM_LEN)),
        );
        assert!(matches!(
            r.check(),
            Err(NameError::TooLong {
                what: "query string",
                ..
            })
        ));
        assert!(check("tcUrl", &"u".repeat(MAX_URL_LEN), MAX_URL_LEN).is_ok());
    }

    #[test]
    fn plain_url() {
        let r = parse("rtmp://127.0.0.1:19350/live", "live", "livestream");
        assert_eq!(r.vhost, "127.0.0.1");
        assert_eq!(r.port, 19350);
        assert_eq!((r.app.as_str(), r.stream.as_str()), ("live", "livestream"));
        assert_eq!(r.param, "");
    }

    #[test]
    fn vhost_in_app_query() {
        let r = parse(
            "rtmp://127.0.0.1/live?vhost=v1.com",
            "live?vhost=v1.com",
            "s",
        );
        assert_eq!(
            (r.vhost.as_str(), r.app.as_str(), r.stream.as_str()),
            ("v1.com", "live", "s")
        );
        assert_eq!(r.port, 1935);
    }

    #[test]
    fn vhost_in_stream_query_wins_and_params_kept() {
        let r = parse("rtmp://host.com/live", "live", "s?vhost=v2.com&token=abc");
        assert_eq!(r.vhost, "v2.com");
        assert_eq!(r.stream, "s");
        assert_eq!(r.param, "vhost=v2.com&token=abc");
        assert_eq!(mask_param(&r.param), "vhost=v2.com&token=***");
    }

    #[test]
    fn host_is_vhost() {
        let r = parse("rtmp://demo.example.com:1935/live", "live", "s");
        assert_eq!(r.vhost, "demo.example.com");
    }

    #[test]
    fn srs_separator_form() {
        let r = parse(
            "rtmp://127.0.0.1/live...vhost...v3.com",
            "live...vhost...v3.com",
            "s",
        );
        assert_eq!((r.vhost.as_str(), r.app.as_str()), ("v3.com", "live"));
    }

    #[test]
    fn ipv6_and_missing_app() {
        let r = parse("rtmp://[::1]:1936/app", "", "s");
        assert_eq!(
            (r.host.as_str(), r.port, r.app.as_str()),
            ("::1", 1936, "app")
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "",
            "://",
            "rtmp://",
            "rtmp://[",
            "rtmp://a:b:c/",
            "......",
            "?",
            "a?b?c=d",
            "rtmp://h:99999/x",
        ] {
            let _ = parse(s, s, s);
            let _ = mask_param(s);
        }
    }
}
