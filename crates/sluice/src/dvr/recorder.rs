//! One stream's recording: reads the stream as a consumer and writes the segmenter's files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::fs::File;
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::mp4::Mp4Segmenter;
use super::segmenter::{Action, Segmenter};
use super::{lock_status, path, RecorderStatus};
use crate::config::VhostConfig;
use crate::context::Context;
use crate::hub::{Item, Source, SourceSettings, StreamKey};
use crate::service::Shutdown;

/// Why a recording stopped: the stream is no longer recorded, the live stream goes on.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Path(#[from] path::PathError),
    #[error("cannot create directory {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot rename {} to {}: {source}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Write buffer: large enough that a file costs few syscalls, small per stream.
const WRITE_BUFFER: usize = 256 * 1024;

struct OpenFile {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    duration_at: Option<u64>,
}

struct Writer<'a> {
    ctx: &'a Arc<Context>,
    key: StreamKey,
    /// The publisher, for the on_dvr hook.
    client_id: String,
    /// What on_dvr tells about the publisher (ip, tcUrl, param) and the stream's id,
    /// kept from while it was connected: a file is often closed after it left.
    hook: crate::hooks::HookRequest,
    stream_id: String,
    template: String,
    status: Arc<Mutex<RecorderStatus>>,
    file: Option<OpenFile>,
}

impl Writer<'_> {
    async fn apply(&mut self, action: Action) -> Result<(), RecordError> {
        match action {
            Action::Open {
                preamble,
                duration_at,
            } => {
                self.remember_publisher();
                let path = path::expand(&self.template, &self.key, path::now_millis())?;
                let tmp = path::temp_path(&path);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(dir).await.map_err(|source| {
                        RecordError::CreateDir {
                            dir: dir.to_path_buf(),
                            source,
                        }
                    })?;
                }
                let file = File::create(&tmp)
                    .await
                    .map_err(|source| RecordError::Create {
                        path: tmp.clone(),
                        source,
                    })?;
                let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
                out.write_all(&preamble).await.map_err(write_err(&tmp))?;
                {
                    let mut s = lock_status(&self.status);
                    s.current = Some(tmp.clone());
                    s.bytes += preamble.len() as u64;
                }
                self.file = Some(OpenFile {
                    out,
                    tmp,
                    path,
                    duration_at,
                });
            }
            Action::Write(bytes) => {
                let Some(f) = &mut self.file else {
                    return Ok(());
                };
                f.out.write_all(&bytes).await.map_err(write_err(&f.tmp))?;
                lock_status(&self.status).bytes += bytes.len() as u64;
            }
            Action::Close { duration_ms } => {
                let Some(mut f) = self.file.take() else {
                    return Ok(());
                };
                let tmp = f.tmp.clone();
                let fail = write_err(&tmp);
                f.out.flush().await.map_err(&fail)?;
                let mut file = f.out.into_inner();
                if let Some(at) = f.duration_at {
                    let seconds = duration_ms as f64 / 1000.0;
                    file.seek(std::io::SeekFrom::Start(at))
                        .await
                        .map_err(&fail)?;
                    file.write_all(&seconds.to_be_bytes())
                        .await
                        .map_err(&fail)?;
                }
                // Errors the kernel could still report (a full disk on some file systems)
                // surface here rather than in a file that looks complete.
                file.sync_all().await.map_err(&fail)?;
                drop(file);
                tokio::fs::rename(&f.tmp, &f.path)
                    .await
                    .map_err(|source| RecordError::Rename {
                        from: f.tmp.clone(),
                        to: f.path.clone(),
                        source,
                    })?;
                {
                    let mut s = lock_status(&self.status);
                    s.current = None;
                    s.files += 1;
                }
                info!(
                    "dvr: {} closed {} duration={:.1}s",
                    self.key,
                    f.path.display(),
                    duration_ms as f64 / 1000.0
                );
                super::on_file_closed(self.ctx, &self.key, &self.hook, &self.stream_id, &f.path);
            }
        }
        Ok(())
    }

    /// Refreshes what on_dvr reports about the publisher while it is still registered
    /// (its first file opens once its publish is fully set up).
    fn remember_publisher(&mut self) {
        if self.ctx.clients.get(&self.client_id).is_some() {
            self.hook = crate::hooks::HookRequest::for_stream(self.ctx, &self.client_id, &self.key);
        }
    }

    /// One error line, then the stream is no longer recorded. What was written so far is
    /// kept under its final name when the file system still allows it.
    async fn fail(&mut self, e: RecordError) {
        let message = e.to_string();
        error!(
            "dvr: stopped recording {}: {message} (the live stream is not affected)",
            self.key
        );
        if let Some(f) = self.file.take() {
            drop(f.out);
            if tokio::fs::rename(&f.tmp, &f.path).await.is_ok() {
                warn!(
                    "dvr: {}: partial file kept as {}",
                    self.key,
                    f.path.display()
                );
            }
        }
        let mut s = lock_status(&self.status);
        s.current = None;
        s.last_error = Some(message);
    }
}

