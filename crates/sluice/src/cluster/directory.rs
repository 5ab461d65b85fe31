//! The shared stream directory in Redis (a sluice extension, `cluster { directory
//! redis://HOST:PORT/DB; }`): which origin publishes which stream.
//!
//! Each origin registers the streams published on it (`SET sluice:stream:VHOST/APP/STREAM
//! "OWNER|RTMP|API" PX ttl`), renews them every third of the TTL and deletes them on
//! unpublish, so a dead origin's entries leave within the TTL. Claims are atomic (one Lua
//! script: set when absent or already ours), which is how a second publisher of a stream on
//! another origin is refused cluster-wide. Lookups (by origins and edges) remember what they
//! found, so that while Redis is down a node keeps serving the streams it knows; the renewal
//! sweep re-registers everything when Redis returns.
//!
//! Every Redis call runs under [`CALL_TIMEOUT`]; failures are counted (`/metrics`) and
//! logged at WARN at most once per [`WARN_EVERY`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tracing::{info, warn};

use crate::context::Context;
use crate::hub::{HubEvent, StreamKey};
use crate::service::{HubFollower, Service, ServiceFuture, Shutdown};

/// Bound on every Redis command (connect included): a directory that does not answer must
/// not hold a publisher's or player's admission.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(800);
/// At most one WARN line per this while Redis keeps failing.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Cached lookups older than this are not used, even while Redis is down.
const CACHE_MAX_AGE: Duration = Duration::from_secs(3600);
/// Most cached lookups kept (a bound, not a tuning knob).
const CACHE_MAX: usize = 10_000;

const KEY_PREFIX: &str = "sluice:stream:";

/// Set the key when it is absent or ours (same owner before the first `|`); else return
/// the other owner's value.
const CLAIM: &str = r"
local v = redis.call('GET', KEYS[1])
if (not v) or string.sub(v, 1, string.len(ARGV[3]) + 1) == ARGV[3] .. '|' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return v
";

/// Delete the key only when it is ours.
const RELEASE: &str = r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// One directory entry: who publishes a stream and where to pull it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The owner's identity: its advertised RTMP address (stable across restarts).
    pub owner: String,
    /// `HOST:PORT` of its RTMP service.
    pub rtmp: String,
    /// `HOST:PORT` of its HTTP API.
    pub api: String,
}

impl Entry {
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.owner, self.rtmp, self.api)
    }

    pub fn decode(v: &str) -> Option<Entry> {
        let mut it = v.splitn(3, '|');
        let owner = it.next()?.to_string();
        let rtmp = it.next()?.to_string();
        let api = it.next().unwrap_or("").to_string();
        if owner.is_empty() || rtmp.is_empty() {
            return None;
        }
        Some(Entry { owner, rtmp, api })
    }
}

/// The Redis key of a stream.
pub fn key_of(key: &StreamKey) -> String {
    format!("{KEY_PREFIX}{}/{}/{}", key.vhost, key.app, key.stream)
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Ours,
    Other(Entry),
}

/// The directory client of one server, a field of its [`Context`].
#[derive(Default)]
pub struct Directory {
    conns: tokio::sync::Mutex<HashMap<String, ConnectionManager>>,
    /// Streams this node registered, with the directory URL.
    held: Mutex<HashMap<StreamKey, String>>,
    /// Last lookups that found an owner, for when Redis is down.
    cache: Mutex<HashMap<StreamKey, (Entry, Instant)>>,
    pub errors: AtomicU64,
    pub lookups: AtomicU64,
    pub registrations: AtomicU64,
    pub refusals: AtomicU64,
    /// The last call failed (for the "recovered" log line).
    down: AtomicBool,
    last_warn: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("held", &self.held_count())
            .field("errors", &self.errors.load(Ordering::Relaxed))
            .finish()
    }
}

impl Directory {
    pub fn held_count(&self) -> usize {
        crate::util::lock(&self.held).len()
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn failed(&self, what: &str, e: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.down.store(true, Ordering::Relaxed);
        let mut last = crate::util::lock(&self.last_warn);
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            warn!("directory: {what}: {e} (serving what this node knows; retrying)");
        }
    }

