//! RTMP handshake, sans-IO, for both ends of a connection.
//!
//! Two flavours exist on the wire. The simple one (Adobe RTMP 1.0 spec, 5.2) is an echo of
//! random bytes. The complex one is what Flash Player, FMLE, librtmp and ffmpeg send: C1/S1 carry
//! an HMAC-SHA256 digest at a position derived from the packet itself (schema 0 or schema 1),
//! and C2/S2 end with an HMAC keyed by the peer's digest. Flash Player refuses to play H.264/AAC
//! from a server that does not answer the complex form, so a server must speak it whenever the
//! client does, and fall back to the simple form otherwise.
//!
//! Neither side needs a clock or an RNG: the caller passes a seed and the time field, which keeps
//! the state machines deterministic and testable.

use bytes::{Buf, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Size of C1, S1, C2 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// The only version byte (C0/S0) for plain RTMP.
const RTMP_VERSION: u8 = 3;
/// RTMPE (encrypted RTMP) announces itself with 6; 8 and 9 are its XTEA/Blowfish variants.
const RTMPE_VERSIONS: [u8; 3] = [6, 8, 9];

const DIGEST_LEN: usize = 32;
/// Each of the two C1/S1 blocks after the 8-byte time/version header.
const BLOCK_LEN: usize = 764;
const HEADER_LEN: usize = 8;
/// Digest block: offset(4) random(n) digest(32) random(..); n = sum(offset bytes) % 728.
const DIGEST_OFFSET_MOD: usize = BLOCK_LEN - 4 - DIGEST_LEN;
/// The part of C2/S2 covered by its trailing HMAC.
const SIGNED_LEN: usize = HANDSHAKE_SIZE - DIGEST_LEN;

/// Version field SRS and FMS put in a complex S1 (FMS 4.5.0.1); only "non-zero" matters to
/// clients, since a zero version is how a peer says "simple handshake".
const SERVER_VERSION: [u8; 4] = [0x04, 0x05, 0x00, 0x01];
/// Version field librtmp/Flash Player put in a complex C1 (0x80000702).
const CLIENT_VERSION: [u8; 4] = [0x80, 0x00, 0x07, 0x02];

/// "Genuine Adobe Flash Media Server 001" followed by 32 constant bytes.
const FMS_KEY: [u8; 68] = [
    0x47, 0x65, 0x6e, 0x75, 0x69, 0x6e, 0x65, 0x20, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x20, 0x46, 0x6c,
    0x61, 0x73, 0x68, 0x20, 0x4d, 0x65, 0x64, 0x69, 0x61, 0x20, 0x53, 0x65, 0x72, 0x76, 0x65, 0x72,
    0x20, 0x30, 0x30, 0x31, 0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1,
    0x02, 0x9e, 0x7e, 0x57, 0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36,
    0xcf, 0xeb, 0x31, 0xae,
];
/// "Genuine Adobe Flash Player 001" followed by the same 32 constant bytes.
const FP_KEY: [u8; 62] = [
    0x47, 0x65, 0x6e, 0x75, 0x69, 0x6e, 0x65, 0x20, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x20, 0x46, 0x6c,
    0x61, 0x73, 0x68, 0x20, 0x50, 0x6c, 0x61, 0x79, 0x65, 0x72, 0x20, 0x30, 0x30, 0x31, 0xf0, 0xee,
    0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57, 0x6e, 0xec,
    0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
];
/// C1 digests are keyed with the ASCII part of the player key only.
const FP_KEY_C1_LEN: usize = 30;
/// S1 digests are keyed with the ASCII part of the server key only.
const FMS_KEY_S1_LEN: usize = 36;

/// Which handshake was (or is being) negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// Plain echo handshake, no digests.
    Simple,
    /// Complex handshake, digest block after the key block (Flash Player, FMLE).
    Complex0,
    /// Complex handshake, digest block first (librtmp, ffmpeg).
    Complex1,
}

/// Why a handshake cannot go on; the connection should be closed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer asked for encrypted RTMP, which this implementation does not speak.
    #[error("peer requested RTMPE (encrypted RTMP, version byte {0}); only plain RTMP (version 3) is supported")]
    Encrypted(u8),
    /// The version byte is neither plain RTMP nor RTMPE.
    #[error("unsupported RTMP version byte {0}; only plain RTMP (version 3) is supported")]
    UnsupportedVersion(u8),
    /// `process` was called again after an error: the byte stream is no longer in sync.
    #[error("handshake already failed; the connection must be closed")]
    AlreadyFailed,
    /// HMAC refused a key; cannot happen with HMAC-SHA256, but is reported rather than panicking.
    #[error("HMAC-SHA256 rejected its key")]
    Hmac,
}

