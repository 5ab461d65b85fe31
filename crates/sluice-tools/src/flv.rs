//! `sluice-tools flv`: the header, onMetaData, codec sequence headers and tags of an FLV file.

use std::fmt::Write as _;
use std::path::Path;

use amf::Amf0Value;
use bytes::BytesMut;
use media::codec::{
    parse_audio_header, parse_video_header, AudioCodec, VideoCodec, VideoPacketKind,
};
use media::flv::{tag_type, FlvReader, MAX_TAG_DATA_SIZE};

/// Per-type counts (`frames` leaves out sequence headers, which ffprobe turns into extradata
/// rather than packets).
#[derive(Default)]
struct Counts {
    tags: u64,
    frames: u64,
    bytes: u64,
    first_ts: Option<u32>,
    last_ts: u32,
}

impl Counts {
    fn add(&mut self, ts: u32, size: usize, frame: bool) {
        self.tags += 1;
        self.bytes += size as u64;
        if frame {
            self.frames += 1;
            self.first_ts.get_or_insert(ts);
            self.last_ts = ts;
        }
    }
}

fn video_codec_name(c: VideoCodec) -> String {
    match c {
        VideoCodec::Avc => "h264".into(),
        VideoCodec::Hevc => "hevc".into(),
        VideoCodec::Av1 => "av1".into(),
        VideoCodec::Vp9 => "vp9".into(),
        VideoCodec::Other(id) => format!("codec_id_{id}"),
    }
}

fn audio_codec_name(c: AudioCodec) -> String {
    match c {
        AudioCodec::Aac => "aac".into(),
        AudioCodec::Mp3 => "mp3".into(),
        AudioCodec::Opus => "opus".into(),
        AudioCodec::Other(id) => format!("sound_format_{id}"),
    }
}

