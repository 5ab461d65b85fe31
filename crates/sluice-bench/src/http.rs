//! Just enough HTTP/1.x client for HTTP-FLV and HLS players: one GET per connection, the
//! response head parsed with hard bounds, chunked bodies decoded incrementally.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest whole body fetched with [`get`] (a playlist or a segment).
pub const MAX_BODY: usize = 64 << 20;

/// Why a URL, a response or a body was refused, or the connection failed. Players report it
/// as text; a type so the player and tests can tell a refused URL from a broken server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0:?}: only http:// URLs are supported")]
    NotHttpUrl(String),
    #[error("{url:?}: bad port {port:?}")]
    BadPort { url: String, port: String },
    #[error("{0:?}: empty host")]
    EmptyHost(String),
    #[error("not an HTTP/1 response: {0:?}")]
    NotHttp1(String),
    #[error("bad status line {0:?}")]
    BadStatusLine(String),
    #[error("response head is not UTF-8")]
    HeadNotUtf8,
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("connection closed before the response head")]
    ClosedBeforeHead,
    #[error("body larger than {MAX_BODY} bytes")]
    BodyTooLarge,
    #[error("chunk size line too long")]
    ChunkLineTooLong,
    #[error("missing CRLF after chunk data")]
    MissingChunkCrlf,
    #[error("bad chunk size {0:?}")]
    BadChunkSize(String),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
}

impl HttpError {
    fn io(context: &'static str) -> impl FnOnce(io::Error) -> HttpError {
        move |source| HttpError::Io { context, source }
    }
}

/// `http://host[:port]/path?query` split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, HttpError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| HttpError::NotHttpUrl(url.to_string()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse().map_err(|_| HttpError::BadPort {
                    url: url.to_string(),
                    port: p.to_string(),
                })?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(HttpError::EmptyHost(url.to_string()));
        }
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// Resolves a playlist entry (absolute URL, absolute path or relative path).
    pub fn join(&self, reference: &str) -> Result<HttpUrl, HttpError> {
        if reference.starts_with("http://") {
            return HttpUrl::parse(reference);
        }
        let path = if reference.starts_with('/') {
            reference.to_string()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = base.rsplit_once('/').map_or("", |(d, _)| d);
            format!("{dir}/{reference}")
        };
        Ok(HttpUrl {
            host: self.host.clone(),
            port: self.port,
            path,
        })
    }
}

/// Status and body framing of a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    pub content_length: Option<u64>,
}

/// Parses a complete head (without the final blank line).
pub fn parse_head(head: &str) -> Result<Head, HttpError> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::NotHttp1(status_line.to_string()));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::BadStatusLine(status_line.to_string()))?;
    let mut out = Head {
        status,
        chunked: false,
        content_length: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            out.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            out.content_length = value.parse().ok();
        }
    }
    Ok(out)
}

/// Connects, sends a GET and reads the head; body bytes already read stay in `buf`.
pub async fn open(url: &HttpUrl, buf: &mut BytesMut) -> Result<(TcpStream, Head), HttpError> {
    let mut stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(HttpError::io("TCP connect"))?;
    stream
        .set_nodelay(true)
        .map_err(HttpError::io("TCP_NODELAY"))?;
    // HTTP/1.0: a live body is then delimited by the close, with no chunk framing to undo.
    let req = format!(
        "GET {} HTTP/1.0\r\nHost: {}:{}\r\nUser-Agent: sluice-bench\r\nAccept: */*\r\n\r\n",
        url.path, url.host, url.port
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(HttpError::io("sending the request"))?;
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])
                .map_err(|_| HttpError::HeadNotUtf8)?
                .to_string();
            buf.advance(end + 4);
            return Ok((stream, parse_head(&head)?));
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        buf.reserve(4096);
        if stream
            .read_buf(buf)
            .await
            .map_err(HttpError::io("reading the head"))?
            == 0
        {
            return Err(HttpError::ClosedBeforeHead);
        }
    }
}

