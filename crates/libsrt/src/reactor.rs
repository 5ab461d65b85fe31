//! libsrt's sockets are not file descriptors tokio can poll, so one thread waits on an SRT
//! epoll (`srt_epoll_uwait`) for every socket some task is waiting on, and wakes that task.
//!
//! Interest is level-triggered and given only while a task waits: a task tries its
//! non-blocking call first; on WouldBlock it leaves its waker, subscribes the socket for
//! that direction and reads the socket's readiness once more (what arrived between its try
//! and its subscription would otherwise be missed). The thread wakes the waiters of a
//! socket that is ready and drops its subscription. When nothing happened for
//! [`IDLE_WAKE`] it wakes every waiter anyway: a missed edge costs at most that, never a
//! stalled connection.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use libc::c_int;

use crate::ffi::{self, SRT_EPOLL_ERR, SRT_EPOLL_IN, SRT_EPOLL_OUT};
use crate::{Socket, SRTSOCKET};

/// The longest the thread sleeps before waking every waiter anyway.
pub const IDLE_WAKE: Duration = Duration::from_millis(200);
/// Events taken from libsrt per wait.
const EVENTS_PER_WAIT: usize = 256;

#[derive(Default)]
struct Waiters {
    read: Option<Waker>,
    write: Option<Waker>,
}

impl Waiters {
    fn interest(&self) -> c_int {
        let mut i = 0;
        if self.read.is_some() {
            i |= SRT_EPOLL_IN | SRT_EPOLL_ERR;
        }
        if self.write.is_some() {
            i |= SRT_EPOLL_OUT | SRT_EPOLL_ERR;
        }
        i
    }
}

struct Inner {
    eid: c_int,
    waiters: Mutex<HashMap<SRTSOCKET, Waiters>>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<SRTSOCKET, Waiters>> {
        // Nothing panics while it is held; a poisoned map is still a valid map.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes `id` for what its waiters wait for (or unsubscribes it).
    fn subscribe(&self, id: SRTSOCKET, interest: c_int) {
        // SAFETY: `eid` is our epoll, `id` a socket handle (a closed one only makes libsrt
        // return an error); `interest` is read during the call.
        unsafe {
            if interest == 0 {
                ffi::srt_epoll_remove_usock(self.eid, id);
            } else {
                ffi::srt_epoll_update_usock(self.eid, id, &interest);
            }
        }
    }

    fn run(&self) {
        let mut events = vec![ffi::SRT_EPOLL_EVENT::default(); EVENTS_PER_WAIT];
        loop {
            // SAFETY: libsrt writes at most EVENTS_PER_WAIT events into `events`.
            let n = unsafe {
                ffi::srt_epoll_uwait(
                    self.eid,
                    events.as_mut_ptr(),
                    EVENTS_PER_WAIT as c_int,
                    IDLE_WAKE.as_millis() as i64,
                )
            };
            let mut woken = Vec::new();
            {
                let mut waiters = self.lock();
                if n <= 0 {
                    // Nothing (or a time-out): wake everyone once, as a safety net.
                    for (id, w) in waiters.drain() {
                        woken.extend(w.read);
                        woken.extend(w.write);
                        self.subscribe(id, 0);
                    }
                } else {
                    for ev in &events[..(n as usize).min(EVENTS_PER_WAIT)] {
                        let Some(w) = waiters.get_mut(&ev.fd) else {
                            self.subscribe(ev.fd, 0);
                            continue;
                        };
                        if ev.events & (SRT_EPOLL_IN | SRT_EPOLL_ERR) != 0 {
                            woken.extend(w.read.take());
                        }
                        if ev.events & (SRT_EPOLL_OUT | SRT_EPOLL_ERR) != 0 {
                            woken.extend(w.write.take());
                        }
                        let interest = w.interest();
                        if interest == 0 {
                            waiters.remove(&ev.fd);
                        }
                        self.subscribe(ev.fd, interest);
                    }
                }
            }
            for w in woken {
                w.wake();
            }
        }
    }
}

/// The process's one reactor thread, started on first use.
fn reactor() -> io::Result<Arc<Inner>> {
    static REACTOR: OnceLock<Result<Arc<Inner>, String>> = OnceLock::new();
    REACTOR
        .get_or_init(|| {
            crate::startup();
            // SAFETY: no arguments; returns an epoll id or -1.
            let eid = unsafe { ffi::srt_epoll_create() };
            if eid < 0 {
                return Err(crate::last_error().to_string());
            }
            // SAFETY: sets a flag on our epoll.
            unsafe { ffi::srt_epoll_set(eid, ffi::SRT_EPOLL_ENABLE_EMPTY) };
            let inner = Arc::new(Inner {
                eid,
                waiters: Mutex::new(HashMap::new()),
            });
            let thread = inner.clone();
            std::thread::Builder::new()
                .name("srt-reactor".into())
                .spawn(move || thread.run())
                .map_err(|e| e.to_string())?;
            Ok(inner)
        })
        .clone()
        .map_err(io::Error::other)
}

#[derive(Clone, Copy)]
enum Dir {
    Read,
    Write,
}

/// A non-blocking SRT socket whose calls a tokio task can await.
pub struct AsyncSocket {
    sock: Socket,
    reactor: Arc<Inner>,
}

impl std::fmt::Debug for AsyncSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSocket")
            .field("id", &self.sock.id())
            .finish()
    }
}

