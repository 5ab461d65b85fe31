//! Who is connected and what they are doing: the registry behind the API's
//! `clients` and the kick (`DELETE /api/v1/clients/{id}`).

pub mod kbps;
pub mod pithy;
pub mod system;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::hub::StreamKey;
use crate::util::lock;

/// What a client is, with SRS's API names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Connected, not yet publishing or playing.
    Unknown,
    /// RTMP publisher that used FCPublish (ffmpeg, OBS, FMLE).
    FmlePublish,
    /// RTMP publisher without FCPublish (Flash).
    FlashPublish,
    RtmpPlay,
    FlvPlay,
    /// SRT publisher (`m=publish`).
    SrtPublish,
    /// SRT player (`m=request`).
    SrtPlay,
    /// WebRTC player (WHEP or SRS's /rtc/v1/play/).
    RtcPlay,
    /// WebRTC publisher (WHIP or SRS's /rtc/v1/publish/).
    RtcPublish,
}

impl ClientKind {
    /// SRS's `type` field.
    pub fn srs_name(self) -> &'static str {
        match self {
            ClientKind::Unknown => "unknown",
            ClientKind::FmlePublish => "fmle-publish",
            ClientKind::FlashPublish => "flash-publish",
            ClientKind::RtmpPlay => "rtmp-play",
            ClientKind::FlvPlay => "flv-play",
            ClientKind::SrtPublish => "srt-publish",
            ClientKind::SrtPlay => "srt-play",
            ClientKind::RtcPlay => "rtc-play",
            ClientKind::RtcPublish => "rtc-publish",
        }
    }

    pub fn is_publish(self) -> bool {
        matches!(
            self,
            ClientKind::FmlePublish
                | ClientKind::FlashPublish
                | ClientKind::SrtPublish
                | ClientKind::RtcPublish
        )
    }
}

/// The parts of a client that change after it connects.
#[derive(Debug, Clone)]
pub struct ClientState {
    pub kind: ClientKind,
    pub stream: Option<StreamKey>,
    pub tc_url: String,
    pub page_url: String,
    pub swf_url: String,
    /// Stream query string (masked before it reaches the API).
    pub param: String,
    /// The same, unmasked: only for passing the client's token upstream (edge
    /// `token_traverse`, forward backends); never logged nor shown in the API.
    pub raw_param: String,
}

#[derive(Debug)]
pub struct Client {
    pub id: String,
    pub peer: SocketAddr,
    pub started: Instant,
    pub state: Mutex<ClientState>,
    pub send_bytes: AtomicU64,
    pub recv_bytes: AtomicU64,
    /// Cancelled to kick the client; its task closes the connection.
    pub kick: CancellationToken,
    /// Why it was kicked (a [`KickReason`]), for its close line.
    kick_reason: std::sync::atomic::AtomicU8,
}

/// Why the server closed a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickReason {
    /// `DELETE /api/v1/clients/ID`.
    Api,
    /// A reload removed or disabled the client's vhost.
    VhostRemoved,
    /// A graceful stop.
    Shutdown,
    /// Nobody published its stream for the vhost's `play.unpublished_timeout`.
    Unpublished,
}

impl std::fmt::Display for KickReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KickReason::Api => "kicked off by the API",
            KickReason::VhostRemoved => "its vhost was removed by a reload",
            KickReason::Shutdown => "server shutting down",
            KickReason::Unpublished => "nobody published its stream for play.unpublished_timeout",
        })
    }
}

impl Client {
    /// Closes the client (an API kick): its connection task (RTMP) or player task
    /// (HTTP-FLV) watches the token and ends.
    pub fn disconnect(&self) {
        self.disconnect_for(KickReason::Api);
    }

    /// Closes the client, saying why in its close line.
    pub fn disconnect_for(&self, reason: KickReason) {
        self.kick_reason
            .store(reason as u8, std::sync::atomic::Ordering::Relaxed);
        self.kick.cancel();
    }

    /// Why the client was kicked (meaningful once `kick` is cancelled).
    pub fn kick_reason(&self) -> KickReason {
        match self.kick_reason.load(std::sync::atomic::Ordering::Relaxed) {
            1 => KickReason::VhostRemoved,
            2 => KickReason::Shutdown,
            3 => KickReason::Unpublished,
            _ => KickReason::Api,
        }
    }

    pub fn state(&self) -> ClientState {
        lock(&self.state).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut ClientState)) {
        f(&mut lock(&self.state));
    }

    pub fn add_send(&self, n: u64) {
        self.send_bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_recv(&self, n: u64) {
        self.recv_bytes.fetch_add(n, Ordering::Relaxed);
    }
}

type ClientMap = Arc<Mutex<HashMap<String, Arc<Client>>>>;

#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: ClientMap,
}

/// Removes the client from the registry when its connection ends. Owns its way
/// back to the map so that it can live in a `'static` response body.
pub struct ClientGuard {
    clients: ClientMap,
    pub client: Arc<Client>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        lock(&self.clients).remove(&self.client.id);
    }
}

impl ClientRegistry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Client>>> {
        lock(&self.clients)
    }

    pub fn register(&self, id: &str, peer: SocketAddr) -> ClientGuard {
        let client = Arc::new(Client {
            id: id.to_string(),
            peer,
            started: Instant::now(),
            state: Mutex::new(ClientState {
                kind: ClientKind::Unknown,
                stream: None,
                tc_url: String::new(),
                page_url: String::new(),
                swf_url: String::new(),
                param: String::new(),
                raw_param: String::new(),
            }),
            send_bytes: AtomicU64::new(0),
            recv_bytes: AtomicU64::new(0),
            kick: CancellationToken::new(),
            kick_reason: Default::default(),
        });
        self.map().insert(id.to_string(), client.clone());
        ClientGuard {
            clients: self.clients.clone(),
            client,
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.map().get(id).cloned()
    }

    /// All clients, oldest first (stable order for paging).
    pub fn list(&self) -> Vec<Arc<Client>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by_key(|c| c.started);
        v
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks the client's task to close it. False when no such client.
    pub fn kick(&self, id: &str) -> bool {
        match self.get(id) {
            Some(c) => {
                c.disconnect();
                true
            }
            None => false,
        }
    }
}
