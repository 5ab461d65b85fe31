//! One RTMP client, from handshake to close: a publisher feeding a Source, or a
//! player draining a Consumer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::conn::{ConnReader, ConnWriter};
use bytes::BytesMut;
use rtmp::chunk::DecoderLimits;
use rtmp::handshake::ServerHandshake;
use rtmp::server::{ConnectInfo, Event, ServerConfig, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use super::{
    HANDSHAKE_TIMEOUT, IDENTIFY_TIMEOUT, MAX_CHUNK_STREAMS, MAX_COMMAND_SIZE, MAX_MESSAGE_SIZE,
    PENDING_BUDGET, PENDING_FAIR_SHARE, SEND_TIMEOUT,
};
use crate::config::{HttpHooksConfig, TimeJitter, VhostConfig};
use crate::context::Context;
use crate::delivery::{Attached, Framer, Framing, Notices, PlayerDriver, Transport};
use crate::hooks::{self, HookRequest};
use crate::hub::jitter::Unwrapper;
use crate::hub::{make_frame, Consumer, Source, SourceSettings, StreamKey};
use crate::stats::{Client, ClientKind};
use crate::stream_url::{self, mask_param, StreamRequest};
use crate::write_timeout::WriteTimeout;

mod bandcheck;

/// Read buffer growth step: one read takes up to this much.
const READ_CHUNK: usize = 64 * 1024;
/// Players send little (acks, pings): a small read buffer keeps memory per player low.
const PLAYER_READ_CHUNK: usize = 1024;

/// Why a connection ended, for the close log line.
#[derive(Debug, thiserror::Error)]
enum CloseReason {
    #[error("client closed")]
    Eof,
    #[error("{0}")]
    Timeout(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Session(#[from] rtmp::server::SessionError),
    #[error("handshake: {0}")]
    Handshake(#[from] rtmp::handshake::HandshakeError),
    #[error("{0}")]
    Rejected(String),
    #[error("stream closed by client")]
    StreamClosed,
    #[error("{0}")]
    Kicked(crate::stats::KickReason),
    #[error("no socket to write to (internal: written after play started)")]
    WriterGone,
}

/// What the client asked for once connected.
enum Phase {
    Publish {
        stream_id: u32,
        req: StreamRequest,
        vhost: VhostConfig,
    },
    Play {
        stream_id: u32,
        req: StreamRequest,
        vhost: VhostConfig,
        reset: bool,
    },
    /// SRS's bandwidth test (a vhost with `bandcheck` enabled): the connection's only job.
    Bandcheck {
        config: crate::config::BandcheckConfig,
        _running: crate::bandcheck::Running,
    },
}

type Phased<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, CloseReason>> + Send + 'a>>;

/// What a client asks to do with a stream.
#[derive(Debug, Clone, Copy)]
enum Action {
    Publish,
    Play,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Play => "play",
        }
    }

    /// The status SRS sends for a name it cannot serve.
    fn bad_name_code(self) -> &'static str {
        match self {
            Action::Publish => "NetStream.Publish.BadName",
            Action::Play => "NetStream.Play.StreamNotFound",
        }
    }

    /// The status SRS sends when a rule or a hook refuses.
    fn denied_code(self) -> &'static str {
        match self {
            Action::Publish => "NetStream.Publish.Denied",
            Action::Play => "NetStream.Play.Failed",
        }
    }
}

/// What the client turned out to be, for the close log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Unknown,
    Publisher,
    Player,
}

pub struct Connection {
    ctx: Arc<Context>,
    peer: SocketAddr,
    cid: String,
    reader: ConnReader,
    /// Every write fails after SEND_TIMEOUT without progress (no timer per write).
    /// Handed to the player's sink when play starts (see `play`).
    writer: Option<WriteTimeout<ConnWriter>>,
    rbuf: BytesMut,
    session: ServerSession,
    started: Instant,
    role: Role,
    url: String,
    client: Arc<Client>,
    /// Hook state: the vhost's hooks (taken at connect) and what on_close, on_unpublish and
    /// on_stop must report when the connection ends, however it ends.
    /// Boxed: most connections have no hooks, and every byte here is paid per player.
    hooks: Option<Box<HttpHooksConfig>>,
    connected: Option<Box<HookRequest>>,
    published: Option<Box<HookRequest>>,
    playing: Option<Box<HookRequest>>,
    page_url: String,
}

