//! `sluice-tools hls`: checks a media playlist against its segments, the way a player would
//! meet them: every segment there and demuxable, continuity counters running on across
//! segment boundaries (a player's demuxer sees one stream), a keyframe first (or the player
//! shows garbage until the next one), and EXTINF telling the truth (players schedule with it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use media::hls::parse_media_playlist;
use media::ts::{PACKET_SIZE, TS_MASK};

use crate::ts::{self, TsReport, TS_HZ};

/// The timeline (video, else audio) PTS range of a segment and its PES count.
struct Measured {
    start: u64,
    end: u64,
    /// Mean DTS step between PES, in ticks: one frame interval for video.
    step: f64,
}

/// A directory stands for the one playlist in it, so an operator can point at an HLS dir.
fn resolve(path: &Path) -> Result<PathBuf, String> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "m3u8"))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!("{}: no .m3u8 in this directory", path.display())),
        _ => Err(format!(
            "{}: several playlists, name one: {}",
            path.display(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

pub fn run(path: &Path, tolerance: f64) -> Result<bool, String> {
    let playlist_path = resolve(path)?;
    let text = std::fs::read_to_string(&playlist_path)
        .map_err(|e| format!("{}: {e}", playlist_path.display()))?;
    let playlist = parse_media_playlist(&text).map_err(|e| e.to_string())?;
    let base = playlist_path.parent().unwrap_or(Path::new("."));
    say!(
        "playlist {} target_duration={} media_sequence={} segments={} ended={}",
        playlist_path.display(),
        playlist.target_duration,
        playlist.media_sequence,
        playlist.segments.len(),
        u8::from(playlist.ended)
    );
    let mut problems = 0usize;
    // Last continuity counter per PID of the previous segment.
    let mut prev: Option<BTreeMap<u16, u8>> = None;
    // The previous segment's index and first PTS: the next segment's first PTS is its end.
    let mut pending: Option<(usize, u64)> = None;
    let mut durations: Vec<Option<f64>> = vec![None; playlist.segments.len()];
    let mut notes: Vec<Vec<String>> = vec![Vec::new(); playlist.segments.len()];
    for (i, seg) in playlist.segments.iter().enumerate() {
        let note = &mut notes[i];
        if seg.discontinuity {
            // Timestamps and counters may restart: nothing to carry over.
            prev = None;
            pending = None;
        }
        let rounded = seg.duration.round();
        if rounded > playlist.target_duration as f64 {
            note.push(format!(
                "EXTINF {:.3} rounds above TARGETDURATION {}",
                seg.duration, playlist.target_duration
            ));
        }
        if seg.key.is_some() {
            say!(
                "segment seq={} uri={} extinf={:.3} encrypted: contents not checked",
                seg.sequence,
                seg.uri,
                seg.duration
            );
            prev = None;
            pending = None;
            continue;
        }
        if seg.uri.contains("://") {
            note.push("remote URI: only files are checked".into());
            prev = None;
            pending = None;
            continue;
        }
        let seg_path = base.join(seg.uri.split(['?', '#']).next().unwrap_or_default());
        let data = match std::fs::read(&seg_path) {
            Ok(d) => d,
            Err(e) => {
                note.push(format!("cannot read {}: {e}", seg_path.display()));
                prev = None;
                pending = None;
                continue;
            }
        };
        let report = ts::analyze(&data, false);
        check_contents(&report, data.len(), note);
        let measured = measure(&report);
        if let Some(p) = &prev {
            for (pid, s) in &report.pids {
                let (Some((cc, payload)), Some(&last)) = (s.first_cc, p.get(pid)) else {
                    continue;
                };
                let expected = if payload { (last + 1) & 0x0f } else { last };
                if cc != expected {
                    note.push(format!(
                        "pid {pid}: continuity counter {cc} at segment start, expected {expected} \
                         after the previous segment (no EXT-X-DISCONTINUITY)"
                    ));
                }
            }
        }
        prev = Some(
            report
                .pids
                .iter()
                .filter_map(|(&p, s)| s.last_cc.map(|c| (p, c)))
                .collect(),
        );
        if let (Some((j, start)), Some(m)) = (pending.take(), &measured) {
            durations[j] = Some(pts_delta(start, m.start) as f64 / TS_HZ);
        }
        if let Some(m) = measured {
            // Until a successor says where it ended: its PTS span plus one frame interval (the
            // DTS step, as B-frames make PTS steps uneven), which is what ffprobe reports.
            durations[i] = Some((m.end.saturating_sub(m.start) as f64 + m.step) / TS_HZ);
            pending = Some((i, m.start));
        }
    }
    for (i, seg) in playlist.segments.iter().enumerate() {
        let measured = durations[i];
        if let Some(d) = measured {
            if (d - seg.duration).abs() > tolerance {
                notes[i].push(format!(
                    "EXTINF {:.3} but the segment's timestamps span {d:.3} s (tolerance {tolerance})",
                    seg.duration
                ));
            }
        }
        let status = if notes[i].is_empty() { "ok" } else { "PROBLEM" };
        say!(
            "segment seq={} uri={} extinf={:.3} measured={} discontinuity={} {status}",
            seg.sequence,
            seg.uri,
            seg.duration,
            measured.map_or_else(|| "-".into(), |d| format!("{d:.3}")),
            u8::from(seg.discontinuity)
        );
        for n in &notes[i] {
            say!("  problem {n}");
            problems += 1;
        }
    }
    say!(
        "result {} problems={problems}",
        if problems == 0 { "ok" } else { "FAILED" }
    );
    Ok(problems == 0)
}

/// Ticks from `from` to `to` on the 33-bit PTS clock, which wraps every 26.5 hours: a
/// long-running live stream crosses the wrap between two segments sooner or later.
fn pts_delta(from: u64, to: u64) -> u64 {
    to.wrapping_sub(from) & TS_MASK
}

/// Problems visible inside one segment.
fn check_contents(report: &TsReport, len: usize, note: &mut Vec<String>) {
    if !len.is_multiple_of(PACKET_SIZE) {
        note.push(format!(
            "{len} bytes is not a whole number of 188-byte packets: cut short?"
        ));
    }
    if report.sync_lost_bytes > 0 {
        note.push(format!("{} bytes without sync", report.sync_lost_bytes));
    }
    if report.pat.is_none() || report.pmts.is_empty() {
        note.push("no PAT/PMT: players cannot start here".into());
    }
    if report.pids.values().all(|s| s.pes == 0) {
        note.push("no PES".into());
    }
    for p in &report.problems {
        note.push(p.clone());
    }
    if report.video_pid().is_some() && report.first_video_key != Some(true) {
        note.push("does not start with a keyframe".into());
    }
}

fn measure(report: &TsReport) -> Option<Measured> {
    let pid = report.timeline_pid()?;
    let s = report.pids.get(&pid)?;
    let step = match (s.first_dts, s.last_dts) {
        (Some(a), Some(b)) if s.pes > 1 => pts_delta(a, b) as f64 / (s.pes - 1) as f64,
        _ => 0.0,
    };
    Some(Measured {
        start: s.min_pts?,
        end: s.max_pts?,
        step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pts_delta_crosses_the_33_bit_wrap() {
        assert_eq!(pts_delta(90_000, 270_000), 180_000);
        assert_eq!(pts_delta(TS_MASK - 89_999, 90_000), 180_000);
    }
}