/// Small deterministic generator for filler bytes: handshake randomness is not a security
/// property in plain RTMP, it only has to look random to peers that echo it back.
struct XorShift64Star(u64);

impl XorShift64Star {
    fn new(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_be_bytes();
            for (dst, src) in chunk.iter_mut().zip(word) {
                *dst = src;
            }
        }
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<[u8; DIGEST_LEN], HandshakeError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| HandshakeError::Hmac)?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().into())
}

/// Version-byte check shared by C0 and S0.
fn check_version(byte: u8) -> Result<(), HandshakeError> {
    if byte == RTMP_VERSION {
        Ok(())
    } else if RTMPE_VERSIONS.contains(&byte) {
        Err(HandshakeError::Encrypted(byte))
    } else {
        Err(HandshakeError::UnsupportedVersion(byte))
    }
}

/// Where the digest block of C1/S1 starts in each schema.
fn digest_block_start(kind: HandshakeKind) -> usize {
    match kind {
        HandshakeKind::Complex1 => HEADER_LEN,
        HandshakeKind::Complex0 | HandshakeKind::Simple => HEADER_LEN + BLOCK_LEN,
    }
}

/// Position of the 32-byte digest inside C1/S1, derived from the block's own offset bytes.
/// Always leaves room for the digest inside its block, whatever the bytes are.
fn digest_offset(packet: &[u8; HANDSHAKE_SIZE], kind: HandshakeKind) -> usize {
    let block = digest_block_start(kind);
    let sum: usize = packet
        .get(block..block + 4)
        .map_or(0, |b| b.iter().map(|&x| usize::from(x)).sum());
    block + 4 + sum % DIGEST_OFFSET_MOD
}

/// HMAC over the whole packet except the digest bytes themselves.
fn packet_digest(
    packet: &[u8; HANDSHAKE_SIZE],
    offset: usize,
    key: &[u8],
) -> Result<[u8; DIGEST_LEN], HandshakeError> {
    let before = packet.get(..offset).unwrap_or_default();
    let after = packet.get(offset + DIGEST_LEN..).unwrap_or_default();
    hmac_sha256(key, &[before, after])
}

/// Returns the embedded digest if it validates with `key` in the given schema.
fn validate_digest(
    packet: &[u8; HANDSHAKE_SIZE],
    kind: HandshakeKind,
    key: &[u8],
) -> Result<Option<[u8; DIGEST_LEN]>, HandshakeError> {
    let offset = digest_offset(packet, kind);
    let Some(stored) = packet.get(offset..offset + DIGEST_LEN) else {
        return Ok(None);
    };
    let computed = packet_digest(packet, offset, key)?;
    Ok((stored == computed.as_slice()).then_some(computed))
}

/// Tries schema 0 then schema 1, as SRS and nginx-rtmp do.
fn detect_schema(
    packet: &[u8; HANDSHAKE_SIZE],
    key: &[u8],
) -> Result<Option<(HandshakeKind, [u8; DIGEST_LEN])>, HandshakeError> {
    for kind in [HandshakeKind::Complex0, HandshakeKind::Complex1] {
        if let Some(digest) = validate_digest(packet, kind, key)? {
            return Ok(Some((kind, digest)));
        }
    }
    Ok(None)
}

/// Random C1/S1 with the given header, and for complex kinds a digest keyed with `key`.
/// The key block is left random: the DH key is only used by RTMPE, which is not supported.
fn build_c1s1(
    rng: &mut XorShift64Star,
    epoch: u32,
    version: [u8; 4],
    kind: HandshakeKind,
    key: &[u8],
) -> Result<([u8; HANDSHAKE_SIZE], Option<[u8; DIGEST_LEN]>), HandshakeError> {
    let mut packet = [0u8; HANDSHAKE_SIZE];
    rng.fill(&mut packet);
    packet[..4].copy_from_slice(&epoch.to_be_bytes());
    packet[4..HEADER_LEN].copy_from_slice(&version);
    if kind == HandshakeKind::Simple {
        return Ok((packet, None));
    }
    let offset = digest_offset(&packet, kind);
    let digest = packet_digest(&packet, offset, key)?;
    if let Some(slot) = packet.get_mut(offset..offset + DIGEST_LEN) {
        slot.copy_from_slice(&digest);
    }
    Ok((packet, Some(digest)))
}

