//! The Opus → AAC worker of one WHIP publisher: a thread of its own (not a tokio worker,
//! and not the UDP task that serves every peer), fed through a bounded queue, pushing
//! the AAC frames into the publisher's Source.
//!
//! The UDP task only copies a packet's `Arc` into the queue; when the queue is full (a
//! machine too slow to transcode), packets are dropped and the transcoder fills the gap
//! with silence, so timestamps stay continuous. At most [`MAX_WORKERS`] publishers are
//! transcoded at once; past that a publisher's audio is left out with a log line.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::opus_aac::OpusToAac;
use crate::hub::{make_frame, Frame, FrameKind, Source};

/// How long a frame of one kind waits for the other kind to catch up before it goes to
/// the Source anyway (the other stalled, or stopped).
const MAX_HOLD: Duration = Duration::from_millis(400);
/// Frames held at most per kind (a bound whatever the clock does).
const MAX_HELD: usize = 256;

/// Puts a publisher's video (from the UDP task) and AAC (from its worker thread, some tens
/// of milliseconds later) into the Source in timestamp order. Players' `time_jitter full`
/// (SRS's default) corrects every frame against the one before it, audio or video: audio
/// arriving far behind the video it plays with would make both timelines jump. So a
/// frame waits until the other kind has reached its time, at most [`MAX_HOLD`].
pub struct Interleaver {
    source: Arc<Source>,
    video: VecDeque<(Instant, Frame)>,
    audio: VecDeque<(Instant, Frame)>,
}

impl Interleaver {
    fn new(source: Arc<Source>) -> Interleaver {
        Interleaver {
            source,
            video: VecDeque::new(),
            audio: VecDeque::new(),
        }
    }

    fn push(&mut self, f: Frame) {
        let now = Instant::now();
        let q = if f.kind == FrameKind::Audio {
            &mut self.audio
        } else {
            &mut self.video
        };
        q.push_back((now, f));
        loop {
            let next = match (self.video.front(), self.audio.front()) {
                (Some((_, v)), Some((_, a))) => {
                    if a.timestamp <= v.timestamp {
                        self.audio.pop_front()
                    } else {
                        self.video.pop_front()
                    }
                }
                (Some((at, _)), None)
                    if now.duration_since(*at) >= MAX_HOLD || self.video.len() > MAX_HELD =>
                {
                    self.video.pop_front()
                }
                (None, Some((at, _)))
                    if now.duration_since(*at) >= MAX_HOLD || self.audio.len() > MAX_HELD =>
                {
                    self.audio.pop_front()
                }
                _ => None,
            };
            match next {
                Some((_, f)) => self.source.push(f),
                None => break,
            }
        }
    }
}

/// A publisher's way into its Source once it has audio: through the [`Interleaver`].
#[derive(Clone)]
pub struct Interleaved(Arc<Mutex<Interleaver>>);

impl Interleaved {
    pub fn push(&self, f: Frame) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(f);
    }
}

/// Opus packets waiting for the worker (20 ms each: 5 s).
const QUEUE: usize = 256;
/// Most WHIP publishers transcoded at once (one thread each).
pub const MAX_WORKERS: usize = 64;
static WORKERS: AtomicUsize = AtomicUsize::new(0);

struct Packet {
    rtp48: u64,
    first_ms: u64,
    data: Arc<[u8]>,
}

/// The UDP task's handle on a publisher's worker; dropping it stops the worker.
pub struct WhipAudio {
    tx: SyncSender<Packet>,
    /// Where the publisher's video goes too, so that both reach the Source in order.
    pub interleaved: Interleaved,
    stop: Arc<AtomicBool>,
    /// Packets dropped because the queue was full.
    pub overflow: u64,
}

