//! Matching what a player receives to what the publisher sent, for per-frame latency.
//!
//! The server may rewrite timestamps (`time_jitter`) and drops frames for slow players, so
//! frames are recognised by content: track, payload length and a hash of the first and last
//! 16 bytes. A looped file repeats every payload once per pass and a clip may repeat a frame
//! (silent audio), so a key alone is ambiguous; but a player receives frames in the order
//! they were sent. Each player therefore keeps a cursor in the publisher's log and looks for
//! the next frame *forward* from it: exact with duplicates, and gaps are counted as frames
//! the server skipped.

use std::time::Instant;

use rtmp::client::MediaKind;

/// How far past its cursor a player looks for a frame (about a minute of a 70 fps stream):
/// beyond that the frame is counted as unmatched instead of scanning the whole log.
pub const MAX_AHEAD: usize = 4096;

/// How far back from the newest entry the first frame of a player is looked for: the GOP
/// cache of a live stream is seconds, not minutes.
pub const SYNC_WINDOW: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameKey {
    pub track: u8,
    pub len: u32,
    pub hash: u64,
}

impl FrameKey {
    pub fn new(kind: MediaKind, payload: &[u8]) -> FrameKey {
        let track = match kind {
            MediaKind::Audio => 8,
            MediaKind::Video => 9,
            MediaKind::Metadata => 18,
        };
        let head = payload.get(..16).unwrap_or(payload);
        let tail = payload
            .get(payload.len().saturating_sub(16)..)
            .unwrap_or(&[]);
        FrameKey {
            track,
            len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            hash: mix(tail, mix(head, SEED)),
        }
    }
}

const SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds up to 16 bytes into `h` a word at a time: every player hashes every frame it
/// receives, and a byte-at-a-time hash made that a chain of 32 dependent multiplies.
fn mix(bytes: &[u8], mut h: u64) -> u64 {
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = step(h, u64::from_le_bytes(b));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        // The remainder's length keeps [1, 0] apart from [1].
        h = step(h ^ rest.len() as u64, u64::from_le_bytes(b));
    }
    h
}

fn step(h: u64, w: u64) -> u64 {
    let h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// One frame as the publisher sent it.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub key: FrameKey,
    pub at: Instant,
}

/// What a player learned from one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// Found at this log index, sent at this time.
    At { index: usize, sent: Instant },
    /// Not in the publisher's log where it was expected.
    Unmatched,
}

/// A player's position in the publisher's log.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    /// Index of the first frame this player received (what the GOP cache started with).
    first: Option<usize>,
    next: usize,
    pub matched: u64,
    /// Log entries passed over between two matched frames: frames the server did not send.
    pub skipped: u64,
    pub unmatched: u64,
}

impl Cursor {
    pub fn first_index(&self) -> Option<usize> {
        self.first
    }

    pub fn on_frame(&mut self, log: &[Sent], key: FrameKey) -> Matched {
        let found = match self.first {
            None => {
                let from = log.len().saturating_sub(SYNC_WINDOW);
                let tail = log.get(from..).unwrap_or(&[]);
                tail.iter().rposition(|s| s.key == key).map(|i| from + i)
            }
            Some(_) => {
                let end = log.len().min(self.next.saturating_add(MAX_AHEAD));
                let window = log.get(self.next..end).unwrap_or(&[]);
                window
                    .iter()
                    .position(|s| s.key == key)
                    .map(|i| self.next + i)
            }
        };
        let Some(index) = found else {
            self.unmatched += 1;
            return Matched::Unmatched;
        };
        if self.first.is_none() {
            self.first = Some(index);
        } else {
            self.skipped += (index - self.next) as u64;
        }
        self.next = index + 1;
        self.matched += 1;
        match log.get(index) {
            Some(s) => Matched::At { index, sent: s.at },
            None => Matched::Unmatched,
        }
    }