/// The trailing signature of C2/S2: HMAC(HMAC(own full key, peer digest), first 1504 bytes).
fn c2s2_signature(
    key: &[u8],
    peer_digest: &[u8; DIGEST_LEN],
    packet: &[u8],
) -> Result<[u8; DIGEST_LEN], HandshakeError> {
    let temp_key = hmac_sha256(key, &[peer_digest])?;
    hmac_sha256(&temp_key, &[packet.get(..SIGNED_LEN).unwrap_or_default()])
}

/// Random C2/S2 signed for the peer's C1/S1 digest.
fn build_c2s2(
    rng: &mut XorShift64Star,
    key: &[u8],
    peer_digest: &[u8; DIGEST_LEN],
) -> Result<[u8; HANDSHAKE_SIZE], HandshakeError> {
    let mut packet = [0u8; HANDSHAKE_SIZE];
    rng.fill(&mut packet);
    let signature = c2s2_signature(key, peer_digest, &packet)?;
    packet[SIGNED_LEN..].copy_from_slice(&signature);
    Ok(packet)
}

fn verify_c2s2(
    key: &[u8],
    peer_digest: &[u8; DIGEST_LEN],
    packet: &[u8; HANDSHAKE_SIZE],
) -> Result<bool, HandshakeError> {
    let signature = c2s2_signature(key, peer_digest, packet)?;
    Ok(packet.get(SIGNED_LEN..) == Some(signature.as_slice()))
}

/// Copies the next 1536 bytes out of `input` once they are all there.
fn take_packet(input: &mut BytesMut) -> Option<[u8; HANDSHAKE_SIZE]> {
    let mut packet = [0u8; HANDSHAKE_SIZE];
    packet.copy_from_slice(input.get(..HANDSHAKE_SIZE)?);
    input.advance(HANDSHAKE_SIZE);
    Some(packet)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    AwaitC0C1,
    AwaitC2,
    Done,
    Failed,
}

/// Server end: reads C0C1, answers S0S1S2 in one go, then swallows C2.
pub struct ServerHandshake {
    rng: XorShift64Star,
    epoch: u32,
    state: ServerState,
    kind: Option<HandshakeKind>,
}

impl ServerHandshake {
    /// `seed` fills the random parts (no RNG or clock inside: the caller passes e.g.
    /// time ^ counter); `epoch` is the time field of S1.
    pub fn new(seed: u64, epoch: u32) -> Self {
        Self {
            rng: XorShift64Star::new(seed),
            epoch,
            state: ServerState::AwaitC0C1,
            kind: None,
        }
    }

