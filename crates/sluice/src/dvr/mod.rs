//! DVR: records live streams to FLV files, as one more consumer of each Source.
//!
//! The service watches publish events and starts a recorder for every stream its vhost's
//! `dvr` applies to (or that the API asked for). A recorder only reads the shared ring, so a
//! slow or failing disk can make it skip or stop, never slow or break the live stream.
//! Files are written as `NAME.tmp` and renamed when complete, then handed to the `on_dvr`
//! hook ([`on_file_closed`]).

mod mp4;
pub mod path;
mod recorder;
pub mod segmenter;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::context::Context;
use crate::hub::{HubEvent, Source, StreamKey};
use crate::service::{HubFollower, Service, ServiceFuture, Shutdown, Tasks};

/// Closed files remembered for the API (newest last).
const MAX_RECENT_FILES: usize = 256;
/// Finished recorders kept for the API, so an error stays visible after the stream ends.
const MAX_FINISHED: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DvrError {
    #[error("no enabled vhost \"{0}\"")]
    UnknownVhost(String),
}

/// What the API shows of one recorder.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecorderStatus {
    pub running: bool,
    /// The file being written (its temporary name).
    pub current: Option<PathBuf>,
    pub files: u64,
    pub bytes: u64,
    pub last_error: Option<String>,
    pub started_ms: u64,
}

#[derive(Debug)]
struct Recorder {
    id: u64,
    /// The publisher whose publish it records: a recorder of an earlier publish does
    /// not count as recording the current one.
    publisher: String,
    cancel: CancellationToken,
    status: Arc<Mutex<RecorderStatus>>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    recorders: HashMap<StreamKey, Recorder>,
    /// API decisions: true records whatever the config says, false never records.
    overrides: HashMap<StreamKey, bool>,
    recent: VecDeque<(StreamKey, PathBuf)>,
}

/// DVR state held in the server's [`Context`]: recorders, API decisions, and the
/// recorder and hook tasks, which the service waits for when it stops.
#[derive(Debug, Default)]
pub struct DvrState {
    inner: Mutex<Inner>,
    tasks: Tasks,
}

impl DvrState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::util::lock(&self.inner)
    }
}

pub(crate) fn lock_status(s: &Mutex<RecorderStatus>) -> MutexGuard<'_, RecorderStatus> {
    crate::util::lock(s)
}

/// The DVR service: one recorder per published stream that should be recorded. When
/// the server stops, each recorder completes its file (and its `on_dvr` hook is sent)
/// before the service returns.
pub struct Dvr;

impl Service for Dvr {
    fn name(&self) -> &'static str {
        "dvr"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, mut shutdown: Shutdown) -> ServiceFuture {
        let mut follower = HubFollower::new("dvr", &ctx);
        Box::pin(async move {
            while let Some(ev) = follower.next(&mut shutdown).await {
                match ev {
                    HubEvent::Published(source) if should_record(&ctx, &source.key) => {
                        start_recorder(&ctx, source)
                    }
                    HubEvent::Resync => reconcile(&ctx),
                    // Each recorder ends at its stream's unpublish on its own.
                    _ => {}
                }
            }
            let open = ctx.dvr.tasks.len();
            if open > 0 {
                info!("dvr: completing {open} recordings");
            }
            ctx.dvr.tasks.finish().await;
            info!("dvr: stopped");
        })
    }
}

/// Starts a recorder for each publishing stream that should be recorded and has none
/// for its current publish (after falling behind the hub's events).
fn reconcile(ctx: &Arc<Context>) {
    for source in ctx.hub.sources() {
        let Some(publisher) = source.publisher() else {
            continue;
        };
        if !should_record(ctx, &source.key) {
            continue;
        }
        let recorded =
            ctx.dvr.lock().recorders.get(&source.key).is_some_and(|r| {
                r.publisher == publisher.client_id && lock_status(&r.status).running
            });
        if !recorded {
            start_recorder(ctx, source);
        }
    }
}

fn should_record(ctx: &Context, key: &StreamKey) -> bool {
    if let Some(o) = ctx.dvr.lock().overrides.get(key) {
        return *o;
    }
    let config = ctx.config();
    config
        .vhost(&key.vhost)
        .is_some_and(|v| v.enabled && v.dvr.enabled && v.dvr.apply.matches(&key.app, &key.stream))
}

/// Starts recording `source` now, replacing a recorder of a previous publish.
fn start_recorder(ctx: &Arc<Context>, source: Arc<Source>) {
    if ctx.dvr.tasks.is_stopping() {
        return;
    }
    let config = ctx.config();
    let Some(vhost) = config.vhost(&source.key.vhost).cloned() else {
        return;
    };
    let key = source.key.clone();
    let publisher = source.publisher().map(|p| p.client_id).unwrap_or_default();
    let cancel = CancellationToken::new();
    let status = Arc::new(Mutex::new(RecorderStatus {
        running: true,
        started_ms: path::now_millis(),
        ..RecorderStatus::default()
    }));
    {
        let mut inner = ctx.dvr.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let old = inner.recorders.insert(
            key.clone(),
            Recorder {
                id,
                publisher,
                cancel: cancel.clone(),
                status: status.clone(),
            },
        );
        if let Some(old) = old {
            old.cancel.cancel();
        }
        prune_finished(&mut inner);
    }
    info!(
        "dvr: recording {key} plan={:?} path={}",
        vhost.dvr.plan, vhost.dvr.path
    );
    let shutdown = ctx.dvr.tasks.shutdown();
    let task_ctx = ctx.clone();
    ctx.dvr.tasks.spawn(async move {
        let ctx = task_ctx;
        recorder::run(&ctx, source, &vhost, cancel, shutdown, status.clone()).await;
        lock_status(&status).running = false;
        ctx.hub.release(&key);
    });
}

