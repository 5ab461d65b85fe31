//! One edge pull: plays the stream from an origin and publishes it into the local Source,
//! which every player of the edge shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtmp::client::{Client, ClientOptions, MediaKind, Player};
use serde::Serialize;
use tracing::{info, warn};

use crate::context::Context;
use crate::forward::relay::{make_frame, upstream_url, MAX_BACKOFF, MIN_BACKOFF, UPSTREAM_TIMEOUT};
use crate::hub::jitter::Unwrapper;
use crate::hub::Source;
use crate::service::Shutdown;

/// A pull with no consumer left for this long stops (SRS stops its edge ingester when the
/// last player leaves; a short grace keeps a player that reconnects from paying a new pull).
pub const EDGE_IDLE_STOP: Duration = Duration::from_secs(5);
/// After losing its origin the pull keeps the local stream published this long while it
/// tries the next origins, so players ride through a failover without a republish.
pub const FAILOVER_GRACE: Duration = Duration::from_secs(5);
/// Longest wait between rounds of a pull that discovers its origin: a stream that moved
/// (its origin died, the encoder republished elsewhere) is found again quickly.
const DISCOVER_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the pull looks at its consumer count.
const IDLE_CHECK: Duration = Duration::from_millis(250);
/// Gap put between the last frame from one origin and the first from the next, so
/// timestamps keep increasing across a switch.
const SWITCH_GAP_MS: u64 = 40;

/// What the API shows about one pull.
#[derive(Debug)]
pub struct PullState {
    pub stream: String,
    pub source_id: String,
    pub origins: Vec<String>,
    pub created: SystemTime,
    pub errors: AtomicU64,
    pub bytes: AtomicU64,
    pub frames: AtomicU64,
    /// Connections that delivered media; more than one means a failover or a reconnect.
    pub sessions: AtomicU64,
    live: Mutex<Live>,
    /// Origin cluster or directory: each round asks [`crate::cluster::pull_round`] where the
    /// stream is instead of using `origins` alone.
    discover: Option<crate::config::ClusterConfig>,
}

/// Where a pull stands with its current origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPhase {
    /// Dialing the origin (the first thing a pull does).
    #[default]
    Connecting,
    /// Connected, no media yet.
    Waiting,
    /// Media flows.
    Pulling,
}

#[derive(Debug, Default, Clone)]
struct Live {
    origin: String,
    state: PullPhase,
    since: Option<SystemTime>,
    last_error: String,
}

