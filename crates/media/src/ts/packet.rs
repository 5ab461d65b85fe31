//! Packetization: splitting a PES or a PSI section into 188-byte TS packets, and the
//! timestamp encodings (PTS/DTS, PCR) shared by the muxer and the demuxer.

pub const PACKET_SIZE: usize = 188;
pub const SYNC_BYTE: u8 = 0x47;
const HEADER_SIZE: usize = 4;
const PAYLOAD_SIZE: usize = PACKET_SIZE - HEADER_SIZE;
/// 33-bit wrap of PTS, DTS and PCR base.
pub const TS_MASK: u64 = (1 << 33) - 1;

const AF_RANDOM_ACCESS: u8 = 0x40;
const AF_PCR: u8 = 0x10;

/// The 4-byte TS header; the continuity counter advances because every packet we write
/// carries payload.
fn header(pid: u16, pusi: bool, with_af: bool, cc: &mut u8) -> [u8; 4] {
    let afc = if with_af { 0x30 } else { 0x10 };
    let h = [
        SYNC_BYTE,
        (u8::from(pusi) << 6) | ((pid >> 8) as u8 & 0x1f),
        pid as u8,
        afc | (*cc & 0x0f),
    ];
    *cc = (*cc + 1) & 0x0f;
    h
}

/// PCR in its 6-byte adaptation-field form: 33-bit base (90 kHz), 6 reserved bits, 9-bit
/// extension (27 MHz remainder, always 0 here as our clocks are in ms).
pub fn encode_pcr(base: u64) -> [u8; 6] {
    let b = base & TS_MASK;
    [
        (b >> 25) as u8,
        (b >> 17) as u8,
        (b >> 9) as u8,
        (b >> 1) as u8,
        (((b & 1) as u8) << 7) | 0x7e,
        0,
    ]
}

/// Inverse of [`encode_pcr`]: (base, extension).
pub fn decode_pcr(b: &[u8; 6]) -> (u64, u16) {
    let base = (u64::from(b[0]) << 25)
        | (u64::from(b[1]) << 17)
        | (u64::from(b[2]) << 9)
        | (u64::from(b[3]) << 1)
        | u64::from(b[4] >> 7);
    let ext = (u16::from(b[4] & 0x01) << 8) | u16::from(b[5]);
    (base, ext)
}

/// PTS/DTS 5-byte form with its 4-bit prefix (0b0010 PTS only, 0b0011 PTS of a pair,
/// 0b0001 DTS) and the marker bits.
pub fn encode_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let t = ts & TS_MASK;
    [
        (prefix << 4) | (((t >> 29) as u8) & 0x0e) | 1,
        (t >> 22) as u8,
        (((t >> 14) as u8) & 0xfe) | 1,
        (t >> 7) as u8,
        (((t << 1) as u8) & 0xfe) | 1,
    ]
}

pub fn decode_timestamp(b: &[u8; 5]) -> u64 {
    (u64::from(b[0] & 0x0e) << 29)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1)
}

/// Writes one PES (header and data already joined) as TS packets. The first packet carries the
/// PCR and random-access flag when asked; the last is padded with adaptation-field stuffing,
/// because a TS payload cannot be padded with 0xFF without corrupting the PES.
pub fn write_pes_packets(
    out: &mut Vec<u8>,
    pid: u16,
    cc: &mut u8,
    pes: &[u8],
    pcr: Option<u64>,
    random_access: bool,
) {
    let packets = pes.len().div_ceil(PAYLOAD_SIZE).max(1);
    out.reserve(packets * PACKET_SIZE);
    let mut rest = pes;
    let mut first = true;
    while first || !rest.is_empty() {
        // Adaptation field body (after its length byte), at most 1 flag byte + 6 PCR bytes.
        let mut af = [0u8; 7];
        let mut af_len = 0usize;
        let mut has_af = false;
        if first && (pcr.is_some() || random_access) {
            has_af = true;
            af[0] = if random_access { AF_RANDOM_ACCESS } else { 0 };
            af_len = 1;
            if let Some(base) = pcr {
                af[0] |= AF_PCR;
                af[1..7].copy_from_slice(&encode_pcr(base));
                af_len = 7;
            }
        }
        let af_total = if has_af { 1 + af_len } else { 0 };
        let space = PAYLOAD_SIZE - af_total;
        let take = rest.len().min(space);
        let stuffing = space - take;
        let with_af = has_af || stuffing > 0;
        out.extend_from_slice(&header(pid, first, with_af, cc));
        if with_af {
            if !has_af {
                // Stuffing alone: one byte is just a zero length; more needs the flags byte.
                if stuffing == 1 {
                    out.push(0);
                } else {
                    out.push((stuffing - 1) as u8);
                    out.push(0);
                    out.extend(std::iter::repeat_n(0xff, stuffing - 2));
                }
            } else {
                out.push((af_len + stuffing) as u8);
                out.extend_from_slice(&af[..af_len]);
                out.extend(std::iter::repeat_n(0xff, stuffing));
            }
        }
        let (now, later) = rest.split_at(take);
        out.extend_from_slice(now);
        rest = later;
        first = false;
    }
}

/// Writes one PSI section (without CRC) in a single packet: pointer field, section, CRC,
/// 0xFF fill. Our PAT and PMT are far below the 183 bytes one packet holds.
pub fn write_section_packet(out: &mut Vec<u8>, pid: u16, cc: &mut u8, section: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&header(pid, true, false, cc));
    out.push(0);
    out.extend_from_slice(section);
    out.extend_from_slice(&super::crc::crc32_mpeg2(section).to_be_bytes());
    let end = start + PACKET_SIZE;
    if out.len() < end {
        out.resize(end, 0xff);
    }
}
