//! One WebRTC peer as the HTTP side hands it to the UDP task, and the bookkeeping that
//! ends with it (close line, client registry, hooks, the stream's publish).

use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::config::HttpHooksConfig;
use crate::context::Context;
use crate::hooks::{self, HookRequest};
use crate::hub::{Source, SourceSettings, StreamKey};
use crate::stats::ClientGuard;

pub enum SessionRole {
    /// WHEP: plays the stream from the hub.
    Player { settings: SourceSettings },
    /// WHIP: publishes into this Source (already claimed with `Source::publish`).
    Publisher { source: Arc<Source> },
}

/// A session whose offer was answered: its `Rtc`, its ufrag, and its bookkeeping.
pub struct NewSession {
    pub id: String,
    pub rtc: str0m::Rtc,
    /// Our ICE ufrag (what the peer's STUN requests name first).
    pub ufrag: String,
    pub key: StreamKey,
    pub role: SessionRole,
    pub guard: SessionGuard,
}

/// Dropped when the session ends, however it ends: the close line, the client leaves
/// the registry, the publish ends (a publisher), the stream is released, and
/// on_unpublish or on_stop is sent.
pub struct SessionGuard {
    pub ctx: Arc<Context>,
    pub registration: ClientGuard,
    pub hooks: HttpHooksConfig,
    pub hook_req: HookRequest,
    pub key: StreamKey,
    /// The publish this session holds (WHIP).
    pub publishing: Option<Arc<Source>>,
    pub started: Instant,
    pub close_reason: String,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let c = &self.registration.client;
        let role = if self.publishing.is_some() {
            "publisher"
        } else {
            "player"
        };
        info!(
            "close rtc {role} id={} ip={} url={} duration={:.1}s recv={} send={}: {}",
            c.id,
            c.peer,
            self.key,
            self.started.elapsed().as_secs_f64(),
            c.recv_bytes.load(std::sync::atomic::Ordering::Relaxed),
            c.send_bytes.load(std::sync::atomic::Ordering::Relaxed),
            self.close_reason
        );
        if let Some(source) = self.publishing.take() {
            source.unpublish(&c.id);
            drop(source);
            self.ctx.hub.release(&self.key);
            if self.hooks.enabled && !self.hooks.on_unpublish.is_empty() {
                let (ctx, hooks, req) =
                    (self.ctx.clone(), self.hooks.clone(), self.hook_req.clone());
                tokio::spawn(async move { hooks::on_unpublish(&ctx, &hooks, &req).await });
            }
        } else {
            self.ctx.hub.release(&self.key);
            hooks::spawn_on_stop(self.ctx.clone(), self.hooks.clone(), self.hook_req.clone());
        }
    }
}
