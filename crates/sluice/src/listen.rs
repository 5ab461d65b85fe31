//! Listening sockets with a backlog sized for bursts: tokio's `bind` uses 128,
//! which drops connections (they retry a second later) when a few hundred
//! players arrive at once, as they do after an encoder restarts.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use crate::admission::{show_key, suppressed_note, Cap, IpGuard, OpenGuard, API_MAX_CONNECTIONS};
use crate::context::Context;

/// Pending connections the kernel queues for us (capped by net.core.somaxconn).
pub const LISTEN_BACKLOG: u32 = 4096;

pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Which caps a listener's connections take (see [`crate::admission`]).
#[derive(Debug, Clone)]
pub enum Gate {
    /// RTMP and the HTTP server: `max_connections_per_ip`, then `max_connections`.
    Shared(Arc<Semaphore>),
    /// The HTTP API alone: its own [`API_MAX_CONNECTIONS`] cap, nothing else, so that
    /// players can never lock the operator out.
    Api(Arc<Semaphore>),
    /// The API and the HTTP server on one port: as `Shared`; once `max_connections`
    /// is full (not when the address is over its own limit), a permit of the API's
    /// cap, and the connection is served the API only ([`Admitted::api_only`]).
    Both {
        shared: Arc<Semaphore>,
        api: Arc<Semaphore>,
    },
}

/// An admitted connection's hold on the caps, released when it is dropped (the
/// connection's task holds it for the connection's life).
#[derive(Debug)]
pub struct Admitted {
    /// Admitted on the API's reserve of a shared port: to be served the API only.
    pub api_only: bool,
    _permit: OwnedSemaphorePermit,
    _ip: Option<IpGuard>,
    _open: OpenGuard,
}

/// Accepts on `listener` until the task is dropped: counts, applies the caps of
/// `gate` (a connection beyond them is closed at once, with a rate-limited log
/// line and a counter), and hands each admitted socket with its [`Admitted`] to
/// `on_conn`, which spawns the connection's task. One loop for RTMP and HTTP.
pub async fn accept_loop(
    ctx: Arc<Context>,
    listener: TcpListener,
    gate: Gate,
    name: &'static str,
    mut on_conn: impl FnMut(TcpStream, SocketAddr, Admitted),
) {
    let local = listener.local_addr().ok();
    info!(
        "{name} listening on {}",
        local.map(|a| a.to_string()).unwrap_or_default()
    );
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("{name}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let Some(admitted) = admit(&ctx, &gate, name, peer) else {
            continue;
        };
        set_nodelay(&socket, true);
        on_conn(socket, peer, admitted);
    }
}

/// The caps of `gate` for a connection from `peer`; `None` (counted and maybe
/// logged) when it is refused.
fn admit(ctx: &Context, gate: &Gate, name: &str, peer: SocketAddr) -> Option<Admitted> {
    let (shared, api) = match gate {
        Gate::Api(api) => {
            let Ok(permit) = api.clone().try_acquire_owned() else {
                ctx.counters.refused_api.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = ctx.admission.log_api() {
                    warn!(
                        "refuse {name} client {peer}: the API's {API_MAX_CONNECTIONS} connections \
                         are in use{}",
                        suppressed_note(n)
                    );
                }
                return None;
            };
            return Some(Admitted {
                api_only: false,
                _permit: permit,
                _ip: None,
                _open: ctx.admission.opened(Cap::Api),
            });
        }
        Gate::Shared(shared) => (shared, None),
        Gate::Both { shared, api } => (shared, Some(api)),
    };
    let per_ip = ctx.config().max_connections_per_ip;
    let ip = match ctx.admission.admit_ip(peer.ip(), per_ip) {
        Ok(g) => g,
        Err(refused) => {
            ctx.counters.refused_per_ip.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = refused.log {
                warn!(
                    "refuse {name} client {peer}: {} holds max_connections_per_ip {per_ip}{}",
                    show_key(refused.key),
                    suppressed_note(n)
                );
            }
            return None;
        }
    };
    if let Ok(permit) = shared.clone().try_acquire_owned() {
        return Some(Admitted {
            api_only: false,
            _permit: permit,
            _ip: Some(ip),
            _open: ctx.admission.opened(Cap::Shared),
        });
    }
    // The API's reserve on a shared port; not counted per IP, as the API is not.
    if let Some(Ok(permit)) = api.map(|a| a.clone().try_acquire_owned()) {
        return Some(Admitted {
            api_only: true,
            _permit: permit,
            _ip: None,
            _open: ctx.admission.opened(Cap::Api),
        });
    }
    ctx.counters.refused.fetch_add(1, Ordering::Relaxed);
    if let Some(n) = ctx.admission.log_global() {
        warn!(
            "refuse {name} client {peer}: max_connections {} reached{}",
            ctx.config().max_connections,
            suppressed_note(n)
        );
    }
    None
}

