//! The DASH MPD writer (`media::dash::Mpd::render`): an MPD built from the input's bytes is
//! rendered and must be well-formed XML as far as a player's parser cares (balanced elements,
//! quoted attributes, nothing unescaped), with one `<S>` per segment and a period per period.
//!
//! The body of the `dash_mpd` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/dash_mpd/` and `fuzz/regressions/dash_mpd/` under plain `cargo test`.

use media::dash::{Mpd, MpdPeriod, MpdSegment};

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn text(&mut self) -> String {
        let n = usize::from(self.u8() % 24);
        (0..n).map(|_| char::from(self.u8() % 96 + 32)).collect()
    }
}

/// Checks the element nesting of `xml` (no attribute or text parsing beyond quotes).
fn balanced(xml: &str) -> bool {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        // The end of the tag: the first '>' outside quotes.
        let mut quoted = false;
        let Some(close) = after.char_indices().find_map(|(i, c)| {
            if c == '"' {
                quoted = !quoted;
            }
            (c == '>' && !quoted).then_some(i)
        }) else {
            return false;
        };
        let tag = &after[..close];
        if quoted || tag.contains('<') {
            return false;
        }
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop() != Some(name.trim()) {
                return false;
            }
        } else if !tag.starts_with('?') && !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or(""));
        }
        rest = &after[close + 1..];
    }
    stack.is_empty() && !rest.contains('>')
}

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let mut b = Input(data);
    let flags = b.u8();
    let mut mpd = Mpd {
        live: flags & 1 != 0,
        availability_start_ms: i64::from(b.u32()) * 1000,
        publish_ms: i64::from(b.u32()) * 1000,
        minimum_update_period_s: f64::from(b.u8()) / 4.0,
        time_shift_buffer_s: f64::from(b.u8()),
        max_segment_s: f64::from(b.u8()) / 8.0,
        codecs: b.text(),
        video: (flags & 2 != 0).then(|| (u16::from(b.u8()) * 8, u16::from(b.u8()) * 8)),
        bandwidth: u64::from(b.u32()),
        initialization: b.text(),
        media: b.text(),
        periods: Vec::new(),
    };
    let mut start = u64::from(b.u8()) * 1000;
    let mut number = u64::from(b.u8());
    let mut segments = 0;
    for id in 0..u64::from(b.u8() % 4) {
        let mut p = MpdPeriod {
            id,
            start_ms: start,
            presentation_time_offset_ms: u64::from(b.u8()) * 40,
            segments: Vec::new(),
        };
        let mut t = p.presentation_time_offset_ms;
        for _ in 0..b.u8() % 12 {
            let d = u64::from(b.u8()) * 40;
            // Sometimes a gap: the timeline must then name the start.
            if b.u8() & 7 == 0 {
                t += 40;
            }
            p.segments.push(MpdSegment {
                number,
                start_ms: t,
                duration_ms: d,
            });
            number += 1;
            t += d;
            start += d;
            segments += 1;
        }
        mpd.periods.push(p);
    }
    let xml = mpd.render();
    assert!(balanced(&xml), "unbalanced MPD:\n{xml}");
    assert_eq!(xml.matches("<S ").count(), segments, "{xml}");
    assert_eq!(xml.matches("<Period ").count(), mpd.periods.len(), "{xml}");
    let dynamic = xml.contains("type=\"dynamic\"");
    assert_eq!(dynamic, mpd.live, "{xml}");
}
