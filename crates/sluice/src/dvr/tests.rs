//! The DVR service in process: a Context, a source fed frame by frame, files on disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::config::Config;
use crate::hub::{Frame, FrameKind, SourceSettings};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sluice-dvr-{tag}-{}-{}",
        std::process::id(),
        path::now_millis()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn context(dvr: &str) -> Arc<Context> {
    Context::new(Config::parse(&format!("vhost __defaultVhost__ {{ {dvr} }}"), "t").unwrap())
}

/// The status as the API shows it.
fn status(ctx: &Context) -> serde_json::Value {
    serde_json::to_value(super::status(ctx)).unwrap()
}

fn spawn(ctx: Arc<Context>) -> crate::service::Services {
    crate::service::Services::start(&ctx, vec![Box::new(Dvr)])
}

fn key(stream: &str) -> StreamKey {
    StreamKey {
        vhost: "__defaultVhost__".into(),
        app: "live".into(),
        stream: stream.into(),
    }
}

fn frame(kind: FrameKind, ts: u64, key: bool, sh: bool) -> Frame {
    let payload: &[u8] = match (kind, sh, key) {
        (FrameKind::Video, true, _) => &[0x17, 0, 0, 0, 0, 1, 2, 3],
        (FrameKind::Video, false, true) => &[0x17, 1, 0, 0, 0, 9],
        (FrameKind::Video, false, false) => &[0x27, 1, 0, 0, 0, 9],
        (FrameKind::Audio, true, _) => &[0xaf, 0, 0x12, 0x10],
        (FrameKind::Audio, false, _) => &[0xaf, 1, 7],
        (FrameKind::Script, _, _) => &[],
    };
    Frame {
        kind,
        timestamp: ts,
        payload: Bytes::copy_from_slice(payload),
        keyframe: key,
        sequence_header: sh,
    }
}

const SETTINGS: SourceSettings = SourceSettings {
    gop_cache: true,
    queue_length_ms: 30_000,
};

/// Publishes `ms` of 25 fps video (keyframe every second) as fast as the consumer keeps up.
async fn publish(ctx: &Arc<Context>, k: &StreamKey, ms: u64) {
    let src = ctx.hub.source(k, SETTINGS);
    src.publish("pub1").unwrap();
    // Let the service see the event and subscribe.
    tokio::time::sleep(Duration::from_millis(100)).await;
    src.push(frame(FrameKind::Video, 0, false, true));
    src.push(frame(FrameKind::Audio, 0, false, true));
    let mut n = 0;
    while n * 40 < ms {
        src.push(frame(FrameKind::Video, n * 40, n % 25 == 0, false));
        src.push(frame(FrameKind::Audio, n * 40 + 5, false, false));
        n += 1;
        if n % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    src.unpublish("pub1");
}

async fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    false
}

