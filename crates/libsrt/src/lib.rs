//! A small, safe binding to the system's libsrt, the reference SRT implementation every
//! encoder (ffmpeg, OBS, vMix, hardware boxes) links, and a bridge from its epoll to tokio.
//!
//! Why our own: the crates that bind libsrt (libsrt-sys, srt-sys, srt-rs) build a vendored
//! libsrt 1.4 with cmake and bindgen and are not maintained; srt-tokio is a separate Rust
//! implementation, not the one the clients run. sluice needs a dozen functions on integer
//! handles, declared in [`ffi`] and linked from Debian's libsrt (pkg-config `srt`).
//!
//! - [`Socket`] owns one SRT socket (closed on drop); options, send and receive of one
//!   message, accept.
//! - [`reactor`] runs one thread on `srt_epoll_uwait` and wakes the tokio tasks waiting on
//!   sockets: [`reactor::AsyncSocket`].

pub mod ffi;
pub mod reactor;

use std::ffi::{CStr, CString};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Once;

use libc::{c_char, c_int, c_void};

pub use ffi::SRTSOCKET;

/// Longest stream id libsrt carries (SRT spec: 512 bytes).
pub const MAX_STREAM_ID: usize = 512;
/// The live-mode payload: 7 TS packets (`SRT_LIVE_DEF_PLSIZE`).
pub const LIVE_PAYLOAD: usize = 1316;

static STARTUP: Once = Once::new();

/// Starts libsrt once per process and sends its warnings and errors to `tracing`
/// (target `srt`). Called by every constructor here.
pub fn startup() {
    STARTUP.call_once(|| {
        // SAFETY: srt_startup takes no arguments and may be called from any thread; Once
        // makes it the first call into libsrt. The log handler is a plain function with no
        // state (opaque is null) that libsrt may call from any of its threads: it only reads
        // the C strings libsrt passes for the duration of the call.
        unsafe {
            ffi::srt_startup();
            ffi::srt_setloglevel(ffi::LOG_WARNING);
            ffi::srt_setloghandler(std::ptr::null_mut(), Some(log_handler));
        }
    });
}

/// libsrt's log lines, as `tracing` events. Never unwinds into C: nothing here panics
/// (null pointers are checked, strings converted lossily).
unsafe extern "C" fn log_handler(
    _opaque: *mut c_void,
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    area: *const c_char,
    message: *const c_char,
) {
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: libsrt passes NUL-terminated strings valid for this call.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let message = text(message);
    let message = message.trim_end();
    let area = text(area);
    // libsrt says "error" for what a non-blocking socket expects (nothing to accept or
    // read yet): its lines are debug output, except the one saying why a caller's
    // handshake was refused (wrong or missing passphrase, ...), which an operator needs.
    if let Some((_, why)) = message.split_once("rsp(REJECT): ") {
        if log_line_allowed() {
            tracing::warn!(target: "srt", "srt: caller's handshake refused: {why}");
        }
    } else if level <= 2 {
        tracing::error!(target: "srt", "libsrt {area}: {message}");
    } else {
        tracing::debug!(target: "srt", "libsrt {area}: {message}");
    }
}

/// At most [`LOG_LINES_PER_SECOND`] refusal lines a second: a flood of bad handshakes
/// must not become a flood of log.
const LOG_LINES_PER_SECOND: u64 = 5;

fn log_line_allowed() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    static LINES: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if WINDOW.swap(now, Ordering::Relaxed) != now {
        LINES.store(0, Ordering::Relaxed);
    }
    LINES.fetch_add(1, Ordering::Relaxed) < LOG_LINES_PER_SECOND
}

/// The calling thread's last libsrt error as an `io::Error`; WouldBlock for the "try again"
/// codes of non-blocking sockets, TimedOut for time-outs.
pub fn last_error() -> io::Error {
    let mut sys = 0;
    // SAFETY: both read libsrt's thread-local error state; the string is copied before any
    // other libsrt call on this thread could change it.
    let (code, text) = unsafe {
        let code = ffi::srt_getlasterror(&mut sys);
        let p = ffi::srt_getlasterror_str();
        let text = if p.is_null() {
            String::from("unknown libsrt error")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        };
        ffi::srt_clearlasterror();
        (code, text)
    };
    let kind = match code {
        ffi::SRT_EASYNCSND | ffi::SRT_EASYNCRCV => io::ErrorKind::WouldBlock,
        ffi::SRT_ETIMEOUT => io::ErrorKind::TimedOut,
        2000..=2002 => io::ErrorKind::ConnectionAborted,
        5004 => io::ErrorKind::NotConnected,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("srt: {text} ({code})"))
}

