//! Delivery: the one path from a stream's ring to its live players' sockets.
//!
//! ```text
//! publisher ─▶ Source::push ─▶ ring ──(watch, paced by the pacer)──▶ shard task
//!                                                                      │ for each player:
//!                              Framer (sans-IO: RTMP chunks / FLV tags / TS / ADTS / MP3 / HTTP chunks)
//!                                                                      │ one batch
//!                              PlayerDriver (one vectored write, backpressure, counters)
//!                                                                      ▼
//!                                              Transport (TCP socket, or a pipe into hyper)
//! ```
//!
//! - [`framing`] turns ring entries into a batch of write buffers; no I/O, unit-tested.
//! - [`driver`] owns a player's writing side: batching, what the socket refused, the
//!   hand-over to the player's own task, byte accounting.
//! - [`shard`] groups a stream's players so that one task per 128 players feeds them.
//! - [`pacer`] is one timer for every stream with merged writes (`mw_latency`).
//! - [`transport`] is where bytes go.
//!
//! This module's [`Delivery`] owns the shard and pacer tasks (nothing in the hub
//! spawns anything); [`DeliveryService`] runs the pacer and, at shutdown, ends the
//! shards and waits for them.

pub mod driver;
pub mod framing;
mod pacer;
pub mod shard;
pub mod transport;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::task::TaskTracker;

pub use driver::PlayerDriver;
pub use framing::{Framer, Framing, Notices};
pub use transport::Transport;

use crate::context::Context;
use crate::service::{Service, ServiceFuture, Shutdown};
use shard::{Sink, StreamShards};

/// How often players of streams nobody publishes are looked at.
const UNPUBLISHED_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// The live players of every stream, by source id, and the tasks that feed them.
#[derive(Default)]
pub struct Delivery {
    streams: Mutex<HashMap<String, StreamShards>>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("streams", &self.lock().len())
            .finish()
    }
}

impl Delivery {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, StreamShards>> {
        // Nothing panics while the map is locked; a poisoned map is still a valid map.
        crate::util::lock(&self.streams)
    }

    /// Starts feeding a player from its stream's shards; it is fed for as long as
    /// the returned guard lives. Must be called inside the runtime.
    pub fn attach(&self, driver: PlayerDriver) -> Attached {
        let driver = Arc::new(driver);
        let sink: Arc<dyn Sink> = driver.clone();
        let source = driver.source();
        let new_shard = self
            .lock()
            .entry(source.id.clone())
            .or_insert_with(|| StreamShards::new(source))
            .add(sink);
        if let Some(shard) = new_shard {
            self.tasks.spawn(shard::run_shard(shard, source.changes()));
        }
        Attached { driver }
    }

    fn detach(&self, driver: &Arc<PlayerDriver>) {
        let sink: Arc<dyn Sink> = driver.clone();
        let mut streams = self.lock();
        let id = &driver.source().id;
        if let Some(shards) = streams.get_mut(id) {
            shards.remove(&sink);
            if shards.is_empty() {
                streams.remove(id);
            }
        }
    }

    /// Players fed by shards, over all streams.
    pub fn players(&self) -> usize {
        self.lock().values().map(StreamShards::len).sum()
    }

    /// Closes the players of streams nobody has published for their vhost's
    /// `play.unpublished_timeout` (players that receive nothing would otherwise hold
    /// their connection for ever). Returns how many were closed.
    pub fn close_unpublished(&self, ctx: &Context) -> usize {
        let config = ctx.config();
        let mut idle = Vec::new();
        for shards in self.lock().values() {
            // The stream first: its players are gathered only when they are to go
            // (a sweep runs every second over every live stream).
            let Some(source) = shards.source() else {
                continue;
            };
            let timeout = config
                .vhost(&source.key.vhost)
                .map(|v| v.play.unpublished_timeout)
                .unwrap_or_default();
            if timeout.is_zero() || source.unpublished_for().is_none_or(|t| t < timeout) {
                continue;
            }
            let sinks = shards.sinks();
            tracing::info!(
                "{}: nobody published it for {timeout:?}; closing its {} players",
                source.key,
                sinks.len()
            );
            idle.extend(sinks);
        }
        for sink in &idle {
            sink.close_for(crate::stats::KickReason::Unpublished);
        }
        idle.len()
    }

