//! A TS demuxer for checking muxed output (tests, tools, the bench): packet headers, PAT/PMT
//! with CRC check, PES reassembly per elementary PID, continuity and PCR bookkeeping.
//! Any byte sequence is accepted without panic; problems become events.

use std::collections::BTreeMap;

use super::packet::{decode_pcr, decode_timestamp, PACKET_SIZE, SYNC_BYTE};
use super::psi::{parse_pat, parse_pmt, Pat, Pmt, PsiProblem};
use super::TsError;

/// Largest PES we reassemble; beyond it the PES is dropped. Far above any real video frame.
pub const MAX_PES_SIZE: usize = 16 << 20;
/// Bounds the per-PID tables a hostile stream could otherwise grow (8192 PIDs exist anyway).
const MAX_PMT_PIDS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pcr {
    /// 90 kHz base (33 bits).
    pub base: u64,
    /// 27 MHz remainder (0..300).
    pub ext: u16,
}

/// The header fields of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsPacketInfo {
    pub pid: u16,
    pub pusi: bool,
    pub cc: u8,
    /// adaptation_field_control (1 payload, 2 adaptation field, 3 both).
    pub afc: u8,
    pub has_payload: bool,
    pub discontinuity: bool,
    pub random_access: bool,
    pub pcr: Option<Pcr>,
}

