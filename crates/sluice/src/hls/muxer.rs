//! The two segment formats behind one type: MPEG-TS (SRS's default) and fMP4
//! (`hls_use_fmp4`). The service asks the same questions of both; where they differ (a TS
//! segment is written frame by frame, an fMP4 one fragment by fragment after its samples are
//! complete) it matches on the variant.

use bytes::Bytes;
use media::fmp4::{Fmp4Audio, Fmp4Muxer, Fmp4Streams, Fmp4Video};
use media::ts::{TsAudio, TsMuxer, TsStreams, TsVideo};

pub enum Muxer {
    Ts(TsMuxer),
    Fmp4(Box<Fmp4Muxer>),
}

fn to_fmp4(s: TsStreams) -> Fmp4Streams {
    Fmp4Streams {
        video: s.video.map(|v| match v {
            TsVideo::H264 => Fmp4Video::H264,
            TsVideo::H265 => Fmp4Video::H265,
        }),
        audio: s.audio.map(|a| match a {
            TsAudio::Aac => Fmp4Audio::Aac,
            TsAudio::Mp3 { .. } => Fmp4Audio::Mp3,
        }),
    }
}

impl Muxer {
    pub fn new(fmp4: bool, streams: TsStreams) -> Muxer {
        if fmp4 {
            Muxer::Fmp4(Box::new(Fmp4Muxer::new(to_fmp4(streams))))
        } else {
            Muxer::Ts(TsMuxer::new(streams))
        }
    }

    /// The tracks, in the TS muxer's terms (which the probe and codec changes use).
    pub fn streams(&self, declared: TsStreams) -> TsStreams {
        match self {
            Muxer::Ts(m) => m.streams(),
            Muxer::Fmp4(_) => declared,
        }
    }

    /// Muxes a frame: TS bytes go to `out`; fMP4 keeps the sample until its fragment.
    pub fn write(
        &mut self,
        video: bool,
        ts: u64,
        payload: &Bytes,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        match (self, video) {
            (Muxer::Ts(m), true) => m.write_video(ts, payload, out).map_err(|e| e.to_string()),
            (Muxer::Ts(m), false) => m.write_audio(ts, payload, out).map_err(|e| e.to_string()),
            (Muxer::Fmp4(m), true) => m.write_video(ts, payload).map_err(|e| e.to_string()),
            (Muxer::Fmp4(m), false) => m.write_audio(ts, payload).map_err(|e| e.to_string()),
        }
    }

    pub fn is_fmp4(&self) -> bool {
        matches!(self, Muxer::Fmp4(_))
    }
}
