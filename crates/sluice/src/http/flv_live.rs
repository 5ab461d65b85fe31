//! Live HTTP-FLV: a GET on a vhost's `http_remux` mount plays its live stream as
//! an endless FLV body, from the same shared ring as RTMP players.
//!
//! The body is a stream of shared buffers (tag headers are made per player, the
//! payloads are the publisher's bytes): hyper writes them with vectored writes,
//! and the consumer's queue policy (skip to a keyframe when too far behind)
//! applies exactly as for RTMP.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tracing::{info, warn, Instrument};

use crate::config::{Config, HttpHooksConfig, VhostConfig, DEFAULT_VHOST};
use crate::context::Context;
use crate::hooks::{self, HookRequest};
use crate::hub::jitter::Jitter;
use crate::hub::{Consumer, FrameKind, Item, SourceSettings, StreamKey};
use crate::stats::{ClientGuard, ClientKind};

/// Matches `path` (no leading `/`) against a mount template whose `[vhost]` is
/// already replaced; returns (app, stream).
fn match_mount(template: &str, path: &str) -> Option<(String, String)> {
    let t: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let p: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if t.len() != p.len() {
        return None;
    }
    let (mut app, mut stream) = (None, None);
    for (ts, ps) in t.iter().zip(&p) {
        match (ts.find("[app]"), ts.find("[stream]")) {
            (None, None) => {
                if ts != ps {
                    return None;
                }
            }
            _ => {
                // A segment with variables: literal prefix/suffix around one variable.
                let var = if ts.contains("[app]") {
                    "[app]"
                } else {
                    "[stream]"
                };
                let (pre, post) = ts.split_once(var)?;
                let value = ps.strip_prefix(pre)?.strip_suffix(post)?;
                if value.is_empty() {
                    return None;
                }
                if var == "[app]" {
                    app = Some(value.to_string());
                } else {
                    stream = Some(value.to_string());
                }
            }
        }
    }
    Some((app?, stream?))
}

/// Finds the vhost and stream a request path names, by SRS's rules: a
/// `?vhost=` parameter or the Host header picks the vhost, whose mount
/// (`[vhost]` replaced by its name, or by nothing for `__defaultVhost__`)
/// must match the path.
pub fn resolve<'a>(
    config: &'a Config,
    path: &str,
    query: &str,
    host: Option<&str>,
) -> Option<(&'a VhostConfig, StreamKey)> {
    let path = path.trim_start_matches('/');
    let wanted = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("vhost="))
        .or(host);
    let mut candidates: Vec<&VhostConfig> = Vec::new();
    if let Some(v) = wanted.and_then(|w| config.vhosts.iter().find(|v| v.enabled && v.name == w)) {
        candidates.push(v);
    }
    candidates.extend(config.vhosts.iter().filter(|v| v.enabled));
    for vhost in candidates {
        if !vhost.http_remux.enabled {
            continue;
        }
        let name = if vhost.name == DEFAULT_VHOST {
            ""
        } else {
            vhost.name.as_str()
        };
        let template = vhost.http_remux.mount.replace("[vhost]", name);
        if let Some((app, stream)) = match_mount(&template, path) {
            let stream = stream.strip_suffix(".flv").unwrap_or(&stream).to_string();
            return Some((
                vhost,
                StreamKey {
                    vhost: vhost.name.clone(),
                    app,
                    stream,
                },
            ));
        }
    }
    None
}

