//! Where a live player's bytes go: a TCP socket (RTMP, HTTP-FLV on its own
//! connection), a TLS connection (RTMPS, HTTPS-FLV: [`crate::tls`]), or a bounded
//! pipe into hyper's response body (HTTP-FLV asked for after other requests on a
//! kept-alive connection).
//!
//! The driver ([`super::driver`]) needs of a transport: a write that never blocks
//! and takes what it can, a way to wait for room, and a shutdown; and, for TLS,
//! whether bytes it took are still waiting to be sent (`backlog`, `flush_now`):
//! encrypted records the socket refused stay in the TLS layer, and the player's
//! task must push them out even when nothing new is published.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::conn::ConnWriter;
use crate::tls::TlsWriter;

pub enum Transport {
    Tcp(TcpTransport),
    Tls(TlsWriter),
    Pipe(PipeWriter),
    /// An SRT connection (`crate::srt`): TS in 1316-byte messages.
    Srt(SrtTransport),
    /// A WHEP player: records handed to the RTC UDP task (`crate::rtc::peer`).
    Rtc(crate::rtc::peer::RtcTransport),
}

impl Transport {
    /// Whether what reaches the wire is counted elsewhere than in the driver's writes: a
    /// WHEP player's records name packets of its stream's history (12 bytes a frame), and
    /// the RTC UDP task counts the datagrams it sends.
    pub fn counts_bytes_itself(&self) -> bool {
        matches!(self, Transport::Rtc(_))
    }

    pub fn tcp(writer: OwnedWriteHalf) -> Transport {
        Transport::Tcp(TcpTransport {
            fd: writer.as_ref().as_raw_fd(),
            writer,
        })
    }

    /// The writing half of a client connection, plain or TLS.
    pub fn from_conn(writer: ConnWriter) -> Transport {
        match writer {
            ConnWriter::Tcp(w) => Transport::tcp(w),
            ConnWriter::Tls(w) => Transport::Tls(w),
        }
    }

    /// One non-blocking write of as much of `iov` as fits.
    pub fn try_send(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Tcp(t) => t.try_send(iov),
            Transport::Tls(t) => t.try_send(iov),
            Transport::Pipe(p) => p.try_send(iov),
            Transport::Srt(s) => s.try_send(iov),
            Transport::Rtc(r) => r.try_send(iov),
        }
    }

    /// Bytes already taken are still waiting to go out (TLS records the socket
    /// refused): the writer must wait for room and [`Transport::flush_now`].
    pub fn backlog(&self) -> bool {
        match self {
            Transport::Tls(t) => t.backlog(),
            Transport::Tcp(_) | Transport::Pipe(_) | Transport::Srt(_) | Transport::Rtc(_) => false,
        }
    }

    /// Sends what [`Transport::backlog`] holds, without blocking; true when it is gone.
    pub fn flush_now(&self) -> io::Result<bool> {
        match self {
            Transport::Tls(t) => t.flush_now(),
            Transport::Tcp(_) | Transport::Pipe(_) | Transport::Srt(_) | Transport::Rtc(_) => {
                Ok(true)
            }
        }
    }

    /// Waits until a write may take something (or fail).
    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Transport::Tcp(t) => t.writer.writable().await,
            Transport::Tls(t) => t.writable().await,
            Transport::Pipe(p) => p.writable().await,
            Transport::Srt(s) => s.socket.writable().await,
            Transport::Rtc(r) => r.writable().await,
        }
    }

    /// Ends the stream now: the peer sees the end at once, whatever still holds
    /// a reference to the transport.
    pub fn shutdown(&self) {
        match self {
            Transport::Tcp(t) => {
                let _ = nix::sys::socket::shutdown(t.fd, nix::sys::socket::Shutdown::Both);
            }
            Transport::Tls(t) => t.shutdown(),
            Transport::Pipe(p) => p.close(),
            Transport::Srt(s) => s.socket.socket().close(),
            Transport::Rtc(r) => r.shutdown(),
        }
    }
}

