//! SRT stream ids in SRS's forms, sans-IO (a string in, a request out):
//!
//! - `#!::r=APP/STREAM,m=publish|request,h=VHOST,KEY=VALUE,...` (SRT's access-control
//!   syntax): `r` names the stream, `m` says what the caller does (request, the default,
//!   plays), `h` picks the vhost; every other pair is kept as the stream's query
//!   (`KEY=VALUE&...`), given to hooks as the RTMP query is (tokens live there). SRS 4's
//!   `h=APP/STREAM` without `r` (a path in `h`) is read as `r`.
//! - `APP/STREAM?KEY=VALUE&...` (SRS's plain form): `m=publish` in the query publishes,
//!   `vhost=` (or `domain=`) picks the vhost, as in an RTMP URL.
//!
//! Only syntax is checked here; the names' bounds and the vhost are checked by the
//! connection, as for RTMP.

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Publish,
    Play,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Publish => "publish",
            Mode::Play => "request",
        }
    }
}

/// A parsed stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtRequest {
    pub mode: Mode,
    /// `h=`, when given.
    pub host: Option<String>,
    pub app: String,
    pub stream: String,
    /// The query, `KEY=VALUE&...` without the leading `?`; empty when none.
    pub param: String,
}

/// Why a stream id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("no stream id (set streamid=#!::r=APP/STREAM,m=publish or m=request)")]
    Missing,
    #[error("stream id is {0} bytes long (at most 512)")]
    TooLong(usize),
    #[error("stream id has no resource (r=APP/STREAM)")]
    NoResource,
    #[error("stream id resource \"{0}\" is not APP/STREAM")]
    BadResource(String),
    #[error("stream id mode m={0} is neither publish nor request")]
    BadMode(String),
    #[error("stream id has a control character")]
    ControlCharacter,
}

/// SRT's limit on a stream id.
pub const MAX_STREAM_ID: usize = 512;

/// Parses a stream id (see the module's documentation).
pub fn parse(sid: &str) -> Result<SrtRequest, StreamIdError> {
    if sid.is_empty() {
        return Err(StreamIdError::Missing);
    }
    if sid.len() > MAX_STREAM_ID {
        return Err(StreamIdError::TooLong(sid.len()));
    }
    if sid.chars().any(char::is_control) {
        return Err(StreamIdError::ControlCharacter);
    }
    let mut mode = Mode::Play;
    let mut host = None;
    let mut params: Vec<String> = Vec::new();
    let resource = if let Some(pairs) = sid.strip_prefix("#!::") {
        let mut resource: Option<String> = None;
        let mut path_in_h: Option<String> = None;
        for kv in pairs.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k.trim() {
                "r" => resource = Some(v.to_string()),
                "m" => mode = parse_mode(v)?,
                "h" if v.contains('/') => path_in_h = Some(v.to_string()),
                "h" => host = Some(v.to_string()).filter(|h| !h.is_empty()),
                _ => params.push(kv.trim().to_string()),
            }
        }
        resource.or(path_in_h).ok_or(StreamIdError::NoResource)?
    } else {
        sid.to_string()
    };
    // The resource may carry its own query (`r=live/s?token=1`).
    let (path, query) = resource.split_once('?').unwrap_or((&resource, ""));
    let mut query_params: Vec<String> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(str::to_string)
        .collect();
    if !sid.starts_with("#!::") {
        // The plain form: `m=` in the query says publish or request, and is not a
        // parameter of the stream.
        if let Some(pos) = query_params.iter().position(|kv| kv.starts_with("m=")) {
            let kv = query_params.remove(pos);
            mode = parse_mode(&kv[2..])?;
        }
    }
    query_params.extend(params);
    let path = path.trim_matches('/');
    let (app, stream) = path
        .rsplit_once('/')
        .filter(|(a, s)| !a.is_empty() && !s.is_empty())
        .ok_or_else(|| StreamIdError::BadResource(path.to_string()))?;
    Ok(SrtRequest {
        mode,
        host,
        app: app.to_string(),
        stream: stream.to_string(),
        param: query_params.join("&"),
    })
}

fn parse_mode(v: &str) -> Result<Mode, StreamIdError> {
    match v.trim() {
        "publish" => Ok(Mode::Publish),
        "request" | "play" => Ok(Mode::Play),
        other => Err(StreamIdError::BadMode(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(mode: Mode, host: Option<&str>, app: &str, stream: &str, param: &str) -> SrtRequest {
        SrtRequest {
            mode,
            host: host.map(str::to_string),
            app: app.into(),
            stream: stream.into(),
            param: param.into(),
        }
    }

    #[test]
    fn srs_forms() {
        assert_eq!(
            parse("#!::r=live/livestream,m=publish"),
            Ok(req(Mode::Publish, None, "live", "livestream", ""))
        );
        assert_eq!(
            parse("#!::r=live/livestream,m=request"),
            Ok(req(Mode::Play, None, "live", "livestream", ""))
        );
        assert_eq!(
            parse("#!::h=srs.srt.com.cn,r=live/livestream,m=publish"),
            Ok(req(
                Mode::Publish,
                Some("srs.srt.com.cn"),
                "live",
                "livestream",
                ""
            ))
        );
        // SRS's own test: other keys become the query; no m means request.
        assert_eq!(
            parse("#!::r=live/livestream,key1=value1,key2=value2"),
            Ok(req(
                Mode::Play,
                None,
                "live",
                "livestream",
                "key1=value1&key2=value2"
            ))
        );
        // SRS 4: the path in h.
        assert_eq!(
            parse("#!::h=live/livestream,m=publish"),
            Ok(req(Mode::Publish, None, "live", "livestream", ""))
        );
        assert_eq!(
            parse("#!::r=live/s?token=abc,m=publish,u=admin"),
            Ok(req(Mode::Publish, None, "live", "s", "token=abc&u=admin"))
        );
        // Plain form.
        assert_eq!(
            parse("live/livestream?m=publish&token=1&vhost=v"),
            Ok(req(
                Mode::Publish,
                None,
                "live",
                "livestream",
                "token=1&vhost=v"
            ))
        );
        assert_eq!(
            parse("live/livestream"),
            Ok(req(Mode::Play, None, "live", "livestream", ""))
        );
        // Nested apps: the stream is the last segment.
        assert_eq!(
            parse("#!::r=a/b/c,m=request"),
            Ok(req(Mode::Play, None, "a/b", "c", ""))
        );
    }

    #[test]
    fn bad_ids_say_why() {
        assert_eq!(parse(""), Err(StreamIdError::Missing));
        assert_eq!(parse("#!::m=publish"), Err(StreamIdError::NoResource));
        assert_eq!(
            parse("#!::r=livestream,m=publish"),
            Err(StreamIdError::BadResource("livestream".into()))
        );
        assert_eq!(
            parse("#!::r=live/x,m=push"),
            Err(StreamIdError::BadMode("push".into()))
        );
        assert_eq!(parse("live/x\n"), Err(StreamIdError::ControlCharacter));
        assert!(matches!(
            parse(&"a/".repeat(300)),
            Err(StreamIdError::TooLong(600))
        ));
        assert_eq!(
            parse("/live/"),
            Err(StreamIdError::BadResource("live".into()))
        );
    }
}
