//! WHEP load: N WebRTC players of one stream, each a `str0m::Rtc` of its own (the stack
//! sluice's server side uses) on its own UDP socket.
//!
//! A player POSTs an SDP offer (H.264 and Opus, receive only) to the WHEP URL, takes the
//! `201 Created` answer, runs ICE (controlling; the server is ICE-lite), DTLS and SRTP over
//! UDP, and counts the video and audio frames and bytes str0m hands it. str0m answers
//! with what a browser sends back: receiver reports, NACKs for gaps, PLI when a keyframe is
//! missing. Chromium costs a core for a handful of players; this client costs a little CPU
//! per player (its H.264 depacketization, SRTP decryption), so 100 or more fit on a core
//! beside the server being measured. When the run ends every player DELETEs its resource.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::http::{parse_head, HttpUrl};
use crate::procstat::{CpuMark, Target};

/// Largest answer or error body read.
const MAX_RESPONSE: usize = 256 * 1024;

/// HTTP requests in flight at once: sluice's API serves 64 connections and refuses more
/// (every player DELETEs its resource at the same moment when the run ends).
const HTTP_IN_FLIGHT: usize = 32;

/// What one player has received so far (read by the measuring thread while it runs).
#[derive(Debug, Default)]
pub struct Counters {
    pub connected: AtomicBool,
    pub video_frames: AtomicU64,
    pub video_bytes: AtomicU64,
    pub audio_frames: AtomicU64,
    pub audio_bytes: AtomicU64,
    /// Frames str0m marked as following a gap (a lost packet not recovered in time).
    pub gaps: AtomicU64,
    pub error: std::sync::Mutex<Option<String>>,
}

impl Counters {
    fn fail(&self, e: String) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
    }
}

/// What the command runs.
#[derive(Debug, Clone)]
pub struct WhepConfig {
    /// `http://HOST:PORT/rtc/v1/whep/?app=APP&stream=NAME`.
    pub url: String,
    pub clients: usize,
    /// New players per second (0 = all at once).
    pub ramp: f64,
    /// Seconds after every player connected (or `connect_timeout`) before measuring.
    pub warmup: Duration,
    pub duration: Duration,
    pub connect_timeout: Duration,
    pub server_pid: Option<u32>,
    pub threads: usize,
}

