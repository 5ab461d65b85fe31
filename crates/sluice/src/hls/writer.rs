//! The HLS file work: segments written to a temp file and renamed when complete, playlists
//! replaced atomically, files removed, and at start-up the leftovers of a previous run:
//! stale playlists closed, temp files removed, old segments and playlists disposed.
//!
//! Why temp files and renames: a player (or the HTTP server) reading while we write must
//! only ever see a whole segment or a whole playlist; `rename` within one directory is atomic.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use std::io::Write as _;
use std::sync::Arc;

/// AES block size: keys, IVs and CBC blocks are all 16 bytes.
pub const AES_BLOCK: usize = 16;

/// A fresh key or IV from the operating system's random source. No fallback: a
/// predictable key would be encryption in name only.
pub fn random_block() -> io::Result<[u8; AES_BLOCK]> {
    let mut b = [0u8; AES_BLOCK];
    getrandom::fill(&mut b).map_err(|e| io::Error::other(format!("OS random source: {e}")))?;
    Ok(b)
}

/// AES-128-CBC with PKCS#7 padding (RFC 8216 §4.3.2.4's `METHOD=AES-128`), applied to a
/// segment as it is written in pieces: whole blocks are encrypted as they come, the rest
/// waits for the next piece, and [`Cbc::finish`] pads the tail. Streaming gives the same
/// bytes as encrypting the whole segment at close, without holding it in memory.
pub struct Cbc {
    enc: cbc::Encryptor<aes::Aes128>,
    /// Plain bytes short of a whole block (always fewer than [`AES_BLOCK`]).
    tail: Vec<u8>,
}

impl std::fmt::Debug for Cbc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Cbc").finish_non_exhaustive()
    }
}

impl Cbc {
    pub fn new(key: &[u8; AES_BLOCK], iv: &[u8; AES_BLOCK]) -> Cbc {
        Cbc {
            enc: cbc::Encryptor::<aes::Aes128>::new(key.into(), iv.into()),
            tail: Vec::with_capacity(AES_BLOCK),
        }
    }

    /// Encrypts what `data` completes into whole blocks and returns it.
    pub fn update(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.tail);
        out.extend_from_slice(data);
        let whole = out.len() - out.len() % AES_BLOCK;
        self.tail = out.split_off(whole);
        self.encrypt(&mut out);
        out
    }

    /// The last block(s): the tail padded with PKCS#7 (a full block of 16s when the plain
    /// text was a multiple of 16, so the padding can always be removed).
    pub fn finish(mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.tail);
        let pad = AES_BLOCK - out.len() % AES_BLOCK;
        out.resize(out.len() + pad, pad as u8);
        self.encrypt(&mut out);
        out
    }

    fn encrypt(&mut self, blocks: &mut [u8]) {
        for block in blocks.chunks_exact_mut(AES_BLOCK) {
            self.enc
                .encrypt_block_mut(GenericArray::from_mut_slice(block));
        }
    }
}

/// Buffered segment bytes are written out once they reach this, so a segment never sits
/// whole in memory: each stream keeps one buffer of about this size (plus a frame), where a
/// whole 2 s segment of a 500 kbps stream, held until its close, made the buffer grow to
/// 256 KB. A 500 kbps stream makes two or three writes per 2 s segment.
pub const FLUSH_BYTES: usize = 64 << 10;
/// Largest playlist read when closing stale ones; a live playlist is a few KB.
const MAX_STALE_PLAYLIST: u64 = 4 << 20;
/// How deep and how wide the start-up scan for stale playlists goes.
const MAX_SCAN_DEPTH: usize = 8;
const MAX_SCAN_ENTRIES: usize = 100_000;

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn ensure_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// Runs blocking file work off the runtime's threads. Why one call per step and not
/// `tokio::fs` per system call: each `tokio::fs` call is a trip to the blocking pool (a
/// thread wake-up and a hand-back), and `tokio::fs::File` copies every write into a buffer
/// of its own. A segment's close (write the rest, rename) and a playlist's replacement
/// (create the directory if needed, write, rename) are one trip each this way, and the
/// segment's bytes are lent to the blocking thread, not copied.
async fn blocking<T: Send + 'static>(
    jobs: &DiskJobs,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    on_disk_thread(jobs, f).await?
}

