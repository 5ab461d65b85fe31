//! Bit rates over the last 30 s (SRS's `kbps.recv_30s` / `send_30s`) for the server,
//! each vhost, stream and client, and the server's byte totals.
//!
//! Why a sampler and not counters on the hot path: connections already count their
//! bytes in their [`Client`]; every [`SAMPLE_INTERVAL`] one task walks the clients
//! once, turns each client's growth since the last walk into deltas for its stream
//! and vhost, and records the running totals (the server's are the connections'
//! own `Counters`). A rate is then the growth
//! of a total across the samples of the window. A player writing frames pays nothing
//! extra.
//!
//! The sampler keeps the `Arc<Client>` of every client it saw, so the last bytes of a
//! client that left between two samples are still counted (its counters outlive its
//! registry entry), then forgets it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::debug;

use super::system::CpuSampler;
use super::{Client, ClientKind};
use crate::context::Context;
use crate::hub::StreamKey;
use crate::service::{Service, ServiceFuture, Shutdown};
use crate::util::lock;

/// How often the sampler runs (SRS samples its kbps every few seconds too).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// The window of the `_30s` rates.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Samples kept per series: enough to span the window.
const MAX_SAMPLES: usize = (WINDOW.as_secs() / SAMPLE_INTERVAL.as_secs()) as usize + 1;

/// A pair of rates in kbit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kbps {
    pub recv_30s: u64,
    pub send_30s: u64,
}

/// Running byte totals of one thing and its recent samples.
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub send_bytes: u64,
    pub recv_bytes: u64,
    samples: VecDeque<(Instant, u64, u64)>,
}

impl Series {
    fn add(&mut self, send: u64, recv: u64) {
        self.send_bytes = self.send_bytes.saturating_add(send);
        self.recv_bytes = self.recv_bytes.saturating_add(recv);
    }

    fn sample(&mut self, now: Instant) {
        self.samples
            .push_back((now, self.send_bytes, self.recv_bytes));
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// Growth between the oldest and newest sample of the window, in kbit/s.
    pub fn kbps(&self) -> Kbps {
        let (Some(old), Some(new)) = (self.samples.front(), self.samples.back()) else {
            return Kbps::default();
        };
        let secs = new.0.saturating_duration_since(old.0).as_secs_f64();
        if secs <= 0.0 {
            return Kbps::default();
        }
        let rate =
            |a: u64, b: u64| (b.saturating_sub(a) as f64 * 8.0 / 1000.0 / secs).round() as u64;
        Kbps {
            send_30s: rate(old.1, new.1),
            recv_30s: rate(old.2, new.2),
        }
    }
}

#[derive(Debug)]
struct Tracked {
    client: Arc<Client>,
    last_send: u64,
    last_recv: u64,
    series: Series,
}

#[derive(Debug, Default)]
struct Inner {
    server: Series,
    vhosts: HashMap<String, Series>,
    /// By source id.
    streams: HashMap<String, Series>,
    clients: HashMap<String, Tracked>,
}

/// What the sampler has measured; read by the API and the metrics.
#[derive(Debug, Default)]
pub struct Rates {
    inner: Mutex<Inner>,
    pub cpu: CpuSampler,
}

impl Rates {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub fn server(&self) -> Series {
        self.lock().server.clone()
    }

    pub fn vhost(&self, name: &str) -> Series {
        self.lock().vhosts.get(name).cloned().unwrap_or_default()
    }

