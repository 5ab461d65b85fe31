//! How a stream asks for merged-write pacing without owning a timer or a task.
//!
//! The delivery service's pacer ([`crate::delivery`]) takes the receiving end once
//! and ticks every stream that asked. While no pacer runs (unit tests, tools, or
//! after the server stopped), a stream wakes its readers on every frame instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Weak};

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::Source;

/// Pacing requests of one hub's streams. The channel is unbounded but holds at
/// most one request per stream: a stream asks again only after the pacer let it go.
#[derive(Debug)]
pub struct Pacing {
    tx: UnboundedSender<Weak<Source>>,
    rx: Mutex<Option<UnboundedReceiver<Weak<Source>>>>,
    running: AtomicBool,
}

impl Default for Pacing {
    fn default() -> Self {
        let (tx, rx) = unbounded_channel();
        Pacing {
            tx,
            rx: Mutex::new(Some(rx)),
            running: AtomicBool::new(false),
        }
    }
}

impl Pacing {
    /// The receiving end, for the one pacer of this hub.
    pub fn take_requests(&self) -> Option<UnboundedReceiver<Weak<Source>>> {
        crate::util::lock(&self.rx).take()
    }

    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
    }

    /// Hands a stream to the pacer; false when no pacer runs.
    pub(super) fn request(&self, source: Weak<Source>) -> bool {
        self.running.load(Ordering::Acquire) && self.tx.send(source).is_ok()
    }
}
