//! The UDP task: one socket for every WebRTC peer, one `str0m::Rtc` per session.
//!
//! A datagram is routed by the ICE ufrag its STUN request names (our half of
//! `USERNAME`), which also records the peer's address; DTLS, SRTP and SRTCP then follow
//! that address. Anything that matches no session is dropped and counted. The task
//! also takes new sessions and DELETEs from the HTTP side ([`super::Command`]) and the
//! records the delivery path hands its players ([`super::peer`]: each connected WHEP
//! player is a `PlayerDriver` fed by its stream's shards from the stream's
//! [`super::feed`]), and ends sessions whose handshake never completed, whose peer
//! stopped its ICE consent checks, that were kicked, or whose publisher left.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::feed::RtcFeed;
use super::history::Span;
use super::peer::{PeerQueue, Ready, Record, RtcTransport};
use super::session::{NewSession, SessionGuard, SessionRole};
use super::whip_audio::WhipAudio;
use super::{stun, Command, CONSENT_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_SESSIONS};
use crate::config::TimeJitter;
use crate::context::Context;
use crate::delivery::{Attached, Framer, Framing, PlayerDriver, Transport};
use crate::hub::{make_frame, Consumer, Source, SourceSettings, StreamKey};
use crate::service::Shutdown;

/// Addresses remembered per session (a peer may check several candidate pairs).
const MAX_ADDRS: usize = 4;
/// A WHEP player whose queue the UDP task has not emptied for this long is ended (the
/// server is overloaded; a network that is slow only loses packets, it does not block).
const PLAYER_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a WHIP publisher is asked for a keyframe, so that RTMP/HLS players and
/// recordings get a GOP (SRS's `pli_for_rtmp`, 6 s).
const PUBLISHER_PLI_INTERVAL: Duration = Duration::from_secs(6);
/// Keyframe requests forwarded to one publisher at most this often.
const PLI_THROTTLE: Duration = Duration::from_millis(500);
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Largest datagram read (bigger ones are truncated and then refused by str0m).
const DATAGRAM_BUF: usize = 2048;

struct Session {
    rtc: Rtc,
    ufrag: String,
    key: StreamKey,
    created: Instant,
    connected: bool,
    /// Still counted in `RtcState::handshakes`.
    in_handshake: bool,
    last_stun: Instant,
    timeout: Instant,
    addrs: Vec<SocketAddr>,
    guard: SessionGuard,
    video_mid: Option<Mid>,
    video_pt: Option<Pt>,
    audio_mid: Option<Mid>,
    audio_pt: Option<Pt>,
    /// Player: its stream's feed (held from the offer on, so that the stream is read
    /// while the handshake runs), the settings its consumer reads with, its place in the
    /// delivery path once connected, and whether it waits for a keyframe.
    feed: Option<Arc<RtcFeed>>,
    settings: SourceSettings,
    player: Option<PlayerLink>,
    need_keyframe: bool,
    /// Player (its `Rtc` is in RTP mode): the next RTP sequence number of its video and
    /// of its audio, its own (random start, RFC 3550), whatever packets of the stream's
    /// history it sends; and a buffer for the payloads of one frame.
    video_seq: u64,
    audio_seq: u64,
    payloads: Vec<Arc<[u8]>>,
    /// Publisher: where its frames go.
    source: Option<Arc<Source>>,
    from_annexb: media::annexb::FromAnnexB,
    ts_base: Option<u64>,
    last_pli: Option<Instant>,
    /// Publisher: the arrival of its first media packet, the origin of its timestamps
    /// (audio and video each follow their RTP clock from their first packet's arrival).
    epoch: Option<Instant>,
    /// Publisher: its Opus → AAC worker, once audio came (or why there is none).
    audio: Option<WhipAudio>,
    audio_off: bool,
    /// Why it must end, once known (ended after the current step).
    dead: Option<String>,
}

/// A connected player's link with its delivery task: the queue the driver writes into,
/// and the task's stop (cancelled when the session ends, however it ends).
struct PlayerLink {
    queue: Arc<PeerQueue>,
    _stop: tokio_util::sync::DropGuard,
}

