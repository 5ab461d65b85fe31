//! Program-specific information: the PAT and PMT sections we write, and their parsers.

use super::crc::crc32_mpeg2;

/// Stream types (ISO 13818-1 table 2-34) that HLS players accept.
pub mod stream_type {
    pub const MPEG1_AUDIO: u8 = 0x03;
    pub const MPEG2_AUDIO: u8 = 0x04;
    pub const AAC_ADTS: u8 = 0x0f;
    pub const H264: u8 = 0x1b;
    pub const HEVC: u8 = 0x24;
}

const TABLE_PAT: u8 = 0x00;
const TABLE_PMT: u8 = 0x02;
/// Longest section_length allowed for PAT/PMT (ISO 13818-1 2.4.4.3 / 2.4.4.8).
const MAX_SECTION_LENGTH: usize = 1021;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatProgram {
    pub program_number: u16,
    pub pmt_pid: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    pub transport_stream_id: u16,
    pub version: u8,
    pub current_next: bool,
    pub section_number: u8,
    pub last_section_number: u8,
    /// Program 0 (the network PID) is kept here too; callers skip it.
    pub programs: Vec<PatProgram>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    pub stream_type: u8,
    pub elementary_pid: u16,
    pub es_info: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: u16,
    pub version: u8,
    pub pcr_pid: u16,
    pub program_info: Vec<u8>,
    pub streams: Vec<PmtStream>,
}

/// Why a PSI section was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsiProblem {
    Truncated,
    BadTableId(u8),
    BadLength,
    BadCrc,
}

impl std::fmt::Display for PsiProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PsiProblem::Truncated => write!(f, "section truncated (or spans packets)"),
            PsiProblem::BadTableId(t) => write!(f, "unexpected table_id {t:#04x}"),
            PsiProblem::BadLength => write!(f, "section_length out of range"),
            PsiProblem::BadCrc => write!(f, "CRC-32/MPEG-2 mismatch"),
        }
    }
}

fn pid13(hi: u8, lo: u8) -> u16 {
    (u16::from(hi & 0x1f) << 8) | u16::from(lo)
}

/// 13-bit PID with the 3 reserved bits set, as the syntax requires.
fn pid_bytes(pid: u16) -> [u8; 2] {
    [0xe0 | ((pid >> 8) as u8 & 0x1f), pid as u8]
}

/// PAT section (no CRC) for one program; transport_stream_id 1, version 0 as SRS/ffmpeg.
pub fn build_pat(program_number: u16, pmt_pid: u16) -> Vec<u8> {
    let section_length: u16 = 5 + 4 + 4;
    let mut s = vec![
        TABLE_PAT,
        0xb0 | (section_length >> 8) as u8,
        section_length as u8,
    ];
    s.extend_from_slice(&[0x00, 0x01, 0xc1, 0x00, 0x00]);
    s.extend_from_slice(&program_number.to_be_bytes());
    s.extend_from_slice(&pid_bytes(pmt_pid));
    s
}

/// PMT section (no CRC); `streams` is (stream_type, pid) with empty ES info.
pub fn build_pmt(program_number: u16, pcr_pid: u16, streams: &[(u8, u16)]) -> Vec<u8> {
    let section_length = 9 + 5 * streams.len() + 4;
    let mut s = vec![
        TABLE_PMT,
        0xb0 | ((section_length >> 8) as u8 & 0x0f),
        section_length as u8,
    ];
    s.extend_from_slice(&program_number.to_be_bytes());
    s.extend_from_slice(&[0xc1, 0x00, 0x00]);
    s.extend_from_slice(&pid_bytes(pcr_pid));
    s.extend_from_slice(&[0xf0, 0x00]);
    for &(st, pid) in streams {
        s.push(st);
        s.extend_from_slice(&pid_bytes(pid));
        s.extend_from_slice(&[0xf0, 0x00]);
    }
    s
}

/// Locates the section in a PSI payload (after the pointer field), checks table id, length and
/// CRC, and returns the bytes between the 8-byte long header and the CRC together with the
/// header. Sections continued in a later packet are refused (ours never are).
fn section(payload: &[u8], table_id: u8) -> Result<(&[u8], &[u8]), PsiProblem> {
    let pointer = usize::from(*payload.first().ok_or(PsiProblem::Truncated)?);
    let sec = payload.get(1 + pointer..).ok_or(PsiProblem::Truncated)?;
    let head = sec.get(..3).ok_or(PsiProblem::Truncated)?;
    if head[0] != table_id {
        return Err(PsiProblem::BadTableId(head[0]));
    }
    let len = (usize::from(head[1] & 0x0f) << 8) | usize::from(head[2]);
    if !(9..=MAX_SECTION_LENGTH).contains(&len) {
        return Err(PsiProblem::BadLength);
    }
    let whole = sec.get(..3 + len).ok_or(PsiProblem::Truncated)?;
    if crc32_mpeg2(whole) != 0 {
        return Err(PsiProblem::BadCrc);
    }
    let (header, rest) = whole.split_at(8);
    let body = rest.get(..rest.len() - 4).ok_or(PsiProblem::BadLength)?;
    Ok((header, body))
}

/// Parses a PAT from a PUSI packet payload (pointer field first).
pub fn parse_pat(payload: &[u8]) -> Result<Pat, PsiProblem> {
    let (h, body) = section(payload, TABLE_PAT)?;
    if body.len() % 4 != 0 {
        return Err(PsiProblem::BadLength);
    }
    let programs = body
        .chunks_exact(4)
        .map(|c| PatProgram {
            program_number: u16::from_be_bytes([c[0], c[1]]),
            pmt_pid: pid13(c[2], c[3]),
        })
        .collect();
    Ok(Pat {
        transport_stream_id: u16::from_be_bytes([h[3], h[4]]),
        version: (h[5] >> 1) & 0x1f,
        current_next: h[5] & 1 == 1,
        section_number: h[6],
        last_section_number: h[7],
        programs,
    })
}

/// Parses a PMT from a PUSI packet payload (pointer field first).
pub fn parse_pmt(payload: &[u8]) -> Result<Pmt, PsiProblem> {
    let (h, body) = section(payload, TABLE_PMT)?;
    let fixed = body.get(..4).ok_or(PsiProblem::Truncated)?;
    let pcr_pid = pid13(fixed[0], fixed[1]);
    let info_len = (usize::from(fixed[2] & 0x0f) << 8) | usize::from(fixed[3]);
    let program_info = body
        .get(4..4 + info_len)
        .ok_or(PsiProblem::Truncated)?
        .to_vec();
    let mut pos = 4 + info_len;
    let mut streams = Vec::new();
    while pos < body.len() {
        let e = body.get(pos..pos + 5).ok_or(PsiProblem::Truncated)?;
        let es_len = (usize::from(e[3] & 0x0f) << 8) | usize::from(e[4]);
        let es_info = body
            .get(pos + 5..pos + 5 + es_len)
            .ok_or(PsiProblem::Truncated)?
            .to_vec();
        streams.push(PmtStream {
            stream_type: e[0],
            elementary_pid: pid13(e[1], e[2]),
            es_info,
        });
        pos += 5 + es_len;
    }
    Ok(Pmt {
        program_number: u16::from_be_bytes([h[3], h[4]]),
        version: (h[5] >> 1) & 0x1f,
        pcr_pid,
        program_info,
        streams,
    })
}