/// One reassembled PES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pes {
    pub pid: u16,
    /// From the PMT; 0 if the PID was not (yet) announced.
    pub stream_type: u8,
    pub stream_id: u8,
    pub pes_packet_length: u16,
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    /// Elementary stream bytes after the PES header.
    pub data: Vec<u8>,
    /// random_access_indicator of the packet that started this PES.
    pub random_access: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsiError {
    Pat(PsiProblem),
    Pmt { pid: u16, problem: PsiProblem },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsEvent {
    Packet(TsPacketInfo),
    Pat(Pat),
    Pmt {
        pid: u16,
        pmt: Pmt,
    },
    Pes(Pes),
    /// Continuity counter did not advance by one on a payload packet (or changed without one).
    CcError {
        pid: u16,
        expected: u8,
        got: u8,
    },
    PsiError(PsiError),
    /// A PES that could not be parsed or grew past [`MAX_PES_SIZE`].
    BadPes {
        pid: u16,
        reason: &'static str,
    },
    /// Bytes skipped to find the next sync byte.
    SyncLost {
        skipped: usize,
    },
}

#[derive(Debug, Default)]
struct PesBuf {
    data: Vec<u8>,
    random_access: bool,
    overflow: bool,
}

#[derive(Debug, Default)]
pub struct TsDemuxer {
    /// Bytes of an incomplete packet between two `push` calls (< 188).
    partial: Vec<u8>,
    last_cc: BTreeMap<u16, u8>,
    cc_errors: BTreeMap<u16, u64>,
    pmt_pids: Vec<u16>,
    /// Elementary PID → stream type, from the PMTs.
    streams: BTreeMap<u16, u8>,
    pes: BTreeMap<u16, PesBuf>,
    packets: u64,
}

impl TsDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Continuity errors counted so far, per PID.
    pub fn cc_errors(&self) -> &BTreeMap<u16, u64> {
        &self.cc_errors
    }

    /// Elementary PIDs and their stream types as announced by the PMTs.
    pub fn streams(&self) -> &BTreeMap<u16, u8> {
        &self.streams
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Feeds bytes split anywhere. Whole packets are demuxed; a bad sync byte makes the demuxer
    /// skip to the next 0x47 and report how much it skipped.
    pub fn push(&mut self, mut data: &[u8], events: &mut Vec<TsEvent>) {
        if !self.partial.is_empty() {
            let need = PACKET_SIZE - self.partial.len();
            let (head, rest) = data.split_at(need.min(data.len()));
            self.partial.extend_from_slice(head);
            data = rest;
            if self.partial.len() < PACKET_SIZE {
                return;
            }
            let pkt = std::mem::take(&mut self.partial);
            // The partial buffer always starts with a sync byte, so this cannot fail.
            let _ = self.push_packet(&pkt, events);
        }
        while !data.is_empty() {
            if data.first() != Some(&SYNC_BYTE) {
                let skipped = data
                    .iter()
                    .position(|&b| b == SYNC_BYTE)
                    .unwrap_or(data.len());
                events.push(TsEvent::SyncLost { skipped });
                data = data.get(skipped..).unwrap_or_default();
                continue;
            }
            if data.len() < PACKET_SIZE {
                self.partial.extend_from_slice(data);
                return;
            }
            let (pkt, rest) = data.split_at(PACKET_SIZE);
            let _ = self.push_packet(pkt, events);
            data = rest;
        }
    }

    /// Demuxes one 188-byte packet.
    pub fn push_packet(&mut self, pkt: &[u8], events: &mut Vec<TsEvent>) -> Result<(), TsError> {
        if pkt.len() != PACKET_SIZE {
            return Err(TsError::BadPacketLength(pkt.len()));
        }
        let h = pkt.get(..4).ok_or(TsError::BadPacketLength(pkt.len()))?;
        if h[0] != SYNC_BYTE {
            return Err(TsError::BadSync(h[0]));
        }
        self.packets += 1;
        let pusi = h[1] & 0x40 != 0;
        let pid = (u16::from(h[1] & 0x1f) << 8) | u16::from(h[2]);
        let afc = (h[3] >> 4) & 0x03;
        let cc = h[3] & 0x0f;
        let has_payload = afc & 0x01 != 0;
        let mut info = TsPacketInfo {
            pid,
            pusi,
            cc,
            afc,
            has_payload,
            discontinuity: false,
            random_access: false,
            pcr: None,
        };
        let mut pos = 4usize;
        if afc & 0x02 != 0 {
            let len = usize::from(*pkt.get(4).unwrap_or(&0));
            let af = pkt.get(5..5 + len).unwrap_or_default();
            if let Some(&flags) = af.first() {
                info.discontinuity = flags & 0x80 != 0;
                info.random_access = flags & 0x40 != 0;
                if flags & 0x10 != 0 {
                    if let Some(b) = af.get(1..7).and_then(|b| <&[u8; 6]>::try_from(b).ok()) {
                        let (base, ext) = decode_pcr(b);
                        info.pcr = Some(Pcr { base, ext });
                    }
                }
            }
            pos = 5 + len;
        }
        events.push(TsEvent::Packet(info));
        self.check_cc(&info, events);
        if !has_payload || pid == 0x1fff {
            return Ok(());
        }
        let payload = pkt.get(pos..).unwrap_or_default();
        if pid == 0 {
            if pusi {
                self.on_pat(payload, events);
            }
        } else if self.pmt_pids.contains(&pid) {
            if pusi {
                self.on_pmt(pid, payload, events);
            }
        } else if self.streams.contains_key(&pid) {
            self.on_pes_payload(&info, payload, events);
        }
        Ok(())
    }

    /// Emits the PES still being assembled on every PID (end of file or segment).
    pub fn finish(&mut self, events: &mut Vec<TsEvent>) {
        let pids: Vec<u16> = self.pes.keys().copied().collect();
        for pid in pids {
            self.flush_pes(pid, events);
        }
    }

    fn check_cc(&mut self, info: &TsPacketInfo, events: &mut Vec<TsEvent>) {
        if info.pid == 0x1fff {
            return;
        }
        if let Some(&last) = self.last_cc.get(&info.pid) {
            let expected = if info.has_payload {
                (last + 1) & 0x0f
            } else {
                last
            };
            if info.cc != expected && !info.discontinuity {
                *self.cc_errors.entry(info.pid).or_default() += 1;
                events.push(TsEvent::CcError {
                    pid: info.pid,
                    expected,
                    got: info.cc,
                });
            }
        }
        self.last_cc.insert(info.pid, info.cc);
    }

    fn on_pat(&mut self, payload: &[u8], events: &mut Vec<TsEvent>) {
        match parse_pat(payload) {
            Ok(pat) => {
                self.pmt_pids = pat
                    .programs
                    .iter()
                    .filter(|p| p.program_number != 0)
                    .map(|p| p.pmt_pid)
                    .take(MAX_PMT_PIDS)
                    .collect();
                events.push(TsEvent::Pat(pat));
            }
            Err(p) => events.push(TsEvent::PsiError(PsiError::Pat(p))),
        }
    }

    fn on_pmt(&mut self, pid: u16, payload: &[u8], events: &mut Vec<TsEvent>) {
        match parse_pmt(payload) {
            Ok(pmt) => {
                for s in &pmt.streams {
                    self.streams.insert(s.elementary_pid, s.stream_type);
                }
                events.push(TsEvent::Pmt { pid, pmt });
            }
            Err(problem) => events.push(TsEvent::PsiError(PsiError::Pmt { pid, problem })),
        }
    }

    fn on_pes_payload(&mut self, info: &TsPacketInfo, payload: &[u8], events: &mut Vec<TsEvent>) {
        if info.pusi {
            self.flush_pes(info.pid, events);
            self.pes.insert(
                info.pid,
                PesBuf {
                    data: Vec::new(),
                    random_access: info.random_access,
                    overflow: false,
                },
            );
        }
        // Payload before the first PUSI of a PID is the tail of a PES we never saw: dropped.
        let Some(buf) = self.pes.get_mut(&info.pid) else {
            return;
        };
        if buf.overflow {
            return;
        }
        if buf.data.len() + payload.len() > MAX_PES_SIZE {
            buf.overflow = true;
            buf.data = Vec::new();
            events.push(TsEvent::BadPes {
                pid: info.pid,
                reason: "PES larger than MAX_PES_SIZE",
            });
            return;
        }
        buf.data.extend_from_slice(payload);
        // A bounded PES is complete as soon as all its bytes are in.
        if let Some(len) = declared_len(&buf.data) {
            if buf.data.len() >= len {
                self.flush_pes(info.pid, events);
            }
        }
    }

    fn flush_pes(&mut self, pid: u16, events: &mut Vec<TsEvent>) {
        let Some(buf) = self.pes.remove(&pid) else {
            return;
        };
        if buf.overflow || buf.data.is_empty() {
            return;
        }
        let stream_type = self.streams.get(&pid).copied().unwrap_or(0);
        match parse_pes(pid, stream_type, &buf.data, buf.random_access) {
            Ok(p) => events.push(TsEvent::Pes(p)),
            Err(reason) => events.push(TsEvent::BadPes { pid, reason }),
        }
    }
}

/// Total PES size (6-byte prefix included) when PES_packet_length is not 0.
fn declared_len(data: &[u8]) -> Option<usize> {
    let b = data.get(4..6)?;
    let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
    (len != 0).then_some(len + 6)
}

fn has_optional_header(stream_id: u8) -> bool {
    // program_stream_map, padding, private_2, ECM, EMM, directory, DSMCC, H.222.1 type E.
    !matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    )
}

