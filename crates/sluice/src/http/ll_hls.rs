//! LL-HLS over sluice's HTTP server (`hls_ll on`): the live playlist with its parts and the
//! parts themselves come from memory (see `crate::hls::ll`); blocking reloads
//! (`_HLS_msn`, `_HLS_part`) and delta updates (`_HLS_skip=YES`) are answered here.
//!
//! The playlist is found at its path under the HLS root, which is the HTTP server's
//! directory in SRS's usual setup (`hls_path` = `http_server.dir`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::context::Context;
use crate::hls::ll::Answer;
use crate::http::static_files;

/// Largest query string looked at; an LL-HLS one is a few dozen bytes.
const MAX_QUERY: usize = 1024;

#[derive(Debug, Default, PartialEq)]
struct Query {
    msn: Option<u64>,
    part: Option<u64>,
    skip: bool,
}

/// `_HLS_msn`, `_HLS_part` and `_HLS_skip` (`YES`, or `v2` which also allows skipping
/// date ranges, of which sluice has none). Other parameters are ignored; a bad value is None.
fn parse_query(q: &str) -> Option<Query> {
    let mut out = Query::default();
    if q.len() > MAX_QUERY {
        return None;
    }
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "_HLS_msn" => out.msn = Some(v.parse().ok()?),
            "_HLS_part" => out.part = Some(v.parse().ok()?),
            "_HLS_skip" => out.skip = v == "YES" || v == "v2",
            _ => {}
        }
    }
    Some(out)
}

/// Serves the request if it is for an LL-HLS playlist or part; None lets the static files
/// answer (segments, init segments, other files).
pub async fn try_serve(ctx: &Arc<Context>, parts: &Parts) -> Option<Response> {
    if ctx.hls.ll.is_empty() || !matches!(parts.method, Method::GET | Method::HEAD) {
        return None;
    }
    let raw = parts.uri.path();
    if !(raw.ends_with(".m3u8") || raw.ends_with(".m4s")) {
        return None;
    }
    let path = static_files::sanitize(raw).ok()?.join("/");
    let (stream, part) = ctx.hls.ll.route(&path)?;
    let cors = ctx.config().http_server.crossdomain;
    let stats = &ctx.hls.ll.stats;
    let head = parts.method == Method::HEAD;
    let answer = match part {
        Some(name) => stream.part(stats, &name).await,
        None => {
            let Some(q) = parse_query(parts.uri.query().unwrap_or("")) else {
                return Some(static_files::with_cors(
                    (StatusCode::BAD_REQUEST, "bad LL-HLS query\n").into_response(),
                    cors,
                ));
            };
            stream.playlist(stats, q.msn, q.part, q.skip).await
        }
    };
    let blocking = parts.uri.query().is_some_and(|q| q.contains("_HLS_msn"));
    let resp = match answer {
        Answer::Playlist(b) => ok(
            "application/vnd.apple.mpegurl",
            // A blocking answer names a fixed point of the stream: caches (CDNs keying on
            // the query) may keep it; the plain playlist changes all the time.
            if blocking { "max-age=60" } else { "no-cache" },
            b,
            head,
        ),
        Answer::Part(b) => ok("video/iso.segment", "max-age=60", b, head),
        Answer::BadRequest(why) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
        Answer::Unavailable(why) => {
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Answer::NotFound => (StatusCode::NOT_FOUND, "404 Not Found\n").into_response(),
    };
    Some(static_files::with_cors(resp, cors))
}

fn ok(mime: &'static str, cache: &'static str, body: bytes::Bytes, head: bool) -> Response {
    let len = body.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    Response::builder()
        .header(header::CONTENT_TYPE, mime)
        .header(header::CACHE_CONTROL, cache)
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(
            parse_query("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES"),
            Some(Query {
                msn: Some(12),
                part: Some(3),
                skip: true
            })
        );
        assert_eq!(parse_query("x=1"), Some(Query::default()));
        assert_eq!(parse_query("_HLS_msn=-1"), None);
        assert_eq!(parse_query("_HLS_part=99999999999999999999999"), None);
    }
}
