//! SRS's "pithy print": every `pithy_print_ms` the log gets one line per live stream
//! (publisher, kbps in and out, frames per second, players) and one per publisher or
//! player connected for more than an interval (kbps in and out).
//!
//! Why its own service and its own counters: the sampler's rates span 30 s, while a
//! pithy line says what happened since the previous line; keeping the previous byte
//! and frame totals here costs one map entry per client and stream, read once per
//! interval. The client lines are capped at [`MAX_CLIENT_LINES`] per interval (then one
//! line says how many were left out), so 20,000 players do not flood the log.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use super::ClientKind;
use crate::context::Context;
use crate::hub::StreamKey;
use crate::service::{Service, ServiceFuture, Shutdown};
use crate::util::lock;

/// Client lines per interval at most; the rest are counted in one line.
pub const MAX_CLIENT_LINES: usize = 1_000;
/// How often the service looks at the config again while pithy printing is off, so
/// that a reload turning it on takes effect within this delay.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// Byte and frame totals seen at the previous print.
#[derive(Debug, Default)]
pub struct Pithy {
    /// By source id: (received bytes, frames).
    streams: HashMap<String, (u64, u64)>,
    /// By client id: (sent bytes, received bytes).
    clients: HashMap<String, (u64, u64)>,
    last: Option<Instant>,
}

/// kbit/s of `bytes` over `secs` (0 when no time passed).
fn kbps(bytes: u64, secs: f64) -> u64 {
    if secs <= 0.0 {
        return 0;
    }
    (bytes as f64 * 8.0 / 1000.0 / secs).round() as u64
}

fn stream_name(k: &StreamKey) -> String {
    format!("{}/{}/{}", k.vhost, k.app, k.stream)
}

impl Pithy {
    /// The lines of one print at `now`, `interval` after the previous one (the first
    /// print measures from the start of each client and stream instead). Also records
    /// the totals for the next print.
    pub fn lines(&mut self, ctx: &Context, now: Instant, interval: Duration) -> Vec<String> {
        let mut out = Vec::new();
        let since_last = self.last.map(|t| now.saturating_duration_since(t));
        self.last = Some(now);

        // Clients first: the stream lines add up their players' bytes.
        let clients = ctx.clients.list();
        let mut players: HashMap<StreamKey, (usize, u64)> = HashMap::new();
        let mut client_lines = Vec::new();
        let mut left_out = 0usize;
        let mut totals = HashMap::with_capacity(clients.len());
        for c in &clients {
            let send = c.send_bytes.load(Ordering::Relaxed);
            let recv = c.recv_bytes.load(Ordering::Relaxed);
            totals.insert(c.id.clone(), (send, recv));
            let alive = now.saturating_duration_since(c.started);
            let (secs, (ds, dr)) = match (self.clients.get(&c.id), since_last) {
                (Some(&(ps, pr)), Some(d)) => (
                    d.as_secs_f64(),
                    (send.saturating_sub(ps), recv.saturating_sub(pr)),
                ),
                _ => (alive.as_secs_f64(), (send, recv)),
            };
            let (kind, stream) = {
                let st = lock(&c.state);
                (st.kind, st.stream.clone())
            };
            if kind == ClientKind::Unknown {
                continue;
            }
            let Some(stream) = stream else { continue };
            if !kind.is_publish() {
                let e = players.entry(stream.clone()).or_default();
                e.0 += 1;
                e.1 = e.1.saturating_add(ds);
            }
            if alive < interval {
                continue;
            }
            if client_lines.len() >= MAX_CLIENT_LINES {
                left_out += 1;
                continue;
            }
            client_lines.push(format!(
                "pithy: client {} {} {}: in {} kbps, out {} kbps, alive {}s",
                c.id,
                kind.srs_name(),
                stream_name(&stream),
                kbps(dr, secs),
                kbps(ds, secs),
                alive.as_secs()
            ));
        }
        self.clients = totals;

        let sources = ctx.hub.sources();
        let mut totals = HashMap::with_capacity(sources.len());
        for s in &sources {
            let Some(publisher) = s.publisher() else {
                continue;
            };
            let recv = s.stats.recv_bytes.load(Ordering::Relaxed);
            let frames = s.stats.frames.load(Ordering::Relaxed);
            totals.insert(s.id.clone(), (recv, frames));
            let secs = match (self.streams.get(&s.id), since_last) {
                (Some(_), Some(d)) => d.as_secs_f64(),
                _ => now.saturating_duration_since(publisher.since).as_secs_f64(),
            };
            let (pr, pf) = self.streams.get(&s.id).copied().unwrap_or((0, 0));
            let (dr, df) = (recv.saturating_sub(pr), frames.saturating_sub(pf));
            let (count, sent) = players.get(&s.key).copied().unwrap_or((0, 0));
            let fps = if secs > 0.0 { df as f64 / secs } else { 0.0 };
            out.push(format!(
                "pithy: stream {} publisher {}: in {} kbps, out {} kbps, {:.1} frames/s, {} players",
                stream_name(&s.key),
                publisher.client_id,
                kbps(dr, secs),
                kbps(sent, secs),
                fps,
                count
            ));
        }
        self.streams = totals;
        out.extend(client_lines);
        if left_out > 0 {
            out.push(format!(
                "pithy: {left_out} more clients not listed (at most {MAX_CLIENT_LINES} a print)"
            ));
        }
        out
    }
}

