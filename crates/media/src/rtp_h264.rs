//! H.264 RTP payloads (RFC 6184, packetization mode 1): one access unit's NAL units into
//! RTP payloads of at most a given size. Sans-IO: NAL units in, payloads out.
//!
//! This is what a WHEP player of an RTMP stream receives. It is made once per stream
//! (`rtc::feed`), not per player, so that every player sends the same packets and a
//! retransmission (NACK) is answered from the stream's one packet history.
//!
//! - NAL units that fit together go in one STAP-A (type 24): in practice the SPS and PPS
//!   before a keyframe, which then travel in one packet.
//! - A NAL unit that fits alone goes alone (single NAL unit packet).
//! - A larger one is cut into FU-A fragments (type 28).
//!
//! Access unit delimiters and filler data are left out (the RTP timestamp and the marker
//! bit delimit access units), and so are the types H.264 leaves unspecified (a hostile
//! publisher's). The caller sets the marker bit on the last payload.

/// NAL unit types this module treats apart.
const STAP_A: u8 = 24;
const FU_A: u8 = 28;
const AUD: u8 = 9;
const FILLER: u8 = 12;

/// Bytes a STAP-A adds: its own header, then a 16-bit size before each NAL unit.
const STAP_A_HEADER: usize = 1;
const STAP_A_SIZE: usize = 2;
/// Bytes a FU-A fragment adds: the FU indicator and the FU header.
const FU_A_HEADER: usize = 2;

/// The smallest payload size [`packetize`] works with: a FU-A must carry at least one
/// byte of its NAL unit.
pub const MIN_PAYLOAD: usize = FU_A_HEADER + 1;

/// Appends to `out` the RTP payloads (each at most `max_payload` bytes) that carry `nalus`,
/// one access unit, in order. Empty NAL units, delimiters and filler are skipped. Nothing is
/// appended when `max_payload` is below [`MIN_PAYLOAD`].
pub fn packetize(nalus: &[&[u8]], max_payload: usize, out: &mut Vec<Vec<u8>>) {
    if max_payload < MIN_PAYLOAD {
        return;
    }
    let sendable = |n: &&&[u8]| n.first().is_some_and(|b| sendable_type(b & 0x1f));
    let nalus: Vec<&[u8]> = nalus.iter().filter(sendable).copied().collect();
    let mut i = 0;
    while i < nalus.len() {
        // As many NAL units from here as fit in one STAP-A.
        let mut size = STAP_A_HEADER;
        let mut j = i;
        while j < nalus.len() && size + STAP_A_SIZE + nalus[j].len() <= max_payload {
            size += STAP_A_SIZE + nalus[j].len();
            j += 1;
        }
        if j - i >= 2 {
            out.push(stap_a(&nalus[i..j], size));
            i = j;
            continue;
        }
        let n = nalus[i];
        if n.len() <= max_payload {
            out.push(n.to_vec());
        } else {
            fu_a(n, max_payload, out);
        }
        i += 1;
    }
}

/// Whether a NAL unit of this type is sent: not a delimiter or filler, and not one of the
/// types H.264 leaves unspecified (0, 24 to 31), which RTP uses for its own packets: sent
/// alone, such a unit would read as a broken STAP-A or FU-A.
pub fn sendable_type(t: u8) -> bool {
    matches!(t, 1..=23) && t != AUD && t != FILLER
}

/// One STAP-A of `nalus` (`size` bytes in all). Its F bit is any unit's, its NRI the
/// highest (RFC 6184, 5.7.1).
fn stap_a(nalus: &[&[u8]], size: usize) -> Vec<u8> {
    let f = nalus.iter().fold(0, |a, n| a | (n[0] & 0x80));
    let nri = nalus.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
    let mut p = Vec::with_capacity(size);
    p.push(f | nri | STAP_A);
    for n in nalus {
        // Each unit is shorter than the payload size, itself far below 64 KiB in practice;
        // a caller with a larger size still gets a correct length or no aggregation.
        p.extend_from_slice(&(n.len() as u16).to_be_bytes());
        p.extend_from_slice(n);
    }
    p
}

/// The FU-A fragments of one NAL unit longer than `max_payload`.
fn fu_a(n: &[u8], max_payload: usize, out: &mut Vec<Vec<u8>>) {
    let indicator = (n[0] & 0xe0) | FU_A;
    let kind = n[0] & 0x1f;
    let body = &n[1..];
    let chunk = max_payload - FU_A_HEADER;
    let count = body.len().div_ceil(chunk);
    for (k, piece) in body.chunks(chunk).enumerate() {
        let mut header = kind;
        if k == 0 {
            header |= 0x80;
        }
        if k + 1 == count {
            header |= 0x40;
        }
        let mut p = Vec::with_capacity(FU_A_HEADER + piece.len());
        p.push(indicator);
        p.push(header);
        p.extend_from_slice(piece);
        out.push(p);
    }
}

