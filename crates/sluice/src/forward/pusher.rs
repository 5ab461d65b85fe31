//! One outgoing RTMP publish of a local stream (a forward destination, or an edge pushing
//! its publisher to the origin): a consumer of the Source like any player, so a slow or
//! dead upstream is skipped forward by the hub and never slows the local stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtmp::client::{Client, ClientError, ClientOptions};
use serde::Serialize;
use tracing::{info, warn};

use super::relay::{
    media_kind, settings_of, MAX_BACKOFF, MIN_BACKOFF, SEND_TIMEOUT, STABLE_AFTER, UPSTREAM_TIMEOUT,
};
use crate::config::TimeJitter;
use crate::context::Context;
use crate::hub::jitter::Jitter;
use crate::hub::{FrameKind, Item, Source};
use crate::service::Shutdown;

/// Longest an idle push waits before flushing anyway, which also notices a peer that
/// closed the connection while the stream was quiet.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What the API shows about one push.
#[derive(Debug)]
pub struct PushState {
    /// `forward` or `edge-push`.
    pub role: &'static str,
    pub stream: String,
    pub source_id: String,
    /// Upstream URLs in failover order.
    pub urls: Vec<String>,
    /// The local publish this push carries (a republish gets its own push).
    pub publisher_id: String,
    pub created: SystemTime,
    pub errors: AtomicU64,
    pub bytes: AtomicU64,
    pub frames: AtomicU64,
    pub connects: AtomicU64,
    live: Mutex<Live>,
}

