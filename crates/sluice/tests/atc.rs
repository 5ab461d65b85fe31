//! RTMP ATC (absolute time) end to end: one encoder stream stamped with absolute time,
//! fed to several sluice origins by real ffmpeg processes and by one origin's forward. The origins must write HLS
//! segments with the same names and boundaries (the failover-behind-a-proxy use SRS's ATC
//! was made for), and an RTMP player must see the encoder's absolute timestamps.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use media::hls::{parse_media_playlist, MediaPlaylist};

/// The encoder's clock: 1,000,000 s (1e9 ms), well past where a player's clock starts.
const OFFSET_S: &str = "1000000";
const OFFSET_MS: u64 = 1_000_000_000;
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);
/// Twice the fixture's keyframe interval (2 s), so that an origin joining on an odd
/// keyframe starts in the middle of a slot.
const FRAGMENT_S: u64 = 4;

struct Origin {
    server: Server,
    root: PathBuf,
}

/// An origin with HLS (4 s fragments, a window long enough to keep every segment) and
/// `atc` spelled as `atc_conf` says.
fn origin(tag: &str, atc_conf: &str) -> Origin {
    let root = unique_dir(&format!("{tag}-root")).join("hls");
    fs::create_dir_all(&root).expect("hls root");
    let body = format!(
        "daemon off;\nsrs_log_tank console;\n\
         vhost __defaultVhost__ {{\n    {atc_conf}\n    \
         hls {{ enabled on; hls_path {root}; hls_fragment {FRAGMENT_S}; hls_window 120; hls_ts_file [app]/[stream]-[seq].ts; }}\n}}\n",
        root = root.display()
    );
    Origin {
        server: Server::start_with(tag, &body),
        root,
    }
}

fn playlist(o: &Origin) -> Option<MediaPlaylist> {
    let text = fs::read_to_string(o.root.join("live/atc.m3u8")).ok()?;
    parse_media_playlist(&text).ok()
}

/// The first video DTS (ms) in a TS segment, by ffprobe.
fn first_video_dts_ms(path: &Path) -> Option<u64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=dts_time",
            "-read_intervals",
            "%+#1",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text
        .lines()
        .next()?
        .trim()
        .trim_end_matches(',')
        .parse()
        .ok()?;
    Some((secs * 1000.0).round() as u64)
}

/// (uri, duration in ms) of every segment listed.
fn listed(p: &MediaPlaylist) -> Vec<(String, u64)> {
    p.segments
        .iter()
        .map(|s| (s.uri.clone(), (s.duration * 1000.0).round() as u64))
        .collect()
}

fn wait_hls_stopped(o: &Origin) {
    let stopped = wait_for(Duration::from_secs(20), || {
        o.server.log().contains("hls: stop").then_some(())
    });
    assert!(
        stopped.is_some(),
        "HLS did not stop after the publisher left:\n{}",
        o.server.log()
    );
}

