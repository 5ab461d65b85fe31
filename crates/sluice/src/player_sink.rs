//! A player's sending side, fed by its stream's shards ([`crate::hub::fanout`]):
//! RTMP chunks for RTMP players, FLV tags for HTTP-FLV players.
//!
//! The common case costs one vectored `write` per player per merged-write tick and
//! nothing else: the batch's headers (chunk or tag headers, HTTP chunk framing) go
//! into the shard's scratch buffer, the payloads are borrowed from the ring, and the
//! socket takes it all at once. Only when the socket is full is anything copied or
//! reference-counted: the rest of the batch is kept here and the player's own task,
//! woken through `task`, waits for room and catches up before the shards feed it
//! again.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, Bytes};
use rtmp::chunk::{ChunkEncoder, ChunkPiece, MessageHeader};
use rtmp::server::csid;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tracing::warn;

use crate::config::TimeJitter;
use crate::context::Context;
use crate::hub::fanout::{Scratch, Sink};
use crate::hub::jitter::Jitter;
use crate::hub::{Consumer, FrameKind, ItemRef, Source};
use crate::stats::Client;

/// Buffers handed to one `writev` (Linux's IOV_MAX is 1024). Kept on the stack of
/// the shard while it writes, so never part of a player's memory.
const MAX_PIECES: usize = 64;
/// A frame cut into more chunks than this (only with small chunk sizes) is copied
/// into the scratch buffer whole rather than taking a piece per chunk.
const MAX_PIECES_PER_FRAME: usize = 8;
/// A drained backlog above this many buffers gives its memory back.
const PENDING_KEEP: usize = 16;
/// Byte counters lag a player's writes by at most this much (16 merged-write
/// ticks, 1.6 s at the default `mw_latency`; the API's rates are 30 s averages).
const REPORT_EVERY_WRITES: u32 = 16;
const REPORT_EVERY_BYTES: u64 = 64 * 1024;

/// Where one piece of a batch lies: in the shard's scratch buffer, or in a frame
/// of the ring.
#[derive(Clone, Copy)]
enum Piece<'r> {
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

/// The two status messages an RTMP player may get mid-stream, encoded once.
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

struct State {
    /// `None` once the player's task has ended.
    consumer: Option<Consumer>,
    jitter: Jitter,
    jitter_mode: TimeJitter,
    framing: Framing,
    /// An FLV body is complete (the publisher left): nothing more is sent.
    ended: bool,
    /// What the socket has not taken yet, in order. Non-empty means the player's
    /// task is waiting for room; the shards only retry it.
    pending: VecDeque<Bytes>,
    failure: Option<io::Error>,
    /// Bytes written but not yet added to the client's and the server's counters,
    /// and the writes since they last were: the counters are shared cache lines
    /// (the server's by every player), so they are updated every
    /// [`REPORT_EVERY_WRITES`] writes or [`REPORT_EVERY_BYTES`] bytes, and on close.
    unreported: u64,
    unreported_writes: u32,
}

pub struct PlayerSink {
    /// `writer`'s descriptor, kept here: reaching it through the tokio stream is a
    /// chain of pointers, each a cache miss when a shard walks a thousand players.
    fd: RawFd,
    writer: OwnedWriteHalf,
    source: Arc<Source>,
    state: Mutex<State>,
    /// Wakes the player's task when its socket is full or failed.
    task: Notify,
    client: Arc<Client>,
    ctx: Arc<Context>,
    cid: String,
}

