//! The HLS playlist writer (`media::hls::MediaPlaylist::render`), LL-HLS included: a playlist
//! built from the input's bytes is rendered, and what the server writes must parse back with
//! the same segments, parts, hints and end marker. The writer never sees hostile bytes, but its
//! values come from streams (durations, counts, discontinuities), so this checks it for every
//! combination rather than the few the unit tests spell out.
//!
//! The body of the `hls_writer` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/hls_writer/` and `fuzz/regressions/hls_writer/` under plain `cargo test`.

use media::hls::{parse_media_playlist, LowLatency, MediaPlaylist, Part, Segment};

/// Reads small values off the input; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
}

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let ll = flags & 1 != 0;
    let part_target = f64::from(b.u8() % 20 + 1) / 10.0;
    let mut pl = MediaPlaylist {
        target_duration: u64::from(b.u8() % 12),
        media_sequence: u64::from(b.u16()),
        discontinuity_sequence: u64::from(b.u8() % 4),
        segments: Vec::new(),
        ended: flags & 2 != 0,
        low_latency: ll.then_some(LowLatency {
            part_target,
            part_hold_back: part_target * 3.0,
            can_skip_until: (flags & 4 != 0).then_some(36.0),
        }),
        pending_parts: Vec::new(),
        preload_hint: None,
        skipped_segments: if flags & 8 != 0 {
            u64::from(b.u8() % 5)
        } else {
            0
        },
    };
    let count = usize::from(b.u8() % 16);
    for i in 0..count {
        let f = b.u8();
        let seq = pl.media_sequence + pl.skipped_segments + i as u64;
        let mut parts = Vec::new();
        if ll {
            for p in 0..usize::from(f % 6) {
                parts.push(Part {
                    uri: format!("test-{seq}.{p}.m4s"),
                    duration: f64::from(b.u16() % 2000) / 1000.0,
                    independent: p == 0 || b.u8() & 1 != 0,
                });
            }
        }
        pl.segments.push(Segment {
            uri: format!("test-{seq}.m4s"),
            duration: f64::from(b.u16()) / 1000.0,
            sequence: seq,
            discontinuity: f & 0x40 != 0,
            program_date_time_ms: (f & 0x80 != 0).then_some(1_700_000_000_000 + i64::from(b.u16())),
            key: None,
            map: (i == 0 || f & 0x20 != 0).then(|| format!("init-{}.mp4", f & 0x10)),
            parts,
        });
    }
    if ll && !pl.ended {
        for p in 0..usize::from(b.u8() % 5) {
            pl.pending_parts.push(Part {
                uri: format!("next.{p}.m4s"),
                duration: f64::from(b.u16() % 2000) / 1000.0,
                independent: b.u8() & 1 != 0,
            });
        }
        pl.preload_hint = Some("next.hint.m4s".to_string());
    }
    let text = pl.render();
    let back = parse_media_playlist(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert_eq!(back.media_sequence, pl.media_sequence, "{text}");
    assert_eq!(back.skipped_segments, pl.skipped_segments, "{text}");
    assert_eq!(back.ended, pl.ended, "{text}");
    assert_eq!(back.low_latency.is_some(), ll, "{text}");
    assert_eq!(back.segments.len(), pl.segments.len(), "{text}");
    // Every EXTINF fits the written target duration (RFC 8216 §4.3.3.1).
    for (got, want) in back.segments.iter().zip(&pl.segments) {
        assert_eq!(got.uri, want.uri, "{text}");
        assert_eq!(got.discontinuity, want.discontinuity, "{text}");
        assert_eq!(got.parts.len(), want.parts.len(), "{text}");
        assert!((got.duration - want.duration).abs() < 0.001, "{text}");
        assert!(got.duration <= back.target_duration as f64, "{text}");
    }
    assert_eq!(back.pending_parts.len(), pl.pending_parts.len(), "{text}");
    assert_eq!(back.preload_hint, pl.preload_hint, "{text}");
}
