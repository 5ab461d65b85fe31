//! DASH over HLS's fMP4 segments (`vhost { dash { enabled on; } }` with
//! `hls { hls_use_fmp4 on; }`): a live MPD beside the playlist, rewritten (tmp + rename)
//! with every segment, listing the same segments and init segment. A republish (a new
//! timeline) starts a new period; at the end of the stream the MPD becomes static.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use media::dash::{Mpd, MpdPeriod, MpdSegment};

use crate::config::{DashConfig, HlsConfig};
use crate::hub::StreamKey;
use crate::path_template::{self, Vars};

use super::segmenter;

/// What the MPD needs of a segment.
#[derive(Debug, Clone, Copy)]
struct Listed {
    seq: u64,
    start_ms: u64,
    duration_ms: u64,
    period: u64,
    period_start_ms: u64,
    pto_ms: u64,
}

/// A stream's MPD.
#[derive(Debug)]
pub struct DashState {
    pub path: PathBuf,
    mpd_rel: PathBuf,
    entry_prefix: String,
    media: String,
    update_period: Duration,
    timeshift: Duration,
    availability_start_ms: Option<i64>,
    segments: VecDeque<Listed>,
    bandwidth: u64,
}

/// Template variables DASH's `$Number$` cannot stand for.
const UNREPRESENTABLE: &[&str] = &[
    "[timestamp]",
    "[duration]",
    "[2006]",
    "[01]",
    "[02]",
    "[15]",
    "[04]",
    "[05]",
    "[999]",
];

impl DashState {
    /// The MPD of `key`, if DASH is on and can be honoured (see `config::build::hls::dash_warnings`).
    pub fn new(
        key: &StreamKey,
        hls: &HlsConfig,
        dash: &DashConfig,
        root: &Path,
    ) -> Result<Option<DashState>, String> {
        if !(dash.enabled && hls.use_fmp4) {
            return Ok(None);
        }
        if let Some(v) = UNREPRESENTABLE.iter().find(|v| hls.fmp4_file.contains(*v)) {
            return Err(format!(
                "hls_fmp4_file {} has {v}: DASH's $Number$ template cannot name such segments; no DASH",
                hls.fmp4_file
            ));
        }
        let vars = Vars {
            vhost: &key.vhost,
            app: &key.app,
            stream: &key.stream,
            ..Vars::default()
        };
        let mpd_rel = path_template::normalize(&path_template::render(&dash.mpd_file, &vars))
            .map_err(|e| e.to_string())?;
        // The segment name with a sentinel for [seq], made relative to the MPD.
        const SENTINEL: u64 = 987_654_321_987_654_321;
        let seg_vars = Vars {
            seq: Some(SENTINEL),
            ..vars
        };
        let seg_rel = path_template::normalize(&path_template::render(&hls.fmp4_file, &seg_vars))
            .map_err(|e| e.to_string())?;
        let media = segmenter::segment_uri(&mpd_rel, &seg_rel, &hls.entry_prefix)
            .replace(&SENTINEL.to_string(), "$Number$");
        Ok(Some(DashState {
            path: root.join(&mpd_rel),
            entry_prefix: hls.entry_prefix.clone(),
            media,
            update_period: dash.update_period,
            timeshift: dash.timeshift,
            availability_start_ms: None,
            segments: VecDeque::new(),
            bandwidth: 0,
            mpd_rel,
        }))
    }

    /// A segment was listed: `start_ms` is its first DTS, `wall_ms` when it was opened.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        seq: u64,
        start_ms: u64,
        duration_ms: u64,
        bytes: u64,
        discontinuity: bool,
        wall_ms: i64,
        first_listed: u64,
    ) {
        let ast = *self.availability_start_ms.get_or_insert(wall_ms);
        let new_period = match self.segments.back() {
            None => true,
            Some(last) => discontinuity || start_ms < last.start_ms,
        };
        let (period, period_start_ms, pto_ms) = match (new_period, self.segments.back()) {
            (false, Some(last)) => (last.period, last.period_start_ms, last.pto_ms),
            _ => (seq, wall_ms.saturating_sub(ast).max(0) as u64, start_ms),
        };
        self.segments.push_back(Listed {
            seq,
            start_ms,
            duration_ms,
            period,
            period_start_ms,
            pto_ms,
        });
        while self.segments.front().is_some_and(|s| s.seq < first_listed) {
            self.segments.pop_front();
        }
        if let Some(bps) = bytes.saturating_mul(8000).checked_div(duration_ms) {
            self.bandwidth = self.bandwidth.max(bps);
        }
    }

    /// The URI of a file under the root (the init segment), relative to the MPD.
    pub fn uri_of(&self, rel: &Path) -> String {
        segmenter::segment_uri(&self.mpd_rel, rel, &self.entry_prefix)
    }

    /// The MPD text; `live` false once the stream ended.
    pub fn render(
        &self,
        live: bool,
        target_s: u64,
        codecs: &str,
        video: Option<(u16, u16)>,
        init_uri: &str,
        now_ms: i64,
    ) -> String {
        let mut periods: Vec<MpdPeriod> = Vec::new();
        for s in &self.segments {
            if periods.last().map(|p| p.id) != Some(s.period) {
                periods.push(MpdPeriod {
                    id: s.period,
                    start_ms: s.period_start_ms,
                    presentation_time_offset_ms: s.pto_ms,
                    segments: Vec::new(),
                });
            }
            if let Some(p) = periods.last_mut() {
                p.segments.push(MpdSegment {
                    number: s.seq,
                    start_ms: s.start_ms,
                    duration_ms: s.duration_ms,
                });
            }
        }
        // SRS's default update period (150 s) would hide new segments from players for
        // minutes: it is capped at the segment target.
        let update = self.update_period.as_secs_f64().min(target_s.max(1) as f64);
        Mpd {
            live,
            availability_start_ms: self.availability_start_ms.unwrap_or(now_ms),
            publish_ms: now_ms,
            minimum_update_period_s: update,
            time_shift_buffer_s: self.timeshift.as_secs_f64(),
            max_segment_s: target_s.max(1) as f64,
            codecs: codecs.to_string(),
            video,
            bandwidth: self.bandwidth,
            initialization: init_uri.to_string(),
            media: self.media.clone(),
            periods,
        }
        .render()
    }
}
