//! RTMP chunk stream (RTMP 1.0 spec, section 5.3): joining inbound chunks back into messages and
//! splitting outbound messages into chunks.
//!
//! The decoder is sans-IO: the caller appends socket bytes to a `BytesMut` and calls
//! [`ChunkDecoder::decode`] until it returns `Ok(None)`. Only whole chunks are consumed, so state
//! never has to be rolled back when input stops in the middle of a chunk.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

/// Chunk size both directions start with (spec 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// Largest chunk size accepted in Set Chunk Size. The spec allows up to 2^31-1, but a message
/// length is a 24-bit field, so a chunk can never usefully carry more than 0xFFFFFF bytes; a
/// larger value would only make us wait for (and buffer) a chunk bigger than any message.
pub const MAX_CHUNK_SIZE: u32 = 0x00FF_FFFF;

/// Value of the 24-bit timestamp field that announces a 4-byte extended timestamp.
const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;

/// Timestamps keep all 32 bits, as the RTMP spec has them: they wrap at 2^32 ms and the
/// server unwraps them to 64 bits, so a publish longer than 49.7 days stays continuous.
/// (SRS masks them to 31 bits, vector `chunk_ext_ts_bit31_masked`; with that mask a stream
/// would jump back after 24.8 days, so sluice differs here on purpose.)
const TIMESTAMP_MASK: u32 = 0xFFFF_FFFF;

/// Upper bound of the first reservation for a multi-chunk message: the declared length is
/// peer-controlled, so memory grows with the bytes that actually arrive instead.
const INITIAL_RESERVE: usize = 64 * 1024;

/// Largest chunk stream id a basic header can express (3-byte form: 64 + 255 + 255 * 256).
pub const MAX_CSID: u32 = 65_599;
/// Ids 0 and 1 are the escapes for the 2- and 3-byte basic header forms.
pub const MIN_CSID: u32 = 2;

/// Header of one RTMP message as rebuilt from its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageHeader {
    /// Absolute timestamp in milliseconds (31 bits on decode).
    pub timestamp: u32,
    pub length: u32,
    pub type_id: u8,
    pub stream_id: u32,
}

/// One complete message, still undecoded.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub csid: u32,
    pub header: MessageHeader,
    pub payload: Bytes,
}

/// What protects the decoder from a hostile peer.
#[derive(Debug, Clone, Copy)]
pub struct DecoderLimits {
    /// Largest message length accepted in a chunk header.
    pub max_message_size: u32,
    /// Largest number of distinct chunk stream ids one connection may use; each keeps state
    /// and possibly a partial message.
    pub max_chunk_streams: usize,
    /// Most bytes of unfinished messages held at once, across all chunk streams. Without
    /// it a peer that really sends the bytes could keep `max_chunk_streams` messages of
    /// `max_message_size` each half-sent; real clients interleave one large message (a
    /// video frame) with small ones.
    pub max_buffered: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_message_size: 16 * 1024 * 1024,
            max_chunk_streams: 64,
            max_buffered: 32 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("message length {len} exceeds the limit of {max} bytes")]
    MessageTooLarge { len: u32, max: u32 },
    #[error("too many chunk streams (limit {max})")]
    TooManyChunkStreams { max: usize },
    #[error("{held} bytes of unfinished messages would exceed the limit of {max}")]
    TooMuchBuffered { held: usize, max: usize },
    #[error(
        "chunk stream {0} starts with a fmt 2/3 header but has no previous header to inherit from"
    )]
    FreshChunkStreamWithoutHeader(u32),
    #[error(
        "fmt 0 chunk on chunk stream {csid} while a message is {received} of {length} bytes in"
    )]
    Fmt0InsidePartialMessage {
        csid: u32,
        received: u32,
        length: u32,
    },
    #[error("chunk stream {csid}: message length changed from {old} to {new} in the middle of a message")]
    LengthChangedInsidePartialMessage { csid: u32, old: u32, new: u32 },
    #[error("invalid chunk size {0} (accepted: 1..={MAX_CHUNK_SIZE})")]
    BadChunkSize(u32),
}

/// A message being assembled from several chunks.
#[derive(Debug)]
struct Partial {
    data: BytesMut,
}

/// Per chunk stream state: what fmt 1/2/3 headers inherit.
#[derive(Debug, Default)]
struct StreamState {
    /// Header of the last (or in-progress) message.
    header: MessageHeader,
    /// Delta a fmt 3 chunk starting a new message re-applies; after fmt 0 it is the absolute
    /// timestamp (SRS vector `chunk_vav_fmt3_new_message_reuses_delta`).
    delta: u32,
    /// Whether the last fmt 0/1/2 header used the extended timestamp, which fmt 3 inherits.
    extended: bool,
    /// Raw 4 bytes of that extended timestamp, to recognise it when repeated after fmt 3.
    extended_raw: u32,
    partial: Option<Partial>,
}

/// Chunk streams with an id below this live in an array indexed by id instead of the map:
/// servers, encoders and players send everything on ids 2..=7, and the lookup happens for
/// every chunk, so the common case neither hashes nor follows a pointer to a table.
const INLINE_CSIDS: usize = 8;

/// The chunk streams a connection has used. Entries are never removed (an aborted stream
/// keeps its header for fmt 1/2/3 inheritance), so `len` only grows.
#[derive(Debug, Default)]
struct Streams {
    inline: [Option<StreamState>; INLINE_CSIDS],
    other: HashMap<u32, StreamState>,
    len: usize,
}

impl Streams {
    fn get(&self, csid: u32) -> Option<&StreamState> {
        match usize::try_from(csid).ok().and_then(|i| self.inline.get(i)) {
            Some(slot) => slot.as_ref(),
            None => self.other.get(&csid),
        }
    }

    fn get_mut(&mut self, csid: u32) -> Option<&mut StreamState> {
        match usize::try_from(csid)
            .ok()
            .and_then(|i| self.inline.get_mut(i))
        {
            Some(slot) => slot.as_mut(),
            None => self.other.get_mut(&csid),
        }
    }

