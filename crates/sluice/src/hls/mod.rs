//! The HLS service: one consumer per published stream of an HLS-enabled vhost, muxing its
//! frames to MPEG-TS segments and keeping a live playlist (SRS's `vhost { hls { } }`).
//!
//! Why a service that listens to the hub rather than a call from the publisher: HLS is one
//! consumer among others and must never slow the publisher; its disk work happens on its own
//! task, reading the shared ring at its own pace. Per-stream state outlives a publish, so a
//! republish continues the playlist (with a discontinuity) until `hls_dispose` forgets it.

pub mod dash;
pub mod ll;
pub mod muxer;
pub mod segmenter;
pub mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::FutureExt as _;
use media::hls::SegmentKey;
use media::ts::{TsAudio, TsStreams, TsVideo};
use tokio::task::JoinSet;
use tracing::{error, info, warn, Instrument};

use crate::config::{HlsAcodec, HlsConfig, HlsOnError, HlsVcodec};
use crate::context::Context;
use crate::hub::{self, Frame, FrameKind, HubEvent, Item, SourceSettings, StreamKey};
use crate::path_template::{self, Vars};
use crate::service::{HubFollower, Service, ServiceFuture, Shutdown, Tasks};
use muxer::Muxer;
use segmenter::{
    CutPolicy, Entry, EntryKey, EntryMap, FrameClass, Jump, JumpDetector, Probe, SkipCause, Window,
};
use writer::{Cbc, CloseError, SegmentFile, FLUSH_BYTES};

/// fMP4 without LL-HLS: the samples become a fragment of the open segment once they reach
/// this (so a long segment is not held whole in the muxer), else at the segment's end.
const FMP4_FRAGMENT_BYTES: usize = 1 << 20;

/// At most how many bytes a frame of `payload` bytes takes muxed to TS: 188-byte packets
/// for 184 bytes of payload, the PES header, AUD, parameter sets and the last packet's
/// stuffing.
fn muxed_size(payload: usize) -> usize {
    payload + payload / 32 + 1024
}

/// The HLS consumer's queue: generous, as a disk stall must not make it skip media.
const MIN_QUEUE_MS: u64 = 30_000;
/// How often idle streams are checked for due deletions and `hls_dispose`.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Used as the last frame's duration when a stream ends before two frames were seen.
const DEFAULT_FRAME_MS: u64 = 40;

/// What the API shows of one stream's HLS output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HlsStatus {
    pub playlist: PathBuf,
    /// The playlist's path under the HLS root, as the HTTP server serves it.
    pub playlist_url: String,
    pub publishing: bool,
    /// Sequence number of the newest closed segment.
    pub sequence: Option<u64>,
    pub segments: usize,
    /// UNIX ms when the newest segment was closed.
    pub last_segment_at_ms: Option<u64>,
    pub last_segment_duration_ms: Option<u64>,
    pub errors: u64,
    /// The error of the current failure episode; cleared when a segment is listed again,
    /// so that `None` means writing works.
    pub last_error: Option<String>,
    /// UNIX ms of the newest error, kept after recovery (when the last episode was).
    pub last_error_at_ms: Option<u64>,
    /// `ts` or `fmp4` (`hls_use_fmp4`).
    pub format: String,
    /// LL-HLS part target in ms when `hls_ll` is on.
    pub part_target_ms: Option<u64>,
    /// The DASH MPD's path under the HLS root, when `dash` is on for the stream.
    pub mpd_url: Option<String>,
}

/// The live LL-HLS state of a stream, for the API: the segment being written, its parts so
/// far, and the requests blocked on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlStatus {
    pub msn: u64,
    pub parts: usize,
    pub blocked: usize,
}

/// The LL-HLS state of the stream whose playlist is at `playlist_url`.
pub fn ll_status(ctx: &Context, playlist_url: &str) -> Option<LlStatus> {
    let (msn, parts, blocked) = ctx.hls.ll.get(playlist_url)?.status();
    Some(LlStatus {
        msn,
        parts,
        blocked,
    })
}

/// Per-stream HLS status, shared with the API (a field of [`Context`]), and the
/// `on_hls` hook calls in flight, which the service waits for when it stops.
#[derive(Debug, Default)]
pub struct HlsRegistry {
    streams: Mutex<HashMap<StreamKey, HlsStatus>>,
    hooks: Tasks,
    /// LL-HLS playlists and parts served from memory (`hls_ll`).
    pub ll: ll::LlRegistry,
}

impl HlsRegistry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, HlsStatus>> {
        crate::util::lock(&self.streams)
    }

    fn update(&self, key: &StreamKey, f: impl FnOnce(&mut HlsStatus)) {
        f(self.map().entry(key.clone()).or_default());
    }

    fn forget(&self, key: &StreamKey) {
        if let Some(s) = self.map().remove(key) {
            self.ll.remove(&s.playlist_url);
        }
    }

    pub fn get(&self, key: &StreamKey) -> Option<HlsStatus> {
        self.map().get(key).cloned()
    }

    pub fn list(&self) -> Vec<(StreamKey, HlsStatus)> {
        let mut v: Vec<_> = self
            .map()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        v.sort_by_key(|a| a.0.to_string());
        v
    }
}

/// Every stream with HLS state (live, or waiting for a republish until `hls_dispose`).
pub fn status(ctx: &Context) -> Vec<(StreamKey, HlsStatus)> {
    ctx.hls.list()
}

/// What `on_hls` reports for each closed segment (SRS's arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentClosed {
    pub key: StreamKey,
    /// The publisher's client id, if still known.
    pub client_id: Option<String>,
    /// Path of the segment file.
    pub file: PathBuf,
    /// The segment's URI as the playlist lists it (SRS's `url`).
    pub url: String,
    pub m3u8: PathBuf,
    pub m3u8_url: String,
    pub seq_no: u64,
    pub duration: Duration,
}

/// Called after each segment is closed and listed: runs the `on_hls` and `on_hls_notify`
/// hooks on their own task, so a slow hook server never delays the segmenter.
pub fn on_segment_closed(ctx: &Arc<Context>, event: SegmentClosed) {
    let config = ctx.config();
    let Some(vhost) = config.vhost(&event.key.vhost) else {
        return;
    };
    let hooks = &vhost.http_hooks;
    if !hooks.enabled || (hooks.on_hls.is_empty() && hooks.on_hls_notify.is_empty()) {
        return;
    }
    let task_ctx = ctx.clone();
    let ctx = task_ctx.clone();
    let vhost = vhost.clone();
    task_ctx.hls.hooks.spawn(async move {
        let cid = event.client_id.clone().unwrap_or_default();
        let file = event.file.display().to_string();
        let m3u8 = event.m3u8.display().to_string();
        let res = crate::hooks::on_hls(
            &ctx,
            &vhost,
            &cid,
            &event.key,
            &file,
            &event.url,
            &m3u8,
            &event.m3u8_url,
            event.seq_no,
            event.duration.as_secs_f64(),
        )
        .await;
        if let Err(e) = res {
            warn!("hls: {e}");
        }
        crate::hooks::on_hls_notify(
            &ctx,
            &vhost,
            &cid,
            &event.key,
            &event.url,
            vhost.hls.nb_notify,
        )
        .await;
    });
}

/// The HLS service. It closes stale playlists first (nothing is live yet at start-up);
/// when the server stops, each stream's writer closes its last segment (and ends the
/// playlist on a graceful stop), and the service returns once they and their `on_hls`
/// hooks are done.
pub struct Hls;