/// What one session's output asks of the others.
enum Action {
    Connected(String),
    /// A player asked for a keyframe of this stream.
    KeyframeWanted(StreamKey),
}

struct Server {
    ctx: Arc<Context>,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    sessions: HashMap<String, Session>,
    by_ufrag: HashMap<String, String>,
    by_addr: HashMap<SocketAddr, String>,
    /// Players' queues with records to write.
    ready: Arc<Ready>,
    tasks: TaskTracker,
}

pub async fn run(
    ctx: Arc<Context>,
    socket: UdpSocket,
    mut commands: mpsc::Receiver<Command>,
    mut shutdown: Shutdown,
) {
    let socket = Arc::new(socket);
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let ready = Arc::new(Ready::default());
    let mut s = Server {
        ctx,
        socket: socket.clone(),
        local,
        sessions: HashMap::new(),
        by_ufrag: HashMap::new(),
        by_addr: HashMap::new(),
        ready: ready.clone(),
        tasks: TaskTracker::new(),
    };
    let mut buf = vec![0u8; DATAGRAM_BUF];
    let mut next_sweep = Instant::now() + SWEEP_INTERVAL;
    loop {
        let deadline = s
            .sessions
            .values()
            .map(|x| x.timeout)
            .min()
            .unwrap_or(next_sweep)
            .min(next_sweep);
        tokio::select! {
            _ = shutdown.requested() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => s.datagram(&buf[..n], from),
                Err(e) => debug!("rtc: udp receive: {e}"),
            },
            Some(cmd) = commands.recv() => s.command(cmd),
            _ = ready.notify.notified() => s.records(),
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        let now = Instant::now();
        s.timeouts(now);
        if now >= next_sweep {
            s.sweep(now);
            next_sweep = now + SWEEP_INTERVAL;
        }
    }
    let ids: Vec<String> = s.sessions.keys().cloned().collect();
    for id in ids {
        s.end(&id, "the server is stopping".into());
    }
    s.tasks.close();
    s.tasks.wait().await;
}

impl Server {
    fn datagram(&mut self, d: &[u8], from: SocketAddr) {
        let id = if stun::is_stun(d) {
            let id = stun::local_ufrag(d)
                .and_then(|u| self.by_ufrag.get(u))
                .cloned();
            if let Some(id) = &id {
                if let Some(sess) = self.sessions.get_mut(id) {
                    sess.last_stun = Instant::now();
                    if !sess.addrs.contains(&from) {
                        if sess.addrs.len() >= MAX_ADDRS {
                            let old = sess.addrs.remove(0);
                            self.by_addr.remove(&old);
                        }
                        sess.addrs.push(from);
                        self.by_addr.insert(from, id.clone());
                    }
                }
            }
            id
        } else {
            self.by_addr.get(&from).cloned()
        };
        let Some(id) = id else {
            self.ctx
                .rtc
                .dropped_datagrams
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok(contents) = d.try_into() else {
            self.ctx
                .rtc
                .dropped_datagrams
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let destination = self.destination(from);
        let Some(sess) = self.sessions.get_mut(&id) else {
            return;
        };
        sess.guard
            .registration
            .client
            .recv_bytes
            .fetch_add(d.len() as u64, Ordering::Relaxed);
        self.ctx
            .counters
            .bytes_in
            .fetch_add(d.len() as u64, Ordering::Relaxed);
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination,
                contents,
            },
        );
        if let Err(e) = sess.rtc.handle_input(input) {
            sess.dead.get_or_insert(format!("rtc: {e}"));
        }
        self.drive(&id);
    }

