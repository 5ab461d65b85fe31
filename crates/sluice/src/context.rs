//! State shared by every service of one running server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::hub::Hub;
use crate::server::ReloadError;
use crate::stats::kbps::Rates;
use crate::stats::ClientRegistry;

/// Server-wide counters (the API and metrics read them).
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    /// Refused because `max_connections` was reached.
    pub refused: AtomicU64,
    /// Refused because the peer's address held `max_connections_per_ip`.
    pub refused_per_ip: AtomicU64,
    /// Refused on the HTTP API listener, its own cap reached.
    pub refused_api: AtomicU64,
    pub active: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Bytes of messages publishers have begun and not finished sending, all
    /// publishers together (bounded by `rtmp_service::PENDING_BUDGET`).
    pub pending_message_bytes: AtomicU64,
    /// Publishers closed because they held too much of that budget.
    pub refused_memory: AtomicU64,
    /// Players closed because nobody published their stream (`play.unpublished_timeout`).
    pub closed_unpublished: AtomicU64,
}

/// The answer to one reload request.
pub type ReloadReply = tokio::sync::oneshot::Sender<Result<String, ReloadError>>;

#[derive(Debug)]
pub struct Context {
    /// Set by a graceful stop (SIGQUIT): writers finish for good (HLS ends its
    /// playlists) instead of waiting for a republish.
    stopping: std::sync::atomic::AtomicBool,
    reloader: std::sync::OnceLock<tokio::sync::mpsc::Sender<ReloadReply>>,
    pub hub: Hub,
    /// Live players and the tasks that feed them.
    pub delivery: crate::delivery::Delivery,
    pub clients: ClientRegistry,
    config: RwLock<Arc<Config>>,
    pub started: Instant,
    pub counters: Counters,
    /// Connections per peer address, and the throttles of refusal log lines.
    pub admission: crate::admission::Admission,
    /// Bit rates and CPU use, refreshed by [`crate::stats::kbps::Sampler`].
    pub rates: Rates,
    /// Per-stream HLS state for the API, kept by [`crate::hls`].
    pub hls: crate::hls::HlsRegistry,
    /// DVR recorders and API decisions.
    pub dvr: crate::dvr::DvrState,
    /// Transcode and ingest processes.
    pub ffmpeg: crate::ffmpeg::FfmpegState,
    /// Forward and edge pushes in progress, kept by [`crate::forward`].
    pub forward: crate::forward::Forwards,
    /// Edge pulls in progress, kept by [`crate::edge`].
    pub edge: crate::edge::Edges,
    /// The Redis stream directory's connections and what this node registered there.
    pub directory: crate::cluster::Directory,
    /// Certificates in force and the bound on TLS handshakes (RTMPS, HTTPS).
    pub tls: crate::tls::Tls,
    /// The SRT listener (until its service takes it) and the TS feeds of SRT players.
    pub srt: crate::srt::SrtState,
    pub rtc: crate::rtc::RtcState,
    id_seed: u64,
    next_id: AtomicU64,
}

impl Context {
    pub fn new(config: Config) -> Arc<Context> {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
            ^ u64::from(std::process::id()) << 32;
        Arc::new(Context {
            stopping: std::sync::atomic::AtomicBool::new(false),
            reloader: std::sync::OnceLock::new(),
            hub: Hub::new(),
            delivery: Default::default(),
            tls: Default::default(),
            clients: ClientRegistry::default(),
            config: RwLock::new(Arc::new(config)),
            started: Instant::now(),
            counters: Counters::default(),
            admission: Default::default(),
            rates: Rates::default(),
            hls: Default::default(),
            dvr: Default::default(),
            ffmpeg: Default::default(),
            forward: Default::default(),
            edge: Default::default(),
            directory: Default::default(),
            srt: Default::default(),
            rtc: Default::default(),
            id_seed: seed,
            next_id: AtomicU64::new(1),
        })
    }

    /// The config in force (a reload swaps it; holders keep the one they took).
    pub fn config(&self) -> Arc<Config> {
        crate::util::read(&self.config).clone()
    }

    pub fn set_config(&self, config: Config) {
        self.set_config_arc(Arc::new(config));
    }

    pub fn set_config_arc(&self, config: Arc<Config>) {
        *crate::util::write(&self.config) = config;
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Where reload requests go (the server's main loop owns the listeners).
    pub fn set_reloader(&self, tx: tokio::sync::mpsc::Sender<ReloadReply>) {
        let _ = self.reloader.set(tx);
    }

    /// Asks the server to reload its config file (as SIGHUP does) and waits for
    /// the outcome: a summary of what changed, or why nothing did.
    pub async fn request_reload(&self) -> Result<String, ReloadError> {
        let Some(tx) = self.reloader.get() else {
            return Err(ReloadError::Unavailable);
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        tx.send(reply)
            .await
            .map_err(|_| ReloadError::ShuttingDown)?;
        rx.await.map_err(|_| ReloadError::ShuttingDown)?
    }

    /// A short id for a client, unique in this process and hard to guess across
    /// restarts (SRS's context id): every log line of the client carries it.
    pub fn new_client_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        // splitmix64 of seed+n: distinct for distinct n, scrambled so ids do not
        // reveal the connection count.
        let z = crate::util::ids::scramble(
            self.id_seed
                .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        crate::util::ids::base36(z, 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_short_and_distinct() {
        let ctx = Context::new(Config::default());
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| ctx.new_client_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|i| i.len() == 8));
    }
}
