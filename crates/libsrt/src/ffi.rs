//! The part of libsrt's C API (`srt/srt.h`, libsrt 1.4.2+) that sluice uses, declared by hand:
//! a few functions on integer socket handles, no structs but `SRT_EPOLL_EVENT`. Everything
//! here is `unsafe` to call; the safe wrappers in the crate's root say why each use is sound.

#![allow(non_camel_case_types)]

use libc::{c_char, c_int, c_void, sockaddr};

pub type SRTSOCKET = c_int;
pub const SRT_INVALID_SOCK: SRTSOCKET = -1;
pub const SRT_ERROR: c_int = -1;

/// `SRT_SOCKOPT` values (srt.h).
pub mod opt {
    use libc::c_int;
    pub const SNDSYN: c_int = 1;
    pub const RCVSYN: c_int = 2;
    pub const SNDBUF: c_int = 5;
    pub const RCVBUF: c_int = 6;
    pub const MSS: c_int = 0;
    pub const LINGER: c_int = 7;
    pub const REUSEADDR: c_int = 15;
    pub const MAXBW: c_int = 16;
    pub const EVENT: c_int = 18;
    pub const TSBPDMODE: c_int = 22;
    pub const LATENCY: c_int = 23;
    pub const PASSPHRASE: c_int = 26;
    pub const PBKEYLEN: c_int = 27;
    pub const KMSTATE: c_int = 28;
    pub const TLPKTDROP: c_int = 31;
    pub const CONNTIMEO: c_int = 36;
    pub const RCVLATENCY: c_int = 43;
    pub const PEERLATENCY: c_int = 44;
    pub const STREAMID: c_int = 46;
    pub const PAYLOADSIZE: c_int = 49;
    pub const TRANSTYPE: c_int = 50;
    pub const ENFORCEDENCRYPTION: c_int = 53;
    pub const PEERIDLETIMEO: c_int = 55;
}

/// `SRT_EPOLL_OPT` bits.
pub const SRT_EPOLL_IN: c_int = 0x1;
pub const SRT_EPOLL_OUT: c_int = 0x4;
pub const SRT_EPOLL_ERR: c_int = 0x8;
/// `SRT_EPOLL_ENABLE_EMPTY`: waiting on an empty set is not an error.
pub const SRT_EPOLL_ENABLE_EMPTY: i32 = 1;

/// `SRT_ERRNO` values that are not failures of the connection.
pub const SRT_EASYNCSND: c_int = 6001;
pub const SRT_EASYNCRCV: c_int = 6002;
pub const SRT_ETIMEOUT: c_int = 6003;

/// `SRT_SOCKSTATUS`.
pub const SRTS_CONNECTED: c_int = 5;

/// `SRT_REJX_BAD_REQUEST` (access_control.h: 1000 + HTTP 400).
pub const SRT_REJX_BAD_REQUEST: c_int = 1400;

/// `SRT_LOG_HANDLER_FN` levels are syslog's.
pub const LOG_ERR: c_int = 3;
pub const LOG_WARNING: c_int = 4;
pub const LOG_NOTICE: c_int = 5;

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SRT_EPOLL_EVENT {
    pub fd: SRTSOCKET,
    pub events: c_int,
}

pub type srt_listen_callback_fn = unsafe extern "C" fn(
    opaq: *mut c_void,
    ns: SRTSOCKET,
    hsversion: c_int,
    peeraddr: *const sockaddr,
    streamid: *const c_char,
) -> c_int;

pub type SRT_LOG_HANDLER_FN = unsafe extern "C" fn(
    opaque: *mut c_void,
    level: c_int,
    file: *const c_char,
    line: c_int,
    area: *const c_char,
    message: *const c_char,
);

#[link(name = "srt")]
extern "C" {
    pub fn srt_startup() -> c_int;
    pub fn srt_create_socket() -> SRTSOCKET;
    pub fn srt_bind(u: SRTSOCKET, name: *const sockaddr, namelen: c_int) -> c_int;
    pub fn srt_listen(u: SRTSOCKET, backlog: c_int) -> c_int;
    pub fn srt_accept(u: SRTSOCKET, addr: *mut sockaddr, addrlen: *mut c_int) -> SRTSOCKET;
    pub fn srt_listen_callback(
        lsn: SRTSOCKET,
        hook_fn: Option<srt_listen_callback_fn>,
        hook_opaque: *mut c_void,
    ) -> c_int;
    pub fn srt_connect(u: SRTSOCKET, name: *const sockaddr, namelen: c_int) -> c_int;
    pub fn srt_close(u: SRTSOCKET) -> c_int;
    pub fn srt_getsockname(u: SRTSOCKET, name: *mut sockaddr, namelen: *mut c_int) -> c_int;
    pub fn srt_setsockflag(u: SRTSOCKET, opt: c_int, optval: *const c_void, optlen: c_int)
        -> c_int;
    pub fn srt_getsockflag(
        u: SRTSOCKET,
        opt: c_int,
        optval: *mut c_void,
        optlen: *mut c_int,
    ) -> c_int;
    pub fn srt_getsockstate(u: SRTSOCKET) -> c_int;
    pub fn srt_recvmsg(u: SRTSOCKET, buf: *mut c_char, len: c_int) -> c_int;
    pub fn srt_sendmsg(
        u: SRTSOCKET,
        buf: *const c_char,
        len: c_int,
        ttl: c_int,
        inorder: c_int,
    ) -> c_int;
    pub fn srt_getlasterror(errno_loc: *mut c_int) -> c_int;
    pub fn srt_getlasterror_str() -> *const c_char;
    pub fn srt_clearlasterror();
    pub fn srt_getrejectreason(u: SRTSOCKET) -> c_int;
    pub fn srt_rejectreason_str(id: c_int) -> *const c_char;
    pub fn srt_setrejectreason(u: SRTSOCKET, value: c_int) -> c_int;

    pub fn srt_epoll_create() -> c_int;
    pub fn srt_epoll_update_usock(eid: c_int, u: SRTSOCKET, events: *const c_int) -> c_int;
    pub fn srt_epoll_remove_usock(eid: c_int, u: SRTSOCKET) -> c_int;
    pub fn srt_epoll_uwait(
        eid: c_int,
        fds_set: *mut SRT_EPOLL_EVENT,
        fds_size: c_int,
        ms_timeout: i64,
    ) -> c_int;
    pub fn srt_epoll_set(eid: c_int, flags: i32) -> i32;

    pub fn srt_setloglevel(ll: c_int);
    pub fn srt_setloghandler(opaque: *mut c_void, handler: Option<SRT_LOG_HANDLER_FN>);
}
