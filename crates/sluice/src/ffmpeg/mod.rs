//! ffmpeg processes driven by sluice: `transcode` (one per engine of a published stream, its
//! output published back into sluice) and `ingest` (started at boot from the config). Both use
//! [`supervisor`] for spawning, logging, restarting and stopping.
//!
//! One task owns the decisions: it starts transcoders on publish, stops them on unpublish,
//! and every [`RECONCILE_INTERVAL`] compares what runs with what the config in force asks
//! for, so a reload (or a missed event) converges without special cases.

pub mod ingest;
pub mod supervisor;
pub mod transcode;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tracing::{error, warn};

use crate::config::{Config, FfmpegLogConfig};
use crate::context::Context;
use crate::hub::{HubEvent, StreamKey};
use supervisor::{ProcessSpec, Supervised};

pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Transcode,
    Ingest,
}

/// What should run for one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub id: String,
    pub kind: Kind,
    pub vhost: String,
    /// The stream a transcoder reads.
    pub input: Option<StreamKey>,
    /// The stream the process publishes into this server, when it does.
    pub output: Option<StreamKey>,
    pub spec: ProcessSpec,
}

#[derive(Debug)]
struct Running {
    wanted: Wanted,
    proc: Supervised,
}

#[derive(Debug, Default)]
struct Inner {
    running: HashMap<String, Running>,
    /// Engines that could not be started (no ffmpeg, bad stream name), by id.
    errors: HashMap<String, String>,
}

/// Transcode and ingest state held in the server's [`Context`].
#[derive(Debug, Default)]
pub struct FfmpegState {
    inner: Mutex<Inner>,
}

impl FfmpegState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Streams that our own processes publish here (a transcoder must not transcode them).
    pub fn outputs(&self) -> Vec<StreamKey> {
        self.lock()
            .running
            .values()
            .filter_map(|r| r.wanted.output.clone())
            .collect()
    }

    /// Starts what is missing or changed, among `wanted`; with `scope`, also stops the
    /// running entries that scope selects and `wanted` no longer lists.
    fn apply(
        &self,
        wanted: Vec<Result<Wanted, (String, String)>>,
        scope: impl Fn(&Wanted) -> bool,
    ) {
        let mut inner = self.lock();
        let mut keep = std::collections::HashSet::new();
        for w in wanted {
            match w {
                Ok(w) => {
                    inner.errors.remove(&w.id);
                    keep.insert(w.id.clone());
                    if inner.running.get(&w.id).is_some_and(|r| r.wanted == w) {
                        continue;
                    }
                    let proc = Supervised::start(w.spec.clone());
                    // Replacing drops (and so stops) the old process.
                    inner
                        .running
                        .insert(w.id.clone(), Running { wanted: w, proc });
                }
                Err((id, message)) => {
                    keep.insert(id.clone());
                    if inner.errors.get(&id) != Some(&message) {
                        error!("{id}: {message}");
                    }
                    inner.running.remove(&id);
                    inner.errors.insert(id, message);
                }
            }
        }
        inner
            .running
            .retain(|id, r| keep.contains(id) || !scope(&r.wanted));
    }

    fn stop_where(&self, f: impl Fn(&Wanted) -> bool) {
        self.lock().running.retain(|_, r| !f(&r.wanted));
    }
}

/// One pass of substitution, so a value that looks like a variable stays as it is.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    'outer: while !rest.is_empty() {
        if rest.starts_with('[') {
            for (name, value) in vars {
                if let Some(after) = rest
                    .strip_prefix('[')
                    .and_then(|r| r.strip_prefix(name))
                    .and_then(|r| r.strip_prefix(']'))
                {
                    out.push_str(value);
                    rest = after;
                    continue 'outer;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// A name safe in a log file name whatever the network sent.
pub fn file_safe(s: &str) -> String {
    s.chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `ff_log_dir/NAME`, or None with `ff_log_dir /dev/null`.
pub fn log_path(log: &FfmpegLogConfig, name: &str) -> Option<PathBuf> {
    (!log.discard()).then(|| log.dir.join(name))
}

/// Options every ffmpeg gets: quiet stdin, the configured log level, no progress lines.
pub fn common_args(config: &Config) -> Vec<String> {
    vec![
        "-nostdin".into(),
        "-hide_banner".into(),
        "-nostats".into(),
        "-loglevel".into(),
        config.ff_log.level.clone(),
    ]
}

/// Host and port of this server's first RTMP listener, as ffmpeg should dial them.
pub fn local_rtmp(config: &Config) -> Option<(String, u16)> {
    let a = config.listen.first()?;
    let host = match a.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    Some((host, a.port()))
}

/// The stream an `rtmp://` URL publishes into this server, if it points here: SRS's
/// `rtmp://HOST:PORT/APP?vhost=V/STREAM` or `rtmp://V:PORT/APP/STREAM` shapes.
pub fn own_stream(config: &Config, url: &str) -> Option<StreamKey> {
    let rest = url.strip_prefix("rtmp://")?;
    let (authority, path) = rest.split_once('/')?;
    let port: u16 = match authority.rsplit_once(':') {
        Some((_, p)) if !authority.ends_with(']') => p.parse().ok()?,
        _ => 1935,
    };
    if !config.listen.iter().any(|a| a.port() == port) {
        return None;
    }
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority);
    let (app_part, stream) = path.rsplit_once('/')?;
    let stream = stream.split_once('?').map(|(s, _)| s).unwrap_or(stream);
    let (app, query) = app_part.split_once('?').unwrap_or((app_part, ""));
    let vhost = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("vhost="))
        .unwrap_or(host);
    let vhost = config.resolve_vhost(vhost)?.name.clone();
    Some(StreamKey {
        vhost,
        app: app.to_string(),
        stream: stream.to_string(),
    })
}

/// Starts the transcode and ingest service. Call once the RTMP listeners are up: ingests
/// and transcoders connect to them.
pub fn spawn(ctx: Arc<Context>) -> tokio::task::JoinHandle<()> {
    let mut events = ctx.hub.events();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RECONCILE_INTERVAL);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(HubEvent::Published(s)) => transcode::on_published(&ctx, &s.key),
                    Ok(HubEvent::Unpublished(s)) => transcode::on_unpublished(&ctx, &s.key),
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        warn!("ffmpeg: missed {n} publish events; reconciling");
                        transcode::reconcile(&ctx);
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    ingest::reconcile(&ctx);
                    transcode::reconcile(&ctx);
                }
            }
        }
    })
}

