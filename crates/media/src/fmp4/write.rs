//! The two kinds of fMP4 file HLS (RFC 8216 §3.3) and DASH need: the init segment (`ftyp` +
//! `moov` with empty sample tables and `mvex`), and media fragments (`moof` + `mdat`).

use bytes::Bytes;

use super::boxes::{begin, begin_full, end, matrix, u16, u32, u64, zeros};

/// `trun` sample flags (ISO 14496-12 §8.8.3.1): a sync sample depends on nothing.
pub const FLAGS_SYNC: u32 = 0x0200_0000;
/// A non-sync sample: depends on others (`sample_depends_on` 1) and `is_non_sync_sample`.
pub const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// A track's codec and the configuration its sample entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackCodec {
    /// `avc1` with the AVCDecoderConfigurationRecord (`avcC`) as the publisher sent it.
    H264 {
        record: Bytes,
        width: u16,
        height: u16,
    },
    /// `hvc1` with the HEVCDecoderConfigurationRecord (`hvcC`).
    H265 {
        record: Bytes,
        width: u16,
        height: u16,
    },
    /// `mp4a` with an `esds` holding the AudioSpecificConfig (object type 0x40).
    Aac {
        asc: Bytes,
        sample_rate: u32,
        channels: u8,
    },
    /// `mp4a` with object type 0x6B (MPEG-1 audio) or 0x69 (MPEG-2 low rates), no config.
    Mp3 {
        sample_rate: u32,
        channels: u8,
        mpeg2: bool,
    },
}

impl TrackCodec {
    pub fn is_video(&self) -> bool {
        matches!(self, TrackCodec::H264 { .. } | TrackCodec::H265 { .. })
    }

    /// The RFC 6381 `CODECS` string of the track, as a playlist or MPD names it.
    pub fn rfc6381(&self) -> String {
        match self {
            TrackCodec::H264 { record, .. } => match record.get(1..4) {
                Some(p) => format!("avc1.{:02x}{:02x}{:02x}", p[0], p[1], p[2]),
                None => "avc1".to_string(),
            },
            TrackCodec::H265 { record, .. } => hevc_codecs(record),
            TrackCodec::Aac { asc, .. } => {
                let aot = asc.first().map_or(2, |b| b >> 3);
                format!("mp4a.40.{aot}")
            }
            TrackCodec::Mp3 { mpeg2: false, .. } => "mp4a.6B".to_string(),
            TrackCodec::Mp3 { mpeg2: true, .. } => "mp4a.69".to_string(),
        }
    }
}

/// `hvc1.<profile>.<compat, reversed bits>.<tier><level>.<constraints>` (ISO 14496-15 E.3).
fn hevc_codecs(record: &[u8]) -> String {
    let Some(h) = record.get(1..13) else {
        return "hvc1".to_string();
    };
    let space = match h[0] >> 6 {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let profile = h[0] & 0x1f;
    let tier = if h[0] & 0x20 != 0 { 'H' } else { 'L' };
    let compat = u32::from_be_bytes([h[1], h[2], h[3], h[4]]).reverse_bits();
    let level = h[11];
    let mut cons: Vec<u8> = h[5..11].to_vec();
    while cons.last() == Some(&0) {
        cons.pop();
    }
    let mut s = format!("hvc1.{space}{profile}.{compat:x}.{tier}{level}");
    for b in cons {
        s.push_str(&format!(".{b:X}"));
    }
    s
}

/// One track of the init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// 1-based, unique in the file.
    pub id: u32,
    /// Ticks per second of the track's timestamps.
    pub timescale: u32,
    pub codec: TrackCodec,
}

/// The init segment: `ftyp` (CMAF-compatible brands) and a `moov` whose sample tables are
/// empty and whose `mvex` says every sample lives in fragments.
pub fn write_init(tracks: &[Track], out: &mut Vec<u8>) {
    let ftyp = begin(out, b"ftyp");
    out.extend_from_slice(b"iso6");
    u32(out, 0);
    for brand in [b"iso6", b"cmfc", b"mp41", b"dash"] {
        out.extend_from_slice(brand);
    }
    end(out, ftyp);

    let moov = begin(out, b"moov");
    let mvhd = begin_full(out, b"mvhd", 0, 0);
    u32(out, 0); // creation_time
    u32(out, 0); // modification_time
    u32(out, 1000); // timescale
    u32(out, 0); // duration: unknown, live
    u32(out, 0x0001_0000); // rate 1.0
    u16(out, 0x0100); // volume 1.0
    zeros(out, 10);
    matrix(out);
    zeros(out, 24); // pre_defined
    let next = tracks
        .iter()
        .map(|t| t.id)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    u32(out, next);
    end(out, mvhd);
    for t in tracks {
        write_trak(t, out);
    }
    let mvex = begin(out, b"mvex");
    for t in tracks {
        let trex = begin_full(out, b"trex", 0, 0);
        u32(out, t.id);
        u32(out, 1); // default_sample_description_index
        u32(out, 0); // default_sample_duration
        u32(out, 0); // default_sample_size
        u32(out, 0); // default_sample_flags
        end(out, trex);
    }
    end(out, mvex);
    end(out, moov);
}