/// The NAL units a run of payloads carries (single NAL unit, STAP-A and FU-A packets, in
/// order, of one access unit), or None for a payload that is not well formed. The inverse
/// of [`packetize`], used by its tests and fuzz target to check what it makes.
pub fn depacketize(payloads: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    let mut nalus = Vec::new();
    let mut fragment: Option<Vec<u8>> = None;
    for p in payloads {
        let (&first, rest) = p.split_first()?;
        match first & 0x1f {
            STAP_A => {
                let mut r = rest;
                while !r.is_empty() {
                    let (len, tail) = r.split_first_chunk::<2>()?;
                    let len = usize::from(u16::from_be_bytes(*len));
                    if len == 0 || len > tail.len() {
                        return None;
                    }
                    nalus.push(tail[..len].to_vec());
                    r = &tail[len..];
                }
            }
            FU_A => {
                let (&header, body) = rest.split_first()?;
                if header & 0x80 != 0 {
                    if fragment.is_some() {
                        return None;
                    }
                    let mut n = vec![(first & 0xe0) | (header & 0x1f)];
                    n.extend_from_slice(body);
                    fragment = Some(n);
                } else {
                    fragment.as_mut()?.extend_from_slice(body);
                }
                if header & 0x40 != 0 {
                    nalus.push(fragment.take()?);
                }
            }
            0 | 25..=31 => return None,
            _ => nalus.push(p.clone()),
        }
    }
    if fragment.is_some() {
        return None;
    }
    Some(nalus)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

    fn idr(len: usize) -> Vec<u8> {
        let mut n = vec![0x65];
        n.extend((0..len - 1).map(|i| (i % 251) as u8));
        n
    }

    #[test]
    fn parameter_sets_travel_in_one_stap_a_and_a_large_idr_in_fu_a_fragments() {
        let idr = idr(3000);
        let mut out = Vec::new();
        packetize(&[SPS, PPS, &idr], 1200, &mut out);
        // STAP-A: header (NRI of the SPS, 3), then size + SPS, size + PPS.
        let mut stap = vec![0x78, 0, SPS.len() as u8];
        stap.extend_from_slice(SPS);
        stap.extend_from_slice(&[0, PPS.len() as u8]);
        stap.extend_from_slice(PPS);
        assert_eq!(out[0], stap);
        // 2999 bytes of IDR body in 1198-byte pieces: 3 fragments.
        assert_eq!(out.len(), 4);
        assert_eq!(&out[1][..2], &[0x7c, 0x85]);
        assert_eq!(&out[2][..2], &[0x7c, 0x05]);
        assert_eq!(&out[3][..2], &[0x7c, 0x45]);
        assert_eq!(out[1].len(), 1200);
        assert_eq!(out[2].len(), 1200);
        assert_eq!(out[3].len(), 2 + 2999 - 2 * 1198);
        assert_eq!(
            depacketize(&out),
            Some(vec![SPS.to_vec(), PPS.to_vec(), idr])
        );
    }

    #[test]
    fn a_nal_unit_that_fits_alone_goes_alone_and_delimiters_are_left_out() {
        let p_slice = [0x41, 0x9a, 0x01, 0x02];
        let aud = [0x09, 0xf0];
        let filler = [0x0c, 0xff, 0xff];
        let mut out = Vec::new();
        let unspecified = [[0x00, 1], [0x78, 1], [0x1c, 1], [0x1f, 1]];
        let mut nalus: Vec<&[u8]> = vec![&aud, &p_slice, &filler, &[]];
        nalus.extend(unspecified.iter().map(|n| n.as_slice()));
        packetize(&nalus, 1200, &mut out);
        assert_eq!(out, vec![p_slice.to_vec()]);
    }

    #[test]
    fn a_nal_unit_of_exactly_the_payload_size_is_not_fragmented() {
        let n = idr(1200);
        let mut out = Vec::new();
        packetize(&[&n], 1200, &mut out);
        assert_eq!(out, vec![n.clone()]);
        packetize(&[&idr(1201)], 1200, &mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn small_slices_are_aggregated_as_long_as_they_fit() {
        let a = [0x41, 1, 2, 3];
        let b = [0x41, 4, 5];
        let c = idr(20);
        let mut out = Vec::new();
        // Room for a and b (1 + 6 + 5 = 12), not c.
        packetize(&[&a, &b, &c], 12, &mut out);
        assert_eq!(out[0], vec![0x58, 0, 4, 0x41, 1, 2, 3, 0, 3, 0x41, 4, 5]);
        assert_eq!(depacketize(&out), Some(vec![a.to_vec(), b.to_vec(), c]));
    }

    #[test]
    fn a_payload_size_too_small_for_a_fragment_makes_nothing() {
        let mut out = Vec::new();
        packetize(&[SPS, PPS], MIN_PAYLOAD - 1, &mut out);
        assert!(out.is_empty());
        packetize(&[&idr(10)], MIN_PAYLOAD, &mut out);
        assert_eq!(out.len(), 9);
        assert!(out.iter().all(|p| p.len() <= MIN_PAYLOAD));
        assert_eq!(depacketize(&out), Some(vec![idr(10)]));
    }

    #[test]
    fn depacketize_refuses_what_packetize_never_makes() {
        assert_eq!(depacketize(&[vec![]]), None);
        // A STAP-A whose size runs past its end.
        assert_eq!(depacketize(&[vec![0x78, 0, 9, 0x67]]), None);
        // A FU-A middle without a start, and a start without an end.
        assert_eq!(depacketize(&[vec![0x7c, 0x05, 1]]), None);
        assert_eq!(depacketize(&[vec![0x7c, 0x85, 1]]), None);
        // FU-B and the reserved types.
        assert_eq!(depacketize(&[vec![0x1d, 0x85, 1]]), None);
    }
}