/// Stops every process (SIGTERM to each group, SIGKILL after the grace time), for a clean
/// server exit.
pub async fn shutdown(ctx: &Context) {
    let all: Vec<Running> = ctx.ffmpeg.lock().running.drain().map(|(_, r)| r).collect();
    futures_util::future::join_all(all.into_iter().map(|r| r.proc.stop())).await;
}

/// API: every transcode and ingest process (pid, restarts, last error) and engines that
/// could not start.
pub fn status(ctx: &Context) -> Value {
    let inner = ctx.ffmpeg.lock();
    let mut rows: Vec<(&String, &Running)> = inner.running.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let mut transcodes = Vec::new();
    let mut ingests = Vec::new();
    for (id, r) in rows {
        let s = r.proc.status();
        let v = json!({
            "id": id,
            "vhost": r.wanted.vhost,
            "input": r.wanted.input.as_ref().map(|k| k.to_string()),
            "output": r.wanted.output.as_ref().map(|k| k.to_string()),
            "pid": s.pid,
            "restarts": s.restarts,
            "last_error": s.last_error,
            "log": r.wanted.spec.log.as_ref().map(|p| p.display().to_string()),
            "args": r.wanted.spec.args,
        });
        match r.wanted.kind {
            Kind::Transcode => transcodes.push(v),
            Kind::Ingest => ingests.push(v),
        }
    }
    let mut errors: Vec<Value> = inner
        .errors
        .iter()
        .map(|(id, e)| json!({"id": id, "error": e}))
        .collect();
    errors.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    json!({"transcodes": transcodes, "ingests": ingests, "errors": errors})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_one_pass() {
        assert_eq!(
            fill(
                "rtmp://h:[port]/[app]/[stream]_[engine]",
                &[
                    ("port", "19"),
                    ("app", "live"),
                    ("stream", "[engine]"),
                    ("engine", "sd")
                ]
            ),
            "rtmp://h:19/live/[engine]_sd"
        );
        assert_eq!(fill("[x] [", &[("x", "1")]), "1 [");
    }

    #[test]
    fn file_safe_names() {
        assert_eq!(file_safe("a;touch${IFS}/tmp/x"), "a_touch__IFS__tmp_x");
        assert_eq!(file_safe("../.."), ".._..");
    }

    #[test]
    fn own_stream_urls() {
        let cfg = Config::parse("listen 19350; vhost v1 { }", "t").unwrap();
        let k = own_stream(&cfg, "rtmp://127.0.0.1:19350/live?vhost=v1/s_sd").unwrap();
        assert_eq!(k.to_string(), "v1/live/s_sd");
        let k = own_stream(&cfg, "rtmp://127.0.0.1:19350/live/s").unwrap();
        assert_eq!(k.to_string(), "__defaultVhost__/live/s");
        assert!(own_stream(&cfg, "rtmp://127.0.0.1:1935/live/s").is_none());
        assert!(own_stream(&cfg, "srt://x").is_none());
        assert!(own_stream(&cfg, "rtmp://").is_none());
    }

    #[test]
    fn local_rtmp_dials_loopback_for_wildcards() {
        let cfg = Config::parse("listen 19350;", "t").unwrap();
        assert_eq!(local_rtmp(&cfg), Some(("127.0.0.1".into(), 19350)));
        let cfg = Config::parse("listen [::]:5;", "t").unwrap();
        assert_eq!(local_rtmp(&cfg), Some(("[::1]".into(), 5)));
    }
}
