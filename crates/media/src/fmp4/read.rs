//! Reading back what [`super::write`] produces: enough of ISO BMFF to check an init segment
//! and a fragment (tests, the bench and the fuzz target). Safe on any bytes: every size is
//! checked against what is left, nesting and counts are bounded.

use super::Fmp4Error;

/// Deepest box nesting followed (`moov/trak/mdia/minf/stbl/stsd/avc1/avcC` is 8).
const MAX_DEPTH: usize = 10;
/// Most samples one `trun` may declare.
pub const MAX_SAMPLES: u32 = 1 << 20;
/// Most tracks (or `traf`s) read.
const MAX_TRACKS: usize = 16;

/// A box: its type and its body (after the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxRef<'a> {
    pub kind: [u8; 4],
    pub body: &'a [u8],
    /// Offset of the box's first byte in the buffer it was read from.
    pub offset: usize,
    /// Offset of its body in that buffer.
    pub body_offset: usize,
}

/// Splits `data` into its boxes (one level). 64-bit sizes are read; size 0 means "to the end".
pub fn boxes(data: &[u8]) -> Result<Vec<BoxRef<'_>>, Fmp4Error> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let head = data
            .get(pos..pos + 8)
            .ok_or(Fmp4Error::Truncated("box header"))?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = [head[4], head[5], head[6], head[7]];
        let (header, size) = match size32 {
            0 => (8usize, (data.len() - pos) as u64),
            1 => {
                let l = data
                    .get(pos + 8..pos + 16)
                    .ok_or(Fmp4Error::Truncated("box largesize"))?;
                let mut b = [0u8; 8];
                b.copy_from_slice(l);
                (16, u64::from_be_bytes(b))
            }
            n => (8, u64::from(n)),
        };
        let size = usize::try_from(size).map_err(|_| Fmp4Error::Truncated("box"))?;
        if size < header {
            return Err(Fmp4Error::Invalid("box size smaller than its header"));
        }
        let end = pos.checked_add(size).ok_or(Fmp4Error::Truncated("box"))?;
        let body = data
            .get(pos + header..end)
            .ok_or(Fmp4Error::Truncated("box"))?;
        out.push(BoxRef {
            kind,
            body,
            offset: pos,
            body_offset: pos + header,
        });
        pos = end;
    }
    Ok(out)
}

fn child<'a>(parent: &'a [u8], kind: &[u8; 4]) -> Result<Option<BoxRef<'a>>, Fmp4Error> {
    Ok(boxes(parent)?.into_iter().find(|b| &b.kind == kind))
}

fn need<'a>(parent: &'a [u8], kind: &'static [u8; 4]) -> Result<BoxRef<'a>, Fmp4Error> {
    child(parent, kind)?.ok_or(Fmp4Error::Missing(kind))
}

/// Follows `path` down from `data`.
fn path<'a>(data: &'a [u8], path: &[&'static [u8; 4]]) -> Result<BoxRef<'a>, Fmp4Error> {
    if path.len() > MAX_DEPTH {
        return Err(Fmp4Error::Invalid("box path too deep"));
    }
    let mut cur = data;
    let mut last = None;
    for k in path {
        let b = need(cur, k)?;
        cur = b.body;
        last = Some(b);
    }
    last.ok_or(Fmp4Error::Invalid("empty box path"))
}

struct Cur<'a> {
    d: &'a [u8],
    p: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Fmp4Error> {
        let end = self.p.checked_add(n).ok_or(Fmp4Error::Truncated("field"))?;
        let s = self
            .d
            .get(self.p..end)
            .ok_or(Fmp4Error::Truncated("field"))?;
        self.p = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, Fmp4Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, Fmp4Error> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }
    /// Version and flags of a full box.
    fn full(&mut self) -> Result<(u8, u32), Fmp4Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
}

/// A track as the init segment declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitTrack {
    pub id: u32,
    pub timescale: u32,
    /// `vide` or `soun`.
    pub handler: [u8; 4],
    /// The sample entry: `avc1`, `hvc1`, `mp4a`.
    pub entry: [u8; 4],
    /// Whether `mvex` has a `trex` for the track (required for fragments).
    pub trex: bool,
}

/// Reads an init segment: `ftyp` first, `moov` with its tracks and `mvex`.
pub fn parse_init(data: &[u8]) -> Result<Vec<InitTrack>, Fmp4Error> {
    let top = boxes(data)?;
    if top.first().map(|b| &b.kind) != Some(b"ftyp") {
        return Err(Fmp4Error::Missing(b"ftyp"));
    }
    let moov = top
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or(Fmp4Error::Missing(b"moov"))?;
    let mvex = need(moov.body, b"mvex")?;
    let trex_ids: Vec<u32> = boxes(mvex.body)?
        .iter()
        .filter(|b| &b.kind == b"trex")
        .filter_map(|b| b.body.get(4..8))
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .collect();
    let mut out = Vec::new();
    for trak in boxes(moov.body)?.iter().filter(|b| &b.kind == b"trak") {
        if out.len() >= MAX_TRACKS {
            return Err(Fmp4Error::Invalid("too many tracks"));
        }
        let mut c = Cur {
            d: need(trak.body, b"tkhd")?.body,
            p: 0,
        };
        let (v, _) = c.full()?;
        let id = if v == 1 {
            c.take(16)?;
            c.u32()?
        } else {
            c.take(8)?;
            c.u32()?
        };
        let mut m = Cur {
            d: path(trak.body, &[b"mdia", b"mdhd"])?.body,
            p: 0,
        };
        let (v, _) = m.full()?;
        m.take(if v == 1 { 16 } else { 8 })?;
        let timescale = m.u32()?;
        if timescale == 0 {
            return Err(Fmp4Error::Invalid("timescale 0"));
        }
        let hdlr = path(trak.body, &[b"mdia", b"hdlr"])?.body;
        let handler: [u8; 4] = hdlr
            .get(8..12)
            .and_then(|s| s.try_into().ok())
            .ok_or(Fmp4Error::Truncated("hdlr"))?;
        let stsd = path(trak.body, &[b"mdia", b"minf", b"stbl", b"stsd"])?.body;
        let entries = boxes(stsd.get(8..).ok_or(Fmp4Error::Truncated("stsd"))?)?;
        let entry = entries.first().ok_or(Fmp4Error::Missing(b"stsd"))?.kind;
        out.push(InitTrack {
            id,
            timescale,
            handler,
            entry,
            trex: trex_ids.contains(&id),
        });
    }
    if out.is_empty() {
        return Err(Fmp4Error::Missing(b"trak"));
    }
    Ok(out)
}

