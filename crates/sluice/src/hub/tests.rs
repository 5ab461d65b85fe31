use super::*;
use bytes::Bytes;

fn key(vhost: &str, stream: &str) -> StreamKey {
    StreamKey {
        vhost: vhost.into(),
        app: "live".into(),
        stream: stream.into(),
    }
}

fn settings(gop_cache: bool) -> SourceSettings {
    SourceSettings {
        gop_cache,
        queue_length_ms: 10_000,
    }
}

fn video(ts: u64, keyframe: bool) -> Frame {
    Frame {
        kind: FrameKind::Video,
        timestamp: ts,
        payload: Bytes::from_static(b"\x27\x01\x00\x00\x00frame"),
        keyframe,
        sequence_header: false,
    }
}

fn audio(ts: u64) -> Frame {
    Frame {
        kind: FrameKind::Audio,
        timestamp: ts,
        payload: Bytes::from_static(b"\xaf\x01aac"),
        keyframe: false,
        sequence_header: false,
    }
}

fn header(kind: FrameKind) -> Frame {
    Frame {
        kind,
        timestamp: 0,
        payload: Bytes::from_static(b"hdr"),
        keyframe: kind == FrameKind::Video,
        sequence_header: kind != FrameKind::Script,
    }
}

fn frames(items: &[Item]) -> Vec<(FrameKind, u64, bool)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Frame(f) => Some((f.kind, f.timestamp, f.keyframe)),
            _ => None,
        })
        .collect()
}

/// Publishes headers and `gops` GOPs of 1 s (25 fps video, keyframe first).
fn publish_gops(src: &Source, start_ms: u64, gops: u64) {
    src.push(header(FrameKind::Script));
    src.push(header(FrameKind::Video));
    src.push(header(FrameKind::Audio));
    for i in 0..gops * 25 {
        let ts = start_ms + i * 40;
        src.push(video(ts, i % 25 == 0));
        src.push(audio(ts));
    }
}

#[test]
fn late_player_starts_on_last_keyframe_with_headers() {
    let hub = Hub::new();
    let src = hub.source(&key("v", "s"), settings(true));
    src.publish("pub1").unwrap();
    publish_gops(&src, 0, 3);
    let mut c = hub.subscribe(&key("v", "s"), settings(true));
    let mut out = Vec::new();
    assert!(c.fetch(&mut out).is_none());
    let f = frames(&out);
    // metadata, video and audio sequence headers first
    assert_eq!(f[0].0, FrameKind::Script);
    assert_eq!(f[1].0, FrameKind::Video);
    assert_eq!(f[2].0, FrameKind::Audio);
    // then the last GOP, starting on its keyframe at 2000 ms
    assert_eq!(f[3], (FrameKind::Video, 2000, true));
    assert_eq!(f.len(), 3 + 50);
}

#[test]
fn gop_cache_off_waits_for_next_keyframe() {
    let hub = Hub::new();
    let k = key("v", "s");
    let src = hub.source(&k, settings(false));
    src.publish("pub1").unwrap();
    publish_gops(&src, 0, 1);
    let mut c = hub.subscribe(&k, settings(false));
    let mut out = Vec::new();
    c.fetch(&mut out);
    assert_eq!(frames(&out).len(), 3, "only headers: {out:?}");
    out.clear();
    src.push(video(1000, false));
    src.push(audio(1000));
    src.push(video(1040, true));
    c.fetch(&mut out);
    let f = frames(&out);
    assert_eq!(
        f,
        vec![
            (FrameKind::Audio, 1000, false),
            (FrameKind::Video, 1040, true)
        ]
    );
}

#[test]
fn slow_consumer_skips_to_a_keyframe_and_others_are_untouched() {
    let hub = Hub::new();
    let k = key("v", "s");
    let s = SourceSettings {
        gop_cache: true,
        queue_length_ms: 3_000,
    };
    let src = hub.source(&k, s);
    src.publish("pub1").unwrap();
    publish_gops(&src, 0, 1);
    let mut slow = hub.subscribe(&k, s);
    let mut fast = hub.subscribe(&k, s);
    let mut out = Vec::new();
    slow.fetch(&mut out); // reads the first GOP, then stops reading
    fast.fetch(&mut out);
    for g in 1..10 {
        for i in 0..25 {
            let ts = g * 1000 + i * 40;
            src.push(video(ts, i == 0));
            src.push(audio(ts));
        }
        out.clear();
        assert!(fast.fetch(&mut out).is_none());
        assert_eq!(frames(&out).len(), 50);
    }
    out.clear();
    let skipped = slow
        .fetch(&mut out)
        .expect("slow consumer must be moved forward");
    assert!(skipped.lag_ms >= 3_000, "{skipped:?}");
    let f = frames(&out);
    assert_eq!(
        f[0],
        (FrameKind::Video, 9000, true),
        "restarts on the last keyframe"
    );
    // the ring stays bounded by the window plus the GOP
    let (entries, _) = src.cached();
    assert!(entries <= 4 * 50 + 10, "{entries}");
}

