//! The four real clips in tests/fixtures, read whole and in random pieces. Expected facts were
//! taken once by hand with ffprobe (codec, profile, level, size, rate, channels, packet counts)
//! and are hard-coded so the tests need no ffprobe.

mod common;

use bytes::{Bytes, BytesMut};
use common::{fixture, XorShift};
use media::aac::{aac_profile_name, parse_asc};
use media::avc::{level_name, parse_avc_config, parse_sps, profile_name};
use media::codec::{
    parse_audio, parse_audio_header, parse_video, parse_video_header, AudioCodec, VideoCodec,
    VideoPacketKind,
};
use media::flv::{read_flv, tag_type, write_tag, FlvHeader, FlvReader, FlvTag};
use media::mp3::{parse_mp3_header, MpegVersion};

struct Counts {
    script: usize,
    audio: usize,
    video: usize,
}

fn counts(tags: &[FlvTag]) -> Counts {
    let n = |t| tags.iter().filter(|x| x.tag_type == t).count();
    Counts {
        script: n(tag_type::SCRIPT),
        audio: n(tag_type::AUDIO),
        video: n(tag_type::VIDEO),
    }
}

fn first(tags: &[FlvTag], t: u8) -> &FlvTag {
    tags.iter().find(|x| x.tag_type == t).expect("tag of type")
}

