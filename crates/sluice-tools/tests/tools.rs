//! Runs the `sluice-tools` binary on the fixtures and on TS/HLS that ffmpeg makes from them,
//! and holds its numbers against ffprobe's for the same files: a second, independent demuxer
//! is the only useful oracle for a tool whose job is to report what a file contains.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURES: [&str; 4] = [
    "avc-aac-640x360-10s.flv",
    "audio-only-aac-10s.flv",
    "audio-only-mp3-10s.flv",
    "video-only-avc-10s.flv",
];

type Fields = BTreeMap<String, String>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-tools-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn tool(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-tools"))
        .args(args)
        .output()
        .expect("run sluice-tools");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "sluice-tools {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), stdout)
}

fn ffmpeg(args: &[&str]) {
    let st = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg {args:?}");
}

fn ffprobe(args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `key=value` fields of a line (tokens without `=` are skipped).
fn fields(line: &str, sep: char) -> Fields {
    line.split(sep)
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// ffprobe's streams by index (a TS lists them twice, under the program and alone).
fn probe_streams(file: &Path) -> BTreeMap<u32, Fields> {
    let text = ffprobe(&[
        "-count_packets",
        "-show_entries",
        "stream=index,id,codec_type,codec_name,nb_read_packets,start_time,duration,width,height,sample_rate",
        "-of",
        "compact=p=0",
        file.to_str().expect("utf-8 path"),
    ]);
    text.lines()
        .map(|l| fields(l, '|'))
        .filter_map(|f| Some((f.get("index")?.parse().ok()?, f)))
        .collect()
}

/// Packet flags and DTS of one stream, as ffprobe reads them.
fn probe_packets(file: &Path, stream: u32) -> Vec<(String, f64)> {
    let text = ffprobe(&[
        "-select_streams",
        &stream.to_string(),
        "-show_entries",
        "packet=flags,dts_time",
        "-of",
        "compact=p=0",
        file.to_str().expect("utf-8 path"),
    ]);
    text.lines()
        .map(|l| fields(l, '|'))
        .filter_map(|f| {
            let dts = f.get("dts_time")?.parse().ok()?;
            Some((f.get("flags")?.clone(), dts))
        })
        .collect()
}

fn num(f: &Fields, key: &str) -> f64 {
    f.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {f:?}"))
}

/// The tool's `pid N ...` lines by PID.
fn tool_pids(out: &str) -> BTreeMap<u16, Fields> {
    out.lines()
        .filter_map(|l| l.strip_prefix("pid "))
        .filter_map(|l| {
            let (pid, rest) = l.split_once(' ')?;
            Some((pid.parse().ok()?, fields(rest, ' ')))
        })
        .collect()
}

fn tool_line(out: &str, prefix: &str) -> Fields {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"));
    fields(line, ' ')
}

/// Runs `sluice-tools ts` on a TS file and checks every stream ffprobe finds in it: same PID
/// and codec, as many frames as ffprobe's packets, the same first PTS, a PTS span one frame
/// short of ffprobe's duration, the same keyframes, no continuity errors.
fn check_ts_against_ffprobe(name: &str, ts: &Path) {
    let ts_str = ts.to_str().expect("utf-8 path");
    let (ok, out) = tool(&["ts", ts_str]);
    assert!(ok, "{name}: {out}");
    assert!(out.contains("pat transport_stream_id="), "{name}: {out}");
    assert!(!out.contains("problem"), "{name}: {out}");
    let pids = tool_pids(&out);
    let streams = probe_streams(ts);
    assert!(!streams.is_empty(), "{name}: ffprobe found no streams");
    let mut pes_total = 0;
    for (index, s) in &streams {
        let pid = u16::from_str_radix(s["id"].trim_start_matches("0x"), 16).expect("pid");
        let t = pids
            .get(&pid)
            .unwrap_or_else(|| panic!("{name}: ffprobe's PID {pid} missing:\n{out}"));
        // ffmpeg says mp3 for MPEG-1 layer 3 and the tool names the stream type the same way.
        assert_eq!(t["codec"], s["codec_name"], "{name} pid {pid}");
        assert_eq!(
            num(t, "frames"),
            num(s, "nb_read_packets"),
            "{name} pid {pid}: frames vs ffprobe packets"
        );
        assert_eq!(num(t, "cc_errors"), 0.0, "{name} pid {pid}");
        assert!(
            (num(t, "first_pts") - num(s, "start_time")).abs() < 1e-4,
            "{name} pid {pid}: first PTS {} vs ffprobe start {}",
            t["first_pts"],
            s["start_time"]
        );
        // ffprobe's duration is the PTS span plus the last frame's duration.
        let frame = if s["codec_type"] == "video" {
            0.041
        } else {
            1152.0 / 44100.0 + 0.001
        };
        let d = num(s, "duration") - num(t, "pts_span");
        assert!(
            (0.0..=frame).contains(&d),
            "{name} pid {pid}: ffprobe duration {} vs PTS span {}",
            s["duration"],
            t["pts_span"]
        );
        if s["codec_type"] == "video" {
            let keys = probe_packets(ts, *index)
                .iter()
                .filter(|(flags, _)| flags.contains('K'))
                .count();
            assert!(keys > 1, "{name}: a 10 s fixture has several GOPs");
            assert_eq!(num(t, "keyframes"), keys as f64, "{name} pid {pid}");
        }
        pes_total += num(t, "pes") as usize;
    }
    let (_, listed) = tool(&["ts", "--packets", ts_str]);
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("pes ")).count(),
        pes_total,
        "{name}: --packets prints one line per PES"
    );
}

