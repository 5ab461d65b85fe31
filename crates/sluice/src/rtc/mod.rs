//! WebRTC: WHIP publish and WHEP play on one UDP port (`rtc_server`), bridged with the
//! hub both ways.
//!
//! - ICE (lite), DTLS, SRTP, RTCP (reports, NACK, PLI, TWCC) and the WHIP side's
//!   depacketization are str0m's, a sans-IO stack: each peer is one `str0m::Rtc` driven by this module's
//!   single UDP task ([`server`]), which owns the socket, routes each datagram to its
//!   session (by the ICE ufrag of a STUN request, then by address) and sends what the
//!   sessions produce. See `docs/webrtc.md` for why str0m.
//! - A WHEP player of a stream is fed through the one delivery path from that stream's
//!   [`feed`]: one hub consumer per stream, each frame converted once (FLV AVC → H.264
//!   RTP payloads, [`media::rtp_h264`], kept in the stream's [`history`]; AAC → Opus,
//!   [`audio`]) into a Source of the feed's own, read by each player's `PlayerDriver`
//!   (`Framing::Rtc`) whose transport hands the records to the UDP task ([`peer`]). A
//!   player's `Rtc` is in RTP mode: it sends the stream's packets under its own sequence
//!   numbers, and answers NACKs from those same shared payloads.
//! - A WHIP publisher is a normal hub Source: its depacketized H.264 becomes FLV frames
//!   (`media::annexb::FromAnnexB`), so RTMP, HTTP-FLV, HLS, DVR and forward get it.
//! - The HTTP side (SDP offer in, answer out, DELETE) is `http::rtc`.

pub mod audio;
pub mod candidate;
pub mod feed;
pub mod history;
pub mod opus_aac;
pub mod peer;
pub mod server;
pub mod session;
pub mod stun;
pub mod whip_audio;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::context::Context;
use crate::service::{Service, ServiceFuture, Shutdown};

pub use session::{NewSession, SessionRole};

/// Most WebRTC sessions at once (players and publishers).
pub const MAX_SESSIONS: usize = 2048;
/// A session that has not connected (ICE + DTLS) within this is dropped.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// RFC 7675 consent: a session with no STUN from its peer for this long is ended.
pub const CONSENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Largest SDP offer read from a WHIP/WHEP request.
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// What the HTTP side asks of the UDP task.
pub enum Command {
    /// A new session: its answer was made already; the reply says whether the task took it.
    Add(Box<NewSession>, oneshot::Sender<Result<(), String>>),
    /// DELETE of the session's resource (WHIP/WHEP), or a kick.
    Remove(String, oneshot::Sender<bool>),
}

/// The RTC server's state shared with the HTTP side (in the [`Context`]).
#[derive(Debug, Default)]
pub struct RtcState {
    commands: OnceLock<mpsc::Sender<Command>>,
    /// Where the UDP task listens and what it announces, once started.
    pub(crate) endpoint: OnceLock<Endpoint>,
    /// Sessions the UDP task holds, and those of them still in their handshake.
    pub sessions: AtomicUsize,
    pub handshakes: AtomicUsize,
    /// Datagrams that matched no session (unknown ufrag, unknown address).
    pub dropped_datagrams: AtomicU64,
    /// Offers refused for capacity.
    pub refused: AtomicU64,
    /// Each stream's media converted once for its WHEP players.
    pub feeds: feed::Feeds,
    crypto: OnceLock<Arc<str0m::crypto::CryptoProvider>>,
    /// The socket bound at start, until the service takes it.
    bound: std::sync::Mutex<Option<Bound>>,
    /// One DTLS certificate for every session, made once: a key pair per offer would make
    /// each offer (hostile ones included) cost a key generation.
    dtls_cert: OnceLock<Option<str0m::config::DtlsCert>>,
}

/// The UDP port and the addresses announced in answers.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub port: u16,
    pub candidates: Vec<std::net::IpAddr>,
}

