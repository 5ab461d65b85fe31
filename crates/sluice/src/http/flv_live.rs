//! Live HTTP-FLV: a GET on a vhost's `http_remux` mount plays its live stream as
//! an endless FLV body, from the same shared ring as RTMP players.
//!
//! Admission (security, refer, on_play, the client registry) is here, for both
//! ways a play arrives: as the first request of a connection (answered on the
//! socket itself, [`super::direct`]) or after other requests on a kept-alive
//! connection (answered through hyper, [`try_serve`]). Either way the player is
//! fed by the one delivery path ([`crate::delivery`]); only the transport differs.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tracing::{info, Instrument};

use crate::config::{Config, HttpHooksConfig, TimeJitter, VhostConfig, DEFAULT_VHOST};
use crate::context::Context;
use crate::delivery::{transport, Attached, Framer, Framing, PlayerDriver, Transport};
use crate::hooks::{self, HookRequest};
use crate::hub::{Consumer, SourceSettings, StreamKey};
use crate::stats::{ClientGuard, ClientKind};

/// What a live mount serves, by its extension, as SRS picks its encoder
/// (`SrsLiveStream::do_serve_http`): FLV, MPEG-TS, ADTS AAC or MP3. The HTTP player
/// is the same client (`flv-play`, SRS's `SrsFlvPlay`) whatever it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemuxFormat {
    Flv,
    Ts,
    Aac,
    Mp3,
}

impl RemuxFormat {
    pub const ALL: [RemuxFormat; 4] = [
        RemuxFormat::Flv,
        RemuxFormat::Ts,
        RemuxFormat::Aac,
        RemuxFormat::Mp3,
    ];

    /// The format a request path (or a mount) names by its extension.
    pub fn of_path(path: &str) -> Option<RemuxFormat> {
        RemuxFormat::ALL
            .into_iter()
            .find(|f| path.ends_with(f.ext()))
    }

    pub fn ext(self) -> &'static str {
        match self {
            RemuxFormat::Flv => ".flv",
            RemuxFormat::Ts => ".ts",
            RemuxFormat::Aac => ".aac",
            RemuxFormat::Mp3 => ".mp3",
        }
    }

    /// SRS's content types.
    pub fn content_type(self) -> &'static str {
        match self {
            RemuxFormat::Flv => "video/x-flv",
            RemuxFormat::Ts => "video/MP2T",
            RemuxFormat::Aac => "audio/x-aac",
            RemuxFormat::Mp3 => "audio/mpeg",
        }
    }

    /// The audio codec an audio-only format carries.
    fn audio_only(self) -> Option<&'static str> {
        match self {
            RemuxFormat::Aac => Some("AAC"),
            RemuxFormat::Mp3 => Some("MP3"),
            _ => None,
        }
    }
}

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
            let ext = RemuxFormat::of_path(&template).map_or(".flv", RemuxFormat::ext);
            let stream = stream.strip_suffix(ext).unwrap_or(&stream).to_string();
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

/// What the admission of an HTTP-FLV play needs from a request, whoever parsed it
/// (hyper, or the direct path in [`super::direct`]).
pub struct PlayRequest<'a> {
    pub head: bool,
    pub path: &'a str,
    pub query: &'a str,
    /// The Host header without its port.
    pub host: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub peer: Option<std::net::SocketAddr>,
}

impl<'a> PlayRequest<'a> {
    fn of(req: &'a Parts) -> Option<PlayRequest<'a>> {
        let head = match req.method {
            Method::GET => false,
            Method::HEAD => true,
            _ => return None,
        };
        Some(PlayRequest {
            head,
            path: req.uri.path(),
            query: req.uri.query().unwrap_or(""),
            host: host_of(req.headers.get(header::HOST).and_then(|h| h.to_str().ok())),
            referer: req
                .headers
                .get(header::REFERER)
                .and_then(|h| h.to_str().ok()),
            peer: req
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0),
        })
    }
}