/// Why libsrt says a connection was rejected (`srt_rejectreason_str`).
pub fn reject_reason_text(code: i32) -> String {
    // SAFETY: returns a pointer to a static string (or null), any code is accepted.
    let p = unsafe { ffi::srt_rejectreason_str(code) };
    if p.is_null() {
        return format!("reason {code}");
    }
    // SAFETY: a static NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn check(rc: c_int) -> io::Result<c_int> {
    if rc == ffi::SRT_ERROR {
        Err(last_error())
    } else {
        Ok(rc)
    }
}

/// A `sockaddr_storage` holding `addr`, and its length.
fn to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, c_int) {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as c_int)
}

/// The address in a `sockaddr` libsrt filled in, if it is IPv4 or IPv6.
///
/// # Safety
/// `sa` must point to a valid sockaddr of at least the size its family implies.
unsafe fn from_sockaddr(sa: *const libc::sockaddr) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a valid sockaddr; the family says which struct it is.
    unsafe {
        match c_int::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Decides, during the handshake and before a connection is accepted, whether a caller
/// may go on; `Err(reason)` rejects it with that SRT reject code (1000 + an HTTP status
/// for "user" reasons). Runs on libsrt's receiving thread: it must be quick.
pub type AcceptFilter = fn(stream_id: Option<&str>, peer: Option<SocketAddr>) -> Result<(), i32>;

/// The listen callback: turns C arguments into Rust ones and asks the filter passed as
/// `opaque`. Never unwinds into C (the filter is plain Rust code; a panic in it would abort
/// through `extern "C"`, which is the documented behaviour for a foreign boundary).
unsafe extern "C" fn listen_callback(
    opaque: *mut c_void,
    ns: SRTSOCKET,
    _hsversion: c_int,
    peeraddr: *const libc::sockaddr,
    streamid: *const c_char,
) -> c_int {
    if opaque.is_null() {
        return 0;
    }
    // SAFETY: `opaque` was made from an `AcceptFilter` (a `fn` pointer, 'static) by
    // `Socket::set_accept_filter`, and fn pointers round-trip through data pointers on
    // every platform Rust and libsrt support.
    let filter: AcceptFilter = unsafe { std::mem::transmute::<*mut c_void, AcceptFilter>(opaque) };
    let sid = if streamid.is_null() {
        None
    } else {
        // SAFETY: libsrt passes a NUL-terminated string valid for this call.
        let s = unsafe { CStr::from_ptr(streamid) };
        Some(s.to_string_lossy().into_owned())
    };
    // SAFETY: libsrt passes the caller's address (a valid sockaddr) or null.
    let peer = unsafe { from_sockaddr(peeraddr) };
    match filter(sid.as_deref().filter(|s| !s.is_empty()), peer) {
        Ok(()) => 0,
        Err(code) => {
            // SAFETY: `ns` is the socket libsrt is handshaking; setting its reject
            // reason is what the callback is for.
            unsafe { ffi::srt_setrejectreason(ns, code) };
            -1
        }
    }
}

/// One SRT socket, closed when dropped. libsrt's API is thread-safe on socket handles, so a
/// `Socket` may be used from several threads through `&self`.
#[derive(Debug)]
pub struct Socket {
    id: SRTSOCKET,
    /// Closed already (by [`Socket::close`]): drop does nothing more.
    closed: std::sync::atomic::AtomicBool,
}

impl Socket {
    /// A new live-mode socket (TS over SRT: 1316-byte messages, TSBPD).
    pub fn new() -> io::Result<Socket> {
        startup();
        // SAFETY: no arguments; returns a handle or SRT_INVALID_SOCK.
        let id = unsafe { ffi::srt_create_socket() };
        if id == ffi::SRT_INVALID_SOCK {
            return Err(last_error());
        }
        Ok(Socket {
            id,
            closed: Default::default(),
        })
    }

    pub fn id(&self) -> SRTSOCKET {
        self.id
    }

    /// Sets an integer option (every SRT option but the strings and MAXBW).
    pub fn set_int(&self, opt: c_int, value: i32) -> io::Result<()> {
        let v: c_int = value;
        // SAFETY: points to a live c_int of the length given, which libsrt copies.
        check(unsafe {
            ffi::srt_setsockflag(
                self.id,
                opt,
                &v as *const c_int as *const c_void,
                std::mem::size_of::<c_int>() as c_int,
            )
        })
        .map(drop)
    }

    /// SRTO_LINGER: how long a closed connection keeps sending what it still holds.
    pub fn set_linger(&self, secs: Option<i32>) -> io::Result<()> {
        let l = libc::linger {
            l_onoff: i32::from(secs.is_some()),
            l_linger: secs.unwrap_or(0),
        };
        // SAFETY: points to a live `struct linger` of the length given, which libsrt copies.
        check(unsafe {
            ffi::srt_setsockflag(
                self.id,
                ffi::opt::LINGER,
                &l as *const libc::linger as *const c_void,
                std::mem::size_of::<libc::linger>() as c_int,
            )
        })
        .map(drop)
    }

    /// Sets a 64-bit option (MAXBW).
    pub fn set_i64(&self, opt: c_int, value: i64) -> io::Result<()> {
        // SAFETY: points to a live i64 of the length given, which libsrt copies.
        check(unsafe {
            ffi::srt_setsockflag(
                self.id,
                opt,
                &value as *const i64 as *const c_void,
                std::mem::size_of::<i64>() as c_int,
            )
        })
        .map(drop)
    }

    /// Sets a string option (PASSPHRASE, STREAMID).
    pub fn set_str(&self, opt: c_int, value: &str) -> io::Result<()> {
        // SAFETY: points to `value.len()` live bytes, which libsrt copies.
        check(unsafe {
            ffi::srt_setsockflag(
                self.id,
                opt,
                value.as_ptr() as *const c_void,
                value.len() as c_int,
            )
        })
        .map(drop)
    }

    pub fn get_int(&self, opt: c_int) -> io::Result<i32> {
        let mut v: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as c_int;
        // SAFETY: libsrt writes at most `len` bytes into `v` and updates `len`.
        check(unsafe {
            ffi::srt_getsockflag(self.id, opt, &mut v as *mut c_int as *mut c_void, &mut len)
        })?;
        Ok(v)
    }

    /// The stream id the caller sent (`SRTO_STREAMID`), empty when none.
    pub fn stream_id(&self) -> io::Result<String> {
        let mut buf = [0u8; MAX_STREAM_ID + 1];
        let mut len = buf.len() as c_int;
        // SAFETY: libsrt writes at most `len` bytes into `buf` and sets `len` to what it wrote.
        check(unsafe {
            ffi::srt_getsockflag(
                self.id,
                ffi::opt::STREAMID,
                buf.as_mut_ptr() as *mut c_void,
                &mut len,
            )
        })?;
        let n = usize::try_from(len).unwrap_or(0).min(MAX_STREAM_ID);
        let s = &buf[..n];
        let s = s.split(|b| *b == 0).next().unwrap_or_default();
        Ok(String::from_utf8_lossy(s).into_owned())
    }

    /// Non-blocking sends and receives: calls fail with WouldBlock instead of waiting.
    pub fn set_nonblocking(&self) -> io::Result<()> {
        self.set_int(ffi::opt::RCVSYN, 0)?;
        self.set_int(ffi::opt::SNDSYN, 0)
    }

    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        let (sa, len) = to_sockaddr(addr);
        // SAFETY: `sa` is a valid sockaddr of `len` bytes, read during the call.
        check(unsafe { ffi::srt_bind(self.id, &sa as *const _ as *const libc::sockaddr, len) })
            .map(drop)
    }

    pub fn listen(&self, backlog: i32) -> io::Result<()> {
        // SAFETY: plain call on our handle.
        check(unsafe { ffi::srt_listen(self.id, backlog) }).map(drop)
    }

    /// Checks callers during their handshake (see [`AcceptFilter`]).
    pub fn set_accept_filter(&self, filter: AcceptFilter) -> io::Result<()> {
        // SAFETY: the opaque pointer is a 'static fn pointer (valid for ever, whatever
        // happens to this socket), read back only by `listen_callback`.
        check(unsafe {
            ffi::srt_listen_callback(self.id, Some(listen_callback), filter as *mut c_void)
        })
        .map(drop)
    }

    /// Blocking connect (callers and tests; the server only listens).
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        let (sa, len) = to_sockaddr(addr);
        // SAFETY: `sa` is a valid sockaddr of `len` bytes, read during the call.
        check(unsafe { ffi::srt_connect(self.id, &sa as *const _ as *const libc::sockaddr, len) })
            .map(drop)
    }

    /// The bound address (to learn an ephemeral port).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        // SAFETY: sockaddr_storage is plain old data.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as c_int;
        // SAFETY: libsrt writes at most `len` bytes of address into `storage`.
        check(unsafe {
            ffi::srt_getsockname(
                self.id,
                &mut storage as *mut _ as *mut libc::sockaddr,
                &mut len,
            )
        })?;
        // SAFETY: libsrt filled in a sockaddr of the family it names.
        unsafe { from_sockaddr(&storage as *const _ as *const libc::sockaddr) }
            .ok_or_else(|| io::Error::other("srt: unknown address family"))
    }

    /// One accepted connection and its peer's address; WouldBlock when none is waiting
    /// (on a non-blocking listener).
    pub fn accept(&self) -> io::Result<(Socket, Option<SocketAddr>)> {
        // SAFETY: sockaddr_storage is plain old data.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as c_int;
        // SAFETY: libsrt writes at most `len` bytes of address into `storage`.
        let id = unsafe {
            ffi::srt_accept(
                self.id,
                &mut storage as *mut _ as *mut libc::sockaddr,
                &mut len,
            )
        };
        if id == ffi::SRT_INVALID_SOCK {
            return Err(last_error());
        }
        // SAFETY: libsrt filled in the peer's sockaddr.
        let peer = unsafe { from_sockaddr(&storage as *const _ as *const libc::sockaddr) };
        Ok((
            Socket {
                id,
                closed: Default::default(),
            },
            peer,
        ))
    }

    /// Receives one message into `buf` (at least [`LIVE_PAYLOAD`] bytes in live mode).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: libsrt writes at most `len` bytes into `buf`.
        let n = check(unsafe { ffi::srt_recvmsg(self.id, buf.as_mut_ptr() as *mut c_char, len) })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Sends one message (at most [`LIVE_PAYLOAD`] bytes in live mode).
    pub fn send(&self, msg: &[u8]) -> io::Result<usize> {
        let len = c_int::try_from(msg.len()).unwrap_or(c_int::MAX);
        // SAFETY: libsrt reads `len` bytes of `msg` (copying them into its send buffer).
        let n =
            check(unsafe { ffi::srt_sendmsg(self.id, msg.as_ptr() as *const c_char, len, -1, 1) })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The socket's state (`SRTS_*`).
    pub fn state(&self) -> i32 {
        // SAFETY: plain call on our handle.
        unsafe { ffi::srt_getsockstate(self.id) }
    }

    /// Why the handshake of this socket was rejected (after a failed connect).
    pub fn reject_reason(&self) -> i32 {
        // SAFETY: plain call on our handle.
        unsafe { ffi::srt_getrejectreason(self.id) }
    }

    /// Pending readiness (`SRTO_EVENT`: SRT_EPOLL_IN/OUT/ERR bits).
    pub fn events(&self) -> i32 {
        self.get_int(ffi::opt::EVENT).unwrap_or(ffi::SRT_EPOLL_ERR)
    }
}

impl Socket {
    /// Closes the connection now (the peer is told), whoever still holds the socket:
    /// their calls then fail. Once; dropping closes too.
    pub fn close(&self) {
        if !self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            // SAFETY: we own the handle and close it once; later calls on the number
            // fail inside libsrt (handles are integers looked up in its table).
            unsafe { ffi::srt_close(self.id) };
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.close();
    }
}

/// A passphrase as libsrt wants it: 10 to 79 bytes, no NUL.
pub fn valid_passphrase(p: &str) -> bool {
    (10..=79).contains(&p.len()) && CString::new(p).is_ok()
}