    fn get_or_insert(&mut self, csid: u32) -> &mut StreamState {
        let len = &mut self.len;
        match usize::try_from(csid)
            .ok()
            .and_then(|i| self.inline.get_mut(i))
        {
            Some(slot) => slot.get_or_insert_with(|| {
                *len += 1;
                StreamState::default()
            }),
            None => self.other.entry(csid).or_insert_with(|| {
                *len += 1;
                StreamState::default()
            }),
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    fn values(&self) -> impl Iterator<Item = &StreamState> {
        self.inline.iter().flatten().chain(self.other.values())
    }
}

/// A complete message lent to a callback: the payload is borrowed from the caller's buffer
/// (or the decoder's reassembly buffer) only for the duration of the call.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    pub csid: u32,
    pub header: MessageHeader,
    pub payload: &'a [u8],
}

/// Where a completed message's payload is, before it is handed out.
enum Completed {
    /// A whole message in one chunk: the first `n` bytes of the input buffer, not consumed yet.
    InInput(usize),
    /// Reassembled from several chunks.
    Assembled(BytesMut),
}

/// What the next complete chunk in the buffer means, computed without touching any state.
#[derive(Debug)]
struct Plan {
    csid: u32,
    header_len: usize,
    piece: usize,
    /// Bytes of this chunk stream's message already held before this piece.
    held: usize,
    header: MessageHeader,
    delta: u32,
    extended: bool,
    extended_raw: u32,
}

/// Reads `N` bytes at `pos`, or `None` when the buffer is too short.
fn take<const N: usize>(buf: &[u8], pos: usize) -> Option<[u8; N]> {
    let end = pos.checked_add(N)?;
    buf.get(pos..end)?.try_into().ok()
}

fn be24(b: [u8; 3]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// Parses the basic header: (fmt, csid, bytes used).
fn basic_header(buf: &[u8]) -> Option<(u8, u32, usize)> {
    let first = *buf.first()?;
    let fmt = first >> 6;
    match first & 0x3F {
        0 => {
            let [b1] = take::<1>(buf, 1)?;
            Some((fmt, 64 + u32::from(b1), 2))
        }
        1 => {
            let [b1, b2] = take::<2>(buf, 1)?;
            Some((fmt, 64 + u32::from(b1) + u32::from(b2) * 256, 3))
        }
        id => Some((fmt, u32::from(id), 1)),
    }
}

/// Joins inbound chunks into messages.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: DecoderLimits,
    chunk_size: u32,
    streams: Streams,
    /// Bytes held in partial messages, checked against `max_buffered`.
    buffered: usize,
}

impl ChunkDecoder {
    pub fn new(limits: DecoderLimits) -> Self {
        ChunkDecoder {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Streams::default(),
            buffered: 0,
        }
    }