fn timestamp_at(data: &[u8], pos: usize) -> Option<u64> {
    let b = data.get(pos..pos + 5)?;
    <&[u8; 5]>::try_from(b).ok().map(decode_timestamp)
}

fn parse_pes(
    pid: u16,
    stream_type: u8,
    data: &[u8],
    random_access: bool,
) -> Result<Pes, &'static str> {
    let h = data.get(..6).ok_or("PES shorter than its prefix")?;
    if h[..3] != [0, 0, 1] {
        return Err("PES start code missing");
    }
    let stream_id = h[3];
    let pes_packet_length = u16::from_be_bytes([h[4], h[5]]);
    let end = match pes_packet_length {
        0 => data.len(),
        n => (usize::from(n) + 6).min(data.len()),
    };
    let (mut pts, mut dts) = (None, None);
    let mut start = 6;
    if has_optional_header(stream_id) {
        let o = data.get(6..9).ok_or("PES header truncated")?;
        if o[0] & 0xc0 != 0x80 {
            return Err("PES header marker bits wrong");
        }
        let flags = o[1] >> 6;
        let hdl = usize::from(o[2]);
        if flags == 1 {
            return Err("PES PTS_DTS_flags forbidden value 01");
        }
        if flags & 0x02 != 0 {
            pts = Some(timestamp_at(data, 9).ok_or("PES PTS truncated")?);
        }
        if flags == 3 {
            dts = Some(timestamp_at(data, 14).ok_or("PES DTS truncated")?);
        }
        start = 9 + hdl;
    }
    let body = data
        .get(start..end)
        .ok_or("PES header longer than the PES")?;
    Ok(Pes {
        pid,
        stream_type,
        stream_id,
        pes_packet_length,
        pts,
        dts,
        data: body.to_vec(),
        random_access,
    })
}
