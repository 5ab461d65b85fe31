//! Every `mpegts` vector of tests/fixtures/vectors.json, against both the muxer (bytes) and the
//! demuxer (fields).

mod common;

use common::hex;
use media::ts::{
    crc32_mpeg2, parse_pat, parse_pmt, pid, Pcr, TsAudio, TsConfig, TsDemuxer, TsEvent, TsMuxer,
    TsStreams, TsVideo,
};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("vectors.json");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .find(|x| x["category"] == "mpegts" && x["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("vector {name}"))
}

fn input(v: &Value) -> Vec<u8> {
    hex(v["input_hex"].as_str().expect("input_hex"))
}

/// The vectors hold the first bytes of a packet; PSI packets are 0xFF-filled after them.
fn padded(mut b: Vec<u8>) -> Vec<u8> {
    b.resize(188, 0xff);
    b
}

/// ffmpeg's layout, which the vectors come from: PMT on 0x1000, PCR 700 ms behind the DTS.
fn ffmpeg_muxer() -> TsMuxer {
    TsMuxer::with_config(
        TsStreams {
            video: Some(TsVideo::H264),
            audio: Some(TsAudio::Aac),
        },
        TsConfig {
            pmt_pid: 0x1000,
            program_number: 1,
            pcr_lag_ms: 700,
        },
    )
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("number")
}

#[test]
fn crc32_mpeg2_cases() {
    let v = vector("crc32_mpeg2");
    assert_eq!(crc32_mpeg2(&input(&v)), 0x0376_e6e7);
    for case in v["expected"]["cases"].as_array().unwrap() {
        let want = u32::from_str_radix(case["crc"].as_str().unwrap().trim_start_matches("0x"), 16)
            .unwrap();
        assert_eq!(
            crc32_mpeg2(case["ascii"].as_str().unwrap().as_bytes()),
            want
        );
    }
}

#[test]
fn ts_pat_bytes_and_fields() {
    let v = vector("ts_pat");
    let pkt = padded(input(&v));
    let mut out = Vec::new();
    ffmpeg_muxer().write_tables(&mut out);
    assert_eq!(out.len(), 2 * 188);
    assert_eq!(&out[..188], &pkt[..]);

    let e = &v["expected"];
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push_packet(&pkt, &mut ev).unwrap();
    let TsEvent::Packet(info) = ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(u64::from(info.pid), u(&e["pid"]));
    assert_eq!(info.pusi, e["pusi"].as_bool().unwrap());
    assert_eq!(u64::from(info.cc), u(&e["cc"]));
    let TsEvent::Pat(pat) = &ev[1] else {
        panic!("{ev:?}")
    };
    let p = &e["pat"];
    assert_eq!(
        u64::from(pat.transport_stream_id),
        u(&p["transport_stream_id"])
    );
    assert_eq!(u64::from(pat.version), u(&p["version"]));
    assert_eq!(u64::from(pat.current_next), u(&p["current_next"]));
    assert_eq!(u64::from(pat.section_number), u(&p["section_number"]));
    assert_eq!(
        u64::from(pat.last_section_number),
        u(&p["last_section_number"])
    );
    let progs = p["programs"].as_array().unwrap();
    assert_eq!(pat.programs.len(), progs.len());
    assert_eq!(
        u64::from(pat.programs[0].program_number),
        u(&progs[0]["program_number"])
    );
    assert_eq!(u64::from(pat.programs[0].pmt_pid), u(&progs[0]["pmt_pid"]));
    assert!(e["crc_valid"].as_bool().unwrap());
}

#[test]
fn ts_pmt_bytes_and_fields() {
    let v = vector("ts_pmt_h264_aac");
    let pkt = padded(input(&v));
    let mut out = Vec::new();
    ffmpeg_muxer().write_tables(&mut out);
    assert_eq!(&out[188..376], &pkt[..]);

    let e = &v["expected"];
    let pmt = parse_pmt(&pkt[4..]).unwrap();
    let p = &e["pmt"];
    assert_eq!(u64::from(pmt.program_number), u(&p["program_number"]));
    assert_eq!(u64::from(pmt.version), u(&p["version"]));
    assert_eq!(u64::from(pmt.pcr_pid), u(&p["pcr_pid"]));
    assert_eq!(pmt.program_info.len() as u64, u(&p["program_info_length"]));
    let streams = p["streams"].as_array().unwrap();
    assert_eq!(pmt.streams.len(), streams.len());
    for (got, want) in pmt.streams.iter().zip(streams) {
        assert_eq!(u64::from(got.stream_type), u(&want["stream_type"]));
        assert_eq!(u64::from(got.elementary_pid), u(&want["elementary_pid"]));
        assert_eq!(got.es_info.len() as u64, u(&want["es_info_length"]));
    }
    // Through the demuxer, which must learn the PMT PID from the PAT first.
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push(&out, &mut ev);
    assert!(ev
        .iter()
        .any(|x| matches!(x, TsEvent::Pmt { pid: 0x1000, pmt: got } if *got == pmt)));
    assert_eq!(d.streams().get(&0x100), Some(&0x1b));
    assert_eq!(d.streams().get(&0x101), Some(&0x0f));
}

#[test]
fn crc_is_checked() {
    let mut pkt = padded(input(&vector("ts_pmt_h264_aac")));
    assert!(parse_pmt(&pkt[4..]).is_ok());
    pkt[12] ^= 0x01;
    assert!(parse_pmt(&pkt[4..]).is_err());
    let mut pat = padded(input(&vector("ts_pat")));
    pat[20] ^= 0x80;
    assert!(parse_pat(&pat[4..]).is_err());
}

#[test]
fn srs_default_pids() {
    let mut m = TsMuxer::new(TsStreams {
        video: Some(TsVideo::H264),
        audio: Some(TsAudio::Aac),
    });
    let mut out = Vec::new();
    m.write_tables(&mut out);
    let pat = parse_pat(&out[4..188]).unwrap();
    assert_eq!(pat.programs[0].pmt_pid, pid::PMT);
    assert_eq!(pid::PMT, 0x1001);
    assert_eq!(
        u16::from(out[189] & 0x1f) << 8 | u16::from(out[190]),
        0x1001
    );
}

#[test]
fn ts_video_pes_start_keyframe() {
    let v = vector("ts_video_pes_start_keyframe");
    let pkt = input(&v);
    assert_eq!(pkt.len(), 188);
    // The vector's ES: AUD, then an x264 SEI that runs past the packet. Feed an FLV keyframe
    // whose first NALU is that SEI (made longer), with SPS/PPS in band so none are inserted.
    let sei_start = 37 + 4;
    let mut sei = pkt[sei_start..].to_vec();
    sei.extend_from_slice(&[0x20; 64]);
    let sps = [0x67, 0x4d, 0x00, 0x1e];
    let pps = [0x68, 0xee, 0x3c, 0x80];
    let idr = [0x65, 0x88, 0x84, 0x00];
    let mut flv = vec![0x17, 0x01, 0x00, 0x00, 80];
    for nal in [&sei[..], &sps, &pps, &idr] {
        flv.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        flv.extend_from_slice(nal);
    }
    let mut m = ffmpeg_muxer();
    let mut tables = Vec::new();
    m.write_tables(&mut tables);
    let mut out = Vec::new();
    m.write_video(1400, &flv, &mut out).unwrap();
    assert_eq!(out.len() % 188, 0);
    assert_eq!(&out[..188], &pkt[..], "first video packet differs");

    let e = &v["expected"];
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push(&tables, &mut ev);
    ev.clear();
    d.push(&pkt, &mut ev);
    d.finish(&mut ev);
    let TsEvent::Packet(info) = ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(u64::from(info.pid), u(&e["pid"]));
    assert_eq!(info.pusi, e["pusi"].as_bool().unwrap());
    assert_eq!(u64::from(info.afc), u(&e["afc"]));
    assert_eq!(u64::from(info.cc), u(&e["cc"]));
    assert_eq!(info.random_access, e["random_access"].as_bool().unwrap());
    assert_eq!(
        info.pcr,
        Some(Pcr {
            base: u(&e["pcr_base"]),
            ext: u(&e["pcr_ext"]) as u16
        })
    );
    let pes = ev
        .iter()
        .find_map(|x| match x {
            TsEvent::Pes(p) => Some(p),
            _ => None,
        })
        .expect("pes");
    let p = &e["pes"];
    assert_eq!(u64::from(pes.stream_id), u(&p["stream_id"]));
    assert_eq!(u64::from(pes.pes_packet_length), u(&p["pes_packet_length"]));
    assert_eq!(pes.pts, Some(u(&p["pts"])));
    assert_eq!(pes.dts, Some(u(&p["dts"])));
    assert_eq!(u(&p["pts_dts_flags"]), 3);
    assert!(e["es_starts_with_aud"].as_bool().unwrap());
    assert!(pes.data.starts_with(&[0, 0, 0, 1, 0x09, 0xf0]));
}