#[test]
fn second_publisher_rejected_and_republish_notifies() {
    let hub = Hub::new();
    let k = key("v", "s");
    let src = hub.source(&k, settings(true));
    src.publish("a").unwrap();
    assert!(matches!(
        src.publish("b"),
        Err(PublishError::AlreadyPublishing(..))
    ));
    let mut c = hub.subscribe(&k, settings(true));
    let mut out = Vec::new();
    c.fetch(&mut out);
    src.unpublish("b"); // not the publisher: ignored
    assert!(src.is_publishing());
    src.unpublish("a");
    src.publish("b").unwrap();
    publish_gops(&src, 50_000, 1);
    out.clear();
    c.fetch(&mut out);
    assert!(matches!(out[0], Item::Unpublished), "{out:?}");
    assert!(matches!(out[1], Item::Published));
    let f = frames(&out);
    assert_eq!(f[0].0, FrameKind::Script);
    assert_eq!(f[3], (FrameKind::Video, 50_000, true));
}

#[test]
fn player_before_publisher_gets_headers_once() {
    let hub = Hub::new();
    let k = key("v", "s");
    let mut c = hub.subscribe(&k, settings(true));
    let src = hub.get(&k).unwrap();
    src.publish("a").unwrap();
    publish_gops(&src, 0, 1);
    let mut out = Vec::new();
    c.fetch(&mut out);
    assert!(matches!(out[0], Item::Published));
    let f = frames(&out);
    assert_eq!(f.iter().filter(|x| x.0 == FrameKind::Script).count(), 1);
    assert_eq!(f.len(), 53);
}

#[test]
fn vhosts_keep_streams_apart() {
    let hub = Hub::new();
    let a = hub.source(&key("a.com", "s"), settings(true));
    let b = hub.source(&key("b.com", "s"), settings(true));
    a.publish("p1").unwrap();
    b.publish("p2").unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
}

#[test]
fn pure_audio_gets_recent_audio() {
    let hub = Hub::new();
    let k = key("v", "s");
    let src = hub.source(&k, settings(true));
    src.publish("a").unwrap();
    src.push(header(FrameKind::Audio));
    for i in 0..250 {
        src.push(audio(i * 23));
    }
    let mut c = hub.subscribe(&k, settings(true));
    let mut out = Vec::new();
    c.fetch(&mut out);
    let f = frames(&out);
    assert!(f.len() > 50 && f.len() < 120, "{}", f.len());
}

#[test]
fn hostile_publisher_without_keyframes_is_bounded() {
    let hub = Hub::new();
    let k = key("v", "s");
    let src = hub.source(&k, settings(true));
    src.publish("a").unwrap();
    src.push(video(0, true));
    for i in 0..(source::MAX_RING_ENTRIES as u64 * 2) {
        src.push(video(1, false)); // same timestamp forever: never leaves the window
        let _ = i;
    }
    assert!(src.cached().0 <= source::MAX_RING_ENTRIES);
}

#[test]
fn batch_is_bounded() {
    let hub = Hub::new();
    let k = key("v", "s");
    let src = hub.source(&k, settings(true));
    src.publish("a").unwrap();
    let mut c = hub.subscribe(&k, settings(true));
    src.push(video(0, true));
    for i in 0..2000 {
        src.push(audio(i));
    }
    let mut out = Vec::new();
    c.fetch(&mut out);
    assert_eq!(out.len(), MAX_BATCH);
}

#[test]
fn a_publisher_clock_jumping_back_does_not_make_consumers_skip() {
    let hub = Hub::new();
    let k = key("v", "s");
    let src = hub.source(&k, settings(true));
    src.publish("a").unwrap();
    publish_gops(&src, 3_600_000, 1);
    let mut c = hub.subscribe(&k, settings(true));
    let mut out = Vec::new();
    c.fetch(&mut out);
    // The encoder restarts its clock at zero without republishing.
    for i in 0..50 {
        src.push(video(i * 40, i % 25 == 0));
    }
    out.clear();
    assert!(c.fetch(&mut out).is_none(), "no skip on a backward jump");
    assert_eq!(frames(&out).len(), 50);
}

