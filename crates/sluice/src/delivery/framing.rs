//! How ring entries become bytes on a player's wire: RTMP chunks, FLV tags, MPEG-TS
//! packets muxed once per stream, the audio-only ADTS and MP3 streams of `http_remux`, and
//! HTTP/1.1 chunked bodies around any of them. Sans-IO: no socket, no clock.
//!
//! A [`Framer`] is one player's framing state (chunk encoder, jitter correction,
//! whether its FLV body has ended); [`Framer::push`] appends one entry to a
//! [`Batch`], which holds the wire in order as *pieces*: header bytes in a scratch
//! buffer the caller lends, payloads borrowed from the ring's frames. Nothing is
//! copied or reference-counted while a batch is built; the socket driver
//! ([`super::driver`]) hands the pieces to one vectored write, and copies only what
//! the socket refused ([`Batch::stash`]). This is the one place where RTMP and FLV
//! framing for live players lives, whatever the transport.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;
use rtmp::chunk::{ChunkEncoder, ChunkPiece, MessageHeader};
use rtmp::server::csid;

use media::audio_remux::AudioOut;

use crate::config::TimeJitter;
use crate::hub::jitter::Jitter;
use crate::hub::{FrameKind, ItemRef};

/// Buffers handed to one vectored write (Linux's IOV_MAX is 1024). A batch lives on
/// the stack of whoever writes it, so this is never part of a player's memory.
pub const MAX_PIECES: usize = 64;
/// A frame cut into more chunks than this (only with small chunk sizes) is copied
/// into the scratch buffer whole rather than taking a piece per chunk.
const MAX_PIECES_PER_FRAME: usize = 8;

/// Where one piece of a batch lies: in the scratch buffer, or in a frame of the ring.
#[derive(Clone, Copy, Debug)]
pub enum Piece<'r> {
    Scratch(usize, usize),
    Payload(&'r Bytes, usize, usize),
}

impl Piece<'_> {
    fn len(&self) -> usize {
        match *self {
            Piece::Scratch(s, e) | Piece::Payload(_, s, e) => e - s,
        }
    }
}

/// The two status messages an RTMP player may get mid-stream, encoded once by its
/// session (they depend on its stream id and chunk size).
pub struct Notices {
    pub publish: Bytes,
    pub unpublish: Bytes,
}

/// How frames are put on the wire.
pub enum Framing {
    Rtmp {
        stream_id: u32,
        encoder: ChunkEncoder,
        notices: Notices,
    },
    /// FLV tags; `chunked` wraps each write in an HTTP/1.1 chunk. The body ends
    /// with the publish, as in SRS: players reconnect for the next one.
    Flv { chunked: bool },
    /// MPEG-TS already muxed once per stream (`srt::feed`): each frame's payload is
    /// whole TS packets, sent as they are. Like an FLV body, it ends with the publish.
    Ts,
    /// A WHEP player: frames already converted once per stream (`rtc::feed`: Annex B
    /// H.264, Opus) as records for the UDP task (`rtc::peer`): a 14-byte header in the
    /// scratch buffer, the payload borrowed. Media times pass untouched (they become RTP
    /// times on the publisher's clock). It ends with the publish (the session ends).
    Rtc,
    /// An audio-only ADTS stream (`http_remux` `.aac`): each AAC frame after a 7-byte
    /// header made in scratch, the payload borrowed; video and metadata left out. The
    /// body ends with the publish, or at the first audio frame of another codec (as SRS's
    /// AAC encoder fails there).
    Adts(media::audio_remux::AdtsRemux),
    /// Raw MP3 frames (`http_remux` `.mp3`): each payload after its FLV audio header,
    /// borrowed. Ends like [`Framing::Adts`].
    Mp3,
}

impl Framing {
    pub fn rtmp(stream_id: u32, chunk_size: u32, notices: Notices) -> Framing {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(chunk_size);
        Framing::Rtmp {
            stream_id,
            encoder,
            notices,
        }
    }
}

/// One batch being built: header bytes in the lent scratch buffer, pieces in wire
/// order. At most [`MAX_PIECES`] pieces, so that it is one system call.
pub struct Batch<'s, 'r> {
    headers: &'s mut Vec<u8>,
    pieces: [Piece<'r>; MAX_PIECES],
    n: usize,
}

impl<'s, 'r> Batch<'s, 'r> {
    pub fn new(headers: &'s mut Vec<u8>) -> Self {
        headers.clear();
        Batch {
            headers,
            pieces: [Piece::Scratch(0, 0); MAX_PIECES],
            n: 0,
        }
    }

