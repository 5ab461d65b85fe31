//! Hostile input into the TS demuxer and muxer: random bytes, random packets aimed at the
//! PSI/PES paths, and mutated real output. Nothing may panic.

mod common;

use bytes::Bytes;
use common::{fixture, XorShift};
use media::flv::{read_flv, tag_type};
use media::ts::{TsAudio, TsDemuxer, TsMuxer, TsStreams, TsVideo};

const ROUNDS: usize = 20_000;

fn demux_all(data: &[u8], rng: &mut XorShift) {
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (1 + rng.below(400)).min(rest.len());
        d.push(&rest[..n], &mut ev);
        rest = &rest[n..];
        ev.clear();
    }
    d.finish(&mut ev);
    for pkt in data.chunks(188) {
        let _ = d.push_packet(pkt, &mut ev);
    }
}

#[test]
fn random_bytes() {
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for _ in 0..ROUNDS {
        let len = rng.below(2000);
        let data = rng.bytes(len);
        demux_all(&data, &mut rng);
    }
}

/// Packets with a sync byte and PIDs the demuxer cares about, so PAT/PMT/PES parsing is hit.
#[test]
fn random_packets() {
    let mut rng = XorShift(0xdead_beef_cafe_f00d);
    // A valid PAT (PMT on 0x1001) and PMT (0x100, 0x101) first, so PES PIDs are known.
    let mut head = Vec::new();
    TsMuxer::new(TsStreams {
        video: Some(TsVideo::H264),
        audio: Some(TsAudio::Aac),
    })
    .write_tables(&mut head);
    for _ in 0..ROUNDS / 4 {
        let mut data = head.clone();
        for _ in 0..rng.below(12) {
            let mut p = rng.bytes(188);
            p[0] = 0x47;
            let pid: u16 = [0, 0x1001, 0x100, 0x101, 0x1fff][rng.below(5)];
            p[1] = (p[1] & 0xe0) | (pid >> 8) as u8;
            p[2] = pid as u8;
            if rng.below(2) == 0 {
                // A plausible PES or section start.
                p[4..8].copy_from_slice(&[0, 0, 1, 0xe0]);
            }
            data.extend_from_slice(&p);
        }
        demux_all(&data, &mut rng);
    }
}

#[test]
fn mutated_real_output() {
    let (_, tags) = read_flv(Bytes::from(fixture("avc-aac-640x360-10s.flv"))).unwrap();
    let mut m = TsMuxer::new(TsStreams {
        video: Some(TsVideo::H264),
        audio: Some(TsAudio::Aac),
    });
    let mut ts = Vec::new();
    m.write_tables(&mut ts);
    for t in tags.iter().take(120) {
        let _ = match t.tag_type {
            tag_type::VIDEO => m.write_video(u64::from(t.timestamp), &t.data, &mut ts),
            tag_type::AUDIO => m.write_audio(u64::from(t.timestamp), &t.data, &mut ts),
            _ => Ok(()),
        };
    }
    let mut rng = XorShift(0x0bad_5eed_0bad_5eed);
    for _ in 0..300 {
        let mut data = ts.clone();
        for _ in 0..1 + rng.below(50) {
            let i = rng.below(data.len());
            data[i] = rng.next() as u8;
        }
        if rng.below(3) == 0 {
            let cut = rng.below(data.len());
            data.truncate(cut);
        }
        demux_all(&data, &mut rng);
    }
}

#[test]
fn muxer_on_random_payloads() {
    let mut rng = XorShift(0x5151_5151_abab_abab);
    let (_, tags) = read_flv(Bytes::from(fixture("avc-aac-640x360-10s.flv"))).unwrap();
    let real: Vec<&[u8]> = tags.iter().take(40).map(|t| &t.data[..]).collect();
    let streams = [
        TsStreams {
            video: Some(TsVideo::H264),
            audio: Some(TsAudio::Aac),
        },
        TsStreams {
            video: Some(TsVideo::H265),
            audio: Some(TsAudio::Mp3 { mpeg2: false }),
        },
        TsStreams::default(),
    ];
    for s in streams {
        let mut m = TsMuxer::new(s);
        let mut out = Vec::new();
        for _ in 0..ROUNDS {
            let mut p = if rng.below(2) == 0 {
                real[rng.below(real.len())].to_vec()
            } else {
                let len = rng.below(64);
                rng.bytes(len)
            };
            for _ in 0..rng.below(4) {
                if !p.is_empty() {
                    let i = rng.below(p.len());
                    p[i] = rng.next() as u8;
                }
            }
            let ts = rng.next();
            let _ = m.set_video_config(&p);
            let _ = m.set_audio_config(&p);
            let _ = m.write_video(ts, &p, &mut out);
            let _ = m.write_audio(ts, &p, &mut out);
            assert_eq!(out.len() % 188, 0);
            out.clear();
        }
    }
}