/// A whole (bounded) body, for playlists and segments.
pub async fn get(url: &HttpUrl) -> Result<(u16, Vec<u8>), HttpError> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let (mut stream, head) = open(url, &mut buf).await?;
    let mut dechunk = head.chunked.then(Dechunker::default);
    let mut body = Vec::new();
    loop {
        match &mut dechunk {
            Some(d) => d.decode(&mut buf, &mut body)?,
            None => {
                body.extend_from_slice(&buf);
                buf.clear();
            }
        }
        if body.len() > MAX_BODY {
            return Err(HttpError::BodyTooLarge);
        }
        let done = match (&dechunk, head.content_length) {
            (Some(d), _) => d.finished(),
            (None, Some(n)) => body.len() as u64 >= n,
            (None, None) => false,
        };
        if done {
            break;
        }
        buf.reserve(64 * 1024);
        if stream
            .read_buf(&mut buf)
            .await
            .map_err(HttpError::io("reading the body"))?
            == 0
        {
            break;
        }
    }
    Ok((head.status, body))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Default)]
pub struct Dechunker {
    /// Bytes left in the current chunk's data.
    left: u64,
    /// The CRLF after a chunk's data is still to be skipped.
    after_data: bool,
    finished: bool,
}

impl Dechunker {
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Moves decoded body bytes from `input` to `out`; keeps an incomplete size line.
    pub fn decode(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> Result<(), HttpError> {
        while !self.finished {
            if self.left > 0 {
                if input.is_empty() {
                    return Ok(());
                }
                let n = (self.left.min(input.len() as u64)) as usize;
                out.extend_from_slice(&input[..n]);
                input.advance(n);
                self.left -= n as u64;
                if self.left == 0 {
                    self.after_data = true;
                }
                continue;
            }
            let Some(eol) = find(input, b"\r\n") else {
                if input.len() > 1024 {
                    return Err(HttpError::ChunkLineTooLong);
                }
                return Ok(());
            };
            if self.after_data {
                if eol != 0 {
                    return Err(HttpError::MissingChunkCrlf);
                }
                input.advance(2);
                self.after_data = false;
                continue;
            }
            let line = std::str::from_utf8(&input[..eol]).map_err(|_| {
                HttpError::BadChunkSize(String::from_utf8_lossy(&input[..eol]).into_owned())
            })?;
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_hex, 16)
                .map_err(|_| HttpError::BadChunkSize(size_hex.to_string()))?;
            input.advance(eol + 2);
            if size == 0 {
                self.finished = true;
            } else {
                self.left = size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:8080/live/s.flv?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/live/s.flv?x=1")
        );
        assert_eq!(HttpUrl::parse("http://h").unwrap().path, "/");
        assert!(HttpUrl::parse("rtmp://h/a/s").is_err());
        assert!(HttpUrl::parse("http://:80/").is_err());
        let pl = HttpUrl::parse("http://h:1/live/s.m3u8").unwrap();
        assert_eq!(pl.join("s-1.ts").unwrap().path, "/live/s-1.ts");
        assert_eq!(pl.join("/x/s-1.ts").unwrap().path, "/x/s-1.ts");
        assert_eq!(pl.join("http://o:2/a.ts").unwrap().port, 2);
    }

    #[test]
    fn heads() {
        let h = parse_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y").unwrap();
        assert_eq!((h.status, h.chunked, h.content_length), (200, true, None));
        let h = parse_head("HTTP/1.0 404 Not Found\r\ncontent-length: 12").unwrap();
        assert_eq!(
            (h.status, h.chunked, h.content_length),
            (404, false, Some(12))
        );
        assert!(parse_head("SSH-2.0").is_err());
        assert!(parse_head("HTTP/1.1 abc").is_err());
    }

    #[test]
    fn dechunk_in_pieces() {
        let wire = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            let mut input = BytesMut::from(&wire[..split]);
            d.decode(&mut input, &mut out).unwrap();
            input.extend_from_slice(&wire[split..]);
            d.decode(&mut input, &mut out).unwrap();
            assert_eq!(out, b"hello world", "split at {split}");
            assert!(d.finished());
        }
    }

    #[test]
    fn dechunk_rejects_garbage() {
        let mut d = Dechunker::default();
        let mut out = Vec::new();
        assert!(d
            .decode(&mut BytesMut::from(&b"zz\r\n"[..]), &mut out)
            .is_err());
        let mut d = Dechunker::default();
        assert!(d
            .decode(&mut BytesMut::from(&b"1\r\nab\r\n"[..]), &mut out)
            .is_err());
        let mut d = Dechunker::default();
        assert!(d
            .decode(&mut BytesMut::from(&[b'1'; 2000][..]), &mut out)
            .is_err());
    }
}