    /// The address a datagram was sent to, as str0m's ICE agent wants it (it must be one
    /// of the announced candidates). The socket listens on every interface and does not
    /// read the real destination (IP_PKTINFO), so this is the candidate of the peer's
    /// address family, loopback for a loopback peer: with several candidates of one
    /// family, only the first is usable (see docs/webrtc.md).
    fn destination(&self, from: SocketAddr) -> SocketAddr {
        let cands = self
            .ctx
            .rtc
            .endpoint()
            .map(|e| e.candidates.as_slice())
            .unwrap_or(&[]);
        let ip = cands
            .iter()
            .find(|ip| {
                ip.is_loopback() == from.ip().is_loopback() && ip.is_ipv4() == from.is_ipv4()
            })
            .or_else(|| cands.iter().find(|ip| ip.is_ipv4() == from.is_ipv4()))
            .copied()
            .unwrap_or(self.local.ip());
        // The announced port (`candidate_port`, else the one listened on).
        let port = self
            .ctx
            .rtc
            .endpoint()
            .map(|e| e.port)
            .unwrap_or(self.local.port());
        SocketAddr::new(ip, port)
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Add(ns, reply) => {
                let r = self.add(*ns);
                let _ = reply.send(r);
            }
            Command::Remove(id, reply) => {
                let found = self.sessions.contains_key(&id);
                if found {
                    self.end(&id, "deleted by its client (HTTP DELETE)".into());
                }
                let _ = reply.send(found);
            }
        }
    }

    fn add(&mut self, ns: NewSession) -> Result<(), String> {
        if self.sessions.len() >= MAX_SESSIONS {
            self.ctx.rtc.handshakes.fetch_sub(1, Ordering::Relaxed);
            return Err(format!("too many WebRTC sessions ({MAX_SESSIONS})"));
        }
        let NewSession {
            id,
            rtc,
            ufrag,
            key,
            role,
            guard,
        } = ns;
        let now = Instant::now();
        let mut sess = Session {
            rtc,
            ufrag: ufrag.clone(),
            key: key.clone(),
            created: now,
            connected: false,
            in_handshake: true,
            last_stun: now,
            timeout: now,
            addrs: Vec::new(),
            guard,
            video_mid: None,
            video_pt: None,
            audio_mid: None,
            audio_pt: None,
            feed: None,
            settings: SourceSettings {
                gop_cache: true,
                queue_length_ms: 0,
            },
            player: None,
            need_keyframe: true,
            video_seq: random_seq(),
            audio_seq: random_seq(),
            payloads: Vec::new(),
            source: None,
            from_annexb: Default::default(),
            ts_base: None,
            last_pli: None,
            epoch: None,
            audio: None,
            audio_off: false,
            dead: None,
        };
        match role {
            SessionRole::Publisher { source } => sess.source = Some(source),
            SessionRole::Player { settings } => {
                sess.feed = Some(self.ctx.rtc.feeds.get(&self.ctx, &key, settings));
                sess.settings = settings;
            }
        }
        self.by_ufrag.insert(ufrag, id.clone());
        self.sessions.insert(id.clone(), sess);
        self.ctx.rtc.sessions.fetch_add(1, Ordering::Relaxed);
        self.drive(&id);
        Ok(())
    }

    /// Writes what the delivery path handed the players whose queues are listed.
    fn records(&mut self) {
        for q in self.ready.take() {
            let d = q.drain();
            if let Some(why) = d.end {
                self.end(&q.id, why);
                continue;
            }
            let Some(sess) = self.sessions.get_mut(&q.id) else {
                continue;
            };
            for r in &d.records {
                if r.video {
                    write_video(sess, r);
                } else {
                    write_audio(sess, r);
                }
            }
            self.drive(&q.id);
        }
    }

    /// A player connected: it joins the delivery path, reading its stream's feed from the
    /// GOP cache's keyframe on, through a driver of its own and a task that attends it.
    fn start_player(&mut self, id: &str) {
        let Some(sess) = self.sessions.get_mut(id) else {
            return;
        };
        let Some(feed) = sess.feed.as_ref() else {
            return;
        };
        if sess.player.is_some() {
            return;
        }
        let queue = PeerQueue::new(id.to_string(), self.ready.clone());
        let consumer = Consumer::detached(feed.source.clone(), sess.settings.queue_length_ms);
        let driver = PlayerDriver::new(
            Transport::Rtc(RtcTransport {
                queue: queue.clone(),
            }),
            consumer,
            Framer::new(Framing::Rtc, TimeJitter::Off),
            self.ctx.clone(),
            sess.guard.registration.client.clone(),
        );
        let attached = self.ctx.delivery.attach(driver);
        let stop = CancellationToken::new();
        self.tasks
            .spawn(attend_player(attached, queue.clone(), stop.clone()));
        sess.player = Some(PlayerLink {
            queue,
            _stop: stop.drop_guard(),
        });
    }

    /// Polls a session's output until it waits: sends its datagrams, handles its events.
    fn drive(&mut self, id: &str) {
        let mut actions = Vec::new();
        let Some(sess) = self.sessions.get_mut(id) else {
            return;
        };
        loop {
            if sess.dead.is_some() {
                break;
            }
            match sess.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    sess.timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    match self.socket.try_send_to(&t.contents, t.destination) {
                        // Every datagram, players' included: a player's delivery driver
                        // hands over spans, not bytes, and leaves the count to this.
                        Ok(n) => {
                            sess.guard.registration.client.add_send(n as u64);
                            self.ctx
                                .counters
                                .bytes_out
                                .fetch_add(n as u64, Ordering::Relaxed);
                        }
                        // A full socket buffer drops the datagram, as the network would;
                        // NACK and PLI repair it.
                        Err(e) => debug!("rtc: send to {}: {e}", t.destination),
                    }
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        sess.connected = true;
                        if sess.source.is_some() && sess.audio_mid.is_some() {
                            // A publisher's Opus → AAC worker is made once it connected
                            // (not per offer: offers never followed by ICE cost no
                            // thread) and before its media flows, so that the first
                            // packets do not wait for a thread and an encoder: they would
                            // reach the Source far behind the video, and players'
                            // `time_jitter full` would mangle both timelines.
                            start_audio(sess);
                        }
                        actions.push(Action::Connected(id.to_string()));
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        sess.dead = Some("ICE disconnected".into());
                    }
                    Event::MediaAdded(m)
                        if m.kind == MediaKind::Video && sess.video_mid.is_none() =>
                    {
                        sess.video_mid = Some(m.mid);
                        if matches!(m.direction, Direction::SendOnly | Direction::SendRecv) {
                            sess.video_pt = choose_h264(&sess.rtc, m.mid);
                        }
                    }
                    Event::MediaAdded(m)
                        if m.kind == MediaKind::Audio && sess.audio_mid.is_none() =>
                    {
                        sess.audio_mid = Some(m.mid);
                        if matches!(m.direction, Direction::SendOnly | Direction::SendRecv) {
                            sess.audio_pt = payload_params(&sess.rtc, m.mid)
                                .find(|p| p.spec().codec == Codec::Opus)
                                .map(|p| p.pt());
                        }
                    }
                    Event::MediaData(d)
                        if Some(d.mid) == sess.video_mid
                            && d.params.spec().codec == Codec::H264 =>
                    {
                        publish_video(sess, &d.data, d.time, d.network_time);
                        if !d.contiguous {
                            request_keyframe(sess);
                        }
                    }
                    Event::MediaData(d)
                        if Some(d.mid) == sess.audio_mid
                            && sess.source.is_some()
                            && d.params.spec().codec == Codec::Opus =>
                    {
                        publish_audio(sess, &d);
                    }
                    Event::KeyframeRequest(_) => {
                        actions.push(Action::KeyframeWanted(sess.key.clone()));
                    }
                    _ => {}
                },
                Err(e) => {
                    sess.dead = Some(format!("rtc: {e}"));
                }
            }
        }
        if let Some(why) = sess.dead.clone() {
            self.end(id, why);
            return;
        }
        for a in actions {
            match a {
                Action::Connected(id) => self.connected(&id),
                Action::KeyframeWanted(key) => self.keyframe_wanted(&key),
            }
        }
    }

    fn connected(&mut self, id: &str) {
        let Some(sess) = self.sessions.get_mut(id) else {
            return;
        };
        if sess.in_handshake {
            sess.in_handshake = false;
            self.ctx.rtc.handshakes.fetch_sub(1, Ordering::Relaxed);
        }
        info!(
            "rtc {} connected id={id} url={} from {:?} in {} ms",
            if sess.source.is_some() {
                "publisher"
            } else {
                "player"
            },
            sess.key,
            sess.addrs.last(),
            sess.created.elapsed().as_millis()
        );
        if sess.source.is_some() {
            request_keyframe(sess);
        } else {
            // Starts at once on the cached GOP's keyframe (the feed's ring).
            self.start_player(id);
            let key = sess_key(&self.sessions, id);
            if let Some(key) = key {
                self.keyframe_wanted(&key);
            }
        }
        self.drive(id);
    }

    /// A player wants a keyframe: a WebRTC publisher of the stream is asked (PLI); an
    /// RTMP stream's players start from the GOP cache instead.
    fn keyframe_wanted(&mut self, key: &StreamKey) {
        let publisher = self
            .sessions
            .iter()
            .find(|(_, s)| s.source.is_some() && &s.key == key)
            .map(|(id, _)| id.clone());
        if let Some(id) = publisher {
            if let Some(sess) = self.sessions.get_mut(&id) {
                request_keyframe(sess);
            }
            self.drive(&id);
        }
    }

    fn timeouts(&mut self, now: Instant) {
        let due: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.timeout <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(sess) = self.sessions.get_mut(&id) {
                if let Err(e) = sess.rtc.handle_input(Input::Timeout(now)) {
                    sess.dead.get_or_insert(format!("rtc: {e}"));
                }
            }
            self.drive(&id);
        }
    }

    fn sweep(&mut self, now: Instant) {
        let mut ending = Vec::new();
        let mut pli = Vec::new();
        for (id, s) in &self.sessions {
            let why = if !s.connected && now.duration_since(s.created) > HANDSHAKE_TIMEOUT {
                Some(format!(
                    "no ICE and DTLS handshake within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                ))
            } else if s.connected && now.duration_since(s.last_stun) > CONSENT_TIMEOUT {
                Some(format!(
                    "ICE consent expired (no STUN for {} s)",
                    CONSENT_TIMEOUT.as_secs()
                ))
            } else if !s.rtc.is_alive() {
                Some("the peer connection closed".into())
            } else if s.guard.registration.client.kick.is_cancelled() {
                Some(s.guard.registration.client.kick_reason().to_string())
            } else {
                None
            };
            if let Some(why) = why {
                ending.push((id.clone(), why));
            } else if s.source.is_some()
                && s.connected
                && s.last_pli
                    .is_none_or(|t| now.duration_since(t) >= PUBLISHER_PLI_INTERVAL)
            {
                pli.push(id.clone());
            }
        }
        for (id, why) in ending {
            self.end(&id, why);
        }
        for id in pli {
            if let Some(sess) = self.sessions.get_mut(&id) {
                request_keyframe(sess);
            }
            self.drive(&id);
        }
    }

    /// Ends a session: its maps, its feed place, its counters, then its guard (close
    /// line, registry, hooks, publish).
    fn end(&mut self, id: &str, why: String) {
        let Some(mut sess) = self.sessions.remove(id) else {
            return;
        };
        sess.rtc.disconnect();
        self.by_ufrag.remove(&sess.ufrag);
        for a in &sess.addrs {
            if self.by_addr.get(a).is_some_and(|x| x == id) {
                self.by_addr.remove(a);
            }
        }
        if sess.in_handshake {
            self.ctx.rtc.handshakes.fetch_sub(1, Ordering::Relaxed);
        }
        self.ctx.rtc.sessions.fetch_sub(1, Ordering::Relaxed);
        if let Some(link) = sess.player.take() {
            // Its task ends (the guard), its driver is detached and closed with it.
            link.queue.close();
        }
        sess.guard.close_reason = why;
        drop(sess);
    }
}

/// The H.264 payload type to send with: packetization-mode 1, High profile first (what
/// RTMP encoders send), then Main, then whatever the peer offered.
fn choose_h264(rtc: &Rtc, mid: Mid) -> Option<Pt> {
    let mut best: Option<(u8, Pt)> = None;
    for p in payload_params(rtc, mid) {
        let spec = p.spec();
        if spec.codec != Codec::H264 || spec.format.packetization_mode != Some(1) {
            continue;
        }
        let profile = spec.format.profile_level_id.unwrap_or(0) >> 16;
        let rank = match profile {
            0x64 => 3,
            0x4d => 2,
            _ => 1,
        };
        if best.is_none_or(|(r, _)| rank > r) {
            best = Some((rank, p.pt()));
        }
    }
    best.map(|(_, pt)| pt)
}

fn sess_key(sessions: &HashMap<String, Session>, id: &str) -> Option<StreamKey> {
    sessions.get(id).map(|s| s.key.clone())
}

/// A connected WHEP player's task: waits for its driver's hand-over (the queue full, or the
/// stream over) and asks the UDP task to end the session when delivery cannot go on.
/// Holding `attached` keeps the player in its stream's shards; the UDP task stops the task
/// when the session ends.
async fn attend_player(attached: Attached, queue: Arc<PeerQueue>, stop: CancellationToken) {
    let driver = &attached.driver;
    loop {
        if driver.finished() {
            queue.request_end("the publisher left".into());
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            r = driver.attend(PLAYER_SEND_TIMEOUT) => {
                if let Err(e) = r {
                    queue.request_end(format!("delivery: {e}"));
                    break;
                }
            }
        }
    }
    stop.cancelled().await;
}

/// The payload types `mid` may send with: those of ours the peer accepted (what str0m's
/// frame-level writer offers, read here without it, as players' `Rtc`s are in RTP mode).
fn payload_params(rtc: &Rtc, mid: Mid) -> impl Iterator<Item = &PayloadParams> {
    let accepted = rtc.media(mid).map(|m| m.remote_pts()).unwrap_or(&[]);
    rtc.codec_config()
        .params()
        .iter()
        .filter(move |p| accepted.contains(&p.pt()))
}

/// A random first sequence number, low enough that its rollover counter starts at 0.
fn random_seq() -> u64 {
    let mut b = [0u8; 2];
    // Without the OS random source the sequence starts at 0: allowed, only less private.
    let _ = getrandom::fill(&mut b);
    u64::from(u16::from_be_bytes(b) & 0x7fff)
}

/// One video frame to a player: its packets from the stream's history, under the player's
/// own sequence numbers, retransmittable (str0m's cache keeps the shared payloads).
fn write_video(sess: &mut Session, f: &Record) {
    if sess.need_keyframe {
        if !f.keyframe {
            return;
        }
        sess.need_keyframe = false;
    }
    let (Some(mid), Some(pt)) = (sess.video_mid, sess.video_pt) else {
        return;
    };
    let (Some(span), Some(feed)) = (Span::decode(&f.data), sess.feed.as_ref()) else {
        return;
    };
    sess.payloads.clear();
    if !feed.extra.get(span, &mut sess.payloads) {
        // The player is further behind than the stream keeps: on to the next keyframe.
        debug!(
            "rtc: player {} fell behind the stream's packet history; waits for a keyframe",
            sess.guard.registration.client.id
        );
        sess.need_keyframe = true;
        return;
    }
    let mut api = sess.rtc.direct_api();
    let Some(tx) = api.stream_tx_by_mid(mid, None) else {
        return;
    };
    let time = f.time_ms.wrapping_mul(90) as u32;
    let now = Instant::now();
    let last = sess.payloads.len().saturating_sub(1);
    for (i, payload) in sess.payloads.drain(..).enumerate() {
        let seq = SeqNo::from(sess.video_seq);
        sess.video_seq += 1;
        tx.write_rtp(
            RtpWrite::new(pt, seq, time, now, payload)
                .marker(i == last)
                .nackable(true),
        );
    }
}

/// One Opus packet to a player (not retransmitted, as str0m's own Opus sender does).
fn write_audio(sess: &mut Session, a: &Record) {
    let (Some(mid), Some(pt)) = (sess.audio_mid, sess.audio_pt) else {
        return;
    };
    let mut api = sess.rtc.direct_api();
    let Some(tx) = api.stream_tx_by_mid(mid, None) else {
        return;
    };
    let seq = SeqNo::from(sess.audio_seq);
    sess.audio_seq += 1;
    let time = a.time_ms.wrapping_mul(48) as u32;
    tx.write_rtp(RtpWrite::new(pt, seq, time, Instant::now(), a.data.clone()));
}

fn request_keyframe(sess: &mut Session) {
    let now = Instant::now();
    if sess
        .last_pli
        .is_some_and(|t| now.duration_since(t) < PLI_THROTTLE)
    {
        return;
    }
    let Some(mid) = sess.video_mid else {
        return;
    };
    if let Some(mut w) = sess.rtc.writer(mid) {
        if w.request_keyframe(None, KeyframeRequestKind::Pli).is_ok() {
            sess.last_pli = Some(now);
        }
    }
}

/// A WHIP publisher's access unit into its Source, as FLV AVC frames.
fn publish_video(sess: &mut Session, data: &[u8], time: MediaTime, arrived: Instant) {
    if sess.source.is_none() {
        return;
    }
    let ms = time.rebase(Frequency::MILLIS).numer();
    let first_ms = session_ms(sess, arrived);
    let base = *sess.ts_base.get_or_insert(ms.saturating_sub(first_ms));
    let Some(source) = sess.source.as_ref() else {
        return;
    };
    let ts = ms.saturating_sub(base);
    let v = sess.from_annexb.access_unit(data);
    let kind = rtmp::server::MediaKind::Video;
    // With audio, video goes through the interleaver that orders it with the AAC.
    let interleaved = sess.audio.as_ref().map(|a| &a.interleaved);
    let push = |f| match interleaved {
        Some(i) => i.push(f),
        None => source.push(f),
    };
    if let Some(seq) = v.sequence_header {
        if let Some(f) = make_frame(kind, ts, Bytes::from(seq)) {
            push(f);
        }
    }
    if let Some(frame) = v.frame {
        if let Some(f) = make_frame(kind, ts, Bytes::from(frame)) {
            push(f);
        }
    }
}

/// Where `arrived` is on a publisher's clock (ms since its first media packet).
fn session_ms(sess: &mut Session, arrived: Instant) -> u64 {
    let epoch = *sess.epoch.get_or_insert(arrived);
    arrived.saturating_duration_since(epoch).as_millis() as u64
}

/// A WHIP publisher's Opus packet to its Opus → AAC worker (started with the first one).
fn publish_audio(sess: &mut Session, d: &str0m::media::MediaData) {
    if sess.audio_off {
        return;
    }
    let first_ms = session_ms(sess, d.network_time);
    start_audio(sess);
    let rtp48 = d.time.rebase(Frequency::FORTY_EIGHT_KHZ).numer();
    if let Some(a) = sess.audio.as_mut() {
        a.push(rtp48, first_ms, d.data.clone());
    }
}

/// Starts a publisher's Opus → AAC worker, once (or says once why it cannot).
fn start_audio(sess: &mut Session) {
    if sess.audio.is_some() || sess.audio_off {
        return;
    }
    let Some(source) = sess.source.clone() else {
        return;
    };
    let id = sess.guard.registration.client.id.clone();
    match WhipAudio::start(source, id.clone()) {
        Ok(a) => sess.audio = Some(a),
        Err(e) => {
            warn!("rtc: publisher {id}: its audio is left out (no Opus → AAC: {e})");
            sess.audio_off = true;
        }
    }
}
