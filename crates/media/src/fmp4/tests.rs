use bytes::Bytes;

use super::read::{boxes, parse_fragments, parse_init};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The 1280x720 baseline SPS of `avc::tests::sps_baseline_crop`.
fn sps() -> Vec<u8> {
    let bits = "1 1 011 010 0 0000001010000 00000101101 1 1 0 0 1";
    let bits: Vec<u8> = bits
        .bytes()
        .filter(|b| *b != b' ')
        .map(|b| b - b'0')
        .collect();
    let mut out = vec![0x67, 66, 0xc0, 31];
    for chunk in bits.chunks(8) {
        out.push(
            chunk
                .iter()
                .enumerate()
                .fold(0u8, |v, (i, b)| v | b << (7 - i)),
        );
    }
    out
}

fn avcc() -> Vec<u8> {
    let sps = sps();
    let pps = [0x68u8, 0xce, 0x3c, 0x80];
    let mut r = vec![1, 66, 0xc0, 31, 0xff, 0xe1];
    r.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    r.extend_from_slice(&sps);
    r.push(1);
    r.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    r.extend_from_slice(&pps);
    r
}

fn flv_video(key: bool, packet: u8, cts_ms: i32, body: &[u8]) -> Bytes {
    let mut p = vec![if key { 0x17 } else { 0x27 }, packet];
    p.extend_from_slice(&cts_ms.to_be_bytes()[1..]);
    p.extend_from_slice(body);
    Bytes::from(p)
}

fn flv_aac(seq: bool, body: &[u8]) -> Bytes {
    let mut p = vec![0xaf, if seq { 0 } else { 1 }];
    p.extend_from_slice(body);
    Bytes::from(p)
}

/// A frame of one NALU with a 4-byte length prefix.
fn nal(t: u8, len: usize) -> Vec<u8> {
    let mut v = (len as u32 + 1).to_be_bytes().to_vec();
    v.push(t);
    v.extend(std::iter::repeat_n(0xab, len));
    v
}

