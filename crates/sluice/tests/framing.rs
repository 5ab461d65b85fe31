//! The delivery path's framing (`sluice::delivery::framing`) judged by real readers:
//! a fixture's frames framed as an HTTP-FLV body (plain and HTTP/1.1 chunked, then
//! de-chunked) are read by ffprobe exactly as the fixture itself is, and framed as
//! RTMP chunks at several chunk sizes they decode back (rtmp crate's decoder) to the
//! fixture's tags, timestamps and bytes.

mod common;

use std::fs;

use bytes::{Bytes, BytesMut};
use common::*;
use media::flv::FlvHeader;
use rtmp::chunk::{ChunkDecoder, DecoderLimits};
use rtmp::server::MediaKind;
use sluice::config::TimeJitter;
use sluice::delivery::framing::{Batch, Framer, Framing, Notices};
use sluice::hub::{make_frame, Frame, ItemRef};

fn fixture_frames(name: &str) -> Vec<Frame> {
    let data = fs::read(fixture(name)).expect("read fixture");
    let (_, tags) = media::flv::read_flv(Bytes::from(data)).expect("fixture parses");
    tags.into_iter()
        .filter_map(|t| {
            let kind = match t.tag_type {
                FLV_AUDIO => MediaKind::Audio,
                FLV_VIDEO => MediaKind::Video,
                _ => MediaKind::Metadata,
            };
            make_frame(kind, u64::from(t.timestamp), t.data)
        })
        .collect()
}

/// Frames every frame, batch after batch as a shard would, and returns the wire.
fn frame_all(framer: &mut Framer, frames: &[Frame]) -> Vec<u8> {
    let items: Vec<ItemRef<'_>> = frames.iter().map(ItemRef::Frame).collect();
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let mut batch = Batch::new(&mut scratch);
        framer.begin(&mut batch);
        while i < items.len() && framer.push(items[i], &mut batch) {
            i += 1;
        }
        if framer.finish(&mut batch) {
            out.extend_from_slice(&batch.to_vec());
        }
    }
    out
}

fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).expect("hex"), 16)
            .expect("chunk size");
        rest = &rest[eol + 2..];
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n", "chunk closed by CRLF");
        rest = &rest[size + 2..];
    }
    body
}

#[test]
fn flv_framing_is_read_by_ffprobe_as_the_fixture() {
    require_ffmpeg();
    let dir = unique_dir("framing-flv");
    for name in [AVC_AAC, "audio-only-mp3-10s.flv", "video-only-avc-10s.flv"] {
        let frames = fixture_frames(name);
        for chunked in [false, true] {
            let mut framer = Framer::new(Framing::Flv { chunked }, TimeJitter::Off);
            let wire = frame_all(&mut framer, &frames);
            let tags = if chunked { dechunk(&wire) } else { wire };
            let header = FlvHeader {
                has_audio: frames.iter().any(|f| f.is_audio()),
                has_video: frames.iter().any(|f| f.is_video()),
            };
            let mut file = header.encode().to_vec();
            file.extend_from_slice(&tags);
            let path = dir.join(format!("{name}-{chunked}.flv"));
            fs::write(&path, &file).expect("write");
            let label = format!("{name} chunked={chunked}");
            assert_probe_matches(&label, &path, name);
            // Every frame, not 90 % of them: nothing is dropped by the framing.
            let got = ffprobe(&path);
            let want = ffprobe(&fixture(name));
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.frames, w.frames, "{label}: {g:?} vs {w:?}");
            }
        }
    }
}

#[test]
fn rtmp_framing_decodes_back_to_the_fixture_at_every_chunk_size() {
    let frames = fixture_frames(AVC_AAC);
    for chunk_size in [128u32, 1000, 4096, 60_000] {
        let notices = Notices {
            publish: Bytes::new(),
            unpublish: Bytes::new(),
        };
        let mut framer = Framer::new(Framing::rtmp(1, chunk_size, notices), TimeJitter::Off);
        let wire = frame_all(&mut framer, &frames);
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        decoder.set_chunk_size(chunk_size).expect("chunk size");
        let mut buf = BytesMut::from(&wire[..]);
        let mut n = 0;
        while let Some(m) = decoder.decode(&mut buf).expect("decodes") {
            let f = &frames[n];
            assert_eq!(m.header.type_id, f.kind.type_id(), "message {n}");
            assert_eq!(u64::from(m.header.timestamp), f.timestamp, "message {n}");
            assert_eq!(
                m.payload, f.payload,
                "message {n} at chunk size {chunk_size}"
            );
            n += 1;
        }
        assert!(buf.is_empty());
        assert_eq!(n, frames.len(), "chunk size {chunk_size}");
    }
}
