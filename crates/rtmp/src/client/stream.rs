//! The client's socket: plain TCP, or TLS for `rtmps://` (with the `tls` feature).
//!
//! The player side reads without blocking and waits on the socket's readiness (see
//! [`super::connection::Player::read_batch`]); over TLS the wait is still the TCP
//! socket's, and a read is a poll of the TLS stream that turns "not yet" into
//! `None`. Readiness is cleared by the TLS layer's own socket reads, only when it
//! has no decrypted bytes left, so a wait never sleeps on bytes already received.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

pub(crate) enum Stream {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_read_ready(cx)
    }

    /// One non-blocking read into the spare capacity of `buf`; Ok(None) when nothing
    /// had arrived, Ok(Some(0)) at the end of the stream.
    pub(crate) fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<Option<usize>> {
        match self {
            Stream::Tcp(s) => read_now_tcp(s, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => poll_once_read(s.as_mut(), buf),
        }
    }
}

/// A read that leaves room in the buffer emptied the socket, so its readiness is
/// cleared at once (as tokio's own `poll_read` does): otherwise the next wait would
/// return straight away for a read that can only fail with `WouldBlock`.
fn read_now_tcp(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<Option<usize>> {
    let spare = buf.capacity() - buf.len();
    let mut got = 0;
    let r = stream.try_io(Interest::READABLE, || {
        got = stream.try_read_buf(buf)?;
        if got > 0 && got < spare {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    match r {
        Ok(()) => Ok(Some(got)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok((got > 0).then_some(got)),
        Err(e) => Err(e),
    }
}

/// Polls a read once with a waker that does nothing: the caller waits on the
/// socket's readiness itself.
#[cfg(feature = "tls")]
fn poll_once_read<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut BytesMut,
) -> io::Result<Option<usize>> {
    use std::future::Future;
    use tokio::io::AsyncReadExt;
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut read = std::pin::pin!(s.read_buf(buf));
    match read.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(n)) => Ok(Some(n)),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(None),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
