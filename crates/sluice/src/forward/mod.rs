//! Forward: every stream published on a vhost with `forward { enabled on; }` is republished
//! to each `destination` (and to the URLs its `backend` names), as SRS does for
//! active-standby origins and fan-out.
//!
//! A forward is one more consumer of the Source (see [`pusher`]): it starts with the
//! metadata, sequence headers and cached GOP, and when a destination is slow the hub skips
//! its consumer forward instead of slowing the publisher. It lives as long as the publish.
//!
//! Loops: a destination that forwards the stream back makes a loop, which SRS does not
//! detect either; we only refuse destinations that are our own listen addresses.

pub mod backend;
pub mod pusher;
pub mod relay;

use std::sync::{Arc, Mutex, Weak};

use serde::Serialize;
use tracing::{info, warn};

use crate::context::Context;
use crate::hub::{HubEvent, Source, StreamKey};
use crate::service::{HubFollower, Service, ServiceFuture, Shutdown, Tasks};
use pusher::{PushState, PushStatus};

/// The pushes of one server (forwards, and an edge's pushes to its origin), a field of
/// its [`Context`]: the API lists them, the services look up which publish has one.
#[derive(Debug, Default)]
pub struct Forwards {
    pushes: Mutex<Vec<Weak<PushState>>>,
    /// The forward service's pushes and backend requests, which it waits for at stop.
    tasks: Tasks,
}

impl Forwards {
    fn register(&self, state: &Arc<PushState>) {
        let mut list = crate::util::lock(&self.pushes);
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(state));
    }

    /// The pushes in progress (a push's task holds its state; a finished one is gone).
    fn live(&self) -> Vec<Arc<PushState>> {
        crate::util::lock(&self.pushes)
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Whether a push of `role` runs for the publish of `stream` by `publisher_id`.
    pub fn has_push(&self, role: &str, stream: &StreamKey, publisher_id: &str) -> bool {
        let stream = stream.to_string();
        self.live()
            .iter()
            .any(|p| p.role == role && p.stream == stream && p.publisher_id == publisher_id)
    }
}

/// What the API shows: every forward and edge push in progress.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardStatus {
    pub forwards: Vec<PushStatus>,
}

/// Starts a push of `source` (published by `publisher_id`) to `urls`, tried in order, as
/// one of `tasks` (the calling service's), and shows it in [`status`]. Also used by the
/// edge to push its publishers to the origin.
pub fn spawn_push(
    ctx: &Arc<Context>,
    tasks: &Tasks,
    role: &'static str,
    source: Arc<Source>,
    publisher_id: String,
    urls: Vec<String>,
) {
    let state = Arc::new(PushState::new(role, &source, publisher_id.clone(), urls));
    ctx.forward.register(&state);
    let shutdown = tasks.shutdown();
    tasks.spawn(pusher::run(
        ctx.clone(),
        source,
        publisher_id,
        state,
        shutdown,
    ));
}

/// Every forward and edge push in progress.
pub fn status(ctx: &Context) -> ForwardStatus {
    ForwardStatus {
        forwards: ctx.forward.live().iter().map(|s| s.status()).collect(),
    }
}

/// The forward service: pushes each publish of a forwarding vhost to its destinations.
/// When the server stops, each push closes its upstream connection before it returns.
pub struct Forward;

impl Service for Forward {
    fn name(&self) -> &'static str {
        "forward"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, mut shutdown: Shutdown) -> ServiceFuture {
        let mut follower = HubFollower::new("forward", &ctx);
        Box::pin(async move {
            while let Some(ev) = follower.next(&mut shutdown).await {
                match ev {
                    HubEvent::Published(source) => on_publish(&ctx, source),
                    HubEvent::Resync => reconcile(&ctx),
                    _ => {}
                }
            }
            let n = ctx.forward.tasks.len();
            if n > 0 {
                info!("forward: closing {n} pushes");
            }
            ctx.forward.tasks.finish().await;
            info!("forward: stopped");
        })
    }
}

/// Starts the pushes of each publishing stream that has none for its current publish.
fn reconcile(ctx: &Arc<Context>) {
    for source in ctx.hub.sources() {
        let Some(publisher) = source.publisher() else {
            continue;
        };
        if !ctx
            .forward
            .has_push("forward", &source.key, &publisher.client_id)
        {
            on_publish(ctx, source);
        }
    }
}