impl PlayerSink {
    pub fn new(
        writer: OwnedWriteHalf,
        consumer: Consumer,
        framing: Framing,
        jitter_mode: TimeJitter,
        ctx: Arc<Context>,
        client: Arc<Client>,
        cid: String,
    ) -> PlayerSink {
        PlayerSink {
            fd: writer.as_ref().as_raw_fd(),
            writer,
            source: Arc::clone(consumer.source()),
            state: Mutex::new(State {
                consumer: Some(consumer),
                jitter: Jitter::new(jitter_mode),
                jitter_mode,
                framing,
                ended: false,
                pending: VecDeque::new(),
                failure: None,
                unreported: 0,
                unreported_writes: 0,
            }),
            task: Notify::new(),
            client,
            ctx,
            cid,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in here panics while the state is locked; if it did, the state
        // is still consistent enough to close the player.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The socket refused part of what was sent: the player's task must wait for room.
    fn blocked(&self) -> bool {
        !self.lock().pending.is_empty()
    }

    /// What a player's task waits on besides its client: the shards handing the
    /// player back (its socket is full, or failed) and then room in its socket, to
    /// catch up from its own task. Fails when the socket failed or took nothing for
    /// `send_timeout`. Cancel-safe: the caller selects it against its client's input.
    pub async fn attend(&self, send_timeout: Duration) -> io::Result<()> {
        if let Some(e) = self.lock().failure.take() {
            return Err(e);
        }
        if !self.blocked() {
            self.task.notified().await;
            return Ok(());
        }
        match tokio::time::timeout(send_timeout, self.writer.writable()).await {
            Ok(ready) => ready?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("peer accepted no data for {send_timeout:?}"),
                ))
            }
        }
        let mut scratch = Scratch::default();
        self.deliver(&mut scratch);
        Ok(())
    }

    pub fn source(&self) -> &Arc<Source> {
        &self.source
    }

    pub fn set_paused(&self, paused: bool) {
        if let Some(c) = self.lock().consumer.as_mut() {
            c.set_paused(paused);
        }
    }

    /// Queues protocol output of the player's session (acks, statuses) behind what
    /// is already on its way.
    pub fn send(&self, bytes: Bytes) {
        let mut st = self.lock();
        if st.failure.is_some() {
            return;
        }
        st.pending.push_back(bytes);
        if let Err(e) = self.flush_pending(&mut st) {
            st.failure = Some(e);
        }
    }

    /// Ends the player: its consumer is released and its socket's writing side shut
    /// now, whatever a shard may still hold for a moment.
    pub fn close(&self) {
        let mut st = self.lock();
        st.consumer = None;
        st.pending.clear();
        st.failure = Some(io::ErrorKind::NotConnected.into());
        self.report(&mut st);
        drop(st);
        // The reading half lives in the ended task; this makes the peer see the end
        // at once rather than when the last reference to the sink goes.
        let _ = nix::sys::socket::shutdown(self.fd, nix::sys::socket::Shutdown::Both);
    }

    fn account(&self, st: &mut State, n: usize) {
        st.unreported += n as u64;
        st.unreported_writes += 1;
        if st.unreported_writes >= REPORT_EVERY_WRITES || st.unreported >= REPORT_EVERY_BYTES {
            self.report(st);
        }
    }

    fn report(&self, st: &mut State) {
        let n = std::mem::take(&mut st.unreported);
        st.unreported_writes = 0;
        if n > 0 {
            self.client.add_send(n);
            self.ctx.counters.bytes_out.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Writes the backlog; true when it is all gone.
    fn flush_pending(&self, st: &mut State) -> io::Result<bool> {
        while !st.pending.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_PIECES];
            let mut k = 0;
            for b in st.pending.iter().take(MAX_PIECES) {
                iov[k] = IoSlice::new(b);
                k += 1;
            }
            let mut n = match self.send_vectored(&iov[..k]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            self.account(st, n);
            while n > 0 {
                let Some(front) = st.pending.front_mut() else {
                    break;
                };
                if n >= front.len() {
                    n -= front.len();
                    st.pending.pop_front();
                } else {
                    front.advance(n);
                    n = 0;
                }
            }
            while st.pending.front().is_some_and(|b| b.is_empty()) {
                st.pending.pop_front();
            }
        }
        if st.pending.capacity() > PENDING_KEEP {
            st.pending.shrink_to(PENDING_KEEP);
        }
        Ok(true)
    }

    /// One non-blocking vectored write. `sendmsg` rather than the `writev` behind
    /// tokio's `try_write_vectored`: on a socket the two do the same, but `writev`
    /// goes through the file layer first (position lock, write checks, fsnotify),
    /// about a tenth of the kernel time of a player's write (perf, 1,000 players).
    ///
    /// The socket is tried first and tokio asked only when it is full: a player's
    /// socket almost always has room, and tokio's readiness bookkeeping around every
    /// write was a third of the fan-out's own CPU time with merged writes off.
    /// `EAGAIN` clears tokio's cached readiness (its event tick keeps an edge that
    /// came in meanwhile), so the player's task then really waits for room.
    fn send_vectored(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        let send = || {
            nix::sys::socket::sendmsg::<()>(
                self.fd,
                iov,
                &[],
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)
        };
        match send() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let stream: &tokio::net::TcpStream = self.writer.as_ref();
                stream.try_io(tokio::io::Interest::WRITABLE, send)
            }
            r => r,
        }
    }

    fn fail(&self, st: &mut State, e: io::Error) {
        st.failure = Some(e);
        self.task.notify_one();
    }

    /// An FLV body that is complete and written: the player's task ends it.
    pub fn finished(&self) -> bool {
        let st = self.lock();
        st.ended && st.pending.is_empty()
    }

    /// One batch: what the consumer has ready, up to [`MAX_PIECES`], written with
    /// one call. Returns true when more may be ready (the batch was full and all of
    /// it was taken).
    fn send_batch(&self, st: &mut State, scratch: &mut Scratch) -> bool {
        if st.ended {
            return false;
        }
        let State {
            consumer,
            jitter,
            jitter_mode,
            framing,
            ended,
            ..
        } = st;
        let Some(consumer) = consumer.as_mut() else {
            return false;
        };
        let mut batch = Batch {
            headers: &mut scratch.headers,
            pieces: [Piece::Scratch(0, 0); MAX_PIECES],
            n: 0,
        };
        batch.headers.clear();
        let chunked = matches!(framing, Framing::Flv { chunked: true });
        if chunked {
            // The chunk-size line, filled in once the batch is known (a range no
            // header can merge with until then).
            batch.pieces[0] = Piece::Scratch(usize::MAX, usize::MAX);
            batch.n = 1;
        }
        // Room kept for the HTTP chunk's trailing CRLF and the last chunk.
        let reserve = if chunked { 2 } else { 0 };
        let mut full = false;
        let view = self.source.view();
        let skipped = consumer.fetch_with(&view, |item| {
            let frame = match item {
                ItemRef::Frame(f) => f,
                ItemRef::Published | ItemRef::Unpublished => {
                    return match framing {
                        Framing::Rtmp { notices, .. } => {
                            if batch.n + 1 + reserve > MAX_PIECES {
                                full = true;
                                return false;
                            }
                            let notice = if matches!(item, ItemRef::Published) {
                                *jitter = Jitter::new(*jitter_mode);
                                &notices.publish
                            } else {
                                &notices.unpublish
                            };
                            batch.scratch(notice);
                            true
                        }
                        Framing::Flv { .. } => {
                            if matches!(item, ItemRef::Unpublished) {
                                *ended = true;
                                // Nothing after the end of the body.
                                return false;
                            }
                            true
                        }
                    };
                }
            };
            let len = frame.payload.len();
            // RTMP timestamps are 32-bit and wrap by design; FLV's are too.
            let ts = |jitter: &mut Jitter| {
                jitter.correct(frame.timestamp, frame.kind != FrameKind::Script) as u32
            };
            match framing {
                Framing::Flv { .. } => {
                    if batch.n + 2 + reserve > MAX_PIECES {
                        full = true;
                        return false;
                    }
                    let ts = ts(jitter);
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
                    if batch.n + need > MAX_PIECES {
                        full = true;
                        return false;
                    }
                    let header = MessageHeader {
                        timestamp: ts(jitter),
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
                            ChunkPiece::Payload(r) => {
                                Piece::Payload(&frame.payload, r.start, r.end)
                            }
                        });
                    }
                    true
                }
            }
        });
        if let Some(s) = skipped {
            warn!(
                cid = %self.cid,
                "player fell {} ms behind (queue_length); skipped {} entries to a keyframe",
                s.lag_ms, s.entries
            );
        }
        if chunked {
            let body: usize = batch.pieces[1..batch.n].iter().map(Piece::len).sum();
            if body == 0 && !*ended {
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
            if *ended {
                batch.scratch(b"0\r\n\r\n");
            }
        }
        let Batch { headers, pieces, n } = batch;
        if n == 0 {
            return false;
        }
        let pieces = &pieces[..n];
        let mut iov = [IoSlice::new(&[]); MAX_PIECES];
        let mut total = 0;
        for (slot, p) in iov.iter_mut().zip(pieces) {
            *slot = IoSlice::new(match *p {
                Piece::Scratch(s, e) => &headers[s..e],
                Piece::Payload(b, s, e) => &b[s..e],
            });
            total += p.len();
        }
        if total == 0 {
            return false;
        }
        let (written, error) = match self.send_vectored(&iov[..n]) {
            Ok(0) => (0, Some(io::ErrorKind::WriteZero.into())),
            Ok(w) => (w, None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => (0, None),
            Err(e) => (0, Some(e)),
        };
        if let Some(e) = error {
            self.fail(st, e);
            return false;
        }
        self.account(st, written);
        if written < total {
            // The socket is full: keep the rest (this is where payloads get
            // reference-counted and headers copied) and wake the player's task.
            stash(&mut st.pending, pieces, headers, written);
            self.task.notify_one();
            return false;
        }
        if st.ended {
            // The task ends the connection once this is seen.
            self.task.notify_one();
        }
        full
    }
}

