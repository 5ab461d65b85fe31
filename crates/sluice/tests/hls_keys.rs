//! HLS AES-128 encryption (`hls_keys`) end to end: the real server fed by ffmpeg, the
//! encrypted playlist read back by ffmpeg/ffprobe over HTTP (they decrypt AES-128 HLS), the
//! key rotation and the segments checked byte by byte with the keys the server wrote.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecryptMut, KeyIvInit};
use common::*;
use media::hls::{parse_media_playlist, MediaPlaylist};
use media::ts::{pid, TsDemuxer, TsEvent};

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(90);
const TS_PACKET: usize = 188;

/// A server with encrypted HLS on the default vhost, files under its own root served by
/// http_server.
struct Encrypted {
    server: Server,
    root: PathBuf,
    http: u16,
}

impl Encrypted {
    fn start(tag: &str, hls: &str) -> Encrypted {
        require_ffmpeg();
        let root = unique_dir(&format!("{tag}-root")).join("hls");
        fs::create_dir_all(&root).expect("hls root");
        let http = free_port();
        let body = format!(
            "max_connections 100;
daemon off;
srs_log_tank console;
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {root}; }}
vhost __defaultVhost__ {{
    hls {{ enabled on; hls_path {root}; hls_fragment 2; hls_keys on; {hls} }}
}}
",
            root = root.display()
        );
        let server = Server::start_with(tag, &body);
        Encrypted { server, root, http }
    }

    /// Publishes the fixture (`loops` extra times) in real time to live/test, then waits for
    /// the server to close the last segment.
    fn publish(&self, loops: u32, tag: &str) {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
            .args(["-stream_loop", &loops.to_string(), "-i"])
            .arg(fixture(AVC_AAC))
            .args(["-c", "copy", "-f", "flv"])
            .arg(self.server.url("live/test"));
        let mut p = Proc::spawn(
            &format!("ffmpeg publisher {tag}"),
            cmd,
            self.server.tmp(&format!("publisher-{tag}.log")),
        );
        p.expect_success(PUBLISH_TIMEOUT);
        std::thread::sleep(Duration::from_millis(1500));
    }

    fn playlist_text(&self) -> String {
        fs::read_to_string(self.root.join("live/test.m3u8")).expect("playlist written")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.http)
    }

    fn files(&self, ext: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.root.join("live"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == ext))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Encrypted {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            if let Some(parent) = self.root.parent() {
                let _ = fs::remove_dir_all(parent);
            }
        }
    }
}

/// A GET of a loopback URL (`http://127.0.0.1:PORT/...`): the status and the body.
fn raw_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .expect("a loopback http url");
    let (port, path) = rest.split_once('/').expect("path");
    let r = common::http::get(port.parse().expect("port"), path);
    assert!(!r.chunked(), "static files have a length");
    (r.status, r.body)
}

/// AES-128-CBC decryption and PKCS#7 removal, as a player does it.
fn decrypt(key: &[u8], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    assert_eq!(key.len(), 16, "a key file holds 16 bytes");
    assert!(
        !data.is_empty() && data.len().is_multiple_of(16),
        "encrypted size {} is whole AES blocks",
        data.len()
    );
    let mut dec = cbc::Decryptor::<aes::Aes128>::new(key.into(), iv.into());
    let mut out = data.to_vec();
    for b in out.chunks_exact_mut(16) {
        dec.decrypt_block_mut(GenericArray::from_mut_slice(b));
    }
    let pad = usize::from(*out.last().expect("not empty"));
    assert!((1..=16).contains(&pad), "PKCS#7 padding byte {pad}");
    assert!(out[out.len() - pad..]
        .iter()
        .all(|&b| usize::from(b) == pad));
    out.truncate(out.len() - pad);
    out
}

/// TS packets starting with the sync byte, of all the 188-byte slots.
fn sync_bytes(data: &[u8]) -> (usize, usize) {
    let slots = data.chunks(TS_PACKET).count();
    let syncs = data.chunks(TS_PACKET).filter(|p| p[0] == 0x47).count();
    (syncs, slots)
}

/// A decrypted segment is clean TS: PAT and PMT first, no errors, video from a keyframe.
fn check_plain_segment(label: &str, data: &[u8]) {
    assert_eq!(data.len() % TS_PACKET, 0, "{label}: {} bytes", data.len());
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push(data, &mut ev);
    d.finish(&mut ev);
    let pids: Vec<u16> = ev
        .iter()
        .filter_map(|e| match e {
            TsEvent::Packet(p) => Some(p.pid),
            _ => None,
        })
        .take(2)
        .collect();
    assert_eq!(pids, vec![pid::PAT, pid::PMT], "{label}");
    let bad: Vec<_> = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                TsEvent::CcError { .. }
                    | TsEvent::PsiError(_)
                    | TsEvent::BadPes { .. }
                    | TsEvent::SyncLost { .. }
            )
        })
        .collect();
    assert!(bad.is_empty(), "{label}: {bad:?}");
    let first_video = ev.iter().find_map(|e| match e {
        TsEvent::Pes(p) if p.pid == pid::VIDEO => Some(p.random_access),
        _ => None,
    });
    assert_eq!(first_video, Some(true), "{label}: starts on a keyframe");
}

/// Video frames ffprobe decodes from `target` (a file or a URL).
fn video_frames(target: &str) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "json",
            target,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An HLS input lists its streams under programs too: the top-level list is the one.
    serde_json::from_str::<serde_json::Value>(&stdout)
        .ok()
        .and_then(|v| v["streams"][0]["nb_read_frames"].as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("ffprobe {target}: no frame count in {stdout}"))
}

