//! A publish session longer than 2^32 ms: RTMP timestamps wrap to 0. The player
//! must see time keep going (no jump back, no reset to the glitch delta), with
//! `time_jitter full` (the default) and with `off` (timestamps passed through,
//! wrapping exactly as the publisher's did).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use rtmp::client::{Client, MediaKind};

/// Publisher clock starts this far before the 32-bit wrap.
const START: u32 = u32::MAX - 4_000;

async fn run(jitter: &str) -> Vec<(MediaKind, u32)> {
    let server = Server::start_with(
        &format!("wrap-{jitter}"),
        &format!(
            "max_connections 100;\nvhost __defaultVhost__ {{ gop_cache on; queue_length 30; time_jitter {jitter}; play {{ mw_latency 0; }} }}\n"
        ),
    );
    let url = server.url("live/wrap");
    let player = Client::connect(&url).await.expect("player connect");
    let mut player = player.play().await.expect("play");
    let data = std::fs::read(fixture(AVC_AAC)).expect("fixture");
    let (_, tags) = media::flv::read_flv(Bytes::from(data)).expect("flv");
    let mut publisher = Client::connect(&url)
        .await
        .expect("publisher connect")
        .publish()
        .await
        .expect("publish");
    for t in &tags {
        let kind = match t.tag_type {
            8 => MediaKind::Audio,
            9 => MediaKind::Video,
            _ => MediaKind::Metadata,
        };
        let ts = if kind == MediaKind::Metadata {
            START
        } else {
            START.wrapping_add(t.timestamp)
        };
        publisher
            .send(kind, ts, t.data.clone())
            .await
            .expect("send");
    }
    publisher.flush().await.expect("flush");
    publisher.close().await.expect("close");
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), player.recv()).await {
            Ok(Ok(Some(m))) => got.push((m.kind, m.timestamp)),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => panic!("player: {e}"),
            Err(_) => panic!(
                "player got no end of stream within 10 s ({} messages)",
                got.len()
            ),
        }
    }
    got
}

/// Video timestamps in arrival order, unwrapped the way a player would (mod 2^32).
fn video_deltas(got: &[(MediaKind, u32)]) -> Vec<i64> {
    let v: Vec<u32> = got
        .iter()
        .filter(|(k, _)| *k == MediaKind::Video)
        .map(|(_, t)| *t)
        .collect();
    v.windows(2)
        .map(|w| i64::from(w[1].wrapping_sub(w[0]) as i32))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_cross_the_32_bit_wrap_with_full_jitter() {
    let got = run("full").await;
    let d = video_deltas(&got);
    assert!(d.len() > 200, "too few video frames: {}", d.len());
    // 25 fps: every step is one frame (40 ms), never back, never the 10 ms glitch value.
    assert!(d.iter().all(|x| (0..=80).contains(x)), "deltas {d:?}");
    let total: i64 = d.iter().sum();
    assert!(
        (9_000..=10_500).contains(&total),
        "played {total} ms of a 10 s clip"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_wrap_like_the_publishers_with_jitter_off() {
    let got = run("off").await;
    let v: Vec<u32> = got
        .iter()
        .filter(|(k, _)| *k == MediaKind::Video)
        .map(|(_, t)| *t)
        .collect();
    assert!(
        v.first().is_some_and(|t| *t >= START),
        "starts before the wrap: {:?}",
        v.first()
    );
    assert!(v.iter().any(|t| *t < 10_000), "crosses the wrap");
    let d = video_deltas(&got);
    assert!(d.iter().all(|x| (0..=80).contains(x)), "deltas {d:?}");
}
