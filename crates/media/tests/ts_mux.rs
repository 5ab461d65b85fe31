//! Muxes the fixture clips into TS (cut into ~2 s segments, each starting with PAT/PMT and a
//! keyframe) and checks the result with our demuxer.
//!
//! Checked by hand with ffprobe 5.1 (not needed by the tests): with `SLUICE_TS_OUT=/tmp/x`
//! set, `cargo test -p media --test ts_mux` writes each muxed clip to `/tmp/x-<clip>.ts`, and
//! `ffprobe -v error -show_streams -count_frames` reported for avc-aac-640x360: h264 Main
//! 640x360 with nb_read_frames=250 and aac LC 44100 Hz stereo with nb_read_frames=432 (the
//! FLV's counts); video-only: h264 High 320x180, 250 frames; audio-only-aac: aac mono, 432
//! frames; audio-only-mp3: mp3 44100 Hz mono, 384 frames; `ffmpeg -v warning -i X -f null -`
//! decodes all four without a warning. (That check caught NALU lengths 256..511 being taken for
//! Annex B start codes; `nalu_length_that_looks_like_a_start_code` now covers it.)

mod common;

use bytes::Bytes;
use common::fixture;
use media::aac::{parse_adts, parse_asc};
use media::avc::split_length_prefixed;
use media::codec::{parse_audio_header, parse_video_header, VideoPacketKind};
use media::flv::{read_flv, tag_type, FlvTag};
use media::ts::{pid, Pes, TsAudio, TsDemuxer, TsEvent, TsMuxer, TsStreams, TsVideo};

struct Muxed {
    ts: Vec<u8>,
    video_frames: usize,
    /// Per video frame, the FLV NALUs in Annex B form: what each PES must end with.
    video_es: Vec<Vec<u8>>,
    keyframes: usize,
    audio_frames: usize,
    segments: usize,
}

fn mux(tags: &[FlvTag]) -> Muxed {
    let first = |t| tags.iter().find(|x| x.tag_type == t).map(|x| &x.data[..]);
    let streams = TsStreams {
        video: first(tag_type::VIDEO).and_then(TsVideo::from_flv),
        audio: first(tag_type::AUDIO).and_then(TsAudio::from_flv),
    };
    let mut m = TsMuxer::new(streams);
    let mut ts = Vec::new();
    let (mut video_frames, mut keyframes, mut audio_frames, mut segments) = (0, 0, 0, 0);
    let mut video_es = Vec::new();
    let mut segment_start: Option<u32> = None;
    for t in tags {
        match t.tag_type {
            tag_type::VIDEO => {
                let h = parse_video_header(&t.data).unwrap();
                if h.kind == VideoPacketKind::Frames {
                    video_frames += 1;
                    let body = &t.data[h.data_offset.unwrap()..];
                    let mut es = Vec::new();
                    for nal in split_length_prefixed(body, 4).unwrap() {
                        es.extend_from_slice(&[0, 0, 0, 1]);
                        es.extend_from_slice(nal);
                    }
                    video_es.push(es);
                    if h.info.keyframe {
                        keyframes += 1;
                        // A new segment at each keyframe at least 2 s after the last cut.
                        if segment_start.is_none_or(|s| t.timestamp >= s + 2000) {
                            m.write_tables(&mut ts);
                            segment_start = Some(t.timestamp);
                            segments += 1;
                        }
                    }
                }
                if segment_start.is_some() || h.kind == VideoPacketKind::SequenceHeader {
                    m.write_video(u64::from(t.timestamp), &t.data, &mut ts)
                        .unwrap();
                }
            }
            tag_type::AUDIO => {
                let h = parse_audio_header(&t.data).unwrap();
                if streams.video.is_none() && segment_start.is_none_or(|s| t.timestamp >= s + 2000)
                {
                    m.write_tables(&mut ts);
                    segment_start = Some(t.timestamp);
                    segments += 1;
                }
                if !h.info.sequence_header {
                    if segment_start.is_none() {
                        continue; // no segment open yet: nothing may precede PAT/PMT
                    }
                    audio_frames += 1;
                }
                m.write_audio(u64::from(t.timestamp), &t.data, &mut ts)
                    .unwrap();
            }
            _ => {}
        }
    }
    Muxed {
        ts,
        video_frames,
        video_es,
        keyframes,
        audio_frames,
        segments,
    }
}