#[test]
fn ts_of_ffmpeg_matches_ffprobe() {
    let dir = scratch("ts");
    for name in FIXTURES {
        let ts = dir.join(format!("{name}.ts"));
        let ts_str = ts.to_str().expect("utf-8 path");
        let input = fixture(name);
        let input = input.to_str().expect("path");
        ffmpeg(&["-i", input, "-c", "copy", "-f", "mpegts", ts_str]);
        check_ts_against_ffprobe(name, &ts);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same check on TS written by sluice's own muxer (`media::ts::TsMuxer`, which the HLS
/// segmenter uses), fed the fixtures' tags the way the segmenter feeds it.
#[test]
fn ts_of_sluice_muxer_matches_ffprobe() {
    use media::flv::{read_flv, tag_type};
    use media::ts::{TsAudio, TsMuxer, TsStreams, TsVideo};
    let dir = scratch("tsmux");
    for name in FIXTURES {
        let data = std::fs::read(fixture(name)).expect("fixture");
        let (_, tags) = read_flv(bytes::Bytes::from(data)).expect("fixture parses");
        let first = |kind: u8| {
            tags.iter()
                .find(|t| t.tag_type == kind)
                .map(|t| t.data.clone())
        };
        let video = first(tag_type::VIDEO);
        let audio = first(tag_type::AUDIO);
        let streams = TsStreams {
            video: video.as_deref().and_then(TsVideo::from_flv),
            audio: audio.as_deref().and_then(TsAudio::from_flv),
        };
        let mut mux = TsMuxer::new(streams);
        let mut out = Vec::new();
        mux.write_tables(&mut out);
        for t in &tags {
            match t.tag_type {
                tag_type::VIDEO => mux.write_video(u64::from(t.timestamp), &t.data, &mut out),
                tag_type::AUDIO => mux.write_audio(u64::from(t.timestamp), &t.data, &mut out),
                _ => Ok(()),
            }
            .expect("mux");
        }
        let ts = dir.join(format!("{name}.ts"));
        std::fs::write(&ts, &out).expect("write ts");
        check_ts_against_ffprobe(name, &ts);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flv_summary_matches_ffprobe() {
    for name in FIXTURES {
        let file = fixture(name);
        let file_str = file.to_str().expect("utf-8 path");
        let (ok, out) = tool(&["flv", file_str]);
        assert!(ok, "{name}: {out}");
        assert!(!out.contains("problem"), "{name}: {out}");
        assert!(out.contains("script ts=0 name=onMetaData"), "{name}: {out}");
        let streams = probe_streams(&file);
        let header = tool_line(&out, "header ");
        let has = |kind: &str| streams.values().any(|s| s["codec_type"] == kind);
        assert_eq!(header["has_video"] == "1", has("video"), "{name}: {out}");
        assert_eq!(header["has_audio"] == "1", has("audio"), "{name}: {out}");
        for (index, s) in &streams {
            let kind = s["codec_type"].as_str();
            let summary = tool_line(&out, &format!("summary {kind} "));
            assert_eq!(
                num(&summary, "frames"),
                num(s, "nb_read_packets"),
                "{name} {kind}: frames vs ffprobe packets"
            );
            let packets = probe_packets(&file, *index);
            let first = packets.first().map_or(0.0, |p| p.1);
            let last = packets.last().map_or(0.0, |p| p.1);
            assert!(
                (num(&summary, "duration") - (last - first)).abs() < 0.0015,
                "{name} {kind}: duration {} vs ffprobe DTS span {}",
                summary["duration"],
                last - first
            );
            let config = tool_line(&out, &format!("{kind}_sequence_header "));
            assert_eq!(config["codec"], s["codec_name"], "{name} {kind}");
            if kind == "video" {
                let res = format!("{}x{}", s["width"], s["height"]);
                assert_eq!(config["resolution"], res, "{name}");
                let keys = packets.iter().filter(|(f, _)| f.contains('K')).count();
                assert_eq!(num(&summary, "keyframes"), keys as f64, "{name}");
            } else {
                assert_eq!(config["sample_rate"], s["sample_rate"], "{name}");
            }
        }
        let (_, tags) = tool(&["flv", "--tags", file_str]);
        let listed = tags.lines().filter(|l| l.starts_with("tag ")).count();
        let counted: f64 = ["video", "audio", "script"]
            .iter()
            .map(|k| num(&tool_line(&out, &format!("summary {k} ")), "tags"))
            .sum();
        assert_eq!(listed as f64, counted, "{name}: --tags prints every tag");
    }
}

#[test]
fn flv_cut_short_is_a_problem() {
    let dir = scratch("flvcut");
    let data = std::fs::read(fixture(FIXTURES[0])).expect("fixture");
    let cut = dir.join("cut.flv");
    std::fs::write(&cut, &data[..data.len() / 2]).expect("write");
    let (ok, out) = tool(&["flv", cut.to_str().expect("path")]);
    assert!(!ok, "{out}");
    assert!(out.contains("trailing bytes"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// ffmpeg's HLS of the A/V fixture in 2 s segments (the fixture's GOP), so every segment
/// starts on a keyframe.
fn make_hls(dir: &Path, extra: &[&str]) -> PathBuf {
    let playlist = dir.join("index.m3u8");
    let pattern = dir.join("seg%d.ts");
    let input = fixture(FIXTURES[0]);
    let mut args = vec![
        "-i",
        input.to_str().expect("path"),
        "-c",
        "copy",
        "-f",
        "hls",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "-hls_list_size",
        "0",
        "-hls_segment_filename",
        pattern.to_str().expect("path"),
        playlist.to_str().expect("path"),
    ]);
    ffmpeg(&args);
    playlist
}

fn hls(dir: &Path) -> (bool, String) {
    tool(&["hls", dir.to_str().expect("path")])
}

#[test]
fn hls_check_passes_ffmpeg_output_and_fails_broken_copies() {
    let dir = scratch("hls");
    let playlist = make_hls(&dir, &["-hls_time", "2"]);
    let (ok, out) = hls(&dir);
    assert!(ok, "{out}");
    let segments = out.lines().filter(|l| l.starts_with("segment ")).count();
    assert_eq!(segments, 5, "{out}");
    assert!(out.contains("result ok problems=0"), "{out}");
    let text = std::fs::read_to_string(&playlist).expect("playlist");

    // A segment cut short: not whole packets, and shorter than its EXTINF.
    let seg1 = dir.join("seg1.ts");
    let whole = std::fs::read(&seg1).expect("seg1");
    std::fs::write(&seg1, &whole[..whole.len() / 2 + 100]).expect("cut");
    let (ok, out) = hls(&dir);
    assert!(!ok, "{out}");
    assert!(out.contains("cut short"), "{out}");
    assert!(
        out.contains("segment seq=1 uri=seg1.ts") && out.contains("PROBLEM"),
        "{out}"
    );
    std::fs::write(&seg1, &whole).expect("restore");

    // A missing segment.
    let seg2 = dir.join("seg2.ts");
    std::fs::rename(&seg2, dir.join("moved.ts")).expect("move");
    let (ok, out) = hls(&dir);
    assert!(!ok, "{out}");
    assert!(out.contains("cannot read"), "{out}");
    std::fs::rename(dir.join("moved.ts"), &seg2).expect("restore");
    assert!(hls(&dir).0);

    // A segment dropped from the playlist: counters jump at seg3...
    let dropped = text.replacen("#EXTINF:2.000000,\nseg2.ts\n", "", 1);
    assert_ne!(dropped, text, "playlist layout changed:\n{text}");
    std::fs::write(&playlist, &dropped).expect("write");
    let (ok, out) = hls(&dir);
    assert!(!ok, "{out}");
    assert!(out.contains("continuity counter"), "{out}");
    // ...which EXT-X-DISCONTINUITY declares allowed.
    let declared = dropped.replacen("seg3.ts", "#EXT-X-DISCONTINUITY\nseg3.ts", 1);
    std::fs::write(&playlist, &declared).expect("write");
    let (ok, out) = hls(&dir);
    assert!(ok, "{out}");

    // An EXTINF that lies (and exceeds the target duration).
    let lying = text.replacen(
        "#EXTINF:2.000000,\nseg0.ts",
        "#EXTINF:3.000000,\nseg0.ts",
        1,
    );
    std::fs::write(&playlist, &lying).expect("write");
    let (ok, out) = hls(&dir);
    assert!(!ok, "{out}");
    assert!(out.contains("rounds above TARGETDURATION"), "{out}");
    assert!(out.contains("timestamps span 2.000"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hls_check_flags_segments_without_a_keyframe_first() {
    let dir = scratch("hlskey");
    // Cut every second regardless of keyframes: the GOP is 2 s, so half start mid-GOP.
    make_hls(&dir, &["-hls_time", "1", "-hls_flags", "split_by_time"]);
    let (ok, out) = hls(&dir);
    assert!(!ok, "{out}");
    assert!(out.contains("does not start with a keyframe"), "{out}");
    let first = out
        .lines()
        .find(|l| l.starts_with("segment seq=0 "))
        .unwrap_or_default();
    assert!(
        first.ends_with(" ok"),
        "the first segment starts on the first IDR: {out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One video packet taken out of the middle of a TS: exactly one continuity error, on that PID
/// only, reported as a problem line.
#[test]
fn ts_reports_a_dropped_packet_as_a_continuity_error() {
    let dir = scratch("tscc");
    let ts = dir.join("a.ts");
    let input = fixture(FIXTURES[0]);
    let ts_str = ts.to_str().expect("path");
    ffmpeg(&[
        "-i",
        input.to_str().expect("path"),
        "-c",
        "copy",
        "-f",
        "mpegts",
        ts_str,
    ]);
    let data = std::fs::read(&ts).expect("ts");
    let packets: Vec<&[u8]> = data.chunks(188).collect();
    let victim = (packets.len() / 2..packets.len())
        .find(|&i| {
            let p = packets[i];
            // PID 256, payload only, not the start of a PES.
            p[1] & 0x1f == 0x01 && p[2] == 0x00 && p[1] & 0x40 == 0 && p[3] & 0x30 == 0x10
        })
        .expect("a mid-PES video packet");
    let cut: Vec<u8> = packets
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != victim)
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    std::fs::write(&ts, &cut).expect("write");
    let (_, out) = tool(&["ts", ts_str]);
    let pids = tool_pids(&out);
    assert_eq!(pids[&256]["cc_errors"], "1", "{out}");
    assert_eq!(pids[&257]["cc_errors"], "0", "{out}");
    assert!(out.contains("problem pid 256: continuity counter"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