    /// Applies a peer's Set Chunk Size; it governs the very next chunk.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the limits from the next chunk on: a server keeps them tight until a
    /// client is known to publish, then raises them. Partial messages already held
    /// stay (a lower `max_buffered` only refuses what comes next).
    pub fn set_limits(&mut self, limits: DecoderLimits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> DecoderLimits {
        self.limits
    }

    /// Bytes held in partial messages now.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Abort message: drops the partial message of `csid`, keeping its header for inheritance.
    pub fn abort(&mut self, csid: u32) {
        if let Some(state) = self.streams.get_mut(csid) {
            if let Some(p) = state.partial.take() {
                self.buffered = self.buffered.saturating_sub(p.data.len());
            }
        }
    }

    /// Consumes complete chunks from the front of `buf` until one message completes.
    ///
    /// `Ok(None)`: need more bytes (a partial chunk stays in `buf`). Must be called again after
    /// each message because a Set Chunk Size applies to the very next chunk.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let Some((plan, done)) = self.next_chunk(buf)? else {
                return Ok(None);
            };
            let payload = match done {
                None => continue,
                // Whole message in one chunk: hand out the socket buffer itself.
                Some(Completed::InInput(n)) => buf.split_to(n).freeze(),
                Some(Completed::Assembled(data)) => data.freeze(),
            };
            return Ok(Some(RawMessage {
                csid: plan.csid,
                header: plan.header,
                payload,
            }));
        }
    }

    /// [`ChunkDecoder::decode`] for a caller that is done with the message when `f` returns:
    /// the payload is lent instead of split off the buffer, which spares a player reading
    /// thousands of small messages a second a reference count (or an allocation) per message.
    /// Same rules, limits and errors as `decode`, and the same bytes consumed.
    pub fn decode_with<R>(
        &mut self,
        buf: &mut BytesMut,
        f: impl FnOnce(MessageRef<'_>) -> R,
    ) -> Result<Option<R>, ChunkError> {
        loop {
            let Some((plan, done)) = self.next_chunk(buf)? else {
                return Ok(None);
            };
            let message = |payload| MessageRef {
                csid: plan.csid,
                header: plan.header,
                payload,
            };
            let r = match done {
                None => continue,
                Some(Completed::InInput(n)) => {
                    let r = f(message(buf.get(..n).unwrap_or_default()));
                    buf.advance(n);
                    r
                }
                Some(Completed::Assembled(data)) => f(message(&data)),
            };
            return Ok(Some(r));
        }
    }

    /// Consumes the next chunk if it is complete in `buf`: its plan, and the message it
    /// completes, if any.
    fn next_chunk(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<(Plan, Option<Completed>)>, ChunkError> {
        let Some(plan) = self.plan(buf)? else {
            return Ok(None);
        };
        // A piece that does not complete its message is held: bound the total.
        let completes = plan.held + plan.piece >= plan.header.length as usize;
        if !completes && self.buffered + plan.piece > self.limits.max_buffered {
            return Err(ChunkError::TooMuchBuffered {
                held: self.buffered + plan.piece,
                max: self.limits.max_buffered,
            });
        }
        buf.advance(plan.header_len);
        let done = self.commit(&plan, buf);
        Ok(Some((plan, done)))
    }

    /// Works out the next chunk if it is completely in `buf`, validating it against the limits.
    fn plan(&self, buf: &[u8]) -> Result<Option<Plan>, ChunkError> {
        let Some((fmt, csid, mut pos)) = basic_header(buf) else {
            return Ok(None);
        };
        let state = self.streams.get(csid);
        if state.is_none() && self.streams.len() >= self.limits.max_chunk_streams {
            return Err(ChunkError::TooManyChunkStreams {
                max: self.limits.max_chunk_streams,
            });
        }
        // (header, received) of the message in progress on this stream, if any.
        let in_progress = state.and_then(|s| {
            s.partial
                .as_ref()
                .map(|p| (s.header, u32::try_from(p.data.len()).unwrap_or(u32::MAX)))
        });
        let prev = state.map(|s| s.header).unwrap_or_default();

        let mut plan = Plan {
            csid,
            header_len: 0,
            piece: 0,
            held: state
                .and_then(|s| s.partial.as_ref())
                .map_or(0, |p| p.data.len()),
            header: prev,
            delta: state.map_or(0, |s| s.delta),
            extended: state.is_some_and(|s| s.extended),
            extended_raw: state.map_or(0, |s| s.extended_raw),
        };

        if fmt < 3 {
            if fmt == 2 && state.is_none() {
                return Err(ChunkError::FreshChunkStreamWithoutHeader(csid));
            }
            if fmt == 0 {
                if let Some((header, received)) = in_progress {
                    return Err(ChunkError::Fmt0InsidePartialMessage {
                        csid,
                        received,
                        length: header.length,
                    });
                }
            }
            // fmt 0: 11 bytes, fmt 1: 7, fmt 2: 3; the timestamp (or delta) always leads.
            let Some(ts) = take::<3>(buf, pos) else {
                return Ok(None);
            };
            pos += 3;
            let mut ts = be24(ts);
            let mut length = plan.header.length;
            if fmt <= 1 {
                let Some([l0, l1, l2, type_id]) = take::<4>(buf, pos) else {
                    return Ok(None);
                };
                pos += 4;
                length = be24([l0, l1, l2]);
                plan.header.type_id = type_id;
            }
            if fmt == 0 {
                let Some(sid) = take::<4>(buf, pos) else {
                    return Ok(None);
                };
                pos += 4;
                // The one little-endian field of RTMP.
                plan.header.stream_id = u32::from_le_bytes(sid);
            }
            plan.extended = ts == EXTENDED_TIMESTAMP;
            if plan.extended {
                let Some(ext) = take::<4>(buf, pos) else {
                    return Ok(None);
                };
                pos += 4;
                plan.extended_raw = u32::from_be_bytes(ext);
                ts = plan.extended_raw & TIMESTAMP_MASK;
            }
            plan.delta = ts;
            if length > self.limits.max_message_size {
                return Err(ChunkError::MessageTooLarge {
                    len: length,
                    max: self.limits.max_message_size,
                });
            }
            match in_progress {
                // A fmt 1/2 continuation (not what the spec asks for, tolerated as SRS does) may
                // not change the size of the message being assembled; its timestamp is ignored.
                Some((header, _)) => {
                    if length != header.length {
                        return Err(ChunkError::LengthChangedInsidePartialMessage {
                            csid,
                            old: header.length,
                            new: length,
                        });
                    }
                    plan.header = header;
                }
                None => {
                    plan.header.length = length;
                    plan.header.timestamp = if fmt == 0 {
                        ts
                    } else {
                        // fmt 1 on a fresh stream is librtmp's ping (vector
                        // `chunk_ping_fresh_fmt1`): inherit from an all-zero header.
                        prev.timestamp.wrapping_add(ts) & TIMESTAMP_MASK
                    };
                }
            }
        } else {
            let Some(state) = state else {
                return Err(ChunkError::FreshChunkStreamWithoutHeader(csid));
            };
            if state.extended {
                match in_progress {
                    // Continuation: Adobe repeats the extended timestamp after every fmt 3
                    // header, librtmp/ffmpeg do not. Like SRS, consume the 4 bytes only when they
                    // equal the stored value; a shorter buffer that still matches must wait.
                    Some(_) => {
                        let expected = state.extended_raw.to_be_bytes();
                        let avail = buf.get(pos..).unwrap_or_default();
                        let n = avail.len().min(4);
                        if avail.get(..n) == expected.get(..n) {
                            if n < 4 {
                                return Ok(None);
                            }
                            pos += 4;
                        }
                    }
                    // A fmt 3 chunk starting a new message carries the field for sure.
                    None => {
                        let Some(ext) = take::<4>(buf, pos) else {
                            return Ok(None);
                        };
                        pos += 4;
                        plan.extended_raw = u32::from_be_bytes(ext);
                        plan.delta = plan.extended_raw & TIMESTAMP_MASK;
                    }
                }
            }
            if in_progress.is_none() {
                plan.header.timestamp = prev.timestamp.wrapping_add(plan.delta) & TIMESTAMP_MASK;
            }
        }

        let received = in_progress.map_or(0, |(_, r)| r);
        let remaining = plan.header.length.saturating_sub(received);
        let piece = remaining.min(self.chunk_size);
        let piece = usize::try_from(piece).unwrap_or(usize::MAX);
        match pos.checked_add(piece) {
            Some(end) if end <= buf.len() => {}
            _ => return Ok(None),
        }
        plan.header_len = pos;
        plan.piece = piece;
        Ok(Some(plan))
    }

    /// Applies a planned chunk whose header was already consumed; its payload is at the front of
    /// `buf`. Returns the message it completes, if any.
    fn commit(&mut self, plan: &Plan, buf: &mut BytesMut) -> Option<Completed> {
        let state = self.streams.get_or_insert(plan.csid);
        state.header = plan.header;
        state.delta = plan.delta;
        state.extended = plan.extended;
        state.extended_raw = plan.extended_raw;
        let length = usize::try_from(plan.header.length).unwrap_or(usize::MAX);

        match state.partial.as_mut() {
            None if plan.piece == length => Some(Completed::InInput(plan.piece)),
            None => {
                let mut data = BytesMut::with_capacity(length.min(INITIAL_RESERVE));
                data.extend_from_slice(buf.get(..plan.piece).unwrap_or_default());
                buf.advance(plan.piece);
                self.buffered += data.len();
                state.partial = Some(Partial { data });
                None
            }
            Some(partial) => {
                partial
                    .data
                    .extend_from_slice(buf.get(..plan.piece).unwrap_or_default());
                buf.advance(plan.piece);
                if partial.data.len() < length {
                    self.buffered += plan.piece;
                    return None;
                }
                let data = std::mem::take(&mut partial.data);
                state.partial = None;
                // What was held before this final piece is released.
                self.buffered = self.buffered.saturating_sub(data.len() - plan.piece);
                Some(Completed::Assembled(data))
            }
        }
    }
}

/// Where chunk headers are written.
trait HeaderSink {
    fn put(&mut self, bytes: &[u8]);
}

impl HeaderSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes a basic header. Ids outside 2..=65599 cannot be expressed and are clamped (a caller bug).
fn put_basic_header(out: &mut impl HeaderSink, fmt: u8, csid: u32) {
    debug_assert!((MIN_CSID..=MAX_CSID).contains(&csid), "csid {csid}");
    let csid = csid.clamp(MIN_CSID, MAX_CSID);
    let fmt = fmt << 6;
    if csid < 64 {
        out.put(&[fmt | csid as u8]);
    } else if csid < 64 + 256 {
        out.put(&[fmt, (csid - 64) as u8]);
    } else {
        let id = (csid - 64).to_le_bytes();
        out.put(&[fmt | 1, id[0], id[1]]);
    }
}

/// Writes the 11-byte fmt 0 message header and its extended timestamp, if needed.
fn put_fmt0_message_header(out: &mut impl HeaderSink, header: &MessageHeader, length: u32) {
    let ts_field = header.timestamp.min(EXTENDED_TIMESTAMP);
    out.put(&ts_field.to_be_bytes()[1..]);
    out.put(&length.to_be_bytes()[1..]);
    out.put(&[header.type_id]);
    out.put(&header.stream_id.to_le_bytes());
    if header.timestamp >= EXTENDED_TIMESTAMP {
        out.put(&header.timestamp.to_be_bytes());
    }
}

/// fmt 3 header. The extended timestamp is repeated, as the Adobe spec describes and SRS sends;
/// our decoder accepts both conventions.
fn put_fmt3_header(out: &mut impl HeaderSink, csid: u32, timestamp: u32) {
    put_basic_header(out, 3, csid);
    if timestamp >= EXTENDED_TIMESTAMP {
        out.put(&timestamp.to_be_bytes());
    }
}

/// One message's chunks as pieces of two buffers: the caller's header buffer and the
/// payload (see [`ChunkEncoder::layout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLayout {
    /// The fmt 0 header, in the header buffer.
    pub fmt0: std::ops::Range<usize>,
    /// The fmt 3 header put before every chunk after the first (empty for one chunk).
    pub fmt3: std::ops::Range<usize>,
    step: usize,
    payload_len: usize,
}