impl AsyncSocket {
    /// Makes `sock` non-blocking and hands its waits to the reactor.
    pub fn new(sock: Socket) -> io::Result<AsyncSocket> {
        sock.set_nonblocking()?;
        Ok(AsyncSocket {
            sock,
            reactor: reactor()?,
        })
    }

    pub fn socket(&self) -> &Socket {
        &self.sock
    }

    fn poll_io<T>(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
        mut op: impl FnMut(&Socket) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        for _ in 0..2 {
            match op(&self.sock) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
            let id = self.sock.id();
            {
                let mut waiters = self.reactor.lock();
                let w = waiters.entry(id).or_default();
                let slot = match dir {
                    Dir::Read => &mut w.read,
                    Dir::Write => &mut w.write,
                };
                *slot = Some(cx.waker().clone());
                let interest = w.interest();
                self.reactor.subscribe(id, interest);
            }
            let want = match dir {
                Dir::Read => SRT_EPOLL_IN | SRT_EPOLL_ERR,
                Dir::Write => SRT_EPOLL_OUT | SRT_EPOLL_ERR,
            };
            if self.sock.events() & want == 0 {
                return Poll::Pending;
            }
        }
        Poll::Pending
    }

    /// Receives one message.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_io(cx, Dir::Read, |s| s.recv(buf))).await
    }

    /// Accepts one connection (on a listener).
    pub async fn accept(&self) -> io::Result<(Socket, Option<SocketAddr>)> {
        poll_fn(|cx| self.poll_io(cx, Dir::Read, |s| s.accept())).await
    }

    /// One message, now or WouldBlock.
    pub fn try_send(&self, msg: &[u8]) -> io::Result<usize> {
        self.sock.send(msg)
    }

    /// Waits until a send may take a message (or the socket failed).
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| {
            self.poll_io(cx, Dir::Write, |s| {
                let ev = s.events();
                if ev & SRT_EPOLL_ERR != 0 {
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "srt: connection broken",
                    ))
                } else if ev & SRT_EPOLL_OUT != 0 {
                    Ok(())
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            })
        })
        .await
    }

    /// Waits until the socket is readable or failed (without reading).
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| {
            self.poll_io(cx, Dir::Read, |s| {
                if s.events() & (SRT_EPOLL_IN | SRT_EPOLL_ERR) != 0 {
                    Ok(())
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            })
        })
        .await
    }
}

impl Drop for AsyncSocket {
    fn drop(&mut self) {
        let id = self.sock.id();
        // Subscribed exactly while it has waiters (the thread unsubscribes what it wakes).
        let w = self.reactor.lock().remove(&id);
        if w.is_some() {
            self.reactor.subscribe(id, 0);
        }
        drop(w);
        // `sock` closes itself.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback through libsrt: a listener, a caller with a stream id and a passphrase on
    /// both sides, messages both ways through the reactor.
    #[tokio::test]
    async fn messages_go_both_ways_through_the_reactor() {
        let listener = Socket::new().unwrap();
        listener
            .set_str(ffi::opt::PASSPHRASE, "0123456789abc")
            .unwrap();
        listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        listener.listen(8).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = AsyncSocket::new(listener).unwrap();
        let caller = std::thread::spawn(move || {
            let s = Socket::new().unwrap();
            s.set_str(ffi::opt::STREAMID, "#!::r=live/x,m=publish")
                .unwrap();
            s.set_str(ffi::opt::PASSPHRASE, "0123456789abc").unwrap();
            s.connect(addr).unwrap();
            s.send(&[7u8; 1316]).unwrap();
            let mut buf = [0u8; 1500];
            let n = s.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"back");
        });
        let (conn, peer) = listener.accept().await.unwrap();
        assert!(peer.is_some());
        assert_eq!(conn.stream_id().unwrap(), "#!::r=live/x,m=publish");
        let conn = AsyncSocket::new(conn).unwrap();
        let mut buf = [0u8; 1500];
        let n = conn.recv(&mut buf).await.unwrap();
        assert_eq!(n, 1316);
        conn.writable().await.unwrap();
        conn.try_send(b"back").unwrap();
        tokio::task::spawn_blocking(move || caller.join().unwrap())
            .await
            .unwrap();
    }
}