#[test]
fn two_origins_fed_by_one_encoder_write_the_same_segments() {
    require_ffmpeg();
    // A: SRS 1/2's vhost-level `atc on`. B: SRS 3+'s `play { atc_auto on; }`, turned on
    // by the encoder's `bravo_atc` metadata. C: `play { atc on; }`, joining the same
    // encoder stream 3 s late (as an origin restarted mid-stream would), on the keyframe
    // at 2 s, in the middle of the first 4 s slot.
    // D: fed by A's forward (a relay), which keeps the absolute time under ATC.
    let d = origin("atc-d", "play { atc on; }");
    let a = origin(
        "atc-a",
        &format!(
            "atc on; forward {{ enabled on; destination 127.0.0.1:{}; }}",
            d.server.port
        ),
    );
    let b = origin("atc-b", "play { atc_auto on; }");
    let c = origin("atc-c", "play { atc on; }");
    let input = fixture(AVC_AAC);
    let input = input.to_str().expect("utf-8 fixture path");
    let tee = format!(
        "[f=flv]{}|[f=flv]{}",
        a.server.url("live/atc"),
        b.server.url("live/atc")
    );
    // One encoder, two outputs: the same frames with the same absolute timestamps.
    let mut encoder = Proc::spawn(
        "ffmpeg encoder (tee to A and B)",
        ffmpeg(&[
            "-re",
            "-i",
            input,
            "-copyts",
            "-map",
            "0",
            "-c",
            "copy",
            "-output_ts_offset",
            OFFSET_S,
            "-metadata",
            "bravo_atc=true",
            "-f",
            "tee",
            &tee,
        ]),
        a.server.tmp("encoder.log"),
    );
    // The same encoder's stream from its keyframe at 2 s on (-copyts keeps its timeline).
    let c_url = c.server.url("live/atc");
    let mut late = Proc::spawn(
        "ffmpeg encoder (late, to C)",
        ffmpeg(&[
            "-re",
            "-ss",
            "3",
            "-i",
            input,
            "-copyts",
            "-map",
            "0",
            "-c",
            "copy",
            "-output_ts_offset",
            OFFSET_S,
            "-f",
            "flv",
            &c_url,
        ]),
        c.server.tmp("encoder.log"),
    );

    // A player on A sees the encoder's absolute time, not a clock starting at zero.
    let seen = wait_for(Duration::from_secs(20), || playlist(&a).map(|_| ()));
    assert!(seen.is_some(), "A wrote no playlist:\n{}", a.server.log());
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=dts",
            "-read_intervals",
            "%+#10",
            "-of",
            "csv=p=0",
        ])
        .arg(a.server.url("live/atc"))
        .output()
        .expect("ffprobe");
    let dts: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    assert!(
        dts.len() >= 5,
        "ffprobe read no video over RTMP: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dts.iter()
            .all(|t| (OFFSET_MS..OFFSET_MS + 20_000).contains(t)),
        "RTMP player timestamps are not the encoder's absolute time: {dts:?}"
    );

    encoder.expect_success(PUBLISH_TIMEOUT);
    late.expect_success(PUBLISH_TIMEOUT);
    for o in [&a, &b, &c, &d] {
        wait_hls_stopped(o);
    }
    assert!(
        b.server.log().contains("bravo_atc"),
        "B did not turn ATC on from the metadata:\n{}",
        b.server.log()
    );

    let (pa, pb, pc) = (
        playlist(&a).expect("A playlist"),
        playlist(&b).expect("B playlist"),
        playlist(&c).expect("C playlist"),
    );
    eprintln!(
        "A:\n{}\nB:\n{}\nC:\n{}",
        pa.render(),
        pb.render(),
        pc.render()
    );
    let (la, lb, lc) = (listed(&pa), listed(&pb), listed(&pc));
    assert!(la.len() >= 3, "A wrote too few segments: {la:?}");
    // Names come from the absolute clock (4 s slots), not from each origin's history.
    let first_seq = OFFSET_MS / (FRAGMENT_S * 1000);
    assert_eq!(la[0].0, format!("atc-{first_seq}.ts"), "{la:?}");
    assert_eq!(pa.media_sequence, first_seq);
    assert_eq!(
        la, lb,
        "A and B list the same segments with the same durations"
    );
    assert_eq!(pa.media_sequence, pb.media_sequence);
    // C joined late: its first segment may be partial, every later one is A's.
    assert!(lc.len() >= 2, "C wrote too few segments: {lc:?}");
    let start = la
        .iter()
        .position(|s| s.0 == lc[1].0)
        .unwrap_or_else(|| panic!("C's segments are not A's: {lc:?} vs {la:?}"));
    assert_eq!(&lc[1..], &la[start..start + lc.len() - 1]);
    assert!(
        la.iter().any(|s| s.0 == lc[0].0),
        "C's first segment is named after a slot of A's: {lc:?} vs {la:?}"
    );

    // D, fed through A's forward, writes A's segments too (its first may be partial:
    // the forward starts from A's GOP cache).
    let pd = playlist(&d).expect("D playlist");
    eprintln!("D (via A's forward):\n{}", pd.render());
    let ld = listed(&pd);
    assert!(ld.len() >= 2, "D wrote too few segments: {ld:?}");
    let start_d = la
        .iter()
        .position(|s| s.0 == ld[1].0)
        .unwrap_or_else(|| panic!("D's segments are not A's: {ld:?} vs {la:?}"));
    assert_eq!(&ld[1..], &la[start_d..start_d + ld.len() - 1]);

    // The boundaries: every segment of the same name starts on the same frame.
    let dir = |o: &Origin| o.root.join("live");
    for (name, _) in &la {
        let ta = first_video_dts_ms(&dir(&a).join(name));
        let tb = first_video_dts_ms(&dir(&b).join(name));
        assert!(ta.is_some(), "ffprobe cannot read A's {name}");
        assert_eq!(ta, tb, "{name}: A and B start on different frames");
    }
    for (name, _) in &ld[1..] {
        assert_eq!(
            first_video_dts_ms(&dir(&a).join(name)),
            first_video_dts_ms(&dir(&d).join(name)),
            "{name}: A and D start on different frames"
        );
    }
    for (name, _) in &lc[1..] {
        assert_eq!(
            first_video_dts_ms(&dir(&a).join(name)),
            first_video_dts_ms(&dir(&c).join(name)),
            "{name}: A and C start on different frames"
        );
    }
}