/// A Host header's host part.
pub fn host_of(host: Option<&str>) -> Option<&str> {
    host.map(|h| h.rsplit_once(':').map(|(h, _)| h).unwrap_or(h))
}

/// The outcome of [`admit`].
pub enum Admission {
    /// Not a live mount: the file server may have it (FLV VOD).
    NotLive,
    /// Refused (security, refer, on_play) or a HEAD: answered as it is.
    Answer(Response),
    Play(Box<Admitted>),
}

/// A player let in: what its delivery needs. Dropping it ends the play
/// (close line, consumer released, on_stop).
pub struct Admitted {
    pub consumer: Consumer,
    pub jitter: TimeJitter,
    /// The vhost's `tcp_nodelay`.
    pub nodelay: bool,
    pub has_audio: bool,
    pub has_video: bool,
    pub crossdomain: bool,
    pub span: tracing::Span,
    pub session: FlvSession,
    /// What the body carries (the mount's extension).
    pub format: RemuxFormat,
}

impl Admitted {
    /// The FLV file header, which starts every body.
    pub fn flv_header(&self) -> Bytes {
        let h = media::flv::FlvHeader {
            has_audio: self.has_audio,
            has_video: self.has_video,
        };
        Bytes::copy_from_slice(&h.encode())
    }

    /// The bytes every body starts with: FLV's file header, SRS's empty ID3 tag before
    /// MP3; nothing for TS and ADTS.
    pub fn body_start(&self) -> Bytes {
        match self.format {
            RemuxFormat::Flv => self.flv_header(),
            RemuxFormat::Mp3 => Bytes::from_static(&media::audio_remux::ID3_HEADER),
            RemuxFormat::Ts | RemuxFormat::Aac => Bytes::new(),
        }
    }

    /// How this player's body is framed; `chunked` for HTTP/1.1 on the direct path
    /// (hyper chunks the bodies it serves itself).
    pub fn framer(&self, chunked: bool) -> Framer {
        let framing = match self.format {
            RemuxFormat::Flv => return Framer::new(Framing::Flv { chunked }, self.jitter),
            RemuxFormat::Ts => Framing::Ts,
            RemuxFormat::Aac => Framing::Adts(media::audio_remux::AdtsRemux::new()),
            RemuxFormat::Mp3 => Framing::Mp3,
        };
        let framer = Framer::new(framing, self.jitter);
        if chunked {
            framer.with_http_chunks()
        } else {
            framer
        }
    }
}

/// Cheap test before anything is parsed further: could this be a live play (FLV,
/// TS, AAC or MP3)?
pub fn is_candidate(path: &str) -> bool {
    RemuxFormat::of_path(path).is_some()
}