/// How many HLS file jobs run at once under one HLS root (`hls_path`). Streams that
/// started together cut their segments together (same keyframe times), and each cut used to
/// take a blocking thread of its own: 200 streams kept ~420 threads alive, and the bursts
/// cost more in thread switches than the writes themselves. Queued here, a burst runs on a
/// few threads that stay warm; a page-cache write takes microseconds, and a disk too slow
/// for this is too slow for any number.
pub const DISK_JOBS: usize = 4;

/// The bound on the HLS file jobs of one root ([`DISK_JOBS`] at once), shared by every
/// stream writing under it. One per root, not one for the server: a file system that hangs
/// under one vhost's `hls_path` (a stuck network mount) holds that root's jobs and delays
/// its streams' segments, and the streams of other roots go on.
#[derive(Debug, Clone)]
pub struct DiskJobs(Arc<tokio::sync::Semaphore>);

impl DiskJobs {
    /// The jobs of `root`, the same for every caller naming the same path while any
    /// holds them.
    pub fn for_root(root: &Path) -> DiskJobs {
        type Roots = std::sync::Mutex<
            std::collections::HashMap<PathBuf, std::sync::Weak<tokio::sync::Semaphore>>,
        >;
        static ROOTS: std::sync::OnceLock<Roots> = std::sync::OnceLock::new();
        let mut roots = crate::util::lock(ROOTS.get_or_init(Default::default));
        if let Some(s) = roots.get(root).and_then(std::sync::Weak::upgrade) {
            return DiskJobs(s);
        }
        roots.retain(|_, w| w.strong_count() > 0);
        let s = Arc::new(tokio::sync::Semaphore::new(DISK_JOBS));
        roots.insert(root.to_path_buf(), Arc::downgrade(&s));
        DiskJobs(s)
    }
}

/// Runs `f` on a blocking thread, at most [`DISK_JOBS`] of `jobs` at a time.
async fn on_disk_thread<T: Send + 'static>(
    jobs: &DiskJobs,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    // The semaphore is never closed, so acquiring only waits.
    let permit = jobs.0.acquire().await;
    let res = tokio::task::spawn_blocking(f).await;
    drop(permit);
    res.map_err(|e| io::Error::other(format!("file task failed: {e}")))
}

/// A segment being written: `NAME.tmp` until [`SegmentFile::finish`] renames it;
/// encrypted on the way to disk when it has a [`Cbc`]. The file is created with the first
/// bytes written (the same trip to the disk thread), so a segment costs one trip per
/// [`FLUSH_BYTES`] and one for its close, which also publishes the playlist ([`Close`]).
#[derive(Debug)]
pub struct SegmentFile {
    jobs: DiskJobs,
    tmp: PathBuf,
    file: Option<Arc<std::fs::File>>,
    written: u64,
    cipher: Option<Cbc>,
}

/// Writes `data` (encrypted first when there is a cipher) to `file`, creating `tmp` (and
/// its directories) first when there is no file yet.
fn write_piece(
    tmp: &Path,
    file: &mut Option<Arc<std::fs::File>>,
    cipher: Option<&mut Cbc>,
    data: &[u8],
) -> io::Result<()> {
    let f = match file {
        Some(f) => f,
        None => {
            ensure_parent(tmp)?;
            file.insert(Arc::new(std::fs::File::create(tmp)?))
        }
    };
    let mut f: &std::fs::File = f;
    match cipher {
        Some(c) => f.write_all(&c.update(data)),
        None => f.write_all(data),
    }
}