/// Serves the request if it names a live FLV mount; None lets the file server have it.
pub async fn try_serve(ctx: &Arc<Context>, req: &Parts) -> Option<Response> {
    let path = req.uri.path();
    if !path.ends_with(".flv") || !(req.method == Method::GET || req.method == Method::HEAD) {
        return None;
    }
    let config = ctx.config();
    let host = req
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map(|(h, _)| h).unwrap_or(h));
    let (vhost, key) = resolve(&config, path, req.uri.query().unwrap_or(""), host)?;
    let live = ctx.hub.get(&key).filter(|s| s.is_publishing());
    // An edge pulls on demand: subscribing starts the pull, the body waits for it.
    let edge = vhost.cluster.mode == crate::config::ClusterMode::Remote;
    if live.is_none() && !edge {
        // Not live: a file of that name may still exist (FLV VOD).
        return None;
    }
    let peer = req
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let peer_addr = peer.unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let query = req.uri.query().unwrap_or("");
    let cid = ctx.new_client_id();
    let hook_req = HookRequest {
        client_id: cid.clone(),
        ip: peer_addr.ip().to_canonical().to_string(),
        vhost: vhost.name.clone(),
        app: key.app.clone(),
        stream: key.stream.clone(),
        param: HookRequest::param_of(query),
        tc_url: format!("http://{}{}", host.unwrap_or(""), path),
        page_url: req
            .headers
            .get(header::REFERER)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string(),
    };
    // Same gate as RTMP players: security rules, refer, then on_play.
    if let Err(why) = hooks::admit_play(ctx, vhost, &hook_req, peer_addr.ip().to_canonical()).await
    {
        info!("flv play of {key} refused for {peer_addr}: {}", why.0);
        return Some((StatusCode::FORBIDDEN, why.0).into_response());
    }
    let crossdomain = config.http_server.crossdomain;
    let settings = SourceSettings {
        gop_cache: vhost.effective_gop_cache(),
        queue_length_ms: (vhost.effective_queue_length().max(0.0) * 1000.0) as u64,
    };
    let (video, audio) = live
        .as_ref()
        .map(|s| s.codec_info())
        .unwrap_or((None, None));
    let remux = &vhost.http_remux;
    // guess_has_av: a track exists when its sequence header or a frame of it has
    // been seen; before anything is known, the configured flags stand.
    let seen = live.as_ref().map(|s| {
        use std::sync::atomic::Ordering::Relaxed;
        (
            audio.is_some() || s.stats.audio_frames.load(Relaxed) > 0,
            video.is_some() || s.stats.video_frames.load(Relaxed) > 0,
        )
    });
    let (has_audio, has_video) = match seen {
        Some((a, v)) if remux.guess_has_av && (a || v) => (a, v),
        _ => (remux.has_audio, remux.has_video),
    };
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "video/x-flv")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::CONNECTION, "keep-alive");
    if crossdomain {
        resp = resp.header(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    if req.method == Method::HEAD {
        return Some(
            resp.body(Body::empty())
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        );
    }
    let cid = ctx.new_client_id();
    let registration = ctx.clients.register(
        &cid,
        peer.unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
    );
    registration.client.update(|c| {
        c.kind = ClientKind::FlvPlay;
        c.stream = Some(key.clone());
        c.param = crate::stream_url::mask_param(query);
        c.raw_param = query.to_string();
        c.tc_url = format!("http://{}{}", host.unwrap_or(""), path);
    });
    let span = tracing::info_span!("flv", cid = %cid);
    span.in_scope(|| {
        info!(
            "flv play ip={} stream={key} has_audio={has_audio} has_video={has_video}",
            peer.map(|p| p.to_string()).unwrap_or_default()
        )
    });
    let consumer = ctx.hub.subscribe(&key, settings);
    let state = Player {
        ctx: ctx.clone(),
        consumer,
        jitter: Jitter::new(vhost.effective_time_jitter()),
        hooks: vhost.http_hooks.clone(),
        hook_req,
        pending: VecDeque::new(),
        items: Vec::new(),
        header: Some(flv_header(has_audio, has_video)),
        registration,
        key,
        started: Instant::now(),
        done: false,
    };
    let stream = futures_util::stream::unfold(state, move |mut p| {
        let span = span.clone();
        async move {
            let next = p.next().await;
            next.map(|b| (Ok::<Bytes, Infallible>(b), p))
        }
        .instrument(span)
    });
    Some(
        resp.body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    )
}

fn flv_header(has_audio: bool, has_video: bool) -> Bytes {
    let h = media::flv::FlvHeader {
        has_audio,
        has_video,
    };
    Bytes::copy_from_slice(&h.encode())
}

/// One HTTP-FLV player: turns consumer items into FLV tags.
struct Player {
    ctx: Arc<Context>,
    consumer: Consumer,
    jitter: Jitter,
    hooks: HttpHooksConfig,
    hook_req: HookRequest,
    pending: VecDeque<Bytes>,
    items: Vec<Item>,
    header: Option<Bytes>,
    registration: ClientGuard,
    key: StreamKey,
    started: Instant,
    done: bool,
}

impl Player {
    /// The next piece of the body, or None when the stream ends.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(h) = self.header.take() {
            return Some(self.count(h));
        }
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Some(self.count(b));
            }
            // A GOP-sized first batch must not pin its capacity for the player's lifetime.
            if self.pending.capacity() > 1024 {
                self.pending.shrink_to(64);
            }
            if self.done || self.registration.client.kick.is_cancelled() {
                return None;
            }
            self.items.clear();
            if let Some(s) = self.consumer.fetch(&mut self.items) {
                warn!(
                    "flv player fell {} ms behind; skipped {} entries",
                    s.lag_ms, s.entries
                );
            }
            if self.items.is_empty() {
                let kick = self.registration.client.kick.clone();
                // The source paces wake-ups (mw_latency): each brings a batch.
                tokio::select! {
                    _ = self.consumer.changed() => {}
                    _ = kick.cancelled() => return None,
                }
                continue;
            }
            for item in std::mem::take(&mut self.items) {
                match item {
                    Item::Frame(f) => {
                        let ts = self
                            .jitter
                            .correct(f.timestamp, f.kind != FrameKind::Script)
                            as u32;
                        let len = f.payload.len() as u32;
                        self.pending
                            .push_back(Bytes::copy_from_slice(&media::flv::tag_header(
                                f.kind.type_id(),
                                len,
                                ts,
                            )));
                        self.pending.push_back(f.payload);
                        self.pending
                            .push_back(Bytes::copy_from_slice(&media::flv::previous_tag_size(len)));
                    }
                    // The body ends with the publish: players reconnect for the next one.
                    Item::Unpublished => self.done = true,
                    Item::Published => {}
                }
            }
        }
    }

    fn count(&self, b: Bytes) -> Bytes {
        self.registration.client.add_send(b.len() as u64);
        self.ctx
            .counters
            .bytes_out
            .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        b
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let c = &self.registration.client;
        info!(
            "close flv player ip={} url={} duration={:.1}s send={}",
            c.peer,
            self.key,
            self.started.elapsed().as_secs_f64(),
            c.send_bytes.load(std::sync::atomic::Ordering::Relaxed)
        );
        self.ctx.hub.release(&self.key);
        hooks::spawn_on_stop(self.ctx.clone(), self.hooks.clone(), self.hook_req.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_matching() {
        assert_eq!(
            match_mount("/[app]/[stream].flv", "live/test.flv"),
            Some(("live".into(), "test".into()))
        );
        assert_eq!(
            match_mount("v1.test/[app]/[stream].flv", "v1.test/live/a.flv"),
            Some(("live".into(), "a".into()))
        );
        assert_eq!(
            match_mount("v1.test/[app]/[stream].flv", "v2.test/live/a.flv"),
            None
        );
        assert_eq!(match_mount("/[app]/[stream].flv", "x/live/a.flv"), None);
        assert_eq!(match_mount("/[app]/[stream].flv", "live/.flv"), None);
        assert_eq!(
            match_mount("/live/[stream].flv", "live/s.flv"),
            None,
            "no [app]: not a stream mount"
        );
    }
}
