//! Edge: a vhost with `cluster { mode remote; origin A B...; }` serves streams it does not
//! have by pulling them from an origin when a player asks (one pull per stream, shared by
//! all the edge's players, stopped [`pull::EDGE_IDLE_STOP`] after the last one leaves), and
//! pushes what is published on it to the origin.
//!
//! Origins are tried in order; when one refuses or dies the next is tried, and the local
//! stream stays published for [`pull::FAILOVER_GRACE`] so players ride through the switch.
//! Edges chain: an edge's origin may itself be an edge.
//!
//! The trigger is the hub's [`HubEvent::Demand`], sent when a consumer subscribes to a
//! source nobody publishes; publishes come as [`HubEvent::Published`].

pub mod pull;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tracing::info;

use crate::context::Context;
use crate::forward::relay::{strip_vhost_param, upstream_url};
use crate::hub::{HubEvent, Source, StreamKey};
use crate::service::{HubFollower, Service, ServiceFuture, Shutdown, Tasks};
use crate::stats::ClientKind;
use pull::{PullState, PullStatus};

/// Client ids of pulls start with this; their publishes are not pushed back upstream.
pub const PULL_ID_PREFIX: &str = "edge-";

/// How long the pull waits for the player that asked to register its parameters (they are
/// set right after it subscribes), for `token_traverse`.
const PARAM_WAIT: Duration = Duration::from_millis(50);

/// The edge's pulls of one server, a field of its [`Context`]: one per stream, for the
/// service (no second pull of a stream) and the API.
#[derive(Debug, Default)]
pub struct Edges {
    pulls: Mutex<HashMap<StreamKey, Arc<PullState>>>,
    /// The edge service's pulls and pushes, which it waits for when it stops.
    tasks: Tasks,
}

impl Edges {
    fn lock(&self) -> MutexGuard<'_, HashMap<StreamKey, Arc<PullState>>> {
        crate::util::lock(&self.pulls)
    }
}

/// What the API shows: every pull of this server.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeStatus {
    pub edges: Vec<PullStatus>,
}

/// Every pull of this server: origin in use, since when, errors, bytes, players.
pub fn status(ctx: &Context) -> EdgeStatus {
    let mut pulls: Vec<PullStatus> = ctx
        .edge
        .lock()
        .iter()
        .map(|(key, state)| {
            let players = ctx
                .hub
                .get(key)
                .map(|s| s.stats.consumers.load(Ordering::Relaxed))
                .unwrap_or(0);
            state.status(players)
        })
        .collect();
    pulls.sort_by(|a, b| a.stream.cmp(&b.stream));
    EdgeStatus { edges: pulls }
}

/// The edge service: pulls streams players ask for, pushes local publishes to the
/// origin. When the server stops, pulls and pushes close their upstream connections
/// before it returns.
pub struct Edge;

impl Service for Edge {
    fn name(&self) -> &'static str {
        "edge"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, mut shutdown: Shutdown) -> ServiceFuture {
        let mut follower = HubFollower::new("edge", &ctx);
        Box::pin(async move {
            while let Some(ev) = follower.next(&mut shutdown).await {
                match ev {
                    HubEvent::Demand(source) => on_demand(&ctx, source),
                    HubEvent::Published(source) => on_publish(&ctx, source),
                    HubEvent::Resync => reconcile(&ctx),
                    _ => {}
                }
            }
            let n = ctx.edge.tasks.len();
            if n > 0 {
                info!("edge: closing {n} pulls and pushes");
            }
            ctx.edge.tasks.finish().await;
            info!("edge: stopped");
        })
    }
}

/// Starts what the events missed: a pull for each stream with players and no
/// publisher, a push to the origin for each local publish without one.
fn reconcile(ctx: &Arc<Context>) {
    for source in ctx.hub.sources() {
        match source.publisher() {
            Some(p) => {
                if !ctx.forward.has_push("edge-push", &source.key, &p.client_id) {
                    on_publish(ctx, source);
                }
            }
            None => {
                if source.stats.consumers.load(Ordering::Relaxed) > 0 {
                    on_demand(ctx, source);
                }
            }
        }
    }
}

fn on_demand(ctx: &Arc<Context>, source: Arc<Source>) {
    if ctx.edge.tasks.is_stopping() {
        return;
    }
    let config = ctx.config();
    let Some(vhost) = config.vhost(&source.key.vhost) else {
        return;
    };
    let cluster_origin = vhost.cluster.is_cluster_origin();
    if !(vhost.cluster.is_edge() || cluster_origin) || source.is_publishing() {
        return;
    }
    let key = source.key.clone();
    let state = {
        let mut map = ctx.edge.lock();
        if map.contains_key(&key) {
            return;
        }
        let state = Arc::new(if cluster_origin || vhost.cluster.directory.is_some() {
            PullState::discovering(&source, vhost.cluster.clone())
        } else {
            PullState::new(&source, vhost.cluster.origins.clone())
        });
        map.insert(key.clone(), state.clone());
        state
    };
    let token_traverse = vhost.cluster.token_traverse;
    // The pull publishes like an encoder would: same merged-write pacing.
    source.apply_pacing(vhost.pacing());
    if cluster_origin {
        info!(
            "origin cluster {}: looking for the stream's origin",
            source.key
        );
    } else {
        info!(
            "edge {}: pulling from {}",
            source.key,
            vhost.cluster.origins.join(" ")
        );
    }
    let task_ctx = ctx.clone();
    let shutdown = ctx.edge.tasks.shutdown();
    ctx.edge.tasks.spawn(async move {
        let ctx = task_ctx;
        let param = if token_traverse {
            tokio::time::sleep(PARAM_WAIT).await;
            client_param(&ctx, &source.key, false)
        } else {
            String::new()
        };
        pull::run(ctx.clone(), source, param, state.clone(), shutdown).await;
        {
            let mut map = ctx.edge.lock();
            // Only our own entry: a new pull may have registered meanwhile.
            if map.get(&key).is_some_and(|s| Arc::ptr_eq(s, &state)) {
                map.remove(&key);
            }
        }
        // A player that came while this pull was stopping found it still registered and
        // was not given one: start it now.
        if let Some(source) = ctx.hub.get(&key) {
            if source.stats.consumers.load(Ordering::Relaxed) > 0 && !source.is_publishing() {
                on_demand(&ctx, source);
            }
        }
    });
}