/// Lets a player in if `req` names a live FLV mount: security rules, refer and
/// on_play, the client registry, the stream's consumer.
pub async fn admit(ctx: &Arc<Context>, req: &PlayRequest<'_>) -> Admission {
    if !is_candidate(req.path) {
        return Admission::NotLive;
    }
    let config = ctx.config();
    let Some((vhost, key)) = resolve(&config, req.path, req.query, req.host) else {
        return Admission::NotLive;
    };
    let Some(format) = RemuxFormat::of_path(req.path) else {
        return Admission::NotLive;
    };
    let bounds = crate::stream_url::check("app", &key.app, crate::stream_url::MAX_NAME_LEN)
        .and_then(|_| {
            crate::stream_url::check("stream name", &key.stream, crate::stream_url::MAX_NAME_LEN)
        })
        .and_then(|_| {
            crate::stream_url::check("query string", req.query, crate::stream_url::MAX_PARAM_LEN)
        });
    if let Err(e) = bounds {
        info!("flv play refused for {:?}: {e}", req.peer);
        return Admission::Answer((StatusCode::BAD_REQUEST, e.to_string()).into_response());
    }
    let live = ctx.hub.get(&key).filter(|s| s.is_publishing());
    // An edge pulls on demand: subscribing starts the pull, the body waits for it.
    let edge = vhost.cluster.mode == crate::config::ClusterMode::Remote;
    // An origin of an origin cluster pulls what another origin publishes, like an edge.
    let elsewhere = live.is_none()
        && !edge
        && vhost.cluster.is_cluster_origin()
        && crate::cluster::locate(ctx, &vhost.cluster, &key)
            .await
            .is_some();
    if live.is_none() && !edge && !elsewhere {
        // Not live: a file of that name may still exist (FLV VOD).
        return Admission::NotLive;
    }
    // An audio-only mount of a stream whose audio is another codec would serve nothing
    // (SRS answers 200, writes its header and closes at the first audio frame): say so.
    if let (Some(want), Some(have)) = (
        format.audio_only(),
        live.as_ref()
            .and_then(|s| s.codec_info().1)
            .map(|a| a.codec),
    ) {
        if want != have {
            let why = format!(
                "{key}: the stream's audio is {have}; {} mounts serve {want} audio only",
                format.ext()
            );
            info!("live play refused for {:?}: {why}", req.peer);
            return Admission::Answer((StatusCode::NOT_FOUND, why).into_response());
        }
    }
    let peer_addr = req
        .peer
        .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let tc_url = format!("http://{}{}", req.host.unwrap_or(""), req.path);
    let cid = ctx.new_client_id();
    let hook_req = HookRequest {
        client_id: cid.clone(),
        ip: peer_addr.ip().to_canonical().to_string(),
        vhost: vhost.name.clone(),
        app: key.app.clone(),
        stream: key.stream.clone(),
        param: HookRequest::param_of(req.query),
        tc_url: tc_url.clone(),
        page_url: req.referer.unwrap_or("").to_string(),
    };
    // Same gate as RTMP players: security rules, refer, then on_play.
    if let Err(why) = hooks::admit_play(ctx, vhost, &hook_req, peer_addr.ip().to_canonical()).await
    {
        info!("flv play of {key} refused for {peer_addr}: {}", why.0);
        return Admission::Answer((StatusCode::FORBIDDEN, why.0).into_response());
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
    if req.head {
        return Admission::Answer(
            response_head(format, crossdomain)
                .body(Body::empty())
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        );
    }
    let cid = ctx.new_client_id();
    let registration = ctx.clients.register(&cid, peer_addr);
    registration.client.update(|c| {
        c.kind = ClientKind::FlvPlay;
        c.stream = Some(key.clone());
        c.param = crate::stream_url::mask_param(req.query);
        c.raw_param = req.query.to_string();
        c.tc_url = tc_url;
    });
    let span = tracing::info_span!("flv", cid = %cid);
    span.in_scope(|| {
        info!(
            "{} play ip={peer_addr} stream={key} has_audio={has_audio} has_video={has_video}",
            &format.ext()[1..]
        )
    });
    // TS is muxed once per stream (the feed SRT players read too); the others frame the
    // stream's own ring per player.
    let (consumer, feed) = if format == RemuxFormat::Ts {
        let feed = ctx
            .srt
            .feeds
            .get(ctx, &key, settings, vhost.play.mw_latency);
        let consumer = Consumer::detached(feed.source.clone(), settings.queue_length_ms);
        (consumer, Some(feed))
    } else {
        (ctx.hub.subscribe(&key, settings), None)
    };
    Admission::Play(Box::new(Admitted {
        consumer,
        jitter: vhost.effective_time_jitter(),
        nodelay: vhost.tcp_nodelay,
        has_audio,
        has_video,
        crossdomain,
        span,
        format,
        session: FlvSession {
            ctx: ctx.clone(),
            hooks: vhost.http_hooks.clone(),
            hook_req,
            registration,
            key,
            started: Instant::now(),
            close_reason: "the server ended the play".into(),
            _feed: feed,
        },
    }))
}

fn response_head(format: RemuxFormat, crossdomain: bool) -> axum::http::response::Builder {
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::CONNECTION, "keep-alive");
    if crossdomain {
        resp = resp.header(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    resp
}

/// Serves the request through hyper if it names a live FLV mount; None lets the
/// file server have it. Connections whose first request is a live play take the
/// direct path instead ([`super::direct`]); this one serves the rest (a play after
/// other requests on a kept-alive connection).
pub async fn try_serve(ctx: &Arc<Context>, req: &Parts) -> Option<Response> {
    let play = PlayRequest::of(req)?;
    let admitted = match admit(ctx, &play).await {
        Admission::NotLive => return None,
        Admission::Answer(r) => return Some(r),
        Admission::Play(a) => *a,
    };
    let resp = response_head(admitted.format, admitted.crossdomain);
    let header = admitted.body_start();
    // hyper frames the HTTP chunks: the driver writes the plain body.
    let framer = admitted.framer(false);
    let Admitted {
        consumer,
        span,
        session,
        ..
    } = admitted;
    let (writer, body) = transport::pipe();
    let watcher = writer.handle();
    let client = session.registration.client.clone();
    let driver = PlayerDriver::new(
        Transport::Pipe(writer),
        consumer,
        framer,
        ctx.clone(),
        client.clone(),
    );
    if !header.is_empty() {
        driver.send(header);
    }
    let attached = ctx.delivery.attach(driver);
    // The player's task: what hyper's connection task would otherwise do by
    // polling the body. It ends the pipe (and so the body) when it ends.
    tokio::spawn(
        async move {
            let why = attend(&attached, &client, watcher.reader_gone()).await;
            drop(attached);
            let mut session = session;
            session.close_reason = why;
            drop(session);
        }
        .instrument(span),
    );
    Some(
        resp.body(Body::from_stream(body))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    )
}

/// An HTTP-FLV player's task, whatever its transport: runs until the body is
/// complete (the publish ended), the peer went away (`peer_gone`), a kick, or the
/// transport took nothing for [`super::WRITE_TIMEOUT`]. Returns why it ended, for
/// the close line.
pub async fn attend(
    attached: &Attached,
    client: &crate::stats::Client,
    peer_gone: impl Future<Output = ()>,
) -> String {
    tokio::pin!(peer_gone);
    loop {
        if attached.driver.finished() {
            return "the publish ended".into();
        }
        tokio::select! {
            _ = &mut peer_gone => return "client closed".into(),
            r = attached.driver.attend(super::WRITE_TIMEOUT) => {
                if let Err(e) = r {
                    return format!("i/o: {e}");
                }
            }
            _ = client.kick.cancelled() => return client.kick_reason().to_string(),
        }
    }
}

/// An HTTP-FLV play's bookkeeping, whichever path delivers it: its end is logged,
/// its stream released and on_stop called when this is dropped.
pub struct FlvSession {
    ctx: Arc<Context>,
    hooks: HttpHooksConfig,
    hook_req: HookRequest,
    pub registration: ClientGuard,
    key: StreamKey,
    started: Instant,
    /// Why the play ended, for the close line (set by the player's task).
    pub close_reason: String,
    /// A `.ts` player's stream muxed once (`srt::feed`), alive while a player holds it.
    _feed: Option<Arc<crate::srt::feed::TsFeed>>,
}

impl FlvSession {
    pub fn count(&self, n: usize) {
        self.registration.client.add_send(n as u64);
        self.ctx
            .counters
            .bytes_out
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for FlvSession {
    fn drop(&mut self) {
        let c = &self.registration.client;
        info!(
            "close flv player ip={} url={} duration={:.1}s send={}: {}",
            c.peer,
            self.key,
            self.started.elapsed().as_secs_f64(),
            c.send_bytes.load(std::sync::atomic::Ordering::Relaxed),
            self.close_reason
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