/// What a segment's close publishes after the rename, in the same trip to the disk thread.
#[derive(Debug, Default)]
pub struct Close {
    /// The playlist that lists the segment, replaced atomically once the segment has its
    /// final name (never before: a player must not see a name that is not there yet).
    pub playlist: Option<(PathBuf, String)>,
    /// Files whose time is up (segments out of the window, keys): removed whatever
    /// happened to the segment.
    pub remove: Vec<PathBuf>,
}

/// Which step of a [`Close`] failed.
#[derive(Debug)]
pub enum CloseError {
    /// The segment: it was not published, nor the playlist.
    Segment(io::Error),
    /// The segment has its final name, the playlist was not replaced.
    Playlist(io::Error),
}

impl SegmentFile {
    /// A segment to be written at `path.tmp`. `path` is where the segment will end up
    /// when its final name does not depend on its duration. Nothing is created yet.
    pub fn create(jobs: &DiskJobs, path: &Path) -> SegmentFile {
        SegmentFile {
            jobs: jobs.clone(),
            tmp: with_suffix(path, ".tmp"),
            file: None,
            written: 0,
            cipher: None,
        }
    }

    /// Like [`SegmentFile::create`], with every byte written encrypted by `cipher`.
    pub fn create_encrypted(jobs: &DiskJobs, path: &Path, cipher: Cbc) -> SegmentFile {
        let mut f = SegmentFile::create(jobs, path);
        f.cipher = Some(cipher);
        f
    }

    /// Writes the bytes of `buf` and empties it. The buffer itself goes to the disk
    /// thread and comes back (its capacity kept for the next bytes), whatever the outcome.
    pub async fn write(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let data = std::mem::take(buf);
        let len = data.len() as u64;
        let tmp = self.tmp.clone();
        let mut file = self.file.take();
        let mut cipher = self.cipher.take();
        let (back, file, c, res) = on_disk_thread(&self.jobs, move || {
            let res = write_piece(&tmp, &mut file, cipher.as_mut(), &data);
            (data, file, cipher, res)
        })
        .await?;
        *buf = back;
        buf.clear();
        self.file = file;
        self.cipher = c;
        res?;
        self.written += len;
        Ok(())
    }

    /// Bytes written so far, the ones given to [`SegmentFile::finish`] not included.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// In one trip to the disk thread: writes `rest` (the segment's last bytes; emptied,
    /// its capacity kept), renames the file to `path`, its final name, then does what
    /// `then` says. On failure the temp file is removed: it would never be finished, and it
    /// may be what filled the disk. Returns the segment's size (plain bytes, as
    /// [`SegmentFile::written`]).
    pub async fn finish(
        self,
        path: &Path,
        rest: &mut Vec<u8>,
        then: Close,
    ) -> Result<u64, CloseError> {
        let SegmentFile {
            jobs,
            tmp,
            mut file,
            written,
            mut cipher,
        } = self;
        let data = std::mem::take(rest);
        let total = written + data.len() as u64;
        let path = path.to_path_buf();
        let joined = on_disk_thread(&jobs, move || {
            let seg = (|| {
                write_piece(&tmp, &mut file, cipher.as_mut(), &data)?;
                if let Some(c) = cipher.take() {
                    if let Some(f) = &file {
                        (&**f).write_all(&c.finish())?;
                    }
                }
                drop(file);
                ensure_parent(&path)?;
                std::fs::rename(&tmp, &path)
            })();
            let res = match seg {
                Err(e) => {
                    remove_sync(&tmp);
                    Err(CloseError::Segment(e))
                }
                Ok(()) => match &then.playlist {
                    Some((p, text)) => {
                        write_atomic_sync(p, text.as_bytes()).map_err(CloseError::Playlist)
                    }
                    None => Ok(()),
                },
            };
            for p in &then.remove {
                remove_sync(p);
            }
            (data, res)
        })
        .await;
        match joined {
            Ok((back, res)) => {
                *rest = back;
                rest.clear();
                res.map(|()| total)
            }
            Err(e) => Err(CloseError::Segment(e)),
        }
    }

