//! `sluice-tools ts`: TS analysis shared with the HLS check (which runs it on every segment).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use media::aac::parse_adts;
use media::avc::split_annexb;
use media::mp3::parse_mp3_header;
use media::ts::{stream_type, Pat, Pes, Pmt, PsiError, TsDemuxer, TsEvent, PACKET_SIZE};

/// 90 kHz clock of PTS/DTS.
pub const TS_HZ: f64 = 90_000.0;

/// Counters of one PID.
#[derive(Debug, Default, Clone)]
pub struct PidStats {
    /// From the PMT (0 for PIDs no PMT announced, such as the PAT and PMT themselves).
    pub stream_type: u8,
    pub packets: u64,
    pub pes: u64,
    /// Access units: one per video PES, one per ADTS / MPEG audio frame (ffprobe counts these).
    pub frames: u64,
    pub cc_errors: u64,
    /// Video PES holding an IDR (H.264) or IRAP (HEVC) picture.
    pub keyframes: u64,
    pub first_pts: Option<u64>,
    pub last_pts: Option<u64>,
    pub first_dts: Option<u64>,
    pub last_dts: Option<u64>,
    pub min_pts: Option<u64>,
    pub max_pts: Option<u64>,
    /// CC of the first and last packet: the HLS check compares them across segments.
    pub first_cc: Option<(u8, bool)>,
    pub last_cc: Option<u8>,
}

/// What a TS file holds, as the demuxer saw it.
#[derive(Debug, Default)]
pub struct TsReport {
    pub bytes: usize,
    pub packets: u64,
    pub sync_lost_bytes: u64,
    pub pat: Option<Pat>,
    pub pmts: BTreeMap<u16, Pmt>,
    pub pids: BTreeMap<u16, PidStats>,
    /// PSI and PES errors, in order, for the report.
    pub problems: Vec<String>,
    /// Keyframe flag of the first video PES (None: no video PES).
    pub first_video_key: Option<bool>,
    /// One line per PES when asked for.
    pub pes_lines: Vec<String>,
}

impl TsReport {
    /// Elementary PIDs whose stream type is video.
    pub fn video_pid(&self) -> Option<u16> {
        self.pids
            .iter()
            .find(|(_, s)| is_video(s.stream_type))
            .map(|(&p, _)| p)
    }

    /// PID whose timestamps best describe the file's timeline: video if any, else audio.
    pub fn timeline_pid(&self) -> Option<u16> {
        self.video_pid().or_else(|| {
            self.pids
                .iter()
                .find(|(_, s)| s.stream_type != 0 && s.pes > 0)
                .map(|(&p, _)| p)
        })
    }
}

pub fn is_video(st: u8) -> bool {
    matches!(st, stream_type::H264 | stream_type::HEVC)
}

pub fn stream_type_name(st: u8) -> &'static str {
    match st {
        stream_type::H264 => "h264",
        stream_type::HEVC => "hevc",
        stream_type::AAC_ADTS => "aac",
        stream_type::MPEG1_AUDIO | stream_type::MPEG2_AUDIO => "mp3",
        _ => "unknown",
    }
}

/// Whether a video PES holds a picture a decoder can start from. The random-access flag is
/// not enough: muxers other than sluice's and ffmpeg's do not always set it.
fn is_keyframe(st: u8, data: &[u8]) -> bool {
    split_annexb(data)
        .iter()
        .any(|nal| match (st, nal.first()) {
            (stream_type::H264, Some(&b)) => b & 0x1f == 5,
            (stream_type::HEVC, Some(&b)) => (16..=21).contains(&((b >> 1) & 0x3f)),
            _ => false,
        })
}

/// Counts the audio frames in a PES, as a decoder (and ffprobe's parser) would split it.
fn audio_frames(st: u8, data: &[u8]) -> u64 {
    let mut n = 0;
    let mut rest = data;
    loop {
        let len = match st {
            stream_type::AAC_ADTS => parse_adts(rest).ok().map(|h| h.frame_length),
            stream_type::MPEG1_AUDIO | stream_type::MPEG2_AUDIO => {
                parse_mp3_header(rest).map(|h| h.frame_len)
            }
            _ => None,
        };
        match len {
            Some(len) if len > 0 && len <= rest.len() => {
                n += 1;
                rest = rest.get(len..).unwrap_or_default();
            }
            _ => return n,
        }
    }
}

fn fmt_ts(t: Option<u64>) -> String {
    t.map_or_else(|| "-".to_string(), |t| format!("{:.6}", t as f64 / TS_HZ))
}

/// Demuxes a whole TS buffer. `keep_pes` collects one line per PES for `--packets`.
pub fn analyze(data: &[u8], keep_pes: bool) -> TsReport {
    let mut report = TsReport {
        bytes: data.len(),
        ..TsReport::default()
    };
    let mut demux = TsDemuxer::new();
    let mut events = Vec::new();
    // Chunked so the event list stays small on large files.
    for chunk in data.chunks(PACKET_SIZE * 512) {
        demux.push(chunk, &mut events);
        handle(&mut report, &demux, &mut events, keep_pes);
    }
    demux.finish(&mut events);
    handle(&mut report, &demux, &mut events, keep_pes);
    report.packets = demux.packets();
    report
}