impl Service for Hls {
    fn name(&self) -> &'static str {
        "hls"
    }

    fn run(self: Box<Self>, ctx: Arc<Context>, shutdown: Shutdown) -> ServiceFuture {
        // Subscribed now, before anything can publish, so that no publish is missed.
        let follower = HubFollower::new("hls", &ctx);
        Box::pin(run(ctx, follower, shutdown))
    }
}

async fn run(ctx: Arc<Context>, mut follower: HubFollower, mut shutdown: Shutdown) {
    let leftovers = start_up_sweep(&ctx).await;
    // Each root's leftovers younger than hls_dispose, with when they are due.
    let mut leftovers: Vec<(Instant, PathBuf, writer::Leftovers)> = leftovers
        .into_iter()
        .map(|(root, dispose, left)| (Instant::now() + dispose, root, left))
        .collect();
    let mut svc = Streams {
        ctx: ctx.clone(),
        streams: HashMap::new(),
        tasks: JoinSet::new(),
        shutdown: shutdown.clone(),
    };
    let mut tick = tokio::time::interval(HOUSEKEEPING);
    loop {
        tokio::select! {
            ev = follower.next(&mut shutdown) => match ev {
                None => break,
                Some(HubEvent::Published(source)) => svc.start(&source.key),
                Some(HubEvent::Reloaded) => {
                    svc.stop_disabled();
                    svc.rescan();
                }
                Some(HubEvent::Resync) => svc.rescan(),
                Some(_) => {}
            },
            Some(done) = svc.tasks.join_next() => {
                if let Ok((key, state)) = done {
                    svc.task_done(key, state);
                }
            }
            _ = tick.tick() => {
                svc.housekeeping().await;
                dispose_due_leftovers(&mut leftovers).await;
            }
        }
    }
    // Each writer saw the same shutdown: it closes its segment and playlist and ends.
    if !svc.tasks.is_empty() {
        info!("hls: finishing {} streams", svc.tasks.len());
    }
    while let Some(done) = svc.tasks.join_next().await {
        if let Ok((key, state)) = done {
            svc.task_done(key, state);
        }
    }
    ctx.hls.hooks.finish().await;
    info!("hls: stopped");
}

/// At start-up nothing is live yet: everything HLS finds under its roots was left by a
/// previous run (a crash, a kill, or a stop whose streams were never republished). It is
/// disposed of as that run would have: temp files at once; segments and playlists once they
/// are `hls_dispose` old (at once if they already are, else that long after start-up, see
/// [`dispose_due_leftovers`]); and playlists still live get `#EXT-X-ENDLIST` meanwhile, so
/// no player waits on them. Returns the roots with files to dispose of later, and when.
async fn start_up_sweep(ctx: &Context) -> Vec<(PathBuf, Duration, writer::Leftovers)> {
    let started = SystemTime::now();
    let config = ctx.config();
    // Vhosts may share a root and the files do not say whose they are: the longest
    // hls_dispose of the vhosts writing there wins, and 0 (never) beats everything.
    let mut roots: Vec<(PathBuf, Option<Duration>)> = Vec::new();
    for v in config.vhosts.iter().filter(|v| v.enabled && v.hls.enabled) {
        let dispose = (!v.hls.dispose.is_zero()).then_some(v.hls.dispose);
        // Key files kept apart (hls_key_file_path) are swept like the segments they go with.
        let key_root = v.hls.keys.then(|| v.hls.key_root().to_path_buf());
        for root in std::iter::once(v.hls.path.clone()).chain(key_root) {
            match roots.iter_mut().find(|(r, _)| *r == root) {
                Some((_, d)) => *d = d.zip(dispose).map(|(a, b)| a.max(b)),
                None => roots.push((root, dispose)),
            }
        }
    }
    let mut later = Vec::new();
    for (root, dispose) in roots {
        let scan = root.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let sweep = writer::sweep_leftovers(&scan, started, dispose);
            let closed = writer::close_stale_playlists(&scan);
            (sweep.removed, closed, writer::remember(sweep.later))
        })
        .await;
        let Ok((removed, closed, left)) = swept else {
            continue;
        };
        for p in closed {
            info!(
                "hls: closed stale playlist {} (left live by a previous run)",
                p.display()
            );
        }
        let when = match dispose {
            Some(d) => format!("hls_dispose {}s", d.as_secs()),
            None => "hls_dispose 0: only temp files".to_string(),
        };
        if removed > 0 || !left.is_empty() {
            info!(
                "hls: removed {removed} files left by a previous run under {} ({when}); {} more go when they are that old",
                root.display(),
                left.len()
            );
        }
        if let (Some(d), false) = (dispose, left.is_empty()) {
            later.push((root, d, left));
        }
    }
    later
}

/// Removes the leftovers of a previous run that are due (see [`start_up_sweep`]).
async fn dispose_due_leftovers(leftovers: &mut Vec<(Instant, PathBuf, writer::Leftovers)>) {
    let now = Instant::now();
    let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(leftovers)
        .into_iter()
        .partition(|(at, _, _)| *at <= now);
    *leftovers = keep;
    for (_, root, left) in due {
        let removed = tokio::task::spawn_blocking(move || left.dispose())
            .await
            .unwrap_or_default();
        info!(
            "hls: removed {removed} files left by a previous run under {} (hls_dispose after start-up)",
            root.display()
        );
    }
}

enum Slot {
    /// Cancelled when a reload turns HLS off for the stream's vhost.
    Running(tokio_util::sync::CancellationToken),
    Idle {
        state: Box<StreamState>,
        since: Instant,
    },
}

/// The service's streams: live ones have a writer task, idle ones wait for a republish.
struct Streams {
    ctx: Arc<Context>,
    streams: HashMap<StreamKey, Slot>,
    tasks: JoinSet<(StreamKey, Option<StreamState>)>,
    /// The service's: handed to each writer, which ends when it fires.
    shutdown: Shutdown,
}

impl Streams {
    /// Starts a writer for every publishing stream that should have one and has none
    /// (after a reload, or after falling behind the hub's events).
    fn rescan(&mut self) {
        for s in self
            .ctx
            .hub
            .sources()
            .into_iter()
            .filter(|s| s.is_publishing())
        {
            self.start(&s.key);
        }
    }

    /// After a reload: streams whose vhost no longer has HLS (or no longer
    /// exists) close their segment and stop; their files age out by hls_dispose.
    fn stop_disabled(&self) {
        let config = self.ctx.config();
        for (key, slot) in &self.streams {
            let on = config
                .vhost(&key.vhost)
                .is_some_and(|v| v.enabled && v.hls.enabled);
            if let (false, Slot::Running(stop)) = (on, slot) {
                stop.cancel();
            }
        }
    }

    fn start(&mut self, key: &StreamKey) {
        if self.shutdown.is_requested() {
            return;
        }
        let config = self.ctx.config();
        let Some(vhost) = config
            .vhost(&key.vhost)
            .filter(|v| v.enabled && v.hls.enabled)
        else {
            return;
        };
        let state = match self.streams.remove(key) {
            Some(Slot::Running(stop)) => {
                self.streams.insert(key.clone(), Slot::Running(stop));
                return;
            }
            Some(Slot::Idle { state, .. }) => *state,
            None => match StreamState::new(key, &vhost.hls, &vhost.dash) {
                Ok(s) => s,
                Err(e) => {
                    warn!("hls: stream {key} gets no HLS: {e}");
                    return;
                }
            },
        };
        let stop = tokio_util::sync::CancellationToken::new();
        self.streams
            .insert(key.clone(), Slot::Running(stop.clone()));
        let ctx = self.ctx.clone();
        let cfg = vhost.hls.clone();
        let k = key.clone();
        let shutdown = self.shutdown.clone();
        let task = async move {
            let out = std::panic::AssertUnwindSafe(stream_task(
                ctx,
                k.clone(),
                cfg,
                state,
                stop,
                shutdown,
            ))
            .catch_unwind()
            .await;
            match out {
                Ok(state) => (k, Some(state)),
                Err(_) => {
                    error!("hls: the segmenter of {k} panicked; its HLS state is dropped");
                    (k, None)
                }
            }
        };
        self.tasks
            .spawn(task.instrument(tracing::info_span!("hls", stream = %key)));
    }