/// Checks the AVC sequence header and the video packet mix: ffprobe counts 250 video packets;
/// FLV adds one sequence header before and one end-of-sequence after them.
fn check_avc(tags: &[FlvTag], profile: u8, level: u8, width: u32, height: u32) {
    let seq = first(tags, tag_type::VIDEO);
    let h = parse_video_header(&seq.data).unwrap();
    assert_eq!(h.info.codec, VideoCodec::Avc);
    assert!(h.info.sequence_header && h.info.keyframe);
    let cfg = parse_avc_config(&seq.data[h.data_offset.unwrap()..]).unwrap();
    assert_eq!(
        (cfg.profile_idc, cfg.level_idc, cfg.nal_length_size),
        (profile, level, 4)
    );
    assert_eq!((cfg.sps.len(), cfg.pps.len()), (1, 1));
    let sps = parse_sps(&cfg.sps[0]).unwrap();
    assert_eq!((sps.profile_idc, sps.level_idc), (profile, level));
    assert_eq!((sps.width, sps.height), (width, height));

    let mut frames = 0;
    let mut keyframes = 0;
    let mut eos = 0;
    for t in tags.iter().filter(|t| t.tag_type == tag_type::VIDEO) {
        let h = parse_video_header(&t.data).unwrap();
        match h.kind {
            VideoPacketKind::Frames => {
                frames += 1;
                keyframes += usize::from(h.info.keyframe);
                let body = &t.data[h.data_offset.unwrap()..];
                let nalus = media::avc::split_length_prefixed(body, cfg.nal_length_size).unwrap();
                assert!(!nalus.is_empty());
            }
            VideoPacketKind::EndOfSequence => eos += 1,
            VideoPacketKind::SequenceHeader => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((frames, keyframes, eos), (250, 5, 1));
}

fn check_aac(tags: &[FlvTag], channels: u8) {
    let seq = first(tags, tag_type::AUDIO);
    let h = parse_audio_header(&seq.data).unwrap();
    assert_eq!(h.info.codec, AudioCodec::Aac);
    assert!(h.info.sequence_header);
    let asc = parse_asc(&seq.data[h.data_offset.unwrap()..]).unwrap();
    assert_eq!(
        (asc.object_type, asc.sample_rate, asc.channels),
        (2, 44100, channels)
    );
    assert_eq!(aac_profile_name(asc.object_type), "LC");
    // ffprobe counts 432 AAC packets; the 433rd FLV audio tag is the sequence header.
    let raw = tags
        .iter()
        .filter(|t| t.tag_type == tag_type::AUDIO)
        .filter(|t| !parse_audio(&t.data).unwrap().sequence_header)
        .count();
    assert_eq!(raw, 432);
}

#[test]
fn avc_aac_640x360() {
    let (header, tags) = read_flv(Bytes::from(fixture("avc-aac-640x360-10s.flv"))).unwrap();
    assert_eq!(
        header,
        FlvHeader {
            has_audio: true,
            has_video: true
        }
    );
    let c = counts(&tags);
    assert_eq!((c.script, c.video, c.audio), (1, 252, 433));
    assert_eq!(tags[0].tag_type, tag_type::SCRIPT);
    // ffprobe: h264 Main, level 30, 640x360; aac LC 44100 Hz stereo.
    check_avc(&tags, 77, 30, 640, 360);
    assert_eq!(profile_name(77), "Main");
    assert_eq!(level_name(30), "3");
    check_aac(&tags, 2);
    let last_video = tags
        .iter()
        .rev()
        .find(|t| t.tag_type == tag_type::VIDEO)
        .unwrap();
    assert_eq!(last_video.timestamp, 9960);
}

#[test]
fn video_only_avc() {
    let (header, tags) = read_flv(Bytes::from(fixture("video-only-avc-10s.flv"))).unwrap();
    assert!(header.has_video && !header.has_audio);
    let c = counts(&tags);
    assert_eq!((c.script, c.video, c.audio), (1, 252, 0));
    // ffprobe: h264 High, level 12, 320x180.
    check_avc(&tags, 100, 12, 320, 180);
    assert_eq!(profile_name(100), "High");
}

#[test]
fn audio_only_aac() {
    let (header, tags) = read_flv(Bytes::from(fixture("audio-only-aac-10s.flv"))).unwrap();
    assert!(header.has_audio && !header.has_video);
    let c = counts(&tags);
    assert_eq!((c.script, c.video, c.audio), (1, 0, 433));
    // ffprobe: aac LC 44100 Hz mono. The ASC carries a trailing SBR sync extension.
    check_aac(&tags, 1);
}

#[test]
fn audio_only_mp3() {
    let (header, tags) = read_flv(Bytes::from(fixture("audio-only-mp3-10s.flv"))).unwrap();
    assert!(header.has_audio && !header.has_video);
    let c = counts(&tags);
    // ffprobe: mp3 44100 Hz mono 64 kb/s, 384 packets; FLV has no MP3 sequence header.
    assert_eq!((c.script, c.video, c.audio), (1, 0, 384));
    for t in tags.iter().filter(|t| t.tag_type == tag_type::AUDIO) {
        let h = parse_audio_header(&t.data).unwrap();
        assert_eq!(h.info.codec, AudioCodec::Mp3);
        assert!(!h.info.stereo && !h.info.sequence_header);
        let frame = &t.data[h.data_offset.unwrap()..];
        let m = parse_mp3_header(frame).unwrap();
        assert_eq!(m.version, MpegVersion::Mpeg1);
        assert_eq!(
            (m.layer, m.bitrate_kbps, m.sample_rate, m.channels),
            (3, 64, 44100, 1)
        );
        assert_eq!(m.frame_len, frame.len());
    }
}

const ALL: [&str; 4] = [
    "avc-aac-640x360-10s.flv",
    "audio-only-aac-10s.flv",
    "audio-only-mp3-10s.flv",
    "video-only-avc-10s.flv",
];

#[test]
fn reader_in_random_pieces() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for name in ALL {
        let data = fixture(name);
        let (header, whole) = read_flv(Bytes::from(data.clone())).unwrap();
        for round in 0..3 {
            let max_piece = [7, 300, 20_000][round];
            let mut reader = FlvReader::new(1 << 20);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut pos = 0;
            while pos < data.len() {
                let n = (1 + rng.below(max_piece)).min(data.len() - pos);
                buf.extend_from_slice(&data[pos..pos + n]);
                pos += n;
                while let Some(tag) = reader.next_tag(&mut buf).unwrap() {
                    got.push(tag);
                }
            }
            assert!(buf.is_empty(), "{name}: leftover bytes");
            assert_eq!(reader.header(), Some(header));
            assert_eq!(got, whole, "{name} round {round}");
        }
    }
}

#[test]
fn write_read_round_trip() {
    for name in ALL {
        let (header, tags) = read_flv(Bytes::from(fixture(name))).unwrap();
        let mut out = header.encode().to_vec();
        for t in &tags {
            write_tag(&mut out, t.tag_type, t.timestamp, &t.data);
        }
        // ffmpeg writes exactly this layout, so the rewrite is byte-identical.
        assert_eq!(out, fixture(name), "{name}");
        let (h2, tags2) = read_flv(Bytes::from(out)).unwrap();
        assert_eq!((h2, tags2), (header, tags));
    }
}

#[test]
fn every_tag_header_parses() {
    for name in ALL {
        let (_, tags) = read_flv(Bytes::from(fixture(name))).unwrap();
        for t in &tags {
            match t.tag_type {
                tag_type::VIDEO => assert!(parse_video(&t.data).is_some()),
                tag_type::AUDIO => assert!(parse_audio(&t.data).is_some()),
                _ => {}
            }
        }
    }
}
