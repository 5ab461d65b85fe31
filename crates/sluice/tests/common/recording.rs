//! ffmpeg publishers and recorders over a [`Server`], and what a recording holds: shared
//! by the cluster tests (edge, forward, origin cluster).

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use media::flv::{FlvReader, MAX_TAG_DATA_SIZE};

use super::{ffmpeg, fixture, Proc, Server, AVC_AAC};

/// Publishes the A/V clip in a loop, in real time, until dropped.
pub fn looped_publisher(server: &Server, url: &str, tag: &str) -> Proc {
    looped_publisher_in(&server.tmp(""), url, tag)
}

/// [`looped_publisher`], its log in `dir` (for a server the test runs without [`Server`]).
pub fn looped_publisher_in(dir: &Path, url: &str, tag: &str) -> Proc {
    let input = fixture(AVC_AAC);
    let input = input.to_str().expect("utf-8 fixture path");
    Proc::spawn(
        &format!("ffmpeg looped publisher {tag}"),
        ffmpeg(&[
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            input,
            "-c",
            "copy",
            "-f",
            "flv",
            url,
        ]),
        dir.join(format!("publisher-{tag}.log")),
    )
}

/// Records `seconds` of `url` into an FLV file.
pub fn player(server: &Server, url: &str, tag: &str, seconds: &str) -> (Proc, PathBuf) {
    let out = server.tmp(&format!("player-{tag}.flv"));
    let out_s = out.to_str().expect("utf-8 temp path").to_owned();
    let proc = Proc::spawn(
        &format!("ffmpeg player {tag}"),
        ffmpeg(&[
            "-i", url, "-t", seconds, "-c", "copy", "-f", "flv", "-y", &out_s,
        ]),
        server.tmp(&format!("player-{tag}.log")),
    );
    (proc, out)
}

/// (tag type, timestamp) of every tag of a recording.
pub fn timeline(path: &Path) -> Vec<(u8, u32)> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut reader = FlvReader::new(MAX_TAG_DATA_SIZE);
    let mut buf = BytesMut::from(&data[..]);
    let mut out = Vec::new();
    while let Ok(Some(tag)) = reader.next_tag(&mut buf) {
        out.push((tag.tag_type, tag.timestamp));
    }
    out
}

/// Largest step between two consecutive tags of one type.
pub fn max_gap(tl: &[(u8, u32)], tag_type: u8) -> u32 {
    let ts: Vec<u32> = tl
        .iter()
        .filter(|(t, _)| *t == tag_type)
        .map(|(_, ts)| *ts)
        .collect();
    ts.windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0)
}