/// One player's figures over the measured window.
#[derive(Debug, Clone)]
pub struct PlayerResult {
    pub connected: bool,
    pub video_fps: f64,
    pub audio_fps: f64,
    pub video_kbps: f64,
    pub audio_kbps: f64,
    pub gaps: u64,
    pub error: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct WhepReport {
    pub clients: usize,
    pub connected: usize,
    pub seconds: f64,
    pub server_cpu_percent: Option<f64>,
    pub server_rss_kib: Option<u64>,
    pub client_cpu_percent: Option<f64>,
    pub video_fps_min: f64,
    pub video_fps_median: f64,
    pub video_fps_max: f64,
    pub audio_fps_min: f64,
    pub audio_fps_median: f64,
    pub video_kbps_median: f64,
    pub gaps_total: u64,
    pub errors: Vec<String>,
    pub players: Vec<PlayerResult>,
}

impl WhepReport {
    pub fn to_json(&self) -> serde_json::Value {
        let players: Vec<_> = self
            .players
            .iter()
            .map(|p| {
                serde_json::json!({
                    "connected": p.connected, "video_fps": p.video_fps,
                    "audio_fps": p.audio_fps, "video_kbps": p.video_kbps,
                    "audio_kbps": p.audio_kbps, "gaps": p.gaps, "error": p.error,
                })
            })
            .collect();
        serde_json::json!({
            "clients": self.clients,
            "connected": self.connected,
            "seconds": self.seconds,
            "server_cpu_percent": self.server_cpu_percent,
            "server_rss_kib": self.server_rss_kib,
            "client_cpu_percent": self.client_cpu_percent,
            "video_fps_min": self.video_fps_min,
            "video_fps_median": self.video_fps_median,
            "video_fps_max": self.video_fps_max,
            "audio_fps_min": self.audio_fps_min,
            "audio_fps_median": self.audio_fps_median,
            "video_kbps_median": self.video_kbps_median,
            "gaps_total": self.gaps_total,
            "errors": self.errors,
            "players": players,
        })
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        s += &format!(
            "whep players  {} of {} connected, measured {:.1} s\n",
            self.connected, self.clients, self.seconds
        );
        s += &format!(
            "server        CPU {} % of one core, RSS {} KiB\n",
            opt(self.server_cpu_percent),
            self.server_rss_kib.map_or("-".into(), |v| v.to_string())
        );
        s += &format!(
            "client        CPU {} % of one core\n",
            opt(self.client_cpu_percent)
        );
        s += &format!(
            "video fps     min {:.1} median {:.1} max {:.1} (per player), median {:.0} kb/s\n",
            self.video_fps_min, self.video_fps_median, self.video_fps_max, self.video_kbps_median
        );
        s += &format!(
            "audio fps     min {:.1} median {:.1} (Opus packets per second)\n",
            self.audio_fps_min, self.audio_fps_median
        );
        s += &format!("gaps          {} frames after a loss\n", self.gaps_total);
        for e in self.errors.iter().take(5) {
            s += &format!("  error: {e}\n");
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    #[error("{0}")]
    Http(#[from] crate::http::HttpError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs the players, measures, stops them. Blocks.
pub fn run(cfg: &WhepConfig) -> Result<WhepReport, WhepError> {
    let url = HttpUrl::parse(&cfg.url)?;
    // Worker threads of their own: this thread only paces, waits and measures.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads.max(1))
        .enable_all()
        .build()
        .map_err(WhepError::Runtime)?;
    let crypto = Arc::new(str0m::crypto::from_feature_flags());
    let stop = Arc::new(AtomicBool::new(false));
    let http = Arc::new(tokio::sync::Semaphore::new(HTTP_IN_FLIGHT));
    let counters: Vec<Arc<Counters>> = (0..cfg.clients).map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    let started = Instant::now();
    for (i, c) in counters.iter().enumerate() {
        if cfg.ramp > 0.0 {
            let at = started + Duration::from_secs_f64(i as f64 / cfg.ramp);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        let (url, c, stop, crypto) = (url.clone(), c.clone(), stop.clone(), crypto.clone());
        let http = http.clone();
        tasks.push(rt.spawn(async move {
            if let Err(e) = player(&url, &c, &stop, crypto, &http).await {
                c.fail(e);
            }
        }));
    }
    // Every player connected (or given up on), then the warm-up, then the window.
    let deadline = Instant::now() + cfg.connect_timeout;
    while Instant::now() < deadline
        && counters.iter().any(|c| {
            !c.connected.load(Ordering::Relaxed)
                && c.error.lock().map(|e| e.is_none()).unwrap_or(false)
        })
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(cfg.warmup);
    let snap = |c: &Counters| {
        [
            c.video_frames.load(Ordering::Relaxed),
            c.video_bytes.load(Ordering::Relaxed),
            c.audio_frames.load(Ordering::Relaxed),
            c.audio_bytes.load(Ordering::Relaxed),
            c.gaps.load(Ordering::Relaxed),
        ]
    };
    let server = cfg.server_pid.map(Target::Pid);
    let before: Vec<_> = counters.iter().map(|c| snap(c)).collect();
    let server_mark = server.and_then(CpuMark::take);
    let client_mark = CpuMark::take(Target::SelfProcess);
    let t0 = Instant::now();
    std::thread::sleep(cfg.duration);
    let secs = t0.elapsed().as_secs_f64();
    let after: Vec<_> = counters.iter().map(|c| snap(c)).collect();
    let server_cpu = server
        .and_then(CpuMark::take)
        .zip(server_mark)
        .map(|(later, m)| m.percent_until(&later));
    let client_cpu = CpuMark::take(Target::SelfProcess)
        .zip(client_mark)
        .map(|(later, m)| m.percent_until(&later));
    let server_rss_kib = server.and_then(|t| t.rss_bytes()).map(|b| b / 1024);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    });

    let players: Vec<PlayerResult> = counters
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(c, (b, a))| PlayerResult {
            connected: c.connected.load(Ordering::Relaxed),
            video_fps: (a[0] - b[0]) as f64 / secs,
            video_kbps: (a[1] - b[1]) as f64 * 8.0 / 1000.0 / secs,
            audio_fps: (a[2] - b[2]) as f64 / secs,
            audio_kbps: (a[3] - b[3]) as f64 * 8.0 / 1000.0 / secs,
            gaps: a[4] - b[4],
            error: c.error.lock().ok().and_then(|e| e.clone()),
        })
        .collect();
    let sorted = |f: fn(&PlayerResult) -> f64| {
        let mut v: Vec<f64> = players.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let median = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(0.0);
    let vfps = sorted(|p| p.video_fps);
    let afps = sorted(|p| p.audio_fps);
    let vkbps = sorted(|p| p.video_kbps);
    let mut errors: Vec<String> = players.iter().filter_map(|p| p.error.clone()).collect();
    errors.dedup();
    Ok(WhepReport {
        clients: cfg.clients,
        connected: players.iter().filter(|p| p.connected).count(),
        seconds: secs,
        server_cpu_percent: server_cpu,
        server_rss_kib,
        client_cpu_percent: client_cpu,
        video_fps_min: vfps.first().copied().unwrap_or(0.0),
        video_fps_median: median(&vfps),
        video_fps_max: vfps.last().copied().unwrap_or(0.0),
        audio_fps_min: afps.first().copied().unwrap_or(0.0),
        audio_fps_median: median(&afps),
        video_kbps_median: median(&vkbps),
        gaps_total: players.iter().map(|p| p.gaps).sum(),
        errors,
        players,
    })
}

/// One WHEP player, until `stop`.
async fn player(
    url: &HttpUrl,
    counters: &Counters,
    stop: &AtomicBool,
    crypto: Arc<str0m::crypto::CryptoProvider>,
    http: &tokio::sync::Semaphore,
) -> Result<(), String> {
    let host_ip: std::net::IpAddr = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("resolving {}: {e}", url.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", url.host))?
        .ip();
    let socket = UdpSocket::bind(SocketAddr::new(host_ip, 0))
        .await
        .map_err(|e| format!("UDP bind: {e}"))?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut rtc = Rtc::builder()
        .set_crypto_provider(crypto)
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    let cand = Candidate::host(local, "udp").map_err(|e| format!("candidate: {e}"))?;
    rtc.add_local_candidate(cand);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().ok_or("no offer made")?;
    let permit = http.acquire().await.map_err(|e| e.to_string())?;
    let (status, location, body) =
        request(url, "POST", &url.path, Some(&offer.to_sdp_string())).await?;
    drop(permit);
    if status != 201 {
        return Err(format!("WHEP POST: {status} {}", body.trim()));
    }
    let answer = SdpAnswer::from_sdp_string(&body).map_err(|e| format!("answer: {e}"))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| format!("accepting the answer: {e}"))?;

    let mut buf = vec![0u8; 2000];
    let result = drive(&mut rtc, &socket, local, &mut buf, counters, stop).await;
    if let Some(loc) = location {
        // The resource, absolute or a path on the same server.
        let path = match HttpUrl::parse(&loc) {
            Ok(u) => u.path,
            Err(_) => loc,
        };
        if let Ok(_permit) = http.acquire().await {
            let _ = request(url, "DELETE", &path, None).await;
        }
    }
    result
}

/// The str0m loop: outputs sent, timeouts fed, datagrams in, until `stop`.
async fn drive(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    local: SocketAddr,
    buf: &mut [u8],
    counters: &Counters,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut kinds: Vec<(str0m::media::Mid, MediaKind)> = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let timeout = match rtc.poll_output().map_err(|e| format!("str0m: {e}"))? {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                socket
                    .send_to(&t.contents, t.destination)
                    .await
                    .map_err(|e| format!("UDP send: {e}"))?;
                continue;
            }
            Output::Event(e) => {
                match e {
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Err("ICE disconnected".into())
                    }
                    Event::Connected => counters.connected.store(true, Ordering::Relaxed),
                    Event::MediaAdded(m) => kinds.push((m.mid, m.kind)),
                    Event::MediaData(d) => {
                        let kind = kinds
                            .iter()
                            .find(|(mid, _)| *mid == d.mid)
                            .map(|(_, k)| *k)
                            .unwrap_or_else(|| d.params.spec().codec.kind());
                        let len = d.data.len() as u64;
                        if !d.contiguous {
                            counters.gaps.fetch_add(1, Ordering::Relaxed);
                        }
                        let (frames, bytes) = match kind {
                            MediaKind::Video => (&counters.video_frames, &counters.video_bytes),
                            MediaKind::Audio => (&counters.audio_frames, &counters.audio_bytes),
                        };
                        frames.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(len, Ordering::Relaxed);
                    }
                    _ => {}
                }
                continue;
            }
        };
        // A timeout that is due goes in first: with datagrams always queued (many players
        // on one thread) the receive below would never time out, and str0m's timers (STUN
        // consent checks, receiver reports, NACKs) would starve.
        let now = Instant::now();
        if timeout <= now {
            rtc.handle_input(Input::Timeout(now))
                .map_err(|e| format!("str0m: {e}"))?;
            continue;
        }
        // Wake at str0m's timeout, at the latest every 100 ms to see `stop`.
        let wait = timeout
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        match tokio::time::timeout(wait, socket.recv_from(buf)).await {
            Ok(Ok((n, source))) => {
                let Ok(contents) = buf[..n].try_into() else {
                    continue; // not STUN, DTLS or RTP: ignored
                };
                let input = Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: local,
                        contents,
                    },
                );
                rtc.handle_input(input).map_err(|e| format!("str0m: {e}"))?;
            }
            Ok(Err(e)) => return Err(format!("UDP receive: {e}")),
            Err(_) => {
                rtc.handle_input(Input::Timeout(Instant::now()))
                    .map_err(|e| format!("str0m: {e}"))?;
            }
        }
    }
}