    /// Pieces so far.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Bytes so far.
    pub fn bytes(&self) -> usize {
        self.pieces[..self.n].iter().map(Piece::len).sum()
    }

    fn room(&self, pieces: usize) -> bool {
        self.n + pieces <= MAX_PIECES
    }

    fn push(&mut self, p: Piece<'r>) {
        // Callers check room first; a piece past the end would be lost, so refuse
        // loudly in tests.
        debug_assert!(self.n < MAX_PIECES);
        if let Some(slot) = self.pieces.get_mut(self.n) {
            *slot = p;
            self.n += 1;
        }
    }

    /// Appends header bytes, merged with the previous piece when that ends where
    /// these start (an FLV tag's trailer and the next tag's header are one piece).
    fn scratch(&mut self, bytes: &[u8]) {
        let s = self.headers.len();
        self.headers.extend_from_slice(bytes);
        let e = self.headers.len();
        if let Some(Piece::Scratch(_, last_end)) =
            self.n.checked_sub(1).map(|i| &mut self.pieces[i])
        {
            if *last_end == s {
                *last_end = e;
                return;
            }
        }
        self.push(Piece::Scratch(s, e));
    }

    fn payload(&mut self, b: &'r Bytes, s: usize, e: usize) {
        if e > s {
            self.push(Piece::Payload(b, s, e));
        }
    }

    /// The batch as buffers for one vectored write, and their total length.
    pub fn io_slices<'a>(&'a self, iov: &mut [IoSlice<'a>; MAX_PIECES]) -> (usize, usize) {
        let mut total = 0;
        for (slot, p) in iov.iter_mut().zip(&self.pieces[..self.n]) {
            *slot = IoSlice::new(match *p {
                Piece::Scratch(s, e) => &self.headers[s..e],
                Piece::Payload(b, s, e) => &b[s..e],
            });
            total += p.len();
        }
        (self.n, total)
    }

    /// Keeps what a write did not take (from byte `skip` on) as owned buffers: header
    /// bytes are copied, payloads reference-counted. Only a full socket costs this.
    pub fn stash(&self, skip: usize, out: &mut VecDeque<Bytes>) {
        let mut skip = skip;
        for p in &self.pieces[..self.n] {
            let len = p.len();
            if skip >= len {
                skip -= len;
                continue;
            }
            out.push_back(match *p {
                Piece::Scratch(s, e) => Bytes::copy_from_slice(&self.headers[s + skip..e]),
                Piece::Payload(b, s, e) => b.slice(s + skip..e),
            });
            skip = 0;
        }
    }

    /// The whole batch as one buffer (tests and tools; the hot path never copies).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes());
        for p in &self.pieces[..self.n] {
            out.extend_from_slice(match *p {
                Piece::Scratch(s, e) => &self.headers[s..e],
                Piece::Payload(b, s, e) => &b[s..e],
            });
        }
        out
    }
}

/// One player's framing state.
pub struct Framer {
    framing: Framing,
    jitter: Jitter,
    jitter_mode: TimeJitter,
    /// The stream runs on absolute time (SRS's ATC): no jitter correction at all.
    atc: bool,
    /// An FLV body is complete (the publisher left): nothing more is framed.
    ended: bool,
    /// Each write is an HTTP/1.1 chunk, whatever the framing (the TS and audio remux
    /// bodies of the direct HTTP path); FLV says it in its own variant.
    http_chunks: bool,
}

impl Framer {
    pub fn new(framing: Framing, jitter_mode: TimeJitter) -> Framer {
        Framer {
            framing,
            jitter: Jitter::new(jitter_mode),
            jitter_mode,
            atc: false,
            ended: false,
            http_chunks: false,
        }
    }

    /// Wraps every write in an HTTP/1.1 chunk (the body ends with the last chunk).
    pub fn with_http_chunks(mut self) -> Framer {
        self.http_chunks = true;
        self
    }

    /// Follows the stream's ATC state (read from the ring before each batch): under
    /// absolute time timestamps pass through untouched, whatever `time_jitter` says,
    /// so that players of two origins fed by one encoder see the same times.
    pub fn set_atc(&mut self, atc: bool) {
        self.atc = atc;
    }