    /// Of a source, by its id: `send_bytes` is what its players were sent; its
    /// `recv_bytes` comes from the source's own counter (see [`Rates::sample`]).
    pub fn stream(&self, source_id: &str) -> Series {
        self.lock()
            .streams
            .get(source_id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn client(&self, id: &str) -> Kbps {
        self.lock()
            .clients
            .get(id)
            .map(|t| t.series.kbps())
            .unwrap_or_default()
    }

    /// One sampling pass at `now`: one walk over the clients, one over the sources.
    pub fn sample(&self, ctx: &Context, now: Instant) {
        let sources = ctx.hub.sources();
        let by_key: HashMap<&StreamKey, &str> =
            sources.iter().map(|s| (&s.key, s.id.as_str())).collect();
        let clients = ctx.clients.list();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut seen: HashMap<String, Tracked> = HashMap::with_capacity(clients.len());
        let mut stream_send: HashMap<&str, u64> = HashMap::new();
        let (mut total_send, mut total_recv) = (0u64, 0u64);

        // Current clients, plus the final bytes of those that left since last time.
        let gone: Vec<Tracked> = {
            let mut old = std::mem::take(&mut inner.clients);
            for c in &clients {
                let t = old.remove(&c.id).unwrap_or_else(|| Tracked {
                    client: c.clone(),
                    last_send: 0,
                    last_recv: 0,
                    series: Series::default(),
                });
                seen.insert(c.id.clone(), t);
            }
            old.into_values().collect()
        };
        let mut account = |t: &mut Tracked| {
            let send = t.client.send_bytes.load(Ordering::Relaxed);
            let recv = t.client.recv_bytes.load(Ordering::Relaxed);
            let (ds, dr) = (
                send.saturating_sub(t.last_send),
                recv.saturating_sub(t.last_recv),
            );
            t.last_send = send;
            t.last_recv = recv;
            t.series.add(ds, dr);
            total_send = total_send.saturating_add(ds);
            total_recv = total_recv.saturating_add(dr);
            let st = lock(&t.client.state);
            if let Some(key) = &st.stream {
                if ds > 0 || dr > 0 {
                    inner
                        .vhosts
                        .entry(key.vhost.clone())
                        .or_default()
                        .add(ds, dr);
                }
                let plays = !st.kind.is_publish() && st.kind != ClientKind::Unknown;
                if plays && ds > 0 {
                    if let Some(id) = by_key.get(key) {
                        let e = stream_send.entry(id).or_default();
                        *e = e.saturating_add(ds);
                    }
                }
            }
        };
        for t in seen.values_mut() {
            account(t);
        }
        for mut t in gone {
            account(&mut t);
        }

        // The server's totals are the connections' own counters, which also see bytes
        // of requests that are not clients (files, the API).
        inner.server.send_bytes = ctx.counters.bytes_out.load(Ordering::Relaxed);
        inner.server.recv_bytes = ctx.counters.bytes_in.load(Ordering::Relaxed);
        inner.server.sample(now);
        debug!("kbps sample: clients sent {total_send} and received {total_recv} bytes");
        for v in inner.vhosts.values_mut() {
            v.sample(now);
        }
        let mut streams = HashMap::with_capacity(sources.len());
        for s in &sources {
            let mut series = inner.streams.remove(&s.id).unwrap_or_default();
            series.add(stream_send.get(s.id.as_str()).copied().unwrap_or(0), 0);
            series.recv_bytes = s.stats.recv_bytes.load(Ordering::Relaxed);
            series.sample(now);
            streams.insert(s.id.clone(), series);
        }
        inner.streams = streams;
        for t in seen.values_mut() {
            t.series.sample(now);
        }
        inner.clients = seen;
    }
}

/// The sampler service: samples rates and CPU every [`SAMPLE_INTERVAL`] until the
/// server stops. It holds no work that must finish: it returns at once.
pub struct Sampler;

impl Service for Sampler {
    fn name(&self) -> &'static str {
        "stats"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, mut shutdown: Shutdown) -> ServiceFuture {
        Box::pin(async move {
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.requested() => return,
                    _ = tick.tick() => {}
                }
                let started = Instant::now();
                ctx.rates.sample(&ctx, started);
                ctx.rates.cpu.sample();
                debug!("kbps sample took {:?}", started.elapsed());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hub::{Frame, FrameKind, SourceSettings};

    #[test]
    fn series_rates_over_the_window() {
        let mut s = Series::default();
        let t0 = Instant::now();
        for i in 0..=10u64 {
            // 1000 bytes/s out, 500 bytes/s in, sampled every 5 s.
            s.add(5000, 2500);
            s.sample(t0 + Duration::from_secs(5 * i));
        }
        assert_eq!(s.samples.len(), MAX_SAMPLES);
        assert_eq!(
            s.kbps(),
            Kbps {
                send_30s: 8,
                recv_30s: 4
            }
        );
        assert_eq!(Series::default().kbps(), Kbps::default());
    }

    #[tokio::test]
    async fn sample_attributes_bytes_and_keeps_departed_clients_bytes() {
        let ctx = Context::new(Config::default());
        let key = StreamKey {
            vhost: "__defaultVhost__".into(),
            app: "live".into(),
            stream: "s".into(),
        };
        let settings = SourceSettings {
            gop_cache: true,
            queue_length_ms: 10_000,
        };
        let src = ctx.hub.source(&key, settings);
        src.publish("pub").expect("publish");
        src.push(Frame {
            kind: FrameKind::Audio,
            timestamp: 0,
            payload: bytes::Bytes::from_static(&[0xaf, 1, 2, 3]),
            keyframe: false,
            sequence_header: false,
        });
        let peer = "127.0.0.1:1".parse().expect("addr");
        let publisher = ctx.clients.register("pub", peer);
        publisher.client.update(|c| {
            c.kind = ClientKind::FmlePublish;
            c.stream = Some(key.clone());
        });
        let player = ctx.clients.register("play", peer);
        player.client.update(|c| {
            c.kind = ClientKind::RtmpPlay;
            c.stream = Some(key.clone());
        });
        let t0 = Instant::now();
        ctx.rates.sample(&ctx, t0);
        publisher.client.add_recv(10_000);
        player.client.add_send(20_000);
        ctx.rates.sample(&ctx, t0 + SAMPLE_INTERVAL);
        let st = ctx.rates.stream(&src.id);
        assert_eq!(st.send_bytes, 20_000);
        assert_eq!(st.recv_bytes, src.stats.recv_bytes.load(Ordering::Relaxed));
        assert_eq!(st.kbps().send_30s, 32);
        assert_eq!(ctx.rates.client("play").send_30s, 32);
        assert_eq!(ctx.rates.vhost("__defaultVhost__").recv_bytes, 10_000);
        // A player that leaves between samples: its last bytes still count.
        player.client.add_send(5_000);
        drop(player);
        ctx.rates.sample(&ctx, t0 + 2 * SAMPLE_INTERVAL);
        assert_eq!(ctx.rates.vhost("__defaultVhost__").send_bytes, 25_000);
        ctx.counters.bytes_out.fetch_add(8_000, Ordering::Relaxed);
        ctx.rates.sample(&ctx, t0 + 3 * SAMPLE_INTERVAL);
        assert_eq!(ctx.rates.server().send_bytes, 8_000);
        assert_eq!(ctx.rates.stream(&src.id).send_bytes, 25_000);
        assert_eq!(ctx.rates.client("play"), Kbps::default());
    }
}