/// A sample as a `trun` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInfo {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
    pub cts_offset: i32,
    /// Offset of its data in the buffer the fragment was read from.
    pub data_offset: usize,
}

/// One `traf` of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafInfo {
    pub track_id: u32,
    pub base_dts: u64,
    pub samples: Vec<SampleInfo>,
}

impl TrafInfo {
    pub fn duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }
}

/// One `moof` and what it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentInfo {
    pub sequence: u32,
    pub trafs: Vec<TrafInfo>,
}

/// Reads every `moof` of `data` (a segment is one or more fragments, optionally after a
/// `styp`), checking that each sample's bytes lie inside the `mdat` that follows.
pub fn parse_fragments(data: &[u8]) -> Result<Vec<FragmentInfo>, Fmp4Error> {
    let top = boxes(data)?;
    let mut out = Vec::new();
    for (i, b) in top.iter().enumerate() {
        if &b.kind != b"moof" {
            continue;
        }
        let mdat = top
            .get(i + 1)
            .filter(|m| &m.kind == b"mdat")
            .ok_or(Fmp4Error::Missing(b"mdat"))?;
        let mdat_start = mdat.body_offset;
        let mdat_end = mdat_start + mdat.body.len();
        out.push(parse_moof(b, mdat_start, mdat_end)?);
    }
    Ok(out)
}

fn parse_moof(
    moof: &BoxRef<'_>,
    mdat_start: usize,
    mdat_end: usize,
) -> Result<FragmentInfo, Fmp4Error> {
    let mut m = Cur {
        d: need(moof.body, b"mfhd")?.body,
        p: 0,
    };
    m.full()?;
    let sequence = m.u32()?;
    let mut trafs = Vec::new();
    for traf in boxes(moof.body)?.iter().filter(|b| &b.kind == b"traf") {
        if trafs.len() >= MAX_TRACKS {
            return Err(Fmp4Error::Invalid("too many traf boxes"));
        }
        let mut h = Cur {
            d: need(traf.body, b"tfhd")?.body,
            p: 0,
        };
        let (_, tf_flags) = h.full()?;
        let track_id = h.u32()?;
        if tf_flags & 0x01 != 0 {
            return Err(Fmp4Error::Unsupported("tfhd base-data-offset"));
        }
        let mut d = Cur {
            d: need(traf.body, b"tfdt")?.body,
            p: 0,
        };
        let (v, _) = d.full()?;
        let base_dts = if v == 1 {
            d.u64()?
        } else {
            u64::from(d.u32()?)
        };
        let mut samples = Vec::new();
        for trun in boxes(traf.body)?.iter().filter(|b| &b.kind == b"trun") {
            let mut r = Cur { d: trun.body, p: 0 };
            let (version, flags) = r.full()?;
            let count = r.u32()?;
            if count > MAX_SAMPLES {
                return Err(Fmp4Error::Invalid("trun sample count"));
            }
            let data_offset = if flags & 0x01 != 0 {
                r.u32()? as i32
            } else {
                return Err(Fmp4Error::Unsupported("trun without data offset"));
            };
            if flags & 0x04 != 0 {
                r.u32()?;
            }
            let per = [0x100u32, 0x200, 0x400, 0x800]
                .iter()
                .filter(|f| flags & **f != 0)
                .count();
            if per == 0 || (count as usize).saturating_mul(per * 4) > r.d.len() {
                return Err(Fmp4Error::Truncated("trun samples"));
            }
            let mut at = i64::try_from(moof.offset).unwrap_or(i64::MAX) + i64::from(data_offset);
            for _ in 0..count {
                let duration = if flags & 0x100 != 0 { r.u32()? } else { 0 };
                let size = if flags & 0x200 != 0 { r.u32()? } else { 0 };
                let sflags = if flags & 0x400 != 0 { r.u32()? } else { 0 };
                let cts = if flags & 0x800 != 0 {
                    let v = r.u32()?;
                    if version == 0 {
                        i32::try_from(v).map_err(|_| Fmp4Error::Invalid("cts offset"))?
                    } else {
                        v as i32
                    }
                } else {
                    0
                };
                let start = usize::try_from(at).map_err(|_| Fmp4Error::Invalid("data offset"))?;
                let end = start
                    .checked_add(size as usize)
                    .ok_or(Fmp4Error::Invalid("data offset"))?;
                if start < mdat_start || end > mdat_end {
                    return Err(Fmp4Error::Invalid("sample outside its mdat"));
                }
                samples.push(SampleInfo {
                    duration,
                    size,
                    flags: sflags,
                    cts_offset: cts,
                    data_offset: start,
                });
                at = end as i64;
            }
        }
        trafs.push(TrafInfo {
            track_id,
            base_dts,
            samples,
        });
    }
    Ok(FragmentInfo { sequence, trafs })
}
