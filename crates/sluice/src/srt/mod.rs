//! SRT: MPEG-TS over SRT in (publish) and out (play), in SRS's form (`srt_server { }`,
//! `vhost { srt { } }`, stream ids `#!::r=APP/STREAM,m=publish|request`).
//!
//! - The transport is libsrt (the `libsrt` crate: our small binding and the reactor
//!   thread that wakes tokio tasks); see docs/srt.md for why.
//! - [`stream_id`] parses stream ids (sans-IO). Callers with an unparsable one are
//!   rejected during their handshake ([`accept_filter`]), before any state is kept.
//! - [`conn`] is one connection: admission (security rules, hooks) as RTMP's, then a
//!   publisher feeding a normal Source through media's `TsIngest`, or a player.
//! - [`feed`] muxes a stream into TS once for all its SRT players, which the delivery
//!   path feeds (`Framing::Ts` over `Transport::Srt`).

mod conn;
pub mod feed;
pub mod stream_id;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libsrt::reactor::AsyncSocket;
use libsrt::{ffi, Socket};
use tracing::{info, warn, Instrument};

use crate::config::SrtServerConfig;
use crate::context::Context;
use crate::service::{Service, ServiceFuture, Shutdown, Tasks};

/// Connections libsrt may hold handshaken but not yet accepted by us.
const LISTEN_BACKLOG: i32 = 128;
/// How long connections get to close when the service stops.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the SRT service shares with the rest of the server (in the [`Context`]).
#[derive(Debug, Default)]
pub struct SrtState {
    /// The bound listener, from start-up until the service takes it.
    listener: Mutex<Option<Socket>>,
    pub feeds: feed::Feeds,
    /// SRT connections open now.
    pub connections: AtomicU64,
}

impl SrtState {
    pub fn set_listener(&self, s: Socket) {
        *crate::util::lock(&self.listener) = Some(s);
    }
}

/// Applies `srt_server`'s options to a socket (the listener: accepted sockets inherit them).
pub fn apply_options(s: &Socket, c: &SrtServerConfig) -> std::io::Result<()> {
    use ffi::opt;
    s.set_int(opt::TRANSTYPE, 0)?; // SRTT_LIVE
    s.set_int(opt::PAYLOADSIZE, libsrt::LIVE_PAYLOAD as i32)?;
    s.set_int(opt::MSS, c.mss as i32)?;
    s.set_i64(opt::MAXBW, c.maxbw)?;
    s.set_int(
        opt::CONNTIMEO,
        c.connect_timeout.as_millis().min(i32::MAX as u128) as i32,
    )?;
    s.set_int(
        opt::PEERIDLETIMEO,
        c.peer_idle_timeout.as_millis().min(i32::MAX as u128) as i32,
    )?;
    s.set_int(opt::TSBPDMODE, i32::from(c.tsbpdmode))?;
    s.set_int(opt::TLPKTDROP, i32::from(c.tlpktdrop))?;
    s.set_int(opt::SNDBUF, c.sendbuf as i32)?;
    s.set_int(opt::RCVBUF, c.recvbuf as i32)?;
    match c.latency {
        // `latency` sets both directions unless one is given on its own (SRS's order).
        Some(l) => {
            s.set_int(opt::LATENCY, l as i32)?;
        }
        None => {
            s.set_int(opt::RCVLATENCY, c.recvlatency as i32)?;
            s.set_int(opt::PEERLATENCY, c.peerlatency as i32)?;
        }
    }
    if !c.passphrase.is_empty() {
        s.set_str(opt::PASSPHRASE, &c.passphrase)?;
        if c.pbkeylen != 0 {
            s.set_int(opt::PBKEYLEN, c.pbkeylen as i32)?;
        }
    }
    // A caller with no passphrase, or a wrong one, is refused at the handshake.
    s.set_int(opt::ENFORCEDENCRYPTION, 1)?;
    Ok(())
}

/// Binds the SRT listener when `srt_server` is enabled (at start-up, so that a port in
/// use fails the start as RTMP's does).
pub fn bind(c: &SrtServerConfig) -> anyhow::Result<Option<Socket>> {
    if !c.enabled {
        return Ok(None);
    }
    let err = |e: std::io::Error| anyhow::anyhow!("cannot listen for SRT on {}: {e}", c.listen);
    let s = Socket::new().map_err(err)?;
    apply_options(&s, c).map_err(err)?;
    s.bind(c.listen).map_err(err)?;
    s.listen(LISTEN_BACKLOG).map_err(err)?;
    s.set_accept_filter(accept_filter).map_err(err)?;
    info!("SRT listening on udp {}", c.listen);
    Ok(Some(s))
}

