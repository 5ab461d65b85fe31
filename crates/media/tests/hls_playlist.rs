//! HLS media playlists: exact rendering, render/parse round trip, the target-duration rule,
//! discontinuities, program date time, and hostile text into the parser.

mod common;

use common::XorShift;
use media::hls::{
    format_date_time, parse_date_time, parse_media_playlist, HlsError, MediaPlaylist, Segment,
    SegmentKey,
};

fn seg(sequence: u64, duration: f64) -> Segment {
    Segment {
        uri: format!("live-{sequence}.ts"),
        duration,
        sequence,
        discontinuity: false,
        program_date_time_ms: None,
        key: None,
        map: None,
        parts: Vec::new(),
    }
}

fn playlist() -> MediaPlaylist {
    MediaPlaylist {
        target_duration: 10,
        media_sequence: 7,
        discontinuity_sequence: 0,
        segments: vec![seg(7, 9.96), seg(8, 10.0), seg(9, 4.5)],
        ended: false,
        low_latency: None,
        pending_parts: Vec::new(),
        preload_hint: None,
        skipped_segments: 0,
    }
}

#[test]
fn renders_exactly() {
    assert_eq!(
        playlist().render(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-TARGETDURATION:10\n\
         #EXTINF:9.960,\nlive-7.ts\n#EXTINF:10.000,\nlive-8.ts\n#EXTINF:4.500,\nlive-9.ts\n"
    );
}

#[test]
fn round_trip() {
    let mut p = playlist();
    p.discontinuity_sequence = 3;
    p.segments[1].discontinuity = true;
    p.segments[2].program_date_time_ms = Some(1_700_000_000_123);
    p.ended = true;
    let text = p.render();
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:3\n"));
    assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXTINF:10.000,\nlive-8.ts\n"));
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z\n"));
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    assert_eq!(parse_media_playlist(&text).unwrap(), p);
}

fn key(uri: &str, last: u8) -> Option<SegmentKey> {
    let mut iv = [0u8; 16];
    iv[0] = 0xab;
    iv[15] = last;
    Some(SegmentKey {
        uri: uri.to_string(),
        iv,
    })
}

/// EXT-X-KEY is written where the key or IV changes (it applies until the next one), with
/// the IV in hex, and METHOD=NONE where encryption stops; the parser gives each segment
/// the key in force.
#[test]
fn keys_render_where_they_change_and_round_trip() {
    let mut p = playlist();
    p.segments.push(seg(10, 2.0));
    p.segments[0].key = key("k-7.key", 1);
    p.segments[1].key = key("k-7.key", 1);
    p.segments[2].key = key("https://keys.example/k-9.key", 2);
    let text = p.render();
    assert_eq!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-TARGETDURATION:10\n\
         #EXT-X-KEY:METHOD=AES-128,URI=\"k-7.key\",IV=0xab000000000000000000000000000001\n\
         #EXTINF:9.960,\nlive-7.ts\n#EXTINF:10.000,\nlive-8.ts\n\
         #EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/k-9.key\",IV=0xab000000000000000000000000000002\n\
         #EXTINF:4.500,\nlive-9.ts\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:2.000,\nlive-10.ts\n"
    );
    assert_eq!(parse_media_playlist(&text).unwrap(), p);
    // A new IV alone is a new tag.
    p.segments[1].key = key("k-7.key", 3);
    assert_eq!(p.render().matches("#EXT-X-KEY:").count(), 4);
    assert_eq!(parse_media_playlist(&p.render()).unwrap(), p);
}

#[test]
fn bad_keys_are_refused() {
    let head = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n";
    for bad in [
        "#EXT-X-KEY:URI=\"k\",IV=0x00000000000000000000000000000000",
        "#EXT-X-KEY:METHOD=AES-128,IV=0x00000000000000000000000000000000",
        "#EXT-X-KEY:METHOD=AES-128,URI=\"k\"",
        "#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0x0000",
        "#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0xzz000000000000000000000000000000",
        "#EXT-X-KEY:METHOD=AES-128,URI=\"k,IV=0x00000000000000000000000000000000",
    ] {
        let text = format!("{head}{bad}\n#EXTINF:1,\na.ts\n");
        assert_eq!(
            parse_media_playlist(&text),
            Err(HlsError::BadValue {
                line: 3,
                tag: "EXT-X-KEY"
            }),
            "{bad}"
        );
    }
    let text = format!("{head}#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"k\"\n");
    assert!(matches!(
        parse_media_playlist(&text),
        Err(HlsError::UnsupportedKeyMethod { line: 3, .. })
    ));
}