    /// Frames this player should have received by the time the log holds `log_len` entries:
    /// everything from the first frame it was given, on.
    pub fn expected(&self, log_len: usize) -> u64 {
        self.first.map_or(0, |f| log_len.saturating_sub(f) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(n: u8) -> FrameKey {
        FrameKey::new(MediaKind::Video, &[0x27, 1, 0, 0, 0, n])
    }

    fn log(keys: &[FrameKey]) -> (Instant, Vec<Sent>) {
        let t0 = Instant::now();
        let log = keys
            .iter()
            .enumerate()
            .map(|(i, &key)| Sent {
                key,
                at: t0 + Duration::from_millis(i as u64 * 10),
            })
            .collect();
        (t0, log)
    }

    #[test]
    fn key_uses_track_length_and_both_ends() {
        let a = vec![1u8; 100];
        let mut b = a.clone();
        b[50] = 2; // middle bytes are not hashed
        assert_eq!(
            FrameKey::new(MediaKind::Audio, &a),
            FrameKey::new(MediaKind::Audio, &b)
        );
        b[99] = 3;
        assert_ne!(
            FrameKey::new(MediaKind::Audio, &a),
            FrameKey::new(MediaKind::Audio, &b)
        );
        assert_ne!(
            FrameKey::new(MediaKind::Audio, &a),
            FrameKey::new(MediaKind::Video, &a)
        );
        assert_ne!(
            FrameKey::new(MediaKind::Audio, &a),
            FrameKey::new(MediaKind::Audio, &a[..99])
        );
        // Short payloads are fine.
        assert_eq!(FrameKey::new(MediaKind::Audio, &[]).len, 0);
        assert_eq!(FrameKey::new(MediaKind::Audio, &[1, 2, 3]).len, 3);
    }

    #[test]
    fn every_hashed_byte_counts() {
        for len in [1usize, 5, 8, 13, 16, 17, 24, 31, 32, 33, 100] {
            let a: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let key = FrameKey::new(MediaKind::Video, &a);
            let hashed = (0..len).filter(|&i| i < 16 || i >= len.saturating_sub(16));
            for i in hashed {
                for flip in [1u8, 0x80] {
                    let mut b = a.clone();
                    b[i] ^= flip;
                    assert_ne!(
                        key,
                        FrameKey::new(MediaKind::Video, &b),
                        "len {len} byte {i}"
                    );
                }
            }
        }
        // A zero byte more or less is not the same frame even without the length.
        assert_ne!(mix(&[1, 0], SEED), mix(&[1], SEED));
    }

    #[test]
    fn in_order_frames_match_with_their_send_times() {
        let (t0, log) = log(&[key(1), key(2), key(3), key(4)]);
        let mut c = Cursor::default();
        // Joined at frame 2 (GOP cache start).
        assert_eq!(
            c.on_frame(&log, key(2)),
            Matched::At {
                index: 1,
                sent: t0 + Duration::from_millis(10)
            }
        );
        assert!(matches!(
            c.on_frame(&log, key(3)),
            Matched::At { index: 2, .. }
        ));
        assert!(matches!(
            c.on_frame(&log, key(4)),
            Matched::At { index: 3, .. }
        ));
        assert_eq!((c.matched, c.skipped, c.unmatched), (3, 0, 0));
        assert_eq!(c.first_index(), Some(1));
        assert_eq!(
            c.expected(log.len()),
            3,
            "frame 1 was sent before the player joined"
        );
    }

    #[test]
    fn duplicates_resolve_by_order_not_by_latest() {
        // A repeated payload (silent audio, or the next pass of a looped file).
        let (_, log) = log(&[key(1), key(9), key(2), key(9), key(3)]);
        let mut c = Cursor::default();
        assert!(matches!(
            c.on_frame(&log, key(1)),
            Matched::At { index: 0, .. }
        ));
        assert!(matches!(
            c.on_frame(&log, key(9)),
            Matched::At { index: 1, .. }
        ));
        assert!(matches!(
            c.on_frame(&log, key(2)),
            Matched::At { index: 2, .. }
        ));
        assert!(matches!(
            c.on_frame(&log, key(9)),
            Matched::At { index: 3, .. }
        ));
        assert_eq!(c.skipped, 0);
    }

    #[test]
    fn dropped_frames_are_counted_as_skipped() {
        let (_, log) = log(&[key(1), key(2), key(3), key(4), key(5)]);
        let mut c = Cursor::default();
        c.on_frame(&log, key(1));
        // The server dropped 2 and 3 (slow player skipped to a keyframe).
        assert!(matches!(
            c.on_frame(&log, key(4)),
            Matched::At { index: 3, .. }
        ));
        c.on_frame(&log, key(5));
        assert_eq!((c.matched, c.skipped), (3, 2));
        assert_eq!(c.expected(log.len()), 5);
    }

    #[test]
    fn unknown_frames_do_not_move_the_cursor() {
        let (_, log) = log(&[key(1), key(2)]);
        let mut c = Cursor::default();
        assert_eq!(c.on_frame(&log, key(7)), Matched::Unmatched);
        assert_eq!(c.expected(log.len()), 0);
        c.on_frame(&log, key(1));
        assert_eq!(c.on_frame(&log, key(7)), Matched::Unmatched);
        assert!(matches!(
            c.on_frame(&log, key(2)),
            Matched::At { index: 1, .. }
        ));
        assert_eq!((c.matched, c.skipped, c.unmatched), (2, 0, 2));
    }

    #[test]
    fn first_frame_syncs_to_the_newest_copy() {
        // Pass 1 and pass 2 of a loop: a player joining now gets pass 2's frames.
        let (_, log) = log(&[key(1), key(2), key(1), key(2)]);
        let mut c = Cursor::default();
        assert!(matches!(
            c.on_frame(&log, key(1)),
            Matched::At { index: 2, .. }
        ));
    }

    #[test]
    fn empty_log() {
        let mut c = Cursor::default();
        assert_eq!(c.on_frame(&[], key(1)), Matched::Unmatched);
    }
}