#[derive(Debug, Default, Clone)]
struct Live {
    url: String,
    connected_since: Option<SystemTime>,
    last_error: String,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl PushState {
    pub fn new(
        role: &'static str,
        source: &Source,
        publisher_id: String,
        urls: Vec<String>,
    ) -> PushState {
        PushState {
            role,
            stream: source.key.to_string(),
            source_id: source.id.clone(),
            urls,
            publisher_id,
            created: SystemTime::now(),
            errors: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            live: Mutex::new(Live::default()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        crate::util::lock(&self.live)
    }

    pub fn status(&self) -> PushStatus {
        let live = self.live().clone();
        PushStatus {
            role: self.role,
            stream: self.stream.clone(),
            source_id: self.source_id.clone(),
            urls: self.urls.clone(),
            url: live.url,
            connected: live.connected_since.is_some(),
            connected_since: live.connected_since.map(unix_ms),
            created: unix_ms(self.created),
            connects: self.connects.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: live.last_error,
            frames: self.frames.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// One push as the API shows it (times in UNIX ms).
#[derive(Debug, Clone, Serialize)]
pub struct PushStatus {
    pub role: &'static str,
    pub stream: String,
    pub source_id: String,
    pub urls: Vec<String>,
    /// The upstream in use (or last tried).
    pub url: String,
    pub connected: bool,
    pub connected_since: Option<u64>,
    pub created: u64,
    pub connects: u64,
    pub errors: u64,
    pub last_error: String,
    pub frames: u64,
    pub bytes: u64,
}

/// Why a connection to an upstream failed; the push tries the next one.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot publish: {0}")]
    Connect(ClientError),
    #[error("{0}")]
    Send(ClientError),
    #[error("upstream closed the connection")]
    Closed,
    #[error("upstream accepts nothing")]
    Stalled,
}

/// Why one connection ended.
enum Ended {
    /// The local publish is over: stop for good.
    Unpublished,
    /// The server stops: the connection was closed, stop for good.
    Stopped,
    Failed(PushError),
}

/// Pushes `source` to `state.urls` (the first that works, failing over in order) for as long
/// as the publish of `publisher_id` lasts, reconnecting with back-off, until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    source: Arc<Source>,
    publisher_id: String,
    state: Arc<PushState>,
    mut shutdown: Shutdown,
) {
    if state.urls.is_empty() {
        return;
    }
    let mut idx = 0usize;
    let mut backoff = MIN_BACKOFF;
    loop {
        if !same_publish(&source, &publisher_id) {
            break;
        }
        let Some(url) = state.urls.get(idx).cloned() else {
            break;
        };
        state.live().url = url.clone();
        let started = Instant::now();
        match push_once(&ctx, &source, &publisher_id, &url, &state, &mut shutdown).await {
            Ended::Unpublished => {
                info!(
                    "{} {} to {url}: local stream ended",
                    state.role, state.stream
                );
                break;
            }
            Ended::Stopped => {
                info!(
                    "{} {} to {url}: server stopping, connection closed",
                    state.role, state.stream
                );
                break;
            }
            Ended::Failed(e) => {
                state.errors.fetch_add(1, Ordering::Relaxed);
                warn!("{} {} to {url}: {e}", state.role, state.stream);
                let mut live = state.live();
                live.last_error = e.to_string();
                live.connected_since = None;
            }
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff = MIN_BACKOFF;
        }
        idx = (idx + 1) % state.urls.len();
        // Only a full round of failures waits: the next upstream is tried at once.
        if idx == 0 || state.urls.len() == 1 {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.requested() => break,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    state.live().connected_since = None;
    // Our consumer is gone: let the hub forget the source if we were its last user.
    ctx.hub.release(&source.key);
}

fn same_publish(source: &Source, publisher_id: &str) -> bool {
    source
        .publisher()
        .is_some_and(|p| p.client_id == publisher_id)
}

async fn push_once(
    ctx: &Arc<Context>,
    source: &Arc<Source>,
    publisher_id: &str,
    url: &str,
    state: &PushState,
    shutdown: &mut Shutdown,
) -> Ended {
    let options = ClientOptions {
        timeout: UPSTREAM_TIMEOUT,
        tls: crate::tls::client_config_for(url),
        ..ClientOptions::default()
    };
    let connect = async { Client::connect_with(url, options).await?.publish().await };
    let connected = tokio::select! {
        c = connect => c,
        _ = shutdown.requested() => return Ended::Stopped,
    };
    let mut publisher = match connected {
        Ok(p) => p,
        Err(e) => return Ended::Failed(PushError::Connect(e)),
    };
    state.connects.fetch_add(1, Ordering::Relaxed);
    state.live().connected_since = Some(SystemTime::now());
    info!("{} {} to {url}: publishing", state.role, state.stream);
    let config = ctx.config();
    let settings =
        config
            .vhost(&source.key.vhost)
            .map(settings_of)
            .unwrap_or(crate::hub::SourceSettings {
                gop_cache: true,
                queue_length_ms: 10_000,
            });
    if !same_publish(source, publisher_id) {
        let _ = publisher.close().await;
        return Ended::Unpublished;
    }
    // A fresh consumer per connection starts with metadata, sequence headers and the
    // cached GOP: the upstream gets a decodable stream from its first frame.
    let mut consumer = ctx.hub.subscribe(&source.key, settings);
    let mut jitter = Jitter::new(TimeJitter::Full);
    let mut items = Vec::new();
    loop {
        items.clear();
        if let Some(s) = consumer.fetch(&mut items) {
            warn!(
                "{} {} to {url}: upstream fell {} ms behind, skipped {} entries",
                state.role, state.stream, s.lag_ms, s.entries
            );
        }
        if items.is_empty() {
            tokio::select! {
                _ = consumer.changed() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                // Only once nothing is left to send: the upstream gets what we had.
                _ = shutdown.requested() => {
                    let _ = tokio::time::timeout(SEND_TIMEOUT, publisher.close()).await;
                    return Ended::Stopped;
                }
            }
            if let Err(e) = flush(&mut publisher).await {
                return Ended::Failed(e);
            }
            continue;
        }
        let atc = consumer.source().atc();
        for item in items.drain(..) {
            match item {
                Item::Frame(f) => {
                    // Under ATC the upstream gets the absolute time, as a player would.
                    let ts = if atc {
                        f.timestamp
                    } else {
                        jitter.correct(f.timestamp, f.kind != FrameKind::Script)
                    } as u32;
                    state.frames.fetch_add(1, Ordering::Relaxed);
                    state
                        .bytes
                        .fetch_add(f.payload.len() as u64, Ordering::Relaxed);
                    let send = publisher.send(media_kind(f.kind), ts, f.payload);
                    match tokio::time::timeout(SEND_TIMEOUT, send).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Ended::Failed(PushError::Send(e)),
                        Err(_) => return Ended::Failed(PushError::Stalled),
                    }
                }
                Item::Unpublished => {
                    let _ = tokio::time::timeout(SEND_TIMEOUT, publisher.close()).await;
                    return Ended::Unpublished;
                }
                // Another publish of the stream: its own push takes over.
                Item::Published if !same_publish(source, publisher_id) => {
                    let _ = tokio::time::timeout(SEND_TIMEOUT, publisher.close()).await;
                    return Ended::Unpublished;
                }
                Item::Published => {}
            }
        }
        if let Err(e) = flush(&mut publisher).await {
            return Ended::Failed(e);
        }
    }
}

async fn flush(publisher: &mut rtmp::client::Publisher) -> Result<(), PushError> {
    match tokio::time::timeout(SEND_TIMEOUT, publisher.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(ClientError::Closed(_))) => Err(PushError::Closed),
        Ok(Err(e)) => Err(PushError::Send(e)),
        Err(_) => Err(PushError::Stalled),
    }
}