/// One pull as the API shows it (times in UNIX ms).
#[derive(Debug, Clone, Serialize)]
pub struct PullStatus {
    pub stream: String,
    pub source_id: String,
    pub origins: Vec<String>,
    /// The origin in use (or last tried).
    pub origin: String,
    pub state: PullPhase,
    pub since: Option<u64>,
    pub created: u64,
    pub errors: u64,
    pub last_error: String,
    pub sessions: u64,
    pub frames: u64,
    pub bytes: u64,
    pub players: usize,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl PullState {
    pub fn new(source: &Source, origins: Vec<String>) -> PullState {
        PullState {
            stream: source.key.to_string(),
            source_id: source.id.clone(),
            origins,
            created: SystemTime::now(),
            errors: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            live: Mutex::new(Live::default()),
            discover: None,
        }
    }

    /// A pull whose origins are found anew each round (origin cluster, directory).
    pub fn discovering(source: &Source, cluster: crate::config::ClusterConfig) -> PullState {
        let mut s = PullState::new(source, cluster.origins.clone());
        s.discover = Some(cluster);
        s
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        crate::util::lock(&self.live)
    }

    fn set(&self, origin: &str, state: PullPhase) {
        let mut l = self.live();
        l.origin = origin.to_string();
        l.state = state;
        l.since = Some(SystemTime::now());
    }

    fn failed(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.live().last_error = e;
    }

    pub fn status(&self, players: usize) -> PullStatus {
        let l = self.live().clone();
        PullStatus {
            stream: self.stream.clone(),
            source_id: self.source_id.clone(),
            origins: self.origins.clone(),
            origin: l.origin,
            state: l.state,
            since: l.since.map(unix_ms),
            created: unix_ms(self.created),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: l.last_error,
            sessions: self.sessions.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            players,
        }
    }
}

/// The local side of the pull: publishes into the Source on the first media and keeps the
/// timeline continuous across origins.
struct Feed {
    source: Arc<Source>,
    cid: String,
    published: bool,
    /// Origin connection lost at; the local publish ends FAILOVER_GRACE later.
    lost_at: Option<Instant>,
    last_ts: Option<u64>,
}

impl Feed {
    fn unpublish(&mut self) {
        if self.published {
            self.source.unpublish(&self.cid);
            self.published = false;
            self.last_ts = None;
        }
        self.lost_at = None;
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.unpublish();
    }
}

enum Outcome {
    /// No consumer left: the pull is over.
    Idle,
    /// The stream was taken by a local publisher.
    Taken,
    /// The server stops.
    Stopped,
    Failed(String),
}

/// Runs the pull until nobody consumes the stream any more or the server stops
/// (`shutdown`); the origin connection is closed and the local publish ended either way.
pub async fn run(
    ctx: Arc<Context>,
    source: Arc<Source>,
    param: String,
    state: Arc<PullState>,
    mut shutdown: Shutdown,
) {
    let cid = format!("edge-{}", ctx.new_client_id());
    // The edge vhost's ATC policy (`atc`, `atc_auto`) applies to what it pulls: with
    // `atc_auto` the origin's metadata (`bravo_atc`, relayed as is) turns it on.
    if let Some(v) = ctx.config().vhost(&source.key.vhost) {
        source.set_atc_policy(crate::hub::AtcPolicy::of(v));
    }
    let mut feed = Feed {
        source: source.clone(),
        cid,
        published: false,
        lost_at: None,
        last_ts: None,
    };
    let mut idx = 0usize;
    let mut backoff = MIN_BACKOFF;
    let mut idle_since: Option<Instant> = None;
    // SRS's `cluster { vhost X; }`: the vhost asked of the origin.
    let upstream_key = match ctx
        .config()
        .vhost(&source.key.vhost)
        .and_then(|v| v.cluster.upstream_vhost.clone())
    {
        Some(vhost) => crate::hub::StreamKey {
            vhost,
            ..source.key.clone()
        },
        None => source.key.clone(),
    };
    let mut round = state.origins.clone();
    loop {
        if !feed.published && source.is_publishing() {
            info!("edge {}: published locally, pull stopped", state.stream);
            break;
        }
        if idx == 0 {
            if let Some(cluster) = &state.discover {
                round = crate::cluster::pull_round(&ctx, cluster, &source.key).await;
            }
        }
        let n = round.len().max(1);
        let outcome_origin = round.get(idx % n).cloned();
        let Some(origin) = outcome_origin else {
            // Nobody has the stream yet: wait (watching players and shutdown), ask again.
            if state.discover.is_none() {
                break;
            }
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            let end = tokio::select! {
                _ = &mut wait => None,
                _ = wait_idle(&source, &mut idle_since) => Some("no player left"),
                _ = shutdown.requested() => Some("server stopping"),
            };
            if let Some(why) = end {
                info!("edge {}: {why}, pull stopped", state.stream);
                break;
            }
            backoff = (backoff * 2).min(DISCOVER_MAX_BACKOFF);
            if feed.lost_at.is_some_and(|t| t.elapsed() >= FAILOVER_GRACE) {
                feed.unpublish();
            }
            continue;
        };
        let url = upstream_url(&origin, &upstream_key, &param);
        state.set(&origin, PullPhase::Connecting);
        let started = Instant::now();
        let outcome = tokio::select! {
            o = pull_once(&url, &origin, &mut feed, &state) => o,
            _ = wait_idle(&source, &mut idle_since) => Outcome::Idle,
            _ = shutdown.requested() => Outcome::Stopped,
        };
        match outcome {
            Outcome::Idle => {
                info!("edge {}: no player left, pull stopped", state.stream);
                break;
            }
            Outcome::Taken => {
                info!("edge {}: published locally, pull stopped", state.stream);
                break;
            }
            Outcome::Stopped => {
                info!("edge {}: server stopping, pull stopped", state.stream);
                break;
            }
            Outcome::Failed(e) => {
                warn!("edge {} from {origin}: {e}", state.stream);
                state.failed(e);
                if feed.published && feed.lost_at.is_none() {
                    feed.lost_at = Some(Instant::now());
                }
            }
        }
        if started.elapsed() >= FAILOVER_GRACE {
            backoff = MIN_BACKOFF;
        }
        idx = (idx + 1) % n;
        if idx == 0 {
            // A full round failed: wait, but keep watching the players and the grace.
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            let end = tokio::select! {
                _ = &mut wait => None,
                _ = wait_idle(&source, &mut idle_since) => Some("no player left"),
                _ = shutdown.requested() => Some("server stopping"),
            };
            if let Some(why) = end {
                info!("edge {}: {why}, pull stopped", state.stream);
                break;
            }
            let cap = if state.discover.is_some() {
                DISCOVER_MAX_BACKOFF
            } else {
                MAX_BACKOFF
            };
            backoff = (backoff * 2).min(cap);
        }
        if feed.lost_at.is_some_and(|t| t.elapsed() >= FAILOVER_GRACE) {
            info!(
                "edge {}: no origin within {FAILOVER_GRACE:?}, unpublished",
                state.stream
            );
            feed.unpublish();
        }
    }
    drop(feed);
    ctx.hub.release(&source.key);
}

/// Returns once the source has had no consumer for [`EDGE_IDLE_STOP`].
/// `idle_since` survives between calls, so that quick failed attempts do not restart the count.
async fn wait_idle(source: &Source, idle_since: &mut Option<Instant>) {
    loop {
        tokio::time::sleep(IDLE_CHECK).await;
        if source.stats.consumers.load(Ordering::Relaxed) == 0 {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= EDGE_IDLE_STOP {
                return;
            }
        } else {
            *idle_since = None;
        }
    }
}

async fn connect(url: &str) -> Result<Player, rtmp::client::ClientError> {
    let options = ClientOptions {
        timeout: UPSTREAM_TIMEOUT,
        tls: crate::tls::client_config_for(url),
        ..ClientOptions::default()
    };
    // Follows RTMP 302s: an origin of an origin cluster may send us to the one that has it.
    Client::play_url(url, options).await
}

async fn pull_once(url: &str, origin: &str, feed: &mut Feed, state: &PullState) -> Outcome {
    let mut player = match connect(url).await {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(format!("cannot play {url}: {e}")),
    };
    state.set(origin, PullPhase::Waiting);
    info!("edge {}: playing {url}", state.stream);
    let mut unwrapper = Unwrapper::default();
    // Added to this connection's timestamps to continue the local timeline.
    let mut offset: Option<u64> = None;
    let mut first = true;
    loop {
        let grace_left = feed
            .lost_at
            .map(|t| FAILOVER_GRACE.saturating_sub(t.elapsed()));
        let msg = match grace_left {
            Some(left) => match tokio::time::timeout(left, player.recv()).await {
                Ok(r) => r,
                Err(_) => {
                    // This origin is up but has nothing yet: stop pretending to players.
                    feed.unpublish();
                    continue;
                }
            },
            None => player.recv().await,
        };
        let msg = match msg {
            Ok(Some(m)) => m,
            Ok(None) => return Outcome::Failed("stream ended at the origin".into()),
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        if !feed.published {
            if let Err(e) = feed.source.publish(&feed.cid) {
                warn!("edge {}: {e}", state.stream);
                return Outcome::Taken;
            }
            feed.published = true;
            feed.last_ts = None;
        }
        if first {
            first = false;
            feed.lost_at = None;
            state.sessions.fetch_add(1, Ordering::Relaxed);
            state.set(origin, PullPhase::Pulling);
        }
        let ts = unwrapper.unwrap(msg.timestamp);
        let base = *offset.get_or_insert_with(|| {
            feed.last_ts
                .map_or(0, |last| (last + SWITCH_GAP_MS).saturating_sub(ts))
        });
        let ts = ts.saturating_add(base);
        state.frames.fetch_add(1, Ordering::Relaxed);
        state
            .bytes
            .fetch_add(msg.payload.len() as u64, Ordering::Relaxed);
        if let Some(frame) = make_frame(msg.kind, ts, msg.payload) {
            if msg.kind != MediaKind::Metadata {
                feed.last_ts = Some(feed.last_ts.map_or(ts, |l| l.max(ts)));
            }
            feed.source.push(frame);
        }
    }
}