/// A player's SRT connection, sending side. libsrt's live mode takes one message of at
/// most 1316 bytes (7 TS packets) per call and copies it into its send buffer, so a
/// batch is gathered into messages here: the copy libsrt makes anyway, one more of at
/// most 1316 bytes on the stack. Every batch is whole TS packets, and every message but
/// the last of a batch is full, so what a refused send leaves is whole packets too.
pub struct SrtTransport {
    pub socket: Arc<libsrt::reactor::AsyncSocket>,
}

impl SrtTransport {
    fn try_send(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut msg = [0u8; libsrt::LIVE_PAYLOAD];
        let mut fill = 0;
        let mut sent = 0;
        let send = |msg: &[u8], sent: &mut usize| -> io::Result<bool> {
            match self.socket.try_send(msg) {
                Ok(_) => {
                    *sent += msg.len();
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(e) if *sent > 0 => {
                    // Reported by the next write.
                    let _ = e;
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        };
        for s in iov {
            let mut rest: &[u8] = s;
            while !rest.is_empty() {
                let take = rest.len().min(msg.len() - fill);
                msg[fill..fill + take].copy_from_slice(&rest[..take]);
                fill += take;
                rest = &rest[take..];
                if fill == msg.len() {
                    if !send(&msg, &mut sent)? {
                        return done(sent);
                    }
                    fill = 0;
                }
            }
        }
        if fill > 0 {
            send(&msg[..fill], &mut sent)?;
        }
        done(sent)
    }
}

fn done(sent: usize) -> io::Result<usize> {
    if sent == 0 {
        Err(io::ErrorKind::WouldBlock.into())
    } else {
        Ok(sent)
    }
}

/// A player's TCP socket, writing side.
pub struct TcpTransport {
    /// `writer`'s descriptor, kept here: reaching it through the tokio stream is a
    /// chain of pointers, each a cache miss when a shard walks a thousand players.
    fd: RawFd,
    writer: OwnedWriteHalf,
}

impl TcpTransport {
    /// `sendmsg` rather than the `writev` behind tokio's `try_write_vectored`: on a
    /// socket the two do the same, but `writev` goes through the file layer first
    /// (position lock, write checks, fsnotify), about a tenth of the kernel time of
    /// a player's write (perf, 1,000 players).
    ///
    /// The socket is tried first and tokio asked only when it is full: a player's
    /// socket almost always has room, and tokio's readiness bookkeeping around every
    /// write was a third of the fan-out's own CPU time with merged writes off.
    /// `EAGAIN` clears tokio's cached readiness (its event tick keeps an edge that
    /// came in meanwhile), so the player's task then really waits for room.
    fn try_send(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        let send = || {
            nix::sys::socket::sendmsg::<()>(
                self.fd,
                iov,
                &[],
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)
        };
        match send() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let stream: &tokio::net::TcpStream = self.writer.as_ref();
                stream.try_io(tokio::io::Interest::WRITABLE, send)
            }
            r => r,
        }
    }
}

/// How much a pipe holds before its writer must wait: about what a socket's send
/// buffer holds, so a player behind a pipe falls behind like one behind a socket.
pub const PIPE_CAPACITY: usize = 256 * 1024;

struct PipeState {
    queue: VecDeque<Bytes>,
    bytes: usize,
    /// The writer closed the pipe: the reader ends after the queue.
    closed: bool,
    /// The reader is gone: writes fail.
    reader_gone: bool,
    reader_waker: Option<std::task::Waker>,
}

struct Pipe {
    state: Mutex<PipeState>,
    room: Notify,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        // Nothing panics while the state is locked; a poisoned one is still consistent.
        crate::util::lock(&self.state)
    }
}