#[test]
fn discontinuity_sequence_only_when_nonzero() {
    let text = playlist().render();
    assert!(!text.contains("DISCONTINUITY"));
    assert!(!text.contains("ENDLIST"));
}

#[test]
fn target_duration_covers_every_segment() {
    // RFC 8216 4.3.3.1: round-to-nearest(EXTINF) <= target. We write the ceiling.
    let mut p = playlist();
    p.target_duration = 6;
    p.segments = vec![seg(0, 6.0), seg(1, 6.4), seg(2, 5.9)];
    assert_eq!(p.effective_target_duration(), 7);
    assert!(p.render().contains("#EXT-X-TARGETDURATION:7\n"));
    // Exactly 6 s (within the ms that is rendered) stays 6; 6.0004 renders as 6.000.
    p.segments = vec![seg(0, 6.0), seg(1, 6.0004)];
    assert!(p.render().contains("#EXT-X-TARGETDURATION:6\n"));
    p.segments = vec![seg(0, 6.0006)];
    assert!(p.render().contains("#EXT-X-TARGETDURATION:7\n"));
    let mut rng = XorShift(42);
    for _ in 0..1000 {
        p.segments = (0..5)
            .map(|i| seg(i, rng.below(20_000) as f64 / 1000.0))
            .collect();
        let parsed = parse_media_playlist(&p.render()).unwrap();
        for s in &parsed.segments {
            assert!(s.duration.round() as u64 <= parsed.target_duration);
            assert!(s.duration <= parsed.target_duration as f64);
        }
    }
}

#[test]
fn sequence_numbers_follow_media_sequence() {
    let p = parse_media_playlist(&playlist().render()).unwrap();
    let seqs: Vec<u64> = p.segments.iter().map(|s| s.sequence).collect();
    assert_eq!(seqs, [7, 8, 9]);
}

#[test]
fn parses_foreign_playlists() {
    let text = "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:6\r\n\
                # a comment\r\n#EXT-X-UNKNOWN:1\r\n#EXTINF:5.005,title here\r\nhttp://x/a.ts?x=1\r\n\
                \r\n#EXTINF:4,\r\nb.ts\r\n";
    let p = parse_media_playlist(text).unwrap();
    assert_eq!(p.target_duration, 6);
    assert_eq!(p.media_sequence, 0);
    assert_eq!(p.segments.len(), 2);
    assert_eq!(p.segments[0].uri, "http://x/a.ts?x=1");
    assert_eq!(p.segments[0].duration, 5.005);
    assert_eq!(p.segments[1].duration, 4.0);
    assert!(!p.ended);
}