/// One batch being built: headers in the scratch buffer, pieces in wire order.
struct Batch<'s, 'r> {
    headers: &'s mut Vec<u8>,
    pieces: [Piece<'r>; MAX_PIECES],
    n: usize,
}

impl<'r> Batch<'_, 'r> {
    fn push(&mut self, p: Piece<'r>) {
        // Callers check room first; a full batch drops nothing silently in
        // release builds either: the piece would be lost, so refuse loudly in tests.
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
}

/// Keeps the unsent part of a batch, from byte `skip` on.
fn stash(pending: &mut VecDeque<Bytes>, pieces: &[Piece<'_>], headers: &[u8], mut skip: usize) {
    for p in pieces {
        let len = p.len();
        if skip >= len {
            skip -= len;
            continue;
        }
        pending.push_back(match *p {
            Piece::Scratch(s, e) => Bytes::copy_from_slice(&headers[s + skip..e]),
            Piece::Payload(b, s, e) => b.slice(s + skip..e),
        });
        skip = 0;
    }
}

impl Drop for PlayerSink {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let n = std::mem::take(&mut st.unreported);
        if n > 0 {
            self.client.add_send(n);
            self.ctx.counters.bytes_out.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Sink for PlayerSink {
    fn deliver(&self, scratch: &mut Scratch) {
        let mut st = self.lock();
        if st.failure.is_some() || st.consumer.is_none() {
            return;
        }
        if !st.pending.is_empty() {
            match self.flush_pending(&mut st) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => return self.fail(&mut st, e),
            }
        }
        while self.send_batch(&mut st, scratch) {}
    }
}

/// A sink fed by its stream's shards for as long as this lives; on every exit path
/// (error, kick, task cancelled) it is taken out and closed: its consumer released,
/// its socket shut.
pub struct Feeding {
    pub sink: Arc<PlayerSink>,
}

impl Feeding {
    pub fn start(sink: PlayerSink) -> Feeding {
        let sink = Arc::new(sink);
        sink.source.fanout.add(sink.clone());
        Feeding { sink }
    }
}

impl Drop for Feeding {
    fn drop(&mut self) {
        let sink: Arc<dyn Sink> = self.sink.clone();
        self.sink.source.fanout.remove(&sink);
        self.sink.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Frame, FrameKind, SourceSettings, StreamKey};
    use tokio::io::AsyncReadExt;

    fn frame(kind: FrameKind, ts: u64, len: usize, keyframe: bool) -> Frame {
        let fill = (ts % 251) as u8;
        Frame {
            kind,
            timestamp: ts,
            payload: Bytes::from(vec![fill; len]),
            keyframe,
            sequence_header: false,
        }
    }

    /// A player that does not read at first: the sink keeps what its socket refused,
    /// hands over to the task (`attend`), and the body that finally arrives is whole,
    /// in order, correctly chunked, and ends with the publish.
    #[tokio::test]
    async fn a_blocked_flv_player_catches_up_with_a_whole_chunked_body() {
        let ctx = Context::new(crate::config::Config::default());
        let key = StreamKey {
            vhost: "v".into(),
            app: "live".into(),
            stream: "s".into(),
        };
        let settings = SourceSettings {
            gop_cache: true,
            queue_length_ms: 3_600_000,
        };
        let source = ctx.hub.source(&key, settings);
        source.publish("pub").unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, addr) = listener.accept().await.unwrap();
        let (_read_half, write_half) = server.into_split();
        let reg = ctx.clients.register("c", addr);
        let consumer = ctx.hub.subscribe(&key, settings);
        let sink = PlayerSink::new(
            write_half,
            consumer,
            Framing::Flv { chunked: true },
            TimeJitter::Off,
            ctx.clone(),
            reg.client.clone(),
            "c".into(),
        );
        let feeding = Feeding::start(sink);
        // Far more than the socket buffers hold, in frames of many sizes.
        let mut sent = Vec::new();
        for i in 0..400u64 {
            let f = frame(
                FrameKind::Video,
                i * 40,
                1000 + (i as usize * 977) % 60_000,
                i % 50 == 0,
            );
            sent.push((f.timestamp, f.payload.len()));
            source.push(f);
        }
        source.unpublish("pub");
        let mut scratch = Scratch::default();
        feeding.sink.deliver(&mut scratch);
        assert!(
            feeding.sink.blocked(),
            "the socket cannot have taken it all"
        );
        let reader = tokio::spawn(async move {
            let mut raw = Vec::new();
            peer.read_to_end(&mut raw).await.unwrap();
            raw
        });
        let done = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while !feeding.sink.finished() {
                feeding
                    .sink
                    .attend(std::time::Duration::from_secs(10))
                    .await
                    .unwrap();
            }
        })
        .await;
        assert!(done.is_ok(), "the task never caught up");
        drop(feeding);
        let raw = reader.await.unwrap();
        // De-chunk.
        let mut body = Vec::new();
        let mut rest = &raw[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
            rest = &rest[eol + 2..];
            if size == 0 {
                assert_eq!(rest, b"\r\n", "the last chunk ends the body");
                break;
            }
            body.extend_from_slice(&rest[..size]);
            assert_eq!(&rest[size..size + 2], b"\r\n");
            rest = &rest[size + 2..];
        }
        // Tags in order, each the frame that was pushed.
        let mut got = Vec::new();
        let mut pos = 0;
        while pos < body.len() {
            let len = u32::from_be_bytes([0, body[pos + 1], body[pos + 2], body[pos + 3]]) as usize;
            let ts =
                u32::from_be_bytes([body[pos + 7], body[pos + 4], body[pos + 5], body[pos + 6]]);
            assert_eq!(body[pos], 9);
            let fill = body[pos + 11];
            assert!(body[pos + 11..pos + 11 + len].iter().all(|&b| b == fill));
            let trailer =
                u32::from_be_bytes(body[pos + 11 + len..pos + 15 + len].try_into().unwrap());
            assert_eq!(trailer as usize, len + 11);
            got.push((u64::from(ts), len));
            pos += 15 + len;
        }
        assert_eq!(got, sent);
    }
}
