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

/// Accepts on `listener` until the task is dropped: counts, applies the shared
/// `max_connections` cap (a connection beyond it is closed at once, with one log
/// line), and hands each admitted socket with its permit to `on_conn`, which
/// spawns the connection's task. One loop for RTMP and HTTP.
pub async fn accept_loop(
    ctx: Arc<Context>,
    listener: TcpListener,
    limit: Arc<Semaphore>,
    name: &'static str,
    mut on_conn: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
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
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            ctx.counters.refused.fetch_add(1, Ordering::Relaxed);
            warn!(
                "refuse {name} client {peer}: max_connections {} reached",
                ctx.config().max_connections
            );
            continue;
        };
        set_nodelay(&socket, true);
        on_conn(socket, peer, permit);
    }
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
