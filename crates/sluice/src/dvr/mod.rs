//! DVR: records live streams to FLV files, as one more consumer of each Source.
//!
//! The service watches publish events and starts a recorder for every stream its vhost's
//! `dvr` applies to (or that the API asked for). A recorder only reads the shared ring, so a
//! slow or failing disk can make it skip or stop, never slow or break the live stream.
//! Files are written as `NAME.tmp` and renamed when complete, then handed to the `on_dvr`
//! hook ([`on_file_closed`]).

pub mod path;
mod recorder;
pub mod segmenter;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::context::Context;
use crate::hub::{HubEvent, Source, StreamKey};

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

/// DVR state held in the server's [`Context`].
#[derive(Debug, Default)]
pub struct DvrState {
    inner: Mutex<Inner>,
}

impl DvrState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn lock_status(s: &Mutex<RecorderStatus>) -> MutexGuard<'_, RecorderStatus> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the DVR service: one recorder per published stream that should be recorded.
pub fn spawn(ctx: Arc<Context>) -> tokio::task::JoinHandle<()> {
    let mut events = ctx.hub.events();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(HubEvent::Published(source)) => {
                    if should_record(&ctx, &source.key) {
                        start_recorder(&ctx, source);
                    }
                }
                // Each recorder ends at its stream's unpublish on its own.
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    warn!("dvr: missed {n} publish events; some streams may not be recorded")
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
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
    let config = ctx.config();
    let Some(vhost) = config.vhost(&source.key.vhost).cloned() else {
        return;
    };
    let key = source.key.clone();
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
    let ctx = ctx.clone();
    tokio::spawn(async move {
        recorder::run(&ctx, source, &vhost, cancel, status.clone()).await;
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
    client_id: &str,
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
    let (ctx, key, client_id) = (ctx.clone(), key.clone(), client_id.to_string());
    let file = file.display().to_string();
    tokio::spawn(async move {
        if let Err(e) = crate::hooks::on_dvr(&ctx, &vhost, &client_id, &key, &file).await {
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

/// API: every recorder (running or finished with an error) and the latest files.
pub fn status(ctx: &Context) -> Value {
    let inner = ctx.dvr.lock();
    let mut recorders: Vec<(u64, Value)> = inner
        .recorders
        .iter()
        .map(|(key, r)| {
            let s = lock_status(&r.status);
            (
                r.id,
                json!({
                    "vhost": key.vhost,
                    "app": key.app,
                    "stream": key.stream,
                    "running": s.running,
                    "file": s.current.as_ref().map(|p| p.display().to_string()),
                    "files": s.files,
                    "bytes": s.bytes,
                    "last_error": s.last_error,
                    "started_ms": s.started_ms,
                }),
            )
        })
        .collect();
    recorders.sort_by_key(|(id, _)| *id);
    let overrides: Vec<Value> = inner
        .overrides
        .iter()
        .map(|(k, on)| json!({"stream": k.to_string(), "record": on}))
        .collect();
    let files: Vec<Value> = inner
        .recent
        .iter()
        .map(|(k, p)| json!({"stream": k.to_string(), "file": p.display().to_string()}))
        .collect();
    json!({
        "recorders": recorders.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "overrides": overrides,
        "files": files,
    })
}

#[cfg(test)]
mod tests;