    /// Drops the unfinished segment.
    pub async fn abandon(self) {
        let SegmentFile {
            jobs, tmp, file, ..
        } = self;
        if file.is_some() {
            drop(file);
            remove_all(&jobs, vec![tmp]).await;
        }
    }
}

/// Replaces `path` with `content` atomically (temp file in the same directory, then rename),
/// in one trip to the blocking pool.
pub async fn write_atomic(jobs: &DiskJobs, path: &Path, content: &[u8]) -> io::Result<()> {
    let path = path.to_path_buf();
    let content = content.to_vec();
    blocking(jobs, move || write_atomic_sync(&path, &content)).await
}

fn write_atomic_sync(path: &Path, content: &[u8]) -> io::Result<()> {
    ensure_parent(path)?;
    let tmp = with_suffix(path, ".tmp");
    let res = std::fs::write(&tmp, content).and_then(|()| std::fs::rename(&tmp, path));
    if res.is_err() {
        // A partial playlist must not stay behind (nor hold the space of a full disk).
        remove_sync(&tmp);
    }
    res
}

/// Removes a file; a file already gone is fine.
pub async fn remove(jobs: &DiskJobs, path: &Path) {
    remove_all(jobs, vec![path.to_path_buf()]).await;
}

/// Removes files in one trip to the blocking pool; files already gone are fine.
pub async fn remove_all(jobs: &DiskJobs, paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let _ = blocking(jobs, move || {
        for p in &paths {
            remove_sync(p);
        }
        Ok(())
    })
    .await;
}

/// Appends `#EXT-X-ENDLIST` to every playlist under `root` that lacks it, and returns the
/// ones it closed. At start-up no stream is live yet, so a live playlist on disk is left over
/// from a crash or a kill; without this a player would wait on it forever.
pub fn close_stale_playlists(root: &Path) -> Vec<PathBuf> {
    let mut closed = Vec::new();
    walk(root, "stale playlists", |path, meta| {
        if path.extension().is_some_and(|e| e == "m3u8")
            && meta.len() <= MAX_STALE_PLAYLIST
            && close_one(path)
        {
            closed.push(path.to_path_buf());
        }
    });
    closed
}

/// Calls `f` for every regular file under `root`, bounded in depth and entries.
fn walk(root: &Path, what: &str, mut f: impl FnMut(&Path, &std::fs::Metadata)) {
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_SCAN_ENTRIES {
                tracing::warn!(
                    "hls: stopped scanning {} for {what} after {MAX_SCAN_ENTRIES} entries",
                    root.display()
                );
                return;
            }
            let path = entry.path();
            // Symlinks are not followed: they could lead out of the HLS dir or loop.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if depth < MAX_SCAN_DEPTH {
                    stack.push((path, depth + 1));
                }
            } else if meta.is_file() {
                f(&path, &meta);
            }
        }
    }
}

/// What a previous run left under an HLS root and the start-up sweep did not remove yet:
/// segments and playlists younger than `hls_dispose`, with the modification time each had
/// after the sweep (and after its playlist was closed).
#[derive(Debug, Default)]
pub struct Leftovers {
    files: Vec<(PathBuf, SystemTime)>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Removes the remembered files that nobody wrote since (a stream of this run that
    /// reuses a name replaces the file, which changes its time, and keeps it). Returns how
    /// many were removed.
    pub fn dispose(self) -> usize {
        let mut removed = 0;
        for (path, mtime) in self.files {
            let unchanged = std::fs::symlink_metadata(&path)
                .ok()
                .filter(|m| m.is_file())
                .and_then(|m| m.modified().ok())
                == Some(mtime);
            if unchanged && remove_sync(&path) {
                removed += 1;
            }
        }
        removed
    }
}

/// What the start-up sweep of one root did.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Files removed at once: temp files, and segments and playlists already older than
    /// `hls_dispose`.
    pub removed: usize,
    /// Segments and playlists to remove `hls_dispose` after start-up.
    pub later: Vec<PathBuf>,
}