fn on_publish(ctx: &Arc<Context>, source: Arc<Source>) {
    if ctx.forward.tasks.is_stopping() {
        return;
    }
    let config = ctx.config();
    let Some(vhost) = config.vhost(&source.key.vhost) else {
        return;
    };
    // An edge sends its publishers to the origin instead (see `crate::edge`).
    if !vhost.forward.enabled || vhost.cluster.is_edge() {
        return;
    }
    let Some(publisher) = source.publisher() else {
        return;
    };
    for dest in &vhost.forward.destinations {
        if relay::is_own_address(dest, &config.listen) {
            warn!(
                "forward {}: destination {dest} is this server; skipped",
                source.key
            );
            continue;
        }
        let url = relay::upstream_url(dest, &source.key, "");
        info!("forward {} to {url}", source.key);
        spawn_push(
            ctx,
            &ctx.forward.tasks,
            "forward",
            source.clone(),
            publisher.client_id.clone(),
            vec![url],
        );
    }
    if let Some(backend_url) = vhost.forward.backend.clone() {
        let task_ctx = ctx.clone();
        ctx.forward.tasks.spawn(async move {
            let ctx = task_ctx;
            let request = on_forward_request(&ctx, &source, &publisher.client_id);
            match backend::ask(&backend_url, &request).await {
                Ok(urls) => {
                    for url in urls {
                        info!("forward {} to {url} (backend)", source.key);
                        spawn_push(
                            &ctx,
                            &ctx.forward.tasks,
                            "forward",
                            source.clone(),
                            publisher.client_id.clone(),
                            vec![url],
                        );
                    }
                }
                Err(e) => warn!("forward {}: backend {backend_url}: {e}", source.key),
            }
        });
    }
}

/// SRS's on_forward body.
fn on_forward_request(ctx: &Arc<Context>, source: &Source, client_id: &str) -> serde_json::Value {
    let client = ctx.clients.get(client_id);
    let state = client.as_ref().map(|c| c.state());
    let param = state
        .as_ref()
        .map(|s| s.raw_param.clone())
        .unwrap_or_default();
    serde_json::json!({
        "action": "on_forward",
        "server_id": format!("sluice-{}", std::process::id()),
        "client_id": client_id,
        "ip": client.as_ref().map(|c| c.peer.ip().to_string()).unwrap_or_default(),
        "vhost": source.key.vhost,
        "app": source.key.app,
        "tcUrl": state.as_ref().map(|s| s.tc_url.clone()).unwrap_or_default(),
        "stream": source.key.stream,
        "param": if param.is_empty() || param.starts_with('?') { param } else { format!("?{param}") },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hub::SourceSettings;

    #[tokio::test]
    async fn a_resync_starts_one_push_per_publish_and_stop_ends_them() {
        // Port 1 on loopback refuses: the push keeps retrying while the publish lasts.
        let config = Config::parse(
            "vhost __defaultVhost__ { forward { enabled on; destination 127.0.0.1:1; } }",
            "t",
        )
        .unwrap();
        let ctx = Context::new(config);
        let other = Context::new(Config::default());
        let key = StreamKey {
            vhost: crate::config::DEFAULT_VHOST.into(),
            app: "live".into(),
            stream: "s".into(),
        };
        let settings = SourceSettings {
            gop_cache: true,
            queue_length_ms: 10_000,
        };
        let src = ctx.hub.source(&key, settings);
        src.publish("p1").unwrap();
        reconcile(&ctx);
        reconcile(&ctx);
        let st = status(&ctx);
        assert_eq!(st.forwards.len(), 1, "{st:?}");
        assert_eq!(st.forwards[0].urls, ["rtmp://127.0.0.1:1/live/s"]);
        assert!(ctx.forward.has_push("forward", &key, "p1"));
        assert!(
            status(&other).forwards.is_empty(),
            "another server's pushes"
        );
        // A new publish of the stream gets its own push.
        src.unpublish("p1");
        src.publish("p2").unwrap();
        reconcile(&ctx);
        assert!(ctx.forward.has_push("forward", &key, "p2"));
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ctx.forward.tasks.finish(),
        )
        .await
        .expect("pushes end at stop");
        assert!(status(&ctx).forwards.is_empty());
        src.unpublish("p2");
    }
}