/// Refusal lines of the handshake filter in the current second, and that second: a flood
/// of bad callers gets a few lines a second, not one each.
static REJECT_WINDOW: AtomicU64 = AtomicU64::new(0);
static REJECT_LINES: AtomicU64 = AtomicU64::new(0);
static REJECTED: AtomicU64 = AtomicU64::new(0);
const REJECT_LINES_PER_SECOND: u64 = 5;

/// Runs in libsrt's thread during each caller's handshake: a caller without a usable
/// stream id is rejected there (SRT reject code 1400, "bad request"), before libsrt
/// makes a connection of it.
fn accept_filter(sid: Option<&str>, peer: Option<SocketAddr>) -> Result<(), i32> {
    match stream_id::parse(sid.unwrap_or_default()) {
        Ok(_) => Ok(()),
        Err(e) => {
            REJECTED.fetch_add(1, Ordering::Relaxed);
            let now = crate::util::time::unix_ms() / 1000;
            if REJECT_WINDOW.swap(now, Ordering::Relaxed) != now {
                REJECT_LINES.store(0, Ordering::Relaxed);
            }
            if REJECT_LINES.fetch_add(1, Ordering::Relaxed) < REJECT_LINES_PER_SECOND {
                let peer = peer.map(|p| p.to_string()).unwrap_or_default();
                warn!("srt: refused caller {peer}: {e}");
            }
            Err(ffi::SRT_REJX_BAD_REQUEST)
        }
    }
}

/// Callers rejected during their handshake since the process started.
pub fn rejected_handshakes() -> u64 {
    REJECTED.load(Ordering::Relaxed)
}

/// The SRT service: accepts connections on the listener bound at start-up and runs
/// one task per connection until the server stops.
pub struct SrtService;

impl Service for SrtService {
    fn name(&self) -> &'static str {
        "srt"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, shutdown: Shutdown) -> ServiceFuture {
        Box::pin(async move {
            let mut stop = shutdown.clone();
            let listener = crate::util::lock(&ctx.srt.listener).take();
            let Some(listener) = listener else {
                stop.requested().await;
                return;
            };
            let listener = match AsyncSocket::new(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("srt: cannot serve the listener: {e}");
                    stop.requested().await;
                    return;
                }
            };
            let tasks = Tasks::default();
            loop {
                tokio::select! {
                    _ = stop.requested() => break,
                    r = listener.accept() => match r {
                        Ok((sock, peer)) => admit(&ctx, &tasks, sock, peer),
                        Err(e) => {
                            warn!("srt: accept failed: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    },
                }
            }
            drop(listener);
            // Each connection watches the tasks' shutdown and closes (unpublishing,
            // its hooks answered).
            let _ = tokio::time::timeout(STOP_TIMEOUT, tasks.finish()).await;
        })
    }
}

/// Takes a slot for the connection (`max_connections`, `max_connections_per_ip`) and
/// starts its task; refused, the socket is closed at once.
fn admit(ctx: &Arc<Context>, tasks: &Tasks, sock: Socket, peer: Option<SocketAddr>) {
    use crate::admission::Cap;
    let peer = peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let config = ctx.config();
    if ctx.admission.open(Cap::Shared) >= config.max_connections as u64 {
        ctx.counters.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = ctx.admission.log_global() {
            warn!(
                "srt: refused {peer}: max_connections {} reached{}",
                config.max_connections,
                crate::admission::suppressed_note(n)
            );
        }
        return;
    }
    let ip_guard = match ctx
        .admission
        .admit_ip(peer.ip(), config.max_connections_per_ip)
    {
        Ok(g) => g,
        Err(refused) => {
            ctx.counters.refused_per_ip.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = refused.log {
                warn!(
                    "srt: refused {peer}: max_connections_per_ip {} reached{}",
                    config.max_connections_per_ip,
                    crate::admission::suppressed_note(n)
                );
            }
            return;
        }
    };
    let slot = ctx.admission.opened(Cap::Shared);
    ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let cid = ctx.new_client_id();
    let span = tracing::info_span!("srt", cid = %cid);
    let ctx = ctx.clone();
    let shutdown = tasks.shutdown();
    tasks.spawn(
        async move {
            conn::handle(ctx, sock, peer, cid, shutdown).await;
            drop(slot);
            drop(ip_guard);
        }
        .instrument(span),
    );
}