    fn succeeded(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            info!("directory: Redis answers again");
        }
    }

    async fn conn(&self, url: &str) -> Result<ConnectionManager, String> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(url) {
            return Ok(c.clone());
        }
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let c = tokio::time::timeout(
            CALL_TIMEOUT,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
        conns.insert(url.to_string(), c.clone());
        Ok(c)
    }

    async fn call<T: redis::FromRedisValue>(
        &self,
        url: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, String> {
        let mut c = self.conn(url).await?;
        let r = tokio::time::timeout(CALL_TIMEOUT, cmd.query_async::<T>(&mut c))
            .await
            .map_err(|_| format!("no answer within {} ms", CALL_TIMEOUT.as_millis()))?
            .map_err(|e| e.to_string());
        if r.is_ok() {
            self.succeeded();
        }
        r
    }

    /// Registers (or renews) `key` as ours, unless another owner holds it.
    pub async fn claim(
        &self,
        url: &str,
        key: &StreamKey,
        me: &Entry,
        ttl: Duration,
    ) -> Result<Claim, String> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CLAIM)
            .arg(1)
            .arg(key_of(key))
            .arg(me.encode())
            .arg(ttl.as_millis() as u64)
            .arg(&me.owner);
        match self.call::<redis::Value>(url, &cmd).await {
            Ok(redis::Value::Int(1)) => {
                self.registrations.fetch_add(1, Ordering::Relaxed);
                crate::util::lock(&self.held).insert(key.clone(), url.to_string());
                Ok(Claim::Ours)
            }
            Ok(v) => {
                let other = redis::from_redis_value::<String>(v)
                    .ok()
                    .and_then(|s| Entry::decode(&s))
                    .ok_or_else(|| "unexpected reply to the claim".to_string())?;
                Ok(Claim::Other(other))
            }
            Err(e) => {
                self.failed("register", &e);
                Err(e)
            }
        }
    }

    /// Deletes our entry of `key` (not another owner's).
    pub async fn release(&self, key: &StreamKey, me: &Entry) {
        let Some(url) = crate::util::lock(&self.held).remove(key) else {
            return;
        };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RELEASE).arg(1).arg(key_of(key)).arg(&me.owner);
        if let Err(e) = self.call::<i64>(&url, &cmd).await {
            self.failed("unregister", &e);
        }
    }

    /// Who publishes `key`: Redis first, the last answer seen while Redis is down.
    pub async fn lookup(&self, url: &str, key: &StreamKey) -> Option<Entry> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let mut cmd = redis::cmd("GET");
        cmd.arg(key_of(key));
        match self.call::<Option<String>>(url, &cmd).await {
            Ok(v) => {
                let found = v.as_deref().and_then(Entry::decode);
                let mut cache = crate::util::lock(&self.cache);
                match &found {
                    Some(e) => {
                        if cache.len() >= CACHE_MAX {
                            cache.retain(|_, (_, t)| t.elapsed() < CACHE_MAX_AGE / 60);
                        }
                        if cache.len() < CACHE_MAX {
                            cache.insert(key.clone(), (e.clone(), Instant::now()));
                        }
                    }
                    None => {
                        cache.remove(key);
                    }
                }
                found
            }
            Err(e) => {
                self.failed("lookup", &e);
                crate::util::lock(&self.cache)
                    .get(key)
                    .filter(|(_, t)| t.elapsed() < CACHE_MAX_AGE)
                    .map(|(e, _)| e.clone())
            }
        }
    }

    fn held(&self) -> Vec<(StreamKey, String)> {
        crate::util::lock(&self.held)
            .iter()
            .map(|(k, u)| (k.clone(), u.clone()))
            .collect()
    }
}

/// This node's entry for a vhost's streams: its advertised RTMP address (`advertise`, else
/// the RTMP listen address, its host name when that is a wildcard) and API address.
pub fn me(ctx: &Context, cluster: &crate::config::ClusterConfig) -> Entry {
    let config = ctx.config();
    let listen = config.listen.first().copied();
    let port = listen.map_or(1935, |a| a.port());
    let host = match listen {
        Some(a) if !a.ip().is_unspecified() => a.ip().to_string(),
        _ => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into()),
    };
    let rtmp = cluster
        .advertise
        .clone()
        .unwrap_or_else(|| format!("{host}:{port}"));
    let api_host = rtmp
        .rsplit_once(':')
        .map_or(rtmp.as_str(), |(h, _)| h)
        .to_string();
    Entry {
        owner: rtmp.clone(),
        rtmp,
        api: format!("{api_host}:{}", config.http_api.listen.port()),
    }
}

/// Whether a publisher is a local one (not an edge pull, which must not be registered).
fn is_local_publisher(client_id: &str) -> bool {
    !client_id.starts_with(crate::edge::PULL_ID_PREFIX)
}

