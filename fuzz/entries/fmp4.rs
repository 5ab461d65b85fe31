//! fMP4: the reader on any bytes, and the muxer on FLV payloads cut from the input (its
//! output must always read back).
//!
//! The body of the `fmp4` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/fmp4/` and `fuzz/regressions/fmp4/` under plain `cargo test`.

use bytes::Bytes;
use media::fmp4::{read, Fmp4Audio, Fmp4Muxer, Fmp4Streams, Fmp4Video};

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let _ = read::parse_init(data);
    let _ = read::parse_fragments(data);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut m = Fmp4Muxer::new(Fmp4Streams {
        video: [None, Some(Fmp4Video::H264), Some(Fmp4Video::H265)][usize::from(mode % 3)],
        audio: [None, Some(Fmp4Audio::Aac), Some(Fmp4Audio::Mp3)][usize::from(mode / 3 % 3)],
    });
    // Records: [kind, dts lo, len, payload...].
    let mut pos = 0usize;
    let mut dts = 0u64;
    let mut out = Vec::new();
    while let Some(head) = rest.get(pos..pos + 3) {
        let len = usize::from(head[2]);
        let body = rest
            .get(pos + 3..(pos + 3 + len).min(rest.len()))
            .unwrap_or_default();
        pos += 3 + len;
        dts += u64::from(head[1]);
        let payload = Bytes::copy_from_slice(body);
        let _ = match head[0] % 4 {
            0 => m.write_video(dts, &payload),
            1 => m.write_audio(dts, &payload),
            2 => {
                out.clear();
                if m.take_fragment(&mut out).is_some() {
                    let frags = read::parse_fragments(&out).expect("own fragment reads back");
                    assert_eq!(frags.len(), 1);
                }
                Ok(())
            }
            _ => {
                m.finish();
                Ok(())
            }
        };
    }
    if let Some(init) = m.init_segment() {
        read::parse_init(&init).expect("own init segment reads back");
    }
}
