//! Files under `http_server.dir` (and the HLS output dirs): static pages, HLS playlists and
//! segments, and FLV files with `?start=` seeking (see [`super::flv_vod`]).
//!
//! The URL path is the only input that decides which file is opened, so it is checked twice:
//! first syntactically (every segment decoded and refused if it could climb out or smuggle a
//! separator), then on disk (the canonical path must stay under the canonical root), which is
//! what stops a symlink inside the directory from exposing the rest of the file system.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use tracing::{debug, info, warn};

use super::flv_vod;
use crate::config::Config;
use crate::context::Context;

/// Read size of file bodies: large enough for few syscalls, small enough per connection.
const CHUNK: usize = 64 * 1024;
/// Longest URL path we try to map to a file.
const MAX_PATH_LEN: usize = 4096;

/// Why a URL path cannot name a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("malformed percent-encoding")]
    BadEncoding,
    #[error("path leaves the served directory")]
    Traversal,
    #[error("path too long")]
    TooLong,
}

/// Splits a raw (still percent-encoded) URL path into decoded segments that are safe to join
/// under a root: no `.`/`..`, no empty inner segment (`//x` would make an absolute path), and
/// no `/`, `\` or NUL hidden in a segment by encoding. A trailing `/` is allowed and dropped.
pub fn sanitize(raw: &str) -> Result<Vec<String>, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    let rest = raw.strip_prefix('/').ok_or(PathError::Traversal)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|seg| {
            let bytes = percent_decode(seg)?;
            let s = String::from_utf8(bytes).map_err(|_| PathError::BadEncoding)?;
            let bad_char = s.contains(['/', '\\', '\0']);
            if s.is_empty() || s == "." || s == ".." || bad_char {
                return Err(PathError::Traversal);
            }
            Ok(s)
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<Vec<u8>, PathError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| PathError::BadEncoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| PathError::BadEncoding)?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// Content type by extension; unknown types are sent as opaque bytes so browsers never sniff
/// them into something executable.
pub fn mime_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "m3u8" => "application/vnd.apple.mpegurl",
        "ts" => "video/mp2t",
        "flv" => "video/x-flv",
        "mp4" | "m4v" => "video/mp4",
        // fMP4 media segments (HLS `hls_use_fmp4`, DASH).
        "m4s" => "video/iso.segment",
        "mpd" => "application/dash+xml",
        "m4a" => "audio/mp4",
        "mp3" => "audio/mpeg",
        "aac" => "audio/aac",
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "application/javascript",
        "css" => "text/css",
        "json" => "application/json",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable single range: send the whole file (also for multi-range requests, which we
    /// answer with 200 rather than multipart).
    Full,
    /// Inclusive byte positions.
    Partial {
        first: u64,
        last: u64,
    },
    Unsatisfiable,
}

