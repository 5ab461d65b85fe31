//! FLV bodies (files, HTTP-FLV pulls) fed in pieces, and every codec parser run on the tags.
//!
//! The body of the `flv` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/flv/` and `fuzz/regressions/flv/` under plain `cargo test`.

use bytes::BytesMut;
use media::flv::{tag_type, FlvReader};
use media::{aac, audio_remux, avc, codec, hevc, mp3};

fn video(data: &[u8]) {
    let _ = codec::parse_video(data);
    let Some(h) = codec::parse_video_header(data) else {
        return;
    };
    let Some(body) = h.data_offset.and_then(|o| data.get(o..)) else {
        return;
    };
    // Also try every parser on the body, whatever the header claimed.
    if let Ok(cfg) = avc::parse_avc_config(body) {
        for sps in &cfg.sps {
            let _ = avc::parse_sps(sps);
        }
        let _ = avc::split_length_prefixed(body, cfg.nal_length_size);
    }
    if let Ok(cfg) = hevc::parse_hevc_config(body) {
        for sps in &cfg.sps {
            let _ = hevc::parse_hevc_sps(sps);
        }
    }
    let _ = avc::parse_sps(body);
    let _ = hevc::parse_hevc_sps(body);
    let _ = avc::detect_nalu_format(body);
    for n in [1, 2, 3, 4, 0, 5] {
        let _ = avc::split_length_prefixed(body, n);
    }
    for nal in avc::split_annexb(body) {
        let _ = media::nal_to_rbsp(nal);
    }
}

/// The audio-only remux (`http_remux` `.aac`/`.mp3`): what it says to write must lie
/// inside the payload.
fn remux(adts: &mut audio_remux::AdtsRemux, data: &[u8]) {
    for out in [adts.push(data), audio_remux::mp3_frame(data)] {
        if let audio_remux::AudioOut::Frame {
            header,
            data: range,
        } = out
        {
            assert!(range.start <= range.end && range.end <= data.len());
            assert!(header.as_slice().len() <= 7);
        }
    }
}

fn audio(data: &[u8]) {
    let _ = codec::parse_audio(data);
    let Some(h) = codec::parse_audio_header(data) else {
        return;
    };
    let Some(body) = h.data_offset.and_then(|o| data.get(o..)) else {
        return;
    };
    if let Ok(asc) = aac::parse_asc(body) {
        let _ = aac::adts_header(&asc, body.len());
    }
    let _ = aac::parse_adts(body);
    let _ = mp3::parse_mp3_header(body);
}

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step) + 1;
    let mut reader = FlvReader::new(64 * 1024);
    let mut buf = BytesMut::new();
    let mut adts = audio_remux::AdtsRemux::new();
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match reader.next_tag(&mut buf) {
                Ok(Some(tag)) => match tag.tag_type {
                    tag_type::VIDEO => video(&tag.data),
                    tag_type::AUDIO => {
                        audio(&tag.data);
                        remux(&mut adts, &tag.data);
                    }
                    _ => {
                        let _ = amf::decode_all(&tag.data);
                    }
                },
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = media::flv::read_flv(bytes::Bytes::copy_from_slice(data));
}