    /// The FLV body is complete: the player's connection ends once it is written.
    pub fn ended(&self) -> bool {
        self.ended
    }

    fn chunked(&self) -> bool {
        self.http_chunks || matches!(self.framing, Framing::Flv { chunked: true })
    }

    /// Starts a batch: an HTTP chunk's size line is reserved (filled in by
    /// [`Framer::finish`] once the body of the chunk is known).
    pub fn begin(&self, batch: &mut Batch<'_, '_>) {
        if self.chunked() {
            // A range no header can merge with until it is filled in.
            batch.push(Piece::Scratch(usize::MAX, usize::MAX));
        }
    }

    /// Appends one entry. False when the batch has no room for it (or the FLV body
    /// has ended): the entry stays for the next batch.
    pub fn push<'r>(&mut self, item: ItemRef<'r>, batch: &mut Batch<'_, 'r>) -> bool {
        if self.ended {
            return false;
        }
        // Room kept for the HTTP chunk's trailing CRLF and the last chunk.
        let reserve = if self.chunked() { 2 } else { 0 };
        let frame = match item {
            ItemRef::Frame(f) => f,
            ItemRef::Published | ItemRef::Unpublished => {
                return match &self.framing {
                    Framing::Rtmp { notices, .. } => {
                        if !batch.room(1) {
                            return false;
                        }
                        let notice = if matches!(item, ItemRef::Published) {
                            // A new publish is a new timeline.
                            self.jitter = Jitter::new(self.jitter_mode);
                            &notices.publish
                        } else {
                            &notices.unpublish
                        };
                        batch.scratch(notice);
                        true
                    }
                    Framing::Rtc | Framing::Ts | Framing::Adts(_) | Framing::Mp3 => {
                        // These end with the publish (as an HTTP-FLV body does): a
                        // player sees the end, and reconnects for the next publish (a
                        // WHEP session ends).
                        if matches!(item, ItemRef::Unpublished) {
                            self.ended = true;
                            return false;
                        }
                        true
                    }
                    Framing::Flv { .. } => {
                        if matches!(item, ItemRef::Unpublished) {
                            self.ended = true;
                            // Nothing after the end of the body.
                            return false;
                        }
                        true
                    }
                };
            }
        };
        let len = frame.payload.len();
        match &mut self.framing {
            Framing::Rtc => {
                if frame.kind == FrameKind::Script {
                    return true;
                }
                if !batch.room(2) {
                    return false;
                }
                batch.scratch(&crate::rtc::peer::record_header(
                    frame.kind == FrameKind::Video,
                    frame.keyframe,
                    frame.timestamp,
                    len,
                ));
                batch.payload(&frame.payload, 0, len);
                true
            }
            Framing::Ts => {
                if !batch.room(1 + reserve) {
                    return false;
                }
                batch.payload(&frame.payload, 0, len);
                true
            }
            Framing::Adts(_) | Framing::Mp3 => {
                if frame.kind != FrameKind::Audio {
                    return true;
                }
                if !batch.room(2 + reserve) {
                    return false;
                }
                let out = match &mut self.framing {
                    Framing::Adts(remux) => remux.push(&frame.payload),
                    _ => media::audio_remux::mp3_frame(&frame.payload),
                };
                match out {
                    AudioOut::Skip => {}
                    AudioOut::Frame { header, data } => {
                        if !header.as_slice().is_empty() {
                            batch.scratch(header.as_slice());
                        }
                        batch.payload(&frame.payload, data.start, data.end);
                    }
                    AudioOut::Mismatch(codec) => {
                        tracing::info!(
                            "audio remux: the stream's audio is {codec:?}, not what this mount \
                             serves; the body ends"
                        );
                        self.ended = true;
                        return false;
                    }
                }
                true
            }
            Framing::Flv { .. } => {
                if !batch.room(2 + reserve) {
                    return false;
                }
                // FLV timestamps are 32-bit and wrap by design.
                let ts = stamp(
                    &mut self.jitter,
                    self.atc,
                    frame.timestamp,
                    frame.kind != FrameKind::Script,
                ) as u32;
                batch.scratch(&media::flv::tag_header(
                    frame.kind.type_id(),
                    len as u32,
                    ts,
                ));
                batch.payload(&frame.payload, 0, len);
                batch.scratch(&media::flv::previous_tag_size(len as u32));
                true
            }
            Framing::Rtmp {
                stream_id, encoder, ..
            } => {
                let chunks = len.div_ceil(encoder.chunk_size().max(1) as usize).max(1);
                let need = if 2 * chunks <= MAX_PIECES_PER_FRAME {
                    2 * chunks
                } else {
                    1
                };
                if !batch.room(need) {
                    return false;
                }
                // RTMP timestamps are 32-bit and wrap by design.
                let ts = stamp(
                    &mut self.jitter,
                    self.atc,
                    frame.timestamp,
                    frame.kind != FrameKind::Script,
                ) as u32;
                let header = MessageHeader {
                    timestamp: ts,
                    length: len as u32,
                    type_id: frame.kind.type_id(),
                    stream_id: *stream_id,
                };
                let cs = match frame.kind {
                    FrameKind::Audio => csid::AUDIO,
                    FrameKind::Video => csid::VIDEO,
                    FrameKind::Script => csid::DATA,
                };
                if need == 1 {
                    let s = batch.headers.len();
                    encoder.encode_into(cs, &header, &frame.payload, batch.headers);
                    batch.push(Piece::Scratch(s, batch.headers.len()));
                    return true;
                }
                // Longer than a message may be: never from our publishers (bounded
                // far below), skipped rather than framed wrongly.
                let Some(layout) = encoder.layout(cs, &header, len, batch.headers) else {
                    return true;
                };
                for piece in layout.pieces() {
                    batch.push(match piece {
                        ChunkPiece::Header(r) => Piece::Scratch(r.start, r.end),
                        ChunkPiece::Payload(r) => Piece::Payload(&frame.payload, r.start, r.end),
                    });
                }
                true
            }
        }
    }

    /// Ends a batch: fills in the HTTP chunk around what was framed, and the last
    /// chunk when the body has ended. False when there is nothing to write.
    pub fn finish(&self, batch: &mut Batch<'_, '_>) -> bool {
        if self.chunked() {
            let body: usize = batch.pieces[1..batch.n].iter().map(Piece::len).sum();
            if body == 0 && !self.ended {
                return false;
            }
            if body > 0 {
                let s = batch.headers.len();
                batch
                    .headers
                    .extend_from_slice(format!("{body:x}\r\n").as_bytes());
                batch.pieces[0] = Piece::Scratch(s, batch.headers.len());
                batch.scratch(b"\r\n");
            } else {
                batch.pieces[0] = Piece::Scratch(0, 0);
            }
            if self.ended {
                batch.scratch(b"0\r\n\r\n");
            }
        }
        batch.bytes() > 0
    }
}