fn handle(report: &mut TsReport, demux: &TsDemuxer, events: &mut Vec<TsEvent>, keep_pes: bool) {
    for ev in events.drain(..) {
        match ev {
            TsEvent::Packet(p) => {
                let s = report.pids.entry(p.pid).or_default();
                s.packets += 1;
                if s.first_cc.is_none() {
                    s.first_cc = Some((p.cc, p.has_payload));
                }
                s.last_cc = Some(p.cc);
            }
            TsEvent::Pat(pat) => {
                if report.pat.is_none() {
                    report.pat = Some(pat);
                }
            }
            TsEvent::Pmt { pid, pmt } => {
                for st in &pmt.streams {
                    report
                        .pids
                        .entry(st.elementary_pid)
                        .or_default()
                        .stream_type = st.stream_type;
                }
                report.pmts.entry(pid).or_insert(pmt);
            }
            TsEvent::Pes(pes) => on_pes(report, &pes, keep_pes),
            TsEvent::CcError { pid, expected, got } => {
                report.pids.entry(pid).or_default().cc_errors += 1;
                report.problems.push(format!(
                    "pid {pid}: continuity counter {got}, expected {expected}"
                ));
            }
            TsEvent::PsiError(PsiError::Pat(problem)) => {
                report.problems.push(format!("PAT: {problem}"))
            }
            TsEvent::PsiError(PsiError::Pmt { pid, problem }) => {
                report.problems.push(format!("PMT pid {pid}: {problem}"))
            }
            TsEvent::BadPes { pid, reason } => report
                .problems
                .push(format!("pid {pid}: bad PES: {reason}")),
            TsEvent::SyncLost { skipped } => report.sync_lost_bytes += skipped as u64,
        }
    }
    // PIDs announced later than their first packet still get their type.
    for (&pid, &st) in demux.streams() {
        report.pids.entry(pid).or_default().stream_type = st;
    }
}

fn on_pes(report: &mut TsReport, pes: &Pes, keep_pes: bool) {
    let st = pes.stream_type;
    let video = is_video(st);
    let key = video && is_keyframe(st, &pes.data);
    let s = report.pids.entry(pes.pid).or_default();
    s.stream_type = st;
    s.pes += 1;
    s.frames += if video {
        1
    } else {
        audio_frames(st, &pes.data)
    };
    if key {
        s.keyframes += 1;
    }
    if let Some(pts) = pes.pts {
        s.first_pts.get_or_insert(pts);
        s.last_pts = Some(pts);
        s.min_pts = Some(s.min_pts.map_or(pts, |m| m.min(pts)));
        s.max_pts = Some(s.max_pts.map_or(pts, |m| m.max(pts)));
    }
    if let Some(dts) = pes.dts.or(pes.pts) {
        s.first_dts.get_or_insert(dts);
        s.last_dts = Some(dts);
    }
    if video && report.first_video_key.is_none() {
        report.first_video_key = Some(key);
    }
    if keep_pes {
        report.pes_lines.push(format!(
            "pes pid={} pts={} dts={} size={} random_access={} keyframe={}",
            pes.pid,
            fmt_ts(pes.pts),
            fmt_ts(pes.dts.or(pes.pts)),
            pes.data.len(),
            u8::from(pes.random_access),
            if video {
                u8::from(key).to_string()
            } else {
                "-".into()
            },
        ));
    }
}

/// The text `sluice-tools ts` prints: one `key=value` line per PID so scripts can grep it.
pub fn render(report: &TsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "file bytes={} packets={} sync_lost_bytes={} trailing_bytes={}",
        report.bytes,
        report.packets,
        report.sync_lost_bytes,
        report.bytes % PACKET_SIZE
    );
    match &report.pat {
        Some(pat) => {
            let _ = writeln!(
                out,
                "pat transport_stream_id={} version={}",
                pat.transport_stream_id, pat.version
            );
            for p in &pat.programs {
                let _ = writeln!(
                    out,
                    "  program number={} pmt_pid={}",
                    p.program_number, p.pmt_pid
                );
            }
        }
        None => out.push_str("pat none\n"),
    }
    for (pid, pmt) in &report.pmts {
        let _ = writeln!(
            out,
            "pmt pid={pid} program={} version={} pcr_pid={}",
            pmt.program_number, pmt.version, pmt.pcr_pid
        );
        for st in &pmt.streams {
            let _ = writeln!(
                out,
                "  stream pid={} stream_type=0x{:02x} codec={}",
                st.elementary_pid,
                st.stream_type,
                stream_type_name(st.stream_type)
            );
        }
    }
    for (pid, s) in &report.pids {
        let role = if *pid == 0 {
            "pat".to_string()
        } else if report.pmts.contains_key(pid) {
            "pmt".to_string()
        } else if *pid == 0x11 {
            "sdt".to_string()
        } else if *pid == 0x1fff {
            "null".to_string()
        } else {
            stream_type_name(s.stream_type).to_string()
        };
        let duration = match (s.min_pts, s.max_pts) {
            (Some(a), Some(b)) => format!("{:.6}", b.saturating_sub(a) as f64 / TS_HZ),
            _ => "-".into(),
        };
        let keyframes = if is_video(s.stream_type) {
            s.keyframes.to_string()
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "pid {pid} codec={role} packets={} pes={} frames={} cc_errors={} keyframes={keyframes} \
             first_pts={} last_pts={} first_dts={} last_dts={} pts_span={duration}",
            s.packets,
            s.pes,
            s.frames,
            s.cc_errors,
            fmt_ts(s.first_pts),
            fmt_ts(s.last_pts),
            fmt_ts(s.first_dts),
            fmt_ts(s.last_dts),
        );
    }
    for p in &report.problems {
        let _ = writeln!(out, "problem {p}");
    }
    out
}

pub fn run(path: &Path, packets: bool) -> Result<bool, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let report = analyze(&data, packets);
    for line in &report.pes_lines {
        say!("{line}");
    }
    say!("{}", render(&report).trim_end());
    Ok(report.pat.is_some())
}