impl RtcState {
    /// Whether `rtc_server` runs (WHIP/WHEP can be served).
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.get()
    }

    /// The crypto provider every session's DTLS and SRTP use (OpenSSL, see docs/webrtc.md).
    pub fn crypto(&self) -> Arc<str0m::crypto::CryptoProvider> {
        self.crypto
            .get_or_init(|| Arc::new(str0m::crypto::from_feature_flags()))
            .clone()
    }

    /// The server's DTLS certificate (its fingerprint goes in every answer).
    pub fn dtls_cert(&self) -> Option<str0m::config::DtlsCert> {
        self.dtls_cert
            .get_or_init(|| self.crypto().dtls_provider.generate_certificate())
            .clone()
    }

    /// Reserves a handshake slot, or says why not: at most `max` sessions answered and not
    /// yet connected (`rtc_server { max_handshakes }`); offers never followed by ICE hold
    /// theirs until [`HANDSHAKE_TIMEOUT`].
    pub fn reserve(&self, max: usize) -> Result<HandshakeSlot<'_>, String> {
        if self.sessions.load(Ordering::Relaxed) >= MAX_SESSIONS {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(format!("too many WebRTC sessions ({MAX_SESSIONS})"));
        }
        let before = self.handshakes.fetch_add(1, Ordering::Relaxed);
        if before >= max {
            self.handshakes.fetch_sub(1, Ordering::Relaxed);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "too many WebRTC handshakes in flight ({max}, rtc_server.max_handshakes)"
            ));
        }
        Ok(HandshakeSlot {
            state: self,
            kept: false,
        })
    }

    /// Hands a session to the UDP task.
    pub async fn add(&self, s: NewSession) -> Result<(), String> {
        let tx = self
            .commands
            .get()
            .ok_or_else(|| "rtc_server is not running".to_string())?;
        let (reply, rx) = oneshot::channel();
        tx.send(Command::Add(Box::new(s), reply))
            .await
            .map_err(|_| "rtc_server stopped".to_string())?;
        rx.await
            .map_err(|_| "rtc_server stopped".to_string())
            .and_then(|r| r)
    }

    /// Ends a session (DELETE); false when there is none of that id.
    pub async fn remove(&self, id: &str) -> bool {
        let Some(tx) = self.commands.get() else {
            return false;
        };
        let (reply, rx) = oneshot::channel();
        if tx
            .send(Command::Remove(id.to_string(), reply))
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

/// A handshake slot held while an offer is answered; the UDP task keeps it (and frees
/// it when the session connects or ends).
pub struct HandshakeSlot<'a> {
    state: &'a RtcState,
    kept: bool,
}

impl HandshakeSlot<'_> {
    /// The session was taken: the UDP task frees the slot from now on.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for HandshakeSlot<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.state.handshakes.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The `rtc_server` UDP socket, bound at start beside the TCP listeners and SRT's, and
/// the addresses it announces: a busy port or an unusable `candidate` refuses the start
/// (with the directive in the message) as a busy RTMP port does, instead of a server
/// that runs without the WebRTC its config asks for.
#[derive(Debug)]
pub struct Bound {
    socket: std::net::UdpSocket,
    candidates: Vec<std::net::IpAddr>,
}

/// Binds `rtc_server`'s port (all interfaces, as SRS) when it is enabled.
pub fn bind(cfg: &crate::config::RtcServerConfig) -> anyhow::Result<Option<Bound>> {
    if !cfg.enabled {
        return Ok(None);
    }
    let candidates = candidate::resolve(&cfg.candidate)
        .map_err(|e| anyhow::anyhow!("rtc_server: candidate {:?}: {e}", cfg.candidate))?;
    let socket = std::net::UdpSocket::bind(("0.0.0.0", cfg.listen))
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .map_err(|e| {
            anyhow::anyhow!("rtc_server: cannot listen on udp port {}: {e}", cfg.listen)
        })?;
    Ok(Some(Bound { socket, candidates }))
}

impl RtcState {
    /// Hands the socket bound at start to the service.
    pub fn set_bound(&self, b: Bound) {
        *crate::util::lock(&self.bound) = Some(b);
    }
}

/// The `rtc_server` service: runs [`server::run`] on the socket bound at start.
pub struct RtcService;

impl Service for RtcService {
    fn name(&self) -> &'static str {
        "rtc"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, mut shutdown: Shutdown) -> ServiceFuture {
        Box::pin(async move {
            let cfg = ctx.config().rtc_server.clone();
            let bound = crate::util::lock(&ctx.rtc.bound).take();
            let Some(Bound { socket, candidates }) = bound else {
                // Disabled (a reload does not start WebRTC: `rtc_server` needs a restart).
                shutdown.requested().await;
                return;
            };
            let socket = match tokio::net::UdpSocket::from_std(socket) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("rtc_server: cannot use the udp socket: {e}; WebRTC is off");
                    shutdown.requested().await;
                    return;
                }
            };
            let listening = socket.local_addr().map(|a| a.port()).unwrap_or(cfg.listen);
            // The port announced (and that str0m's ICE agent matches datagrams against).
            let port = cfg.candidate_port.unwrap_or(listening);
            tracing::info!(
                "rtc_server: listening on udp port {listening}, candidates {:?} port {port}",
                candidates
            );
            let (tx, rx) = mpsc::channel(64);
            let _ = ctx.rtc.commands.set(tx);
            let _ = ctx.rtc.endpoint.set(Endpoint { port, candidates });
            server::run(ctx, socket, rx, shutdown).await;
        })
    }
}
