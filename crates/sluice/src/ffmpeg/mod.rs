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

use serde::Serialize;
use tracing::{error, info};

use crate::config::{Config, FfmpegLogConfig};
use crate::context::Context;
use crate::hub::{HubEvent, StreamKey};
use crate::service::{HubFollower, Service, ServiceFuture, Shutdown, Tasks};
use supervisor::{ProcessSpec, ProgramError, Supervised};

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

/// Why an engine cannot run; it is listed with this error until the config changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error("{what} name {name:?} cannot be put in an RTMP URL; not transcoded")]
    UnsafeName { what: &'static str, name: String },
    #[error("no RTMP listener to read the stream from")]
    NoListener,
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
    errors: HashMap<String, EngineError>,
}

/// Transcode and ingest state held in the server's [`Context`].
#[derive(Debug, Default)]
pub struct FfmpegState {
    inner: Mutex<Inner>,
    /// Processes being stopped (SIGTERM, then SIGKILL after the grace time): the
    /// service waits for them before it returns, so no child outlives the server.
    stopping: Tasks,
}

impl FfmpegState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::util::lock(&self.inner)
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
        wanted: Vec<Result<Wanted, (String, EngineError)>>,
        scope: impl Fn(&Wanted) -> bool,
    ) {
        let mut gone = Vec::new();
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
                    if let Some(old) = inner
                        .running
                        .insert(w.id.clone(), Running { wanted: w, proc })
                    {
                        gone.push(old);
                    }
                }
                Err((id, message)) => {
                    keep.insert(id.clone());
                    if inner.errors.get(&id) != Some(&message) {
                        error!("{id}: {message}");
                    }
                    gone.extend(inner.running.remove(&id));
                    inner.errors.insert(id, message);
                }
            }
        }
        let ids: Vec<String> = inner
            .running
            .iter()
            .filter(|(id, r)| !keep.contains(*id) && scope(&r.wanted))
            .map(|(id, _)| id.clone())
            .collect();
        gone.extend(ids.iter().filter_map(|id| inner.running.remove(id)));
        drop(inner);
        self.stop_all(gone);
    }

    fn stop_where(&self, f: impl Fn(&Wanted) -> bool) {
        let gone: Vec<Running> = {
            let mut inner = self.lock();
            let ids: Vec<String> = inner
                .running
                .iter()
                .filter(|(_, r)| f(&r.wanted))
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| inner.running.remove(id))
                .collect()
        };
        self.stop_all(gone);
    }

    /// Stops processes on tasks the service waits for at shutdown.
    fn stop_all(&self, gone: Vec<Running>) {
        for r in gone {
            self.stopping.spawn(r.proc.stop());
        }
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

/// The transcode and ingest service. Start it once the RTMP listeners are bound:
/// ingests and transcoders connect to them. When the server stops, every process is
/// stopped (SIGTERM to its group, SIGKILL after the grace time) before it returns.
pub struct Ffmpeg;

impl Service for Ffmpeg {
    fn name(&self) -> &'static str {
        "ffmpeg"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, mut shutdown: Shutdown) -> ServiceFuture {
        let mut follower = HubFollower::new("ffmpeg", &ctx);
        Box::pin(async move {
            let mut tick = tokio::time::interval(RECONCILE_INTERVAL);
            loop {
                tokio::select! {
                    ev = follower.next(&mut shutdown) => match ev {
                        None => break,
                        Some(HubEvent::Published(s)) => transcode::on_published(&ctx, &s.key),
                        Some(HubEvent::Unpublished(s)) => transcode::on_unpublished(&ctx, &s.key),
                        Some(HubEvent::Reloaded | HubEvent::Resync) => {
                            ingest::reconcile(&ctx);
                            transcode::reconcile(&ctx);
                        }
                        Some(_) => {}
                    },
                    _ = tick.tick() => {
                        ingest::reconcile(&ctx);
                        transcode::reconcile(&ctx);
                    }
                }
            }
            shutdown_processes(&ctx).await;
        })
    }
}

/// Stops every process (SIGTERM to each group, SIGKILL after the grace time) and waits
/// for those already stopping, for a clean server exit.
async fn shutdown_processes(ctx: &Context) {
    let all: Vec<Running> = ctx.ffmpeg.lock().running.drain().map(|(_, r)| r).collect();
    if !all.is_empty() {
        info!("ffmpeg: stopping {} processes", all.len());
    }
    ctx.ffmpeg.stop_all(all);
    ctx.ffmpeg.stopping.finish().await;
    info!("ffmpeg: stopped");
}

/// What the API shows of the ffmpeg processes. Serialized only by the API.
#[derive(Debug, Clone, Serialize)]
pub struct FfmpegStatus {
    pub transcodes: Vec<ProcessRow>,
    pub ingests: Vec<ProcessRow>,
    /// Engines that could not start.
    pub errors: Vec<EngineErrorRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessRow {
    pub id: String,
    pub vhost: String,
    pub input: Option<String>,
    pub output: Option<String>,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub log: Option<String>,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EngineErrorRow {
    pub id: String,
    pub error: String,
}

/// API: every transcode and ingest process (pid, restarts, last error) and engines that
/// could not start.
pub fn status(ctx: &Context) -> FfmpegStatus {
    let inner = ctx.ffmpeg.lock();
    let mut rows: Vec<(&String, &Running)> = inner.running.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let mut transcodes = Vec::new();
    let mut ingests = Vec::new();
    for (id, r) in rows {
        let s = r.proc.status();
        let row = ProcessRow {
            id: id.clone(),
            vhost: r.wanted.vhost.clone(),
            input: r.wanted.input.as_ref().map(|k| k.to_string()),
            output: r.wanted.output.as_ref().map(|k| k.to_string()),
            pid: s.pid,
            restarts: s.restarts,
            last_error: s.last_error,
            log: r.wanted.spec.log.as_ref().map(|p| p.display().to_string()),
            args: r.wanted.spec.args.clone(),
        };
        match r.wanted.kind {
            Kind::Transcode => transcodes.push(row),
            Kind::Ingest => ingests.push(row),
        }
    }
    let mut errors: Vec<EngineErrorRow> = inner
        .errors
        .iter()
        .map(|(id, e)| EngineErrorRow {
            id: id.clone(),
            error: e.to_string(),
        })
        .collect();
    errors.sort_by(|a, b| a.id.cmp(&b.id));
    FfmpegStatus {
        transcodes,
        ingests,
        errors,
    }
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