/// One HTTP/1.0 request on its own connection: status, `Location`, body.
async fn request(
    url: &HttpUrl,
    method: &str,
    path: &str,
    sdp: Option<&str>,
) -> Result<(u16, Option<String>, String), String> {
    let mut stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("{method} {path}: connect: {e}"))?;
    let body = sdp.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {}:{}\r\nUser-Agent: sluice-bench\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        url.host,
        url.port,
        body.len()
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("{method} {path}: send: {e}"))?;
    let mut resp = Vec::new();
    (&mut stream)
        .take(MAX_RESPONSE as u64)
        .read_to_end(&mut resp)
        .await
        .map_err(|e| format!("{method} {path}: read: {e}"))?;
    parse_response(&String::from_utf8_lossy(&resp)).map_err(|e| format!("{method} {path}: {e}"))
}

/// Status, `Location` and body of a whole HTTP/1.x response.
fn parse_response(text: &str) -> Result<(u16, Option<String>, String), String> {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "no response head".to_string())?;
    let status = parse_head(head).map_err(|e| e.to_string())?.status;
    let location = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("location"))
        .map(|(_, v)| v.trim().to_string());
    Ok((status, location, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn answer_and_location() {
        let r = "HTTP/1.1 201 Created\r\nContent-Type: application/sdp\r\nlocation: /rtc/v1/whep/?action=delete&token=x\r\n\r\nv=0\r\n";
        let (status, loc, body) = parse_response(r).expect("a response");
        assert_eq!(status, 201);
        assert_eq!(loc.as_deref(), Some("/rtc/v1/whep/?action=delete&token=x"));
        assert_eq!(body, "v=0\r\n");
    }

    #[test]
    fn refusal_without_location() {
        let (status, loc, body) =
            parse_response("HTTP/1.0 404 Not Found\r\n\r\nno stream").expect("a response");
        assert_eq!((status, loc, body.as_str()), (404, None, "no stream"));
        assert!(parse_response("garbage").is_err());
        assert!(parse_response("SIP/2.0 200 OK\r\n\r\n").is_err());
    }
}
