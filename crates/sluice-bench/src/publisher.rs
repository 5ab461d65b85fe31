//! Real-time RTMP publisher of a looped FLV file.

use std::sync::Arc;
use std::time::Duration;

use rtmp::client::{Client, ClientError, ClientOptions};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::matching::{FrameKey, Sent};
use crate::shared::Shared;
use crate::source::LoopSource;

/// Bigger than any keyframe, so the client never writes on its own before we record the
/// frames' send times (a player must never see a frame before the log holds it).
const WRITE_BUFFER: usize = 8 << 20;

/// What the driver tells a publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Send,
    /// Stop sending but stay connected, so players can drain what is in flight.
    Hold,
    Close,
}

#[derive(Debug, Clone, Default)]
pub struct PublishStats {
    pub frames: u64,
    pub bytes: u64,
    /// Most a frame went out after its due time, ms: a publisher that cannot keep up
    /// (its thread, or a server that reads too slowly) shows here, not as a server result.
    pub max_late_ms: u64,
}

/// Publishes until the phase leaves [`Phase::Send`] (or `max` elapses), then holds the stream
/// until [`Phase::Close`]. Every non-config frame's key and send time go to `record`.
pub async fn publish(
    url: &str,
    source: Arc<LoopSource>,
    max: Option<Duration>,
    record: Option<Arc<Shared>>,
    mut phase: watch::Receiver<Phase>,
    published: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<PublishStats, ClientError> {
    let options = ClientOptions {
        write_buffer: WRITE_BUFFER,
        ..ClientOptions::default()
    };
    let mut publisher = Client::connect_with(url, options).await?.publish().await?;
    if let Some(tx) = published {
        let _ = tx.send(());
    }
    let start = Instant::now();
    let stop_at = max.map(|m| start + m);
    let mut stats = PublishStats::default();
    let mut pending: Vec<Sent> = Vec::new();
    for tag in source.iter() {
        let due = start + Duration::from_millis(u64::from(tag.timestamp));
        if stop_at.is_some_and(|s| due >= s) || *phase.borrow() != Phase::Send {
            break;
        }
        if due > Instant::now() {
            // Everything due so far goes out in one write before we wait.
            flush(&mut publisher, &mut pending, record.as_deref()).await?;
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = phase.wait_for(|p| *p != Phase::Send) => break,
            }
        }
        let late = Instant::now().saturating_duration_since(due);
        stats.max_late_ms = stats.max_late_ms.max(late.as_millis() as u64);
        if !tag.config {
            pending.push(Sent {
                key: FrameKey::new(tag.kind, &tag.payload),
                at: std::time::Instant::now(),
            });
            stats.frames += 1;
        }
        stats.bytes += tag.payload.len() as u64;
        publisher.send(tag.kind, tag.timestamp, tag.payload).await?;
    }
    flush(&mut publisher, &mut pending, record.as_deref()).await?;
    if max.is_none() {
        let _ = phase.wait_for(|p| *p == Phase::Close).await;
    }
    publisher.close().await?;
    Ok(stats)
}

async fn flush(
    publisher: &mut rtmp::client::Publisher,
    pending: &mut Vec<Sent>,
    record: Option<&Shared>,
) -> Result<(), ClientError> {
    // Logged before the write: a player on another thread may read the frame right after.
    let now = std::time::Instant::now();
    for s in pending.iter_mut() {
        s.at = now;
    }
    if let Some(r) = record {
        r.push_sent(pending);
    }
    pending.clear();
    publisher.flush().await?;
    Ok(())
}