#[test]
fn fragment_bytes_match_the_hand_written_vector() {
    let runs = [Run {
        track_id: 1,
        base_dts: 0x1_0000_0000,
        samples: vec![
            Sample {
                duration: 3000,
                cts_offset: 6000,
                sync: true,
                data: Bytes::from_static(&[1, 2, 3]),
            },
            Sample {
                duration: 3000,
                cts_offset: -3000,
                sync: false,
                data: Bytes::from_static(&[4]),
            },
        ],
    }];
    let mut out = Vec::new();
    write_fragment(7, &runs, &mut out);
    let want = hex("00000078 6d6f6f66
           00000010 6d666864 00000000 00000007
           00000060 74726166
             00000010 74666864 00020000 00000001
             00000014 74666474 01000000 00000001 00000000
             00000034 7472756e 01000f01 00000002 00000080
               00000bb8 00000003 02000000 00001770
               00000bb8 00000001 01010000 fffff448
         0000000c 6d646174 01020304");
    assert_eq!(out, want);
    let frags = parse_fragments(&out).expect("parse");
    assert_eq!(frags.len(), 1);
    assert_eq!(frags[0].sequence, 7);
    let t = &frags[0].trafs[0];
    assert_eq!(
        (t.track_id, t.base_dts, t.duration()),
        (1, 0x1_0000_0000, 6000)
    );
    assert_eq!(t.samples[1].cts_offset, -3000);
    assert_eq!(&out[t.samples[0].data_offset..][..3], &[1, 2, 3]);
    assert_eq!(out[t.samples[1].data_offset], 4);
}

#[test]
fn init_segment_declares_avc1_and_mp4a() {
    let tracks = [
        Track {
            id: 1,
            timescale: 90_000,
            codec: TrackCodec::H264 {
                record: Bytes::from(avcc()),
                width: 1280,
                height: 720,
            },
        },
        Track {
            id: 2,
            timescale: 44_100,
            codec: TrackCodec::Aac {
                asc: Bytes::from_static(&[0x12, 0x10]),
                sample_rate: 44_100,
                channels: 2,
            },
        },
    ];
    let mut out = Vec::new();
    write_init(&tracks, &mut out);
    // ftyp: major iso6, minor 0, compatible iso6 cmfc mp41 dash.
    assert_eq!(
        &out[..32],
        hex("00000020 66747970 69736f36 00000000 69736f36 636d6663 6d703431 64617368")
    );
    // The esds: ES_Descriptor (ES_ID 2), DecoderConfigDescriptor (AAC, audio stream),
    // DecoderSpecificInfo (the ASC), SLConfigDescriptor.
    let esds = hex("00000027 65736473 00000000
         03 19 0002 00
           04 11 40 15 000000 00000000 00000000
             05 02 1210
           06 01 02");
    assert!(
        out.windows(esds.len()).any(|w| w == esds),
        "esds as ISO 14496-1 says"
    );
    let record = avcc();
    let mut avcc_box = ((record.len() + 8) as u32).to_be_bytes().to_vec();
    avcc_box.extend_from_slice(b"avcC");
    avcc_box.extend_from_slice(&record);
    assert!(out.windows(avcc_box.len()).any(|w| w == avcc_box));
    let t = parse_init(&out).expect("parse");
    assert_eq!(t.len(), 2);
    assert_eq!(
        (
            t[0].id,
            t[0].timescale,
            &t[0].handler,
            &t[0].entry,
            t[0].trex
        ),
        (1, 90_000, b"vide", b"avc1", true)
    );
    assert_eq!(
        (
            t[1].id,
            t[1].timescale,
            &t[1].handler,
            &t[1].entry,
            t[1].trex
        ),
        (2, 44_100, b"soun", b"mp4a", true)
    );
    assert_eq!(tracks[0].codec.rfc6381(), "avc1.42c01f");
    assert_eq!(tracks[1].codec.rfc6381(), "mp4a.40.2");
}

/// B-frames: decode order I P B B with composition times from FLV; each sample keeps its
/// offset (in 90 kHz ticks), durations are the DTS steps, and the keyframe that arrives
/// last stays for the next fragment.
#[test]
fn muxer_keeps_composition_offsets_and_cuts_before_the_keyframe() {
    let mut m = Fmp4Muxer::new(Fmp4Streams {
        video: Some(Fmp4Video::H264),
        audio: Some(Fmp4Audio::Aac),
    });
    let mut seq = vec![0x17, 0, 0, 0, 0];
    seq.extend(avcc());
    m.write_video(0, &Bytes::from(seq)).expect("avcC");
    assert!(m.init_segment().is_none(), "audio config still missing");
    m.write_audio(0, &flv_aac(true, &[0x12, 0x10]))
        .expect("asc");
    let init = m.init_segment().expect("init");
    let tracks = parse_init(&init).expect("init parses");
    assert_eq!(tracks[1].timescale, 44_100);
    let frames = [
        (0u64, true, 80i32),
        (40, false, 120),
        (80, false, 0),
        (120, false, 40),
    ];
    for (i, (dts, key, cts)) in frames.iter().enumerate() {
        m.write_video(
            *dts,
            &flv_video(*key, 1, *cts, &nal(if *key { 5 } else { 1 }, 10 + i)),
        )
        .expect("frame");
        m.write_audio(*dts, &flv_aac(false, &[0x21; 6]))
            .expect("aac");
    }
    m.write_video(160, &flv_video(true, 1, 80, &nal(5, 50)))
        .expect("key");
    assert_eq!(m.ready_ms(), 160);
    let mut out = Vec::new();
    let meta = m.take_fragment(&mut out).expect("fragment");
    assert!(meta.independent);
    assert_eq!(
        (meta.start_ms, meta.duration_ms, meta.sequence),
        (0, 160, 1)
    );
    let f = parse_fragments(&out).expect("parse");
    let v = &f[0].trafs[0];
    assert_eq!(v.track_id, VIDEO_TRACK);
    let offsets: Vec<i32> = v.samples.iter().map(|s| s.cts_offset).collect();
    assert_eq!(offsets, vec![7200, 10800, 0, 3600]);
    let durations: Vec<u32> = v.samples.iter().map(|s| s.duration).collect();
    assert_eq!(durations, vec![3600; 4]);
    assert_eq!(v.samples[0].flags, FLAGS_SYNC);
    assert_eq!(v.samples[1].flags, FLAGS_NON_SYNC);
    // Zero copy: the sample is the FLV body after the 5-byte header.
    assert_eq!(&out[v.samples[0].data_offset..][..15], &nal(5, 10)[..]);
    let a = &f[0].trafs[1];
    assert_eq!(
        (a.track_id, a.base_dts, a.samples.len()),
        (AUDIO_TRACK, 0, 3)
    );
    assert_eq!(a.samples[0].duration, 1764, "40 ms at 44.1 kHz");
    // The next fragment starts at the keyframe that was pending.
    m.finish();
    out.clear();
    let next = m.take_fragment(&mut out).expect("rest");
    assert_eq!((next.start_ms, next.sequence), (160, 2));
    let f = parse_fragments(&out).expect("parse");
    assert_eq!(f[0].trafs[0].base_dts, 160 * 90);
    assert_eq!(f[0].trafs[0].samples[0].duration, 3600, "last gap reused");
    assert_eq!(f[0].trafs[1].base_dts, 5292, "120 ms at 44.1 kHz");
}

#[test]
fn annexb_frames_become_length_prefixed() {
    let mut m = Fmp4Muxer::new(Fmp4Streams {
        video: Some(Fmp4Video::H264),
        audio: None,
    });
    let mut seq = vec![0x17, 0, 0, 0, 0];
    seq.extend(avcc());
    m.write_video(0, &Bytes::from(seq)).expect("avcC");
    let annexb = [0u8, 0, 0, 1, 0x65, 1, 2, 3, 0, 0, 1, 0x06, 9];
    m.write_video(0, &flv_video(true, 1, 0, &annexb))
        .expect("frame");
    m.finish();
    let mut out = Vec::new();
    m.take_fragment(&mut out).expect("fragment");
    let f = parse_fragments(&out).expect("parse");
    let s = f[0].trafs[0].samples[0];
    assert_eq!(
        &out[s.data_offset..][..s.size as usize],
        hex("00000004 65010203 00000002 0609")
    );
}

#[test]
fn mp3_track_takes_its_config_from_the_first_frame() {
    let mut m = Fmp4Muxer::new(Fmp4Streams {
        video: None,
        audio: Some(Fmp4Audio::Mp3),
    });
    // MPEG-1 layer 3, 128 kbps, 44.1 kHz, stereo.
    let mut frame = vec![0x2f, 0xff, 0xfb, 0x90, 0x00];
    frame.extend([0u8; 20]);
    m.write_audio(0, &Bytes::from(frame.clone())).expect("mp3");
    m.write_audio(26, &Bytes::from(frame)).expect("mp3");
    let init = m.init_segment().expect("init");
    let t = parse_init(&init).expect("parse");
    assert_eq!((t[0].timescale, &t[0].entry), (44_100, b"mp4a"));
    let mut out = Vec::new();
    let meta = m.take_fragment(&mut out).expect("one ready sample");
    assert_eq!(meta.duration_ms, 26);
}

#[test]
fn reader_refuses_bad_sizes_and_offsets() {
    assert!(
        boxes(&hex("00000004 6d6f6f66")).is_err(),
        "size under the header"
    );
    assert!(boxes(&hex("00000010 6d6f6f66")).is_err(), "past the end");
    assert!(parse_init(&hex("00000008 6d6f6f76")).is_err());
    let runs = [Run {
        track_id: 1,
        base_dts: 0,
        samples: vec![Sample {
            duration: 1,
            cts_offset: 0,
            sync: true,
            data: Bytes::from_static(&[1, 2]),
        }],
    }];
    let mut out = Vec::new();
    write_fragment(1, &runs, &mut out);
    // The sample size grows past the mdat.
    let n = out.len();
    let pos = out
        .windows(4)
        .position(|w| w == [0, 0, 0, 2])
        .expect("size field");
    out[pos + 3] = 9;
    assert!(parse_fragments(&out).is_err());
    assert_eq!(out.len(), n);
}

/// HEVC: an `hvc1` sample entry carrying the record as sent, and the RFC 6381 string players
/// match on (`hvc1.<profile>.<compat reversed>.<tier><level>.<constraints>`).
#[test]
fn hevc_track_is_hvc1_with_its_codecs_string() {
    // HEVCDecoderConfigurationRecord head: version 1, Main profile (1), compat flags
    // 0x60000000, constraints b0 00 00 00 00 00, level 93 (3.1); no arrays.
    let record = hex("01 01 60000000 b00000000000 5d f000 fc fd f8 f8 0000 0f 00");
    let codec = TrackCodec::H265 {
        record: Bytes::from(record.clone()),
        width: 640,
        height: 360,
    };
    assert_eq!(codec.rfc6381(), "hvc1.1.6.L93.B0");
    let mut out = Vec::new();
    write_init(
        &[Track {
            id: 1,
            timescale: 90_000,
            codec,
        }],
        &mut out,
    );
    let t = parse_init(&out).expect("parse");
    assert_eq!((&t[0].entry, &t[0].handler), (b"hvc1", b"vide"));
    let mut hvcc = ((record.len() + 8) as u32).to_be_bytes().to_vec();
    hvcc.extend_from_slice(b"hvcC");
    hvcc.extend_from_slice(&record);
    assert!(out.windows(hvcc.len()).any(|w| w == hvcc));
}
