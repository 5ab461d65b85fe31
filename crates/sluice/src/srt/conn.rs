//! One SRT connection: its stream id, the same admission as an RTMP client (vhost,
//! names' bounds, security rules, on_connect and on_publish/on_play hooks), then a
//! publisher feeding a Source or a player fed by the delivery path. Hooks on_unpublish,
//! on_stop and on_close follow its end, however it ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libsrt::reactor::AsyncSocket;
use libsrt::Socket;
use media::ts::TsIngest;
use rtmp::server::MediaKind;
use tracing::{info, warn};

use super::stream_id::{self, Mode, SrtRequest};
use crate::config::VhostConfig;
use crate::context::Context;
use crate::delivery::transport::SrtTransport;
use crate::delivery::{Framer, Framing, PlayerDriver, Transport};
use crate::hooks::{self, HookRequest};
use crate::hub::{make_frame, Source, SourceSettings, StreamKey};
use crate::service::Shutdown;
use crate::stats::{Client, ClientKind};
use crate::stream_url::{self, mask_param, StreamRequest};

/// A player whose connection takes nothing for this long is closed (as RTMP's).
const SEND_TIMEOUT: Duration = crate::rtmp_service::SEND_TIMEOUT;
/// How long a player's connection keeps sending its tail once closed.
const PLAYER_LINGER_SECS: i32 = 3;
/// Largest message libsrt hands over in live mode is the payload size; room for more.
const RECV_BUF: usize = 1500;

#[derive(Debug, thiserror::Error)]
enum CloseReason {
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Kicked(crate::stats::KickReason),
    #[error("server stopping")]
    Stopping,
}

/// What the end hooks must report.
#[derive(Default)]
struct Ended {
    hooks: Option<crate::config::HttpHooksConfig>,
    connected: Option<HookRequest>,
    published: Option<HookRequest>,
    playing: Option<HookRequest>,
}

