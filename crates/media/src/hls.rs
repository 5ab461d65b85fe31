//! HLS media playlists (RFC 8216): rendering what the server publishes, and a parser for
//! tests and the bench. Sans-IO: strings in and out.

use std::fmt::Write as _;

use crate::civil::{civil_from_days, days_from_civil};

use thiserror::Error;

/// Largest playlist text the parser accepts; a live playlist is a few KB.
pub const MAX_PLAYLIST_LEN: usize = 4 << 20;
/// Largest number of segments the parser accepts.
pub const MAX_SEGMENTS: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub uri: String,
    /// Seconds.
    pub duration: f64,
    /// Media sequence number; rendering relies on `media_sequence + index` instead.
    pub sequence: u64,
    /// Rendered as `#EXT-X-DISCONTINUITY` before this segment.
    pub discontinuity: bool,
    /// Wall-clock time of the segment's first sample, ms since the Unix epoch.
    pub program_date_time_ms: Option<i64>,
    /// AES-128 encryption of this segment, rendered as `#EXT-X-KEY` before it.
    pub key: Option<SegmentKey>,
    /// The init segment (fMP4), rendered as `#EXT-X-MAP` where it changes.
    pub map: Option<String>,
    /// LL-HLS partial segments of this segment (`#EXT-X-PART` before its `#EXTINF`).
    pub parts: Vec<Part>,
}

/// An LL-HLS partial segment (RFC 8216bis §4.4.4.9).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    /// Seconds.
    pub duration: f64,
    /// Starts with a keyframe: a player may start decoding there.
    pub independent: bool,
}

/// What makes a playlist Low-Latency HLS: `#EXT-X-SERVER-CONTROL` and `#EXT-X-PART-INF`.
#[derive(Debug, Clone, PartialEq)]
pub struct LowLatency {
    /// Seconds; every part is at most this long.
    pub part_target: f64,
    /// Seconds from the live edge a player should stay (at least 2 part targets).
    pub part_hold_back: f64,
    /// `CAN-SKIP-UNTIL`: the server answers `_HLS_skip=YES` with delta updates.
    pub can_skip_until: Option<f64>,
}

/// `#EXT-X-KEY:METHOD=AES-128,URI="..",IV=0x..` (RFC 8216 §4.3.2.4). The IV is always
/// explicit: the implicit one (the media sequence number) would tie the bytes on disk to
/// the playlist's numbering, and SRS writes it explicitly too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentKey {
    /// Where players fetch the 16-byte key, as written in the playlist.
    pub uri: String,
    pub iv: [u8; 16],
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    /// Seconds; raised at render time if a segment would break the RFC 8216 rule.
    pub target_duration: u64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub segments: Vec<Segment>,
    pub ended: bool,
    /// LL-HLS server control and part information.
    pub low_latency: Option<LowLatency>,
    /// Parts of the segment being written, after the last complete segment.
    pub pending_parts: Vec<Part>,
    /// `#EXT-X-PRELOAD-HINT:TYPE=PART` for the part being written.
    pub preload_hint: Option<String>,
    /// Segments left out of a delta update (`#EXT-X-SKIP`), before `segments`.
    pub skipped_segments: u64,
}