impl WhipAudio {
    /// Starts the worker for the publisher `client_id` of `source`.
    pub fn start(source: Arc<Source>, client_id: String) -> Result<WhipAudio, String> {
        if WORKERS.fetch_add(1, Ordering::Relaxed) >= MAX_WORKERS {
            WORKERS.fetch_sub(1, Ordering::Relaxed);
            return Err(format!(
                "{MAX_WORKERS} WHIP publishers are transcoded already"
            ));
        }
        let slot = WorkerSlot;
        let mut transcoder = OpusToAac::new()?;
        let (tx, rx) = sync_channel::<Packet>(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let interleaved = Interleaved(Arc::new(Mutex::new(Interleaver::new(source.clone()))));
        let into = interleaved.clone();
        std::thread::Builder::new()
            .name("rtc-opus-aac".into())
            .spawn(move || {
                let _slot = slot;
                let started = Instant::now();
                let mut frames = 0u64;
                let mut out = Vec::new();
                while let Ok(p) = rx.recv() {
                    transcoder.push(p.rtp48, p.first_ms, &p.data, &mut out);
                    for o in out.drain(..) {
                        // The publish may have ended (and the stream been taken by
                        // another publisher) while this packet waited.
                        if stopped.load(Ordering::Relaxed)
                            || source.publisher().is_none_or(|p| p.client_id != client_id)
                        {
                            return;
                        }
                        if let Some(f) = make_frame(rtmp::server::MediaKind::Audio, o.ts_ms, o.payload)
                        {
                            into.push(f);
                            frames += 1;
                        }
                    }
                }
                tracing::debug!(
                    "rtc: opus→aac for {client_id} ended: {frames} AAC frames in {:.1}s, {} Opus packets refused",
                    started.elapsed().as_secs_f64(),
                    transcoder.dropped
                );
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(WhipAudio {
            tx,
            interleaved,
            stop,
            overflow: 0,
        })
    }

    /// One Opus packet (RTP time at 48 kHz); `first_ms` is where the audio starts on the
    /// session's clock (read with the first packet only).
    pub fn push(&mut self, rtp48: u64, first_ms: u64, data: Arc<[u8]>) {
        match self.tx.try_send(Packet {
            rtp48,
            first_ms,
            data,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.overflow == 0 {
                    tracing::warn!("rtc: the Opus→AAC worker falls behind; packets dropped");
                }
                self.overflow += 1;
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Drop for WhipAudio {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One of the [`MAX_WORKERS`], given back when the worker's thread ends (or never
/// started).
struct WorkerSlot;

impl Drop for WorkerSlot {
    fn drop(&mut self) {
        WORKERS.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::test_frames::{aac, video, video_sh};
    use crate::hub::{Consumer, Hub, Item, SourceSettings, StreamKey};

    fn source() -> Arc<Source> {
        let hub = Hub::new();
        let key = StreamKey {
            vhost: "v".into(),
            app: "live".into(),
            stream: "whip".into(),
        };
        let settings = SourceSettings {
            gop_cache: true,
            queue_length_ms: 10_000,
        };
        let s = Source::new(
            "whip".into(),
            key,
            settings,
            tokio::sync::broadcast::channel(1).0,
            hub.pacing(),
        );
        s.publish("publisher").expect("publish");
        s
    }

    /// (kind, timestamp) of what reached the Source, in order.
    fn pushed(consumer: &mut Consumer) -> Vec<(FrameKind, u64)> {
        let mut out = Vec::new();
        loop {
            let mut batch = Vec::new();
            consumer.fetch(&mut batch);
            if batch.is_empty() {
                return out;
            }
            out.extend(batch.into_iter().filter_map(|i| match i {
                Item::Frame(f) => Some((f.kind, f.timestamp)),
                _ => None,
            }));
        }
    }

    /// Video comes from the UDP task at once, its AAC from the worker later: the Source
    /// gets them in timestamp order, each frame waiting for the other kind to reach it.
    #[test]
    fn video_waits_for_the_audio_of_its_time() {
        let src = source();
        let mut consumer = Consumer::detached(src.clone(), 10_000);
        let mut il = Interleaver::new(src.clone());
        il.push(video_sh());
        il.push(video(0, true));
        il.push(video(40, false));
        il.push(video(80, false));
        // Nothing has come out yet: no audio reached any of these times.
        assert_eq!(pushed(&mut consumer), vec![]);
        il.push(aac(0, true));
        il.push(aac(0, false));
        il.push(aac(21, false));
        il.push(aac(42, false));
        il.push(aac(64, false));
        il.push(aac(85, false));
        let got = pushed(&mut consumer);
        let times: Vec<u64> = got.iter().map(|(_, t)| *t).collect();
        let mut sorted = times.clone();
        sorted.sort_unstable();
        assert_eq!(times, sorted, "in timestamp order: {got:?}");
        // Everything up to the last audio frame's time is out; the rest waits for video.
        assert_eq!(got.len(), 9, "{got:?}");
        assert_eq!(got.last(), Some(&(FrameKind::Video, 80)), "{got:?}");
        il.push(video(120, false));
        assert_eq!(pushed(&mut consumer), vec![(FrameKind::Audio, 85)]);
    }

    /// A publisher without audio (or whose audio stopped) is not held back for ever: a
    /// frame older than MAX_HOLD goes out with the next push, and no more than MAX_HELD
    /// frames of one kind are ever held.
    #[test]
    fn one_kind_alone_is_released_after_the_hold_or_the_bound() {
        let src = source();
        let mut consumer = Consumer::detached(src.clone(), 10_000);
        let mut il = Interleaver::new(src.clone());
        il.push(video_sh());
        il.push(video(0, true));
        assert!(
            pushed(&mut consumer).is_empty(),
            "held while audio may come"
        );
        std::thread::sleep(MAX_HOLD + Duration::from_millis(50));
        il.push(video(40, false));
        let got = pushed(&mut consumer);
        assert!(
            got.contains(&(FrameKind::Video, 0)),
            "the old frames went out: {got:?}"
        );

        let src = source();
        let mut consumer = Consumer::detached(src.clone(), 10_000);
        let mut il = Interleaver::new(src.clone());
        for i in 0..=MAX_HELD as u64 + 10 {
            il.push(aac(i * 21, i == 0));
        }
        assert!(il.audio.len() <= MAX_HELD, "{} held", il.audio.len());
        assert!(pushed(&mut consumer).len() >= 10);
    }
}