pub async fn handle(
    ctx: Arc<Context>,
    sock: Socket,
    peer: SocketAddr,
    cid: String,
    mut shutdown: Shutdown,
) {
    ctx.counters
        .active
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ctx.srt
        .connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let registration = ctx.clients.register(&cid, peer);
    let client = registration.client.clone();
    let started = Instant::now();
    let sid = sock.stream_id().unwrap_or_default();
    let mut ended = Ended::default();
    let mut url = String::new();
    let mut role = "client";
    let result = match (stream_id::parse(&sid), AsyncSocket::new(sock)) {
        (Err(e), _) => Err(CloseReason::Rejected(e.to_string())),
        (_, Err(e)) => Err(CloseReason::Io(e)),
        (Ok(req), Ok(socket)) => {
            role = match req.mode {
                Mode::Publish => "publisher",
                Mode::Play => "player",
            };
            let socket = Arc::new(socket);
            let served = serve(
                &ctx, &client, &socket, peer, &cid, req, &mut ended, &mut url,
            );
            let kick = client.kick.clone();
            let r = tokio::select! {
                r = served => r,
                _ = kick.cancelled() => Err(CloseReason::Kicked(client.kick_reason())),
                _ = shutdown.requested() => Err(CloseReason::Stopping),
            };
            socket.socket().close();
            r
        }
    };
    let line = format!(
        "close srt {role} ip={peer} url={url} streamid={sid:?} duration={:.1}s recv={} send={}",
        started.elapsed().as_secs_f64(),
        client.recv_bytes.load(std::sync::atomic::Ordering::Relaxed),
        client.send_bytes.load(std::sync::atomic::Ordering::Relaxed),
    );
    match result {
        Ok(()) => info!("{line}: done"),
        // SRT has no graceful close a receiver can tell from a lost peer.
        Err(CloseReason::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionAborted => {
            info!("{line}: peer closed or lost ({e})")
        }
        Err(e) => warn!("{line}: {e}"),
    }
    end_hooks(&ctx, &client, ended).await;
    drop(registration);
    ctx.srt
        .connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    ctx.counters
        .active
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

async fn end_hooks(ctx: &Context, client: &Client, ended: Ended) {
    let Some(cfg) = ended.hooks else {
        return;
    };
    if let Some(r) = ended.published {
        hooks::on_unpublish(ctx, &cfg, &r).await;
    }
    if let Some(r) = ended.playing {
        hooks::on_stop(ctx, &cfg, &r).await;
    }
    if let Some(r) = ended.connected {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        hooks::on_close(
            ctx,
            &cfg,
            &r,
            load(&client.send_bytes),
            load(&client.recv_bytes),
        )
        .await;
    }
}

fn settings_of(vhost: &VhostConfig) -> SourceSettings {
    let q = vhost.effective_queue_length();
    SourceSettings {
        gop_cache: vhost.effective_gop_cache(),
        queue_length_ms: if q.is_finite() && q > 0.0 {
            (q * 1000.0) as u64
        } else {
            0
        },
    }
}

/// The stream request an SRT stream id stands for, as an RTMP URL would give it: the
/// vhost from `h=` (else a `vhost=` parameter, else the default vhost), the tcUrl
/// `srt://VHOST/APP` for hooks and the API.
fn stream_request(req: &SrtRequest) -> StreamRequest {
    let host = req
        .host
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_VHOST.to_string());
    let tc_url = format!("srt://{host}/{}", req.app);
    let stream = if req.param.is_empty() {
        req.stream.clone()
    } else {
        format!("{}?{}", req.stream, req.param)
    };
    stream_url::parse(&tc_url, &req.app, &stream)
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    ctx: &Arc<Context>,
    client: &Arc<Client>,
    socket: &Arc<AsyncSocket>,
    peer: SocketAddr,
    cid: &str,
    sreq: SrtRequest,
    ended: &mut Ended,
    url: &mut String,
) -> Result<(), CloseReason> {
    let req = stream_request(&sreq);
    if let Err(e) = req.check() {
        return Err(CloseReason::Rejected(format!(
            "{} refused: {e}",
            sreq.mode.name()
        )));
    }
    let config = ctx.config();
    let Some(vhost) = config.resolve_vhost(&req.vhost).cloned() else {
        return Err(CloseReason::Rejected(format!(
            "vhost {} is not served here",
            req.vhost
        )));
    };
    drop(config);
    if !vhost.srt.enabled {
        return Err(CloseReason::Rejected(format!(
            "SRT is not enabled on vhost {} (vhost {} {{ srt {{ enabled on; }} }})",
            vhost.name, vhost.name
        )));
    }
    let key = StreamKey {
        vhost: vhost.name.clone(),
        app: req.app.clone(),
        stream: req.stream.clone(),
    };
    *url = key.to_string();
    client.update(|c| {
        c.tc_url = req.tc_url.clone();
        c.stream = Some(key.clone());
        c.param = mask_param(&req.param);
        c.raw_param = req.param.clone();
    });
    // The stream exists before the hooks (they carry its id), as for RTMP.
    let source = ctx.hub.source(&key, settings_of(&vhost));
    let hreq = HookRequest {
        client_id: cid.to_string(),
        ip: peer.ip().to_canonical().to_string(),
        vhost: vhost.name.clone(),
        app: req.app.clone(),
        stream: req.stream.clone(),
        param: HookRequest::param_of(&req.param),
        tc_url: req.tc_url.clone(),
        page_url: String::new(),
    };
    let ip = peer.ip().to_canonical();
    let admitted = async {
        if vhost.http_hooks.enabled {
            ended.hooks = Some(vhost.http_hooks.clone());
            hooks::on_connect(ctx, &vhost.http_hooks, &hreq)
                .await
                .map_err(hooks::Refusal::from)?;
            ended.connected = Some(hreq.clone());
        }
        match sreq.mode {
            Mode::Publish => hooks::admit_publish(ctx, &vhost, &hreq, ip).await,
            Mode::Play => hooks::admit_play(ctx, &vhost, &hreq, ip).await,
        }
    }
    .await;
    if let Err(why) = admitted {
        drop(source);
        ctx.hub.release(&key);
        return Err(CloseReason::Rejected(format!(
            "{} refused: {}",
            sreq.mode.name(),
            why.0
        )));
    }
    let hooked = vhost.http_hooks.enabled;
    match sreq.mode {
        Mode::Publish => {
            if hooked {
                ended.published = Some(hreq);
            }
            publish(ctx, client, socket, peer, cid, source, &vhost, &key, &req).await
        }
        Mode::Play => {
            if hooked {
                ended.playing = Some(hreq);
            }
            drop(source);
            play(ctx, client, socket, peer, &vhost, &key, &req).await
        }
    }
}

/// Unpublishes and gives the stream back on every exit path.
struct PublishGuard {
    ctx: Arc<Context>,
    source: Arc<Source>,
    cid: String,
}

impl Drop for PublishGuard {
    fn drop(&mut self) {
        self.source.unpublish(&self.cid);
        self.ctx.hub.release(&self.source.key);
    }
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    ctx: &Arc<Context>,
    client: &Arc<Client>,
    socket: &AsyncSocket,
    peer: SocketAddr,
    cid: &str,
    source: Arc<Source>,
    vhost: &VhostConfig,
    key: &StreamKey,
    req: &StreamRequest,
) -> Result<(), CloseReason> {
    source.apply_pacing(vhost.pacing());
    source.set_atc_policy(crate::hub::AtcPolicy::of(vhost));
    if let Err(e) = source.publish(cid) {
        drop(source);
        ctx.hub.release(key);
        return Err(CloseReason::Rejected(format!("publish refused: {e}")));
    }
    let guard = PublishGuard {
        ctx: ctx.clone(),
        source,
        cid: cid.to_string(),
    };
    client.update(|c| c.kind = ClientKind::SrtPublish);
    info!(
        "srt publish ip={peer} stream={key} param={}",
        mask_param(&req.param)
    );
    let mut ingest = TsIngest::new();
    let mut frames = Vec::new();
    let mut buf = vec![0u8; RECV_BUF];
    let mut got_media = false;
    let (firstpkt, normal) = (vhost.publish.firstpkt_timeout, vhost.publish.normal_timeout);
    loop {
        let wait = if got_media { normal } else { firstpkt };
        let n = match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                // The PES still being assembled are complete: the last frames count.
                ingest.finish(&mut frames);
                push_frames(&guard.source, &mut frames);
                let s = ingest.stats();
                info!(
                    "srt unpublish stream={key} ts_cc_errors={} discontinuities={} dropped_pes={}",
                    s.cc_errors, s.discontinuities, s.dropped
                );
                return Err(e.into());
            }
            Err(_) => {
                return Err(CloseReason::Timeout(format!(
                    "publisher sent nothing for {} ms",
                    wait.as_millis()
                )))
            }
        };
        client.add_recv(n as u64);
        ctx.counters
            .bytes_in
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        ingest.push(&buf[..n], &mut frames);
        got_media |= push_frames(&guard.source, &mut frames);
    }
}

