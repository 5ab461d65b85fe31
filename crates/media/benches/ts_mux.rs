//! What HLS costs per stream: CPU time to mux one hour of the ~500 kbps fixture
//! (H.264 640x360 + AAC) into MPEG-TS, as the HLS segmenter does.
//!
//! Run: `cargo bench -p media --bench ts_mux` (release build). Prints CPU seconds
//! per hour of media and the share of one core that one live stream needs.

use std::time::Instant;

use bytes::Bytes;
use media::flv::{read_flv, tag_type};
use media::ts::{TsAudio, TsMuxer, TsStreams, TsVideo};

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/avc-aac-640x360-10s.flv"
    );
    let data = std::fs::read(path).expect("fixture");
    let (_, tags) = read_flv(Bytes::from(data)).expect("flv");
    let clip_ms = tags.iter().map(|t| t.timestamp).max().unwrap_or(0) as u64 + 40;
    let video_sh = tags
        .iter()
        .find(|t| t.tag_type == tag_type::VIDEO)
        .expect("video")
        .data
        .clone();
    let audio_sh = tags
        .iter()
        .find(|t| t.tag_type == tag_type::AUDIO)
        .expect("audio")
        .data
        .clone();
    let streams = TsStreams {
        video: TsVideo::from_flv(&video_sh),
        audio: TsAudio::from_flv(&audio_sh),
    };
    // One hour of media: the clip looped with continuous timestamps.
    let loops = (3_600_000 / clip_ms).max(1);
    let mut mux = TsMuxer::new(streams);
    mux.set_video_config(&video_sh).expect("avc config");
    mux.set_audio_config(&audio_sh).expect("aac config");
    let mut out = Vec::with_capacity(4 << 20);
    let mut bytes_out = 0u64;
    let started = Instant::now();
    for n in 0..loops {
        let base = n * clip_ms;
        // A segment boundary every 10 s: PAT/PMT again, as the segmenter does.
        mux.write_tables(&mut out);
        for t in &tags {
            let ts = base + u64::from(t.timestamp);
            let r = match t.tag_type {
                tag_type::VIDEO if t.data.get(1) == Some(&1) => {
                    mux.write_video(ts, &t.data, &mut out)
                }
                tag_type::AUDIO if t.data.get(1) == Some(&1) => {
                    mux.write_audio(ts, &t.data, &mut out)
                }
                _ => Ok(()),
            };
            r.expect("mux");
        }
        bytes_out += out.len() as u64;
        out.clear();
    }
    let cpu = started.elapsed().as_secs_f64();
    let media_s = (loops * clip_ms) as f64 / 1000.0;
    println!(
        "ts_mux: {media_s:.0} s of media ({:.0} kbps in, {:.1} MB of TS) muxed in {cpu:.3} s of CPU: \
         {:.2} CPU-s per hour of media, {:.4} % of one core per live stream",
        (tags.iter().map(|t| t.data.len()).sum::<usize>() as f64 * 8.0) / (clip_ms as f64),
        bytes_out as f64 / 1e6,
        cpu * 3600.0 / media_s,
        cpu / media_s * 100.0
    );
}
