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

use crate::admission::{show_key, suppressed_note, IpGuard, API_MAX_CONNECTIONS};
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
        });
    }
    // The API's reserve on a shared port; not counted per IP, as the API is not.
    if let Some(Ok(permit)) = api.map(|a| a.clone().try_acquire_owned()) {
        return Some(Admitted {
            api_only: true,
            _permit: permit,
            _ip: None,
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
    #[tokio::test]
    async fn binds_and_accepts() {
        let l = super::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    }
}
