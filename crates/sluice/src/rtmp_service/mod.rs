//! The RTMP service: listeners, the connection caps, one task per connection.

mod connection;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::context::Context;

/// Handshake must complete within this (slowloris and garbage protection).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// From the end of the handshake to publish/play (connect, createStream...).
pub const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// A player whose socket accepts nothing for this long is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest RTMP message we accept (a 4K keyframe fits; a hostile length does not).
pub const MAX_MESSAGE_SIZE: u32 = 8 * 1024 * 1024;
/// Largest message before a client publishes (connect, createStream, play and
/// publish commands are well under 4 KiB; a connect object with many properties
/// stays far below this).
pub const MAX_COMMAND_SIZE: u32 = 64 * 1024;
/// What all publishers together may hold in messages they have not finished
/// sending. Past it, a publisher holding more than [`PENDING_FAIR_SHARE`] is
/// closed. With it, the memory held in half-received messages is at most
/// `max_connections` x 128 KiB (clients before publish) + this.
pub const PENDING_BUDGET: usize = 256 * 1024 * 1024;
/// What one publisher may hold whatever the others do: a keyframe of a 4K stream
/// in flight.
pub const PENDING_FAIR_SHARE: usize = 4 * 1024 * 1024;
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

/// Accepts connections on `listener` until the task is dropped; each holds a
/// `max_connections` permit and counts against its address's
/// `max_connections_per_ip` (see [`crate::admission`]). With `tls`, this is an
/// RTMPS listener: the TLS handshake comes first (bounded, see [`crate::tls`]), then
/// the connection is served exactly as a plain RTMP one.
pub async fn serve(ctx: Arc<Context>, listener: TcpListener, limit: Arc<Semaphore>, tls: bool) {
    let ctx2 = ctx.clone();
    let gate = crate::listen::Gate::Shared(limit);
    let name = if tls { "RTMPS" } else { "RTMP" };
    crate::listen::accept_loop(ctx, listener, gate, name, move |socket, peer, permit| {
        let cid = ctx2.new_client_id();
        let span = if tls {
            tracing::info_span!("rtmps", cid = %cid)
        } else {
            tracing::info_span!("rtmp", cid = %cid)
        };
        let ctx = ctx2.clone();
        tokio::spawn(
            async move {
                let halves = if tls {
                    match ctx
                        .tls
                        .accept(crate::tls::TlsListener::Rtmps, socket, peer)
                        .await
                    {
                        Ok((tcp, conn)) => crate::conn::Conn::tls(tcp, conn),
                        // Logged (rate-limited) by the handshake itself.
                        Err(_) => return,
                    }
                } else {
                    crate::conn::Conn::plain(socket)
                };
                handle(ctx, halves, peer, cid).await;
                drop(permit);
            }
            .instrument(span),
        );
    })
    .await
}

async fn handle(ctx: Arc<Context>, halves: crate::conn::Conn, peer: SocketAddr, cid: String) {
    ctx.counters.active.fetch_add(1, Ordering::Relaxed);
    let registration = ctx.clients.register(&cid, peer);
    connection::Connection::new(ctx.clone(), halves, peer, cid, registration.client.clone())
        .run()
        .await;
    drop(registration);
    ctx.counters.active.fetch_sub(1, Ordering::Relaxed);
}