/// What a client may send before it publishes: commands, never near this big. A
/// connection that has not said who it is holds at most this much of us.
const COMMAND_LIMITS: DecoderLimits = DecoderLimits {
    max_message_size: MAX_COMMAND_SIZE,
    max_chunk_streams: MAX_CHUNK_STREAMS,
    max_buffered: 2 * MAX_COMMAND_SIZE as usize,
};
/// What a publisher may send: frames, one large one interleaved with small ones.
const MEDIA_LIMITS: DecoderLimits = DecoderLimits {
    max_message_size: MAX_MESSAGE_SIZE,
    max_chunk_streams: MAX_CHUNK_STREAMS,
    max_buffered: 2 * MAX_MESSAGE_SIZE as usize,
};

/// A publisher's share of the server-wide budget of half-received messages
/// ([`PENDING_BUDGET`]); given back when the publisher ends.
struct PendingShare {
    ctx: Arc<Context>,
    held: usize,
}

impl PendingShare {
    /// Records what the publisher holds now. Past the budget, a publisher holding
    /// more than [`PENDING_FAIR_SHARE`] is the one that goes.
    fn update(&mut self, now: usize) -> Result<(), CloseReason> {
        use std::sync::atomic::Ordering::Relaxed;
        let pending = &self.ctx.counters.pending_message_bytes;
        let total = if now >= self.held {
            pending.fetch_add((now - self.held) as u64, Relaxed) + (now - self.held) as u64
        } else {
            pending.fetch_sub((self.held - now) as u64, Relaxed) - (self.held - now) as u64
        };
        self.held = now;
        if total > PENDING_BUDGET as u64 && now > PENDING_FAIR_SHARE {
            self.ctx.counters.refused_memory.fetch_add(1, Relaxed);
            return Err(CloseReason::Rejected(format!(
                "memory budget: {now} bytes of unfinished messages while publishers hold \
                 {total} in all (budget {PENDING_BUDGET})"
            )));
        }
        Ok(())
    }
}