fn write_trak(t: &Track, out: &mut Vec<u8>) {
    let video = t.codec.is_video();
    let (width, height) = match &t.codec {
        TrackCodec::H264 { width, height, .. } | TrackCodec::H265 { width, height, .. } => {
            (*width, *height)
        }
        _ => (0, 0),
    };
    let trak = begin(out, b"trak");
    // Flags: track_enabled | track_in_movie.
    let tkhd = begin_full(out, b"tkhd", 0, 3);
    u32(out, 0);
    u32(out, 0);
    u32(out, t.id);
    u32(out, 0); // reserved
    u32(out, 0); // duration
    zeros(out, 8);
    u16(out, 0); // layer
    u16(out, 0); // alternate_group
    u16(out, if video { 0 } else { 0x0100 });
    u16(out, 0);
    matrix(out);
    u32(out, u32::from(width) << 16);
    u32(out, u32::from(height) << 16);
    end(out, tkhd);

    let mdia = begin(out, b"mdia");
    let mdhd = begin_full(out, b"mdhd", 0, 0);
    u32(out, 0);
    u32(out, 0);
    u32(out, t.timescale);
    u32(out, 0);
    u16(out, 0x55c4); // language "und"
    u16(out, 0);
    end(out, mdhd);
    let hdlr = begin_full(out, b"hdlr", 0, 0);
    u32(out, 0);
    out.extend_from_slice(if video { b"vide" } else { b"soun" });
    zeros(out, 12);
    out.extend_from_slice(if video {
        b"VideoHandler\0".as_slice()
    } else {
        b"SoundHandler\0".as_slice()
    });
    end(out, hdlr);

    let minf = begin(out, b"minf");
    if video {
        let vmhd = begin_full(out, b"vmhd", 0, 1);
        zeros(out, 8);
        end(out, vmhd);
    } else {
        let smhd = begin_full(out, b"smhd", 0, 0);
        zeros(out, 4);
        end(out, smhd);
    }
    let dinf = begin(out, b"dinf");
    let dref = begin_full(out, b"dref", 0, 0);
    u32(out, 1);
    let url = begin_full(out, b"url ", 0, 1); // self-contained
    end(out, url);
    end(out, dref);
    end(out, dinf);

    let stbl = begin(out, b"stbl");
    let stsd = begin_full(out, b"stsd", 0, 0);
    u32(out, 1);
    write_sample_entry(&t.codec, t.id, out);
    end(out, stsd);
    for kind in [b"stts", b"stsc", b"stco"] {
        let b = begin_full(out, kind, 0, 0);
        u32(out, 0);
        end(out, b);
    }
    let stsz = begin_full(out, b"stsz", 0, 0);
    u32(out, 0);
    u32(out, 0);
    end(out, stsz);
    end(out, stbl);
    end(out, minf);
    end(out, mdia);
    end(out, trak);
}

fn write_sample_entry(codec: &TrackCodec, track_id: u32, out: &mut Vec<u8>) {
    match codec {
        TrackCodec::H264 {
            record,
            width,
            height,
        }
        | TrackCodec::H265 {
            record,
            width,
            height,
        } => {
            let (entry, config) = match codec {
                TrackCodec::H264 { .. } => (b"avc1", b"avcC"),
                _ => (b"hvc1", b"hvcC"),
            };
            let e = begin(out, entry);
            zeros(out, 6);
            u16(out, 1); // data_reference_index
            zeros(out, 16); // pre_defined, reserved
            u16(out, *width);
            u16(out, *height);
            u32(out, 0x0048_0000); // 72 dpi
            u32(out, 0x0048_0000);
            u32(out, 0);
            u16(out, 1); // frame_count
            zeros(out, 32); // compressorname
            u16(out, 0x0018); // depth
            u16(out, 0xffff); // pre_defined -1
            let c = begin(out, config);
            out.extend_from_slice(record);
            end(out, c);
            end(out, e);
        }
        TrackCodec::Aac {
            asc,
            sample_rate,
            channels,
        } => audio_entry(out, *sample_rate, *channels, track_id, 0x40, Some(asc)),
        TrackCodec::Mp3 {
            sample_rate,
            channels,
            mpeg2,
        } => {
            let oti = if *mpeg2 { 0x69 } else { 0x6b };
            audio_entry(out, *sample_rate, *channels, track_id, oti, None)
        }
    }
}