/// Claims a stream for a publisher being admitted: `Err` names the origin that holds it.
/// Redis unreachable: the publish goes on (each node keeps serving what it knows).
pub async fn admit(
    ctx: &Context,
    vhost: &crate::config::VhostConfig,
    key: &StreamKey,
) -> Result<(), String> {
    let c = &vhost.cluster;
    let Some(url) = c.directory.as_deref() else {
        return Ok(());
    };
    if c.is_edge() {
        return Ok(());
    }
    let me = me(ctx, c);
    match ctx
        .directory
        .claim(url, key, &me, Duration::from_millis(c.directory_ttl_ms))
        .await
    {
        Ok(Claim::Ours) | Err(_) => Ok(()),
        Ok(Claim::Other(o)) => {
            ctx.directory.refusals.fetch_add(1, Ordering::Relaxed);
            Err(format!(
                "stream {key} is already published on origin {} (directory)",
                o.rtmp
            ))
        }
    }
}

/// The directory service: registers what is published here, renews it every third of the
/// TTL (which also re-registers everything after Redis comes back), deletes it on
/// unpublish.
pub struct DirectoryService;

impl Service for DirectoryService {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, mut shutdown: Shutdown) -> ServiceFuture {
        let mut follower = HubFollower::new("directory", &ctx);
        Box::pin(async move {
            let mut tick = tokio::time::interval(renew_every(&ctx));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    ev = follower.next(&mut shutdown) => match ev {
                        None => break,
                        Some(HubEvent::Published(s)) => {
                            if let Some(p) = s.publisher() {
                                if is_local_publisher(&p.client_id) {
                                    register(&ctx, &s.key).await;
                                }
                            }
                        }
                        Some(HubEvent::Unpublished(s)) => unregister(&ctx, &s.key).await,
                        Some(HubEvent::Reloaded | HubEvent::Resync) => sweep(&ctx).await,
                        Some(_) => {}
                    },
                    _ = tick.tick() => {
                        sweep(&ctx).await;
                        let every = renew_every(&ctx);
                        if every != tick.period() {
                            tick = tokio::time::interval(every);
                        }
                    }
                }
            }
            // Leave the directory at once on a clean stop, so that players find the
            // stream's next origin without waiting for the TTL.
            for (key, _) in ctx.directory.held() {
                unregister(&ctx, &key).await;
            }
        })
    }
}

/// A third of the shortest TTL of any vhost with a directory (SRS-style 10 s → 3.3 s).
fn renew_every(ctx: &Context) -> Duration {
    let config = ctx.config();
    let ms = config
        .vhosts
        .iter()
        .filter(|v| v.cluster.directory.is_some())
        .map(|v| v.cluster.directory_ttl_ms)
        .min()
        .unwrap_or(crate::config::DEFAULT_DIRECTORY_TTL_MS);
    Duration::from_millis((ms / 3).max(100))
}

async fn register(ctx: &Context, key: &StreamKey) {
    let config = ctx.config();
    let Some(v) = config.vhost(&key.vhost) else {
        return;
    };
    let Some(url) = v.cluster.directory.as_deref() else {
        return;
    };
    if v.cluster.is_edge() {
        return;
    }
    let me = me(ctx, &v.cluster);
    let ttl = Duration::from_millis(v.cluster.directory_ttl_ms);
    if let Ok(Claim::Other(o)) = ctx.directory.claim(url, key, &me, ttl).await {
        // Two publishers while Redis was away: both keep publishing; players are sent to
        // the registered one. Logged so the operator can stop the other.
        let mut last = crate::util::lock(&ctx.directory.last_warn);
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            warn!(
                "directory: {key} is published here and registered by origin {}",
                o.rtmp
            );
        }
    }
}

async fn unregister(ctx: &Context, key: &StreamKey) {
    let config = ctx.config();
    let cluster = config
        .vhost(&key.vhost)
        .map(|v| v.cluster.clone())
        .unwrap_or_default();
    ctx.directory.release(key, &me(ctx, &cluster)).await;
}

/// Renews every local publish in a vhost with a directory; releases what we hold but no
/// longer publish.
async fn sweep(ctx: &Context) {
    for s in ctx.hub.sources() {
        if s.publisher()
            .is_some_and(|p| is_local_publisher(&p.client_id))
        {
            register(ctx, &s.key).await;
        }
    }
    for (key, _) in ctx.directory.held() {
        let live = ctx
            .hub
            .get(&key)
            .and_then(|s| s.publisher())
            .is_some_and(|p| is_local_publisher(&p.client_id));
        if !live {
            unregister(ctx, &key).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let e = Entry {
            owner: "10.0.0.1:1935".into(),
            rtmp: "10.0.0.1:1935".into(),
            api: "10.0.0.1:1985".into(),
        };
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode(""), None);
        assert_eq!(Entry::decode("|x|y"), None);
        assert_eq!(
            key_of(&StreamKey {
                vhost: "v".into(),
                app: "live".into(),
                stream: "s".into()
            }),
            "sluice:stream:v/live/s"
        );
    }
}
