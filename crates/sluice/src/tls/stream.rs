//! A TLS connection split into a reading and a writing half that work on their own,
//! like a TCP socket's `into_split`.
//!
//! Why not `tokio_rustls::TlsStream` and `tokio::io::split`: a live player's writing
//! side moves into the delivery path ([`crate::delivery`]), which needs a write that
//! never blocks, takes what it can from a vectored batch and says whether something
//! is left to send, while the player's own task keeps reading its client (acks,
//! pause, close). Here both halves share one `rustls::Connection` behind a mutex that
//! is held only for rustls's own work (never across an await), and every ciphertext
//! write is a non-blocking `sendmsg` made under that lock, so records leave in order
//! whichever half wrote them.
//!
//! The handshake is done by tokio-rustls (see [`super::Handshakes`]); this type
//! takes over the connection once it is established.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Plaintext rustls encrypts ahead of the socket: about what a socket's send buffer
/// holds, so a TLS player falls behind like a TCP one (rustls's default is 64 KiB).
const SEND_BUFFER_LIMIT: usize = 256 * 1024;

struct Shared {
    conn: Mutex<rustls::Connection>,
    fd: RawFd,
    /// Ciphertext waits in rustls for room in the socket (see [`TlsWriter::backlog`]).
    backlog: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, rustls::Connection> {
        // Nothing panics under this lock; a poisoned one is still a connection to close.
        crate::util::lock(&self.conn)
    }
}

/// Non-blocking `sendmsg` on the socket, as the plain TCP transport writes.
struct SendNow(RawFd);