    /// Players of one stream (by source id).
    pub fn players_of(&self, source_id: &str) -> usize {
        self.lock().get(source_id).map_or(0, StreamShards::len)
    }
}

/// A player fed by its stream's shards for as long as this lives; on every exit
/// path (error, kick, task cancelled) it is taken out and closed: its consumer
/// released, its transport shut.
pub struct Attached {
    pub driver: Arc<PlayerDriver>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.driver.ctx().delivery.detach(&self.driver);
        self.driver.close();
    }
}

/// The delivery service: runs the pacer of merged writes; at shutdown ends every
/// shard and waits for their tasks.
pub struct DeliveryService;

impl Service for DeliveryService {
    fn name(&self) -> &'static str {
        "delivery"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, shutdown: Shutdown) -> ServiceFuture {
        Box::pin(async move {
            let pacing = async {
                match ctx.hub.pacing().take_requests() {
                    Some(requests) => {
                        pacer::run(ctx.hub.pacing(), requests, shutdown.clone()).await
                    }
                    // Another server's delivery took it (never in one process's server).
                    None => shutdown.clone().requested().await,
                }
            };
            let sweeping = async {
                let mut tick = tokio::time::interval(UNPUBLISHED_SWEEP);
                let mut stop = shutdown.clone();
                loop {
                    tokio::select! {
                        _ = stop.requested() => return,
                        _ = tick.tick() => {
                            let n = ctx.delivery.close_unpublished(&ctx);
                            ctx.counters
                                .closed_unpublished
                                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            };
            tokio::join!(pacing, sweeping);
            let delivery = &ctx.delivery;
            for (_, mut shards) in delivery.lock().drain() {
                shards.close_all();
            }
            delivery.tasks.close();
            delivery.tasks.wait().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hub::{Frame, FrameKind, SourceSettings, StreamKey};
    use crate::service::Services;
    use bytes::Bytes;
    use std::time::Duration;

    /// The pacer batches wake-ups: with merged writes of 100 ms, 100 frames over
    /// ~0.5 s wake readers a handful of times, not once per frame. Without the
    /// delivery service running (its pacer gone) every frame wakes them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn merged_writes_are_paced_by_the_delivery_service() {
        let ctx = Context::new(Config::default());
        let services = Services::start(&ctx, vec![Box::new(DeliveryService)]);
        // The service's task sets the pacer running.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let paced = count_wakes(&ctx, 100).await;
        services.stop(Duration::from_secs(5)).await;
        let unpaced = count_wakes(&ctx, 100).await;
        assert!(
            paced <= 15,
            "paced readers woke {paced} times for 100 frames"
        );
        assert!(
            unpaced >= 90,
            "without a pacer readers woke {unpaced} times"
        );
    }

    async fn count_wakes(ctx: &Arc<Context>, frames: u64) -> usize {
        let key = StreamKey {
            vhost: "v".into(),
            app: "live".into(),
            stream: "paced".into(),
        };
        let settings = SourceSettings {
            gop_cache: true,
            queue_length_ms: 10_000,
        };
        let source = ctx.hub.source(&key, settings);
        source.set_notify_interval(Duration::from_millis(100));
        source.publish("p").unwrap();
        let mut changes = source.changes();
        changes.mark_unchanged();
        let wakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = wakes.clone();
        let counter = tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        for i in 0..frames {
            source.push(Frame {
                kind: FrameKind::Audio,
                timestamp: i * 5,
                payload: Bytes::from_static(b"\xaf\x01abc"),
                keyframe: false,
                sequence_header: false,
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The last tick.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let n = wakes.load(std::sync::atomic::Ordering::SeqCst);
        source.unpublish("p");
        counter.abort();
        n
    }
}