fn prune_finished(inner: &mut Inner) {
    if inner.recorders.len() <= MAX_FINISHED {
        return;
    }
    inner
        .recorders
        .retain(|_, r| lock_status(&r.status).running);
}

/// Called for every complete file: remembers it for the API and calls the `on_dvr` hook on
/// its own task, so a slow hook server never holds up the recording.
pub fn on_file_closed(
    ctx: &Arc<Context>,
    key: &StreamKey,
    publisher: &crate::hooks::HookRequest,
    stream_id: &str,
    file: &std::path::Path,
) {
    {
        let mut inner = ctx.dvr.lock();
        if inner.recent.len() >= MAX_RECENT_FILES {
            inner.recent.pop_front();
        }
        inner.recent.push_back((key.clone(), file.to_path_buf()));
    }
    let config = ctx.config();
    let Some(vhost) = config.vhost(&key.vhost).cloned() else {
        return;
    };
    if !vhost.http_hooks.enabled || vhost.http_hooks.on_dvr.is_empty() {
        return;
    }
    let (task_ctx, key, publisher) = (ctx.clone(), key.clone(), publisher.clone());
    let (stream_id, file) = (stream_id.to_string(), file.display().to_string());
    ctx.dvr.tasks.spawn(async move {
        let ctx = task_ctx;
        if let Err(e) = crate::hooks::on_dvr(&ctx, &vhost, &publisher, &stream_id, &file).await {
            warn!("dvr: {key}: {e}");
        }
    });
}

/// API: records `key` from now on (immediately if it is live), whatever the config says.
/// Returns whether a recording started now.
pub fn start(ctx: &Arc<Context>, key: &StreamKey) -> Result<bool, DvrError> {
    let config = ctx.config();
    if !config.vhost(&key.vhost).is_some_and(|v| v.enabled) {
        return Err(DvrError::UnknownVhost(key.vhost.clone()));
    }
    let running = {
        let mut inner = ctx.dvr.lock();
        inner.overrides.insert(key.clone(), true);
        inner
            .recorders
            .get(key)
            .is_some_and(|r| lock_status(&r.status).running)
    };
    if running {
        return Ok(false);
    }
    match ctx.hub.get(key).filter(|s| s.is_publishing()) {
        Some(source) => {
            start_recorder(ctx, source);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// API: stops recording `key` (the current file is completed) and does not record it again
/// until [`start`]. Returns whether a recording was running.
pub fn stop(ctx: &Arc<Context>, key: &StreamKey) -> bool {
    let mut inner = ctx.dvr.lock();
    inner.overrides.insert(key.clone(), false);
    match inner.recorders.get(key) {
        Some(r) if lock_status(&r.status).running => {
            r.cancel.cancel();
            true
        }
        _ => false,
    }
}

/// What the API shows of the DVR: every recorder (running or finished with an error),
/// the API's decisions and the latest files. Serialized only by the API.
#[derive(Debug, Clone, Serialize)]
pub struct DvrStatus {
    pub recorders: Vec<RecorderRow>,
    pub overrides: Vec<OverrideRow>,
    pub files: Vec<FileRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecorderRow {
    pub vhost: String,
    pub app: String,
    pub stream: String,
    pub running: bool,
    /// The file being written (its temporary name).
    pub file: Option<String>,
    pub files: u64,
    pub bytes: u64,
    pub last_error: Option<String>,
    pub started_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverrideRow {
    pub stream: String,
    pub record: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub stream: String,
    pub file: String,
}

/// API: every recorder (running or finished with an error) and the latest files.
pub fn status(ctx: &Context) -> DvrStatus {
    let inner = ctx.dvr.lock();
    let mut recorders: Vec<(u64, RecorderRow)> = inner
        .recorders
        .iter()
        .map(|(key, r)| {
            let s = lock_status(&r.status);
            (
                r.id,
                RecorderRow {
                    vhost: key.vhost.clone(),
                    app: key.app.clone(),
                    stream: key.stream.clone(),
                    running: s.running,
                    file: s.current.as_ref().map(|p| p.display().to_string()),
                    files: s.files,
                    bytes: s.bytes,
                    last_error: s.last_error.clone(),
                    started_ms: s.started_ms,
                },
            )
        })
        .collect();
    recorders.sort_by_key(|(id, _)| *id);
    let overrides = inner
        .overrides
        .iter()
        .map(|(k, on)| OverrideRow {
            stream: k.to_string(),
            record: *on,
        })
        .collect();
    let files = inner
        .recent
        .iter()
        .map(|(k, p)| FileRow {
            stream: k.to_string(),
            file: p.display().to_string(),
        })
        .collect();
    DvrStatus {
        recorders: recorders.into_iter().map(|(_, v)| v).collect(),
        overrides,
        files,
    }
}

/// SRS picks MP4 by `dvr_path`'s extension (`.mp4`, any case); everything else is FLV.
pub fn is_mp4_path(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".mp4")
}

#[cfg(test)]
mod tests;