    fn task_done(&mut self, key: StreamKey, state: Option<StreamState>) {
        self.streams.remove(&key);
        let Some(state) = state else {
            self.ctx.hls.forget(&key);
            return;
        };
        self.ctx.hls.update(&key, |s| s.publishing = false);
        self.streams.insert(
            key.clone(),
            Slot::Idle {
                state: Box::new(state),
                since: Instant::now(),
            },
        );
        // A republish that raced with the end of the previous publish.
        if self.ctx.hub.get(&key).is_some_and(|s| s.is_publishing()) {
            self.start(&key);
        }
    }

    async fn housekeeping(&mut self) {
        let config = self.ctx.config();
        let now = Instant::now();
        let mut disposed = Vec::new();
        for (key, slot) in self.streams.iter_mut() {
            let Slot::Idle { state, since } = slot else {
                continue;
            };
            state.delete_due(now).await;
            let dispose = config
                .vhost(&key.vhost)
                .map(|v| v.hls.dispose)
                .unwrap_or_default();
            if !dispose.is_zero() && now.duration_since(*since) >= dispose {
                state.dispose().await;
                disposed.push(key.clone());
            }
        }
        for key in disposed {
            info!("hls: disposed {key}: no publisher for the hls_dispose time");
            self.streams.remove(&key);
            self.ctx.hls.forget(&key);
        }
    }
}

/// A stream's HLS state that outlives one publish.
struct StreamState {
    key: StreamKey,
    root: PathBuf,
    /// The bound on file jobs of `root`, shared with the other streams under it.
    jobs: writer::DiskJobs,
    /// Playlist path relative to `root`, and absolute.
    playlist_rel: PathBuf,
    playlist: PathBuf,
    window: Window,
    /// Segments out of the window, deleted once no player can still want them.
    doomed: Vec<(Instant, PathBuf)>,
    /// The next segment starts a new timeline (republish, codec change, lost media).
    discontinuity_next: bool,
    video_sh: Option<Bytes>,
    audio_sh: Option<Bytes>,
    /// Segments lost (or not listed) to disk errors since the last one listed: non-zero
    /// while a failure episode lasts, so that its end is logged and cleared in the API.
    failed_segments: u64,
    /// The key new segments are encrypted with (`hls_keys`); kept across publishes.
    aes_key: Option<CurrentKey>,
    /// The fMP4 init segment new segments refer to; kept across publishes, replaced (in a
    /// new file) when the codec configuration changes.
    init: Option<CurrentInit>,
    /// The LL-HLS playlist and parts in memory (`hls_ll`).
    ll: Option<Arc<ll::LlStream>>,
    /// The DASH MPD over the same segments (`dash { enabled on; }`).
    dash: Option<dash::DashState>,
}

/// The init segment in use, and its bytes to tell whether a new configuration needs a new one.
struct CurrentInit {
    bytes: Vec<u8>,
    map: EntryMap,
}

/// The key in use: written to its file before the first segment under it was opened, so
/// before any playlist can refer to it.
struct CurrentKey {
    bytes: [u8; writer::AES_BLOCK],
    path: PathBuf,
    uri: String,
    /// Segments listed under it; at `hls_fragments_per_key` the next segment gets a new key.
    uses: u32,
}

impl std::fmt::Debug for CurrentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key bytes: status and logs must not leak it.
        f.debug_struct("CurrentKey")
            .field("path", &self.path)
            .field("uses", &self.uses)
            .finish_non_exhaustive()
    }
}

impl StreamState {
    fn new(
        key: &StreamKey,
        cfg: &HlsConfig,
        dash_cfg: &crate::config::DashConfig,
    ) -> Result<StreamState, path_template::PathError> {
        let vars = Vars {
            vhost: &key.vhost,
            app: &key.app,
            stream: &key.stream,
            ..Vars::default()
        };
        let playlist_rel = path_template::normalize(&path_template::render(&cfg.m3u8_file, &vars))?;
        let ll = (cfg.ll && cfg.use_fmp4).then(|| {
            let stem = playlist_rel
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Arc::new(ll::LlStream::new(&stem, cfg.part, cfg.ll_max_blocked))
        });
        let dash = match dash::DashState::new(key, cfg, dash_cfg, &cfg.path) {
            Ok(d) => d,
            Err(e) => {
                warn!("hls: {key}: {e}");
                None
            }
        };
        Ok(StreamState {
            dash,
            key: key.clone(),
            root: cfg.path.clone(),
            jobs: writer::DiskJobs::for_root(&cfg.path),
            playlist: cfg.path.join(&playlist_rel),
            playlist_rel,
            window: Window::new(cfg.fragment, cfg.td_ratio, cfg.window),
            doomed: Vec::new(),
            discontinuity_next: false,
            video_sh: None,
            audio_sh: None,
            failed_segments: 0,
            aes_key: None,
            init: None,
            ll,
        })
    }

    /// A key file (or fMP4 init segment) is removed (after `keep`, like its segments) once
    /// no listed segment and no new segment can use it any more.
    fn doom_unused_key(&mut self, key: &Path, at: Instant) {
        let in_use = self.window.segments().any(|e| {
            e.key.as_ref().is_some_and(|k| k.path == key)
                || e.map.as_ref().is_some_and(|m| m.path == key)
        }) || self.aes_key.as_ref().is_some_and(|k| k.path == key)
            || self.init.as_ref().is_some_and(|i| i.map.path == key)
            || self.doomed.iter().any(|(_, p)| p == key);
        if !in_use {
            self.doomed.push((at, key.to_path_buf()));
        }
    }

    async fn delete_due(&mut self, now: Instant) {
        let due = self.take_due(now);
        writer::remove_all(&self.jobs, due).await;
    }

