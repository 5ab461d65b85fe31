//! A WHEP player's place in the one delivery path: the record format its `Framing::Rtc`
//! writes, and the transport (`Transport::Rtc`) that hands those records to the UDP task.
//!
//! A WebRTC player's per-peer state (ICE, DTLS, SRTP, RTP sequence numbers, RTCP) lives in
//! its `str0m::Rtc`, which only the UDP task may drive. So the delivery driver's write
//! cannot reach the wire itself: it hands each batch of records to the player's bounded
//! [`PeerQueue`], and the UDP task, woken through [`Ready`], takes the records out and
//! writes them into the player's `Rtc` (packetization, SRTP, send). A full queue refuses
//! the rest of the batch, which the driver keeps and the player's task retries once the
//! UDP task has made room: backlog is reported exactly like a partial socket write, so a
//! slow server makes the player fall behind in the ring and skip to a keyframe, as any
//! other player.
//!
//! Record (sans-IO, [`record_header`] / [`RecordReader`]): a 14-byte header — kind (1 video,
//! 2 audio), flags (bit 0: keyframe), the media time in ms (u64 BE), the payload's length
//! (u32 BE) — then the payload, made once per stream by [`super::feed`]: for video the
//! 12-byte [`super::history::Span`] of the frame's RTP packets in the stream's packet
//! history (the UDP task sends those shared payloads), for audio one Opus packet.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Bytes of a record header.
pub const HEADER: usize = 14;
/// A peer's queue refuses more once it holds this many payload bytes (about 1 s of a
/// 4 Mb/s stream: the UDP task normally empties it within a loop turn).
pub const QUEUE_BYTES: usize = 512 * 1024;
/// The largest record payload accepted (a frame of the ring is bounded far below this).
pub const MAX_RECORD: usize = 16 * 1024 * 1024;

const KIND_VIDEO: u8 = 1;
const KIND_AUDIO: u8 = 2;

/// One frame for a player: what `Writer::write` takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub video: bool,
    pub keyframe: bool,
    /// Media time in ms on the publisher's clock (video: presentation time).
    pub time_ms: u64,
    pub data: Arc<[u8]>,
}

/// The header of one record, written by the framer before the payload.
pub fn record_header(video: bool, keyframe: bool, time_ms: u64, len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = if video { KIND_VIDEO } else { KIND_AUDIO };
    h[1] = u8::from(keyframe);
    h[2..10].copy_from_slice(&time_ms.to_be_bytes());
    h[10..14].copy_from_slice(&(len.min(u32::MAX as usize) as u32).to_be_bytes());
    h
}

/// Reads whole records from a run of buffers (a batch: header pieces and payload pieces,
/// possibly split anywhere). Only whole records are taken, so what a write leaves always
/// starts on a record boundary.
pub struct RecordReader<'a, 'b> {
    bufs: &'a [IoSlice<'b>],
    /// Position: buffer index and offset in it.
    i: usize,
    off: usize,
}

impl<'a, 'b> RecordReader<'a, 'b> {
    pub fn new(bufs: &'a [IoSlice<'b>]) -> Self {
        RecordReader { bufs, i: 0, off: 0 }
    }

    fn remaining(&self) -> usize {
        let mut n = 0;
        for (k, b) in self.bufs.iter().enumerate().skip(self.i) {
            n += if k == self.i {
                b.len() - self.off
            } else {
                b.len()
            };
        }
        n
    }

    /// Copies `out.len()` bytes and advances; the caller checked they are there.
    fn take(&mut self, out: &mut [u8]) {
        let mut filled = 0;
        while filled < out.len() {
            let b = &self.bufs[self.i][self.off..];
            let n = b.len().min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&b[..n]);
            filled += n;
            self.off += n;
            if self.off == self.bufs[self.i].len() {
                self.i += 1;
                self.off = 0;
            }
        }
    }

    fn skip_empty(&mut self) {
        while self.i < self.bufs.len() && self.off == self.bufs[self.i].len() {
            self.i += 1;
            self.off = 0;
        }
    }

    /// The next whole record, its size on the wire; `Ok(None)` when no whole record is
    /// left. A malformed header is an error (the framer wrote it, so this is a bug, not
    /// input; the player ends).
    pub fn next_record(&mut self) -> io::Result<Option<(Record, usize)>> {
        self.skip_empty();
        let left = self.remaining();
        if left < HEADER {
            return Ok(None);
        }
        let (i0, off0) = (self.i, self.off);
        let mut h = [0u8; HEADER];
        self.take(&mut h);
        let video = match h[0] {
            KIND_VIDEO => true,
            KIND_AUDIO => false,
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "bad rtc record")),
        };
        let len = u32::from_be_bytes([h[10], h[11], h[12], h[13]]) as usize;
        if len > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "rtc record too large",
            ));
        }
        if left - HEADER < len {
            // Not whole: leave it.
            self.i = i0;
            self.off = off0;
            return Ok(None);
        }
        self.skip_empty();
        // The payload is one piece of the batch almost always: one copy into the Arc that
        // str0m's packetizer reads.
        let data: Arc<[u8]> = match self.bufs.get(self.i) {
            Some(b) if b.len() - self.off >= len => {
                let d = Arc::from(&b[self.off..self.off + len]);
                self.off += len;
                d
            }
            _ => {
                let mut v = vec![0u8; len];
                self.take(&mut v);
                Arc::from(v)
            }
        };
        let time_ms = u64::from_be_bytes(h[2..10].try_into().unwrap_or_default());
        Ok(Some((
            Record {
                video,
                keyframe: h[1] & 1 != 0,
                time_ms,
                data,
            },
            HEADER + len,
        )))
    }
}

