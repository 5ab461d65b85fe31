//! The socket driver every live player goes through (RTMP, HTTP-FLV, and the
//! transports to come): batching, backpressure, byte accounting and the hand-over
//! between the stream's shards and the player's own task.
//!
//! The common case costs one vectored write per player per merged-write tick and
//! nothing else: a shard ([`super::shard`]) lends its scratch buffer, the player's
//! [`Framer`] lays the batch out (headers in the scratch, payloads borrowed from the
//! ring), and the transport takes it all at once. Only when the transport is full is
//! anything copied or reference-counted: the rest of the batch is kept here and the
//! player's own task, woken through `task`, waits for room ([`PlayerDriver::attend`])
//! and catches up before the shards feed it again.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::sync::Notify;
use tracing::warn;

use super::framing::{Batch, Framer, MAX_PIECES};
use super::shard::{Scratch, Sink};
use super::transport::Transport;
use crate::context::Context;
use crate::hub::{Consumer, Source};
use crate::stats::Client;

/// A drained backlog above this many buffers gives its memory back.
const PENDING_KEEP: usize = 16;
/// Byte counters lag a player's writes by at most this much (16 merged-write
/// ticks, 1.6 s at the default `mw_latency`; the API's rates are 30 s averages).
const REPORT_EVERY_WRITES: u32 = 16;
const REPORT_EVERY_BYTES: u64 = 64 * 1024;

