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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use crate::context::Context;
use crate::hub::{HubEvent, Source};
use pusher::PushState;

/// Live pushes, for the API. Keyed by the server context so that several servers in one
/// process (tests) do not see each other's.
type Registry = Mutex<HashMap<usize, Vec<Weak<PushState>>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

fn ctx_key(ctx: &Arc<Context>) -> usize {
    Arc::as_ptr(ctx) as usize
}

/// Starts a push of `source` (published by `publisher_id`) to `urls`, tried in order, and
/// shows it in [`status`]. Also used by the edge to push its publishers to the origin.
pub fn spawn_push(
    ctx: &Arc<Context>,
    role: &'static str,
    source: Arc<Source>,
    publisher_id: String,
    urls: Vec<String>,
) {
    let state = Arc::new(PushState::new(role, &source, urls));
    {
        let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(ctx_key(ctx)).or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&state));
    }
    tokio::spawn(pusher::run(ctx.clone(), source, publisher_id, state));
}

/// Every forward and edge push in progress.
pub fn status(ctx: &Arc<Context>) -> serde_json::Value {
    let map = registry().lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<serde_json::Value> = map
        .get(&ctx_key(ctx))
        .into_iter()
        .flatten()
        .filter_map(Weak::upgrade)
        .map(|s| s.json())
        .collect();
    serde_json::json!({ "forwards": list })
}

/// Subscribes to publish events now (so none is missed) and serves them in a task.
pub fn start(ctx: &Arc<Context>) -> tokio::task::JoinHandle<()> {
    let mut events = ctx.hub.events();
    let ctx = ctx.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(HubEvent::Published(source)) => on_publish(&ctx, source),
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => warn!("forward: missed {n} hub events"),
                Err(RecvError::Closed) => break,
            }
        }
    })
}

fn on_publish(ctx: &Arc<Context>, source: Arc<Source>) {
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
            "forward",
            source.clone(),
            publisher.client_id.clone(),
            vec![url],
        );
    }
    if let Some(backend_url) = vhost.forward.backend.clone() {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let request = on_forward_request(&ctx, &source, &publisher.client_id);
            match backend::ask(&backend_url, &request).await {
                Ok(urls) => {
                    for url in urls {
                        info!("forward {} to {url} (backend)", source.key);
                        spawn_push(
                            &ctx,
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
