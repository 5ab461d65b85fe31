//! The HTTP side: the API listener (`http_api`) and the HTTP server listener
//! (`http_server`: live HTTP-FLV, HLS and static files), one stack for both.
//!
//! Connections are served by hyper directly (not `axum::serve`) so that every
//! protection is ours to set: the connection caps (see [`crate::admission`]), a header-read
//! time-out, a bounded request head, and a write time-out for players that
//! stop reading.

pub mod api;
pub mod console;
pub mod direct;
pub mod flv_live;
pub mod flv_vod;
pub mod ll_hls;
pub mod metrics;
pub mod rtc;
pub mod static_files;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{debug, info, Instrument};

use crate::context::Context;
use crate::listen::Gate;
use crate::write_timeout::WriteTimeout;

/// A client must send its whole request head within this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A response write that makes no progress for this long closes the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (request line plus headers) we buffer.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Which listener a router is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Api,
    Server,
    /// `http_api` and `http_server` on the same address: both on one port, as SRS allows.
    Both,
}

/// The routes of one listener.
pub fn router(ctx: Arc<Context>, role: Role) -> Router {
    let api = || {
        api::router(ctx.clone())
            .merge(metrics::router(ctx.clone()))
            .merge(rtc::router(ctx.clone()))
    };
    let server = || {
        Router::new()
            .fallback(server_fallback)
            .with_state(ctx.clone())
    };
    match role {
        Role::Api => api().merge(console::api_router(ctx.clone())),
        Role::Server => server(),
        Role::Both => api().fallback_service(server()),
    }
}

/// Everything on the HTTP server that is not the API: a live FLV mount wins,
/// then files (HLS, static, FLV VOD), then the embedded console pages.
async fn server_fallback(State(ctx): State<Arc<Context>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Some(resp) = flv_live::try_serve(&ctx, &parts).await {
        return resp;
    }
    if let Some(resp) = ll_hls::try_serve(&ctx, &parts).await {
        return resp;
    }
    let head = console::head_of(&parts);
    let resp = static_files::serve(ctx.clone(), Request::from_parts(parts, body)).await;
    if resp.status() == StatusCode::NOT_FOUND {
        if let Some(page) = head.and_then(|h| console::fallback(&ctx, &h)) {
            return page;
        }
    }
    resp
}

/// Accepts HTTP connections until the task is dropped, under the caps of `gate`
/// (see [`crate::listen::Gate`]). A connection admitted on the API's reserve of a
/// shared port is served [`reserve_router`]: the API, and 503 for the rest.
///
/// With `tls`, this is an HTTPS listener: the TLS handshake comes first (bounded,
/// see [`crate::tls`]), then the connection is served exactly as a plain one.
pub async fn serve(
    ctx: Arc<Context>,
    listener: TcpListener,
    router: Router,
    role: Role,
    gate: Gate,
    name: &'static str,
    tls: Option<crate::tls::TlsListener>,
) {
    let ctx2 = ctx.clone();
    let reserve = reserve_router(ctx.clone());
    crate::listen::accept_loop(ctx, listener, gate, name, move |socket, peer, admitted| {
        let router = router.clone();
        let reserve = reserve.clone();
        let ctx = ctx2.clone();
        let span = if tls.is_some() {
            tracing::info_span!("https", peer = %peer)
        } else {
            tracing::info_span!("http", peer = %peer)
        };
        tokio::spawn(
            async move {
                let socket = match tls {
                    Some(which) => match ctx.tls.accept(which, socket, peer).await {
                        Ok((tcp, conn)) => crate::conn::Conn::tls(tcp, conn),
                        // Logged (rate-limited) by the handshake itself.
                        Err(_) => return,
                    },
                    None => crate::conn::Conn::plain(socket),
                };
                if admitted.api_only {
                    serve_connection(socket, peer, reserve).await;
                } else if role == Role::Api {
                    serve_connection(socket, peer, router).await;
                } else {
                    // Live FLV plays are served without hyper (see `direct`).
                    direct::serve(ctx, socket, peer, |io| serve_connection(io, peer, router)).await;
                }
                drop(admitted);
            }
            .instrument(span),
        );
    })
    .await
}

/// The routes of a connection that got one of the API's own slots on a port it
/// shares with the HTTP server (`max_connections` was full): the API, so that the
/// operator can still see and kick clients, and a 503 for everything else, as the
/// server has no room for another player.
pub fn reserve_router(ctx: Arc<Context>) -> Router {
    api::router(ctx.clone())
        .merge(metrics::router(ctx))
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "max_connections reached: this connection may use the API only\n",
            )
        })
}

async fn serve_connection<S>(socket: S, peer: SocketAddr, router: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(WriteTimeout::new(socket, WRITE_TIMEOUT));
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(Body::new)).await;
                Ok::<_, Infallible>(resp.unwrap_or_else(|e| match e {}))
            }
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES.max(8192))
        .serve_connection(io, service);
    if let Err(e) = conn.await {
        // What hyper answers or closes on its own, said once per connection.
        if e.is_timeout() {
            info!("http client {peer}: no complete request head within {HEADER_READ_TIMEOUT:?}; closed");
        } else if e.is_parse_too_large() {
            info!(
                "http client {peer}: request head over {} bytes; answered 431",
                MAX_HEAD_BYTES.max(8192)
            );
        } else if e.is_parse() {
            info!("http client {peer}: malformed request ({e}); answered 400");
        } else {
            debug!("http client {peer}: connection ended: {e}");
        }
    }
}

/// The peer address hyper's service put in the request.
pub fn peer_of(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}