/// The start-up sweep of `root`: what the previous run would have removed had it kept
/// running. Only files last written before `started` (this run's start) are touched, and only
/// HLS's own: `.ts`, `.m4s`, `.m3u8`, `.key` (`hls_keys`) and their `.tmp` (and `.mp4.tmp`). `dispose` is `hls_dispose`, `None` when it is
/// 0 (SRS's "never dispose": then only the temp files go, which no one can ever use).
pub fn sweep_leftovers(root: &Path, started: SystemTime, dispose: Option<Duration>) -> Sweep {
    let mut sweep = Sweep::default();
    walk(root, "leftover files", |path, meta| {
        let Ok(mtime) = meta.modified() else {
            return;
        };
        if mtime >= started {
            return;
        }
        let name = path.to_string_lossy();
        let tmp = [
            ".ts.tmp",
            ".m3u8.tmp",
            ".key.tmp",
            ".m4s.tmp",
            ".mp4.tmp",
            ".mpd.tmp",
        ]
        .iter()
        .any(|t| name.ends_with(t));
        // fMP4 segments too; init segments (`.mp4`) are not swept, as DVR files may share
        // the root and have that extension.
        let media = path
            .extension()
            .is_some_and(|e| e == "ts" || e == "m3u8" || e == "key" || e == "m4s" || e == "mpd");
        if tmp {
            if remove_sync(path) {
                sweep.removed += 1;
            }
            return;
        }
        let (true, Some(dispose)) = (media, dispose) else {
            return;
        };
        // A clock set back makes an age of zero: such files wait the full dispose time.
        let age = started.duration_since(mtime).unwrap_or_default();
        if age >= dispose {
            if remove_sync(path) {
                sweep.removed += 1;
            }
        } else {
            sweep.later.push(path.to_path_buf());
        }
    });
    sweep
}

/// The files of `later` as they are now, to be disposed of by [`Leftovers::dispose`].
/// Called after the stale playlists were closed, so that closing one does not save it.
pub fn remember(later: Vec<PathBuf>) -> Leftovers {
    Leftovers {
        files: later
            .into_iter()
            .filter_map(|p| {
                let mtime = std::fs::symlink_metadata(&p).ok()?.modified().ok()?;
                Some((p, mtime))
            })
            .collect(),
    }
}

fn remove_sync(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!("hls: cannot remove {}: {e}", path.display());
            false
        }
    }
}