impl Drop for PendingShare {
    fn drop(&mut self) {
        self.ctx
            .counters
            .pending_message_bytes
            .fetch_sub(self.held as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Unpublishes on every exit path (error, time-out, task cancelled).
struct PublishGuard {
    ctx: Arc<Context>,
    source: Arc<Source>,
    cid: String,
}

impl Drop for PublishGuard {
    fn drop(&mut self) {
        self.source.unpublish(&self.cid);
        let key = self.source.key.clone();
        self.ctx.hub.release(&key);
    }
}

/// A player being fed by the stream's shards; when it ends (whatever the exit
/// path), the stream is told it has one player fewer.
struct PlayGuard {
    feeding: Option<Attached>,
    ctx: Arc<Context>,
    key: StreamKey,
}

impl PlayGuard {
    fn sink(&self) -> Option<&PlayerDriver> {
        self.feeding.as_ref().map(|f| &*f.driver)
    }
}

impl Drop for PlayGuard {
    fn drop(&mut self) {
        // The sink (and its consumer) first, so the release sees the count drop.
        drop(self.feeding.take());
        self.ctx.hub.release(&self.key);
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

impl Connection {
    pub fn new(
        ctx: Arc<Context>,
        conn: crate::conn::Conn,
        peer: SocketAddr,
        cid: String,
        client: Arc<Client>,
    ) -> Connection {
        let crate::conn::Conn { reader, writer } = conn;
        let config = ctx.config();
        let session = ServerSession::new(ServerConfig {
            chunk_size: config.chunk_size,
            limits: COMMAND_LIMITS,
            ..ServerConfig::default()
        });
        Connection {
            ctx,
            peer,
            cid,
            reader,
            writer: Some(WriteTimeout::new(writer, SEND_TIMEOUT)),
            rbuf: BytesMut::with_capacity(PLAYER_READ_CHUNK),
            session,
            started: Instant::now(),
            role: Role::Unknown,
            url: String::new(),
            client,
            hooks: None,
            connected: None,
            published: None,
            playing: None,
            page_url: String::new(),
        }
    }

    /// Not an `async fn`: its argument would be stored twice in the future (once
    /// as captured, once as a local; rust-lang/rust#62958), and a connection is
    /// most of a player's memory.
    #[allow(clippy::manual_async_fn)]
    pub fn run(mut self) -> impl std::future::Future<Output = ()> + Send {
        async move { self.run_inner().await }
    }

    async fn run_inner(&mut self) {
        // A kick (API or shutdown) ends whatever the connection is doing. The
        // token is only polled when the task runs, and a player's task runs only
        // for what its client sends: its sends happen in the stream's shards.
        let client = Arc::clone(&self.client);
        let served = tokio::select! {
            r = self.serve() => r,
            _ = client.kick.cancelled() => Err(CloseReason::Kicked(client.kick_reason())),
        };
        let result = match served {
            Err(_) if self.client.kick.is_cancelled() => {
                Err(CloseReason::Kicked(self.client.kick_reason()))
            }
            r => r,
        };
        let secs = self.started.elapsed().as_secs_f64();
        let role = match self.role {
            Role::Unknown => "client",
            Role::Publisher => "publisher",
            Role::Player => "player",
        };
        let line = format!(
            "close {role} ip={} url={} duration={secs:.1}s recv={} send={}",
            self.peer,
            self.url,
            self.session.bytes_in(),
            self.bytes_out()
        );
        match result {
            Ok(()) | Err(CloseReason::Eof) | Err(CloseReason::StreamClosed) => info!(
                "{line}: {}",
                result
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "done".into())
            ),
            Err(e) => warn!("{line}: {e}"),
        }
        Box::pin(self.end_hooks()).await;
    }

    /// The notification hooks of a connection that ended (after the stream was released, so
    /// the hook server may already see a new publisher of the same stream).
    async fn end_hooks(&mut self) {
        let Some(cfg) = self.hooks.take() else {
            return;
        };
        if let Some(r) = self.published.take() {
            Box::pin(hooks::on_unpublish(&self.ctx, &cfg, &r)).await;
        }
        if let Some(r) = self.playing.take() {
            Box::pin(hooks::on_stop(&self.ctx, &cfg, &r)).await;
        }
        if let Some(r) = self.connected.take() {
            Box::pin(hooks::on_close(
                &self.ctx,
                &cfg,
                &r,
                self.bytes_out(),
                self.session.bytes_in(),
            ))
            .await;
        }
    }

    /// The on_connect hook, sent as SRS 3+ sends it: once the client names its stream
    /// (SRS's `check_vhost` after `identify_client`), so the body carries the stream and
    /// its query (`?token=...`, where token checks live) and the vhost the stream
    /// resolved to. Sent once per connection, before the publish or play checks; the
    /// Err is the refusal to give the client.
    async fn connect_hook(
        &mut self,
        vhost: &VhostConfig,
        hreq: &HookRequest,
    ) -> Result<(), hooks::Refusal> {
        if self.connected.is_some() || !vhost.http_hooks.enabled {
            return Ok(());
        }
        Box::pin(hooks::on_connect(&self.ctx, &vhost.http_hooks, hreq)).await?;
        self.connected = Some(Box::new(hreq.clone()));
        Ok(())
    }

    /// What hooks are told about this client and `req`'s stream.
    fn hook_request(&self, req: &StreamRequest, vhost: &VhostConfig) -> HookRequest {
        HookRequest {
            client_id: self.cid.clone(),
            ip: self.peer.ip().to_canonical().to_string(),
            vhost: vhost.name.clone(),
            app: req.app.clone(),
            stream: req.stream.clone(),
            param: HookRequest::param_of(&req.param),
            tc_url: req.tc_url.clone(),
            page_url: self.page_url.clone(),
        }
    }

    async fn read_some(&mut self) -> Result<(), CloseReason> {
        let chunk = if self.role == Role::Publisher {
            READ_CHUNK
        } else {
            PLAYER_READ_CHUNK
        };
        if self.rbuf.capacity() - self.rbuf.len() < chunk / 4 {
            self.rbuf.reserve(chunk);
        }
        let n = self.reader.read_buf(&mut self.rbuf).await?;
        if n == 0 {
            return Err(CloseReason::Eof);
        }
        self.client.add_recv(n as u64);
        self.ctx
            .counters
            .bytes_in
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), CloseReason> {
        if let Some(out) = self.session.take_output() {
            self.client.add_send(out.len() as u64);
            self.writer
                .as_mut()
                .ok_or(CloseReason::WriterGone)?
                .write_all(&out)
                .await?;
        }
        Ok(())
    }

    async fn handshake(&mut self) -> Result<(), CloseReason> {
        let seed = self.ctx.started.elapsed().as_nanos() as u64 ^ self.peer.port() as u64;
        let epoch = self.ctx.started.elapsed().as_millis() as u32;
        let mut hs = ServerHandshake::new(seed, epoch);
        let mut out = Vec::new();
        loop {
            let done = hs.process(&mut self.rbuf, &mut out)?;
            if !out.is_empty() {
                self.writer
                    .as_mut()
                    .ok_or(CloseReason::WriterGone)?
                    .write_all(&out)
                    .await?;
                self.client.add_send(out.len() as u64);
                out.clear();
            }
            if done {
                return Ok(());
            }
            self.read_some().await?;
        }
    }

    /// Next event from the client, reading as needed.
    async fn next_event(&mut self) -> Result<Event, CloseReason> {
        loop {
            if let Some(ev) = self.session.feed(&mut self.rbuf)? {
                return Ok(ev);
            }
            self.flush().await?;
            self.read_some().await?;
        }
    }

    /// Every phase is boxed and awaited from here, so that the connection's future
    /// holds only the phase it is in: a player's task (what the server has most of)
    /// keeps its connection and a small play loop, not the config and requests its
    /// set-up needed.
    async fn serve(&mut self) -> Result<(), CloseReason> {
        // The phase's config and request go straight into a boxed future: held in
        // a local across the awaits, they would take room in this future for as
        // long as the client plays.
        let next = Self::proceed(Box::pin(self.identify()).await?, self);
        let Some((guard, stream_id)) = next.await? else {
            return Ok(());
        };
        match guard.sink() {
            Some(sink) => self.play_loop(sink, stream_id).await,
            None => Ok(()),
        }
    }

    /// A publisher's whole session, or a player's admission (its play loop is not
    /// boxed: see `serve`).
    fn proceed(phase: Phase, this: &mut Self) -> Phased<'_, Option<(PlayGuard, u32)>> {
        match phase {
            Phase::Publish {
                stream_id,
                req,
                vhost,
            } => Box::pin(async move {
                this.publish(stream_id, req, vhost).await?;
                Ok(None)
            }),
            Phase::Play {
                stream_id,
                req,
                vhost,
                reset,
            } => Box::pin(async move {
                let guard = this.start_play(stream_id, req, vhost, reset).await?;
                Ok(Some((guard, stream_id)))
            }),
            Phase::Bandcheck { config, _running } => Box::pin(async move {
                this.bandcheck(&config).await?;
                drop(_running);
                Ok(None)
            }),
        }
    }

    /// Handshake, connect, and the client's publish or play.
    async fn identify(&mut self) -> Result<Phase, CloseReason> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake())
            .await
            .map_err(|_| {
                CloseReason::Timeout(format!("handshake not done in {HANDSHAKE_TIMEOUT:?}"))
            })??;
        let deadline = tokio::time::Instant::now() + IDENTIFY_TIMEOUT;
        let (connect, vhost, bandcheck) =
            tokio::time::timeout_at(deadline, Box::pin(self.connect()))
                .await
                .map_err(|_| CloseReason::Timeout("no connect in time".into()))??;
        if let Some(running) = bandcheck {
            return Ok(Phase::Bandcheck {
                config: vhost.bandcheck.clone(),
                _running: running,
            });
        }
        loop {
            let ev = tokio::time::timeout_at(deadline, self.next_event())
                .await
                .map_err(|_| {
                    CloseReason::Timeout(format!("no publish or play within {IDENTIFY_TIMEOUT:?}"))
                })??;
            match ev {
                Event::Publish {
                    stream_id, name, ..
                } => {
                    let req = stream_url::parse(&connect.tc_url, &connect.app, &name);
                    let vhost = self.stream_vhost(&req, &vhost);
                    return Ok(Phase::Publish {
                        stream_id,
                        req,
                        vhost,
                    });
                }
                Event::Play {
                    stream_id,
                    name,
                    reset,
                    ..
                } => {
                    let req = stream_url::parse(&connect.tc_url, &connect.app, &name);
                    let vhost = self.stream_vhost(&req, &vhost);
                    return Ok(Phase::Play {
                        stream_id,
                        req,
                        vhost,
                        reset,
                    });
                }
                _ => {}
            }
        }
    }

    /// SRS re-resolves the vhost at publish/play, so `stream?vhost=v` picks `v` even when the
    /// connect named another (or none). A name that resolves to nothing keeps the connect's.
    fn stream_vhost(&mut self, req: &StreamRequest, connected: &VhostConfig) -> VhostConfig {
        let config = self.ctx.config();
        match config.resolve_vhost(&req.vhost) {
            Some(v) if v.name != connected.name => {
                // The hooks that apply are those of the vhost the stream lives on.
                if v.http_hooks.enabled && self.hooks.is_none() {
                    self.hooks = Some(Box::new(v.http_hooks.clone()));
                }
                v.clone()
            }
            _ => connected.clone(),
        }
    }

    /// The connect, accepted or refused; on a vhost with `bandcheck` enabled, the
    /// client's place in the bandwidth test comes with it.
    async fn connect(
        &mut self,
    ) -> Result<(ConnectInfo, VhostConfig, Option<crate::bandcheck::Running>), CloseReason> {
        loop {
            if let Event::Connect(info) = self.next_event().await? {
                let bounds = [
                    ("tcUrl", &info.tc_url),
                    ("app", &info.app),
                    ("pageUrl", &info.page_url),
                    ("swfUrl", &info.swf_url),
                    ("flashVer", &info.flash_ver),
                ]
                .into_iter()
                .try_for_each(|(what, v)| stream_url::check(what, v, stream_url::MAX_URL_LEN));
                if let Err(e) = bounds {
                    self.session.reject_connect(&e.to_string());
                    self.flush().await?;
                    return Err(CloseReason::Rejected(format!("connect refused: {e}")));
                }
                let req = stream_url::parse(&info.tc_url, &info.app, "");
                let config = self.ctx.config();
                let Some(vhost) = config.resolve_vhost(&req.vhost).cloned() else {
                    self.session
                        .reject_connect(&format!("vhost {} is not served here", req.vhost));
                    self.flush().await?;
                    return Err(CloseReason::Rejected(format!(
                        "connect to unknown vhost {} from tcUrl {}",
                        req.vhost, info.tc_url
                    )));
                };
                info!(
                    "connect ip={} tcUrl={} app={} vhost={} flashVer={:?} pageUrl={:?}",
                    self.peer, info.tc_url, req.app, vhost.name, info.flash_ver, info.page_url
                );
                self.page_url = info.page_url.clone();
                if let Some(why) = crate::access::check_refer(&vhost.refer, None, &info.page_url) {
                    self.session.reject_connect(&why);
                    self.flush().await?;
                    return Err(CloseReason::Rejected(format!("connect refused: {why}")));
                }
                // on_connect waits for the stream's name: see `connect_hook`.
                if vhost.http_hooks.enabled {
                    self.hooks = Some(Box::new(vhost.http_hooks.clone()));
                }
                self.client.update(|c| {
                    c.tc_url = info.tc_url.clone();
                    c.page_url = info.page_url.clone();
                    c.swf_url = info.swf_url.clone();
                });
                // SRS: a vhost with bandcheck enabled serves the test only, to a client
                // that gives its key (`rtmp://host/app?key=KEY`).
                let bandcheck = if vhost.bandcheck.enabled {
                    let admitted =
                        if crate::bandcheck::key_matches(&vhost.bandcheck, &info.tc_url, &info.app)
                        {
                            crate::bandcheck::Gate::global().admit(
                                &vhost.name,
                                self.peer.ip().to_canonical(),
                                std::time::Instant::now(),
                                vhost.bandcheck.interval,
                            )
                        } else {
                            Err(crate::bandcheck::Refusal::Key)
                        };
                    match admitted {
                        Ok(running) => Some(running),
                        Err(why) => {
                            self.session.reject_connect(&why.to_string());
                            self.flush().await?;
                            return Err(CloseReason::Rejected(format!("connect refused: {why}")));
                        }
                    }
                } else {
                    None
                };
                self.session.accept_connect();
                self.flush().await?;
                return Ok((info, vhost, bandcheck));
            }
        }
    }

    /// The gate before a publish or a play, the same for both (SRS's order): the
    /// name's bounds, then security rules, refer and the hook. A refusal is sent to
    /// the client with the status SRS uses for that action, and ends the connection.
    async fn admit(
        &mut self,
        action: Action,
        stream_id: u32,
        req: &StreamRequest,
        vhost: &VhostConfig,
        key: &StreamKey,
    ) -> Result<(HookRequest, Arc<Source>), CloseReason> {
        let (code, why) = match Self::bad_name(req) {
            Some(why) => (action.bad_name_code(), why),
            None => {
                // The stream exists before the hooks (as SRS's statistic does), so that
                // they carry its `stream_id`; a refusal releases it. No demand for it
                // yet: an edge pulls only for an admitted player.
                let source = self.ctx.hub.source(key, settings_of(vhost));
                let hreq = self.hook_request(req, vhost);
                let ip = self.peer.ip().to_canonical();
                let admitted = match self.connect_hook(vhost, &hreq).await {
                    Ok(()) => match action {
                        Action::Publish => {
                            Box::pin(hooks::admit_publish(&self.ctx, vhost, &hreq, ip)).await
                        }
                        Action::Play => {
                            Box::pin(hooks::admit_play(&self.ctx, vhost, &hreq, ip)).await
                        }
                    },
                    Err(why) => Err(why),
                };
                match admitted {
                    Ok(()) => return Ok((hreq, source)),
                    Err(why) => {
                        drop(source);
                        self.ctx.hub.release(key);
                        (action.denied_code(), why.0)
                    }
                }
            }
        };
        match action {
            Action::Publish => self.session.reject_publish(stream_id, code, &why),
            Action::Play => self.session.reject_play(stream_id, code, &why),
        }
        self.flush().await?;
        Err(CloseReason::Rejected(format!(
            "{} refused: {why}",
            action.name()
        )))
    }

    /// Why a publish or play names no acceptable stream: an empty name, or one out
    /// of bounds (length, control characters).
    fn bad_name(req: &StreamRequest) -> Option<String> {
        if req.stream.is_empty() || req.app.is_empty() {
            return Some("empty app or stream name".into());
        }
        req.check().err().map(|e| e.to_string())
    }

    fn stream_key(req: &StreamRequest, vhost: &VhostConfig) -> StreamKey {
        StreamKey {
            vhost: vhost.name.clone(),
            app: req.app.clone(),
            stream: req.stream.clone(),
        }
    }

    async fn publish(
        &mut self,
        stream_id: u32,
        req: StreamRequest,
        vhost: VhostConfig,
    ) -> Result<(), CloseReason> {
        let vhost = &vhost;
        self.role = Role::Publisher;
        let key = Self::stream_key(&req, vhost);
        self.url = key.to_string();
        let (hreq, source) = self
            .admit(Action::Publish, stream_id, &req, vhost, &key)
            .await?;
        if self.hooks.is_some() {
            self.published = Some(Box::new(hreq));
        }
        source.apply_pacing(vhost.pacing());
        source.set_atc_policy(crate::hub::AtcPolicy::of(vhost));
        if let Err(e) = source.publish(&self.cid) {
            self.session
                .reject_publish(stream_id, "NetStream.Publish.BadName", &e.to_string());
            self.flush().await?;
            self.ctx.hub.release(&key);
            return Err(CloseReason::Rejected(e.to_string()));
        }
        let _guard = PublishGuard {
            ctx: self.ctx.clone(),
            source: source.clone(),
            cid: self.cid.clone(),
        };
        info!(
            "publish ip={} stream={} param={}",
            self.peer,
            key,
            mask_param(&req.param)
        );
        let kind = if self.session.used_fcpublish() {
            ClientKind::FmlePublish
        } else {
            ClientKind::FlashPublish
        };
        self.client.update(|c| {
            c.kind = kind;
            c.stream = Some(key.clone());
            c.param = mask_param(&req.param);
            c.raw_param = req.param.clone();
        });
        self.session.accept_publish(stream_id);
        self.flush().await?;
        // A publisher sends media: frames up to MAX_MESSAGE_SIZE, within the
        // server-wide budget of what all publishers may hold half-received.
        self.session.set_decoder_limits(MEDIA_LIMITS);
        let mut pending = PendingShare {
            ctx: self.ctx.clone(),
            held: 0,
        };

        let firstpkt = vhost.publish.firstpkt_timeout;
        let normal = vhost.publish.normal_timeout;
        let mut unwrapper = Unwrapper::default();
        let mut got_media = false;
        let mut frames: u64 = 0;
        loop {
            while let Some(ev) = self.session.feed(&mut self.rbuf)? {
                match ev {
                    Event::Media {
                        kind,
                        timestamp,
                        payload,
                        stream_id: sid,
                    } if sid == stream_id || sid == 0 => {
                        got_media = true;
                        if let Some(frame) = make_frame(kind, unwrapper.unwrap(timestamp), payload)
                        {
                            frames += 1;
                            source.push(frame);
                        }
                    }
                    Event::CloseStream { .. } => {
                        info!("unpublish stream={key} frames={frames}");
                        self.flush().await?;
                        return Err(CloseReason::StreamClosed);
                    }
                    _ => {}
                }
            }
            pending.update(self.session.buffered())?;
            self.flush().await?;
            let wait = if got_media { normal } else { firstpkt };
            match tokio::time::timeout(wait, self.read_some()).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(CloseReason::Timeout(format!(
                        "publisher sent nothing for {} ms ({})",
                        wait.as_millis(),
                        if got_media {
                            "normal_timeout"
                        } else {
                            "firstpkt_timeout"
                        }
                    )))
                }
            }
        }
    }

    /// Admits a player and hands it to the stream's shards.
    async fn start_play(
        &mut self,
        stream_id: u32,
        req: StreamRequest,
        vhost: VhostConfig,
        reset: bool,
    ) -> Result<PlayGuard, CloseReason> {
        let vhost = &vhost;
        self.role = Role::Player;
        let key = Self::stream_key(&req, vhost);
        self.url = key.to_string();
        let (hreq, held) = self
            .admit(Action::Play, stream_id, &req, vhost, &key)
            .await?;
        if let Some(url) = crate::cluster::redirect_for(&self.ctx, vhost, &held, &req.param).await {
            // Origin cluster with `redirect on`: SRS's RTMP 302 to the origin that has it.
            drop(held);
            self.ctx.hub.release(&key);
            self.session.redirect(&url);
            self.flush().await?;
            return Err(CloseReason::Rejected(format!("play redirected to {url}")));
        }
        if self.hooks.is_some() {
            self.playing = Some(Box::new(hreq));
        }
        let consumer = self.ctx.hub.subscribe(&key, settings_of(vhost));
        drop(held);
        let source = Arc::clone(consumer.source());
        let publishing = source.is_publishing();
        info!(
            "play ip={} stream={} param={} publishing={}",
            self.peer,
            key,
            mask_param(&req.param),
            publishing
        );
        self.client.update(|c| {
            c.kind = ClientKind::RtmpPlay;
            c.stream = Some(key.clone());
            c.param = mask_param(&req.param);
            c.raw_param = req.param.clone();
        });
        self.session.accept_play(stream_id, &req.stream, reset);
        self.flush().await?;
        if let Some(w) = self.writer.as_ref().filter(|_| !vhost.tcp_nodelay) {
            crate::listen::set_nodelay(w.get_ref().tcp(), false);
        }
        let sink = self.make_sink(consumer, stream_id, vhost.effective_time_jitter())?;
        Ok(PlayGuard {
            feeding: Some(self.ctx.delivery.attach(sink)),
            ctx: self.ctx.clone(),
            key,
        })
    }

    /// Bytes sent, for the close line and on_close (the sink counts into the same
    /// client counter).
    fn bytes_out(&self) -> u64 {
        self.client
            .send_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves the socket's writing side and the consumer into a sink that the
    /// stream's shards feed (see `delivery::shard`).
    fn make_sink(
        &mut self,
        consumer: Consumer,
        stream_id: u32,
        jitter: TimeJitter,
    ) -> Result<PlayerDriver, CloseReason> {
        let mut notice = |code: &str, desc: &str| {
            self.session.status(stream_id, "status", code, desc);
            self.session.take_output().unwrap_or_default()
        };
        let notices = Notices {
            publish: notice("NetStream.Play.PublishNotify", "The stream is published."),
            unpublish: notice(
                "NetStream.Play.UnpublishNotify",
                "The stream is unpublished.",
            ),
        };
        let writer = self.writer.take().ok_or(CloseReason::WriterGone)?;
        Ok(PlayerDriver::new(
            Transport::from_conn(writer.into_inner()),
            consumer,
            Framer::new(
                Framing::rtmp(stream_id, self.session.chunk_size_out(), notices),
                jitter,
            ),
            self.ctx.clone(),
            self.client.clone(),
        ))
    }

    /// The player's task while it plays: it sleeps on its socket and only runs for
    /// what the client sends (pause, close, acks) or when its sink hands it back
    /// (a full socket: it waits for room, bounded by SEND_TIMEOUT, and catches up).
    async fn play_loop(&mut self, sink: &PlayerDriver, stream_id: u32) -> Result<(), CloseReason> {
        loop {
            tokio::select! {
                r = self.read_some() => {
                    r?;
                    while let Some(ev) = self.session.feed(&mut self.rbuf)? {
                        match ev {
                            Event::Pause { pause, .. } => {
                                sink.set_paused(pause);
                                let (code, desc) = if pause {
                                    ("NetStream.Pause.Notify", "Paused stream.")
                                } else {
                                    ("NetStream.Unpause.Notify", "Unpaused stream.")
                                };
                                self.session.status(stream_id, "status", code, desc);
                            }
                            Event::CloseStream { .. } => return Err(CloseReason::StreamClosed),
                            _ => {}
                        }
                    }
                    if let Some(out) = self.session.take_output() {
                        sink.send(out);
                    }
                }
                r = sink.attend(SEND_TIMEOUT) => r?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// What every player costs in memory is mostly its task's future: this keeps
    /// the boxing of the set-up phases (see `serve` and `run`) from being undone
    /// by accident. The bound has room for small changes, not for a phase inlined.
    #[tokio::test]
    async fn a_playing_connection_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let ctx = crate::context::Context::new(crate::config::Config::default());
        let reg = ctx.clients.register("c1", addr);
        let conn = super::Connection::new(
            ctx.clone(),
            crate::conn::Conn::plain(socket),
            addr,
            "c1".into(),
            reg.client.clone(),
        );
        let conn_size = std::mem::size_of_val(&conn);
        let run = conn.run();
        let run_size = std::mem::size_of_val(&run);
        assert!(conn_size <= 1_536, "Connection is {conn_size} bytes");
        assert!(
            run_size <= 2_560,
            "the connection's future is {run_size} bytes"
        );
        assert!(std::mem::size_of::<super::PlayerDriver>() <= 512);
    }
}