fn render_part(s: &mut String, p: &Part) {
    let ms = rendered_ms(p.duration);
    let _ = write!(
        s,
        "#EXT-X-PART:DURATION={}.{:03},URI=\"{}\"",
        ms / 1000,
        ms % 1000,
        p.uri
    );
    if p.independent {
        s.push_str(",INDEPENDENT=YES");
    }
    s.push('\n');
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HlsError {
    #[error("hls: playlist does not start with #EXTM3U")]
    NotM3u,
    #[error("hls: playlist larger than {MAX_PLAYLIST_LEN} bytes")]
    TooLarge,
    #[error("hls: more than {MAX_SEGMENTS} segments")]
    TooManySegments,
    #[error("hls: line {line}: bad value for {tag}")]
    BadValue { line: usize, tag: &'static str },
    #[error("hls: line {line}: {tag} appears twice")]
    Duplicate { line: usize, tag: &'static str },
    #[error("hls: line {line}: segment URI without a preceding #EXTINF")]
    UriWithoutExtinf { line: usize },
    #[error("hls: line {line}: EXT-X-KEY METHOD {method} is not supported")]
    UnsupportedKeyMethod { line: usize, method: String },
    #[error("hls: no #EXT-X-TARGETDURATION")]
    MissingTargetDuration,
}

/// Duration as rendered (ms precision), so the target check sees what clients see.
fn rendered_ms(duration: f64) -> u64 {
    if duration.is_finite() && duration > 0.0 {
        (duration * 1000.0).round() as u64
    } else {
        0
    }
}

impl MediaPlaylist {
    /// The target duration actually written: at least the ceiling of every rendered EXTINF.
    /// The ceiling (SRS's choice) is stricter than RFC 8216's round-to-nearest rule, so both
    /// it and Apple's "no segment over target + 0.5 s" hold.
    pub fn effective_target_duration(&self) -> u64 {
        let longest = self
            .segments
            .iter()
            .map(|s| rendered_ms(s.duration).div_ceil(1000))
            .max()
            .unwrap_or(0);
        self.target_duration.max(longest)
    }

    pub fn render(&self) -> String {
        let mut s = String::with_capacity(128 + self.segments.len() * 64);
        // EXT-X-MAP in a media playlist needs version 6; EXT-X-SKIP needs 9.
        let version = if self.skipped_segments > 0 {
            9
        } else if self.segments.iter().any(|seg| seg.map.is_some()) || self.low_latency.is_some() {
            7
        } else {
            3
        };
        let _ = writeln!(s, "#EXTM3U\n#EXT-X-VERSION:{version}");
        let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        let _ = writeln!(
            s,
            "#EXT-X-TARGETDURATION:{}",
            self.effective_target_duration()
        );
        if let Some(ll) = &self.low_latency {
            let _ = write!(
                s,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}",
                ll.part_hold_back
            );
            if let Some(skip) = ll.can_skip_until {
                let _ = write!(s, ",CAN-SKIP-UNTIL={skip:.1}");
            }
            s.push('\n');
            let _ = writeln!(s, "#EXT-X-PART-INF:PART-TARGET={:.3}", ll.part_target);
        }
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                s,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        if self.skipped_segments > 0 {
            let _ = writeln!(s, "#EXT-X-SKIP:SKIPPED-SEGMENTS={}", self.skipped_segments);
        }
        // An EXT-X-KEY applies until the next one: it is written where the key or IV
        // changes, and `METHOD=NONE` where encryption stops (a reload turned it off).
        let mut current: Option<&SegmentKey> = None;
        let mut map: Option<&String> = None;
        for seg in &self.segments {
            if seg.discontinuity {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if seg.map.is_some() && seg.map.as_ref() != map {
                if let Some(uri) = &seg.map {
                    let _ = writeln!(s, "#EXT-X-MAP:URI=\"{uri}\"");
                }
                map = seg.map.as_ref();
            }
            if seg.key.as_ref() != current {
                match &seg.key {
                    Some(k) => {
                        s.push_str("#EXT-X-KEY:METHOD=AES-128,URI=\"");
                        s.push_str(&k.uri);
                        s.push_str("\",IV=0x");
                        for b in k.iv {
                            let _ = write!(s, "{b:02x}");
                        }
                        s.push('\n');
                    }
                    None => s.push_str("#EXT-X-KEY:METHOD=NONE\n"),
                }
                current = seg.key.as_ref();
            }
            if let Some(ms) = seg.program_date_time_ms {
                let _ = writeln!(s, "#EXT-X-PROGRAM-DATE-TIME:{}", format_date_time(ms));
            }
            for p in &seg.parts {
                render_part(&mut s, p);
            }
            let ms = rendered_ms(seg.duration);
            let _ = writeln!(s, "#EXTINF:{}.{:03},", ms / 1000, ms % 1000);
            s.push_str(&seg.uri);
            s.push('\n');
        }
        for p in &self.pending_parts {
            render_part(&mut s, p);
        }
        if let Some(uri) = &self.preload_hint {
            let _ = writeln!(s, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{uri}\"");
        }
        if self.ended {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        s
    }
}

fn set_once<T>(slot: &mut Option<T>, v: T, line: usize, tag: &'static str) -> Result<(), HlsError> {
    if slot.is_some() {
        return Err(HlsError::Duplicate { line, tag });
    }
    *slot = Some(v);
    Ok(())
}

fn parse_u64(v: &str, line: usize, tag: &'static str) -> Result<u64, HlsError> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| HlsError::BadValue { line, tag })
}

/// Parses a media playlist. Unknown tags and comments are skipped, as RFC 8216 §4.1 requires.
pub fn parse_media_playlist(text: &str) -> Result<MediaPlaylist, HlsError> {
    if text.len() > MAX_PLAYLIST_LEN {
        return Err(HlsError::TooLarge);
    }
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first.trim_end() == "#EXTM3U" => {}
        _ => return Err(HlsError::NotM3u),
    }
    let mut target = None;
    let mut media_sequence = None;
    let mut discontinuity_sequence = None;
    let mut segments: Vec<Segment> = Vec::new();
    let mut ended = false;
    let mut pending_duration: Option<f64> = None;
    let mut pending_discontinuity = false;
    let mut pending_pdt: Option<i64> = None;
    let mut key: Option<SegmentKey> = None;
    let mut map: Option<String> = None;
    let mut parts: Vec<Part> = Vec::new();
    let mut low_latency: Option<LowLatency> = None;
    let mut preload_hint = None;
    let mut skipped_segments = 0u64;
    for (idx, raw) in lines {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(tag) = line.strip_prefix('#') {
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            match name {
                "EXT-X-TARGETDURATION" => {
                    let v = parse_u64(value, line_no, "EXT-X-TARGETDURATION")?;
                    set_once(&mut target, v, line_no, "EXT-X-TARGETDURATION")?;
                }
                "EXT-X-MEDIA-SEQUENCE" => {
                    let v = parse_u64(value, line_no, "EXT-X-MEDIA-SEQUENCE")?;
                    set_once(&mut media_sequence, v, line_no, "EXT-X-MEDIA-SEQUENCE")?;
                }
                "EXT-X-DISCONTINUITY-SEQUENCE" => {
                    let tag = "EXT-X-DISCONTINUITY-SEQUENCE";
                    let v = parse_u64(value, line_no, tag)?;
                    set_once(&mut discontinuity_sequence, v, line_no, tag)?;
                }
                "EXTINF" => {
                    let d = value.split(',').next().unwrap_or("").trim();
                    let d: f64 = d.parse().map_err(|_| HlsError::BadValue {
                        line: line_no,
                        tag: "EXTINF",
                    })?;
                    if !d.is_finite() || d < 0.0 {
                        return Err(HlsError::BadValue {
                            line: line_no,
                            tag: "EXTINF",
                        });
                    }
                    pending_duration = Some(d);
                }
                "EXT-X-DISCONTINUITY" => pending_discontinuity = true,
                "EXT-X-PROGRAM-DATE-TIME" => {
                    let ms = parse_date_time(value.trim()).ok_or(HlsError::BadValue {
                        line: line_no,
                        tag: "EXT-X-PROGRAM-DATE-TIME",
                    })?;
                    pending_pdt = Some(ms);
                }
                "EXT-X-ENDLIST" => ended = true,
                "EXT-X-KEY" => key = parse_key(value, line_no)?,
                "EXT-X-MAP" => {
                    let bad = HlsError::BadValue {
                        line: line_no,
                        tag: "EXT-X-MAP",
                    };
                    let attrs = attributes(value).ok_or(bad.clone())?;
                    let uri = attrs.iter().find(|(k, _)| *k == "URI").ok_or(bad)?.1;
                    map = Some(uri.to_string());
                }
                "EXT-X-PART" => {
                    if parts.len() >= MAX_SEGMENTS {
                        return Err(HlsError::TooManySegments);
                    }
                    parts.push(parse_part(value, line_no)?);
                }
                "EXT-X-SERVER-CONTROL" | "EXT-X-PART-INF" => {
                    let bad = HlsError::BadValue {
                        line: line_no,
                        tag: "EXT-X-SERVER-CONTROL",
                    };
                    let attrs = attributes(value).ok_or(bad.clone())?;
                    let ll = low_latency.get_or_insert(LowLatency {
                        part_target: 0.0,
                        part_hold_back: 0.0,
                        can_skip_until: None,
                    });
                    for (k, v) in attrs {
                        let num = || v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
                        match k {
                            "PART-TARGET" => ll.part_target = num().ok_or(bad.clone())?,
                            "PART-HOLD-BACK" => ll.part_hold_back = num().ok_or(bad.clone())?,
                            "CAN-SKIP-UNTIL" => ll.can_skip_until = Some(num().ok_or(bad.clone())?),
                            _ => {}
                        }
                    }
                }
                "EXT-X-PRELOAD-HINT" => {
                    let attrs = attributes(value).ok_or(HlsError::BadValue {
                        line: line_no,
                        tag: "EXT-X-PRELOAD-HINT",
                    })?;
                    preload_hint = attrs
                        .iter()
                        .find(|(k, _)| *k == "URI")
                        .map(|(_, v)| v.to_string());
                }
                "EXT-X-SKIP" => {
                    let v = value.strip_prefix("SKIPPED-SEGMENTS=").unwrap_or("");
                    skipped_segments = parse_u64(v, line_no, "EXT-X-SKIP")?;
                }
                _ => {}
            }
            continue;
        }
        let duration = pending_duration
            .take()
            .ok_or(HlsError::UriWithoutExtinf { line: line_no })?;
        if segments.len() >= MAX_SEGMENTS {
            return Err(HlsError::TooManySegments);
        }
        segments.push(Segment {
            uri: line.to_string(),
            duration,
            sequence: 0,
            discontinuity: std::mem::take(&mut pending_discontinuity),
            program_date_time_ms: pending_pdt.take(),
            key: key.clone(),
            map: map.clone(),
            parts: std::mem::take(&mut parts),
        });
    }
    let media_sequence = media_sequence.unwrap_or(0);
    for (k, seg) in segments.iter_mut().enumerate() {
        seg.sequence = media_sequence
            .saturating_add(skipped_segments)
            .saturating_add(k as u64);
    }
    Ok(MediaPlaylist {
        target_duration: target.ok_or(HlsError::MissingTargetDuration)?,
        media_sequence,
        discontinuity_sequence: discontinuity_sequence.unwrap_or(0),
        segments,
        ended,
        low_latency,
        pending_parts: parts,
        preload_hint,
        skipped_segments,
    })
}

fn parse_part(value: &str, line: usize) -> Result<Part, HlsError> {
    let bad = HlsError::BadValue {
        line,
        tag: "EXT-X-PART",
    };
    let attrs = attributes(value).ok_or(bad.clone())?;
    let get = |n: &str| attrs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let duration: f64 = get("DURATION")
        .and_then(|d| d.parse().ok())
        .filter(|d: &f64| d.is_finite() && *d >= 0.0)
        .ok_or(bad.clone())?;
    let uri = get("URI").filter(|u| !u.is_empty()).ok_or(bad)?;
    Ok(Part {
        uri: uri.to_string(),
        duration,
        independent: get("INDEPENDENT") == Some("YES"),
    })
}

/// Splits an attribute list (RFC 8216 §4.2) into names and values, quotes removed.
fn attributes(list: &str) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        out.push((name.trim(), value));
        rest = match next.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if next.trim().is_empty() => "",
            None => return None,
        };
    }
    Some(out)
}