/// One-line rendering of an AMF value; nested objects stay on the line.
fn amf_text(v: &Amf0Value) -> String {
    match v {
        Amf0Value::Number(n) => format!("{n}"),
        Amf0Value::Boolean(b) => b.to_string(),
        Amf0Value::String(s) | Amf0Value::LongString(s) => format!("{s:?}"),
        Amf0Value::Null => "null".into(),
        Amf0Value::Undefined => "undefined".into(),
        Amf0Value::Date { millis, .. } => format!("date({millis})"),
        Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => {
            let inner: Vec<String> = p
                .iter()
                .map(|(k, v)| format!("{k}: {}", amf_text(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Amf0Value::StrictArray(a) => {
            let inner: Vec<String> = a.iter().map(amf_text).collect();
            format!("[{}]", inner.join(", "))
        }
    }
}

/// What a video sequence header says: codec, profile, level, resolution.
fn describe_video_config(codec: VideoCodec, config: &[u8]) -> String {
    match codec {
        VideoCodec::Avc => match media::avc::parse_avc_config(config) {
            Ok(c) => {
                let size = c
                    .sps
                    .first()
                    .and_then(|sps| media::avc::parse_sps(sps).ok())
                    .map_or_else(
                        || "?x?".to_string(),
                        |s| format!("{}x{}", s.width, s.height),
                    );
                format!(
                    "codec=h264 profile={} level={} resolution={size} sps={} pps={}",
                    media::avc::profile_name(c.profile_idc),
                    media::avc::level_name(c.level_idc),
                    c.sps.len(),
                    c.pps.len()
                )
            }
            Err(e) => format!("codec=h264 unparsable avcC: {e}"),
        },
        VideoCodec::Hevc => match media::hevc::parse_hevc_config(config) {
            Ok(c) => format!(
                "codec=hevc profile={} level={} resolution={}x{}",
                media::hevc::hevc_profile_name(c.profile_idc),
                c.level_idc,
                c.width,
                c.height
            ),
            Err(e) => format!("codec=hevc unparsable hvcC: {e}"),
        },
        other => format!(
            "codec={} ({} config bytes)",
            video_codec_name(other),
            config.len()
        ),
    }
}

/// What an audio sequence header (AAC) or first frame (MP3) says.
fn describe_audio(codec: AudioCodec, data: &[u8]) -> Option<String> {
    match codec {
        AudioCodec::Aac => Some(match media::aac::parse_asc(data) {
            Ok(a) => format!(
                "codec=aac object_type={} sample_rate={} channels={}",
                a.object_type, a.sample_rate, a.channels
            ),
            Err(e) => format!("codec=aac unparsable AudioSpecificConfig: {e}"),
        }),
        AudioCodec::Mp3 => media::mp3::parse_mp3_header(data).map(|h| {
            format!(
                "codec=mp3 sample_rate={} channels={} bitrate_kbps={}",
                h.sample_rate, h.channels, h.bitrate_kbps
            )
        }),
        _ => None,
    }
}

pub fn run(path: &Path, print_tags: bool) -> Result<bool, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = BytesMut::from(&data[..]);
    let mut reader = FlvReader::new(MAX_TAG_DATA_SIZE);
    let mut out = String::new();
    let mut tags_out = String::new();
    let (mut audio, mut video, mut script) =
        (Counts::default(), Counts::default(), Counts::default());
    let mut keyframes = 0u64;
    let mut ok = true;
    let mut index = 0u64;
    let mut mp3_described = false;
    loop {
        let offset = data.len() - buf.len();
        let tag = match reader.next_tag(&mut buf) {
            Ok(Some(tag)) => tag,
            Ok(None) => {
                if !buf.is_empty() {
                    let _ = writeln!(
                        out,
                        "problem {} trailing bytes at offset {offset}: truncated tag or header",
                        buf.len()
                    );
                    ok = false;
                }
                break;
            }
            Err(e) => {
                let _ = writeln!(out, "problem at offset {offset}: {e}");
                ok = false;
                break;
            }
        };
        let size = tag.data.len();
        let detail;
        match tag.tag_type {
            tag_type::VIDEO => match parse_video_header(&tag.data) {
                Some(h) => {
                    let seq = h.kind == VideoPacketKind::SequenceHeader;
                    let frame = h.kind == VideoPacketKind::Frames;
                    video.add(tag.timestamp, size, frame);
                    if frame && h.info.keyframe {
                        keyframes += 1;
                    }
                    detail = format!(
                        "codec={} kind={:?} keyframe={} cts={}",
                        video_codec_name(h.info.codec),
                        h.kind,
                        u8::from(h.info.keyframe),
                        h.info.composition_time
                    );
                    if seq {
                        let config = h
                            .data_offset
                            .and_then(|o| tag.data.get(o..))
                            .unwrap_or_default();
                        let _ = writeln!(
                            out,
                            "video_sequence_header ts={} {}",
                            tag.timestamp,
                            describe_video_config(h.info.codec, config)
                        );
                    }
                }
                None => {
                    video.add(tag.timestamp, size, false);
                    detail = "unparsable video header".into();
                }
            },
            tag_type::AUDIO => match parse_audio_header(&tag.data) {
                Some(h) => {
                    let seq = h.info.sequence_header;
                    audio.add(tag.timestamp, size, !seq);
                    detail = format!(
                        "codec={} sequence_header={}",
                        audio_codec_name(h.info.codec),
                        u8::from(seq)
                    );
                    let payload = h
                        .data_offset
                        .and_then(|o| tag.data.get(o..))
                        .unwrap_or_default();
                    // AAC describes itself in its sequence header; MP3 has none, so its first
                    // frame header stands in.
                    let describe = seq || (h.info.codec == AudioCodec::Mp3 && !mp3_described);
                    if describe {
                        if let Some(d) = describe_audio(h.info.codec, payload) {
                            mp3_described = true;
                            let _ = writeln!(out, "audio_sequence_header ts={} {d}", tag.timestamp);
                        }
                    }
                }
                None => {
                    audio.add(tag.timestamp, size, false);
                    detail = "unparsable audio header".into();
                }
            },
            _ => {
                script.add(tag.timestamp, size, false);
                match amf::decode_all(&tag.data) {
                    Ok(values) => {
                        let name = values
                            .iter()
                            .filter_map(Amf0Value::as_str)
                            .find(|s| *s != "@setDataFrame")
                            .unwrap_or("?")
                            .to_string();
                        detail = format!("name={name}");
                        if let Some(obj) = values.iter().find(|v| v.properties().is_some()) {
                            let _ = writeln!(out, "script ts={} name={name}", tag.timestamp);
                            for (k, v) in obj.properties().unwrap_or_default() {
                                let _ = writeln!(out, "  {k} = {}", amf_text(v));
                            }
                        }
                    }
                    Err(e) => {
                        detail = format!("undecodable AMF: {e}");
                        let _ = writeln!(out, "problem script tag at offset {offset}: {e}");
                    }
                }
            }
        }
        if print_tags {
            let type_name = match tag.tag_type {
                tag_type::AUDIO => "audio",
                tag_type::VIDEO => "video",
                _ => "script",
            };
            let _ = writeln!(
                tags_out,
                "tag index={index} offset={offset} type={type_name} ts={} size={size} {detail}",
                tag.timestamp
            );
        }
        index += 1;
    }
    let header = reader.header();
    let mut head = String::new();
    match header {
        Some(h) => {
            let _ = writeln!(
                head,
                "header has_audio={} has_video={}",
                u8::from(h.has_audio),
                u8::from(h.has_video)
            );
        }
        None => {
            head.push_str("header none\n");
            ok = false;
        }
    }
    let span = |c: &Counts| {
        c.first_ts.map_or_else(
            || "-".to_string(),
            |f| format!("{:.3}", f64::from(c.last_ts.saturating_sub(f)) / 1000.0),
        )
    };
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "summary video tags={} frames={} keyframes={keyframes} bytes={} duration={}",
        video.tags,
        video.frames,
        video.bytes,
        span(&video)
    );
    let _ = writeln!(
        summary,
        "summary audio tags={} frames={} bytes={} duration={}",
        audio.tags,
        audio.frames,
        audio.bytes,
        span(&audio)
    );
    let _ = writeln!(summary, "summary script tags={}", script.tags);
    say!("{}", format!("{tags_out}{head}{out}{summary}").trim_end());
    Ok(ok)
}