    /// The doomed files whose time is up, no longer remembered.
    fn take_due(&mut self, now: Instant) -> Vec<PathBuf> {
        if !self.doomed.iter().any(|(at, _)| *at <= now) {
            return Vec::new();
        }
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.doomed)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.doomed = keep;
        due.into_iter().map(|(_, p)| p).collect()
    }

    /// Deletes every file of the stream: the playlist, listed and doomed segments.
    async fn dispose(&mut self) {
        writer::remove(&self.jobs, &self.playlist).await;
        if let Some(d) = &self.dash {
            writer::remove(&self.jobs, &d.path).await;
        }
        let mut keys: Vec<PathBuf> = self.aes_key.take().map(|k| k.path).into_iter().collect();
        keys.extend(self.init.take().map(|i| i.map.path));
        for e in self.window.drain() {
            writer::remove(&self.jobs, &e.path).await;
            for k in e
                .key
                .map(|k| k.path)
                .into_iter()
                .chain(e.map.map(|m| m.path))
            {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        for k in keys {
            writer::remove(&self.jobs, &k).await;
        }
        for (_, p) in std::mem::take(&mut self.doomed) {
            writer::remove(&self.jobs, &p).await;
        }
    }

    fn playlist_url(&self) -> String {
        self.playlist_rel.to_string_lossy().into_owned()
    }
}

/// A segment being written.
struct OpenSegment {
    seq: u64,
    start_dts: u64,
    last_dts: u64,
    buf: Vec<u8>,
    file: Option<SegmentFile>,
    /// The name rendered at open time, `[duration]` still unresolved.
    name: String,
    opened_at: SystemTime,
    timestamp: u64,
    discontinuity: bool,
    /// A disk error hit this segment: its bytes are discarded, the next one tries again.
    failed: bool,
    /// Its key and IV, when `hls_keys` encrypts it.
    key: Option<EntryKey>,
}

#[derive(Debug, thiserror::Error)]
enum HlsError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Path(#[from] path_template::PathError),
    #[error("URI {0:?} cannot be written in a playlist (quote or control character)")]
    KeyUri(String),
    #[error("no fMP4 init segment: a track has no codec configuration (sequence header) yet")]
    NoInit,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HlsError {
    let path = path.display().to_string();
    move |source| HlsError::Io { what, path, source }
}

/// The `EXT-X-KEY` URI of the key file `rel` (under the key root): `key_url` followed by
/// `rel` (SRS's rule, a plain concatenation), or with no `key_url` the path relative to the
/// playlist, as for segments. Refused if it could not sit inside the quoted attribute.
fn key_uri(key_url: &str, playlist_rel: &Path, rel: &Path) -> Result<String, HlsError> {
    let uri = if key_url.is_empty() {
        segmenter::segment_uri(playlist_rel, rel, "")
    } else {
        let name = rel.to_string_lossy().replace('\\', "/");
        format!("{key_url}{name}")
    };
    if uri.chars().any(|c| c == '"' || c.is_control()) {
        return Err(HlsError::KeyUri(uri));
    }
    Ok(uri)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One publish of a stream: the muxer and the segment being written.
struct Publish {
    ctx: Arc<Context>,
    cfg: HlsConfig,
    policy: CutPolicy,
    want_video: bool,
    want_audio: bool,
    probe: Probe,
    pending: Vec<Frame>,
    muxer: Option<Muxer>,
    /// The tracks the muxer was created with.
    streams: TsStreams,
    seg: Option<OpenSegment>,
    /// With a video track, nothing is written before the first keyframe.
    started: bool,
    last_track_dts: Option<u64>,
    gap_ms: u64,
    jumps: JumpDetector,
    client_id: Option<String>,
    /// HLS stopped for this publish (`hls_on_error ignore|disconnect`, or nothing muxable).
    disabled: bool,
    mux_error_logged: bool,
    scratch: Vec<u8>,
    /// The buffer of the last closed segment, for the next one (a stream keeps one).
    spare: Vec<u8>,
    /// The stream runs on absolute time (SRS's ATC): segments are cut on slots of the
    /// publisher's clock and numbered by them (see `CutPolicy::should_cut_atc`).
    atc: bool,
    /// A slot of the clock went without a segment (GOP longer than `hls_fragment`):
    /// said once per publish.
    atc_gap_warned: bool,
}

async fn stream_task(
    ctx: Arc<Context>,
    key: StreamKey,
    cfg: HlsConfig,
    mut st: StreamState,
    stop: tokio_util::sync::CancellationToken,
    mut shutdown: Shutdown,
) -> StreamState {
    let fragment_ms = cfg.fragment.as_millis() as u64;
    let settings = SourceSettings {
        gop_cache: true,
        queue_length_ms: MIN_QUEUE_MS.max(fragment_ms.saturating_mul(3)),
    };
    let mut consumer = ctx.hub.subscribe(&key, settings);
    let client_id = consumer.source().publisher().map(|p| p.client_id);
    info!(
        "hls: start {key} -> {} (fragment {}s, window {}s)",
        st.playlist.display(),
        cfg.fragment.as_secs_f64(),
        cfg.window.as_secs_f64()
    );
    // A new publish of a stream that already has segments continues on a new timeline.
    if st.window.segments().next().is_some() {
        st.discontinuity_next = true;
    }
    ctx.hls.update(&key, |s| {
        s.playlist = st.playlist.clone();
        s.playlist_url = st.playlist_url();
        s.publishing = true;
        s.format = if cfg.use_fmp4 { "fmp4" } else { "ts" }.to_string();
        s.part_target_ms = st.ll.is_some().then_some(cfg.part.as_millis() as u64);
        s.mpd_url = st.dash.as_ref().map(|d| {
            d.path
                .strip_prefix(&st.root)
                .unwrap_or(&d.path)
                .to_string_lossy()
                .into_owned()
        });
    });
    if let Some(l) = &st.ll {
        ctx.hls.ll.insert(&st.playlist_url(), l.clone());
    }
    let policy = CutPolicy::new(cfg.fragment, cfg.td_ratio, cfg.aof_ratio, cfg.wait_keyframe);
    let mut p = Publish {
        ctx: ctx.clone(),
        policy,
        want_video: cfg.vcodec != HlsVcodec::Vn,
        want_audio: cfg.acodec != HlsAcodec::An,
        cfg,
        probe: Probe::default(),
        pending: Vec::new(),
        muxer: None,
        streams: TsStreams::default(),
        seg: None,
        started: false,
        last_track_dts: None,
        gap_ms: DEFAULT_FRAME_MS,
        jumps: JumpDetector::new(policy.td_ms),
        client_id,
        disabled: false,
        mux_error_logged: false,
        scratch: Vec::new(),
        spare: Vec::new(),
        atc: false,
        atc_gap_warned: false,
    };
    let mut items = Vec::new();
    // When the writer last read up to the newest media: a skip right after that is not
    // the writer being slow but the publisher's clock jumping ahead of the queue.
    let mut caught_up_at = Instant::now();
    'outer: loop {
        items.clear();
        let skipped = consumer.fetch(&mut items);
        if let Some(s) = skipped {
            let behind_ms = caught_up_at.elapsed().as_millis() as u64;
            match segmenter::skip_cause(s.lag_ms, behind_ms) {
                SkipCause::SlowWriter => warn!(
                    "hls: {key}: fell {} ms behind (disk too slow?); skipped {} entries, new segment with a discontinuity",
                    s.lag_ms, s.entries
                ),
                SkipCause::TimestampJump => warn!(
                    "hls: {key}: publisher timestamps jumped {} ms ahead; skipped {} entries, new segment with a discontinuity",
                    s.lag_ms, s.entries
                ),
            }
            // Media is missing: the next segment starts a new timeline.
            p.cut(&mut st).await;
            st.discontinuity_next = true;
            p.started = false;
            p.jumps.reset();
        }
        if items.len() < hub::MAX_BATCH {
            caught_up_at = Instant::now();
        }
        if items.is_empty() {
            if !consumer.source().is_publishing() {
                break;
            }
            tokio::select! {
                _ = consumer.changed() => {}
                _ = stop.cancelled() => {
                    info!("hls: {key}: turned off by a reload");
                    break 'outer;
                }
                // Only once nothing is left to read: a graceful stop has unpublished
                // already, and what the publisher sent last belongs in the files.
                _ = shutdown.requested() => break 'outer,
            }
            continue;
        }
        // `atc_auto` may turn absolute time on when the metadata arrives.
        p.atc = consumer.source().atc();
        for item in items.drain(..) {
            match item {
                Item::Frame(f) => p.on_frame(&mut st, f).await,
                Item::Published => {}
                Item::Unpublished => break 'outer,
            }
        }
    }
    p.finish(&mut st).await;
    drop(consumer);
    ctx.hub.release(&key);
    info!("hls: stop {key}");
    st
}

impl Publish {
    fn track_wanted(&self, f: &Frame) -> bool {
        match f.kind {
            FrameKind::Video => self.want_video,
            FrameKind::Audio => self.want_audio,
            FrameKind::Script => false,
        }
    }

    async fn on_frame(&mut self, st: &mut StreamState, f: Frame) {
        if self.disabled || !self.track_wanted(&f) {
            return;
        }
        if self.muxer.is_none() {
            self.probe.see(f.timestamp, f.is_video(), f.sequence_header);
            self.pending.push(f);
            if self.probe.ready(self.want_video, self.want_audio) {
                self.create_muxer(st).await;
            }
            return;
        }
        self.mux(st, f).await;
    }

    /// Declares the tracks seen so far and replays what was held back.
    async fn create_muxer(&mut self, st: &mut StreamState) {
        let pending = std::mem::take(&mut self.pending);
        let streams = TsStreams {
            video: pending
                .iter()
                .filter(|f| f.is_video())
                .find_map(|f| TsVideo::from_flv(&f.payload)),
            audio: pending
                .iter()
                .filter(|f| f.is_audio())
                .find_map(|f| TsAudio::from_flv(&f.payload)),
        };
        if streams.video.is_none() && streams.audio.is_none() {
            warn!(
                "hls: {}: no codec HLS can carry (H.264/H.265, AAC/MP3); HLS off for this publish",
                st.key
            );
            self.disabled = true;
            return;
        }
        info!(
            "hls: {}: tracks video={:?} audio={:?}",
            st.key, streams.video, streams.audio
        );
        self.streams = streams;
        self.muxer = Some(Muxer::new(self.cfg.use_fmp4, streams));
        for f in pending {
            self.mux(st, f).await;
        }
    }

    async fn mux(&mut self, st: &mut StreamState, f: Frame) {
        let declared = self.streams;
        let Some(streams) = self.muxer.as_ref().map(|m| m.streams(declared)) else {
            return;
        };
        let ts = f.timestamp;
        if f.sequence_header {
            self.on_sequence_header(st, f, streams).await;
            return;
        }
        let declared = if f.is_video() {
            streams.video.is_some()
        } else {
            streams.audio.is_some()
        };
        if !declared {
            return;
        }
        let class = match (f.is_video(), f.keyframe) {
            (true, true) => FrameClass::Keyframe,
            (true, false) => FrameClass::Video,
            (false, _) => FrameClass::Audio,
        };
        if let Some(jump) = self.jumps.see(ts, f.is_video()) {
            let (by, way) = match jump {
                Jump::Forward(ms) => (ms, "ahead"),
                Jump::Backward(ms) => (ms, "back"),
            };
            warn!(
                "hls: {}: publisher timestamps jumped {by} ms {way} (to {ts} ms); new segment with a discontinuity",
                st.key
            );
            // The segment ends where its media ends, not at the jump; the next one starts
            // on a keyframe, on the new timeline.
            self.cut(st).await;
            st.discontinuity_next = true;
            self.started = false;
            self.last_track_dts = None;
        }
        if !self.started {
            if streams.video.is_some() && class != FrameClass::Keyframe {
                return;
            }
            self.started = true;
        }
        // The frame gap of the track that drives the segments, for the last segment's length.
        let drives = f.is_video() == streams.video.is_some();
        if drives {
            if let Some(prev) = self.last_track_dts {
                let gap = ts.saturating_sub(prev);
                if gap > 0 && gap < 1_000 {
                    self.gap_ms = gap;
                }
            }
            self.last_track_dts = Some(ts);
        }
        let fragment_ms = (self.cfg.fragment.as_millis() as u64).max(1);
        let cut = self.seg.as_ref().is_some_and(|s| {
            if self.atc {
                self.policy.should_cut_atc(
                    fragment_ms,
                    s.start_dts,
                    ts,
                    class,
                    streams.video.is_some(),
                )
            } else {
                self.policy
                    .should_cut(ts.saturating_sub(s.start_dts), class)
            }
        });
        if self.muxer.as_ref().is_some_and(Muxer::is_fmp4) {
            self.mux_fmp4(st, f, cut).await;
            return;
        }
        if cut {
            self.close_segment(st, ts).await;
        }
        if self.seg.is_none() {
            self.open_segment(st, ts).await;
        }
        // A frame that would not fit in the buffer's room sends what is there first, so
        // that the buffer keeps its size (see `FLUSH_BYTES`) rather than doubling.
        let room = self.seg.as_ref().is_some_and(|s| {
            s.buf.is_empty() || s.buf.len() + muxed_size(f.payload.len()) <= s.buf.capacity()
        });
        if !room {
            self.flush(st).await;
        }
        let (Some(seg), Some(muxer)) = (self.seg.as_mut(), self.muxer.as_mut()) else {
            return;
        };
        let res = muxer.write(f.is_video(), ts, &f.payload, &mut seg.buf);
        if let Err(e) = res {
            if !self.mux_error_logged {
                warn!("hls: {}: frame at {ts} ms not muxed: {e}", st.key);
                self.mux_error_logged = true;
            }
        }
        seg.last_dts = seg.last_dts.max(ts);
        if seg.buf.len() >= FLUSH_BYTES {
            self.flush(st).await;
        }
    }

    /// A new sequence header: the decoder config changes. A different one than before cuts
    /// the segment and marks a discontinuity; a different codec needs a new PMT (new muxer).
    async fn on_sequence_header(&mut self, st: &mut StreamState, f: Frame, streams: TsStreams) {
        let previous = if f.is_video() {
            st.video_sh.replace(f.payload.clone())
        } else {
            st.audio_sh.replace(f.payload.clone())
        };
        let changed = previous.as_ref().is_some_and(|p| *p != f.payload);
        if changed {
            info!(
                "hls: {}: codec config changed; new segment with a discontinuity",
                st.key
            );
            // Every sample under the old configuration belongs to the segment it ends.
            self.finish_fragment(st.ll.clone().as_deref());
            self.close_segment(st, f.timestamp).await;
            st.discontinuity_next = true;
            self.started = false;
            let mut next = streams;
            if f.is_video() {
                next.video = TsVideo::from_flv(&f.payload).or(streams.video);
            } else {
                next.audio = TsAudio::from_flv(&f.payload).or(streams.audio);
            }
            if next != streams {
                let mut m = Muxer::new(self.cfg.use_fmp4, next);
                let other = if f.is_video() {
                    &st.audio_sh
                } else {
                    &st.video_sh
                };
                if let Some(sh) = other {
                    self.scratch.clear();
                    let _ = m.write(!f.is_video(), 0, sh, &mut self.scratch);
                }
                self.streams = next;
                self.muxer = Some(m);
            }
        }
        let Some(m) = self.muxer.as_mut() else {
            return;
        };
        let declared = if f.is_video() {
            streams.video.is_some()
        } else {
            streams.audio.is_some()
        };
        if declared {
            self.scratch.clear();
            let res = m.write(f.is_video(), f.timestamp, &f.payload, &mut self.scratch);
            if let Err(e) = res {
                warn!("hls: {}: sequence header refused: {e}", st.key);
            }
        }
    }

    fn segment_vars<'a>(
        &self,
        st: &'a StreamState,
        seq: u64,
        at: SystemTime,
        timestamp: u64,
    ) -> Vars<'a> {
        Vars {
            vhost: &st.key.vhost,
            app: &st.key.app,
            stream: &st.key.stream,
            seq: Some(seq),
            timestamp: Some(timestamp),
            time: Some(at),
            duration_ms: None,
        }
    }

    async fn open_segment(&mut self, st: &mut StreamState, dts: u64) {
        let now = SystemTime::now();
        let fragment_ms = (self.cfg.fragment.as_millis() as u64).max(1);
        let (seq, timestamp) = if self.atc {
            // Under ATC what names a segment comes from the absolute clock, never from
            // this origin's history: `[seq]` is the clock's slot (never going back, so
            // the playlist stays in order), `[timestamp]` the segment's first DTS (or its
            // slot with `hls_ts_floor`). Two origins fed by one encoder agree on both.
            let slot = segmenter::atc_slot(dts, fragment_ms);
            let next = st.window.next_seq();
            if slot > next && st.window.segments().next().is_some() && !self.atc_gap_warned {
                warn!(
                    "hls: {}: atc: no segment for {} slot(s) of {} ms before {slot} (keyframe interval longer than hls_fragment?); segment numbers skip",
                    st.key,
                    slot - next,
                    fragment_ms
                );
                self.atc_gap_warned = true;
            }
            let seq = slot.max(next);
            (seq, if self.cfg.ts_floor { slot } else { dts })
        } else {
            let timestamp = if self.cfg.ts_floor {
                unix_ms(now) / fragment_ms
            } else {
                unix_ms(now)
            };
            (st.window.next_seq(), timestamp)
        };
        let name = path_template::render(
            self.segment_template(),
            &self.segment_vars(st, seq, now, timestamp),
        );
        let mut seg = OpenSegment {
            seq,
            start_dts: dts,
            last_dts: dts,
            buf: self.take_buffer(),
            file: None,
            name,
            opened_at: now,
            timestamp,
            discontinuity: std::mem::take(&mut st.discontinuity_next),
            failed: false,
            key: None,
        };
        if let Some(Muxer::Ts(m)) = self.muxer.as_mut() {
            m.write_tables(&mut seg.buf);
        }
        if let Some(l) = &st.ll {
            l.open_segment(seq);
        }
        let cipher = if self.cfg.keys {
            match self.segment_key(st, seq).await {
                Ok((cipher, key)) => {
                    seg.key = Some(key);
                    Some(cipher)
                }
                Err(e) => {
                    // Never a segment in the clear when encryption is asked for.
                    seg.failed = true;
                    self.seg = Some(seg);
                    self.fail(st, e).await;
                    return;
                }
            }
        } else {
            None
        };
        // The file is created with the segment's first bytes (see `SegmentFile`).
        let opened = match path_template::under(&st.root, &seg.name) {
            Ok(path) => Ok(match cipher {
                Some(c) => SegmentFile::create_encrypted(&st.jobs, &path, c),
                None => SegmentFile::create(&st.jobs, &path),
            }),
            Err(e) => Err(HlsError::from(e)),
        };
        match opened {
            Ok(f) => seg.file = Some(f),
            Err(e) => {
                seg.failed = true;
                self.seg = Some(seg);
                self.fail(st, e).await;
                return;
            }
        }
        self.seg = Some(seg);
    }

    /// The key and a fresh IV for segment `seq`: the current key, or a new random one once
    /// the current one has `hls_fragments_per_key` segments, written to its file (tmp +
    /// rename) now, before the segment exists and so before any playlist lists it.
    async fn segment_key(
        &mut self,
        st: &mut StreamState,
        seq: u64,
    ) -> Result<(Cbc, EntryKey), HlsError> {
        let current = match st.aes_key.take() {
            Some(k) if k.uses < self.cfg.fragments_per_key => k,
            old => match self.new_key(st, seq).await {
                Ok(k) => {
                    if let Some(old) = old {
                        // Its segments may all be out of the window already, yet still
                        // served to players that loaded an older playlist: it goes with
                        // the last of them.
                        let at = st
                            .doomed
                            .iter()
                            .map(|(at, _)| *at)
                            .max()
                            .unwrap_or_else(Instant::now);
                        st.doom_unused_key(&old.path, at);
                    }
                    k
                }
                Err(e) => {
                    st.aes_key = old;
                    return Err(e);
                }
            },
        };
        let iv = match writer::random_block() {
            Ok(iv) => iv,
            Err(e) => {
                let err = io_err("cannot make an IV for", &current.path)(e);
                st.aes_key = Some(current);
                return Err(err);
            }
        };
        let cipher = Cbc::new(&current.bytes, &iv);
        let entry = EntryKey {
            path: current.path.clone(),
            playlist: SegmentKey {
                uri: current.uri.clone(),
                iv,
            },
        };
        st.aes_key = Some(current);
        Ok((cipher, entry))
    }

    /// A new random key for the segments from `seq` on, in its file.
    async fn new_key(&self, st: &StreamState, seq: u64) -> Result<CurrentKey, HlsError> {
        let vars = Vars {
            vhost: &st.key.vhost,
            app: &st.key.app,
            stream: &st.key.stream,
            seq: Some(seq),
            ..Vars::default()
        };
        let rel = path_template::normalize(&path_template::render(&self.cfg.key_file, &vars))?;
        let path = self.cfg.key_root().join(&rel);
        let uri = key_uri(&self.cfg.key_url, &st.playlist_rel, &rel)?;
        let bytes = writer::random_block().map_err(io_err("cannot make a key for", &path))?;
        writer::write_atomic(&st.jobs, &path, &bytes)
            .await
            .map_err(io_err("cannot write key file", &path))?;
        info!(
            "hls: {}: new key {} for segments from {seq}",
            st.key,
            path.display()
        );
        Ok(CurrentKey {
            bytes,
            path,
            uri,
            uses: 0,
        })
    }

    /// The segment buffer: the previous segment's, or a new one of [`FLUSH_BYTES`] and room
    /// for a frame.
    fn take_buffer(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.spare);
        if buf.capacity() < FLUSH_BYTES {
            buf.reserve_exact(FLUSH_BYTES + FLUSH_BYTES / 4);
        } else if buf.capacity() > 4 * FLUSH_BYTES {
            // A huge frame grew it once: do not keep that much for every segment.
            buf.shrink_to(FLUSH_BYTES + FLUSH_BYTES / 4);
        }
        buf
    }

    async fn flush(&mut self, st: &mut StreamState) {
        let Some(seg) = self.seg.as_mut() else {
            return;
        };
        if seg.failed {
            seg.buf.clear();
            return;
        }
        let Some(file) = seg.file.as_mut() else {
            return;
        };
        let res = file.write(&mut seg.buf).await;
        if let Err(e) = res {
            seg.failed = true;
            let err = HlsError::Io {
                what: "cannot write segment",
                path: seg.name.clone(),
                source: e,
            };
            self.fail(st, err).await;
        }
    }

    /// Closes the current segment at `end_dts` (the first dts of the next one) and lists it;
    /// LL-HLS moves its parts from the open segment to the listed one (or drops them).
    async fn close_segment(&mut self, st: &mut StreamState, end_dts: u64) {
        let open = self.seg.is_some();
        self.close_segment_inner(st, end_dts).await;
        if let (true, Some(l)) = (open, &st.ll) {
            l.segment_done(st.window.playlist(false), false);
        }
    }

    async fn close_segment_inner(&mut self, st: &mut StreamState, end_dts: u64) {
        self.take_fragment_to(st.ll.as_deref());
        let Some(mut seg) = self.seg.take() else {
            return;
        };
        // What is still buffered goes with the close (one trip to the disk thread for both);
        // the buffer then serves the next segment.
        let mut buf = std::mem::take(&mut seg.buf);
        self.close_written(st, &mut seg, end_dts, &mut buf).await;
        buf.clear();
        self.spare = buf;
    }

    async fn close_written(
        &mut self,
        st: &mut StreamState,
        seg: &mut OpenSegment,
        end_dts: u64,
        rest: &mut Vec<u8>,
    ) {
        let duration_ms = end_dts.saturating_sub(seg.start_dts);
        let file = match seg.file.take() {
            Some(f) if !seg.failed && duration_ms >= segmenter::MIN_SEGMENT_MS => f,
            other => {
                if let Some(f) = other {
                    f.abandon().await;
                }
                // The discontinuity must survive a dropped segment, and a segment lost to a
                // disk error leaves a hole in the timeline: the next one starts a new one.
                st.discontinuity_next |= seg.discontinuity || seg.failed;
                return;
            }
        };
        let vars = Vars {
            duration_ms: Some(duration_ms),
            ..self.segment_vars(st, seg.seq, seg.opened_at, seg.timestamp)
        };
        let final_name = path_template::render(self.segment_template(), &vars);
        let rel = match path_template::normalize(&final_name) {
            Ok(r) => r,
            Err(e) => {
                file.abandon().await;
                st.discontinuity_next = true;
                self.fail(st, e.into()).await;
                return;
            }
        };
        let path = st.root.join(&rel);
        let map = if self.muxer.as_ref().is_some_and(Muxer::is_fmp4) {
            match self.ensure_init(st, seg.seq).await {
                Ok(m) => Some(m),
                Err(e) => {
                    file.abandon().await;
                    st.discontinuity_next = true;
                    self.fail(st, e).await;
                    return;
                }
            }
        } else {
            None
        };
        let uri = segmenter::segment_uri(&st.playlist_rel, &rel, &self.cfg.entry_prefix);
        // The playlist that lists the segment is rendered now and written by the same
        // disk job that renames the segment, right after it (the window is only updated
        // once the segment is there).
        let mut window = st.window.clone();
        let removed = window.push(Entry {
            seq: seg.seq,
            uri: uri.clone(),
            path: path.clone(),
            duration_ms,
            discontinuity: seg.discontinuity,
            key: seg.key.clone(),
            map,
        });
        let now = Instant::now();
        let then = writer::Close {
            playlist: Some((st.playlist.clone(), window.playlist(false).render())),
            remove: st.take_due(now),
        };
        let (bytes, playlist_error) = match file.finish(&path, rest, then).await {
            Ok(bytes) => (bytes, None),
            Err(CloseError::Segment(e)) => {
                st.discontinuity_next = true;
                self.fail(st, io_err("cannot finish segment", &path)(e))
                    .await;
                return;
            }
            Err(CloseError::Playlist(e)) => (0, Some(e)),
        };
        st.window = window;
        if let (Some(k), Some(cur)) = (&seg.key, st.aes_key.as_mut()) {
            if cur.path == k.path {
                cur.uses = cur.uses.saturating_add(1);
            }
        }
        let listed = Duration::from_millis(st.window.total_ms());
        for r in removed {
            if self.cfg.cleanup {
                // RFC 8216 §6.2.2: a removed segment stays available for its duration plus
                // the playlist's, for players that loaded the previous playlist.
                let keep = Duration::from_millis(r.duration_ms) + listed;
                st.doomed.push((now + keep, r.path));
                if let Some(k) = &r.key {
                    st.doom_unused_key(&k.path, now + keep);
                }
                if let Some(m) = &r.map {
                    st.doom_unused_key(&m.path, now + keep);
                }
            }
        }
        if let Some(e) = playlist_error {
            self.fail(st, io_err("cannot write playlist", &st.playlist)(e))
                .await;
            return;
        }
        let first_listed = st.window.segments().next().map_or(seg.seq, |e| e.seq);
        if let Some(d) = st.dash.as_mut() {
            let wall = unix_ms(seg.opened_at) as i64;
            d.push(
                seg.seq,
                seg.start_dts,
                duration_ms,
                bytes,
                seg.discontinuity,
                wall,
                first_listed,
            );
        }
        self.write_mpd(st, true).await;
        if st.failed_segments > 0 {
            // WARN like the failure it ends, so that whoever sees one sees both.
            warn!(
                "hls: {}: writing to {} recovered after {} failed segments",
                st.key,
                path.parent().unwrap_or(&st.root).display(),
                st.failed_segments
            );
            st.failed_segments = 0;
            self.ctx.hls.update(&st.key, |s| s.last_error = None);
        }
        let at = unix_ms(SystemTime::now());
        let segments = st.window.segments().count();
        self.ctx.hls.update(&st.key, |s| {
            s.sequence = Some(seg.seq);
            s.segments = segments;
            s.last_segment_at_ms = Some(at);
            s.last_segment_duration_ms = Some(duration_ms);
        });
        on_segment_closed(
            &self.ctx,
            SegmentClosed {
                key: st.key.clone(),
                client_id: self.client_id.clone(),
                file: path,
                url: uri,
                m3u8: st.playlist.clone(),
                m3u8_url: st.playlist_url(),
                seq_no: seg.seq,
                duration: Duration::from_millis(duration_ms),
            },
        );
    }

    fn segment_template(&self) -> &str {
        if self.cfg.use_fmp4 {
            &self.cfg.fmp4_file
        } else {
            &self.cfg.ts_file
        }
    }

    /// fMP4: the samples whose duration is known go to the open segment as one fragment,
    /// which is also an LL-HLS part when `ll` is given.
    fn take_fragment_to(&mut self, ll: Option<&ll::LlStream>) {
        let (Some(Muxer::Fmp4(m)), Some(seg)) = (self.muxer.as_mut(), self.seg.as_mut()) else {
            return;
        };
        let Some(ll) = ll else {
            m.take_fragment(&mut seg.buf);
            return;
        };
        let mut part = Vec::new();
        if let Some(meta) = m.take_fragment(&mut part) {
            seg.buf.extend_from_slice(&part);
            if !seg.failed {
                let d = Duration::from_millis(meta.duration_ms);
                ll.add_part(Bytes::from(part), d, meta.independent);
            }
        }
    }

    /// fMP4: every sample, the pending ones too (the segment ends where its media ends).
    fn finish_fragment(&mut self, ll: Option<&ll::LlStream>) {
        if let Some(Muxer::Fmp4(m)) = self.muxer.as_mut() {
            m.finish();
        }
        self.take_fragment_to(ll);
    }

    /// fMP4: the frame goes to the muxer first; a cut then closes the segment with the
    /// samples before it, and the frame opens the next one (see `media::fmp4`).
    async fn mux_fmp4(&mut self, st: &mut StreamState, f: Frame, cut: bool) {
        let ts = f.timestamp;
        if let Some(m) = self.muxer.as_mut() {
            if let Err(e) = m.write(f.is_video(), ts, &f.payload, &mut self.scratch) {
                if !self.mux_error_logged {
                    warn!("hls: {}: frame at {ts} ms not muxed: {e}", st.key);
                    self.mux_error_logged = true;
                }
            }
        }
        if cut {
            self.close_segment(st, ts).await;
        }
        if self.seg.is_none() {
            self.open_segment(st, ts).await;
        }
        // LL-HLS: a part ends before the frame that would take it past the part target.
        let part_ms = self.cfg.part.as_millis() as u64;
        let (big, part_due) = match &self.muxer {
            Some(Muxer::Fmp4(m)) => (
                m.ready_bytes() >= FMP4_FRAGMENT_BYTES,
                m.has_ready() && m.ready_ms() + self.gap_ms > part_ms,
            ),
            _ => (false, false),
        };
        let ll = st.ll.clone();
        if ll.is_some() && part_due && self.seg.as_ref().is_some_and(|s| !s.failed) {
            // Players fetch the init segment before the first part.
            let seq = self.seg.as_ref().map_or(0, |s| s.seq);
            if let Err(e) = self.ensure_init(st, seq).await {
                warn!("hls: {}: {e}", st.key);
            }
            self.take_fragment_to(ll.as_deref());
        } else if big {
            self.take_fragment_to(ll.as_deref());
        }
        let Some(seg) = self.seg.as_mut() else {
            return;
        };
        seg.last_dts = seg.last_dts.max(ts);
        if seg.buf.len() >= FLUSH_BYTES {
            self.flush(st).await;
        }
    }

    /// The init segment of the muxer's configuration, written (tmp + rename) before the
    /// first segment that needs it is listed. A new configuration gets a new file (the
    /// template's name with `-<seq>` before `.mp4`), as players cache init segments by URI.
    async fn ensure_init(&mut self, st: &mut StreamState, seq: u64) -> Result<EntryMap, HlsError> {
        let Some(Muxer::Fmp4(m)) = self.muxer.as_ref() else {
            return Err(HlsError::NoInit);
        };
        let bytes = m.init_segment().ok_or(HlsError::NoInit)?;
        if let Some(cur) = &st.init {
            if cur.bytes == bytes {
                return Ok(cur.map.clone());
            }
        }
        let vars = Vars {
            vhost: &st.key.vhost,
            app: &st.key.app,
            stream: &st.key.stream,
            ..Vars::default()
        };
        let mut name = path_template::render(&self.cfg.init_file, &vars);
        if st.init.is_some() {
            let stem = name.strip_suffix(".mp4").unwrap_or(&name).to_string();
            name = format!("{stem}-{seq}.mp4");
        }
        let rel = path_template::normalize(&name)?;
        let path = st.root.join(&rel);
        writer::write_atomic(&st.jobs, &path, &bytes)
            .await
            .map_err(io_err("cannot write init segment", &path))?;
        let uri = segmenter::segment_uri(&st.playlist_rel, &rel, &self.cfg.entry_prefix);
        if uri.chars().any(|c| c == '"' || c.is_control()) {
            return Err(HlsError::KeyUri(uri));
        }
        let map = EntryMap { path, uri };
        if let Some(old) = st.init.replace(CurrentInit {
            bytes,
            map: map.clone(),
        }) {
            if old.map.path != map.path {
                let at = st
                    .doomed
                    .iter()
                    .map(|(at, _)| *at)
                    .max()
                    .unwrap_or_else(Instant::now);
                st.doom_unused_key(&old.map.path, at);
            }
        }
        Ok(map)
    }

    /// The DASH MPD, when on: live, or static once the stream ended. A failure is logged
    /// only: HLS goes on.
    async fn write_mpd(&self, st: &StreamState, live: bool) {
        let (Some(d), Some(Muxer::Fmp4(m)), Some(init)) = (&st.dash, &self.muxer, &st.init) else {
            return;
        };
        let Some(tracks) = m.tracks() else {
            return;
        };
        let codecs: Vec<String> = tracks.iter().map(|t| t.codec.rfc6381()).collect();
        let video = tracks.iter().find_map(|t| match &t.codec {
            media::fmp4::TrackCodec::H264 { width, height, .. }
            | media::fmp4::TrackCodec::H265 { width, height, .. } => Some((*width, *height)),
            _ => None,
        });
        let init_rel = init
            .map
            .path
            .strip_prefix(&st.root)
            .unwrap_or(&init.map.path);
        let text = d.render(
            live,
            st.window.target(),
            &codecs.join(","),
            video,
            &d.uri_of(init_rel),
            unix_ms(SystemTime::now()) as i64,
        );
        if let Err(e) = writer::write_atomic(&st.jobs, &d.path, text.as_bytes()).await {
            warn!(
                "hls: {}: cannot write MPD {}: {e}",
                st.key,
                d.path.display()
            );
        }
    }

    async fn write_playlist(&self, st: &StreamState, ended: bool) -> Result<(), HlsError> {
        let text = st.window.playlist(ended).render();
        writer::write_atomic(&st.jobs, &st.playlist, text.as_bytes())
            .await
            .map_err(io_err("cannot write playlist", &st.playlist))
    }

    /// Closes the open segment where it stands (after lost media).
    async fn cut(&mut self, st: &mut StreamState) {
        self.finish_fragment(st.ll.clone().as_deref());
        if let Some(end) = self.seg.as_ref().map(|s| s.last_dts + self.gap_ms) {
            self.close_segment(st, end).await;
        }
    }

    /// The publisher left: the last segment is closed and listed.
    async fn finish(&mut self, st: &mut StreamState) {
        if self.muxer.is_none() && !self.pending.is_empty() && !self.disabled {
            self.create_muxer(st).await;
        }
        self.cut(st).await;
        st.discontinuity_next = true;
        // Without hls_dispose nothing would ever end the playlist, and after a
        // graceful stop no republish can come: end it now.
        if (self.cfg.dispose.is_zero() || self.ctx.is_stopping())
            && st.window.segments().next().is_some()
        {
            match self.write_playlist(st, true).await {
                Ok(()) => info!("hls: {}: playlist ended (#EXT-X-ENDLIST)", st.key),
                Err(e) => warn!("hls: {}: {e}", st.key),
            }
            if let Some(l) = &st.ll {
                l.segment_done(st.window.playlist(true), true);
            }
            self.write_mpd(st, false).await;
        }
    }

    /// A disk error, handled as `hls_on_error` says; never affects other streams.
    async fn fail(&mut self, st: &mut StreamState, e: HlsError) {
        let msg = e.to_string();
        let at = unix_ms(SystemTime::now());
        self.ctx.hls.update(&st.key, |s| {
            s.errors += 1;
            s.last_error = Some(msg.clone());
            s.last_error_at_ms = Some(at);
        });
        // Logged once per episode: the first failure, then the recovery.
        let first = st.failed_segments == 0;
        st.failed_segments += 1;
        match self.cfg.on_error {
            HlsOnError::Continue => {
                if first {
                    warn!("hls: {}: {msg}; will retry with the next segment (further errors counted in the API)", st.key);
                }
            }
            HlsOnError::Ignore => {
                warn!(
                    "hls: {}: {msg}; HLS off for this publish (hls_on_error ignore)",
                    st.key
                );
                self.disable().await;
            }
            HlsOnError::Disconnect => {
                warn!(
                    "hls: {}: {msg}; disconnecting the publisher (hls_on_error disconnect)",
                    st.key
                );
                if let Some(id) = &self.client_id {
                    self.ctx.clients.kick(id);
                }
                self.disable().await;
            }
        }
    }

    async fn disable(&mut self) {
        self.disabled = true;
        if let Some(mut seg) = self.seg.take() {
            if let Some(f) = seg.file.take() {
                f.abandon().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_uris_follow_srs_or_the_playlist() {
        let playlist = Path::new("live/test.m3u8");
        // No hls_key_url: relative to the playlist, like the segments.
        let uri = key_uri("", playlist, Path::new("live/test-5.key")).expect("uri");
        assert_eq!(uri, "test-5.key");
        let uri = key_uri("", playlist, Path::new("keys/live/test-5.key")).expect("uri");
        assert_eq!(uri, "../keys/live/test-5.key");
        // hls_key_url: SRS's concatenation with the rendered file name.
        let uri = key_uri("https://k.example/", playlist, Path::new("live/test-5.key"));
        assert_eq!(uri.expect("uri"), "https://k.example/live/test-5.key");
        // A stream name with a quote would end the attribute early.
        let bad = key_uri("", playlist, Path::new("live/a\"b-5.key"));
        assert!(matches!(bad, Err(HlsError::KeyUri(_))), "{bad:?}");
    }
}