    /// Consumes handshake bytes from the front of `input`, appends what must be sent to `out`.
    /// Returns Ok(true) once C2 has been consumed (handshake done); leftover bytes stay in
    /// `input` for the chunk decoder.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<bool, HandshakeError> {
        let result = self.step(input, out);
        if result.is_err() {
            self.state = ServerState::Failed;
        }
        result
    }

    /// The negotiated kind, known once C1 has been read.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    fn step(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> Result<bool, HandshakeError> {
        loop {
            match self.state {
                ServerState::Failed => return Err(HandshakeError::AlreadyFailed),
                ServerState::Done => return Ok(true),
                ServerState::AwaitC0C1 => {
                    // Reject a wrong version as soon as its byte arrives, not after 1.5 KB.
                    let Some(&c0) = input.first() else {
                        return Ok(false);
                    };
                    check_version(c0)?;
                    if input.len() < 1 + HANDSHAKE_SIZE {
                        return Ok(false);
                    }
                    input.advance(1);
                    let Some(c1) = take_packet(input) else {
                        return Ok(false);
                    };
                    self.reply(&c1, out)?;
                    self.state = ServerState::AwaitC2;
                }
                ServerState::AwaitC2 => {
                    // C2 is not validated: librtmp and ffmpeg send ones that would not pass.
                    if take_packet(input).is_none() {
                        return Ok(false);
                    }
                    self.state = ServerState::Done;
                }
            }
        }
    }

    fn reply(
        &mut self,
        c1: &[u8; HANDSHAKE_SIZE],
        out: &mut Vec<u8>,
    ) -> Result<(), HandshakeError> {
        // A zero version field is the client's way of asking for the simple handshake.
        let complex = if c1.get(4..HEADER_LEN) == Some(&[0u8; 4][..]) {
            None
        } else {
            detect_schema(c1, &FP_KEY[..FP_KEY_C1_LEN])?
        };
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        match complex {
            Some((kind, c1_digest)) => {
                let (s1, _) = build_c1s1(
                    &mut self.rng,
                    self.epoch,
                    SERVER_VERSION,
                    kind,
                    &FMS_KEY[..FMS_KEY_S1_LEN],
                )?;
                let s2 = build_c2s2(&mut self.rng, &FMS_KEY, &c1_digest)?;
                out.extend_from_slice(&s1);
                out.extend_from_slice(&s2);
                self.kind = Some(kind);
            }
            None => {
                let (s1, _) = build_c1s1(
                    &mut self.rng,
                    self.epoch,
                    [0; 4],
                    HandshakeKind::Simple,
                    &[],
                )?;
                out.extend_from_slice(&s1);
                out.extend_from_slice(c1);
                self.kind = Some(HandshakeKind::Simple);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Init,
    AwaitS0S1S2,
    Done,
    Failed,
}

/// Client end: sends C0C1 (complex schema 1 like librtmp, or simple), then answers S1 with C2.
pub struct ClientHandshake {
    rng: XorShift64Star,
    epoch: u32,
    complex: bool,
    state: ClientState,
    c1_digest: Option<[u8; DIGEST_LEN]>,
    kind: Option<HandshakeKind>,
    s2_valid: Option<bool>,
}

impl ClientHandshake {
    /// `complex` selects the digest handshake (needed by servers that gate H.264/AAC on it);
    /// `seed` and `epoch` play the same role as for [`ServerHandshake::new`].
    pub fn new(complex: bool, seed: u64, epoch: u32) -> Self {
        Self {
            rng: XorShift64Star::new(seed),
            epoch,
            complex,
            state: ClientState::Init,
            c1_digest: None,
            kind: None,
            s2_valid: None,
        }
    }

    /// C0C1 to send first. Calling it again does nothing.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.state != ClientState::Init {
            return;
        }
        let (kind, version) = if self.complex {
            (HandshakeKind::Complex1, CLIENT_VERSION)
        } else {
            (HandshakeKind::Simple, [0; 4])
        };
        // Only fails if HMAC rejected a constant key, which it cannot; degrade to simple then.
        let (c1, digest) = build_c1s1(
            &mut self.rng,
            self.epoch,
            version,
            kind,
            &FP_KEY[..FP_KEY_C1_LEN],
        )
        .unwrap_or_else(|_| {
            let mut c1 = [0u8; HANDSHAKE_SIZE];
            c1[..4].copy_from_slice(&self.epoch.to_be_bytes());
            (c1, None)
        });
        self.c1_digest = digest;
        out.reserve(1 + HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        out.extend_from_slice(&c1);
        self.state = ClientState::AwaitS0S1S2;
    }

    /// Consumes S0S1S2, appends C2 to `out`; Ok(true) when done. Leftover bytes stay in
    /// `input`. Sends C0C1 first if [`start`](Self::start) was not called.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<bool, HandshakeError> {
        let result = self.step(input, out);
        if result.is_err() {
            self.state = ClientState::Failed;
        }
        result
    }

    /// What the server answered: a complex kind only if its S1 digest validated.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// Whether S2 carried a valid signature of our C1 digest (`None` for a simple exchange).
    /// Informational only: like librtmp, the handshake does not fail on it.
    pub fn s2_valid(&self) -> Option<bool> {
        self.s2_valid
    }

    fn step(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> Result<bool, HandshakeError> {
        match self.state {
            ClientState::Failed => return Err(HandshakeError::AlreadyFailed),
            ClientState::Done => return Ok(true),
            ClientState::Init => self.start(out),
            ClientState::AwaitS0S1S2 => {}
        }
        let Some(&s0) = input.first() else {
            return Ok(false);
        };
        check_version(s0)?;
        if input.len() < 1 + 2 * HANDSHAKE_SIZE {
            return Ok(false);
        }
        input.advance(1);
        let (Some(s1), Some(s2)) = (take_packet(input), take_packet(input)) else {
            return Ok(false);
        };
        let server_digest = match self.c1_digest {
            Some(_) if s1.get(4..HEADER_LEN) != Some(&[0u8; 4][..]) => {
                detect_schema(&s1, &FMS_KEY[..FMS_KEY_S1_LEN])?
            }
            _ => None,
        };
        match (server_digest, self.c1_digest) {
            (Some((kind, s1_digest)), Some(c1_digest)) => {
                let c2 = build_c2s2(&mut self.rng, &FP_KEY, &s1_digest)?;
                out.extend_from_slice(&c2);
                self.kind = Some(kind);
                self.s2_valid = Some(verify_c2s2(&FMS_KEY, &c1_digest, &s2)?);
            }
            _ => {
                out.extend_from_slice(&s1);
                self.kind = Some(HandshakeKind::Simple);
            }
        }
        self.state = ClientState::Done;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/vectors.json"
    ));

    fn vector(name: &str) -> serde_json::Value {
        let all: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        all["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("vector {name} missing"))
            .clone()
    }

    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2));
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn input_of(name: &str) -> (Vec<u8>, serde_json::Value) {
        let v = vector(name);
        (hex(v["input_hex"].as_str().unwrap()), v["expected"].clone())
    }

    fn packet(bytes: &[u8]) -> [u8; HANDSHAKE_SIZE] {
        bytes.try_into().unwrap()
    }

    fn u32_at(bytes: &[u8], at: usize) -> u64 {
        u64::from(u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()))
    }

    /// Checks a server reply to `c1` with the complex rules; returns S1's schema.
    fn assert_complex_reply(c1: &[u8; HANDSHAKE_SIZE], reply: &[u8]) -> HandshakeKind {
        assert_eq!(reply.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(reply[0], 3);
        let s1 = packet(&reply[1..1 + HANDSHAKE_SIZE]);
        let s2 = packet(&reply[1 + HANDSHAKE_SIZE..]);
        let (c1_kind, c1_digest) = detect_schema(c1, &FP_KEY[..30]).unwrap().unwrap();
        let s1_digest = validate_digest(&s1, c1_kind, &FMS_KEY[..36]).unwrap();
        assert!(s1_digest.is_some(), "S1 must validate in the C1 schema");
        assert!(verify_c2s2(&FMS_KEY, &c1_digest, &s2).unwrap());
        assert_ne!(&s1[4..8], &[0, 0, 0, 0]);
        c1_kind
    }

    #[test]
    fn key_constants_match_vector() {
        let (input, exp) = input_of("hs_key_constants");
        assert_eq!(&input[..68], &FMS_KEY);
        assert_eq!(&input[68..], &FP_KEY);
        assert_eq!(hex(exp["fms_key_hex"].as_str().unwrap()), FMS_KEY);
        assert_eq!(hex(exp["fp_key_hex"].as_str().unwrap()), FP_KEY);
        assert_eq!(&FMS_KEY[..36], b"Genuine Adobe Flash Media Server 001");
        assert_eq!(&FP_KEY[..30], b"Genuine Adobe Flash Player 001");
        assert_eq!(
            u32_at(&CLIENT_VERSION, 0),
            exp["srs_c1_version"].as_u64().unwrap()
        );
    }

    #[test]
    fn hmac_vector() {
        let (input, exp) = input_of("hs_hmac_sha256_fp_key30");
        let digest = hmac_sha256(&FP_KEY[..30], &[&input]).unwrap();
        assert_eq!(digest.to_vec(), hex(exp["digest_hex"].as_str().unwrap()));
    }

    #[test]
    fn flash_player_c0c1_schema0() {
        let (input, exp) = input_of("hs_flash_player_c0c1_schema0");
        assert_eq!(input.len(), 1537);
        assert_eq!(u64::from(input[0]), exp["c0"].as_u64().unwrap());
        let c1 = packet(&input[1..]);
        assert_eq!(u32_at(&c1, 0), exp["c1_time"].as_u64().unwrap());
        assert_eq!(u32_at(&c1, 4), exp["c1_version"].as_u64().unwrap());
        let key = &FP_KEY[..30];
        let d0 = validate_digest(&c1, HandshakeKind::Complex0, key).unwrap();
        let d1 = validate_digest(&c1, HandshakeKind::Complex1, key).unwrap();
        assert_eq!(d0.is_some(), exp["digest_valid_schema0"].as_bool().unwrap());
        assert_eq!(d1.is_some(), exp["digest_valid_schema1"].as_bool().unwrap());
        let offset = digest_offset(&c1, HandshakeKind::Complex0);
        assert_eq!(offset as u64, exp["digest_offset_in_c1"].as_u64().unwrap());
        let digest_hex = hex(exp["digest_hex"].as_str().unwrap());
        assert_eq!(d0.unwrap().to_vec(), digest_hex);
        // Key block of schema 0 is the first block; its offset bytes are its last 4.
        let key_sum: usize = c1[8 + 760..8 + 764].iter().map(|&b| usize::from(b)).sum();
        let key_offset = 8 + key_sum % 632;
        assert_eq!(
            key_offset as u64,
            exp["dh_public_key_offset_in_c1"].as_u64().unwrap()
        );
        let dh = hex(exp["dh_public_key_hex"].as_str().unwrap());
        assert_eq!(&c1[key_offset..key_offset + 128], dh.as_slice());

        let mut server = ServerHandshake::new(1, 2);
        let mut buf = BytesMut::from(&input[..]);
        let mut out = Vec::new();
        assert!(!server.process(&mut buf, &mut out).unwrap());
        assert!(buf.is_empty());
        assert_eq!(server.kind(), Some(HandshakeKind::Complex0));
        assert_eq!(assert_complex_reply(&c1, &out), HandshakeKind::Complex0);
    }

    #[test]
    fn recorded_complex_exchange() {
        let (input, exp) = input_of("hs_complex_recorded_exchange");
        assert_eq!(input.len(), 6146);
        let c0c1 = &input[..1537];
        let s0s1s2 = &input[1537..4610];
        let c2 = packet(&input[4610..]);
        let c1 = packet(&c0c1[1..]);
        let s1 = packet(&s0s1s2[1..1537]);
        let s2 = packet(&s0s1s2[1537..]);
        assert_eq!(c0c1[0], 3);
        assert_eq!(s0s1s2[0], 3);
        assert_eq!(u32_at(&c1, 0), exp["c1_time"].as_u64().unwrap());
        assert_eq!(u32_at(&c1, 4), exp["c1_version"].as_u64().unwrap());
        assert_eq!(u32_at(&s1, 0), exp["s1_time"].as_u64().unwrap());
        assert_eq!(u32_at(&s1, 4), exp["s1_version"].as_u64().unwrap());

        // Our validators agree with the recorded peers.
        let (c1_kind, c1_digest) = detect_schema(&c1, &FP_KEY[..30]).unwrap().unwrap();
        assert_eq!(c1_kind, HandshakeKind::Complex0);
        assert_eq!(
            digest_offset(&c1, c1_kind) as u64,
            exp["c1_digest_offset"].as_u64().unwrap()
        );
        let s1_digest = validate_digest(&s1, HandshakeKind::Complex0, &FMS_KEY[..36])
            .unwrap()
            .unwrap();
        assert_eq!(
            digest_offset(&s1, HandshakeKind::Complex0) as u64,
            exp["s1_digest_offset"].as_u64().unwrap()
        );
        assert!(verify_c2s2(&FMS_KEY, &c1_digest, &s2).unwrap());
        assert!(verify_c2s2(&FP_KEY, &s1_digest, &c2).unwrap());

        // Our server answers the recorded C1 with digests that validate the same way.
        let mut server = ServerHandshake::new(0xdead_beef, 77);
        let mut buf = BytesMut::from(c0c1);
        let mut out = Vec::new();
        assert!(!server.process(&mut buf, &mut out).unwrap());
        assert_complex_reply(&c1, &out);
        assert_eq!(u32_at(&out, 1), 77);

        // The recorded C2 plus the client's first chunk bytes: C2 consumed, chunk bytes kept.
        let mut buf = BytesMut::from(&c2[..]);
        buf.extend_from_slice(&[0x03, 0x00, 0x00, 0x00]);
        let mut more = Vec::new();
        assert!(server.process(&mut buf, &mut more).unwrap());
        assert!(more.is_empty());
        assert_eq!(&buf[..], &[0x03, 0x00, 0x00, 0x00]);
        // Done stays done and consumes nothing more.
        assert!(server.process(&mut buf, &mut more).unwrap());
        assert_eq!(buf.len(), 4);

        // Our client, fed the recorded S0S1S2, signs C2 for the recorded S1.
        let mut client = ClientHandshake::new(true, 5, 6);
        let mut c0c1_out = Vec::new();
        client.start(&mut c0c1_out);
        let mut buf = BytesMut::from(s0s1s2);
        let mut c2_out = Vec::new();
        assert!(client.process(&mut buf, &mut c2_out).unwrap());
        assert_eq!(client.kind(), Some(HandshakeKind::Complex0));
        assert_eq!(
            client.s2_valid(),
            Some(false),
            "recorded S2 signs another C1"
        );
        assert!(verify_c2s2(&FP_KEY, &s1_digest, &packet(&c2_out)).unwrap());
    }

    #[test]
    fn invalid_digest_falls_back_to_simple() {
        let (input, exp) = input_of("hs_invalid_digest_falls_back_to_simple");
        let c1 = packet(&input[1..1537]);
        assert_eq!(
            validate_digest(&c1, HandshakeKind::Complex0, &FP_KEY[..30])
                .unwrap()
                .is_some(),
            exp["digest_valid_schema0"].as_bool().unwrap()
        );
        assert_eq!(
            validate_digest(&c1, HandshakeKind::Complex1, &FP_KEY[..30])
                .unwrap()
                .is_some(),
            exp["digest_valid_schema1"].as_bool().unwrap()
        );
        let mut server = ServerHandshake::new(9, 10);
        let mut buf = BytesMut::from(&input[..]);
        let mut out = Vec::new();
        assert!(server.process(&mut buf, &mut out).unwrap());
        assert!(buf.is_empty());
        assert_eq!(
            out.len() as u64,
            exp["server_reply_length"].as_u64().unwrap()
        );
        assert_eq!(out[0], 3);
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..], "simple S2 echoes C1");
        assert_eq!(server.kind(), Some(HandshakeKind::Simple));
    }

    #[test]
    fn zero_version_c1_gets_simple_even_with_digest() {
        let mut rng = XorShift64Star::new(3);
        let (c1, _) =
            build_c1s1(&mut rng, 1, [0; 4], HandshakeKind::Complex1, &FP_KEY[..30]).unwrap();
        let mut server = ServerHandshake::new(1, 1);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[3]);
        buf.extend_from_slice(&c1);
        let mut out = Vec::new();
        server.process(&mut buf, &mut out).unwrap();
        assert_eq!(server.kind(), Some(HandshakeKind::Simple));
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
        assert_eq!(&out[5..9], &[0, 0, 0, 0]);
    }

    #[test]
    fn server_schema1_c1_gets_schema1_s1() {
        let mut client = ClientHandshake::new(true, 11, 12);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1);
        let c1 = packet(&c0c1[1..]);
        assert_eq!(&c1[4..8], &CLIENT_VERSION);
        assert!(validate_digest(&c1, HandshakeKind::Complex1, &FP_KEY[..30])
            .unwrap()
            .is_some());
        let mut server = ServerHandshake::new(13, 14);
        let mut out = Vec::new();
        server
            .process(&mut BytesMut::from(&c0c1[..]), &mut out)
            .unwrap();
        assert_eq!(server.kind(), Some(HandshakeKind::Complex1));
        assert_eq!(assert_complex_reply(&c1, &out), HandshakeKind::Complex1);
    }

    /// Runs a client and a server against each other, delivering bytes in pieces whose sizes
    /// come from `split_seed` (1 = byte at a time). Returns both ends and the trailing bytes
    /// the server saw after C2.
    fn run_pair(
        complex: bool,
        split_seed: u64,
        max_piece: usize,
    ) -> (ClientHandshake, ServerHandshake, BytesMut) {
        let mut client = ClientHandshake::new(complex, split_seed ^ 0x55, 1000);
        let mut server = ServerHandshake::new(split_seed ^ 0xaa, 2000);
        let mut splitter = XorShift64Star::new(split_seed);
        let mut to_server = Vec::new();
        client.start(&mut to_server);
        // The client's first chunk bytes follow C2 in the same stream.
        let trailer = [0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x01];
        let mut to_client = Vec::new();
        let (mut server_in, mut client_in) = (BytesMut::new(), BytesMut::new());
        let (mut client_done, mut server_done) = (false, false);
        let mut trailer_sent = false;
        for _ in 0..100_000 {
            if client_done && server_done && to_server.is_empty() {
                break;
            }
            let piece = 1 + (splitter.next_u64() as usize) % max_piece;
            let n = piece.min(to_server.len());
            server_in.extend_from_slice(&to_server[..n]);
            to_server.drain(..n);
            server_done = server.process(&mut server_in, &mut to_client).unwrap();
            let piece = 1 + (splitter.next_u64() as usize) % max_piece;
            let n = piece.min(to_client.len());
            client_in.extend_from_slice(&to_client[..n]);
            to_client.drain(..n);
            let was_done = client_done;
            client_done = client.process(&mut client_in, &mut to_server).unwrap();
            if client_done && !was_done && !trailer_sent {
                to_server.extend_from_slice(&trailer);
                trailer_sent = true;
            }
        }
        assert!(client_done && server_done);
        assert!(client_in.is_empty());
        assert_eq!(&server_in[..], &trailer);
        (client, server, server_in)
    }

    #[test]
    fn client_server_interop_random_splits() {
        for seed in 1..40u64 {
            for complex in [false, true] {
                let (client, server, _) = run_pair(complex, seed, 700);
                let expected = if complex {
                    HandshakeKind::Complex1
                } else {
                    HandshakeKind::Simple
                };
                assert_eq!(server.kind(), Some(expected));
                assert_eq!(client.kind(), Some(expected));
                assert_eq!(client.s2_valid(), complex.then_some(true));
            }
        }
    }

    #[test]
    fn client_server_interop_byte_at_a_time() {
        for complex in [false, true] {
            let (client, server, _) = run_pair(complex, 42, 1);
            assert_eq!(server.kind(), client.kind());
        }
    }

    #[test]
    fn simple_client_c2_echoes_s1() {
        let mut server = ServerHandshake::new(1, 2);
        let mut client = ClientHandshake::new(false, 3, 4);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1);
        let mut s0s1s2 = Vec::new();
        server
            .process(&mut BytesMut::from(&c0c1[..]), &mut s0s1s2)
            .unwrap();
        let mut c2 = Vec::new();
        assert!(client
            .process(&mut BytesMut::from(&s0s1s2[..]), &mut c2)
            .unwrap());
        assert_eq!(&c2[..], &s0s1s2[1..1 + HANDSHAKE_SIZE]);
        assert_eq!(&s0s1s2[1 + HANDSHAKE_SIZE..], &c0c1[1..], "S2 echoes C1");
    }

    #[test]
    fn complex_client_against_simple_server_echoes() {
        // A server that answers simple (zero version S1) gets an echo C2.
        let mut client = ClientHandshake::new(true, 3, 4);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1);
        let mut reply = vec![3u8];
        let mut s1 = [7u8; HANDSHAKE_SIZE];
        s1[4..8].copy_from_slice(&[0; 4]);
        reply.extend_from_slice(&s1);
        reply.extend_from_slice(&c0c1[1..]);
        let mut c2 = Vec::new();
        assert!(client
            .process(&mut BytesMut::from(&reply[..]), &mut c2)
            .unwrap());
        assert_eq!(client.kind(), Some(HandshakeKind::Simple));
        assert_eq!(client.s2_valid(), None);
        assert_eq!(&c2[..], &s1[..]);
    }

    #[test]
    fn client_process_without_start_sends_c0c1() {
        let mut client = ClientHandshake::new(true, 3, 4);
        let mut out = Vec::new();
        assert!(!client.process(&mut BytesMut::new(), &mut out).unwrap());
        assert_eq!(out.len(), 1537);
        assert_eq!(out[0], 3);
        client.start(&mut out);
        assert_eq!(out.len(), 1537, "start after process does not resend");
    }

    #[test]
    fn wrong_versions_rejected_at_first_byte() {
        for (byte, encrypted) in [(6u8, true), (8, true), (9, true), (0, false), (0xff, false)] {
            let mut server = ServerHandshake::new(1, 1);
            let mut out = Vec::new();
            let err = server
                .process(&mut BytesMut::from(&[byte][..]), &mut out)
                .unwrap_err();
            assert_eq!(
                matches!(err, HandshakeError::Encrypted(b) if b == byte),
                encrypted
            );
            assert!(err.to_string().contains("version"));
            assert!(out.is_empty());
            assert!(matches!(
                server.process(&mut BytesMut::from(&[3u8][..]), &mut out),
                Err(HandshakeError::AlreadyFailed)
            ));

            let mut client = ClientHandshake::new(true, 1, 1);
            let mut out = Vec::new();
            client.start(&mut out);
            let err = client
                .process(&mut BytesMut::from(&[byte][..]), &mut out)
                .unwrap_err();
            assert_eq!(matches!(err, HandshakeError::Encrypted(_)), encrypted);
        }
        let msg = HandshakeError::Encrypted(6).to_string();
        assert!(msg.contains("RTMPE"), "{msg}");
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift64Star::new(0);
        for round in 0..200u64 {
            let len = (rng.next_u64() % 5000) as usize;
            let mut data = vec![0u8; len];
            rng.fill(&mut data);
            if round % 2 == 0 {
                if let Some(first) = data.first_mut() {
                    *first = 3;
                }
            }
            if round % 3 == 0 {
                // Offset bytes at their maximum, to push digests to the block ends.
                for b in data.iter_mut().skip(1).take(1536) {
                    *b = 0xff;
                }
            }
            let mut server = ServerHandshake::new(round, 0);
            let mut out = Vec::new();
            let mut buf = BytesMut::from(&data[..]);
            let before = buf.len();
            match server.process(&mut buf, &mut out) {
                Ok(done) => {
                    let consumed = before - buf.len();
                    assert!(consumed == 0 || consumed == 1537 || consumed == 3073);
                    assert_eq!(done, consumed == 3073);
                    assert!(out.is_empty() || out.len() == 3073);
                }
                Err(_) => assert!(buf.len() == before && out.is_empty()),
            }
            let mut client = ClientHandshake::new(round % 2 == 0, round, 0);
            let mut out = Vec::new();
            let _ = client.process(&mut BytesMut::from(&data[..]), &mut out);
        }
    }

    #[test]
    fn prng_is_deterministic_and_nonzero() {
        let mut a = XorShift64Star::new(0);
        let mut b = XorShift64Star::new(0);
        let (mut x, mut y) = ([0u8; 37], [0u8; 37]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert!(x.iter().any(|&v| v != 0));
    }
}