struct QueueState {
    records: VecDeque<Record>,
    bytes: usize,
    /// Already in the [`Ready`] list (it is listed once however many writes it takes).
    listed: bool,
    /// The UDP task ended the session: writes fail.
    closed: bool,
    /// The player's task wants the session ended (stream over, send time-out).
    end: Option<String>,
}

/// One player's records on their way to the UDP task.
pub struct PeerQueue {
    /// The session id (the client id).
    pub id: String,
    state: Mutex<QueueState>,
    room: Notify,
    ready: Arc<Ready>,
}

/// Queues with something for the UDP task, and its wake-up.
#[derive(Default)]
pub struct Ready {
    list: Mutex<Vec<Arc<PeerQueue>>>,
    pub notify: Notify,
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready").finish_non_exhaustive()
    }
}

impl Ready {
    /// The queues listed since the last call.
    pub fn take(&self) -> Vec<Arc<PeerQueue>> {
        std::mem::take(&mut *crate::util::lock(&self.list))
    }
}

/// What the UDP task takes from a queue.
pub struct Drained {
    pub records: VecDeque<Record>,
    pub end: Option<String>,
}

impl PeerQueue {
    pub fn new(id: String, ready: Arc<Ready>) -> Arc<PeerQueue> {
        Arc::new(PeerQueue {
            id,
            state: Mutex::new(QueueState {
                records: VecDeque::new(),
                bytes: 0,
                listed: false,
                closed: false,
                end: None,
            }),
            room: Notify::new(),
            ready,
        })
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Nothing panics while it is locked; a poisoned queue is still a valid queue.
        crate::util::lock(&self.state)
    }

    fn list(self: &Arc<Self>, st: &mut QueueState) {
        if !st.listed {
            st.listed = true;
            crate::util::lock(&self.ready.list).push(self.clone());
            self.ready.notify.notify_one();
        }
    }

    /// The UDP task's side: everything queued, and room made for the writer.
    pub fn drain(&self) -> Drained {
        let mut st = self.lock();
        st.listed = false;
        st.bytes = 0;
        let d = Drained {
            records: std::mem::take(&mut st.records),
            end: st.end.take(),
        };
        drop(st);
        self.room.notify_waiters();
        d
    }

    /// The session is over: writes fail from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.room.notify_waiters();
    }

    /// The player's task asks the UDP task to end the session.
    pub fn request_end(self: &Arc<Self>, why: String) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.end.get_or_insert(why);
        self.list(&mut st);
    }
}

/// `Transport::Rtc`: the driver's writes go into the player's [`PeerQueue`].
pub struct RtcTransport {
    pub queue: Arc<PeerQueue>,
}

