//! The stream hub: the registry of live Sources and the consumers that read them.

pub mod atc;
pub mod codec_info;
mod consumer;
mod frame;
pub mod jitter;
mod pacing;
mod source;
#[cfg(test)]
pub mod test_frames;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

pub use atc::AtcPolicy;
pub use consumer::{Consumer, Item, ItemRef, Skipped, MAX_BATCH};
pub use frame::{make_frame, media_kind, Frame, FrameKind};
pub use pacing::Pacing;
pub use source::{PublishError, PublisherInfo, RingView, Source, SourceSettings};

/// A stream's identity: `vhost/app/stream`. The same stream name on two vhosts
/// is two streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub vhost: String,
    pub app: String,
    pub stream: String,
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.vhost, self.app, self.stream)
    }
}

/// Publish edges, for services that attach their own consumer to every
/// published stream (HLS, DVR, forward): they subscribe here instead of being
/// called from the publisher's code.
#[derive(Debug, Clone)]
pub enum HubEvent {
    Published(Arc<Source>),
    Unpublished(Arc<Source>),
    /// The config was reloaded: services look at the live streams again (e.g. HLS
    /// turned on for a vhost that is already publishing).
    Reloaded,
    /// A consumer subscribed to a source nobody publishes: an edge may pull it from
    /// upstream. Sent after the consumer is counted in `stats.consumers`.
    Demand(Arc<Source>),
    /// Never sent on the channel: a [`crate::service::HubFollower`] that fell behind
    /// yields this instead of the events it missed. The service looks at the live
    /// streams again, as after `Reloaded`.
    Resync,
}

/// How many publish edges a slow service may fall behind before it misses some.
pub const EVENT_CAPACITY: usize = 1024;

/// All live sources of the server.
#[derive(Debug)]
pub struct Hub {
    sources: Mutex<HashMap<StreamKey, Arc<Source>>>,
    next_id: std::sync::atomic::AtomicU64,
    events: tokio::sync::broadcast::Sender<HubEvent>,
    pacing: Arc<Pacing>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            sources: Mutex::default(),
            next_id: Default::default(),
            events: tokio::sync::broadcast::channel(EVENT_CAPACITY).0,
            pacing: Arc::default(),
        }
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    /// Where this hub's streams ask for merged-write pacing.
    pub fn pacing(&self) -> Arc<Pacing> {
        self.pacing.clone()
    }

    pub fn announce_reload(&self) {
        let _ = self.events.send(HubEvent::Reloaded);
    }

    /// Publish and unpublish events of every source, from now on.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Arc<Source>>> {
        crate::util::lock(&self.sources)
    }

    /// The source of `key`, created on first use (by a publisher or by a player
    /// that waits for one).
    pub fn source(&self, key: &StreamKey, settings: SourceSettings) -> Arc<Source> {
        self.map()
            .entry(key.clone())
            .or_insert_with(|| {
                let n = self
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Source::new(
                    format!("vid-{n}"),
                    key.clone(),
                    settings,
                    self.events.clone(),
                    self.pacing.clone(),
                )
            })
            .clone()
    }

    pub fn get(&self, key: &StreamKey) -> Option<Arc<Source>> {
        self.map().get(key).cloned()
    }

    pub fn subscribe(&self, key: &StreamKey, settings: SourceSettings) -> Consumer {
        let source = self.source(key, settings);
        let demand = (!source.is_publishing()).then(|| source.clone());
        let consumer = Consumer::new(source, settings.queue_length_ms);
        if let Some(source) = demand {
            // No receiver is fine: nobody pulls on demand.
            let _ = self.events.send(HubEvent::Demand(source));
        }
        consumer
    }

    /// Forgets a source nobody publishes or plays any more. Called when a
    /// publisher or consumer leaves; a later publish starts afresh.
    pub fn release(&self, key: &StreamKey) {
        let mut map = self.map();
        if let Some(src) = map.get(key) {
            // The map's reference plus the caller's (if any) are the only ones left
            // when nobody uses the source.
            let idle = !src.is_publishing()
                && src
                    .stats
                    .consumers
                    .load(std::sync::atomic::Ordering::Relaxed)
                    == 0;
            if idle && Arc::strong_count(src) <= 2 {
                map.remove(key);
            }
        }
    }

    /// All sources, oldest first.
    pub fn sources(&self) -> Vec<Arc<Source>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by_key(|s| s.created);
        v
    }

    pub fn find_by_id(&self, id: &str) -> Option<Arc<Source>> {
        self.map().values().find(|s| s.id == id).cloned()
    }
}

#[cfg(test)]
mod tests;