fn nal_types(es: &[u8]) -> Vec<u8> {
    media::avc::split_annexb(es)
        .iter()
        .filter_map(|n| n.first().map(|b| b & 0x1f))
        .collect()
}

fn check_clip(name: &str) {
    let (_, tags) = read_flv(Bytes::from(fixture(name))).unwrap();
    let muxed = mux(&tags);
    if let Ok(prefix) = std::env::var("SLUICE_TS_OUT") {
        std::fs::write(format!("{prefix}-{name}.ts"), &muxed.ts).unwrap();
    }
    let ts = &muxed.ts;
    assert_eq!(ts.len() % 188, 0, "{name}");
    assert!(ts.chunks(188).all(|p| p[0] == 0x47), "{name}");

    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push(ts, &mut ev);
    d.finish(&mut ev);
    assert!(d.cc_errors().is_empty(), "{name}: {:?}", d.cc_errors());
    for e in &ev {
        assert!(
            !matches!(
                e,
                TsEvent::CcError { .. }
                    | TsEvent::PsiError(_)
                    | TsEvent::BadPes { .. }
                    | TsEvent::SyncLost { .. }
            ),
            "{name}: {e:?}"
        );
    }

    // PAT then PMT open the file, and every segment.
    let packets: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            TsEvent::Packet(p) => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(packets[0].pid, pid::PAT);
    assert_eq!(packets[1].pid, pid::PMT);
    let pats = packets.iter().filter(|p| p.pid == pid::PAT).count();
    let pmts = ev
        .iter()
        .filter(|e| matches!(e, TsEvent::Pmt { .. }))
        .count();
    assert_eq!((pats, pmts), (muxed.segments, muxed.segments), "{name}");
    for (i, p) in packets.iter().enumerate() {
        if p.pid == pid::PAT {
            assert_eq!(packets[i + 1].pid, pid::PMT);
        }
    }

    let pes: Vec<&Pes> = ev
        .iter()
        .filter_map(|e| match e {
            TsEvent::Pes(p) => Some(p),
            _ => None,
        })
        .collect();
    let video: Vec<&&Pes> = pes.iter().filter(|p| p.pid == pid::VIDEO).collect();
    let audio: Vec<&&Pes> = pes.iter().filter(|p| p.pid == pid::AUDIO).collect();
    assert_eq!(video.len(), muxed.video_frames, "{name}: video frames");
    assert_eq!(audio.len(), muxed.audio_frames, "{name}: audio frames");

    // Video: AUD first, SPS/PPS before every IDR, random access on keyframes, DTS monotonic.
    let mut last_dts = None;
    let mut randoms = 0;
    for (p, es) in video.iter().zip(&muxed.video_es) {
        assert_eq!(p.stream_type, 0x1b);
        assert!(p.data.ends_with(es), "{name}: frame NALUs altered");
        assert!(p.data.starts_with(&[0, 0, 0, 1, 0x09]), "{name}: no AUD");
        let types = nal_types(&p.data);
        assert_eq!(types[0], 9);
        if let Some(idr) = types.iter().position(|&t| t == 5) {
            assert!(types[..idr].contains(&7) && types[..idr].contains(&8));
            assert!(p.random_access);
        }
        randoms += usize::from(p.random_access);
        let pts = p.pts.unwrap();
        let dts = p.dts.unwrap_or(pts);
        assert!(dts <= pts);
        assert!(
            last_dts.is_none_or(|l| dts > l),
            "{name}: DTS not increasing"
        );
        last_dts = Some(dts);
    }
    assert_eq!(randoms, muxed.keyframes, "{name}");

    // Audio: PTS monotonic; ADTS (AAC) consistent with the ASC, or MP3 frames as is.
    let asc = tags
        .iter()
        .find(|t| t.tag_type == tag_type::AUDIO)
        .and_then(|t| {
            let h = parse_audio_header(&t.data)?;
            h.info
                .sequence_header
                .then(|| parse_asc(&t.data[h.data_offset?..]).ok())?
        });
    let mut last_pts = None;
    for p in &audio {
        let pts = p.pts.unwrap();
        assert!(p.dts.is_none());
        assert!(last_pts.is_none_or(|l| pts >= l), "{name}: audio PTS");
        last_pts = Some(pts);
        match (&asc, p.stream_type) {
            (Some(asc), 0x0f) => {
                let a = parse_adts(&p.data).unwrap();
                assert_eq!(a.frame_length, p.data.len());
                assert_eq!(
                    (a.object_type, a.sample_rate_index, a.channels),
                    (asc.object_type, asc.sample_rate_index, asc.channels)
                );
            }
            (None, 0x03) => {
                let m = media::mp3::parse_mp3_header(&p.data).unwrap();
                assert_eq!(m.frame_len, p.data.len());
            }
            other => panic!("{name}: unexpected audio {other:?}"),
        }
    }

    // PCR on the PCR PID at least every 100 ms, and only there.
    let pcr_pid = if muxed.video_frames > 0 {
        pid::VIDEO
    } else {
        pid::AUDIO
    };
    let pcrs: Vec<u64> = packets
        .iter()
        .filter_map(|p| p.pcr.map(|c| (p.pid, c.base)))
        .map(|(pid, base)| {
            assert_eq!(pid, pcr_pid);
            base
        })
        .collect();
    assert!(!pcrs.is_empty());
    for w in pcrs.windows(2) {
        assert!(w[1] >= w[0] && w[1] - w[0] <= 9000, "{name}: PCR gap {w:?}");
    }
}