/// Sets TCP_NODELAY: on for every accepted connection, then a player's vhost's
/// `tcp_nodelay` once it plays. A failure only costs latency: logged, not fatal.
pub fn set_nodelay(socket: &tokio::net::TcpStream, on: bool) {
    if let Err(e) = socket.set_nodelay(on) {
        warn!("set TCP_NODELAY {on}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn with_per_ip(n: usize) -> Config {
        Config {
            max_connections_per_ip: n,
            ..Config::default()
        }
    }

    /// The per-IP limit is read at each accept: a reload applies it to new connections
    /// and leaves open ones alone; a refusal takes no `max_connections` permit.
    #[test]
    fn per_ip_limit_follows_reload_for_new_connections() {
        let ctx = Context::new(with_per_ip(2));
        let shared = Arc::new(Semaphore::new(10));
        let gate = Gate::Shared(shared.clone());
        let a = admit(&ctx, &gate, "RTMP", peer("10.0.0.1:1000")).unwrap();
        let b = admit(&ctx, &gate, "RTMP", peer("10.0.0.1:1001")).unwrap();
        assert!(admit(&ctx, &gate, "RTMP", peer("10.0.0.1:1002")).is_none());
        assert_eq!(ctx.counters.refused_per_ip.load(Ordering::Relaxed), 1);
        assert_eq!(shared.available_permits(), 8);
        ctx.set_config(with_per_ip(3));
        let c = admit(&ctx, &gate, "RTMP", peer("10.0.0.1:1003")).unwrap();
        ctx.set_config(with_per_ip(1));
        // Lowered: the three open stay, a fourth is refused.
        assert!(admit(&ctx, &gate, "RTMP", peer("10.0.0.1:1004")).is_none());
        assert_eq!(ctx.admission.open_from(peer("10.0.0.1:1").ip()), 3);
        assert_eq!(ctx.admission.open(Cap::Shared), 3);
        drop((a, b, c));
        assert_eq!(shared.available_permits(), 10);
        assert_eq!(ctx.admission.open(Cap::Shared), 0);
        assert!(admit(&ctx, &gate, "RTMP", peer("10.0.0.1:1005")).is_some());
    }

    /// The API's cap is its own: a full `max_connections` does not touch it, and its
    /// connections are not counted per IP.
    #[test]
    fn the_api_cap_is_separate() {
        let ctx = Context::new(with_per_ip(1));
        let shared = Arc::new(Semaphore::new(1));
        let api = Arc::new(Semaphore::new(2));
        let _player = admit(
            &ctx,
            &Gate::Shared(shared.clone()),
            "RTMP",
            peer("10.0.0.9:1"),
        );
        assert!(admit(&ctx, &Gate::Shared(shared), "RTMP", peer("10.0.0.8:1")).is_none());
        assert_eq!(ctx.counters.refused.load(Ordering::Relaxed), 1);
        let gate = Gate::Api(api);
        let x = admit(&ctx, &gate, "HTTP API", peer("10.0.0.9:2")).unwrap();
        let y = admit(&ctx, &gate, "HTTP API", peer("10.0.0.9:3")).unwrap();
        assert!(!x.api_only && !y.api_only);
        assert!(admit(&ctx, &gate, "HTTP API", peer("10.0.0.9:4")).is_none());
        assert_eq!(ctx.counters.refused_api.load(Ordering::Relaxed), 1);
        assert_eq!(ctx.counters.refused_per_ip.load(Ordering::Relaxed), 0);
    }

    /// API and server on one port: the API's slots once `max_connections` is full, served
    /// the API only; an address over its own limit gets no reserve slot.
    #[test]
    fn a_shared_port_falls_back_to_the_api_reserve() {
        let ctx = Context::new(with_per_ip(2));
        let gate = Gate::Both {
            shared: Arc::new(Semaphore::new(1)),
            api: Arc::new(Semaphore::new(1)),
        };
        let first = admit(&ctx, &gate, "HTTP", peer("10.0.0.1:1")).unwrap();
        assert!(!first.api_only);
        let reserve = admit(&ctx, &gate, "HTTP", peer("10.0.0.1:2")).unwrap();
        assert!(reserve.api_only);
        assert_eq!(
            (
                ctx.admission.open(Cap::Shared),
                ctx.admission.open(Cap::Api)
            ),
            (1, 1)
        );
        // Not counted per IP: 10.0.0.1 holds one counted connection.
        assert_eq!(ctx.admission.open_from(peer("10.0.0.1:1").ip()), 1);
        assert!(admit(&ctx, &gate, "HTTP", peer("10.0.0.2:1")).is_none());
        assert_eq!(ctx.counters.refused.load(Ordering::Relaxed), 1);
        let _second = admit(
            &ctx,
            &Gate::Shared(Arc::new(Semaphore::new(5))),
            "RTMP",
            peer("10.0.0.1:3"),
        );
        assert!(admit(&ctx, &gate, "HTTP", peer("10.0.0.1:4")).is_none());
        assert_eq!(ctx.counters.refused_per_ip.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn binds_and_accepts() {
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    }
}
