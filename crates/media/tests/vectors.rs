//! Every `flv`, `codec_avc` and `codec_aac` vector of tests/fixtures/vectors.json.

mod common;

use bytes::{Bytes, BytesMut};
use common::{hex, to_hex};
use media::aac::{encode_asc, parse_adts, parse_asc};
use media::avc::{
    detect_nalu_format, parse_avc_config, parse_sps, split_annexb, split_length_prefixed,
    NaluFormat,
};
use media::codec::{parse_audio, parse_video, parse_video_header, AudioCodec, VideoCodec};
use media::flv::{self, FlvHeader, FlvReader};
use serde_json::Value;

fn vectors(category: &str) -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("vectors.json");
    let v: Value = serde_json::from_str(&text).expect("json");
    let out: Vec<Value> = v["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .filter(|x| x["category"] == category)
        .cloned()
        .collect();
    assert!(!out.is_empty(), "no vectors for {category}");
    out
}

fn by_name(category: &str, name: &str) -> Value {
    vectors(category)
        .into_iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("vector {name}"))
}

fn input(v: &Value) -> Vec<u8> {
    hex(v["input_hex"].as_str().expect("input_hex"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("number")
}

#[test]
fn every_vector_is_covered() {
    let known = [
        "flv_file_header",
        "flv_audio_tag",
        "flv_video_tag",
        "avc_sequence_header_768x320",
        "avc_nalu_frame_avcc",
        "avc_nalu_frame_annexb_in_flv",
        "avc_sequence_header_malformed_set",
        "avc_emulation_prevention_removal",
        "aac_sequence_header_44100",
        "aac_sequence_header_22050",
        "aac_sequence_header_invalid_object_type",
        "aac_asc_encode",
        "aac_adts_headers",
    ];
    for cat in ["flv", "codec_avc", "codec_aac"] {
        for v in vectors(cat) {
            let name = v["name"].as_str().unwrap_or_default();
            assert!(known.contains(&name), "vector {name} has no test");
        }
    }
}

#[test]
fn flv_file_header() {
    let v = by_name("flv", "flv_file_header");
    let bytes = input(&v);
    let e = &v["expected"];
    let (h, n) = FlvHeader::parse(&bytes).unwrap();
    assert_eq!(h.has_audio, e["has_audio"].as_bool().unwrap());
    assert_eq!(h.has_video, e["has_video"].as_bool().unwrap());
    assert_eq!(n as u64, u(&e["total"]));
    assert_eq!(&bytes[..3], e["signature"].as_str().unwrap().as_bytes());
    assert_eq!(u64::from(bytes[3]), u(&e["version"]));
    assert_eq!(h.encode().to_vec(), bytes);
}

fn check_tag_vector(name: &str, tag_type: u8) {
    let v = by_name("flv", name);
    let bytes = input(&v);
    let e = &v["expected"];
    assert_eq!(u64::from(tag_type), u(&e["tag_type"]));
    let size = u(&e["data_size"]) as usize;
    let ts = u(&e["timestamp"]) as u32;
    let data = &bytes[11..11 + size];
    if let Some(d) = e["data_hex"].as_str() {
        assert_eq!(to_hex(data), d);
    }
    // Encoding side.
    assert_eq!(
        flv::tag_header(tag_type, size as u32, ts).to_vec(),
        bytes[..11]
    );
    assert_eq!(
        flv::previous_tag_size(size as u32),
        (u(&e["previous_tag_size"]) as u32).to_be_bytes()
    );
    let mut out = Vec::new();
    flv::write_tag(&mut out, tag_type, ts, data);
    assert_eq!(out, bytes);
    // Decoding side: behind a file header.
    let mut file = FlvHeader {
        has_audio: true,
        has_video: true,
    }
    .encode()
    .to_vec();
    file.extend_from_slice(&bytes);
    let mut r = FlvReader::new(1 << 20);
    let mut buf = BytesMut::from(&file[..]);
    let tag = r.next_tag(&mut buf).unwrap().unwrap();
    assert_eq!(tag.tag_type, tag_type);
    assert_eq!(tag.timestamp, ts);
    assert_eq!(&tag.data[..], data);
    assert!(buf.is_empty());
    let (_, tags) = flv::read_flv(Bytes::from(file)).unwrap();
    assert_eq!(tags, vec![tag]);
}

#[test]
fn flv_audio_tag() {
    check_tag_vector("flv_audio_tag", flv::tag_type::AUDIO);
}

#[test]
fn flv_video_tag() {
    check_tag_vector("flv_video_tag", flv::tag_type::VIDEO);
}

#[test]
fn avc_sequence_header_768x320() {
    let v = by_name("codec_avc", "avc_sequence_header_768x320");
    let bytes = input(&v);
    let e = &v["expected"];
    let info = parse_video(&bytes).unwrap();
    assert_eq!(info.codec, VideoCodec::Avc);
    assert_eq!(u(&e["frame_type"]), 1);
    assert!(info.keyframe);
    assert_eq!(u(&e["avc_packet_type"]), 0);
    assert!(info.sequence_header);
    assert_eq!(
        i64::from(info.composition_time),
        e["composition_time"].as_i64().unwrap()
    );
    let off = parse_video_header(&bytes).unwrap().data_offset.unwrap();
    assert_eq!(off, 5);
    let cfg = parse_avc_config(&bytes[off..]).unwrap();
    let avcc = &e["avcc"];
    assert_eq!(
        u64::from(cfg.profile_idc),
        u(&avcc["avc_profile_indication"])
    );
    assert_eq!(u64::from(cfg.level_idc), u(&avcc["avc_level_indication"]));
    assert_eq!(u64::from(cfg.nal_length_size), u(&avcc["nalu_length_size"]));
    let sps: Vec<String> = cfg.sps.iter().map(|s| to_hex(s)).collect();
    let pps: Vec<String> = cfg.pps.iter().map(|s| to_hex(s)).collect();
    let want = |k: &str| -> Vec<String> {
        avcc[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(sps, want("sps"));
    assert_eq!(pps, want("pps"));
    let s = parse_sps(&cfg.sps[0]).unwrap();
    assert_eq!(u64::from(s.profile_idc), u(&e["sps_profile_idc"]));
    assert_eq!(u64::from(s.level_idc), u(&e["sps_level_idc"]));
    assert_eq!(u64::from(s.width), u(&e["width"]));
    assert_eq!(u64::from(s.height), u(&e["height"]));
    assert_eq!(media::avc::profile_name(s.profile_idc), "High");
    assert_eq!(media::avc::level_name(s.level_idc), "3.2");
}

#[test]
fn avc_nalu_frame_avcc() {
    let v = by_name("codec_avc", "avc_nalu_frame_avcc");
    let bytes = input(&v);
    let e = &v["expected"];
    let h = parse_video_header(&bytes).unwrap();
    assert!(!h.info.keyframe && !h.info.sequence_header);
    assert_eq!(u(&e["frame_type"]), 2);
    assert_eq!(h.info.codec, VideoCodec::Avc);
    assert_eq!(
        i64::from(h.info.composition_time),
        e["composition_time"].as_i64().unwrap()
    );
    let body = &bytes[h.data_offset.unwrap()..];
    assert_eq!(detect_nalu_format(body), NaluFormat::LengthPrefixed);
    let nalus = split_length_prefixed(body, 4).unwrap();
    assert_eq!(nalus.len() as u64, u(&e["nalus"]));
    assert_eq!(nalus[0].len() as u64, u(&e["first_nalu_length"]));
}

#[test]
fn avc_nalu_frame_annexb_in_flv() {
    let v = by_name("codec_avc", "avc_nalu_frame_annexb_in_flv");
    let bytes = input(&v);
    let e = &v["expected"];
    let h = parse_video_header(&bytes).unwrap();
    assert!(!h.info.keyframe && !h.info.sequence_header);
    assert_eq!(u(&e["avc_packet_type"]), 1);
    let body = &bytes[h.data_offset.unwrap()..];
    assert_eq!(detect_nalu_format(body), NaluFormat::AnnexB);
    assert_eq!(e["payload_format"], "annexb");
    let nalus = split_annexb(body);
    assert_eq!(nalus.len() as u64, u(&e["nalus"]));
    assert_eq!(nalus[0].len(), 53);
}

#[test]
fn avc_sequence_header_malformed_set() {
    let v = by_name("codec_avc", "avc_sequence_header_malformed_set");
    let cases = v["expected"]["cases"].as_array().unwrap();
    let mut concat = String::new();
    for c in cases {
        let h = c["hex"].as_str().unwrap();
        concat.push_str(h);
        let bytes = hex(h);
        let info = parse_video(&bytes).unwrap();
        assert!(info.sequence_header);
        let ok = parse_avc_config(&bytes[5..]).is_ok();
        assert_eq!(ok, c["ok"].as_bool().unwrap(), "case {h}");
    }
    assert_eq!(concat, v["input_hex"].as_str().unwrap());
}

#[test]
fn avc_emulation_prevention_removal() {
    let v = by_name("codec_avc", "avc_emulation_prevention_removal");
    let out = media::nal_to_rbsp(&input(&v));
    assert_eq!(to_hex(&out), v["expected"]["rbsp_hex"].as_str().unwrap());
}

fn check_aac_sequence_header(name: &str) {
    let v = by_name("codec_aac", name);
    let bytes = input(&v);
    let e = &v["expected"];
    assert_eq!(u64::from(bytes[0] >> 4), u(&e["sound_format"]));
    let a = parse_audio(&bytes).unwrap();
    assert_eq!(a.codec, AudioCodec::Aac);
    assert_eq!(u64::from(a.sound_rate), u(&e["sound_rate"]));
    assert_eq!(u64::from(a.sound_size), u(&e["sound_size"]));
    assert_eq!(u64::from(a.stereo), u(&e["sound_type"]));
    assert_eq!(u(&e["aac_packet_type"]), 0);
    assert!(a.sequence_header);
    let asc = parse_asc(&bytes[2..]).unwrap();
    assert_eq!(u64::from(asc.object_type), u(&e["audio_object_type"]));
    assert_eq!(
        u64::from(asc.sample_rate_index),
        u(&e["sampling_frequency_index"])
    );
    assert_eq!(u64::from(asc.sample_rate), u(&e["sampling_frequency"]));
    assert_eq!(u64::from(asc.channels), u(&e["channel_configuration"]));
}

#[test]
fn aac_sequence_header_44100() {
    check_aac_sequence_header("aac_sequence_header_44100");
}

#[test]
fn aac_sequence_header_22050() {
    check_aac_sequence_header("aac_sequence_header_22050");
}

#[test]
fn aac_sequence_header_invalid_object_type() {
    let v = by_name("codec_aac", "aac_sequence_header_invalid_object_type");
    assert!(v["expected"]["error"].as_bool().unwrap());
    let bytes = input(&v);
    assert!(parse_audio(&bytes).unwrap().sequence_header);
    assert!(parse_asc(&bytes[2..]).is_err());
    let also = hex(v["expected"]["also_error"].as_str().unwrap());
    assert!(parse_asc(&also[2..]).is_err());
}

#[test]
fn aac_asc_encode() {
    let v = by_name("codec_aac", "aac_asc_encode");
    let mut concat = String::new();
    for c in v["expected"]["cases"].as_array().unwrap() {
        let (ot, sfi, ch) = (
            u(&c["object_type"]) as u8,
            u(&c["sfi"]) as u8,
            u(&c["channels"]) as u8,
        );
        let enc = encode_asc(ot, sfi, ch);
        assert_eq!(to_hex(&enc), c["asc_hex"].as_str().unwrap());
        concat.push_str(&to_hex(&enc));
        let back = parse_asc(&enc).unwrap();
        assert_eq!(
            (back.object_type, back.sample_rate_index, back.channels),
            (ot, sfi, ch)
        );
    }
    assert_eq!(concat, v["input_hex"].as_str().unwrap());
}

#[test]
fn aac_adts_headers() {
    let v = by_name("codec_aac", "aac_adts_headers");
    for c in v["expected"]["cases"].as_array().unwrap() {
        let h = c["hex"].as_str().unwrap();
        let r = parse_adts(&hex(h));
        if !c["ok"].as_bool().unwrap() {
            assert!(r.is_err(), "case {h} should fail");
            continue;
        }
        let a = r.unwrap_or_else(|e| panic!("case {h}: {e}"));
        let check = |k: &str, got: u64| {
            if let Some(want) = c.get(k) {
                assert_eq!(got, u(want), "case {h} field {k}");
            }
        };
        check("protection_absent", u64::from(a.protection_absent));
        check("audio_object_type", u64::from(a.object_type));
        check("sampling_frequency_index", u64::from(a.sample_rate_index));
        check("channel_configuration", u64::from(a.channels));
        check("frame_length", a.frame_length as u64);
        check("raw_length", a.raw_length() as u64);
        check("header_length", a.header_length as u64);
    }
}
