//! What a stream carries, as the API reports it (SRS's `video`/`audio` objects):
//! derived once from the sequence headers, never per frame.

use media::codec::{self, AudioCodec, VideoCodec, VideoPacketKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoCodecInfo {
    /// "H264" or "H265", as SRS names them.
    pub codec: &'static str,
    pub profile: String,
    pub level: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioCodecInfo {
    /// "AAC" or "MP3".
    pub codec: &'static str,
    pub sample_rate: u32,
    pub channels: u8,
    pub profile: String,
}

/// From a video sequence header payload (legacy or Enhanced RTMP).
pub fn video_info(payload: &[u8]) -> Option<VideoCodecInfo> {
    let h = codec::parse_video_header(payload)?;
    if h.kind != VideoPacketKind::SequenceHeader {
        return None;
    }
    let data = payload.get(h.data_offset?..)?;
    match h.info.codec {
        VideoCodec::Avc => {
            let cfg = media::avc::parse_avc_config(data).ok()?;
            let sps = cfg.sps.first().and_then(|s| media::avc::parse_sps(s).ok());
            Some(VideoCodecInfo {
                codec: "H264",
                profile: media::avc::profile_name(cfg.profile_idc).to_string(),
                level: media::avc::level_name(cfg.level_idc).to_string(),
                width: sps.map(|s| s.width).unwrap_or(0),
                height: sps.map(|s| s.height).unwrap_or(0),
            })
        }
        VideoCodec::Hevc => {
            let cfg = media::hevc::parse_hevc_config(data).ok()?;
            Some(VideoCodecInfo {
                codec: "H265",
                profile: media::hevc::hevc_profile_name(cfg.profile_idc).to_string(),
                // general_level_idc is 30 x the level number.
                level: format!("{:.1}", f64::from(cfg.level_idc) / 30.0),
                width: cfg.width,
                height: cfg.height,
            })
        }
        _ => None,
    }
}

/// From an AAC sequence header, or from any MP3 frame (MP3 has no sequence header).
pub fn audio_info(payload: &[u8]) -> Option<AudioCodecInfo> {
    let info = codec::parse_audio(payload)?;
    match info.codec {
        AudioCodec::Aac if info.sequence_header => {
            let asc = media::aac::parse_asc(payload.get(2..)?).ok()?;
            Some(AudioCodecInfo {
                codec: "AAC",
                sample_rate: asc.sample_rate,
                channels: asc.channels,
                profile: media::aac::aac_profile_name(asc.object_type).to_string(),
            })
        }
        AudioCodec::Mp3 => {
            let h = media::mp3::parse_mp3_header(payload.get(1..)?)?;
            Some(AudioCodecInfo {
                codec: "MP3",
                sample_rate: h.sample_rate,
                channels: h.channels,
                profile: String::new(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(name: &str) -> Vec<media::flv::FlvTag> {
        let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let data = std::fs::read(path).expect("fixture");
        media::flv::read_flv(bytes::Bytes::from(data))
            .expect("flv")
            .1
    }

    #[test]
    fn fixture_codecs() {
        let t = tags("avc-aac-640x360-10s.flv");
        let v = t
            .iter()
            .find_map(|t| video_info(&t.data))
            .expect("video info");
        assert_eq!(
            (v.codec, v.width, v.height, v.profile.as_str()),
            ("H264", 640, 360, "Main")
        );
        let a = t
            .iter()
            .find_map(|t| audio_info(&t.data))
            .expect("audio info");
        assert_eq!(
            (a.codec, a.sample_rate, a.channels, a.profile.as_str()),
            ("AAC", 44100, 2, "LC")
        );
        let m = tags("audio-only-mp3-10s.flv");
        let a = m
            .iter()
            .find_map(|t| {
                if t.tag_type == 8 {
                    audio_info(&t.data)
                } else {
                    None
                }
            })
            .expect("mp3");
        assert_eq!((a.codec, a.sample_rate, a.channels), ("MP3", 44100, 1));
    }
}
