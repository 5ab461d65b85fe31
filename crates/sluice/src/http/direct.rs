//! Live HTTP-FLV without hyper on the hot path.
//!
//! A connection's first request head is read here. When it is a GET of a live FLV
//! mount, the response head is written here too and the player joins the stream's
//! shards like an RTMP player ([`crate::delivery`]): one vectored write per
//! merged-write tick, FLV tag headers and HTTP chunk framing made in a shared
//! scratch buffer, payloads straight from the ring. Through hyper, every frame was
//! three body buffers, an HTTP chunk and a task wake-up; an HTTP-FLV player should
//! cost what an RTMP player costs. Every other request (and a play after other
//! requests on a kept-alive connection) goes to hyper with the bytes already read.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::conn::Conn;
use axum::response::Response;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tracing::{info, Instrument};

use super::flv_live::{self, Admission, Admitted, PlayRequest, RemuxFormat};
use super::{HEADER_READ_TIMEOUT, MAX_HEAD_BYTES, WRITE_TIMEOUT};
use crate::context::Context;
use crate::delivery::{PlayerDriver, Transport};

/// Headers looked at in a request head (more are allowed; httparse needs a bound).
const MAX_HEADERS: usize = 64;

/// The parts of a request head the direct path needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub query: String,
    pub host: Option<String>,
    pub referer: Option<String>,
    /// HTTP/1.1 (chunked body) rather than 1.0 (body until close).
    pub http11: bool,
}

/// What the first bytes of a connection hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Complete(Head),
    Partial,
    /// Not HTTP/1 as we read it: hyper answers it.
    Invalid,
}

/// Parses a request head (sans-IO: bytes in, values out).
pub fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Invalid;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::to_string)
    };
    Parsed::Complete(Head {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        host: header("host"),
        referer: header("referer"),
        http11: version >= 1,
    })
}

/// The response head and the FLV file header, as the first bytes of the body.
pub fn response_start(http11: bool, crossdomain: bool, flv_header: &[u8]) -> Vec<u8> {
    response_start_for(RemuxFormat::Flv, http11, crossdomain, flv_header)
}

/// The response head of a live play of `format` and the first bytes of its body
/// (`body_start`: FLV's file header, MP3's ID3 tag; may be empty).
pub fn response_start_for(
    format: RemuxFormat,
    http11: bool,
    crossdomain: bool,
    body_start: &[u8],
) -> Vec<u8> {
    let flv_header = body_start;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\n",
            format.content_type()
        )
        .as_bytes(),
    );
    if crossdomain {
        out.extend_from_slice(b"Access-Control-Allow-Origin: *\r\n");
    }
    if http11 {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        // A chunk of size 0 would end the body.
        if !flv_header.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", flv_header.len()).as_bytes());
            out.extend_from_slice(flv_header);
            out.extend_from_slice(b"\r\n");
        }
    } else {
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(flv_header);
    }
    out
}

/// Reads the first request head and serves a live FLV play directly; hands
/// everything else to hyper (`fallback`) with the bytes read so far.
pub async fn serve<F, Fut>(ctx: Arc<Context>, mut socket: Conn, peer: SocketAddr, fallback: F)
where
    F: FnOnce(Rewind) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut buf = BytesMut::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + HEADER_READ_TIMEOUT;
    let head = loop {
        match parse_head(&buf) {
            Parsed::Complete(head) => break Some(head),
            Parsed::Invalid => break None,
            Parsed::Partial if buf.len() >= MAX_HEAD_BYTES => break None,
            Parsed::Partial => {}
        }
        match tokio::time::timeout_at(deadline, socket.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
            // hyper would close it the same way (its header-read time-out).
            Err(_) => {
                info!("http client {peer}: no request head within {HEADER_READ_TIMEOUT:?}; closed");
                return;
            }
        }
    };
    if let Some(head) = head.filter(|h| h.method == "GET" && flv_live::is_candidate(&h.path)) {
        let req = PlayRequest {
            head: false,
            path: &head.path,
            query: &head.query,
            host: flv_live::host_of(head.host.as_deref()),
            referer: head.referer.as_deref(),
            peer: Some(peer),
        };
        match flv_live::admit(&ctx, &req).await {
            Admission::NotLive => {}
            Admission::Answer(resp) => return answer(socket, resp).await,
            Admission::Play(admitted) => {
                let span = admitted.span.clone();
                return play(ctx, socket, *admitted, head.http11)
                    .instrument(span)
                    .await;
            }
        }
    }
    fallback(Rewind {
        prefix: buf,
        inner: socket,
    })
    .await
}

