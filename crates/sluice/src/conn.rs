//! A client connection's two halves, over plain TCP or TLS, so that the RTMP
//! session code and the HTTP-FLV direct path serve RTMPS and HTTPS unchanged.
//! The writing half becomes a live player's [`crate::delivery::Transport`].

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::tls::{TlsReader, TlsWriter};

pub enum ConnReader {
    Tcp(OwnedReadHalf),
    Tls(TlsReader),
}

pub enum ConnWriter {
    Tcp(OwnedWriteHalf),
    Tls(TlsWriter),
}

/// Both halves, used together (request heads, hyper) until a live play takes the
/// writing half into the delivery path.
pub struct Conn {
    pub reader: ConnReader,
    pub writer: ConnWriter,
}

impl Conn {
    /// A plain TCP connection.
    pub fn plain(tcp: TcpStream) -> Conn {
        let (r, w) = tcp.into_split();
        Conn {
            reader: ConnReader::Tcp(r),
            writer: ConnWriter::Tcp(w),
        }
    }

    /// An established TLS connection.
    pub fn tls(tcp: TcpStream, conn: rustls::ServerConnection) -> Conn {
        let (r, w) = crate::tls::split(tcp, rustls::Connection::Server(conn));
        Conn {
            reader: ConnReader::Tls(r),
            writer: ConnWriter::Tls(w),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.writer.is_tls()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}

impl ConnWriter {
    /// The TCP socket under the connection (socket options).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ConnWriter::Tcp(w) => w.as_ref(),
            ConnWriter::Tls(w) => w.tcp(),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, ConnWriter::Tls(_))
    }
}

impl AsyncRead for ConnReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnReader::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ConnReader::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ConnWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ConnWriter::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            ConnWriter::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ConnWriter::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            ConnWriter::Tls(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnWriter::Tcp(w) => Pin::new(w).poll_flush(cx),
            ConnWriter::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnWriter::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            ConnWriter::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
