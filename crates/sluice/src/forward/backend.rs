//! The dynamic forward: on each publish, ask the vhost's `forward { backend URL; }` where
//! to forward (SRS 5's `on_forward`). The reply lists full RTMP URLs:
//! `{"code":0,"data":{"urls":["rtmp://host/app/stream", ...]}}`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// The whole exchange (connect, request, reply) must fit in this.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Larger replies are refused: a list of URLs is small.
const MAX_REPLY: usize = 64 * 1024;
/// More URLs than this in one reply are ignored (each is a connection to keep up).
pub const MAX_URLS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("bad backend URL {0:?} (expected http://host[:port]/path)")]
    Url(String),
    #[error("cannot reach the backend: {0}")]
    Connect(std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("backend answered HTTP {0}")]
    Status(u16),
    #[error("backend reply is not the expected JSON: {0}")]
    Reply(String),
    #[error("backend refused the forward with code {0}")]
    Code(i64),
    #[error("backend did not answer within {BACKEND_TIMEOUT:?}")]
    Timeout,
}

/// `http://host[:port]/path` → (host, port, path).
fn split_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 80,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), 80),
        }
    };
    if host.is_empty() {
        return None;
    }
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Some((host, port, path))
}

/// Reads the URL list from a reply body.
pub fn parse_reply(body: &[u8]) -> Result<Vec<String>, BackendError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| BackendError::Reply(e.to_string()))?;
    let code = v
        .get("code")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| BackendError::Reply("no integer \"code\"".into()))?;
    if code != 0 {
        return Err(BackendError::Code(code));
    }
    let urls = match v.get("data").and_then(|d| d.get("urls")) {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(a)) => a,
        Some(_) => return Err(BackendError::Reply("\"data.urls\" is not an array".into())),
    };
    Ok(urls
        .iter()
        .filter_map(serde_json::Value::as_str)
        .filter(|u| rtmp::client::RtmpUrl::parse(u).is_ok())
        .take(MAX_URLS)
        .map(str::to_string)
        .collect())
}

/// POSTs `request` (SRS's on_forward body) to `url`; returns the RTMP URLs to forward to.
pub async fn ask(url: &str, request: &serde_json::Value) -> Result<Vec<String>, BackendError> {
    tokio::time::timeout(BACKEND_TIMEOUT, ask_inner(url, request))
        .await
        .map_err(|_| BackendError::Timeout)?
}

async fn ask_inner(url: &str, request: &serde_json::Value) -> Result<Vec<String>, BackendError> {
    let (host, port, path) = split_url(url).ok_or_else(|| BackendError::Url(url.to_string()))?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(BackendError::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| BackendError::Http(e.to_string()))?;
    let driver = tokio::spawn(conn);
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, host_header)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(request.to_string())))
        .map_err(|e| BackendError::Http(e.to_string()))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| BackendError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|e| BackendError::Http(e.to_string()))?
            .to_bytes();
        if status != 200 {
            return Err(BackendError::Status(status));
        }
        parse_reply(&body)
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("http://127.0.0.1:8085/api/v1/forward"),
            Some(("127.0.0.1".into(), 8085, "/api/v1/forward".into()))
        );
        assert_eq!(split_url("http://h"), Some(("h".into(), 80, "/".into())));
        assert_eq!(
            split_url("http://h?a=1"),
            Some(("h".into(), 80, "/?a=1".into()))
        );
        assert_eq!(
            split_url("http://[::1]:9/x"),
            Some(("::1".into(), 9, "/x".into()))
        );
        assert_eq!(split_url("https://h/x"), None);
        assert_eq!(split_url("http://:80/x"), None);
        assert_eq!(split_url("http://h:99999/x"), None);
    }

    #[test]
    fn replies() {
        let ok = br#"{"code":0,"data":{"urls":["rtmp://a/live/s","not a url",3]}}"#;
        assert_eq!(
            parse_reply(ok).unwrap(),
            vec!["rtmp://a/live/s".to_string()]
        );
        assert!(parse_reply(br#"{"code":0}"#).unwrap().is_empty());
        assert!(matches!(
            parse_reply(br#"{"code":100}"#),
            Err(BackendError::Code(100))
        ));
        assert!(parse_reply(b"0").is_err());
        assert!(parse_reply(br#"{"code":0,"data":{"urls":"x"}}"#).is_err());
        assert!(parse_reply(&[0xff, 0x00]).is_err());
    }

    #[tokio::test]
    async fn asks_a_backend_over_http() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            // Read until the JSON body is complete.
            while !got.ends_with(b"}") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"code":0,"data":{"urls":["rtmp://127.0.0.1:1/live/x"]}}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&got).to_string()
        });
        let req = serde_json::json!({"action": "on_forward", "stream": "s"});
        let urls = ask(&format!("http://127.0.0.1:{port}/api/fw"), &req)
            .await
            .unwrap();
        assert_eq!(urls, vec!["rtmp://127.0.0.1:1/live/x".to_string()]);
        let seen = server.await.unwrap();
        assert!(seen.starts_with("POST /api/fw HTTP/1.1\r\n"), "{seen}");
        assert!(seen.contains("\"action\":\"on_forward\""), "{seen}");
    }
}
