//! Feeds: a stream's media converted once for one kind of player, whatever their number
//! (SRT and HTTP-TS players: `srt::feed`'s TS mux; WHEP players: `rtc::feed`'s Annex B
//! H.264 and Opus).
//!
//! A feed is an own-pace reader of the stream's Source (like HLS). It pushes what it
//! makes, as frames, into a Source of its own that is not in the hub; the players read
//! that Source through the one delivery path, so their fan-out, backpressure, GOP cache
//! and queue policy are those of every other player. This module holds what every kind
//! of feed shares: one feed per stream, started by the first player that asks, and
//! stopped (its task aborted) when the last player lets it go.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::context::Context;
use crate::hub::{Source, SourceSettings, StreamKey};

/// One stream's feed: the Source its players read, what else the feed shares with them
/// (`extra`: the WebRTC feed's packet history), and the task that fills both.
pub struct Feed<X = ()> {
    pub source: Arc<Source>,
    pub extra: X,
    task: tokio::task::JoinHandle<()>,
}

impl<X> Drop for Feed<X> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The running feeds of one kind, by stream.
pub struct Feeds<X = ()> {
    map: Mutex<HashMap<StreamKey, Weak<Feed<X>>>>,
}

impl<X> Default for Feeds<X> {
    fn default() -> Self {
        Feeds {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<X> std::fmt::Debug for Feeds<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("streams", &self.len())
            .finish()
    }
}

impl<X: Clone + Default + Send + 'static> Feeds<X> {
    /// The feed of `key`'s stream, started if it has none: `run(ctx, key, settings,
    /// out, extra)` reads the stream and pushes into `out`, whose id starts with
    /// `id_prefix` and whose readers are woken at most every `notify_interval` (zero:
    /// every frame); `extra` (new, `X::default()`) is what the feed shares with its players
    /// beside `out`.
    /// Must be called inside the runtime.
    pub fn get<F, Fut>(
        &self,
        ctx: &Arc<Context>,
        key: &StreamKey,
        settings: SourceSettings,
        id_prefix: &str,
        notify_interval: Duration,
        run: F,
    ) -> Arc<Feed<X>>
    where
        F: FnOnce(Arc<Context>, StreamKey, SourceSettings, Arc<Source>, X) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut map = crate::util::lock(&self.map);
        if let Some(feed) = map.get(key).and_then(Weak::upgrade) {
            return feed;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let (events, _) = tokio::sync::broadcast::channel(1);
        let source = Source::new(
            format!("{id_prefix}-{}", ctx.new_client_id()),
            key.clone(),
            settings,
            events,
            ctx.hub.pacing(),
        );
        source.set_notify_interval(notify_interval);
        let extra = X::default();
        let task = tokio::spawn(run(
            ctx.clone(),
            key.clone(),
            settings,
            source.clone(),
            extra.clone(),
        ));
        let feed = Arc::new(Feed {
            source,
            extra,
            task,
        });
        map.insert(key.clone(), Arc::downgrade(&feed));
        feed
    }
}

impl<X> Feeds<X> {
    /// The feeds running now.
    pub fn running(&self) -> Vec<Arc<Feed<X>>> {
        crate::util::lock(&self.map)
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Streams with a feed running.
    pub fn len(&self) -> usize {
        crate::util::lock(&self.map)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Held by a feed's task while it reads a hub stream: gives the stream back to the hub
/// when the task ends (or is aborted).
pub struct Reading {
    ctx: Arc<Context>,
    key: StreamKey,
}

impl Reading {
    pub fn new(ctx: Arc<Context>, key: StreamKey) -> Reading {
        Reading { ctx, key }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.ctx.hub.release(&self.key);
    }
}