/// Parses a single `bytes=` range; syntax we do not understand is ignored, as RFC 9110 allows.
pub fn parse_range(value: &str, len: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.trim().is_empty(), b.trim().is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match num(b) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if len == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Partial {
                first: len.saturating_sub(n),
                last: len - 1,
            },
            None => RangeRequest::Full,
        },
        // bytes=a-
        (false, true) => match num(a) {
            Some(first) if first >= len => RangeRequest::Unsatisfiable,
            Some(first) => RangeRequest::Partial {
                first,
                last: len - 1,
            },
            None => RangeRequest::Full,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(first), Some(last)) if first > last => RangeRequest::Full,
            (Some(first), Some(_)) if first >= len => RangeRequest::Unsatisfiable,
            (Some(first), Some(last)) => RangeRequest::Partial {
                first,
                last: last.min(len - 1),
            },
            _ => RangeRequest::Full,
        },
        (true, true) => RangeRequest::Full,
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of seconds since the epoch.
pub fn http_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let wd = DAYS[days.rem_euclid(7) as usize];
    let mon = MONTHS[(m as usize).saturating_sub(1).min(11)];
    format!(
        "{wd}, {d:02} {mon} {y:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Seconds since the epoch of an IMF-fixdate; None for anything else (the obsolete formats
/// are not worth the code: a conditional request that fails to parse just gets a 200).
pub fn parse_http_date(s: &str) -> Option<u64> {
    let mut it = s.split_ascii_whitespace();
    let _weekday = it.next()?;
    let d: u32 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(mon))? as u32 + 1;
    let y: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|x| x.parse::<u64>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 || y < 1970 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// The roots a URL is looked up in, in order: the static dir, then the HLS output dir of every
/// vhost that writes HLS somewhere else.
fn roots(config: &Config) -> Vec<PathBuf> {
    let mut roots = vec![config.http_server.dir.clone()];
    for v in config.vhosts.iter().filter(|v| v.enabled && v.hls.enabled) {
        if !roots.contains(&v.hls.path) {
            roots.push(v.hls.path.clone());
        }
    }
    roots
}

enum Lookup {
    File(PathBuf, std::fs::Metadata),
    /// A directory named without its trailing slash: relative links inside need the slash.
    Dir,
    Forbidden,
    NotFound,
}

/// Maps the segments to an existing file under one of `roots`, refusing anything whose real
/// location (symlinks resolved) is outside its root.
async fn lookup(roots: &[PathBuf], segments: &[String], trailing_slash: bool) -> Lookup {
    let mut forbidden = false;
    for root in roots {
        let Ok(root) = tokio::fs::canonicalize(root).await else {
            continue;
        };
        let mut candidate = root.clone();
        candidate.extend(segments);
        match contained(&root, &candidate).await {
            Some(Ok((path, meta))) if meta.is_file() => return Lookup::File(path, meta),
            Some(Ok((path, meta))) if meta.is_dir() => {
                if !trailing_slash && !segments.is_empty() {
                    return Lookup::Dir;
                }
                match contained(&root, &path.join("index.html")).await {
                    Some(Ok((p, m))) if m.is_file() => return Lookup::File(p, m),
                    Some(Err(())) => forbidden = true,
                    _ => {}
                }
            }
            Some(Ok(_)) => {}
            Some(Err(())) => forbidden = true,
            None => {}
        }
    }
    if forbidden {
        Lookup::Forbidden
    } else {
        Lookup::NotFound
    }
}

/// None: does not exist; Err: exists but resolves outside `root`.
async fn contained(
    root: &Path,
    candidate: &Path,
) -> Option<Result<(PathBuf, std::fs::Metadata), ()>> {
    let real = tokio::fs::canonicalize(candidate).await.ok()?;
    if !real.starts_with(root) {
        return Some(Err(()));
    }
    let meta = tokio::fs::metadata(&real).await.ok()?;
    Some(Ok((real, meta)))
}

/// Serves files for every HTTP server request that is not a live FLV mount.
pub async fn serve(ctx: Arc<Context>, req: Request) -> Response {
    let config = ctx.config();
    let cors = config.http_server.crossdomain;
    // Only the head is needed, and a Body is not Sync: holding `&Request` across an await
    // would make this future not Send.
    let (req, _body) = req.into_parts();
    let method = req.method.clone();
    let raw_path = req.uri.path().to_string();
    let resp = match method {
        Method::GET | Method::HEAD => serve_file(&ctx, &config, &req, &raw_path).await,
        Method::OPTIONS if cors => simple(StatusCode::OK, ""),
        _ => {
            let mut r = simple(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
    };
    debug!("{method} {raw_path} -> {}", resp.status().as_u16());
    with_cors(resp, cors)
}

pub fn with_cors(resp: Response, cors: bool) -> Response {
    if !cors {
        return resp;
    }
    set_cors(
        resp,
        "GET, HEAD, OPTIONS",
        "Range, If-Modified-Since",
        "Content-Length, Content-Range",
    )
}

/// CORS headers allowing any origin, with the methods and headers of one endpoint.
pub fn set_cors(
    mut resp: Response,
    methods: &'static str,
    allow_headers: &'static str,
    expose_headers: &'static str,
) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(allow_headers),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(expose_headers),
    );
    resp
}

/// A short plain-text response (errors, redirects).
fn simple(status: StatusCode, body: &'static str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn serve_file(ctx: &Arc<Context>, config: &Config, req: &Parts, raw_path: &str) -> Response {
    let segments = match sanitize(raw_path) {
        Ok(s) => s,
        Err(e @ PathError::Traversal) => {
            info!("refused {raw_path:?}: {e}");
            return simple(StatusCode::FORBIDDEN, "403 Forbidden\n");
        }
        Err(_) => return simple(StatusCode::BAD_REQUEST, "400 Bad Request\n"),
    };
    let (path, meta) = match lookup(&roots(config), &segments, raw_path.ends_with('/')).await {
        Lookup::File(p, m) => (p, m),
        Lookup::Dir => {
            let mut location = format!("{raw_path}/");
            if let Some(q) = req.uri.query() {
                location = format!("{location}?{q}");
            }
            let mut r = simple(StatusCode::MOVED_PERMANENTLY, "301 Moved Permanently\n");
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        Lookup::Forbidden => {
            info!("refused {raw_path:?}: resolves outside the served directory");
            return simple(StatusCode::FORBIDDEN, "403 Forbidden\n");
        }
        Lookup::NotFound => return simple(StatusCode::NOT_FOUND, "404 Not Found\n"),
    };
    let head = req.method == Method::HEAD;
    let mime = mime_type(&path);
    if mime == "video/x-flv" {
        match flv_vod::start_param(req.uri.query()) {
            Err(()) => return simple(StatusCode::BAD_REQUEST, "400 Bad Request: start\n"),
            Ok(Some(start)) => return serve_flv_vod(ctx, &path, meta.len(), start, head).await,
            Ok(None) => {}
        }
    }
    serve_plain(ctx, &path, &meta, mime, &req.headers, head).await
}

async fn serve_flv_vod(
    ctx: &Arc<Context>,
    path: &Path,
    len: u64,
    start: u64,
    head: bool,
) -> Response {
    match flv_vod::respond(path, len, start, head).await {
        Ok((length, body)) => {
            let body = counted(ctx, body);
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "video/x-flv")
                .header(header::CONTENT_LENGTH, length)
                .body(body)
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Err(flv_vod::VodError::StartBeyondEnd { .. }) => simple(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: start beyond the end\n",
        ),
        Err(e) => {
            warn!("flv vod {}: {e}", path.display());
            simple(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n",
            )
        }
    }
}

async fn serve_plain(
    ctx: &Arc<Context>,
    path: &Path,
    meta: &std::fs::Metadata,
    mime: &'static str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let len = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, mime)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(m) = mtime {
        builder = builder.header(header::LAST_MODIFIED, http_date(m));
    }
    if mime == "application/vnd.apple.mpegurl" || mime == "application/dash+xml" {
        // A playlist changes with every segment; a cached one stalls the player.
        builder = builder.header(header::CACHE_CONTROL, "no-cache");
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    if let (Some(m), Some(s)) = (mtime, since) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if m <= s && s <= now {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(RangeRequest::Full, |v| parse_range(v, len));
    let (status, first, count) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, len),
        RangeRequest::Partial { first, last } => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"));
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
        RangeRequest::Unsatisfiable => {
            let mut r = simple(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "416 Range Not Satisfiable\n",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let body = if head {
        Body::empty()
    } else {
        match file_body(path, first, count).await {
            Ok(b) => counted(ctx, b),
            Err(e) => {
                warn!("cannot read {}: {e}", path.display());
                return simple(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error\n",
                );
            }
        }
    };
    builder
        .status(status)
        .header(header::CONTENT_LENGTH, count)
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `count` bytes of the file from `first`, streamed: a file that grows meanwhile (a segment
/// being written) cannot make the body longer than the Content-Length we announced.
pub async fn file_body(path: &Path, first: u64, count: u64) -> std::io::Result<Body> {
    let mut file = tokio::fs::File::open(path).await?;
    if first > 0 {
        file.seek(SeekFrom::Start(first)).await?;
    }
    Ok(Body::from_stream(ReaderStream::with_capacity(
        file.take(count),
        CHUNK,
    )))
}

/// Adds what the body sends to the server's byte counter.
fn counted(ctx: &Arc<Context>, body: Body) -> Body {
    let ctx = ctx.clone();
    Body::from_stream(body.into_data_stream().inspect(move |r| {
        if let Ok(b) = r {
            ctx.counters
                .bytes_out
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_accepts_plain_paths() {
        assert_eq!(sanitize("/"), Ok(vec![]));
        assert_eq!(sanitize("/a/b.ts"), Ok(vec!["a".into(), "b.ts".into()]));
        assert_eq!(sanitize("/live/"), Ok(vec!["live".into()]));
        assert_eq!(sanitize("/a%20b.txt"), Ok(vec!["a b.txt".into()]));
        assert_eq!(sanitize("/..a/b..c"), Ok(vec!["..a".into(), "b..c".into()]));
    }

    #[test]
    fn sanitize_refuses_escapes() {
        for p in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/%2E%2E/x",
            "/.%2e/x",
            "/..%2fetc/passwd",
            "/..%2Fetc/passwd",
            "//etc/passwd",
            "/a//b",
            "/%2fetc/passwd",
            "/..\\etc\\passwd",
            "/%5c..%5cx",
            "/a%00.txt",
            "/./a",
            "/.",
            "etc/passwd",
            "",
        ] {
            assert_eq!(sanitize(p), Err(PathError::Traversal), "{p}");
        }
        assert_eq!(sanitize("/a%2"), Err(PathError::BadEncoding));
        assert_eq!(sanitize("/a%zz"), Err(PathError::BadEncoding));
        assert_eq!(sanitize("/%ff%fe"), Err(PathError::BadEncoding));
        assert_eq!(
            sanitize(&format!("/{}", "a".repeat(5000))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn mime_types() {
        let m = |p: &str| mime_type(Path::new(p));
        assert_eq!(m("a/x.m3u8"), "application/vnd.apple.mpegurl");
        assert_eq!(m("x-1.TS"), "video/mp2t");
        assert_eq!(m("x.flv"), "video/x-flv");
        assert_eq!(m("x.mp4"), "video/mp4");
        assert_eq!(m("index.html"), "text/html; charset=utf-8");
        assert_eq!(m("a.js"), "application/javascript");
        assert_eq!(m("a.css"), "text/css");
        assert_eq!(m("a.json"), "application/json");
        assert_eq!(m("a.png"), "image/png");
        assert_eq!(m("a.jpg"), "image/jpeg");
        assert_eq!(m("a.svg"), "image/svg+xml");
        assert_eq!(m("favicon.ico"), "image/x-icon");
        assert_eq!(m("a.txt"), "text/plain; charset=utf-8");
        assert_eq!(m("a.bin"), "application/octet-stream");
        assert_eq!(m("noext"), "application/octet-stream");
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let p = |first, last| Partial { first, last };
        assert_eq!(parse_range("bytes=0-9", 100), p(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), p(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), p(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), p(0, 99));
        assert_eq!(parse_range("bytes=95-1000", 100), p(95, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Full);
        assert_eq!(parse_range("bytes=5-1", 100), Full);
        assert_eq!(parse_range("bytes=a-b", 100), Full);
        assert_eq!(parse_range("bytes=+1-2", 100), Full);
        assert_eq!(parse_range("items=0-1", 100), Full);
        assert_eq!(parse_range("bytes=-", 100), Full);
        assert_eq!(parse_range("bytes=99999999999999999999999-", 100), Full);
    }

    #[test]
    fn http_dates_round_trip() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        for t in [0, 1, 86_399, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_http_date(&http_date(t)), Some(t), "{t}");
        }
        for bad in [
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 99 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
