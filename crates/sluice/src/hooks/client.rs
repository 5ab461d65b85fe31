//! A minimal HTTP/1.1 client for hooks and the heartbeat: one fresh connection per call,
//! everything (connect, request, response) under one time-out, the response body bounded.
//!
//! Hooks are rare (a few per client), so a connection pool would only add state that can go
//! stale; SRS also opens a connection per call.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::HookUrl;

/// Largest response body read from a hook server; a hook answers `0` or a small JSON object.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("http: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("response {0:?} is neither 0 nor {{\"code\": 0}}")]
    Refused(String),
    #[error("response {0:?} has more than one \"code\" (refused: a deny must not be hidden by a later duplicate)")]
    DuplicateCode(String),
}

/// What a hook server answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Sends one request and reads the whole (bounded) answer within `timeout`.
pub async fn request(
    method: Method,
    url: &HookUrl,
    body: Option<String>,
    timeout: Duration,
) -> Result<Answer, HookError> {
    tokio::time::timeout(timeout, exchange(method, url, body))
        .await
        .map_err(|_| HookError::Timeout(timeout.as_millis()))?
}

async fn exchange(
    method: Method,
    url: &HookUrl,
    body: Option<String>,
) -> Result<Answer, HookError> {
    let stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(HookError::Connect)?;
    let _ = stream.set_nodelay(true);
    if !url.secure {
        return call(stream, method, url, body).await;
    }
    let config = crate::tls::client_config()
        .ok_or_else(|| HookError::Tls("no TLS client configuration".into()))?;
    let name = rustls_pki_types::ServerName::try_from(url.host.clone())
        .map_err(|e| HookError::Tls(format!("bad server name {:?}: {e}", url.host)))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| HookError::Tls(e.to_string()))?;
    call(tls, method, url, body).await
}

/// The request and its answer over an open connection (plain or TLS).
async fn call<S>(
    stream: S,
    method: Method,
    url: &HookUrl,
    body: Option<String>,
) -> Result<Answer, HookError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| HookError::Http(e.to_string()))?;
    let mut req = Request::builder()
        .method(method)
        .uri(url.path.as_str())
        .header(HOST, url.authority())
        .header(USER_AGENT, concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .header(CONNECTION, "close");
    let payload = match body {
        Some(b) => {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .header(CONTENT_LENGTH, b.len());
            Bytes::from(b)
        }
        None => Bytes::new(),
    };
    let req = req
        .body(Full::new(payload))
        .map_err(|e| HookError::Http(e.to_string()))?;
    let call = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| HookError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| HookError::Http(format!("reading the response: {e}")))?
            .to_bytes();
        Ok(Answer { status, body })
    };
    tokio::pin!(call);
    tokio::pin!(conn);
    // The connection task must be polled for the call to progress; once it ends (server
    // closed after answering), what it read is already buffered for the call.
    let mut conn_done = false;
    loop {
        tokio::select! {
            r = &mut call => return r,
            _ = &mut conn, if !conn_done => conn_done = true,
        }
    }
}

/// SRS's rule for a hook answer: status 200 or 201, and a body that is `0` or a JSON object
/// whose `code` is 0. An object with `code` more than once is a refusal whatever the values:
/// a JSON parser keeps one duplicate (serde_json the last), so `{"code":1,"code":0}` would
/// otherwise be read as an allow, and a deny must never be lost that way.
pub fn check_answer(a: &Answer) -> Result<(), HookError> {
    if a.status != 200 && a.status != 201 {
        return Err(HookError::Status(a.status));
    }
    let text = String::from_utf8_lossy(&a.body);
    let trimmed = text.trim();
    // Keep the echoed body short in logs and client statuses.
    let short = || trimmed.chars().take(128).collect::<String>();
    if trimmed == "0" {
        return Ok(());
    }
    match reply_codes(trimmed).as_deref() {
        Some([code]) if code.as_i64() == Some(0) => Ok(()),
        Some([_, _, ..]) => Err(HookError::DuplicateCode(short())),
        _ => Err(HookError::Refused(short())),
    }
}

/// Every value of the top-level `code` key of a JSON object, in order (duplicates kept); None
/// when the text is not a JSON object.
fn reply_codes(text: &str) -> Option<Vec<serde_json::Value>> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

    struct Codes;

    impl<'de> Visitor<'de> for Codes {
        type Value = Vec<serde_json::Value>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut codes = Vec::new();
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "code" {
                    codes.push(map.next_value::<serde_json::Value>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(codes)
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let codes = (&mut de).deserialize_map(Codes).ok()?;
    de.end().ok()?;
    Some(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn srs_answer_rules() {
        assert!(check_answer(&answer(200, "0")).is_ok());
        assert!(check_answer(&answer(201, "0\n")).is_ok());
        assert!(check_answer(&answer(200, r#"{"code": 0, "data": null}"#)).is_ok());
        assert!(check_answer(&answer(200, r#"{"code": 1}"#)).is_err());
        assert!(check_answer(&answer(200, r#"{"code": "0"}"#)).is_err());
        assert!(check_answer(&answer(200, "")).is_err());
        assert!(check_answer(&answer(200, "1")).is_err());
        assert!(check_answer(&answer(200, "ok")).is_err());
        assert!(check_answer(&answer(204, "0")).is_err());
        assert!(check_answer(&answer(403, "0")).is_err());
        assert!(check_answer(&answer(500, r#"{"code": 0}"#)).is_err());
        assert!(check_answer(&answer(200, &"x".repeat(10_000))).is_err());
        assert!(check_answer(&answer(200, r#"{"code": 0} trailing"#)).is_err());
        assert!(check_answer(&answer(200, r#"[0]"#)).is_err());
        assert!(check_answer(&answer(200, r#"{"data": {"code": 0}}"#)).is_err());
        assert!(check_answer(&answer(200, r#"{"data": {"code": 1}, "code": 0}"#)).is_ok());
    }

    /// Issue 24 item 9: with duplicate keys serde_json keeps the last one, which turned a
    /// deny followed by an allow into an allow.
    #[test]
    fn duplicate_code_is_a_refusal() {
        for body in [
            r#"{"code":1,"code":0}"#,
            r#"{"code":0,"code":1}"#,
            r#"{"code":0,"code":0}"#,
            r#"{"code":0,"data":null,"\u0063ode":0}"#,
        ] {
            let e = check_answer(&answer(200, body)).unwrap_err();
            assert!(matches!(e, HookError::DuplicateCode(_)), "{body}: {e}");
        }
    }
}