/// The pithy print service. It idles (re-reading the config) while `pithy_print_ms`
/// is 0, and reads the interval again after every print, so a reload applies it.
pub struct PithyPrint;

impl Service for PithyPrint {
    fn name(&self) -> &'static str {
        "pithy"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, mut shutdown: Shutdown) -> ServiceFuture {
        Box::pin(async move {
            let mut state = Pithy::default();
            loop {
                let interval = ctx.config().pithy_print;
                let wait = if interval.is_zero() {
                    IDLE_RECHECK
                } else {
                    interval
                };
                tokio::select! {
                    _ = shutdown.requested() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                let interval = ctx.config().pithy_print;
                if interval.is_zero() {
                    // Off: forget the totals so the first print after a reload turns it
                    // on measures from the clients' start, not from a stale print.
                    state = Pithy::default();
                    continue;
                }
                for line in state.lines(&ctx, Instant::now(), interval) {
                    info!("{line}");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hub::{Frame, FrameKind, SourceSettings};

    fn key(stream: &str) -> StreamKey {
        StreamKey {
            vhost: "__defaultVhost__".into(),
            app: "live".into(),
            stream: stream.into(),
        }
    }

    #[tokio::test]
    async fn lines_report_interval_rates_and_cap_client_lines() {
        let ctx = Context::new(Config::default());
        let settings = SourceSettings {
            gop_cache: true,
            queue_length_ms: 10_000,
        };
        let src = ctx.hub.source(&key("s"), settings);
        src.publish("pub").expect("publish");
        let peer = "127.0.0.1:1".parse().expect("addr");
        let publisher = ctx.clients.register("pub", peer);
        publisher.client.update(|c| {
            c.kind = ClientKind::FmlePublish;
            c.stream = Some(key("s"));
        });
        let mut players = Vec::new();
        for i in 0..MAX_CLIENT_LINES + 4 {
            let p = ctx.clients.register(&format!("play{i}"), peer);
            p.client.update(|c| {
                c.kind = ClientKind::RtmpPlay;
                c.stream = Some(key("s"));
            });
            players.push(p);
        }
        // A client that never published nor played gets no line.
        let _idle = ctx.clients.register("idle", peer);

        let interval = Duration::from_secs(10);
        let mut pithy = Pithy::default();
        let t0 = Instant::now() + Duration::from_secs(1);
        let first = pithy.lines(&ctx, t0, interval);
        // Nobody has been connected for an interval yet: only the stream line.
        assert_eq!(first.len(), 1, "{first:?}");

        // 10 s later: 12,500 bytes in (10 kbps), 25,000 out to the first player
        // (20 kbps), 250 frames (25 frames/s); everyone is now 11 s old.
        publisher.client.add_recv(12_500);
        players[0].client.add_send(25_000);
        for i in 0..250u64 {
            src.push(Frame {
                kind: FrameKind::Audio,
                timestamp: i * 40,
                payload: bytes::Bytes::from(vec![0xaf, 1, 2, 3]),
                keyframe: false,
                sequence_header: false,
            });
        }
        let recv = src.stats.recv_bytes.load(Ordering::Relaxed);
        let lines = pithy.lines(&ctx, t0 + interval, interval);
        let stream = &lines[0];
        assert!(
            stream.starts_with("pithy: stream __defaultVhost__/live/s publisher pub: "),
            "{stream}"
        );
        assert!(
            recv > 0 && stream.contains(&format!("in {} kbps", kbps(recv, 10.0))),
            "{stream} (recv {recv})"
        );
        assert!(stream.contains("out 20 kbps"), "{stream}");
        assert!(stream.contains("25.0 frames/s"), "{stream}");
        assert!(stream.contains(&format!("{} players", MAX_CLIENT_LINES + 4)));
        assert!(
            lines.contains(
                &"pithy: client pub fmle-publish __defaultVhost__/live/s: in 10 kbps, out 0 kbps, alive 11s"
                    .to_string()
            ),
            "{:?}",
            &lines[..3]
        );
        assert!(lines.iter().any(|l| l.starts_with(
            "pithy: client play0 rtmp-play __defaultVhost__/live/s: in 0 kbps, out 20 kbps"
        )));
        assert!(!lines.iter().any(|l| l.contains("idle")));
        // 1 stream line, MAX_CLIENT_LINES client lines, one line for the 5 left out.
        assert_eq!(lines.len(), MAX_CLIENT_LINES + 2);
        assert_eq!(
            lines.last().map(String::as_str),
            Some("pithy: 5 more clients not listed (at most 1000 a print)")
        );
    }
}