#[test]
fn avc_aac_clip() {
    check_clip("avc-aac-640x360-10s.flv");
}

#[test]
fn video_only_clip() {
    check_clip("video-only-avc-10s.flv");
}

#[test]
fn audio_only_aac_clip() {
    check_clip("audio-only-aac-10s.flv");
}

#[test]
fn audio_only_mp3_clip() {
    check_clip("audio-only-mp3-10s.flv");
}

#[test]
fn every_pes_size_round_trips() {
    // Exercises the stuffing paths: 0, 1, 2 and many bytes left in the last packet.
    let mut m = TsMuxer::new(TsStreams {
        video: None,
        audio: Some(TsAudio::Mp3 { mpeg2: false }),
    });
    let mut ts = Vec::new();
    m.write_tables(&mut ts);
    let mut sent = Vec::new();
    for len in 1..600usize {
        let mut payload = vec![0x2f];
        payload.extend((0..len).map(|i| (i * 7 + len) as u8));
        m.write_audio(len as u64 * 26, &payload, &mut ts).unwrap();
        sent.push(payload[1..].to_vec());
    }
    assert_eq!(ts.len() % 188, 0);
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push(&ts, &mut ev);
    d.finish(&mut ev);
    let got: Vec<Vec<u8>> = ev
        .into_iter()
        .filter_map(|e| match e {
            TsEvent::Pes(p) => Some(p.data),
            TsEvent::CcError { .. } | TsEvent::BadPes { .. } => panic!("{e:?}"),
            _ => None,
        })
        .collect();
    assert_eq!(got, sent);
}

#[test]
fn timestamps_wrap_at_33_bits() {
    let mut m = TsMuxer::new(TsStreams {
        video: None,
        audio: Some(TsAudio::Mp3 { mpeg2: true }),
    });
    let mut ts = Vec::new();
    m.write_tables(&mut ts);
    // 2^33 / 90 ms is about 26.5 h: one frame just before and one just after the wrap.
    let wrap_ms = (1u64 << 33) / 90;
    m.write_audio(wrap_ms, &[0x2f, 1, 2, 3], &mut ts).unwrap();
    m.write_audio(wrap_ms + 10, &[0x2f, 1, 2, 3], &mut ts)
        .unwrap();
    m.write_audio(u64::MAX, &[0x2f, 1, 2, 3], &mut ts).unwrap();
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push(&ts, &mut ev);
    d.finish(&mut ev);
    assert_eq!(d.streams().get(&pid::AUDIO), Some(&0x04));
    let pts: Vec<u64> = ev
        .iter()
        .filter_map(|e| match e {
            TsEvent::Pes(p) => p.pts,
            _ => None,
        })
        .collect();
    assert_eq!(pts.len(), 3);
    assert_eq!(pts[0], (wrap_ms * 90) & ((1 << 33) - 1));
    assert_eq!(pts[1], (wrap_ms * 90 + 900) & ((1 << 33) - 1));
    assert!(pts[1] < pts[0]);
}

