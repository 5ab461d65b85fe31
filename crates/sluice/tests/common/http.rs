//! Plain HTTP/1.1 GETs for the tests that read what the server serves (playlists,
//! segments, `/metrics`): one request per connection (`Connection: close`), the reply read
//! to its end, a chunked body decoded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A reply: its status, its head (status line and headers), its body (de-chunked).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn chunked(&self) -> bool {
        self.head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
    }
}

/// Sends `GET path` (a leading `/` is added when missing) on a new connection to
/// 127.0.0.1:`port`, without reading the reply.
pub fn send_get(port: u16, path: &str) -> TcpStream {
    send_get_with(port, path, "")
}

/// [`send_get`] with more header lines (each ending in `\r\n`).
pub fn send_get_with(port: u16, path: &str, headers: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    // Long enough for a blocking LL-HLS playlist request.
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let slash = if path.starts_with('/') { "" } else { "/" };
    write!(
        s,
        "GET {slash}{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Connection: close\r\n\r\n"
    )
    .expect("send");
    s
}

/// `GET path` and its whole reply.
pub fn get(port: u16, path: &str) -> Reply {
    read_reply(send_get(port, path))
}

/// `GET path` with more header lines, and its whole reply.
pub fn get_with(port: u16, path: &str, headers: &str) -> Reply {
    read_reply(send_get_with(port, path, headers))
}

/// Reads a reply to its end (the server closes: `Connection: close`).
pub fn read_reply(mut s: TcpStream) -> Reply {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("http header end");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let mut reply = Reply {
        status,
        head,
        body: raw[end + 4..].to_vec(),
    };
    if reply.chunked() {
        reply.body = dechunk(&reply.body);
    }
    reply
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        let Some(chunk) = b.get(eol + 2..eol + 2 + size) else {
            return out;
        };
        if size == 0 {
            return out;
        }
        out.extend_from_slice(chunk);
        b = b.get(eol + 4 + size..).unwrap_or_default();
    }
}
