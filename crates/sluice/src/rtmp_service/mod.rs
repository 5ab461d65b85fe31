//! The RTMP service: listeners, the connection cap, one task per connection.

mod connection;
pub mod io;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{info, warn, Instrument};

use crate::context::Context;

/// Handshake must complete within this (slowloris and garbage protection).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// From the end of the handshake to publish/play (connect, createStream...).
pub const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// A player whose socket accepts nothing for this long is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest RTMP message we accept (a 4K keyframe fits; a hostile length does not).
pub const MAX_MESSAGE_SIZE: u32 = 8 * 1024 * 1024;
/// Most chunk streams one client may use at once (real clients use under 10).
pub const MAX_CHUNK_STREAMS: usize = 32;

/// Binds every `listen` address of the config. Binding errors are returned
/// (a port in use is a startup failure, not a log line).
pub async fn bind(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let l = crate::listen::bind(*addr)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        listeners.push(l);
    }
    Ok(listeners)
}

/// Accepts connections on `listener` until the task is dropped.
pub async fn serve(ctx: Arc<Context>, listener: TcpListener, limit: Arc<Semaphore>) {
    let local = listener.local_addr().ok();
    info!(
        "RTMP listening on {}",
        local.map(|a| a.to_string()).unwrap_or_default()
    );
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            ctx.counters.refused.fetch_add(1, Ordering::Relaxed);
            warn!(
                "refuse RTMP client {peer}: max_connections {} reached",
                ctx.config().max_connections
            );
            drop(socket);
            continue;
        };
        let cid = ctx.new_client_id();
        let span = tracing::info_span!("rtmp", cid = %cid);
        let ctx2 = ctx.clone();
        tokio::spawn(
            async move {
                handle(ctx2, socket, peer, cid).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

async fn handle(ctx: Arc<Context>, socket: TcpStream, peer: SocketAddr, cid: String) {
    if let Err(e) = socket.set_nodelay(true) {
        warn!("set TCP_NODELAY: {e}");
    }
    ctx.counters.active.fetch_add(1, Ordering::Relaxed);
    let registration = ctx.clients.register(&cid, peer);
    match std::os::fd::AsFd::as_fd(&socket).try_clone_to_owned() {
        Ok(fd) => registration.client.attach_socket(fd),
        Err(e) => warn!("cannot keep a handle to kick {cid}: {e}"),
    }
    connection::Connection::new(ctx.clone(), socket, peer, cid, registration.client.clone())
        .run()
        .await;
    drop(registration);
    ctx.counters.active.fetch_sub(1, Ordering::Relaxed);
}