/// The file format, by `dvr_path`'s extension (as SRS picks it): FLV, or fragmented MP4.
enum Plan {
    Flv(Segmenter),
    Mp4(Box<Mp4Segmenter>),
}

impl Plan {
    fn new(vhost: &VhostConfig) -> Plan {
        if super::is_mp4_path(&vhost.dvr.path) {
            Plan::Mp4(Box::new(Mp4Segmenter::new(&vhost.dvr)))
        } else {
            Plan::Flv(Segmenter::new(&vhost.dvr))
        }
    }

    fn push(&mut self, f: &crate::hub::Frame) -> Vec<Action> {
        match self {
            Plan::Flv(s) => s.push(f),
            Plan::Mp4(s) => s.push(f),
        }
    }

    fn close(&mut self) -> Vec<Action> {
        match self {
            Plan::Flv(s) => s.close().into_iter().collect(),
            Plan::Mp4(s) => s.close(),
        }
    }
}

/// Records `source` until its publish ends, `cancel` fires (the API), the server stops
/// (`shutdown`), or writing fails. In every case but the last the file is completed.
pub(super) async fn run(
    ctx: &Arc<Context>,
    source: Arc<Source>,
    vhost: &VhostConfig,
    cancel: CancellationToken,
    mut shutdown: Shutdown,
    status: Arc<Mutex<RecorderStatus>>,
) {
    let key = source.key.clone();
    let client_id = source.publisher().map(|p| p.client_id).unwrap_or_default();
    let stream_id = source.id.clone();
    drop(source);
    let hook = crate::hooks::HookRequest::for_stream(ctx, &client_id, &key);
    let settings = SourceSettings {
        gop_cache: true,
        queue_length_ms: (vhost.effective_queue_length().max(1.0) * 1000.0) as u64,
    };
    let mut consumer = ctx.hub.subscribe(&key, settings);
    let mut seg = Plan::new(vhost);
    let mut w = Writer {
        ctx,
        key: key.clone(),
        client_id,
        hook,
        stream_id,
        template: vhost.dvr.path.clone(),
        status,
        file: None,
    };
    let mut items = Vec::new();
    'outer: loop {
        items.clear();
        if let Some(s) = consumer.fetch(&mut items) {
            warn!(
                "dvr: {key} fell {} ms behind (disk too slow?); skipped {} entries",
                s.lag_ms, s.entries
            );
        }
        if items.is_empty() {
            tokio::select! {
                _ = consumer.changed() => continue,
                _ = cancel.cancelled() => break,
                // Only once nothing is left to read: after a graceful stop unpublished,
                // the publisher's last frames still go into the file.
                _ = shutdown.requested() => break,
            }
        }
        for item in items.drain(..) {
            match item {
                Item::Frame(f) => {
                    for a in seg.push(&f) {
                        if let Err(e) = w.apply(a).await {
                            w.fail(e).await;
                            return;
                        }
                    }
                }
                Item::Unpublished => break 'outer,
                Item::Published => {}
            }
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    for a in seg.close() {
        if let Err(e) = w.apply(a).await {
            w.fail(e).await;
            return;
        }
    }
    info!("dvr: {key} recording ended");
}
