//! SRS's heartbeat: every `heartbeat.interval` the server POSTs who it is (device id, IP,
//! server and service ids, pid) and optionally its summaries and listen addresses to
//! `heartbeat.url`, so a fleet manager knows which servers are alive.
//!
//! The config is read again at every beat, so a reload can turn it on, off, or move it.
//! A beat that fails is logged and the next one comes on schedule; beats never overlap.

use std::net::{IpAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::{debug, warn};

use crate::config::{Config, HeartbeatConfig, DEFAULT_HEARTBEAT_INTERVAL};
use crate::context::Context;
use crate::hooks::{client, server_id, service_id};
use crate::service::{Service, ServiceFuture, Shutdown};
use crate::stats::system;

/// Shortest pause between beats, whatever the config says (a typo guard).
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// A beat gets at most this long (SRS: its HTTP client's 30 s); less when the interval is shorter.
const MAX_BEAT_TIME: Duration = Duration::from_secs(30);

/// The heartbeat service. It idles (re-reading the config) while the heartbeat is off.
pub struct Heartbeat;

impl Service for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, mut shutdown: Shutdown) -> ServiceFuture {
        Box::pin(async move {
            tokio::select! {
                _ = shutdown.requested() => {}
                _ = beat_forever(&ctx) => {}
            }
        })
    }
}

async fn beat_forever(ctx: &Arc<Context>) {
    loop {
        let config = ctx.config();
        let hb = &config.heartbeat;
        let interval = if hb.enabled {
            hb.interval.max(MIN_INTERVAL)
        } else {
            DEFAULT_HEARTBEAT_INTERVAL
        };
        tokio::time::sleep(interval).await;
        let config = ctx.config();
        if !config.heartbeat.enabled {
            continue;
        }
        beat(ctx, &config, interval.min(MAX_BEAT_TIME)).await;
    }
}

async fn beat(ctx: &Context, config: &Config, timeout: Duration) {
    let hb = &config.heartbeat;
    let body = body(ctx, config).to_string();
    match client::request(hyper::Method::POST, &hb.url, Some(body), timeout).await {
        Ok(a) if (200..300).contains(&a.status) => {
            debug!("heartbeat to {}: status {}", hb.url.url, a.status)
        }
        Ok(a) => warn!("heartbeat to {}: status {}", hb.url.url, a.status),
        Err(e) => warn!("heartbeat to {}: {e}", hb.url.url),
    }
}

/// The address this host uses to reach the heartbeat server: the interface a backend would
/// see. A UDP "connect" sends nothing; it only picks the route.
fn local_ip(hb: &HeartbeatConfig) -> String {
    let probe = || -> std::io::Result<IpAddr> {
        let host = hb.url.host.as_str();
        let bind = if host.contains(':') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let s = UdpSocket::bind(bind)?;
        s.connect((host, hb.url.port))?;
        Ok(s.local_addr()?.ip())
    };
    probe().map(|ip| ip.to_string()).unwrap_or_default()
}

/// The JSON posted: SRS's fields (`device_id`, `ip`, `server`, `service`, `pid`), then
/// `summaries` and the listen addresses when asked for.
pub fn body(ctx: &Context, config: &Config) -> Value {
    let hb = &config.heartbeat;
    let mut obj = json!({
        "device_id": hb.device_id,
        "ip": local_ip(hb),
        "server": server_id(),
        "service": service_id(),
        "pid": std::process::id().to_string(),
    });
    if let Some(m) = obj.as_object_mut() {
        if hb.summaries {
            m.insert("summaries".into(), summaries(ctx));
        }
        if hb.ports {
            let rtmp: Vec<String> = config.listen.iter().map(|a| a.to_string()).collect();
            m.insert("rtmp".into(), json!(rtmp));
            if config.http_server.enabled {
                m.insert(
                    "http".into(),
                    json!([config.http_server.listen.to_string()]),
                );
            }
            if config.http_api.enabled {
                m.insert("api".into(), json!([config.http_api.listen.to_string()]));
            }
        }
    }
    obj
}

/// A subset of `/api/v1/summaries`' `data` (the same field names), built here from
/// [`crate::stats::system`] because the API builds its reply inside its handler.
fn summaries(ctx: &Context) -> Value {
    let now_ms = crate::util::unix_ms();
    let rss = system::self_rss_kb();
    let mem = system::meminfo();
    let load = system::loadavg();
    let ok = rss.is_some() && mem.is_some() && load.is_some();
    let mem = mem.unwrap_or_default();
    let rss = rss.unwrap_or(0);
    let [l1, l5, l15] = load.unwrap_or([0.0; 3]);
    let cpu = ctx.rates.cpu.usage();
    let cpus = system::cpu_count();
    json!({
        "ok": ok,
        "now_ms": now_ms,
        "self": {
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "mem_kbyte": rss,
            "mem_percent": if mem.total_kb > 0 { rss as f64 / mem.total_kb as f64 } else { 0.0 },
            "cpu_percent": cpu.process,
            "srs_uptime": ctx.started.elapsed().as_secs(),
        },
        "system": {
            "cpu_percent": cpu.host,
            "mem_ram_kbyte": mem.total_kb,
            "mem_ram_percent": mem.ram_used_fraction(),
            "cpus": cpus,
            "cpus_online": cpus,
            "load_1m": l1,
            "load_5m": l5,
            "load_15m": l15,
            "conn_srs": ctx.clients.len(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_srs_fields() {
        let mut cfg = Config::default();
        cfg.heartbeat.summaries = true;
        cfg.heartbeat.ports = true;
        let ctx = Context::new(cfg.clone());
        let b = body(&ctx, &cfg);
        assert_eq!(b["device_id"], "my-srs-device");
        assert_eq!(b["ip"], "127.0.0.1");
        assert!(b["server"].as_str().is_some_and(|s| s.starts_with("vid-")));
        assert_eq!(b["pid"], std::process::id().to_string());
        assert!(b["summaries"]["self"]["pid"].is_u64());
        assert_eq!(b["rtmp"][0], "0.0.0.0:1935");
        assert!(b.get("http").is_none());
    }
}