fn audio_entry(
    out: &mut Vec<u8>,
    sample_rate: u32,
    channels: u8,
    track_id: u32,
    oti: u8,
    dsi: Option<&Bytes>,
) {
    let e = begin(out, b"mp4a");
    zeros(out, 6);
    u16(out, 1);
    zeros(out, 8);
    u16(out, u16::from(channels.max(1)));
    u16(out, 16);
    u16(out, 0);
    u16(out, 0);
    // 16.16 fixed point: rates over 65535 Hz do not fit; the esds/ASC has the real one.
    u32(out, sample_rate.min(0xffff) << 16);
    let esds = begin_full(out, b"esds", 0, 0);
    // DecoderSpecificInfo, DecoderConfigDescriptor, SLConfigDescriptor, ES_Descriptor
    // (ISO 14496-1 §7.2.6), each with its tag and a length.
    let mut dcd = vec![oti, 0x15]; // streamType 5 (audio) << 2 | upStream 0 | reserved 1
    dcd.extend_from_slice(&[0, 0, 0]); // bufferSizeDB
    dcd.extend_from_slice(&0u32.to_be_bytes()); // maxBitrate
    dcd.extend_from_slice(&0u32.to_be_bytes()); // avgBitrate
    if let Some(dsi) = dsi {
        descriptor(&mut dcd, 0x05, dsi);
    }
    let mut es = Vec::with_capacity(dcd.len() + 16);
    es.extend_from_slice(&(track_id.min(0xffff) as u16).to_be_bytes());
    es.push(0); // no dependsOn, URL, OCR
    descriptor(&mut es, 0x04, &dcd);
    descriptor(&mut es, 0x06, &[0x02]);
    descriptor(out, 0x03, &es);
    end(out, esds);
    end(out, e);
}

/// A descriptor with its size in the expandable 7-bit form (ISO 14496-1 §8.3.3).
fn descriptor(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    let len = body.len().min(0x0fff_ffff) as u32;
    let mut started = false;
    for shift in [21u32, 14, 7] {
        let b = ((len >> shift) & 0x7f) as u8;
        if b != 0 || started {
            out.push(b | 0x80);
            started = true;
        }
    }
    out.push((len & 0x7f) as u8);
    out.extend_from_slice(body);
}

/// One sample of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// In the track's timescale.
    pub duration: u32,
    /// PTS - DTS in the track's timescale (B-frames make it positive, can be negative).
    pub cts_offset: i32,
    pub sync: bool,
    pub data: Bytes,
}

/// One track's samples in a fragment, starting at `base_dts` (`tfdt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub track_id: u32,
    pub base_dts: u64,
    pub samples: Vec<Sample>,
}

/// A media fragment: `moof` (`mfhd` with `sequence`, then one `traf` per non-empty run:
/// `tfhd` with default-base-is-moof, `tfdt` version 1, `trun` with each sample's duration,
/// size, flags and, for runs with composition offsets, the signed offset of version 1) and
/// one `mdat` with the runs' samples in order.
pub fn write_fragment(sequence: u32, runs: &[Run], out: &mut Vec<u8>) {
    let start = out.len();
    let moof = begin(out, b"moof");
    let mfhd = begin_full(out, b"mfhd", 0, 0);
    u32(out, sequence);
    end(out, mfhd);
    // Where each trun's data_offset goes, patched once the moof size is known.
    let mut patches = Vec::with_capacity(runs.len());
    for run in runs.iter().filter(|r| !r.samples.is_empty()) {
        let traf = begin(out, b"traf");
        let tfhd = begin_full(out, b"tfhd", 0, 0x02_0000);
        u32(out, run.track_id);
        end(out, tfhd);
        let tfdt = begin_full(out, b"tfdt", 1, 0);
        u64(out, run.base_dts);
        end(out, tfdt);
        let with_cts = run.samples.iter().any(|s| s.cts_offset != 0);
        let mut flags = 0x0001 | 0x0100 | 0x0200 | 0x0400;
        if with_cts {
            flags |= 0x0800;
        }
        let trun = begin_full(out, b"trun", 1, flags);
        u32(out, run.samples.len() as u32);
        patches.push(out.len());
        u32(out, 0);
        for s in &run.samples {
            u32(out, s.duration);
            u32(out, s.data.len() as u32);
            u32(out, if s.sync { FLAGS_SYNC } else { FLAGS_NON_SYNC });
            if with_cts {
                out.extend_from_slice(&s.cts_offset.to_be_bytes());
            }
        }
        end(out, trun);
        end(out, traf);
    }
    end(out, moof);
    let moof_size = out.len() - start;
    let mut offset = moof_size + 8;
    for (at, run) in patches
        .iter()
        .zip(runs.iter().filter(|r| !r.samples.is_empty()))
    {
        let v = u32::try_from(offset).unwrap_or(u32::MAX);
        out[*at..*at + 4].copy_from_slice(&v.to_be_bytes());
        offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    let mdat = begin(out, b"mdat");
    for run in runs {
        for s in &run.samples {
            out.extend_from_slice(&s.data);
        }
    }
    end(out, mdat);
}