#[test]
fn parser_errors() {
    assert_eq!(parse_media_playlist(""), Err(HlsError::NotM3u));
    assert_eq!(
        parse_media_playlist("#EXT-X-TARGETDURATION:6\n"),
        Err(HlsError::NotM3u)
    );
    assert_eq!(
        parse_media_playlist("#EXTM3U\n#EXTINF:1,\na.ts\n"),
        Err(HlsError::MissingTargetDuration)
    );
    assert_eq!(
        parse_media_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:6\na.ts\n"),
        Err(HlsError::UriWithoutExtinf { line: 3 })
    );
    assert!(matches!(
        parse_media_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-TARGETDURATION:6\n"),
        Err(HlsError::Duplicate { line: 3, .. })
    ));
    for bad in [
        "#EXTINF:abc,",
        "#EXTINF:-1,",
        "#EXTINF:NaN,",
        "#EXTINF:inf,",
    ] {
        let text = format!("#EXTM3U\n#EXT-X-TARGETDURATION:6\n{bad}\na.ts\n");
        assert!(
            matches!(
                parse_media_playlist(&text),
                Err(HlsError::BadValue { line: 3, .. })
            ),
            "{bad}"
        );
    }
    assert!(parse_media_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:6.5\n").is_err());
    assert!(parse_media_playlist("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n").is_err());
    let huge = "#EXTM3U\n".to_string() + &" ".repeat(media::hls::MAX_PLAYLIST_LEN);
    assert_eq!(parse_media_playlist(&huge), Err(HlsError::TooLarge));
}

#[test]
fn date_time() {
    assert_eq!(format_date_time(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        format_date_time(1_700_000_000_123),
        "2023-11-14T22:13:20.123Z"
    );
    assert_eq!(
        format_date_time(951_782_400_000),
        "2000-02-29T00:00:00.000Z"
    );
    assert_eq!(format_date_time(-1), "1969-12-31T23:59:59.999Z");
    assert_eq!(
        parse_date_time("2023-11-14T23:43:20.12+01:30"),
        Some(1_700_000_000_120)
    );
    assert_eq!(
        parse_date_time("2023-11-14T22:13:20Z"),
        Some(1_700_000_000_000)
    );
    assert_eq!(
        parse_date_time("2023-11-14T22:13:20.1239Z"),
        Some(1_700_000_000_123)
    );
    for bad in [
        "",
        "2023-11-14",
        "2023-13-14T22:13:20Z",
        "2023-11-14T22:13:20",
        "x023-11-14T22:13:20Z",
        "2023-11-14T22:13:20+00:9223372036854775807",
        "2023-11-14T22:13:20+-1:00",
        "2023-11-14T22:13:20+24:00",
    ] {
        assert_eq!(parse_date_time(bad), None, "{bad}");
    }
    let mut rng = XorShift(7);
    for _ in 0..10_000 {
        let ms = (rng.next() % 8_000_000_000_000) as i64 - 1_000_000_000_000;
        assert_eq!(parse_date_time(&format_date_time(ms)), Some(ms));
    }
}

#[test]
fn hostile_text() {
    let mut rng = XorShift(0xfeed_face_dead_beef);
    let vocab = [
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:",
        "#EXT-X-MEDIA-SEQUENCE:",
        "#EXT-X-DISCONTINUITY-SEQUENCE:",
        "#EXTINF:",
        "#EXT-X-DISCONTINUITY",
        "#EXT-X-PROGRAM-DATE-TIME:",
        "#EXT-X-ENDLIST",
        "a.ts",
        "99999999999999999999999",
        "6",
        "1e308",
        "-0",
        ",",
        ":",
        "\n",
        "\r\n",
        "2023-11-14T22:13:20.123+99:99",
        "é",
        "\u{0}",
    ];
    for _ in 0..50_000 {
        let text: String = if rng.below(3) == 0 {
            let n = rng.below(300);
            String::from_utf8_lossy(&rng.bytes(n)).into_owned()
        } else {
            let mut s = String::from("#EXTM3U\n");
            for _ in 0..rng.below(30) {
                s.push_str(vocab[rng.below(vocab.len())]);
            }
            s
        };
        if let Ok(p) = parse_media_playlist(&text) {
            let _ = p.render();
        }
        let _ = parse_date_time(&text);
    }
}

/// fMP4 and LL-HLS: EXT-X-MAP where the init changes, parts before their segment's EXTINF,
/// the open segment's parts and the preload hint last, and the parser reads it all back.
#[test]
fn low_latency_playlist_renders_and_parses() {
    let part = |uri: &str, d: f64, independent: bool| media::hls::Part {
        uri: uri.to_string(),
        duration: d,
        independent,
    };
    let mut a = seg(3, 1.0);
    a.uri = "s-3.m4s".into();
    a.map = Some("init.mp4".into());
    a.parts = vec![part("s-3.0.m4s", 0.5, true), part("s-3.1.m4s", 0.5, false)];
    let mut b = seg(4, 1.0);
    b.uri = "s-4.m4s".into();
    b.map = Some("init.mp4".into());
    let pl = MediaPlaylist {
        target_duration: 1,
        media_sequence: 3,
        discontinuity_sequence: 0,
        segments: vec![a, b],
        ended: false,
        low_latency: Some(media::hls::LowLatency {
            part_target: 0.5,
            part_hold_back: 1.5,
            can_skip_until: None,
        }),
        pending_parts: vec![part("s-5.0.m4s", 0.5, true)],
        preload_hint: Some("s-5.1.m4s".into()),
        skipped_segments: 0,
    };
    let text = pl.render();
    assert_eq!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-TARGETDURATION:1\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500\n\
         #EXT-X-PART-INF:PART-TARGET=0.500\n\
         #EXT-X-MAP:URI=\"init.mp4\"\n\
         #EXT-X-PART:DURATION=0.500,URI=\"s-3.0.m4s\",INDEPENDENT=YES\n\
         #EXT-X-PART:DURATION=0.500,URI=\"s-3.1.m4s\"\n\
         #EXTINF:1.000,\ns-3.m4s\n#EXTINF:1.000,\ns-4.m4s\n\
         #EXT-X-PART:DURATION=0.500,URI=\"s-5.0.m4s\",INDEPENDENT=YES\n\
         #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s-5.1.m4s\"\n"
    );
    let back = parse_media_playlist(&text).expect("parse");
    assert_eq!(back, pl);
}