/// ffprobe finds no stream in `path`, or fails.
/// Read as MPEG-TS (`-f mpegts`): left to guess, ffprobe sometimes finds an MP3 or other
/// raw stream in 100 KB of noise (a frame sync that random bytes contain by chance), which
/// says nothing about the encryption; as TS, noise has no PAT or PMT that passes its CRC.
fn ffprobe_finds_nothing(path: &Path) -> bool {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-f",
            "mpegts",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    let streams = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["streams"].as_array().map(Vec::len))
        .unwrap_or(0);
    !out.status.success() || streams == 0
}

fn parse(text: &str) -> MediaPlaylist {
    parse_media_playlist(text).expect("playlist parses")
}

/// The encrypted playlist plays (ffprobe decodes every frame of the clip through the keys,
/// over HTTP), the key changes every `hls_fragments_per_key` segments, every segment has
/// its own IV, and a segment without its key is not TS.
#[test]
fn encrypted_playlist_plays_and_keys_rotate() {
    let h = Encrypted::start(
        "hls-keys",
        "hls_fragments_per_key 2; hls_window 60; hls_dispose 0;",
    );
    h.publish(0, "keys");
    let text = h.playlist_text();
    let pl = parse(&text);
    assert!(pl.ended, "hls_dispose 0 ends the playlist: {text}");
    let n = pl.segments.len();
    assert!(n >= 4, "a 10 s clip with 2 s GOPs: {text}");
    // Key per 2 segments, named after the first segment's sequence number (SRS's
    // `[app]/[stream]-[seq].key`), relative to the playlist like the segments.
    for (i, s) in pl.segments.iter().enumerate() {
        let k = s
            .key
            .as_ref()
            .unwrap_or_else(|| panic!("segment {i} has no key: {text}"));
        let first = s.sequence - s.sequence % 2;
        assert_eq!(k.uri, format!("test-{first}.key"), "{text}");
    }
    let uris: HashSet<&str> = pl
        .segments
        .iter()
        .filter_map(|s| s.key.as_ref().map(|k| k.uri.as_str()))
        .collect();
    assert_eq!(uris.len(), n.div_ceil(2), "{text}");
    let ivs: HashSet<[u8; 16]> = pl
        .segments
        .iter()
        .filter_map(|s| s.key.as_ref().map(|k| k.iv))
        .collect();
    assert_eq!(ivs.len(), n, "an IV per segment: {text}");
    // One tag per segment (each has its own IV), in SRS's form.
    assert_eq!(text.matches("#EXT-X-KEY:METHOD=AES-128,URI=\"").count(), n);
    assert!(text.contains(",IV=0x"), "{text}");

    let mut keys: Vec<Vec<u8>> = Vec::new();
    for s in &pl.segments {
        let k = s.key.as_ref().expect("key");
        let (status, key) = raw_get(&h.url(&format!("live/{}", k.uri)));
        assert_eq!(status, 200, "GET {}", k.uri);
        assert_eq!(key.len(), 16, "{}", k.uri);
        let (status, seg) = raw_get(&h.url(&format!("live/{}", s.uri)));
        assert_eq!(status, 200, "GET {}", s.uri);
        let (syncs, slots) = sync_bytes(&seg);
        assert!(
            syncs * 10 < slots,
            "{}: {syncs} of {slots} packets start with 0x47",
            s.uri
        );
        check_plain_segment(&s.uri, &decrypt(&key, &k.iv, &seg));
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    assert_eq!(
        keys.len(),
        uris.len(),
        "each key file holds a different key"
    );

    // Without its key, a segment is noise to a player.
    let first = h.root.join("live").join(&pl.segments[0].uri);
    assert!(
        ffprobe_finds_nothing(&first),
        "ffprobe read {}",
        first.display()
    );

    // Through the keys, every frame of the clip comes back.
    let want = video_frames(&fixture(AVC_AAC).display().to_string());
    let got = video_frames(&h.url("live/test.m3u8"));
    assert_eq!(
        got, want,
        "video frames decoded from the encrypted playlist"
    );
}

/// Keys leave with their segments: once the window slid past a key's last segment (and the
/// grace time of players holding an older playlist passed), its file is gone.
#[test]
fn old_keys_are_removed_with_their_segments() {
    let h = Encrypted::start(
        "hls-keys-window",
        "hls_fragments_per_key 2; hls_window 4; hls_dispose 0;",
    );
    // 3 x 10 s of media, several times the window.
    h.publish(2, "keys-window");
    let pl = parse(&h.playlist_text());
    assert!(pl.media_sequence >= 6, "window slid: {pl:?}");
    assert!(
        !h.root.join("live/test-0.key").exists(),
        "first key still on disk: {:?}",
        h.files("key")
    );
    let listed: HashSet<PathBuf> = pl
        .segments
        .iter()
        .filter_map(|s| s.key.as_ref().map(|k| h.root.join("live").join(&k.uri)))
        .collect();
    let on_disk = h.files("key");
    for k in &listed {
        assert!(on_disk.contains(k), "listed key {} missing", k.display());
    }
    // Listed ones, plus those of segments still in their grace time.
    assert!(
        on_disk.len() <= listed.len() + 3,
        "{} key files for {} listed: {on_disk:?}",
        on_disk.len(),
        listed.len()
    );
    let tmp = fs::read_dir(h.root.join("live"))
        .expect("dir")
        .flatten()
        .filter(|e| e.path().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(tmp, 0, "no temp files left");
    // The playlist as it stands (ended by hls_dispose 0) still decodes through its keys.
    assert!(video_frames(&h.url("live/test.m3u8")) > 0);
}
