//! What wraps every API route: CORS (`crossdomain on`), HTTP Basic auth
//! (`auth { enabled on; }`) and JSONP (`?callback=`), in that order from the outside
//! so that a browser's preflight, which never carries credentials, is answered
//! before auth, and a 401 still carries the CORS headers the browser needs to read it.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{error_reply, query_value, ApiError};
use crate::context::Context;

/// SRS's CORS answer (`SrsHttpCorsMux`).
const ALLOW_METHODS: &str = "GET, POST, HEAD, PUT, DELETE, OPTIONS";
const ALLOW_HEADERS: &str =
    "origin,range,accept-encoding,referer,Cache-Control,X-Proxy-Authorization,X-Requested-With,Content-Type,Authorization";
const EXPOSE_HEADERS: &str = "Server,range,Content-Length,Content-Range";
/// The realm named in the 401 challenge.
const REALM: &str = "Basic realm=\"sluice\"";
/// Largest API reply rewrapped for JSONP; replies are far smaller.
const MAX_JSONP_BODY: usize = 16 * 1024 * 1024;
/// Longest JSONP callback name accepted.
const MAX_CALLBACK_LEN: usize = 128;

pub async fn guard(State(ctx): State<Arc<Context>>, req: Request, next: Next) -> Response {
    let api = ctx.config().http_api.clone();
    if req.method() == Method::OPTIONS {
        let mut resp = Response::new(Body::empty());
        if api.crossdomain {
            add_cors(&mut resp);
        } else {
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        }
        return resp;
    }
    let callback = req
        .uri()
        .query()
        .and_then(|q| query_value(q, "callback"))
        .filter(|c| valid_callback(c))
        .map(str::to_owned);
    let mut resp = match &api.auth {
        Some(auth) if !authorized(&req, &auth.username, &auth.password) => {
            let mut r = error_reply(ApiError::Unauthorized);
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
            r
        }
        _ => next.run(req).await,
    };
    if let Some(cb) = callback {
        resp = jsonp(resp, &cb).await;
    }
    if api.crossdomain {
        add_cors(&mut resp);
    }
    resp
}

fn add_cors(resp: &mut Response) {
    *resp = crate::http::static_files::set_cors(
        std::mem::take(resp),
        ALLOW_METHODS,
        ALLOW_HEADERS,
        EXPOSE_HEADERS,
    );
}

/// A JavaScript identifier path (`cb`, `jQuery123_456`, `a.b`): anything else could
/// inject script into the page that asked.
pub(super) fn valid_callback(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= MAX_CALLBACK_LEN
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'$')
}

async fn jsonp(resp: Response, callback: &str) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_JSONP_BODY).await else {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::empty())
            .unwrap_or_default();
    };
    let mut out = Vec::with_capacity(bytes.len() + callback.len() + 2);
    out.extend_from_slice(callback.as_bytes());
    out.push(b'(');
    out.extend_from_slice(&bytes);
    out.push(b')');
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    // A `<script>` element runs only a 2xx answer: SRS answers every JSONP request with 200
    // and the error in `code`, which is what SRS's console (JSONP throughout) reads. A 401
    // keeps its status so the browser can ask for credentials.
    if parts.status != StatusCode::UNAUTHORIZED {
        parts.status = StatusCode::OK;
    }
    Response::from_parts(parts, Body::from(out))
}

fn authorized(req: &Request, user: &str, pass: &str) -> bool {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let Some(token) = value.to_str().ok().and_then(|v| {
        v.strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
    }) else {
        return false;
    };
    let Some(given) = base64_decode(token.trim()) else {
        return false;
    };
    let mut want = Vec::with_capacity(user.len() + pass.len() + 1);
    want.extend_from_slice(user.as_bytes());
    want.push(b':');
    want.extend_from_slice(pass.as_bytes());
    constant_time_eq(&given, &want)
}

/// Compares without an early exit, so the time taken does not reveal how many
/// leading bytes of a guess were right (the length may still show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Standard base64 with optional padding; None on any other byte.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(bytes.get(1..chunk.len()).unwrap_or(&[]));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("YWRtaW46c2VjcmV0").as_deref(),
            Some(&b"admin:secret"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("Y"), None);
        assert_eq!(base64_decode("YW*i"), None);
    }

    #[test]
    fn compare_and_callbacks() {
        assert!(constant_time_eq(b"a:b", b"a:b"));
        assert!(!constant_time_eq(b"a:b", b"a:c"));
        assert!(!constant_time_eq(b"a:b", b"a:bb"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(valid_callback("jQuery1_2.cb$"));
        assert!(!valid_callback("alert(1)"));
        assert!(!valid_callback(""));
        assert!(!valid_callback(&"a".repeat(MAX_CALLBACK_LEN + 1)));
    }
}
