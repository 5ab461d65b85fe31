//! The HLS file work: segments written to a temp file and renamed when complete, playlists
//! replaced atomically, files removed, stale playlists closed at start-up.
//!
//! Why temp files and renames: a player (or the HTTP server) reading while we write must
//! only ever see a whole segment or a whole playlist; `rename` within one directory is atomic.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

/// Buffered TS bytes are written out once they reach this, so a segment never sits whole in
/// memory (a 10 s segment at 8 Mbps is 10 MB).
pub const FLUSH_BYTES: usize = 1 << 20;
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

async fn ensure_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => tokio::fs::create_dir_all(dir).await,
        _ => Ok(()),
    }
}

/// A segment being written: `NAME.tmp` until [`SegmentFile::finish`] renames it.
#[derive(Debug)]
pub struct SegmentFile {
    tmp: PathBuf,
    file: tokio::fs::File,
    written: u64,
}

impl SegmentFile {
    /// Creates `path.tmp` (and its directories). `path` is where the segment will end up
    /// when its final name does not depend on its duration.
    pub async fn create(path: &Path) -> io::Result<SegmentFile> {
        let tmp = with_suffix(path, ".tmp");
        ensure_parent(&tmp).await?;
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(SegmentFile {
            tmp,
            file,
            written: 0,
        })
    }

    pub async fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf).await?;
        self.written += buf.len() as u64;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and renames to `path`, the segment's final name.
    pub async fn finish(mut self, path: &Path) -> io::Result<()> {
        self.file.flush().await?;
        drop(self.file);
        ensure_parent(path).await?;
        tokio::fs::rename(&self.tmp, path).await
    }

    /// Drops the unfinished segment.
    pub async fn abandon(self) {
        drop(self.file);
        remove(&self.tmp).await;
    }
}

/// Replaces `path` with `content` atomically (temp file in the same directory, then rename).
pub async fn write_atomic(path: &Path, content: &[u8]) -> io::Result<()> {
    ensure_parent(path).await?;
    let tmp = with_suffix(path, ".tmp");
    tokio::fs::write(&tmp, content).await?;
    tokio::fs::rename(&tmp, path).await
}

/// Removes a file; a file already gone is fine.
pub async fn remove(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!("hls: cannot remove {}: {e}", path.display());
        }
    }
}

/// Appends `#EXT-X-ENDLIST` to every playlist under `root` that lacks it, and returns the
/// ones it closed. At start-up no stream is live yet, so a live playlist on disk is left over
/// from a crash or a kill; without this a player would wait on it forever.
pub fn close_stale_playlists(root: &Path) -> Vec<PathBuf> {
    let mut closed = Vec::new();
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
                    "hls: stopped scanning {} for stale playlists after {MAX_SCAN_ENTRIES} entries",
                    root.display()
                );
                return closed;
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
            } else if meta.is_file()
                && path.extension().is_some_and(|e| e == "m3u8")
                && meta.len() <= MAX_STALE_PLAYLIST
                && close_one(&path)
            {
                closed.push(path);
            }
        }
    }
    closed
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

    #[tokio::test]
    async fn segment_is_renamed_only_when_finished() {
        let root = temp_dir("seg");
        let path = root.join("x/s-1.ts");
        let mut f = SegmentFile::create(&path).await.expect("create");
        f.write(&[0x47; 188]).await.expect("write");
        assert!(!path.exists());
        assert!(with_suffix(&path, ".tmp").exists());
        f.finish(&path).await.expect("finish");
        assert_eq!(std::fs::read(&path).expect("read").len(), 188);
        assert!(!with_suffix(&path, ".tmp").exists());

        let other = root.join("x/s-2.ts");
        let f = SegmentFile::create(&other).await.expect("create");
        f.abandon().await;
        assert!(!with_suffix(&other, ".tmp").exists());

        write_atomic(&root.join("p.m3u8"), b"#EXTM3U\n")
            .await
            .expect("atomic");
        assert_eq!(
            std::fs::read(root.join("p.m3u8")).expect("read"),
            b"#EXTM3U\n"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