impl RtcTransport {
    /// Takes the whole records of `iov` that fit (at least one when the queue is empty);
    /// `WouldBlock` when none does.
    pub fn try_send(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        let q = &self.queue;
        let mut st = q.lock();
        if st.closed {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let mut reader = RecordReader::new(iov);
        let mut taken = 0;
        loop {
            if st.bytes >= QUEUE_BYTES {
                break;
            }
            let Some((r, n)) = reader.next_record()? else {
                break;
            };
            st.bytes += r.data.len();
            st.records.push_back(r);
            taken += n;
        }
        if taken == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        q.list(&mut st);
        Ok(taken)
    }

    /// Waits for room (or the end of the session).
    pub async fn writable(&self) -> io::Result<()> {
        loop {
            let notified = self.queue.room.notified();
            {
                let st = self.queue.lock();
                if st.closed {
                    return Err(io::ErrorKind::NotConnected.into());
                }
                if st.bytes < QUEUE_BYTES {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    pub fn shutdown(&self) {
        self.queue.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: &[(bool, bool, u64, Vec<u8>)]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (v, k, t, d) in records {
            out.push(record_header(*v, *k, *t, d.len()).to_vec());
            out.push(d.clone());
        }
        out
    }

    #[test]
    fn records_are_read_back_whole_however_the_batch_is_cut() {
        let recs = vec![
            (true, true, 40, vec![0, 0, 0, 1, 0x65, 1, 2, 3]),
            (false, false, 60, vec![9; 100]),
            (true, false, 80, vec![7; 3000]),
        ];
        let flat: Vec<u8> = batch(&recs).concat();
        for cut in [1, 3, 13, 14, 15, 100, 2000, flat.len()] {
            let pieces: Vec<IoSlice<'_>> = flat.chunks(cut).map(IoSlice::new).collect();
            let mut r = RecordReader::new(&pieces);
            let mut got = Vec::new();
            let mut total = 0;
            while let Some((rec, n)) = r.next_record().unwrap() {
                total += n;
                got.push((rec.video, rec.keyframe, rec.time_ms, rec.data.to_vec()));
            }
            assert_eq!(got, recs, "cut every {cut} bytes");
            assert_eq!(total, flat.len());
        }
    }

    #[test]
    fn a_partial_record_is_left_for_the_next_write() {
        let flat: Vec<u8> =
            batch(&[(true, true, 1, vec![1; 50]), (false, false, 2, vec![2; 50])]).concat();
        let short = &flat[..flat.len() - 1];
        let pieces = [IoSlice::new(short)];
        let mut r = RecordReader::new(&pieces);
        assert!(r.next_record().unwrap().is_some());
        assert!(r.next_record().unwrap().is_none());
        let bad = [IoSlice::new(&[9u8; 20])];
        assert!(RecordReader::new(&bad).next_record().is_err());
    }

    /// What `Framing::Rtc` writes is what the transport reads back: frames in order, times
    /// untouched (no jitter correction), script data left out, the end at the unpublish.
    #[test]
    fn the_rtc_framer_writes_records_the_transport_reads() {
        use crate::delivery::framing::Batch;
        use crate::delivery::{Framer, Framing};
        use crate::hub::{Frame, FrameKind, ItemRef};
        let f = |kind, ts, key, len| Frame {
            kind,
            timestamp: ts,
            payload: bytes::Bytes::from(vec![ts as u8; len]),
            keyframe: key,
            sequence_header: false,
        };
        let frames = [
            f(FrameKind::Video, 1000, true, 5000),
            f(FrameKind::Script, 1000, false, 10),
            f(FrameKind::Audio, 1020, false, 80),
            f(FrameKind::Video, 1040, false, 700),
        ];
        let mut framer = Framer::new(Framing::Rtc, crate::config::TimeJitter::Full);
        let mut scratch = Vec::new();
        let mut batch = Batch::new(&mut scratch);
        framer.begin(&mut batch);
        for fr in &frames {
            assert!(framer.push(ItemRef::Frame(fr), &mut batch));
        }
        assert!(!framer.push(ItemRef::Unpublished, &mut batch));
        assert!(framer.ended());
        assert!(framer.finish(&mut batch));
        let mut iov = [IoSlice::new(&[]); crate::delivery::framing::MAX_PIECES];
        let (n, total) = batch.io_slices(&mut iov);
        let mut r = RecordReader::new(&iov[..n]);
        let mut got = Vec::new();
        let mut read = 0;
        while let Some((rec, k)) = r.next_record().unwrap() {
            read += k;
            got.push((rec.video, rec.keyframe, rec.time_ms, rec.data.len()));
        }
        assert_eq!(read, total);
        assert_eq!(
            got,
            [
                (true, true, 1000, 5000),
                (false, false, 1020, 80),
                (true, false, 1040, 700)
            ]
        );
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_reports_backlog_like_a_partial_write() {
        let ready = Arc::new(Ready::default());
        let q = PeerQueue::new("p".into(), ready.clone());
        let t = RtcTransport { queue: q.clone() };
        let big = vec![5u8; QUEUE_BYTES / 2 + 1];
        let flat: Vec<u8> = batch(&[
            (true, true, 0, big.clone()),
            (true, false, 40, big.clone()),
            (true, false, 80, big.clone()),
        ])
        .concat();
        let n = t.try_send(&[IoSlice::new(&flat)]).unwrap();
        assert_eq!(
            n,
            2 * (HEADER + big.len()),
            "two records fit, the third waits"
        );
        assert_eq!(
            t.try_send(&[IoSlice::new(&flat[n..])]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let listed = ready.take();
        assert_eq!(listed.len(), 1, "listed once for both writes");
        let d = listed[0].drain();
        assert_eq!(d.records.len(), 2);
        t.writable().await.unwrap();
        assert_eq!(
            t.try_send(&[IoSlice::new(&flat[n..])]).unwrap(),
            flat.len() - n
        );
        q.close();
        assert!(t.writable().await.is_err());
        assert!(t.try_send(&[IoSlice::new(&flat)]).is_err());
    }
}