/// Writes a small complete response (a refusal) and closes.
async fn answer(mut socket: Conn, resp: Response) {
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.write_all(&out)).await;
}

/// One direct HTTP-FLV player, from its response head to its end: the publish
/// ended (the body is complete), the client went away, a kick, or a write that
/// made no progress for [`WRITE_TIMEOUT`].
async fn play(ctx: Arc<Context>, socket: Conn, admitted: Admitted, http11: bool) {
    let body_start = admitted.body_start();
    let framer = admitted.framer(http11);
    let format = admitted.format;
    let Admitted {
        consumer,
        nodelay,
        crossdomain,
        session,
        ..
    } = admitted;
    if !nodelay {
        crate::listen::set_nodelay(socket.writer.tcp(), false);
    }
    let Conn {
        mut reader,
        mut writer,
    } = socket;
    let start = response_start_for(format, http11, crossdomain, &body_start);
    match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&start)).await {
        Ok(Ok(())) => session.count(start.len()),
        _ => return,
    }
    let client = session.registration.client.clone();
    let driver = PlayerDriver::new(
        Transport::from_conn(writer),
        consumer,
        framer,
        ctx.clone(),
        client.clone(),
    );
    let attached = ctx.delivery.attach(driver);
    // A player sends nothing after its request: reading only sees the end.
    let peer_gone = async move {
        let mut scratch = [0u8; 64];
        while let Ok(n) = reader.read(&mut scratch).await {
            if n == 0 {
                return;
            }
        }
    };
    let why = flv_live::attend(&attached, &client, peer_gone).await;
    // The player (and its consumer) before the session, whose end releases the stream.
    drop(attached);
    let mut session = session;
    session.close_reason = why;
    drop(session);
}

/// A socket whose first bytes were already read: hyper reads them again from here.
pub struct Rewind {
    prefix: BytesMut,
    inner: Conn,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_or_left_to_hyper() {
        let head = b"GET /live/test.flv?token=a&vhost=v HTTP/1.1\r\nHost: example.com:8080\r\nReferer: http://page/\r\n\r\n";
        assert_eq!(
            parse_head(head),
            Parsed::Complete(Head {
                method: "GET".into(),
                path: "/live/test.flv".into(),
                query: "token=a&vhost=v".into(),
                host: Some("example.com:8080".into()),
                referer: Some("http://page/".into()),
                http11: true,
            })
        );
        // Byte by byte: partial until the blank line.
        for i in 0..head.len() - 1 {
            assert_eq!(parse_head(&head[..i]), Parsed::Partial, "{i}");
        }
        match parse_head(b"GET /a.flv HTTP/1.0\r\n\r\n") {
            Parsed::Complete(h) => assert!(!h.http11 && h.host.is_none()),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_head(b"\x16\x03\x01 tls hello\r\n\r\n"),
            Parsed::Invalid
        );
        assert_eq!(parse_head(b"GET /a b c HTTP/1.1\r\n\r\n"), Parsed::Invalid);
    }

    #[test]
    fn response_start_frames_the_flv_header() {
        let flv = [b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0];
        let s = response_start(true, true, &flv);
        let text = String::from_utf8_lossy(&s);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Transfer-Encoding: chunked\r\n"));
        assert!(text.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(s.ends_with(&[b"d\r\n".as_slice(), &flv, b"\r\n"].concat()));
        let s = response_start(false, false, &flv);
        let text = String::from_utf8_lossy(&s);
        assert!(!text.contains("chunked") && !text.contains("Access-Control"));
        assert!(text.contains("Connection: close\r\n\r\n"));
        assert!(s.ends_with(&flv));
    }
}