fn flv_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "flv"))
        .collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn segments_are_written_renamed_and_reported() {
    let dir = temp_dir("seg");
    let ctx = context(&format!(
        "dvr {{ enabled on; dvr_plan segment; dvr_duration 2; \
         dvr_path {}/[app]/[stream]-[timestamp].flv; }}",
        dir.display()
    ));
    let service = spawn(ctx.clone());
    publish(&ctx, &key("s"), 7_000).await;
    assert!(
        wait_for(|| status(&ctx)["files"].as_array().map(Vec::len) == Some(4)).await,
        "{:#}",
        status(&ctx)
    );
    let files = flv_files(&dir);
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(walk(&dir)
        .iter()
        .all(|p| p.extension().is_some_and(|e| e == "flv")));
    let mut total = 0.0;
    for f in &files {
        let bytes = Bytes::from(std::fs::read(f).unwrap());
        let (_, tags) = media::flv::read_flv(bytes).unwrap();
        let meta_or_video = tags.iter().find(|t| t.tag_type == 9).unwrap();
        assert_eq!(meta_or_video.data.first(), Some(&0x17));
        let last = tags.iter().map(|t| t.timestamp).max().unwrap();
        total += f64::from(last) / 1000.0;
    }
    assert!((6.8..=7.0).contains(&total), "{total}");
    let st = status(&ctx);
    let r = &st["recorders"][0];
    assert_eq!(r["running"], false);
    assert_eq!(r["files"], 4);
    assert!(r["last_error"].is_null());
    assert!(service.stop(Duration::from_secs(5)).await.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn unwritable_path_stops_with_one_error() {
    let dir = temp_dir("bad");
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let ctx = context(&format!(
        "dvr {{ enabled on; dvr_path {}/[stream].flv; }}",
        blocker.display()
    ));
    let service = spawn(ctx.clone());
    publish(&ctx, &key("s"), 1_000).await;
    assert!(wait_for(|| status(&ctx)["recorders"][0]["running"] == false).await);
    let st = status(&ctx);
    let err = st["recorders"][0]["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot create directory"), "{err}");
    // The stream itself went on to its end.
    let src = ctx.hub.get(&key("s"));
    assert!(src.is_none_or(|s| s
        .stats
        .video_frames
        .load(std::sync::atomic::Ordering::Relaxed)
        >= 25));
    assert!(service.stop(Duration::from_secs(5)).await.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn api_start_and_stop() {
    let dir = temp_dir("api");
    let ctx = context(&format!(
        "dvr {{ enabled off; dvr_path {}/[stream].flv; }}",
        dir.display()
    ));
    let service = spawn(ctx.clone());
    // Not configured: nothing recorded.
    publish(&ctx, &key("a"), 500).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(flv_files(&dir).is_empty());
    assert_eq!(status(&ctx)["recorders"].as_array().map(Vec::len), Some(0));

    // Started by the API while live: recorded from the next keyframe, stopped by the API.
    let src = ctx.hub.source(&key("b"), SETTINGS);
    src.publish("p").unwrap();
    src.push(frame(FrameKind::Video, 0, false, true));
    src.push(frame(FrameKind::Video, 0, true, false));
    assert_eq!(start(&ctx, &key("b")), Ok(true));
    assert_eq!(start(&ctx, &key("b")), Ok(false), "already recording");
    for n in 1..30 {
        src.push(frame(FrameKind::Video, n * 40, n % 25 == 0, false));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(stop(&ctx, &key("b")));
    assert!(wait_for(|| flv_files(&dir).len() == 1).await);
    assert!(wait_for(|| status(&ctx)["recorders"][0]["running"] == false).await);
    assert!(!stop(&ctx, &key("b")));
    src.unpublish("p");
    // A later publish stays unrecorded: the API said stop.
    publish(&ctx, &key("b"), 300).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(flv_files(&dir).len(), 1);
    let mut bad = key("b");
    bad.vhost = "nope".into();
    assert!(start(&ctx, &bad).is_err());
    assert!(service.stop(Duration::from_secs(5)).await.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn hostile_stream_names_are_not_recorded_outside() {
    let dir = temp_dir("hostile");
    let ctx = context(&format!(
        "dvr {{ enabled on; dvr_path {}/rec/[stream].flv; }}",
        dir.display()
    ));
    let service = spawn(ctx.clone());
    publish(&ctx, &key(".."), 300).await;
    assert!(wait_for(|| status(&ctx)["recorders"][0]["running"] == false).await);
    let err = status(&ctx)["recorders"][0]["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot be used in a file name"), "{err}");
    assert!(flv_files(&dir).is_empty());
    assert!(service.stop(Duration::from_secs(5)).await.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn stopping_the_service_completes_the_file_of_a_live_stream() {
    // SIGTERM's path: the publisher is still there when the services stop.
    let dir = temp_dir("stop");
    let ctx = context(&format!(
        "dvr {{ enabled on; dvr_path {}/[stream].flv; }}",
        dir.display()
    ));
    let service = spawn(ctx.clone());
    let src = ctx.hub.source(&key("live"), SETTINGS);
    src.publish("p").unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    src.push(frame(FrameKind::Video, 0, false, true));
    for n in 0..50 {
        src.push(frame(FrameKind::Video, n * 40, n % 25 == 0, false));
    }
    assert!(wait_for(|| status(&ctx)["recorders"][0]["bytes"].as_u64() > Some(0)).await);
    assert!(service.stop(Duration::from_secs(5)).await.is_empty());
    // Renamed from .tmp, complete: the last frame is in it.
    let files = flv_files(&dir);
    assert_eq!(files.len(), 1, "{:?}", walk(&dir));
    assert!(walk(&dir)
        .iter()
        .all(|p| p.extension().is_some_and(|e| e == "flv")));
    let (_, tags) = media::flv::read_flv(Bytes::from(std::fs::read(&files[0]).unwrap())).unwrap();
    assert_eq!(tags.iter().map(|t| t.timestamp).max(), Some(49 * 40));
    src.unpublish("p");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_resync_records_a_publish_the_events_missed_once() {
    let dir = temp_dir("resync");
    let ctx = context(&format!(
        "dvr {{ enabled on; dvr_path {}/[stream].flv; }}",
        dir.display()
    ));
    // Published with no service listening: as if its event was lost.
    let src = ctx.hub.source(&key("missed"), SETTINGS);
    src.publish("p").unwrap();
    reconcile(&ctx);
    let first = ctx.dvr.lock().recorders.get(&key("missed")).map(|r| r.id);
    reconcile(&ctx);
    let again = ctx.dvr.lock().recorders.get(&key("missed")).map(|r| r.id);
    assert!(
        first.is_some() && first == again,
        "the recorder was replaced"
    );
    let st = status(&ctx);
    assert_eq!(st["recorders"].as_array().map(Vec::len), Some(1), "{st}");
    assert_eq!(st["recorders"][0]["running"], true);
    // A stream that should not be recorded stays so.
    let api_off = key("off");
    assert!(!stop(&ctx, &api_off), "not recording yet");
    let other = ctx.hub.source(&api_off, SETTINGS);
    other.publish("q").unwrap();
    reconcile(&ctx);
    assert_eq!(status(&ctx)["recorders"].as_array().map(Vec::len), Some(1));
    src.unpublish("p");
    other.unpublish("q");
    ctx.dvr.tasks.finish().await;
    let _ = std::fs::remove_dir_all(dir);
}