fn close_one(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    if !text.starts_with("#EXTM3U") || text.contains("#EXT-X-ENDLIST") {
        return false;
    }
    let mut out = text;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("#EXT-X-ENDLIST\n");
    let tmp = with_suffix(path, ".tmp");
    let ok = std::fs::write(&tmp, out).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = &ok {
        tracing::warn!("hls: cannot close stale playlist {}: {e}", path.display());
    }
    ok.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sluice-hls-writer-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn stale_playlists_get_endlist_once() {
        let root = temp_dir("stale");
        std::fs::create_dir_all(root.join("live")).expect("mkdir");
        let live = root.join("live/a.m3u8");
        let ended = root.join("live/b.m3u8");
        std::fs::write(
            &live,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\na-0.ts",
        )
        .expect("w");
        std::fs::write(&ended, "#EXTM3U\n#EXT-X-ENDLIST\n").expect("w");
        std::fs::write(root.join("live/notes.m3u8"), "not a playlist").expect("w");
        let closed = close_stale_playlists(&root);
        assert_eq!(closed, vec![live.clone()]);
        let text = std::fs::read_to_string(&live).expect("read");
        assert!(text.ends_with("a-0.ts\n#EXT-X-ENDLIST\n"), "{text}");
        assert!(
            media::hls::parse_media_playlist(&text)
                .expect("parse")
                .ended
        );
        assert!(close_stale_playlists(&root).is_empty(), "idempotent");
        let _ = std::fs::remove_dir_all(&root);
    }

    fn aged(path: &Path, age: Duration) {
        std::fs::write(path, b"x").expect("write");
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        f.set_modified(SystemTime::now() - age).expect("set mtime");
    }

    #[test]
    fn leftovers_go_as_hls_dispose_says() {
        let root = temp_dir("leftovers");
        let live = root.join("live");
        std::fs::create_dir_all(&live).expect("mkdir");
        let hour = Duration::from_secs(3600);
        let minute = Duration::from_secs(60);
        aged(&live.join("old-1.ts"), hour);
        aged(&live.join("old.m3u8"), hour);
        aged(&live.join("young-2.ts"), minute);
        aged(&live.join("young.m3u8"), minute);
        aged(&live.join("cut-3.ts.tmp"), minute);
        aged(&live.join("young.m3u8.tmp"), minute);
        aged(&live.join("old-1.key"), hour);
        aged(&live.join("cut-3.key.tmp"), minute);
        aged(&live.join("notes.txt"), hour);
        aged(&live.join("other.tmp"), hour);
        let started = SystemTime::now();

        // hls_dispose 0: SRS never disposes, only the temp files go.
        let never = sweep_leftovers(&root, started, None);
        assert_eq!((never.removed, never.later.len()), (3, 0));
        assert!(live.join("old-1.ts").exists() && !live.join("cut-3.ts.tmp").exists());
        assert!(live.join("old-1.key").exists() && !live.join("cut-3.key.tmp").exists());

        let sweep = sweep_leftovers(&root, started, Some(Duration::from_secs(600)));
        assert_eq!(sweep.removed, 3, "the three files older than hls_dispose");
        assert!(!live.join("old-1.ts").exists() && !live.join("old.m3u8").exists());
        assert!(
            !live.join("old-1.key").exists(),
            "keys go like segments (hls_keys)"
        );
        let mut later = sweep.later.clone();
        later.sort();
        assert_eq!(
            later,
            vec![live.join("young-2.ts"), live.join("young.m3u8")]
        );
        let left = remember(sweep.later);
        // A stream of this run writes young-2.ts again: it is not a leftover any more.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(live.join("young-2.ts"), b"fresh").expect("rewrite");
        assert!(!left.is_empty());
        assert_eq!(left.dispose(), 1);
        assert!(!live.join("young.m3u8").exists());
        assert_eq!(
            std::fs::read(live.join("young-2.ts")).expect("kept"),
            b"fresh"
        );
        assert!(live.join("notes.txt").exists() && live.join("other.tmp").exists());

        // Files of this run (written after `started`) are never touched.
        let this_run = sweep_leftovers(&root, started, Some(Duration::ZERO));
        assert_eq!(this_run.removed, 0);
        assert!(live.join("young-2.ts").exists());
        let _ = std::fs::remove_dir_all(&root);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn block(s: &str) -> [u8; AES_BLOCK] {
        hex(s).try_into().expect("16 bytes")
    }

    /// AES-128-CBC decryption with PKCS#7 removal, as a player does it.
    fn decrypt(key: &[u8; AES_BLOCK], iv: &[u8; AES_BLOCK], data: &[u8]) -> Vec<u8> {
        use aes::cipher::BlockDecryptMut;
        assert_eq!(data.len() % AES_BLOCK, 0, "whole blocks");
        let mut dec = cbc::Decryptor::<aes::Aes128>::new(key.into(), iv.into());
        let mut out = data.to_vec();
        for b in out.chunks_exact_mut(AES_BLOCK) {
            dec.decrypt_block_mut(GenericArray::from_mut_slice(b));
        }
        let pad = *out.last().expect("not empty") as usize;
        assert!((1..=AES_BLOCK).contains(&pad), "padding byte {pad}");
        assert!(out[out.len() - pad..].iter().all(|&b| b as usize == pad));
        out.truncate(out.len() - pad);
        out
    }

    /// NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), then the PKCS#7 block a multiple of
    /// 16 bytes gets.
    #[test]
    fn cbc_matches_the_nist_vectors() {
        let key = block("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = block("000102030405060708090a0b0c0d0e0f");
        let plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let mut c = Cbc::new(&key, &iv);
        // Pieces that do not fall on block boundaries.
        let mut out = c.update(&plain[..5]);
        assert!(out.is_empty());
        out.extend(c.update(&plain[5..21]));
        out.extend(c.update(&plain[21..]));
        assert_eq!(
            out,
            hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")
        );
        let last = c.finish();
        assert_eq!(last.len(), AES_BLOCK, "a whole block of padding");
        out.extend(last);
        assert_eq!(decrypt(&key, &iv, &out), plain);
    }

    /// An encrypted segment on disk: no TS sync byte where a packet starts, and the key and
    /// IV give back exactly the TS bytes written, whatever the pieces were.
    #[tokio::test]
    async fn encrypted_segment_decrypts_to_the_plain_ts() {
        let root = temp_dir("enc");
        let path = root.join("live/s-1.ts");
        let key = random_block().expect("random");
        let iv = random_block().expect("random");
        assert_ne!(key, iv, "two draws from the OS differ");
        let mut plain = Vec::new();
        for i in 0..50u32 {
            let mut packet = vec![0x47u8];
            packet.extend((1..188).map(|j| (i as usize * 7 + j) as u8));
            plain.extend(packet);
        }
        // Odd piece sizes, like FLUSH_BYTES cuts of a real segment.
        let mut f =
            SegmentFile::create_encrypted(&DiskJobs::for_root(&root), &path, Cbc::new(&key, &iv));
        let (most, last) = plain.split_at(plain.len() - 700);
        for piece in most.chunks(1000) {
            let mut buf = piece.to_vec();
            f.write(&mut buf).await.expect("write");
            assert!(buf.is_empty(), "written bytes leave the buffer");
        }
        assert_eq!(f.written(), most.len() as u64);
        let size = f
            .finish(&path, &mut last.to_vec(), Close::default())
            .await
            .expect("finish");
        assert_eq!(size, plain.len() as u64);
        let disk = std::fs::read(&path).expect("read");
        assert_eq!(disk.len(), (plain.len() / AES_BLOCK + 1) * AES_BLOCK);
        let syncs = disk.chunks(188).filter(|p| p[0] == 0x47).count();
        assert!(syncs < 5, "{syncs} of 50 packets still start with 0x47");
        assert_eq!(decrypt(&key, &iv, &disk), plain);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn segment_is_renamed_only_when_finished() {
        let root = temp_dir("seg");
        let path = root.join("x/s-1.ts");
        let mut f = SegmentFile::create(&DiskJobs::for_root(&root), &path);
        assert!(
            !with_suffix(&path, ".tmp").exists(),
            "created with its first bytes"
        );
        f.write(&mut vec![0x47; 188]).await.expect("write");
        assert!(!path.exists());
        assert!(with_suffix(&path, ".tmp").exists());
        assert_eq!(
            std::fs::metadata(with_suffix(&path, ".tmp"))
                .expect("tmp")
                .len(),
            188
        );
        let mut rest = vec![0x47; 188];
        let old = root.join("x/s-0.ts");
        std::fs::write(&old, b"out of the window").expect("old segment");
        let then = Close {
            playlist: Some((root.join("x/p.m3u8"), "#EXTM3U\ns-1.ts\n".to_string())),
            remove: vec![old.clone(), root.join("x/gone-already.ts")],
        };
        assert_eq!(f.finish(&path, &mut rest, then).await.expect("finish"), 376);
        assert_eq!(
            std::fs::read_to_string(root.join("x/p.m3u8")).expect("playlist"),
            "#EXTM3U\ns-1.ts\n"
        );
        assert!(!old.exists(), "due files go with the close");
        assert!(rest.is_empty());
        assert_eq!(std::fs::read(&path).expect("read").len(), 376);
        assert!(!with_suffix(&path, ".tmp").exists());

        let other = root.join("x/s-2.ts");
        let mut f = SegmentFile::create(&DiskJobs::for_root(&root), &other);
        f.write(&mut vec![0x47; 188]).await.expect("write");
        assert!(with_suffix(&other, ".tmp").exists());
        f.abandon().await;
        assert!(!with_suffix(&other, ".tmp").exists());

        // A segment that cannot be renamed is not published, nor its playlist; the temp
        // file goes.
        let blocked = root.join("x/s-3.ts");
        std::fs::create_dir_all(blocked.join("sub")).expect("a directory in the way");
        let mut f = SegmentFile::create(&DiskJobs::for_root(&root), &blocked);
        f.write(&mut vec![0x47; 188]).await.expect("write");
        let then = Close {
            playlist: Some((root.join("x/q.m3u8"), "#EXTM3U\n".to_string())),
            remove: Vec::new(),
        };
        let res = f.finish(&blocked, &mut Vec::new(), then).await;
        assert!(matches!(res, Err(CloseError::Segment(_))), "{res:?}");
        assert!(!root.join("x/q.m3u8").exists());
        assert!(!with_suffix(&blocked, ".tmp").exists());

        write_atomic(
            &DiskJobs::for_root(&root),
            &root.join("p.m3u8"),
            b"#EXTM3U\n",
        )
        .await
        .expect("atomic");
        assert_eq!(
            std::fs::read(root.join("p.m3u8")).expect("read"),
            b"#EXTM3U\n"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A root whose file system hangs holds its own jobs only: with every job of one root
    /// stuck, another root's playlist is still written, while a third job on the stuck
    /// root waits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_root_does_not_hold_the_other_roots_files() {
        let stuck_root = temp_dir("jobs-stuck");
        let other_root = temp_dir("jobs-other");
        let stuck = DiskJobs::for_root(&stuck_root);
        assert!(Arc::ptr_eq(&stuck.0, &DiskJobs::for_root(&stuck_root).0));
        // Every job of the stuck root blocks, as a write to a hung mount would.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        let mut hung = Vec::new();
        for _ in 0..DISK_JOBS {
            let (jobs, hold) = (stuck.clone(), hold.clone());
            hung.push(tokio::spawn(async move {
                on_disk_thread(&jobs, move || {
                    let _ = crate::util::lock(&hold).recv();
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let playlist = other_root.join("live/p.m3u8");
        let other = DiskJobs::for_root(&other_root);
        tokio::time::timeout(
            Duration::from_secs(5),
            write_atomic(&other, &playlist, b"#EXTM3U\n"),
        )
        .await
        .expect("the other root's write waited for the hung root")
        .expect("write");
        assert_eq!(std::fs::read(&playlist).expect("read"), b"#EXTM3U\n");
        let stuck_playlist = stuck_root.join("p.m3u8");
        let waiting = write_atomic(&stuck, &stuck_playlist, b"#EXTM3U\n");
        assert!(
            tokio::time::timeout(Duration::from_millis(200), waiting)
                .await
                .is_err(),
            "a fifth job of the hung root ran"
        );
        for _ in 0..DISK_JOBS {
            let _ = release.send(());
        }
        for h in hung {
            h.await.expect("join").expect("job");
        }
        let _ = std::fs::remove_dir_all(&stuck_root);
        let _ = std::fs::remove_dir_all(&other_root);
    }
}
