//! Origin cluster: several origins that behave as one. An origin asked (RTMP play, HTTP-FLV,
//! an edge's pull) for a stream it does not publish finds the origin that does — in the
//! shared [`directory`] (Redis, a sluice extension) and/or by asking its `coworkers` SRS's
//! way ([`coworkers`]) — and then either redirects an RTMP player there (`redirect on;`,
//! SRS's RTMP 302) or pulls the stream itself as an edge would (every other case, so
//! HTTP-FLV players and clients that cannot follow a redirect are served too). The pull is
//! the edge's ([`crate::edge::pull`]), whose rounds ask [`locate`] again, so a stream that
//! moves to another origin (its first origin died) is found there.
//!
//! Loops are impossible by construction: an origin only ever answers (coworker query,
//! directory entry) for streams a local publisher feeds, never for what it pulls.

pub mod coworkers;
pub mod directory;

use std::sync::Mutex;
use std::time::Instant;

use tracing::warn;

use crate::config::{ClusterConfig, ClusterMode};
use crate::context::Context;
use crate::hub::StreamKey;

pub use directory::{Directory, DirectoryService};

/// Where another node publishes `key` (`HOST:PORT` of its RTMP service): the directory
/// first, then the coworkers (origins with `origin_cluster on` only).
pub async fn locate(ctx: &Context, cluster: &ClusterConfig, key: &StreamKey) -> Option<String> {
    if let Some(url) = cluster.directory.as_deref() {
        let me = directory::me(ctx, cluster);
        if let Some(e) = ctx.directory.lookup(url, key).await {
            if e.owner != me.owner {
                return Some(e.rtmp);
            }
        }
    }
    if cluster.mode == ClusterMode::Local && cluster.origin_cluster {
        for c in &cluster.coworkers {
            match coworkers::query(c, key).await {
                Ok(Some(addr)) => return Some(addr),
                Ok(None) => {}
                Err(e) => warn_coworker(&e),
            }
        }
    }
    None
}

/// Where to send an RTMP player of `source` (SRS's RTMP 302): only on an origin with
/// `redirect on`, for a stream not published here that another origin publishes.
pub async fn redirect_for(
    ctx: &Context,
    vhost: &crate::config::VhostConfig,
    source: &crate::hub::Source,
    param: &str,
) -> Option<String> {
    let c = &vhost.cluster;
    if !(c.redirect && c.is_cluster_origin()) || source.is_publishing() {
        return None;
    }
    let to = locate(ctx, c, &source.key).await?;
    let param = crate::forward::relay::strip_vhost_param(param);
    Some(crate::forward::relay::upstream_url(
        &to,
        &source.key,
        &param,
    ))
}

/// The origins a pull of `key` tries this round: what [`locate`] found, then (on an edge)
/// the configured origins in order.
pub async fn pull_round(ctx: &Context, cluster: &ClusterConfig, key: &StreamKey) -> Vec<String> {
    let mut round = Vec::new();
    if let Some(found) = locate(ctx, cluster, key).await {
        round.push(found);
    }
    if cluster.is_edge() {
        for o in &cluster.origins {
            if !round.contains(o) {
                round.push(o.clone());
            }
        }
    }
    round
}

/// One WARN line per 10 s for unreachable coworkers (a dead origin is asked by every player).
fn warn_coworker(e: &str) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = crate::util::lock(&LAST);
    if last.is_none_or(|t| t.elapsed() >= directory::WARN_EVERY) {
        *last = Some(Instant::now());
        warn!("origin cluster: {e}");
    }
}
