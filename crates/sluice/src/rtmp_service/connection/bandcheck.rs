//! SRS's RTMP bandwidth test on one connection, after its connect was accepted (see
//! `rtmp::bandcheck` for the exchange and `crate::bandcheck` for who may run it). The
//! connection is the test's: it closes when the test ends, as in SRS.

use std::time::{Duration, Instant};

use rtmp::bandcheck::{self, Packet, Report, Sample, Step};
use rtmp::server::Event;
use tokio::io::AsyncWriteExt;
use tracing::info;

use super::{CloseReason, Connection};
use crate::config::BandcheckConfig;
use crate::util::unix_ms;

/// How long the client may take to answer a step (SRS: twice the sample duration).
const STEP_TIMEOUT: Duration = Duration::from_millis(2 * bandcheck::SAMPLE_DURATION_MS);
/// How long the server waits for the client's last packet before closing anyway.
const FINAL_WAIT: Duration = Duration::from_millis(600);

impl Connection {
    /// Runs the whole test: play (server to client), publish (client to server), report.
    pub(super) async fn bandcheck(&mut self, cfg: &BandcheckConfig) -> Result<(), CloseReason> {
        let limit = cfg.limit_kbps;
        let duration = bandcheck::SAMPLE_DURATION_MS;
        let start_time = unix_ms();
        info!(
            "bandcheck start ip={} limit={limit}kbps duration={duration}ms",
            self.peer
        );

        self.session
            .send_bandcheck(&bandcheck::start(Step::StartPlay, limit, duration));
        self.flush().await?;
        self.expect_bandcheck(Step::StartingPlay, STEP_TIMEOUT)
            .await?;
        let play = self.bandcheck_play(limit, duration).await?;
        self.session
            .send_bandcheck(&bandcheck::stop(Step::StopPlay, duration, &play));
        self.flush().await?;
        self.expect_bandcheck(Step::StoppedPlay, STEP_TIMEOUT)
            .await?;

        self.session
            .send_bandcheck(&bandcheck::start(Step::StartPublish, limit, duration));
        self.flush().await?;
        self.expect_bandcheck(Step::StartingPublish, STEP_TIMEOUT)
            .await?;
        let publish = self.bandcheck_publish(limit, duration).await?;
        self.session
            .send_bandcheck(&bandcheck::stop(Step::StopPublish, duration, &publish));
        self.flush().await?;
        // SRS does not wait for this from Flash clients (their queue is full of publish
        // packets); neither does it matter here: a short wait, then on.
        let _ = self
            .expect_bandcheck(Step::StoppedPublish, STEP_TIMEOUT)
            .await;

        let report = Report {
            start_time,
            end_time: unix_ms(),
            play,
            publish,
        };
        self.session.send_bandcheck(&report.to_packet());
        self.flush().await?;
        info!(
            "bandcheck ok ip={} duration={}ms play={}kbps ({} bytes in {} ms) publish={}kbps ({} bytes in {} ms) limit={limit}kbps",
            self.peer,
            report.end_time.saturating_sub(start_time),
            play.kbps(),
            play.bytes,
            play.duration_ms,
            publish.kbps(),
            publish.bytes,
            publish.duration_ms
        );
        // The client's `finalClientPacket`; any error here is the client leaving, fine.
        let _ = self.expect_bandcheck(Step::Final, FINAL_WAIT).await;
        Ok(())
    }

    /// Reads until the client sends `want` (other packets and events are ignored),
    /// within `timeout`.
    async fn expect_bandcheck(&mut self, want: Step, timeout: Duration) -> Result<(), CloseReason> {
        let wait = async {
            loop {
                if let Event::Bandcheck(p) = self.next_event().await? {
                    if p.step == want {
                        return Ok(());
                    }
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            CloseReason::Timeout(format!("bandcheck: no {} in {timeout:?}", want.name()))
        })?
    }

    /// The play sample: filler packets (growing as SRS's do) for `duration_ms`, held to
    /// `limit_kbps`.
    async fn bandcheck_play(
        &mut self,
        limit: u32,
        duration_ms: u64,
    ) -> Result<Sample, CloseReason> {
        let started = Instant::now();
        let mut bytes: u64 = 0;
        let mut entries = 1;
        while (started.elapsed().as_millis() as u64) < duration_ms {
            self.session
                .send_bandcheck(&Packet::filler(Step::Playing, entries));
            entries += 2;
            if let Some(out) = self.session.take_output() {
                self.client.add_send(out.len() as u64);
                bytes += out.len() as u64;
                self.writer
                    .as_mut()
                    .ok_or(CloseReason::WriterGone)?
                    .write_all(&out)
                    .await?;
            }
            let elapsed = started.elapsed().as_millis() as u64;
            let pause =
                bandcheck::pause_ms(bytes, elapsed, limit).min(duration_ms.saturating_sub(elapsed));
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        Ok(Sample {
            bytes,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The publish sample: what the client sends until it says it stopped or
    /// `duration_ms` passed, read no faster than `limit_kbps` (the socket's buffers then
    /// hold the client back).
    async fn bandcheck_publish(
        &mut self,
        limit: u32,
        duration_ms: u64,
    ) -> Result<Sample, CloseReason> {
        let started = Instant::now();
        let base = self.session.bytes_in() + self.rbuf.len() as u64;
        let received =
            |this: &Self| (this.session.bytes_in() + this.rbuf.len() as u64).saturating_sub(base);
        'reading: loop {
            while let Some(ev) = self.session.feed(&mut self.rbuf)? {
                if matches!(&ev, Event::Bandcheck(p) if p.step == Step::StopPublish) {
                    break 'reading;
                }
            }
            self.flush().await?;
            let elapsed = started.elapsed().as_millis() as u64;
            if elapsed >= duration_ms {
                break;
            }
            let pause =
                bandcheck::pause_ms(received(self), elapsed, limit).min(duration_ms - elapsed);
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
                continue;
            }
            let left = Duration::from_millis(duration_ms - elapsed);
            if tokio::time::timeout(left, self.read_some()).await.is_err() {
                break;
            }
        }
        Ok(Sample {
            bytes: received(self),
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
}