/// `min_latency`: audio waits for the next video frame while video flows, and goes out
/// on its own in an audio-only stream or once it has waited AUDIO_HOLD_MS.
#[test]
fn frame_paced_wakes_follow_video_frames() {
    use source::{frame_paced_wake as wake, AUDIO_HOLD_MS, VIDEO_FLOWING_MS};
    let (a, v) = (Some(FrameKind::Audio), Some(FrameKind::Video));
    // Video flowing (last at 1000), readers woken at 1000.
    assert!(wake(v, 1010, 1000, 1000), "video always wakes");
    assert!(
        !wake(a, 1010, 1000, 1000),
        "audio waits for the next video frame"
    );
    assert!(!wake(a, 1000 + AUDIO_HOLD_MS - 1, 1000, 1000));
    assert!(
        wake(a, 1000 + AUDIO_HOLD_MS, 1000, 1000),
        "held long enough"
    );
    // Video stalled (or none): audio wakes per frame.
    assert!(wake(
        a,
        1000 + VIDEO_FLOWING_MS,
        1000 + VIDEO_FLOWING_MS - 1,
        1000
    ));
    assert!(
        wake(None, 1001, 1000, 1000),
        "publish edges and metadata wake"
    );

    // Through a Source: a video frame wakes; with the policy off every message does.
    let hub = Hub::new();
    let src = hub.source(&key("v", "paced"), settings(true));
    src.publish("p").unwrap();
    src.apply_pacing((std::time::Duration::ZERO, true));
    let mut rx = src.changes();
    rx.borrow_and_update();
    src.push(video(0, true));
    assert!(rx.has_changed().unwrap(), "a video frame wakes");
    src.apply_pacing((std::time::Duration::ZERO, false));
    rx.borrow_and_update();
    src.push(audio(10));
    assert!(rx.has_changed().unwrap(), "off: every message wakes");
}

/// `atc_auto`: the metadata's `bravo_atc` turns absolute time on for this publish only;
/// under ATC a late player's headers carry the time of the GOP it starts with.
#[test]
fn atc_auto_follows_the_metadata_and_restamps_headers() {
    let hub = Hub::new();
    let k = key("v", "atc");
    let src = hub.source(&k, settings(true));
    src.set_atc_policy(AtcPolicy {
        atc: false,
        auto: true,
    });
    src.publish("pub1").unwrap();
    assert!(!src.atc());
    let mut meta = Vec::new();
    amf::encode_all(
        &[
            amf::Amf0Value::string("onMetaData"),
            amf::Amf0Value::object([("bravo_atc", amf::Amf0Value::string("true"))]),
        ],
        &mut meta,
    );
    src.push(Frame {
        payload: Bytes::from(meta),
        ..header(FrameKind::Script)
    });
    assert!(src.atc(), "bravo_atc turns ATC on");
    src.push(header(FrameKind::Video));
    src.push(header(FrameKind::Audio));
    let t0 = 1_000_000_000;
    for i in 0..75 {
        src.push(video(t0 + i * 40, i % 25 == 0));
        src.push(audio(t0 + i * 40));
    }
    let mut c = hub.subscribe(&k, settings(true));
    let mut out = Vec::new();
    c.fetch(&mut out);
    let f = frames(&out);
    assert_eq!(f[3], (FrameKind::Video, t0 + 2000, true));
    assert!(
        f[..3].iter().all(|h| h.1 == t0 + 2000),
        "headers stamped with the GOP's start: {:?}",
        &f[..3]
    );
    // A new publish starts from the policy again.
    src.unpublish("pub1");
    src.publish("pub2").unwrap();
    assert!(!src.atc());
    src.set_atc_policy(AtcPolicy {
        atc: true,
        auto: false,
    });
    src.unpublish("pub2");
    src.publish("pub3").unwrap();
    assert!(src.atc(), "atc on: every publish");
}

/// A reader waiting at a publish edge is not "behind" because the publisher's clock
/// starts far from zero (absolute time): it reads the publish from its first frame.
#[test]
fn a_publish_starting_at_a_large_timestamp_is_not_a_lag() {
    let hub = Hub::new();
    let k = key("v", "abs");
    let src = hub.source(&k, settings(true));
    let mut c = hub.subscribe(&k, settings(true));
    src.publish("pub1").unwrap();
    publish_gops(&src, 1_000_000_000, 1);
    let mut out = Vec::new();
    assert_eq!(c.fetch(&mut out), None, "no skip");
    assert!(matches!(out[0], Item::Published));
    assert_eq!(frames(&out).len(), 3 + 50);
}