/// Where the bytes of one piece of a chunked message are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkPiece {
    /// A range of the header buffer.
    Header(std::ops::Range<usize>),
    /// A range of the payload.
    Payload(std::ops::Range<usize>),
}

impl ChunkLayout {
    /// Chunks the payload is cut into (at least one, whose payload may be empty).
    pub fn chunks(&self) -> usize {
        self.payload_len.div_ceil(self.step).max(1)
    }

    /// Pieces [`ChunkLayout::pieces`] yields: a header and a payload slice per chunk
    /// (an empty payload yields its header only).
    pub fn piece_count(&self) -> usize {
        if self.payload_len == 0 {
            1
        } else {
            2 * self.chunks()
        }
    }

    /// The pieces in wire order.
    pub fn pieces(&self) -> impl Iterator<Item = ChunkPiece> + '_ {
        let fmt0 = std::iter::once(ChunkPiece::Header(self.fmt0.clone()));
        let body = (0..self.payload_len)
            .step_by(self.step)
            .enumerate()
            .flat_map(move |(i, start)| {
                let end = self.payload_len.min(start.saturating_add(self.step));
                let hdr = (i > 0).then(|| ChunkPiece::Header(self.fmt3.clone()));
                hdr.into_iter()
                    .chain(std::iter::once(ChunkPiece::Payload(start..end)))
            });
        fmt0.chain(body)
    }
}

/// Splits outbound messages into chunks: the first with a fmt 0 header, the rest fmt 3. Always
/// using fmt 0 first makes a message's chunk headers depend only on the message and the chunk
/// size, so they can be built once and shared by every player.
#[derive(Debug, Clone)]
pub struct ChunkEncoder {
    chunk_size: u32,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// The caller sends the Set Chunk Size message itself before calling this. Out-of-range
    /// sizes are clamped to 1..=MAX_CHUNK_SIZE.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE);
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Message length written in the header; `header.length` is ignored in favour of the real
    /// payload length so the two cannot disagree. Payloads over 0xFFFFFF bytes cannot be framed.
    fn length_of(payload_len: usize) -> Option<u32> {
        let len = u32::try_from(payload_len).ok()?;
        debug_assert!(len <= 0x00FF_FFFF, "RTMP message too long: {len}");
        (len <= 0x00FF_FFFF).then_some(len)
    }