/// `#EXT-X-KEY`: `METHOD=NONE` gives `None`; AES-128 needs a URI. A missing IV is the
/// media sequence number in RFC 8216, which this parser does not model: it is refused
/// rather than guessed, as sluice always writes one.
fn parse_key(value: &str, line: usize) -> Result<Option<SegmentKey>, HlsError> {
    let bad = HlsError::BadValue {
        line,
        tag: "EXT-X-KEY",
    };
    let attrs = attributes(value).ok_or(bad.clone())?;
    let get = |n: &str| attrs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    match get("METHOD") {
        Some("NONE") => return Ok(None),
        Some("AES-128") => {}
        Some(m) => {
            return Err(HlsError::UnsupportedKeyMethod {
                line,
                method: m.to_string(),
            })
        }
        None => return Err(bad),
    }
    let uri = get("URI").filter(|u| !u.is_empty()).ok_or(bad.clone())?;
    let hex = get("IV")
        .and_then(|v| v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")))
        .filter(|h| h.len() == 32 && h.bytes().all(|c| c.is_ascii_hexdigit()))
        .ok_or(bad.clone())?;
    let mut iv = [0u8; 16];
    for (i, b) in iv.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad.clone())?;
    }
    Ok(Some(SegmentKey {
        uri: uri.to_string(),
        iv,
    }))
}

/// ISO 8601 in UTC with milliseconds, e.g. `2024-05-01T12:00:00.250Z`.
pub fn format_date_time(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)` into ms since the epoch.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| -> Option<i64> {
        let t = s.get(a..b)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let b = s.as_bytes();
    if b.len() < 19 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut pos = 19;
    let mut milli = 0i64;
    if b.get(pos) == Some(&b'.') {
        let start = pos + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return None;
        }
        let frac = s.get(start..end.min(start + 3))?;
        milli = frac.parse::<i64>().ok()? * 10_i64.pow(3 - frac.len() as u32);
        pos = end;
    }
    let offset_min = match s.get(pos..)? {
        "Z" | "z" => 0,
        tz => {
            let sign = match tz.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits = |t: &str| -> Option<i64> {
                (t.len() == 2 && t.bytes().all(|c| c.is_ascii_digit())).then(|| t.parse().ok())?
            };
            let hh = digits(tz.get(1..3)?)?;
            let mm = match tz.get(3..)? {
                "" => 0,
                rest => digits(rest.strip_prefix(':').unwrap_or(rest))?,
            };
            if hh > 23 || mm > 59 {
                return None;
            }
            sign * (hh * 60 + mm)
        }
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + milli)
}