/// The timestamp a frame goes out with: untouched under ATC, else jitter-corrected.
fn stamp(jitter: &mut Jitter, atc: bool, ts: u64, av: bool) -> u64 {
    if atc {
        return ts;
    }
    jitter.correct(ts, av)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hub::Frame;
    use bytes::BytesMut;
    use rtmp::chunk::{ChunkDecoder, DecoderLimits};

    fn frame(kind: FrameKind, ts: u64, len: usize) -> Frame {
        Frame {
            kind,
            timestamp: ts,
            payload: Bytes::from(
                (0..len)
                    .map(|i| (i * 7 + ts as usize) as u8)
                    .collect::<Vec<_>>(),
            ),
            keyframe: kind == FrameKind::Video && ts == 0,
            sequence_header: false,
        }
    }

    /// Frames `items` as one player would, batch after batch, and returns the wire.
    fn wire(framer: &mut Framer, items: &[ItemRef<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let mut i = 0;
        loop {
            let mut batch = Batch::new(&mut scratch);
            framer.begin(&mut batch);
            while i < items.len() && framer.push(items[i], &mut batch) {
                i += 1;
            }
            if framer.finish(&mut batch) {
                out.extend_from_slice(&batch.to_vec());
            }
            if i >= items.len() || framer.ended() {
                return out;
            }
        }
    }

    /// An HTTP/1.1 chunked body's content and how many chunks carried it; fails
    /// the test unless the body is well-formed and ends with the last chunk.
    pub(crate) fn dechunk(raw: &[u8]) -> (Vec<u8>, usize) {
        let mut body = Vec::new();
        let mut rest = raw;
        let mut chunks = 0;
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
            rest = &rest[eol + 2..];
            if size == 0 {
                assert_eq!(rest, b"\r\n", "the last chunk ends the body");
                return (body, chunks);
            }
            chunks += 1;
            body.extend_from_slice(&rest[..size]);
            assert_eq!(&rest[size..size + 2], b"\r\n");
            rest = &rest[size + 2..];
        }
    }

    fn notices() -> Notices {
        Notices {
            publish: Bytes::from_static(b"<publish>"),
            unpublish: Bytes::from_static(b"<unpublish>"),
        }
    }

    /// RTMP chunking at several chunk sizes, with timestamps that need the extended
    /// field: what a real chunk decoder reads back is what was framed.
    #[test]
    fn rtmp_chunks_decode_back_at_every_chunk_size() {
        let frames: Vec<Frame> = [
            (FrameKind::Script, 0, 300),
            (FrameKind::Video, 0, 50_000),
            (FrameKind::Audio, 21, 1),
            (FrameKind::Audio, 42, 128),
            (FrameKind::Video, 40, 129),
            (FrameKind::Video, 0x00FF_FFFE, 4000),
            (FrameKind::Video, 0x0100_0010, 70_000),
            (FrameKind::Audio, 0x0100_0020, 300),
            (FrameKind::Video, 0x1_0000_0005, 999),
        ]
        .into_iter()
        .map(|(k, ts, len)| frame(k, ts, len))
        .collect();
        for chunk_size in [1u32, 60, 128, 4096, 60_000, 65_536] {
            let mut framer = Framer::new(Framing::rtmp(1, chunk_size, notices()), TimeJitter::Off);
            let items: Vec<ItemRef<'_>> = frames.iter().map(ItemRef::Frame).collect();
            let raw = wire(&mut framer, &items);
            let mut dec = ChunkDecoder::new(DecoderLimits::default());
            dec.set_chunk_size(chunk_size).unwrap();
            let mut buf = BytesMut::from(&raw[..]);
            let mut got = Vec::new();
            while let Some(m) = dec.decode(&mut buf).unwrap() {
                got.push(m);
            }
            assert!(buf.is_empty(), "chunk size {chunk_size}: trailing bytes");
            assert_eq!(got.len(), frames.len(), "chunk size {chunk_size}");
            for (m, f) in got.iter().zip(&frames) {
                assert_eq!(m.header.type_id, f.kind.type_id());
                assert_eq!(
                    m.header.timestamp, f.timestamp as u32,
                    "chunk size {chunk_size}"
                );
                assert_eq!(m.header.stream_id, 1);
                assert_eq!(m.payload, f.payload, "chunk size {chunk_size}");
            }
        }
    }

    /// Publish edges are the session's notices, in their place among the frames.
    #[test]
    fn rtmp_notices_come_in_order() {
        let f = frame(FrameKind::Audio, 5, 3);
        let mut framer = Framer::new(Framing::rtmp(1, 4096, notices()), TimeJitter::Off);
        let raw = wire(
            &mut framer,
            &[ItemRef::Unpublished, ItemRef::Published, ItemRef::Frame(&f)],
        );
        assert!(raw.starts_with(b"<unpublish><publish>"));
        assert_eq!(raw.len(), 20 + 12 + 3);
    }

    /// Under ATC a player's `time_jitter full` does nothing: the publisher's absolute
    /// timestamps reach the wire as they are (and go back to corrected once ATC is off).
    #[test]
    fn atc_turns_jitter_correction_off() {
        let t0: u64 = 1_000_000_000;
        let frames: Vec<Frame> = [
            (FrameKind::Script, t0),
            (FrameKind::Video, t0),
            (FrameKind::Audio, t0 + 23),
            (FrameKind::Video, t0 + 40),
            (FrameKind::Video, t0 + 60_000),
        ]
        .into_iter()
        .map(|(k, ts)| frame(k, ts, 10))
        .collect();
        let items: Vec<ItemRef<'_>> = frames.iter().map(ItemRef::Frame).collect();
        let decode = |raw: Vec<u8>| {
            let mut dec = ChunkDecoder::new(DecoderLimits::default());
            dec.set_chunk_size(4096).unwrap();
            let mut buf = BytesMut::from(&raw[..]);
            let mut ts = Vec::new();
            while let Some(m) = dec.decode(&mut buf).unwrap() {
                ts.push(m.header.timestamp);
            }
            ts
        };
        let mut atc = Framer::new(Framing::rtmp(1, 4096, notices()), TimeJitter::Full);
        atc.set_atc(true);
        let got = decode(wire(&mut atc, &items));
        let want: Vec<u32> = frames.iter().map(|f| f.timestamp as u32).collect();
        assert_eq!(got, want, "absolute time untouched, jumps included");
        let mut full = Framer::new(Framing::rtmp(1, 4096, notices()), TimeJitter::Full);
        let got = decode(wire(&mut full, &items));
        assert_eq!(
            got,
            vec![0, 10, 33, 50, 60],
            "without ATC, full correction applies"
        );
        // FLV players too.
        let mut flv = Framer::new(Framing::Flv { chunked: false }, TimeJitter::Zero);
        flv.set_atc(true);
        let tags = flv_tags(&wire(&mut flv, &items));
        assert_eq!(tags.iter().map(|t| t.1).collect::<Vec<_>>(), want);
    }

    fn flv_tags(body: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
        let mut tags = Vec::new();
        let mut pos = 0;
        while pos < body.len() {
            let len = u32::from_be_bytes([0, body[pos + 1], body[pos + 2], body[pos + 3]]) as usize;
            let ts =
                u32::from_be_bytes([body[pos + 7], body[pos + 4], body[pos + 5], body[pos + 6]]);
            let data = body[pos + 11..pos + 11 + len].to_vec();
            let trailer =
                u32::from_be_bytes(body[pos + 11 + len..pos + 15 + len].try_into().unwrap());
            assert_eq!(trailer as usize, len + 11);
            tags.push((body[pos], ts, data));
            pos += 15 + len;
        }
        tags
    }

    /// FLV tags, close-delimited (HTTP/1.0): each frame a tag with its trailer; the
    /// body ends at the unpublish and takes nothing after it.
    #[test]
    fn flv_tags_end_with_the_publish() {
        let frames = [
            frame(FrameKind::Video, 0, 1000),
            frame(FrameKind::Audio, 23, 10),
            frame(FrameKind::Video, 0x1_0000_0001, 5),
        ];
        let after = frame(FrameKind::Audio, 99, 1);
        let mut items: Vec<ItemRef<'_>> = vec![ItemRef::Published];
        items.extend(frames.iter().map(ItemRef::Frame));
        items.push(ItemRef::Unpublished);
        items.push(ItemRef::Frame(&after));
        let mut framer = Framer::new(Framing::Flv { chunked: false }, TimeJitter::Off);
        let raw = wire(&mut framer, &items);
        assert!(framer.ended());
        let tags = flv_tags(&raw);
        assert_eq!(tags.len(), 3);
        for (t, f) in tags.iter().zip(&frames) {
            assert_eq!(t.0, f.kind.type_id());
            assert_eq!(t.1, f.timestamp as u32);
            assert_eq!(t.2, &f.payload[..]);
        }
    }

    /// HTTP/1.1 chunked bodies: many batches (more tags than one batch holds), each a
    /// well-formed chunk; the body ends with the last chunk.
    #[test]
    fn flv_chunked_body_is_well_formed() {
        let frames: Vec<Frame> = (0..100u64)
            .map(|i| frame(FrameKind::Video, i * 40, 1 + (i as usize * 37) % 500))
            .collect();
        let mut items: Vec<ItemRef<'_>> = frames.iter().map(ItemRef::Frame).collect();
        items.push(ItemRef::Unpublished);
        let mut framer = Framer::new(Framing::Flv { chunked: true }, TimeJitter::Off);
        let raw = wire(&mut framer, &items);
        let (body, chunks) = dechunk(&raw);
        assert!(chunks > 1, "one batch cannot hold 100 tags");
        let tags = flv_tags(&body);
        assert_eq!(tags.len(), frames.len());
        for (t, f) in tags.iter().zip(&frames) {
            assert_eq!((t.1, &t.2[..]), (f.timestamp as u32, &f.payload[..]));
        }
    }

    /// What a write did not take is kept whole and in order, from any byte on.
    #[test]
    fn stash_keeps_the_rest_from_any_byte() {
        let frames = [
            frame(FrameKind::Video, 0, 300),
            frame(FrameKind::Audio, 10, 7),
        ];
        let mut framer = Framer::new(Framing::Flv { chunked: true }, TimeJitter::Off);
        let mut scratch = Vec::new();
        let mut batch = Batch::new(&mut scratch);
        framer.begin(&mut batch);
        for f in &frames {
            assert!(framer.push(ItemRef::Frame(f), &mut batch));
        }
        assert!(framer.finish(&mut batch));
        let whole = batch.to_vec();
        for skip in 0..=whole.len() {
            let mut rest = VecDeque::new();
            batch.stash(skip, &mut rest);
            let got: Vec<u8> = rest.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(got, &whole[skip..], "skip {skip}");
        }
    }

    fn audio(ts: u64, payload: &[u8]) -> Frame {
        Frame {
            kind: FrameKind::Audio,
            timestamp: ts,
            payload: Bytes::copy_from_slice(payload),
            keyframe: false,
            sequence_header: payload.get(1) == Some(&0) && payload[0] >> 4 == 10,
        }
    }

    /// `.aac`: an ADTS stream of the audio only, in HTTP chunks; video and metadata are
    /// left out, frames before the sequence header too; it ends with the publish.
    #[test]
    fn adts_bodies_carry_the_audio_only() {
        let frames = [
            audio(0, &[0xaf, 0x01, 9, 9]),
            audio(0, &[0xaf, 0x00, 0x12, 0x10]),
            frame(FrameKind::Script, 0, 30),
            frame(FrameKind::Video, 0, 500),
            audio(23, &[0xaf, 0x01, 1, 2, 3]),
            frame(FrameKind::Video, 40, 200),
            audio(46, &[0xaf, 0x01, 4, 5]),
        ];
        let mut items: Vec<ItemRef<'_>> = vec![ItemRef::Published];
        items.extend(frames.iter().map(ItemRef::Frame));
        items.push(ItemRef::Unpublished);
        let mut framer = Framer::new(
            Framing::Adts(media::audio_remux::AdtsRemux::new()),
            TimeJitter::Full,
        )
        .with_http_chunks();
        let raw = wire(&mut framer, &items);
        assert!(framer.ended());
        let (body, _) = dechunk(&raw);
        let mut pos = 0;
        for raw_frame in [&[1u8, 2, 3][..], &[4, 5]] {
            let h = media::aac::parse_adts(&body[pos..]).expect("adts");
            assert_eq!(h.raw_length(), raw_frame.len());
            assert_eq!(&body[pos + 7..pos + 7 + raw_frame.len()], raw_frame);
            pos += h.frame_length;
        }
        assert_eq!(pos, body.len(), "nothing else in the body");
    }

    /// `.mp3`: raw MP3 frames; an AAC frame ends the body (SRS's MP3 encoder fails there).
    #[test]
    fn mp3_bodies_end_at_another_codec() {
        let frames = [
            audio(0, &[0x2f, 0xff, 0xfb, 0x90, 0x64, 7]),
            frame(FrameKind::Video, 0, 100),
            audio(26, &[0x2f, 0xff, 0xfb, 0x90, 0x64, 8]),
            audio(52, &[0xaf, 0x00, 0x12, 0x10]),
            audio(78, &[0x2f, 0xff, 0xfb, 0x90, 0x64, 9]),
        ];
        let items: Vec<ItemRef<'_>> = frames.iter().map(ItemRef::Frame).collect();
        let mut framer = Framer::new(Framing::Mp3, TimeJitter::Full);
        let raw = wire(&mut framer, &items);
        assert!(framer.ended());
        assert_eq!(raw, [0xff, 0xfb, 0x90, 0x64, 7, 0xff, 0xfb, 0x90, 0x64, 8]);
    }

    /// TS in HTTP chunks (`.ts` on the direct path): payloads as they are, one chunk per
    /// batch, the last chunk at the unpublish. Without chunks (SRT) nothing is added.
    #[test]
    fn ts_in_http_chunks() {
        let frames: Vec<Frame> = (0..100u64)
            .map(|i| frame(FrameKind::Video, i * 40, 188 * (1 + i as usize % 3)))
            .collect();
        let mut items: Vec<ItemRef<'_>> = frames.iter().map(ItemRef::Frame).collect();
        items.push(ItemRef::Unpublished);
        let want: Vec<u8> = frames.iter().flat_map(|f| f.payload.to_vec()).collect();
        let mut framer = Framer::new(Framing::Ts, TimeJitter::Full).with_http_chunks();
        let (body, chunks) = dechunk(&wire(&mut framer, &items));
        assert!(chunks > 1);
        assert_eq!(body, want);
        let mut plain = Framer::new(Framing::Ts, TimeJitter::Full);
        assert_eq!(wire(&mut plain, &items), want);
    }
}