    fn step(&self) -> usize {
        usize::try_from(self.chunk_size)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// Appends the chunks of one message: headers are small `Bytes` (the fmt 3 header built once
    /// and cloned), payload pieces are slices of `payload`, so media bytes are never copied.
    pub fn encode(&self, csid: u32, header: &MessageHeader, payload: &Bytes, out: &mut Vec<Bytes>) {
        let Some(length) = Self::length_of(payload.len()) else {
            return;
        };
        let mut first = Vec::with_capacity(18);
        put_basic_header(&mut first, 0, csid);
        put_fmt0_message_header(&mut first, header, length);
        out.push(Bytes::from(first));

        let step = self.step();
        let mut fmt3: Option<Bytes> = None;
        let mut start: usize = 0;
        loop {
            let end = payload.len().min(start.saturating_add(step));
            if end > start {
                out.push(payload.slice(start..end));
            }
            start = end;
            if start >= payload.len() {
                break;
            }
            let h = fmt3.get_or_insert_with(|| {
                let mut h = Vec::with_capacity(8);
                put_fmt3_header(&mut h, csid, header.timestamp);
                Bytes::from(h)
            });
            out.push(h.clone());
        }
    }

    /// The borrowing form, for a writer that sends straight from shared buffers
    /// with one vectored write: appends the message's chunk headers to `headers` and
    /// returns where they are, so the caller can interleave them with slices of a
    /// payload it only borrows. Nothing is allocated per message and no reference
    /// count is touched. `None` when the payload is too long to be framed.
    pub fn layout(
        &self,
        csid: u32,
        header: &MessageHeader,
        payload_len: usize,
        headers: &mut Vec<u8>,
    ) -> Option<ChunkLayout> {
        let length = Self::length_of(payload_len)?;
        let start = headers.len();
        put_basic_header(headers, 0, csid);
        put_fmt0_message_header(headers, header, length);
        let fmt0 = start..headers.len();
        let step = self.step();
        let fmt3 = if payload_len > step {
            let s = headers.len();
            put_fmt3_header(headers, csid, header.timestamp);
            s..headers.len()
        } else {
            fmt0.end..fmt0.end
        };
        Some(ChunkLayout {
            fmt0,
            fmt3,
            step,
            payload_len,
        })
    }

    /// Same as [`ChunkEncoder::encode`], copying into one buffer (for small control/command messages).
    pub fn encode_into(
        &self,
        csid: u32,
        header: &MessageHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let Some(length) = Self::length_of(payload.len()) else {
            return;
        };
        put_basic_header(out, 0, csid);
        put_fmt0_message_header(out, header, length);
        let mut pieces = payload.chunks(self.step());
        if let Some(piece) = pieces.next() {
            out.extend_from_slice(piece);
        }
        for piece in pieces {
            put_fmt3_header(out, csid, header.timestamp);
            out.extend_from_slice(piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes until the decoder refuses the input: (messages before, the error).
    fn decode_until_error(dec: &mut ChunkDecoder, buf: &mut BytesMut) -> (usize, ChunkError) {
        let mut n = 0;
        loop {
            match dec.decode(buf) {
                Ok(Some(_)) => n += 1,
                Ok(None) => panic!("expected an error"),
                Err(e) => return (n, e),
            }
        }
    }
    use serde_json::Value;
    use sha2::{Digest, Sha256};

    const VECTORS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/vectors.json"
    ));

    fn vectors(category: &str) -> Vec<Value> {
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        all["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["category"] == category)
            .cloned()
            .collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Tiny deterministic PRNG for split points and fuzzing.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Feeds `input` in the given piece sizes (cycled), collecting every message.
    fn decode_pieces(
        dec: &mut ChunkDecoder,
        input: &[u8],
        mut piece: impl FnMut() -> usize,
    ) -> Result<Vec<RawMessage>, ChunkError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let n = piece().clamp(1, input.len() - pos);
            buf.extend_from_slice(&input[pos..pos + n]);
            pos += n;
            while let Some(m) = dec.decode(&mut buf)? {
                out.push(m);
            }
        }
        assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
        Ok(out)
    }

    fn check_messages(name: &str, got: &[RawMessage], expected: &Value) {
        let exp = expected["messages"].as_array().unwrap();
        assert_eq!(got.len(), exp.len(), "{name}: message count");
        for (m, e) in got.iter().zip(exp) {
            assert_eq!(u64::from(m.csid), e["csid"].as_u64().unwrap(), "{name}");
            assert_eq!(
                u64::from(m.header.type_id),
                e["type"].as_u64().unwrap(),
                "{name}"
            );
            // Our one deliberate difference from SRS: no 31-bit mask (see TIMESTAMP_MASK).
            let want_ts = if name == "chunk_ext_ts_bit31_masked" {
                0xFF01_0203
            } else {
                e["timestamp"].as_u64().unwrap()
            };
            assert_eq!(u64::from(m.header.timestamp), want_ts, "{name}");
            assert_eq!(u64::from(m.header.length), e["length"].as_u64().unwrap());
            assert_eq!(m.payload.len() as u64, e["length"].as_u64().unwrap());
            assert_eq!(
                u64::from(m.header.stream_id),
                e["stream_id"].as_u64().unwrap(),
                "{name}"
            );
            if let Some(p) = e["payload_hex"].as_str() {
                assert_eq!(hex(&m.payload), p, "{name}");
            }
            if let Some(p) = e["payload_prefix_hex"].as_str() {
                assert!(hex(&m.payload).starts_with(p), "{name}");
            }
            if let Some(h) = e["payload_sha256"].as_str() {
                assert_eq!(hex(&Sha256::digest(&m.payload)), h, "{name}");
            }
        }
    }

    #[test]
    fn chunk_vectors_whole_byte_by_byte_and_random_splits() {
        let vs = vectors("rtmp_chunk");
        assert!(vs.len() >= 14, "expected the rtmp_chunk vectors");
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for v in vs {
            let name = v["name"].as_str().unwrap();
            let input = unhex(v["input_hex"].as_str().unwrap());
            let expected = &v["expected"];
            let wants_error = expected["error"].as_bool() == Some(true);
            // Whole, byte by byte, and random pieces (several seeds).
            let mut runs: Vec<Box<dyn FnMut() -> usize>> =
                vec![Box::new(|| usize::MAX), Box::new(|| 1)];
            for _ in 0..20 {
                let mut r = XorShift(rng.next() | 1);
                runs.push(Box::new(move || 1 + r.below(40)));
            }
            for run in runs {
                let mut dec = ChunkDecoder::new(DecoderLimits::default());
                let res = decode_pieces(&mut dec, &input, run);
                if wants_error {
                    assert!(
                        matches!(res, Err(ChunkError::Fmt0InsidePartialMessage { .. })),
                        "{name}: {res:?}"
                    );
                } else {
                    let got = res.unwrap_or_else(|e| panic!("{name}: {e}"));
                    check_messages(name, &got, expected);
                }
            }
        }
    }

    #[test]
    fn every_split_point_of_every_vector() {
        for v in vectors("rtmp_chunk") {
            let name = v["name"].as_str().unwrap();
            if v["expected"]["error"].as_bool() == Some(true) {
                continue;
            }
            let input = unhex(v["input_hex"].as_str().unwrap());
            for split in 0..=input.len() {
                let mut dec = ChunkDecoder::new(DecoderLimits::default());
                let mut buf = BytesMut::from(&input[..split]);
                let mut got = Vec::new();
                while let Some(m) = dec.decode(&mut buf).unwrap() {
                    got.push(m);
                }
                buf.extend_from_slice(&input[split..]);
                while let Some(m) = dec.decode(&mut buf).unwrap() {
                    got.push(m);
                }
                assert!(buf.is_empty(), "{name} split {split}");
                check_messages(name, &got, &v["expected"]);
            }
        }
    }

    /// Runs `decode` and `decode_with` side by side over `input` fed in pieces: after every
    /// call both must agree on the message, the bytes consumed and the error.
    fn lockstep(input: &[u8], limits: DecoderLimits, mut piece: impl FnMut() -> usize) -> usize {
        let (mut a, mut b) = (ChunkDecoder::new(limits), ChunkDecoder::new(limits));
        let (mut buf_a, mut buf_b) = (BytesMut::new(), BytesMut::new());
        let mut messages = 0;
        let mut pos = 0;
        while pos < input.len() {
            let n = piece().clamp(1, input.len() - pos);
            buf_a.extend_from_slice(&input[pos..pos + n]);
            buf_b.extend_from_slice(&input[pos..pos + n]);
            pos += n;
            loop {
                let ra = a.decode(&mut buf_a);
                let rb = b.decode_with(&mut buf_b, |m| (m.csid, m.header, m.payload.to_vec()));
                assert_eq!(buf_a.len(), buf_b.len(), "bytes consumed");
                match (ra, rb) {
                    (Ok(Some(ma)), Ok(Some((csid, header, payload)))) => {
                        assert_eq!((ma.csid, ma.header), (csid, header));
                        assert_eq!(&ma.payload[..], &payload[..]);
                        messages += 1;
                        // Set Chunk Size applies to the next chunk, in both.
                        if header.type_id == 1 && payload.len() >= 4 {
                            let size = u32::from_be_bytes([
                                payload[0], payload[1], payload[2], payload[3],
                            ]);
                            assert_eq!(
                                a.set_chunk_size(size).is_ok(),
                                b.set_chunk_size(size).is_ok()
                            );
                        }
                    }
                    (Ok(None), Ok(None)) => break,
                    (Err(ea), Err(eb)) => {
                        assert_eq!(ea.to_string(), eb.to_string());
                        return messages;
                    }
                    (ra, rb) => panic!("decode {ra:?} but decode_with {rb:?}"),
                }
            }
        }
        messages
    }

    #[test]
    fn decode_with_agrees_with_decode() {
        let mut rng = XorShift(0x0123_4567_89AB_CDEF);
        // The chunk vectors (the error one included), whole and in random pieces.
        for v in vectors("rtmp_chunk") {
            let input = unhex(v["input_hex"].as_str().unwrap());
            lockstep(&input, DecoderLimits::default(), || usize::MAX);
            let mut r = XorShift(rng.next() | 1);
            lockstep(&input, DecoderLimits::default(), || 1 + r.below(40));
        }
        // Encoder output: one- and multi-chunk messages, extended timestamps, all three
        // basic header forms, a chunk size change half way.
        let mut enc = ChunkEncoder::new();
        let mut input = Vec::new();
        for (i, size) in [0usize, 1, 127, 128, 129, 5000, 70_000]
            .into_iter()
            .enumerate()
        {
            for ts in [0, 40, 0xFF_FFFF, 0x1234_5678] {
                let payload: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
                let header = MessageHeader {
                    timestamp: ts,
                    length: size as u32,
                    type_id: 9,
                    stream_id: 1,
                };
                enc.encode_into([3, 6, 64, 400][i % 4], &header, &payload, &mut input);
            }
            if i == 3 {
                let set = MessageHeader {
                    timestamp: 0,
                    length: 4,
                    type_id: 1,
                    stream_id: 0,
                };
                enc.encode_into(2, &set, &4096u32.to_be_bytes(), &mut input);
                enc.set_chunk_size(4096);
            }
        }
        for max in [usize::MAX, 1000, 13] {
            let mut r = XorShift(rng.next() | 1);
            let n = lockstep(&input, DecoderLimits::default(), || {
                1 + r.below(max.min(1 << 20))
            });
            assert_eq!(n, 7 * 4 + 1);
        }
        // Garbage: the same errors at the same byte.
        let limits = DecoderLimits {
            max_message_size: 64 * 1024,
            max_chunk_streams: 8,
            max_buffered: 4096,
        };
        for _ in 0..20_000 {
            let len = rng.below(200);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            for b in bytes.iter_mut().skip(4).step_by(5) {
                *b &= 0x03;
            }
            let mut r = XorShift(rng.next() | 1);
            lockstep(&bytes, limits, || 1 + r.below(30));
        }
    }

    #[test]
    fn chunk_stream_limit_counts_inline_and_mapped_ids() {
        let (dec, n, err) = open_chunk_streams_until_refused(&[3, 64, 7, MAX_CSID, 3, 64, 8]);
        // Ids seen again are not new streams; the fifth distinct one is refused.
        assert_eq!(n, 6);
        assert_eq!(dec.streams.len(), 4);
        assert!(matches!(err, ChunkError::TooManyChunkStreams { max: 4 }));
    }

    #[test]
    fn message_encoding_vectors() {
        for v in vectors("rtmp_message_encoding") {
            let name = v["name"].as_str().unwrap();
            let input = unhex(v["input_hex"].as_str().unwrap());
            let e = &v["expected"];
            if let Some(p) = e["payload_hex"].as_str() {
                let header = MessageHeader {
                    timestamp: e["timestamp"].as_u64().unwrap() as u32,
                    length: e["length"].as_u64().unwrap() as u32,
                    type_id: e["type"].as_u64().unwrap() as u8,
                    stream_id: e["stream_id"].as_u64().unwrap() as u32,
                };
                let csid = e["csid"].as_u64().unwrap() as u32;
                let payload = unhex(p);
                let mut out = Vec::new();
                ChunkEncoder::new().encode_into(csid, &header, &payload, &mut out);
                assert_eq!(hex(&out), hex(&input), "{name}");
                let mut parts = Vec::new();
                ChunkEncoder::new().encode(
                    csid,
                    &header,
                    &Bytes::from(payload.clone()),
                    &mut parts,
                );
                assert_eq!(hex(&parts.concat()), hex(&input), "{name}");

                let mut dec = ChunkDecoder::new(DecoderLimits::default());
                let m = dec
                    .decode(&mut BytesMut::from(&input[..]))
                    .unwrap()
                    .unwrap();
                assert_eq!((m.csid, m.header), (csid, header), "{name}");
                assert_eq!(&m.payload[..], &payload[..], "{name}");
            }
        }
    }

    #[test]
    fn fmt0_header_layout_vectors() {
        // SRS wrote a raw 0x01 as first byte; we compare the message header after it.
        let h = MessageHeader {
            timestamp: 0x345678,
            length: 0x123456,
            type_id: 2,
            stream_id: 0x12345678,
        };
        let mut out = Vec::new();
        put_fmt0_message_header(&mut out, &h, h.length);
        assert_eq!(hex(&out), "3456781234560278563412");

        let h = MessageHeader {
            timestamp: 0x12345678,
            ..h
        };
        let mut out = Vec::new();
        put_fmt0_message_header(&mut out, &h, h.length);
        assert_eq!(hex(&out), "ffffff123456027856341212345678");
        assert_eq!(out.len() + 1, 16);

        let mut out = Vec::new();
        put_fmt3_header(&mut out, 33, 0x12345678);
        assert_eq!(hex(&out), "e112345678");
        let mut out = Vec::new();
        put_fmt3_header(&mut out, 33, 0x234567);
        assert_eq!(hex(&out), "e1");
    }

    #[test]
    fn basic_header_forms_round_trip() {
        for csid in [2, 3, 63, 64, 65, 319, 320, 4161, 65_599] {
            let mut out = Vec::new();
            put_basic_header(&mut out, 2, csid);
            let expected_len = if csid < 64 {
                1
            } else if csid < 320 {
                2
            } else {
                3
            };
            assert_eq!(basic_header(&out), Some((2, csid, expected_len)));
        }
    }

    #[test]
    fn set_chunk_size_then_large_message() {
        let enc_small = ChunkEncoder::new();
        let mut enc_big = ChunkEncoder::new();
        enc_big.set_chunk_size(4096);
        let mut input = Vec::new();
        let scs = MessageHeader {
            timestamp: 0,
            length: 4,
            type_id: 1,
            stream_id: 0,
        };
        enc_small.encode_into(2, &scs, &4096u32.to_be_bytes(), &mut input);
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let video = MessageHeader {
            timestamp: 40,
            length: 10_000,
            type_id: 9,
            stream_id: 1,
        };
        enc_big.encode_into(6, &video, &payload, &mut input);
        // 10000 bytes at 4096 per chunk: 3 chunks, 2 fmt-3 headers.
        assert_eq!(input.len(), 16 + 12 + 10_000 + 2);

        for step in [1usize, 7, 100, usize::MAX] {
            let mut dec = ChunkDecoder::new(DecoderLimits::default());
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in input.chunks(step.min(input.len())) {
                buf.extend_from_slice(piece);
                while let Some(m) = dec.decode(&mut buf).unwrap() {
                    if m.header.type_id == 1 {
                        let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                        dec.set_chunk_size(size).unwrap();
                    }
                    got.push(m);
                }
            }
            assert_eq!(got.len(), 2);
            assert_eq!(dec.chunk_size(), 4096);
            assert_eq!(got[1].header, video);
            assert_eq!(&got[1].payload[..], &payload[..]);
        }
    }

    #[test]
    fn bad_chunk_sizes_rejected() {
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        assert!(matches!(
            dec.set_chunk_size(0),
            Err(ChunkError::BadChunkSize(0))
        ));
        assert!(dec.set_chunk_size(MAX_CHUNK_SIZE + 1).is_err());
        assert!(dec.set_chunk_size(0x8000_0000).is_err());
        dec.set_chunk_size(1).unwrap();
        dec.set_chunk_size(MAX_CHUNK_SIZE).unwrap();
    }

    fn round_trip(sizes: &[usize], chunk_size: u32, timestamps: &[u32], seed: u64) {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(chunk_size);
        let mut rng = XorShift(seed);
        let mut input = Vec::new();
        let mut sent = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            for &ts in timestamps {
                let payload: Bytes = (0..size).map(|_| rng.next() as u8).collect();
                let header = MessageHeader {
                    timestamp: ts,
                    length: size as u32,
                    type_id: 9,
                    stream_id: 1,
                };
                let csid = [3, 64, 400][i % 3];
                if i % 2 == 0 {
                    let mut parts = Vec::new();
                    enc.encode(csid, &header, &payload, &mut parts);
                    // Payload pieces share the payload's memory.
                    if size > 0 {
                        assert_eq!(parts[1].as_ptr(), payload.as_ptr());
                    }
                    input.extend_from_slice(&parts.concat());
                } else {
                    enc.encode_into(csid, &header, &payload, &mut input);
                }
                sent.push((csid, header, payload));
            }
        }
        for pieces in [usize::MAX, 1000, 13] {
            let mut dec = ChunkDecoder::new(DecoderLimits::default());
            dec.set_chunk_size(chunk_size).unwrap();
            let mut r = XorShift(seed ^ 0x5555);
            let got = decode_pieces(&mut dec, &input, || 1 + r.below(pieces.min(1 << 20))).unwrap();
            assert_eq!(got.len(), sent.len());
            for (m, (csid, header, payload)) in got.iter().zip(&sent) {
                assert_eq!(m.csid, *csid);
                assert_eq!(m.header, *header);
                assert_eq!(m.payload, *payload);
            }
        }
    }

    #[test]
    fn encoder_decoder_round_trip() {
        let sizes = [0, 1, 127, 128, 129, 60_000, 1_000_000];
        let timestamps = [0, 40, 0xFF_FFFE, 0xFF_FFFF, 0x1234_5678];
        for chunk_size in [128, 4096] {
            round_trip(
                &sizes,
                chunk_size,
                &timestamps,
                0xDEAD_BEEF + u64::from(chunk_size),
            );
        }
    }

    #[test]
    fn extended_timestamp_on_fmt3_new_message_is_a_delta() {
        // fmt0 with extended ts 0x01000000, then a bare fmt3 new message repeating the 4 bytes.
        let mut input = unhex("03ffffff0000020900000000010000000a0b");
        input.extend_from_slice(&unhex("c3010000000c0d"));
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let got = decode_pieces(&mut dec, &input, || 1).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].header.timestamp, 0x0100_0000);
        assert_eq!(got[1].header.timestamp, 0x0200_0000);
        assert_eq!(&got[1].payload[..], &[0x0c, 0x0d]);
    }

    #[test]
    fn ext_ts_absent_with_short_last_piece_decides_on_mismatching_prefix() {
        // librtmp style, 130-byte message at ts 0x01020304: last piece is 2 bytes which differ
        // from the extended timestamp's first byte, so it must not wait for more input.
        let mut input = unhex("03ffffff0000820900000000");
        input.extend_from_slice(&unhex("01020304"));
        input.extend_from_slice(&[0xAA; 128]);
        input.extend_from_slice(&unhex("c3bbcc"));
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let got = decode_pieces(&mut dec, &input, || 1).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].payload[128..], &[0xbb, 0xcc]);
    }

    #[test]
    fn fresh_fmt2_and_fmt3_rejected() {
        for input in ["830000010a", "c3"] {
            let mut dec = ChunkDecoder::new(DecoderLimits::default());
            let res = dec.decode(&mut BytesMut::from(&unhex(input)[..]));
            assert!(
                matches!(res, Err(ChunkError::FreshChunkStreamWithoutHeader(3))),
                "{input}: {res:?}"
            );
        }
    }

    #[test]
    fn fmt1_continuation_must_keep_length() {
        let mut input = unhex("030000000000ff0900000000");
        input.extend_from_slice(&[0; 128]);
        input.extend_from_slice(&unhex("43000000000010090000"));
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let res = decode_pieces(&mut dec, &input, || usize::MAX);
        assert!(matches!(
            res,
            Err(ChunkError::LengthChangedInsidePartialMessage {
                csid: 3,
                old: 255,
                new: 16
            })
        ));
    }

    #[test]
    fn abort_drops_partial_message() {
        let mut input = unhex("030000000000ff0900000000");
        input.extend_from_slice(&[0; 128]);
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let mut buf = BytesMut::from(&input[..]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        dec.abort(3);
        // A fresh fmt0 is now legal; a fmt3 would start a new message with the old header.
        buf.extend_from_slice(&unhex("030000050000010800000000ee"));
        let m = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            (m.header.type_id, m.header.timestamp, &m.payload[..]),
            (8, 5, &[0xee][..])
        );
    }

    #[test]
    fn single_chunk_message_is_zero_copy() {
        let input = unhex("02000000000004050000000000000763");
        let mut buf = BytesMut::from(&input[..]);
        let ptr = buf.as_ptr();
        let m = ChunkDecoder::new(DecoderLimits::default())
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(m.payload.as_ptr(), ptr.wrapping_add(12));
    }

    #[test]
    fn huge_declared_length_rejected_at_header() {
        let limits = DecoderLimits {
            max_message_size: 1024 * 1024,
            max_chunk_streams: 64,
            max_buffered: usize::MAX,
        };
        let mut dec = ChunkDecoder::new(limits);
        // Only the header: the error must not wait for the payload.
        let mut buf = BytesMut::from(&unhex("03000000ffffff0900000000")[..]);
        let res = dec.decode(&mut buf);
        assert!(matches!(
            res,
            Err(ChunkError::MessageTooLarge {
                len: 0xFF_FFFF,
                max: 1_048_576
            })
        ));
    }

    #[test]
    fn declared_lengths_do_not_allocate_up_front() {
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let mut buf = BytesMut::new();
        for csid in 2..66u32 {
            let mut chunk = Vec::new();
            put_basic_header(&mut chunk, 0, csid);
            chunk.extend_from_slice(&unhex("000000ffffff0900000000"));
            chunk.extend_from_slice(&[0; 128]);
            buf.extend_from_slice(&chunk);
        }
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert_eq!(dec.streams.len(), 64);
        let reserved: usize = dec
            .streams
            .values()
            .filter_map(|s| s.partial.as_ref())
            .map(|p| p.data.capacity())
            .sum();
        assert!(reserved <= 64 * INITIAL_RESERVE, "{reserved}");
    }

    #[test]
    fn too_many_chunk_streams() {
        let ids: Vec<u32> = (2..7).collect();
        let (_, n, err) = open_chunk_streams_until_refused(&ids);
        assert_eq!(n, 4);
        assert!(matches!(err, ChunkError::TooManyChunkStreams { max: 4 }));
    }

    /// A decoder allowing 4 chunk streams fed one empty message on each of `ids`:
    /// the decoder, the messages decoded and the error that stopped it.
    fn open_chunk_streams_until_refused(ids: &[u32]) -> (ChunkDecoder, usize, ChunkError) {
        let limits = DecoderLimits {
            max_message_size: 1024,
            max_chunk_streams: 4,
            max_buffered: usize::MAX,
        };
        let mut dec = ChunkDecoder::new(limits);
        let mut buf = BytesMut::new();
        for &csid in ids {
            put_header_only(&mut buf, csid);
        }
        let (n, err) = decode_until_error(&mut dec, &mut buf);
        (dec, n, err)
    }

    fn put_header_only(buf: &mut BytesMut, csid: u32) {
        let mut chunk = Vec::new();
        put_basic_header(&mut chunk, 0, csid);
        chunk.extend_from_slice(&unhex("0000000000000900000000"));
        buf.extend_from_slice(&chunk);
    }

    #[test]
    fn random_bytes_never_panic_or_hang() {
        let mut rng = XorShift(0x1234_5678_9ABC_DEF1);
        let limits = DecoderLimits {
            max_message_size: 64 * 1024,
            max_chunk_streams: 8,
            max_buffered: usize::MAX,
        };
        for i in 0..100_000 {
            let mut dec = ChunkDecoder::new(limits);
            if i % 3 == 0 {
                dec.set_chunk_size(1 + rng.below(300) as u32).unwrap();
            }
            let len = rng.below(96);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Bias towards small lengths and known csids so decoding gets past the first header.
            if i % 2 == 0 {
                for b in bytes.iter_mut().skip(4).step_by(5) {
                    *b &= 0x03;
                }
            }
            let mut buf = BytesMut::from(&bytes[..]);
            let mut steps = 0;
            loop {
                steps += 1;
                assert!(steps <= len + 2, "no progress");
                let before = buf.len();
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => assert!(buf.len() < before, "a message must consume bytes"),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn layout_pieces_spell_the_same_bytes_as_encode() {
        for chunk in [128u32, 4096, 60_000] {
            let mut enc = ChunkEncoder::new();
            enc.set_chunk_size(chunk);
            for (len, ts) in [
                (0usize, 0u32),
                (1, 40),
                (127, 0xFF_FFFE),
                (128, 0xFF_FFFF),
                (129, 0x1234_5678),
                (256, 3),
                (70_000, 7),
            ] {
                let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let header = MessageHeader {
                    timestamp: ts,
                    length: len as u32,
                    type_id: 8,
                    stream_id: 1,
                };
                let mut expected = Vec::new();
                enc.encode_into(4, &header, &payload, &mut expected);
                // Headers go after whatever the buffer already holds.
                let mut headers = vec![0xEE; 5];
                let layout = enc.layout(4, &header, len, &mut headers).unwrap();
                let mut got = Vec::new();
                let mut n = 0;
                for piece in layout.pieces() {
                    n += 1;
                    match piece {
                        ChunkPiece::Header(r) => got.extend_from_slice(&headers[r]),
                        ChunkPiece::Payload(r) => got.extend_from_slice(&payload[r]),
                    }
                }
                assert_eq!(got, expected, "chunk {chunk} len {len} ts {ts}");
                assert_eq!(n, layout.piece_count(), "chunk {chunk} len {len}");
                assert_eq!(&headers[..5], &[0xEE; 5]);
            }
        }
    }
}

#[cfg(test)]
mod buffer_budget_tests {
    use super::*;

    /// A fmt-0 chunk starting a message of `len` bytes on `csid`, with `piece` payload bytes.
    fn first_chunk(csid: u8, len: u32, piece: usize) -> Vec<u8> {
        let mut v = vec![csid, 0, 0, 0];
        v.extend_from_slice(&len.to_be_bytes()[1..]);
        v.push(9);
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend(std::iter::repeat_n(0x17u8, piece));
        v
    }

    #[test]
    fn half_sent_messages_are_bounded_across_chunk_streams() {
        let limits = DecoderLimits {
            max_message_size: 1 << 20,
            max_chunk_streams: 64,
            max_buffered: 100_000,
        };
        let mut dec = ChunkDecoder::new(limits);
        dec.set_chunk_size(60_000).unwrap();
        let mut buf = BytesMut::new();
        // Two half-sent 1 MB messages of 60 kB each: the second crosses 100 kB.
        buf.extend_from_slice(&first_chunk(4, 1 << 20, 60_000));
        assert!(dec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&first_chunk(5, 1 << 20, 60_000));
        assert!(matches!(
            dec.decode(&mut buf),
            Err(ChunkError::TooMuchBuffered { max: 100_000, .. })
        ));
    }

    #[test]
    fn completed_and_aborted_messages_release_their_bytes() {
        let limits = DecoderLimits {
            max_message_size: 1 << 20,
            max_chunk_streams: 64,
            max_buffered: 100_000,
        };
        let mut dec = ChunkDecoder::new(limits);
        dec.set_chunk_size(60_000).unwrap();
        for round in 0..10 {
            let mut buf = BytesMut::new();
            // 90 kB message in two chunks: held 60 kB, then completed.
            buf.extend_from_slice(&first_chunk(4, 90_000, 60_000));
            buf.extend_from_slice(&[0xC4]);
            buf.extend(std::iter::repeat_n(0x27u8, 30_000));
            let m = dec.decode(&mut buf).unwrap().expect("message");
            assert_eq!(m.payload.len(), 90_000, "round {round}");
            // A half-sent one, aborted.
            buf.extend_from_slice(&first_chunk(6, 90_000, 60_000));
            assert!(dec.decode(&mut buf).unwrap().is_none());
            dec.abort(6);
        }
    }
}
