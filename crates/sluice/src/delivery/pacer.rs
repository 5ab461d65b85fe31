//! Merged writes with one timer for every stream.
//!
//! A stream with `mw_latency` wakes its readers at most that often, so each wake-up
//! finds a batch of frames and a player writes them with one system call. The
//! stream asks for pacing on the first frame after it went idle
//! ([`crate::hub::Pacing`]); the pacer then ticks it ([`Source::pace`]) every interval
//! while it publishes. One task and one timer serve every paced stream, instead of
//! a task and a timer per stream spawned from inside the stream.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Weak};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::hub::{Pacing, Source};
use crate::service::Shutdown;

pub(super) async fn run(
    pacing: Arc<Pacing>,
    mut requests: UnboundedReceiver<Weak<Source>>,
    mut shutdown: Shutdown,
) {
    pacing.set_running(true);
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut paced: HashMap<u64, Weak<Source>> = HashMap::new();
    let mut next_id = 0u64;
    loop {
        let next = due.peek().map(|Reverse((t, _))| *t);
        tokio::select! {
            biased;
            _ = shutdown.requested() => break,
            req = requests.recv() => {
                let Some(source) = req else { break };
                // The first tick right away: the frame that asked has waited for nothing.
                next_id += 1;
                paced.insert(next_id, source);
                due.push(Reverse((Instant::now(), next_id)));
            }
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                while let Some(Reverse((at, id))) = due.peek().copied() {
                    if at > now {
                        break;
                    }
                    due.pop();
                    let again = paced
                        .get(&id)
                        .and_then(Weak::upgrade)
                        .and_then(|s| s.pace());
                    match again {
                        // Late ticks are not made up for: the next is one interval on.
                        Some(interval) => due.push(Reverse(((at + interval).max(now), id))),
                        None => {
                            paced.remove(&id);
                        }
                    }
                }
            }
        }
    }
    // From now on streams wake their readers on every frame; the ones still paced
    // get a last tick so that nothing pushed stays unseen.
    pacing.set_running(false);
    requests.close();
    while let Ok(source) = requests.try_recv() {
        paced.insert(0, source);
        if let Some(s) = paced.remove(&0).and_then(|w| w.upgrade()) {
            s.unpace();
        }
    }
    for source in paced.values().filter_map(Weak::upgrade) {
        source.unpace();
    }
}