#[test]
fn continuity_continues_across_segments() {
    let mut m = TsMuxer::new(TsStreams {
        video: None,
        audio: Some(TsAudio::Mp3 { mpeg2: false }),
    });
    let mut all = Vec::new();
    for seg in 0..20u64 {
        let mut s = Vec::new();
        m.write_tables(&mut s);
        m.write_audio(seg * 100, &[0x2f; 300], &mut s).unwrap();
        all.extend_from_slice(&s);
    }
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push(&all, &mut ev);
    assert!(d.cc_errors().is_empty());
    // And a dropped packet is reported.
    let mut broken = all.clone();
    broken.drain(188 * 3..188 * 4);
    let mut d = TsDemuxer::new();
    d.push(&broken, &mut Vec::new());
    assert_eq!(d.cc_errors().values().sum::<u64>(), 1);
}

#[test]
fn nalu_length_that_looks_like_a_start_code() {
    // A 4-byte NALU length of 0x1A0 reads `00 00 01 a0`: still length-prefixed, not Annex B.
    let mut m = TsMuxer::new(TsStreams {
        video: Some(TsVideo::H264),
        audio: None,
    });
    let mut nal = vec![0x41];
    nal.extend((1..0x1a0).map(|i| (i % 200 + 1) as u8));
    let mut flv = vec![0x27, 1, 0, 0, 0];
    flv.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    flv.extend_from_slice(&nal);
    let mut ts = Vec::new();
    m.write_tables(&mut ts);
    m.write_video(40, &flv, &mut ts).unwrap();
    // Annex B input is still accepted.
    let mut annexb = vec![0x27, 1, 0, 0, 0, 0, 0, 0, 1];
    annexb.extend_from_slice(&nal);
    m.write_video(80, &annexb, &mut ts).unwrap();
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push(&ts, &mut ev);
    d.finish(&mut ev);
    let mut want = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1];
    want.extend_from_slice(&nal);
    let got: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            TsEvent::Pes(p) => Some(p.data.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![want.clone(), want]);
}

#[test]
fn muxer_refuses_bad_input() {
    let mut m = TsMuxer::new(TsStreams {
        video: Some(TsVideo::H264),
        audio: Some(TsAudio::Aac),
    });
    let mut out = Vec::new();
    // AAC raw before its sequence header.
    assert!(m.write_audio(0, &[0xaf, 0x01, 1, 2], &mut out).is_err());
    // MP3 into an AAC stream, HEVC into an H.264 stream, garbage.
    assert!(m.write_audio(0, &[0x2f, 1, 2], &mut out).is_err());
    assert!(m.write_video(0, &[0x1c, 1, 0, 0, 0], &mut out).is_err());
    assert!(m.write_video(0, &[0xff], &mut out).is_err());
    assert!(m.set_video_config(&[0x17, 0, 0, 0, 0, 1]).is_err());
    // A NALU length running past the end.
    assert!(m
        .write_video(0, &[0x27, 1, 0, 0, 0, 0, 0, 0, 9, 0x41], &mut out)
        .is_err());
    assert!(out.is_empty());
    let mut audio_only = TsMuxer::new(TsStreams {
        video: None,
        audio: Some(TsAudio::Aac),
    });
    assert!(audio_only
        .write_video(0, &[0x17, 1, 0, 0, 0], &mut out)
        .is_err());
}

#[test]
fn hevc_enhanced_keyframe() {
    let mut m = TsMuxer::new(TsStreams {
        video: Some(TsVideo::H265),
        audio: None,
    });
    let mut ts = Vec::new();
    m.write_tables(&mut ts);
    // Enhanced RTMP: keyframe, CodedFramesX (no composition time), 'hvc1', one IDR_W_RADL NALU.
    let nal = [0x26, 0x01, 0xaf, 0x12, 0x34];
    let mut flv = vec![0x80 | 0x10 | 3];
    flv.extend_from_slice(b"hvc1");
    flv.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    flv.extend_from_slice(&nal);
    m.write_video(1000, &flv, &mut ts).unwrap();
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push(&ts, &mut ev);
    d.finish(&mut ev);
    assert_eq!(d.streams().get(&pid::VIDEO), Some(&0x24));
    let pes = ev
        .iter()
        .find_map(|e| match e {
            TsEvent::Pes(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert!(pes.random_access);
    assert_eq!((pes.pts, pes.dts), (Some(90_000), None));
    let mut want = vec![0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 0, 1];
    want.extend_from_slice(&nal);
    assert_eq!(pes.data, want);
}