struct State {
    /// `None` once the player's task has ended.
    consumer: Option<Consumer>,
    framer: Framer,
    /// What the transport has not taken yet, in order. Non-empty means the player's
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

/// One live player's sending side.
pub struct PlayerDriver {
    transport: Transport,
    source: Arc<Source>,
    state: Mutex<State>,
    /// Wakes the player's task when its transport is full or failed.
    task: Notify,
    client: Arc<Client>,
    ctx: Arc<Context>,
}

impl PlayerDriver {
    pub fn new(
        transport: Transport,
        consumer: Consumer,
        framer: Framer,
        ctx: Arc<Context>,
        client: Arc<Client>,
    ) -> PlayerDriver {
        PlayerDriver {
            transport,
            source: Arc::clone(consumer.source()),
            state: Mutex::new(State {
                consumer: Some(consumer),
                framer,
                pending: VecDeque::new(),
                failure: None,
                unreported: 0,
                unreported_writes: 0,
            }),
            task: Notify::new(),
            client,
            ctx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in here panics while the state is locked; if it did, the state
        // is still consistent enough to close the player.
        crate::util::lock(&self.state)
    }

    /// The transport refused part of what was sent (or holds bytes it took but could
    /// not send yet): the player's task must wait for room.
    pub fn blocked(&self) -> bool {
        !self.lock().pending.is_empty() || self.transport.backlog()
    }

    /// What a player's task waits on besides its client: the shards handing the
    /// player back (its transport is full, or failed) and then room in it, to catch
    /// up from its own task. Fails when the transport failed or took nothing for
    /// `send_timeout`. Cancel-safe: the caller selects it against its client's input.
    pub async fn attend(&self, send_timeout: Duration) -> io::Result<()> {
        if let Some(e) = self.lock().failure.take() {
            return Err(e);
        }
        if !self.blocked() {
            self.task.notified().await;
            return Ok(());
        }
        match tokio::time::timeout(send_timeout, self.transport.writable()).await {
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

    pub(super) fn ctx(&self) -> &Arc<Context> {
        &self.ctx
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

    /// Ends the player: its consumer is released and its transport shut now,
    /// whatever a shard may still hold for a moment.
    pub fn close(&self) {
        let mut st = self.lock();
        st.consumer = None;
        st.pending.clear();
        st.failure = Some(io::ErrorKind::NotConnected.into());
        self.report(&mut st);
        drop(st);
        self.transport.shutdown();
    }

    /// A complete FLV body, all written: the player's task ends it.
    pub fn finished(&self) -> bool {
        let st = self.lock();
        st.framer.ended() && st.pending.is_empty()
    }

    fn account(&self, st: &mut State, n: usize) {
        if !self.transport.counts_bytes_itself() {
            st.unreported += n as u64;
        }
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

    /// Writes the backlog (ours, then the transport's own); true when it is all gone.
    fn flush_pending(&self, st: &mut State) -> io::Result<bool> {
        if self.transport.backlog() && !self.transport.flush_now()? {
            return Ok(false);
        }
        while !st.pending.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_PIECES];
            let mut k = 0;
            for b in st.pending.iter().take(MAX_PIECES) {
                iov[k] = IoSlice::new(b);
                k += 1;
            }
            let mut n = match self.transport.try_send(&iov[..k]) {
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
        self.transport.flush_now()
    }

    fn fail(&self, st: &mut State, e: io::Error) {
        st.failure = Some(e);
        self.task.notify_one();
    }

    /// One batch: what the consumer has ready, up to [`MAX_PIECES`], written with
    /// one call. Returns true when more may be ready (the batch was full and all of
    /// it was taken).
    fn send_batch(&self, st: &mut State, scratch: &mut Scratch) -> bool {
        let State {
            consumer,
            framer,
            pending,
            ..
        } = &mut *st;
        if framer.ended() {
            return false;
        }
        let Some(consumer) = consumer.as_mut() else {
            return false;
        };
        let mut batch = Batch::new(&mut scratch.headers);
        framer.begin(&mut batch);
        let mut full = false;
        let view = self.source.view();
        framer.set_atc(view.atc());
        let skipped = consumer.fetch_with(&view, |item| {
            let taken = framer.push(item, &mut batch);
            full |= !taken && !framer.ended();
            taken
        });
        if let Some(s) = skipped {
            warn!(
                cid = %self.client.id,
                "player fell {} ms behind (queue_length); skipped {} entries to a keyframe",
                s.lag_ms, s.entries
            );
        }
        if !framer.finish(&mut batch) {
            if framer.ended() {
                // Nothing to write, but the stream ended: the task ends the player.
                self.task.notify_one();
            }
            return false;
        }
        let mut iov = [IoSlice::new(&[]); MAX_PIECES];
        let (n, total) = batch.io_slices(&mut iov);
        let (written, error) = match self.transport.try_send(&iov[..n]) {
            Ok(0) => (0, Some(io::ErrorKind::WriteZero.into())),
            Ok(w) => (w, None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => (0, None),
            Err(e) => (0, Some(e)),
        };
        if written < total && error.is_none() {
            // The transport is full: keep the rest (this is where payloads get
            // reference-counted and headers copied) and wake the player's task.
            batch.stash(written, pending);
        }
        let ended = framer.ended();
        drop(view);
        if let Some(e) = error {
            self.fail(st, e);
            return false;
        }
        self.account(st, written);
        if written < total || self.transport.backlog() {
            self.task.notify_one();
            return false;
        }
        if ended {
            // The task ends the connection once this is seen.
            self.task.notify_one();
        }
        full
    }
}

impl Drop for PlayerDriver {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let n = std::mem::take(&mut st.unreported);
        if n > 0 {
            self.client.add_send(n);
            self.ctx.counters.bytes_out.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Sink for PlayerDriver {
    fn deliver(&self, scratch: &mut Scratch) {
        let mut st = self.lock();
        if st.failure.is_some() || st.consumer.is_none() {
            return;
        }
        if !st.pending.is_empty() || self.transport.backlog() {
            match self.flush_pending(&mut st) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => return self.fail(&mut st, e),
            }
        }
        while self.send_batch(&mut st, scratch) {}
    }

    fn close_for(&self, reason: crate::stats::KickReason) {
        self.client.disconnect_for(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TimeJitter;
    use crate::delivery::{Framer, Framing, Transport};
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

    /// A player that does not read at first: the driver keeps what its socket refused,
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
        let driver = PlayerDriver::new(
            Transport::tcp(write_half),
            consumer,
            Framer::new(Framing::Flv { chunked: true }, TimeJitter::Off),
            ctx.clone(),
            reg.client.clone(),
        );
        let feeding = ctx.delivery.attach(driver);
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
        feeding.driver.deliver(&mut scratch);
        assert!(
            feeding.driver.blocked(),
            "the socket cannot have taken it all"
        );
        let reader = tokio::spawn(async move {
            let mut raw = Vec::new();
            peer.read_to_end(&mut raw).await.unwrap();
            raw
        });
        let done = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while !feeding.driver.finished() {
                feeding
                    .driver
                    .attend(std::time::Duration::from_secs(10))
                    .await
                    .unwrap();
            }
        })
        .await;
        assert!(done.is_ok(), "the task never caught up");
        drop(feeding);
        let raw = reader.await.unwrap();
        let (body, _) = crate::delivery::framing::tests::dechunk(&raw);
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