impl Write for SendNow {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        nix::sys::socket::sendmsg::<()>(
            self.0,
            bufs,
            &[],
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes what rustls has encrypted until it is all sent or the socket is full
/// (`WouldBlock`).
fn send_tls(conn: &mut rustls::Connection, fd: RawFd) -> io::Result<()> {
    while conn.wants_write() {
        if conn.write_tls(&mut SendNow(fd))? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// The slices of `iov` after its first `skip` bytes.
fn remaining<'b>(iov: &'b [IoSlice<'_>], mut skip: usize) -> Vec<IoSlice<'b>> {
    let mut out = Vec::with_capacity(iov.len());
    for s in iov {
        if skip >= s.len() {
            skip -= s.len();
            continue;
        }
        let bytes: &'b [u8] = s;
        out.push(IoSlice::new(&bytes[skip..]));
        skip = 0;
    }
    out
}

/// Splits an established TLS connection over `tcp`.
pub fn split(tcp: TcpStream, mut conn: rustls::Connection) -> (TlsReader, TlsWriter) {
    conn.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
    let fd = tcp.as_raw_fd();
    let shared = Arc::new(Shared {
        conn: Mutex::new(conn),
        fd,
        backlog: AtomicBool::new(false),
    });
    let (rd, wr) = tcp.into_split();
    (
        TlsReader {
            shared: shared.clone(),
            tcp: rd,
        },
        TlsWriter { shared, tcp: wr },
    )
}

/// The reading half: plaintext from the peer.
pub struct TlsReader {
    shared: Arc<Shared>,
    tcp: OwnedReadHalf,
}

/// `io::Read` over the socket for rustls, turning "not ready" into `WouldBlock`
/// (the task is then woken by the socket, as a tokio read would be).
struct PollRead<'a, 'b> {
    tcp: &'a mut OwnedReadHalf,
    cx: &'a mut Context<'b>,
}

impl Read for PollRead<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *self.tcp).poll_read(self.cx, &mut rb) {
            Poll::Ready(Ok(())) => Ok(rb.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl AsyncRead for TlsReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut conn = shared.lock();
        loop {
            match conn.reader().read(buf.initialize_unfilled()) {
                Ok(n) => {
                    // 0 is the peer's close_notify: the end of the stream.
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed the socket without close_notify: an end like
                // TCP's for our protocols (a truncation attack cannot change what a
                // live stream means).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Poll::Ready(Ok(()));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
            let mut rd = PollRead {
                tcp: &mut this.tcp,
                cx,
            };
            match conn.read_tls(&mut rd) {
                // The socket ended: rustls now reports the end (clean or not) above.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
            if let Err(e) = conn.process_new_packets() {
                // rustls queued an alert for the peer: send it if the socket takes it.
                let _ = send_tls(&mut conn, shared.fd);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
            // Post-handshake messages (key updates, tickets) to answer: best effort
            // now; the writing half sends what the socket refuses with its next write.
            if conn.wants_write() {
                let _ = send_tls(&mut conn, shared.fd);
            }
        }
    }
}

/// The writing half: what a live player's transport and set-up writes go through.
pub struct TlsWriter {
    shared: Arc<Shared>,
    tcp: OwnedWriteHalf,
}

impl TlsWriter {
    /// The TCP stream under the connection (for socket options).
    pub fn tcp(&self) -> &TcpStream {
        self.tcp.as_ref()
    }

    /// Sends pending ciphertext; `WouldBlock` also clears tokio's cached
    /// readiness, so that [`TlsWriter::writable`] then really waits for room.
    fn send_pending(&self, conn: &mut rustls::Connection) -> io::Result<()> {
        let r = match send_tls(conn, self.shared.fd) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.tcp.as_ref().try_io(tokio::io::Interest::WRITABLE, || {
                    send_tls(conn, self.shared.fd)
                })
            }
            r => r,
        };
        self.shared
            .backlog
            .store(conn.wants_write(), Ordering::Relaxed);
        r
    }

    /// One non-blocking write: encrypts as much of `iov` as rustls and the socket
    /// take and returns that count of plaintext bytes. Ciphertext the socket
    /// refused stays in rustls ([`TlsWriter::backlog`]) and holds back further
    /// plaintext until [`TlsWriter::flush_now`] sends it.
    pub fn try_send(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut conn = self.shared.lock();
        self.send_pending(&mut conn)?;
        let total: usize = iov.iter().map(|s| s.len()).sum();
        let mut taken = 0;
        loop {
            let n = if taken == 0 {
                conn.writer().write_vectored(iov)?
            } else {
                // Past rustls's buffer limit in one batch: rare (a batch is one
                // merged-write tick), so the rest is laid out again here.
                conn.writer().write_vectored(&remaining(iov, taken))?
            };
            taken += n;
            match self.send_pending(&mut conn) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
            if n == 0 || taken >= total {
                break;
            }
        }
        if taken == 0 && total > 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    /// Ciphertext is waiting for room in the socket: whoever writes must wait for
    /// [`TlsWriter::writable`] and call [`TlsWriter::flush_now`].
    pub fn backlog(&self) -> bool {
        self.shared.backlog.load(Ordering::Relaxed)
    }

    /// Sends waiting ciphertext without blocking; true when none is left.
    pub fn flush_now(&self) -> io::Result<bool> {
        let mut conn = self.shared.lock();
        match self.send_pending(&mut conn) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        self.tcp.writable().await
    }

    /// Ends the connection now: close_notify if the socket takes it, then the
    /// socket is shut both ways.
    pub fn shutdown(&self) {
        {
            let mut conn = self.shared.lock();
            conn.send_close_notify();
            let _ = send_tls(&mut conn, self.shared.fd);
        }
        let _ = nix::sys::socket::shutdown(self.shared.fd, nix::sys::socket::Shutdown::Both);
    }

    /// Waits for the socket, then sends pending ciphertext; Ready(Ok) when none is left.
    fn poll_send_pending(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.backlog() && !self.shared.lock().wants_write() {
                return Poll::Ready(Ok(()));
            }
            match self.tcp.as_ref().poll_write_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            match self.flush_now() {
                Ok(true) => return Poll::Ready(Ok(())),
                Ok(false) => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// For set-up writes (handshake replies, commands, HTTP heads) through
/// [`crate::write_timeout::WriteTimeout`].
impl AsyncWrite for TlsWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.poll_send_pending(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            match this.try_send(bufs) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send_pending(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shared.lock().send_close_notify();
        match this.poll_send_pending(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_certs::TestPki;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Both halves work at once: the server writes a large body through the
    /// non-blocking path while it reads what the client sends, and everything
    /// arrives whole and in order on both sides.
    #[tokio::test]
    async fn split_halves_carry_both_directions() {
        let pki = TestPki::new("localhost");
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
        let connector = tokio_rustls::TlsConnector::from(pki.client_config());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            tls.write_all(&[5u8; 100_000]).await.unwrap();
            tls.flush().await.unwrap();
            let mut got = Vec::new();
            tls.read_to_end(&mut got).await.unwrap();
            got
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let (tcp, conn) = tls.into_inner();
        let (mut reader, writer) = split(tcp, rustls::Connection::Server(conn));
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let read = tokio::spawn(async move {
            let mut got = vec![0u8; 100_000];
            reader.read_exact(&mut got).await.unwrap();
            got
        });
        let mut at = 0;
        while at < body.len() {
            let end = (at + 70_000).min(body.len());
            let half = at + (end - at) / 2;
            match writer.try_send(&[
                IoSlice::new(&body[at..half]),
                IoSlice::new(&body[half..end]),
            ]) {
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            while writer.backlog() {
                writer.writable().await.unwrap();
                writer.flush_now().unwrap();
            }
        }
        assert!(read.await.unwrap().iter().all(|&b| b == 5));
        writer.shutdown();
        let got = client.await.unwrap();
        assert_eq!(got.len(), body.len());
        assert!(got == body, "the body arrived altered");
    }
}