fn on_publish(ctx: &Arc<Context>, source: Arc<Source>) {
    if ctx.edge.tasks.is_stopping() {
        return;
    }
    let config = ctx.config();
    let Some(vhost) = config.vhost(&source.key.vhost) else {
        return;
    };
    if !vhost.cluster.is_edge() {
        return;
    }
    let Some(publisher) = source.publisher() else {
        return;
    };
    if publisher.client_id.starts_with(PULL_ID_PREFIX) {
        return;
    }
    let param = if vhost.cluster.token_traverse {
        ctx.clients
            .get(&publisher.client_id)
            .map(|c| strip_vhost_param(&c.state().raw_param))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let urls: Vec<String> = vhost
        .cluster
        .origins
        .iter()
        .map(|o| upstream_url(o, &source.key, &param))
        .collect();
    info!(
        "edge {}: pushing to {}",
        source.key,
        vhost.cluster.origins.join(" ")
    );
    crate::forward::spawn_push(
        ctx,
        &ctx.edge.tasks,
        "edge-push",
        source,
        publisher.client_id,
        urls,
    );
}

/// The stream parameters of a client of `key` (the player that caused the pull, or the
/// publisher), unmasked, without the vhost.
fn client_param(ctx: &Context, key: &StreamKey, publisher: bool) -> String {
    ctx.clients
        .list()
        .into_iter()
        .rev()
        .map(|c| c.state())
        .find(|s| {
            s.stream.as_ref() == Some(key)
                && (s.kind.is_publish() == publisher)
                && s.kind != ClientKind::Unknown
        })
        .map(|s| strip_vhost_param(&s.raw_param))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hub::SourceSettings;

    const SETTINGS: SourceSettings = SourceSettings {
        gop_cache: true,
        queue_length_ms: 10_000,
    };

    fn key(stream: &str) -> StreamKey {
        StreamKey {
            vhost: crate::config::DEFAULT_VHOST.into(),
            app: "live".into(),
            stream: stream.into(),
        }
    }

    #[test]
    fn a_player_without_publisher_is_a_demand() {
        let ctx = Context::new(Config::default());
        let mut events = ctx.hub.events();
        let consumer = ctx.hub.subscribe(&key("a"), SETTINGS);
        match events.try_recv() {
            Ok(HubEvent::Demand(s)) => {
                assert_eq!(s.key, key("a"));
                // Counted before the event: the edge sees someone waiting.
                assert_eq!(s.stats.consumers.load(Ordering::Relaxed), 1);
            }
            other => panic!("expected a demand, got {other:?}"),
        }
        drop(consumer);
        let src = ctx.hub.source(&key("b"), SETTINGS);
        src.publish("p").unwrap();
        assert!(matches!(events.try_recv(), Ok(HubEvent::Published(_))));
        let _c = ctx.hub.subscribe(&key("b"), SETTINGS);
        assert!(events.try_recv().is_err(), "a live stream is no demand");
    }

    #[test]
    fn status_lists_only_this_servers_pulls() {
        let ctx = Context::new(Config::default());
        let other = Context::new(Config::default());
        let src = ctx.hub.source(&key("s"), SETTINGS);
        let state = Arc::new(PullState::new(&src, vec!["127.0.0.1:1".into()]));
        ctx.edge.lock().insert(key("s"), state);
        let v = serde_json::to_value(status(&ctx)).unwrap();
        assert_eq!(v["edges"][0]["stream"], "__defaultVhost__/live/s");
        assert_eq!(v["edges"][0]["origins"][0], "127.0.0.1:1");
        assert_eq!(v["edges"][0]["state"], "connecting");
        assert_eq!(status(&other).edges.len(), 0);
    }

    #[tokio::test]
    async fn a_pull_with_no_origin_reachable_stops_when_nobody_waits() {
        // Port 1 on loopback refuses at once: the pull keeps failing over, then stops
        // EDGE_IDLE_STOP after its only player left.
        let ctx = Context::new(Config::default());
        let consumer = ctx.hub.subscribe(&key("gone"), SETTINGS);
        let src = consumer.source().clone();
        let state = Arc::new(PullState::new(&src, vec!["127.0.0.1:1".into()]));
        let task = tokio::spawn(pull::run(
            ctx.clone(),
            src,
            String::new(),
            state.clone(),
            Shutdown::never(),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(state.errors.load(Ordering::Relaxed) >= 1);
        assert!(state.status(1).last_error.contains("cannot play"));
        drop(consumer);
        tokio::time::timeout(pull::EDGE_IDLE_STOP + Duration::from_secs(3), task)
            .await
            .expect("pull did not stop")
            .expect("pull task");
        assert!(ctx.hub.get(&key("gone")).is_none(), "source released");
    }
}