/// Pushes the frames a TS ingest made into the stream; true when there were any.
fn push_frames(source: &Source, frames: &mut Vec<media::ts::IngestFrame>) -> bool {
    let mut any = false;
    for f in frames.drain(..) {
        let kind = if f.video {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        if let Some(frame) = make_frame(kind, f.timestamp, f.payload) {
            any = true;
            source.push(frame);
        }
    }
    any
}

async fn play(
    ctx: &Arc<Context>,
    client: &Arc<Client>,
    socket: &Arc<AsyncSocket>,
    peer: SocketAddr,
    vhost: &VhostConfig,
    key: &StreamKey,
    req: &StreamRequest,
) -> Result<(), CloseReason> {
    let feed = ctx
        .srt
        .feeds
        .get(ctx, key, settings_of(vhost), vhost.play.mw_latency);
    let consumer =
        crate::hub::Consumer::detached(feed.source.clone(), settings_of(vhost).queue_length_ms);
    client.update(|c| c.kind = ClientKind::SrtPlay);
    info!(
        "srt play ip={peer} stream={key} param={} publishing={}",
        mask_param(&req.param),
        ctx.hub.get(key).is_some_and(|s| s.is_publishing())
    );
    let driver = PlayerDriver::new(
        Transport::Srt(SrtTransport {
            socket: socket.clone(),
        }),
        consumer,
        Framer::new(Framing::Ts, vhost.effective_time_jitter()),
        ctx.clone(),
        client.clone(),
    );
    // What is still in libsrt's buffer when the stream ends goes out before the close.
    let _ = socket.socket().set_linger(Some(PLAYER_LINGER_SECS));
    let attached = ctx.delivery.attach(driver);
    let sink = &attached.driver;
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        if sink.finished() {
            info!("srt play stream={key}: the publish ended");
            return Ok(());
        }
        tokio::select! {
            r = sink.attend(SEND_TIMEOUT) => r?,
            r = socket.readable() => {
                r?;
                // A player sends nothing (SRT's own control packets are libsrt's): what it
                // sends is read and dropped; a broken connection fails here.
                socket.socket().recv(&mut buf).or_else(|e| {
                    if e.kind() == std::io::ErrorKind::WouldBlock { Ok(0) } else { Err(e) }
                })?;
            }
        }
    }
}