/// Makes the next push look up the readers' cursors (the scan is otherwise at most
/// every `READERS_SCAN_EVERY`).
fn scan_now(src: &Source) {
    if let Some(t) = std::time::Instant::now().checked_sub(source::READERS_SCAN_EVERY) {
        src.write().scanned = t;
    }
}

#[test]
fn what_every_reader_has_read_is_dropped_but_the_gop_cache_stays() {
    let hub = Hub::new();
    let k = key("v", "s");
    // 10 s queue window: before, the ring kept 10 s of media whoever read it.
    let src = hub.source(&k, settings(true));
    src.publish("a").unwrap();
    let mut fast = hub.subscribe(&k, settings(true));
    let mut slow = hub.subscribe(&k, settings(true));
    publish_gops(&src, 0, 6);
    let mut out = Vec::new();
    while fast.fetch(&mut out).is_none() && !out.is_empty() {
        out.clear();
    }
    // The slow reader has read nothing: everything stays for it (within the window).
    scan_now(&src);
    src.push(video(6_000, true));
    let kept_for_slow = src.cached().0;
    assert!(kept_for_slow > 6 * 25, "{kept_for_slow}");
    // It catches up: only the GOP being cached (one keyframe and what follows) stays.
    out.clear();
    while slow.fetch(&mut out).is_none() && !out.is_empty() {
        out.clear();
    }
    out.clear();
    while fast.fetch(&mut out).is_none() && !out.is_empty() {
        out.clear();
    }
    scan_now(&src);
    src.push(video(6_040, false));
    let (entries, _) = src.cached();
    assert!(
        entries <= 3,
        "kept {entries} entries after every reader read them"
    );
    // A new player still starts on the cached keyframe.
    let mut late = hub.subscribe(&k, settings(true));
    out.clear();
    late.fetch(&mut out);
    let got = frames(&out);
    // (After the headers, whose sequence header is stamped 0.)
    let first_video = got
        .iter()
        .find(|(kind, ts, _)| *kind == FrameKind::Video && *ts > 0);
    assert_eq!(
        first_video.map(|v| (v.1, v.2)),
        Some((6_000, true)),
        "{got:?}"
    );
    // With nobody reading, a publish keeps its GOP only.
    drop((fast, slow, late));
    for i in 1..50 {
        src.push(video(6_040 + i * 40, false));
    }
    scan_now(&src);
    src.push(video(8_000, true));
    src.push(video(8_040, false));
    let (entries, _) = src.cached();
    assert!(entries <= 3, "kept {entries} entries with no reader");
}

#[test]
fn audio_only_keeps_its_short_cache_when_read_by_all() {
    let hub = Hub::new();
    let k = key("v", "a");
    let src = hub.source(&k, settings(true));
    src.publish("a").unwrap();
    let mut c = hub.subscribe(&k, settings(true));
    for i in 0..250 {
        src.push(audio(i * 23));
    }
    let mut out = Vec::new();
    while c.fetch(&mut out).is_none() && !out.is_empty() {
        out.clear();
    }
    scan_now(&src);
    src.push(audio(250 * 23));
    let (entries, _) = src.cached();
    // About PURE_AUDIO_CACHE_MS of audio at 23 ms a frame, not the 10 s window.
    assert!((80..=100).contains(&entries), "{entries}");
}

/// An unpaced reader (the WebRTC feed) is woken by every frame while the stream's merged
/// writes hold the other readers until the pacer's tick; publish and unpublish wake it too.
#[test]
fn an_unpaced_reader_is_woken_by_every_frame_under_merged_writes() {
    let hub = Hub::new();
    // A pacer that takes requests but never ticks: paced readers stay asleep.
    hub.pacing().set_running(true);
    let _requests = hub.pacing().take_requests();
    let k = key("v", "unpaced");
    let src = hub.source(&k, settings(true));
    src.apply_pacing((std::time::Duration::from_millis(350), false));
    let mut paced = hub.subscribe(&k, settings(true));
    let mut unpaced = hub.subscribe(&k, settings(true)).unpaced();
    let now = |c: &mut Consumer| futures_util::FutureExt::now_or_never(c.changed()).is_some();
    src.publish("p").unwrap();
    assert!(now(&mut unpaced), "publish wakes the unpaced reader");
    let _ = now(&mut paced);
    src.push(video(0, true));
    assert!(now(&mut unpaced), "a frame wakes it at once");
    assert!(
        !now(&mut paced),
        "merged writes: the paced reader waits for the tick"
    );
    src.push(audio(10));
    assert!(now(&mut unpaced), "every frame");
    src.unpublish("p");
    assert!(now(&mut unpaced), "unpublish wakes it");
}