/// A bounded pipe into a response body: the driver writes, hyper's body reads.
/// Each write is one copy of the batch into one buffer; this path serves only
/// plays that share a connection with earlier requests, so the socket path's
/// zero-copy is not worth its complexity here.
pub fn pipe() -> (PipeWriter, PipeReader) {
    let pipe = Arc::new(Pipe {
        state: Mutex::new(PipeState {
            queue: VecDeque::new(),
            bytes: 0,
            closed: false,
            reader_gone: false,
            reader_waker: None,
        }),
        room: Notify::new(),
    });
    (PipeWriter { pipe: pipe.clone() }, PipeReader { pipe })
}

pub struct PipeWriter {
    pipe: Arc<Pipe>,
}

impl PipeWriter {
    fn try_send(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut st = self.pipe.lock();
        if st.reader_gone {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if st.closed {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let room = PIPE_CAPACITY.saturating_sub(st.bytes);
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut buf = BytesMut::new();
        for s in iov {
            let take = s.len().min(room - buf.len());
            buf.extend_from_slice(&s[..take]);
            if buf.len() == room {
                break;
            }
        }
        let n = buf.len();
        if n > 0 {
            st.bytes += n;
            st.queue.push_back(buf.freeze());
            if let Some(w) = st.reader_waker.take() {
                w.wake();
            }
        }
        Ok(n)
    }

    async fn writable(&self) -> io::Result<()> {
        loop {
            let notified = self.pipe.room.notified();
            {
                let st = self.pipe.lock();
                if st.reader_gone {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                if st.bytes < PIPE_CAPACITY {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// Resolves when the reader (the response body) is gone: the client left.
    pub async fn reader_gone(&self) {
        loop {
            let notified = self.pipe.room.notified();
            if self.pipe.lock().reader_gone {
                return;
            }
            notified.await;
        }
    }

    fn close(&self) {
        let mut st = self.pipe.lock();
        st.closed = true;
        if let Some(w) = st.reader_waker.take() {
            w.wake();
        }
    }

    /// A second handle on the same pipe, for the player's task to watch the reader.
    pub fn handle(&self) -> PipeWriter {
        PipeWriter {
            pipe: self.pipe.clone(),
        }
    }
}

/// The reading end: a stream of body pieces, ending when the writer closes.
pub struct PipeReader {
    pipe: Arc<Pipe>,
}

impl futures_util::Stream for PipeReader {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut st = self.pipe.lock();
        if let Some(b) = st.queue.pop_front() {
            st.bytes -= b.len();
            drop(st);
            self.pipe.room.notify_waiters();
            return Poll::Ready(Some(Ok(b)));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        st.reader_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let mut st = self.pipe.lock();
        st.reader_gone = true;
        st.queue.clear();
        st.bytes = 0;
        drop(st);
        self.pipe.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_pipe_is_bounded_ordered_and_ends() {
        let (w, mut r) = pipe();
        let big = vec![7u8; PIPE_CAPACITY + 10];
        let n = w
            .try_send(&[IoSlice::new(b"ab"), IoSlice::new(&big)])
            .unwrap();
        assert_eq!(n, PIPE_CAPACITY, "takes what fits");
        assert_eq!(
            w.try_send(&[IoSlice::new(b"x")]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let first = r.next().await.unwrap().unwrap();
        assert_eq!(&first[..2], b"ab");
        w.writable().await.unwrap();
        assert_eq!(w.try_send(&[IoSlice::new(b"end")]).unwrap(), 3);
        w.close();
        assert_eq!(&r.next().await.unwrap().unwrap()[..], b"end");
        assert!(r.next().await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_reader_fails_the_writer() {
        let (w, r) = pipe();
        let watcher = w.handle();
        let gone = tokio::spawn(async move { watcher.reader_gone().await });
        drop(r);
        gone.await.unwrap();
        assert_eq!(
            w.try_send(&[IoSlice::new(b"x")]).unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        assert!(w.writable().await.is_err());
    }
}
