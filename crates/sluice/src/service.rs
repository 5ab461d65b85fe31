//! One lifecycle for every background service of the server (HLS, DVR, forward, edge,
//! ffmpeg, heartbeat, stats, delivery).
//!
//! Why one shape: each service used to start, follow the hub, recover from a lagging
//! event channel and stop in its own way, so a graceful stop could only poll for signs
//! that work had finished. Here every service is a [`Service`]: started once by
//! [`Services::start`] with a [`Shutdown`] handle, it runs until that handle fires and
//! returns only when its own work is done (playlists ended, files closed, hooks sent,
//! child processes reaped). [`Services::stop`] fires the handle and waits for each
//! service, bounded by a deadline; the ones that did not finish in time are named in
//! the log and aborted. The model is pingora's `BackgroundService` and mini-redis's
//! shutdown handle.
//!
//! Services that follow publish edges do it through [`HubFollower`], which turns a
//! lagging broadcast channel into one [`HubEvent::Resync`]: the service then looks at
//! the hub's live streams again instead of silently missing some.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, warn, Instrument};

use crate::context::Context;
use crate::hub::HubEvent;

/// A service's future, boxed so that services of different types share one list.
pub type ServiceFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A long-running part of the server.
pub trait Service: Send + 'static {
    /// Short lower-case name for logs ("hls", "dvr", ...).
    fn name(&self) -> &'static str;

    /// Runs until `shutdown` fires, then finishes its work and returns. Called once,
    /// inside the runtime. Everything the service needs to be reached by others (the
    /// API, other services) lives in the [`Context`], never in statics.
    fn run(self: Box<Self>, ctx: Arc<Context>, shutdown: Shutdown) -> ServiceFuture;
}

/// Fires once, when the server stops. Cheap to clone: hand one to each task a
/// service spawns so that it ends too.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Resolves when the server stops (at once if it already has). Cancel-safe.
    pub async fn requested(&mut self) {
        // An error means the sender is gone: the server is gone too.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// A handle that never fires, for tests and tools that run a piece on its own.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        // Kept alive for the process: `requested` must pend, not see a closed channel.
        std::mem::forget(tx);
        Shutdown { rx }
    }
}

/// The running services of one server.
pub struct Services {
    stop: watch::Sender<bool>,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Services {
    /// Starts each service on its own task, in order.
    pub fn start(ctx: &Arc<Context>, list: Vec<Box<dyn Service>>) -> Services {
        let (stop, rx) = watch::channel(false);
        let running = list
            .into_iter()
            .map(|svc| {
                let name = svc.name();
                let fut = svc.run(ctx.clone(), Shutdown { rx: rx.clone() });
                let span = tracing::info_span!("service", name);
                (name, tokio::spawn(fut.instrument(span)))
            })
            .collect();
        Services { stop, running }
    }

    /// A shutdown handle of these services, for work started outside them (a
    /// connection's tasks) that must end with the server.
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown {
            rx: self.stop.subscribe(),
        }
    }

    /// Fires every service's shutdown and waits, within `deadline` in all, for each
    /// to finish its work. Returns the names of those that did not (they are aborted).
    pub async fn stop(self, deadline: Duration) -> Vec<&'static str> {
        let _ = self.stop.send(true);
        let until = tokio::time::Instant::now() + deadline;
        let mut late = Vec::new();
        for (name, mut task) in self.running {
            match tokio::time::timeout_at(until, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_panic() => warn!("service {name} panicked: {e}"),
                Ok(Err(_)) => {}
                Err(_) => {
                    warn!("service {name} did not finish within {deadline:?}; aborted");
                    task.abort();
                    late.push(name);
                }
            }
        }
        if late.is_empty() {
            info!("every service finished its work");
        }
        late
    }
}

/// The tasks one service starts (a stream's writer, a recorder, a push, a hook call),
/// so that the service can stop them and wait for them before it returns. Why not
/// `tokio::spawn`: a detached task outlives the service that started it, and a stop
/// would have to guess when its files are closed and its hooks sent.
///
/// Tasks get their own [`Shutdown`] ([`Tasks::shutdown`]), fired by [`Tasks::finish`]:
/// the service decides when they stop (after its own loop ended), not the server.
#[derive(Debug)]
pub struct Tasks {
    set: std::sync::Mutex<JoinSet<()>>,
    stop: watch::Sender<bool>,
}

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks {
            set: std::sync::Mutex::new(JoinSet::new()),
            stop: watch::Sender::new(false),
        }
    }
}

impl Tasks {
    fn set(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        crate::util::lock(&self.set)
    }

    /// Starts `task` in the current span. Tasks that already ended are reaped here, so
    /// a long-running service does not accumulate them.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut set = self.set();
        while let Some(done) = set.try_join_next() {
            log_panic(done);
        }
        set.spawn(task.in_current_span());
    }

    /// Fires when the owning service stops: pass it to each task.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown {
            rx: self.stop.subscribe(),
        }
    }

    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// How many tasks are still running.
    pub fn len(&self) -> usize {
        let mut set = self.set();
        while let Some(done) = set.try_join_next() {
            log_panic(done);
        }
        set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fires [`Tasks::shutdown`] and waits until every task has ended, including
    /// those started while waiting (a hook fired by a closing writer).
    pub async fn finish(&self) {
        let _ = self.stop.send(true);
        loop {
            let mut set = std::mem::take(&mut *self.set());
            if set.is_empty() {
                return;
            }
            while let Some(done) = set.join_next().await {
                log_panic(done);
            }
        }
    }
}

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            warn!("a service task panicked: {e}");
        }
    }
}

/// Follows the hub's publish edges for one service. A service that falls more than
/// the channel's capacity behind gets [`HubEvent::Resync`] once instead of the
/// events it missed, and looks at [`crate::hub::Hub::sources`] again.
pub struct HubFollower {
    name: &'static str,
    rx: broadcast::Receiver<HubEvent>,
}

impl HubFollower {
    /// Subscribes now: call it before anything that could publish, so no edge is
    /// missed between start-up and the service's first `next`.
    pub fn new(name: &'static str, ctx: &Context) -> HubFollower {
        HubFollower {
            name,
            rx: ctx.hub.events(),
        }
    }

    /// The next event, or None when the server stops (`shutdown` fired, or the hub
    /// is gone). Cancel-safe: use it in a `select!` with the service's other work.
    pub async fn next(&mut self, shutdown: &mut Shutdown) -> Option<HubEvent> {
        tokio::select! {
            biased;
            _ = shutdown.requested() => None,
            ev = self.rx.recv() => match ev {
                Ok(ev) => Some(ev),
                Err(RecvError::Lagged(n)) => {
                    warn!("{}: fell {n} hub events behind; looking at the live streams again", self.name);
                    Some(HubEvent::Resync)
                }
                Err(RecvError::Closed) => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    struct Finisher {
        done: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Service for Finisher {
        fn name(&self) -> &'static str {
            "finisher"
        }
        fn run(self: Box<Self>, _ctx: Arc<Context>, mut shutdown: Shutdown) -> ServiceFuture {
            Box::pin(async move {
                shutdown.requested().await;
                // Work that takes a while after the request, like closing files.
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.done.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        }
    }

    struct Stuck;

    impl Service for Stuck {
        fn name(&self) -> &'static str {
            "stuck"
        }
        fn run(self: Box<Self>, _ctx: Arc<Context>, _shutdown: Shutdown) -> ServiceFuture {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn stop_waits_for_work_and_names_the_late() {
        let ctx = Context::new(Config::default());
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let services = Services::start(
            &ctx,
            vec![Box::new(Finisher { done: done.clone() }), Box::new(Stuck)],
        );
        let late = services.stop(Duration::from_millis(500)).await;
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(late, vec!["stuck"]);
    }

    #[tokio::test]
    async fn tasks_finish_waits_for_tasks_started_meanwhile() {
        let tasks = Arc::new(Tasks::default());
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut shutdown = tasks.shutdown();
        let (t, d) = (tasks.clone(), done.clone());
        tasks.spawn(async move {
            shutdown.requested().await;
            // Like a writer that fires a hook as it closes its file.
            t.spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                d.store(true, std::sync::atomic::Ordering::SeqCst);
            });
        });
        assert_eq!(tasks.len(), 1);
        tasks.finish().await;
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
        assert!(tasks.is_empty() && tasks.is_stopping());
    }

    #[tokio::test]
    async fn a_lagging_follower_resyncs_once() {
        let ctx = Context::new(Config::default());
        let mut follower = HubFollower::new("test", &ctx);
        let mut shutdown = Shutdown::never();
        for _ in 0..crate::hub::EVENT_CAPACITY + 10 {
            ctx.hub.announce_reload();
        }
        assert!(matches!(
            follower.next(&mut shutdown).await,
            Some(HubEvent::Resync)
        ));
        assert!(matches!(
            follower.next(&mut shutdown).await,
            Some(HubEvent::Reloaded)
        ));
    }

    #[tokio::test]
    async fn a_follower_ends_on_shutdown() {
        let ctx = Context::new(Config::default());
        let services = Services::start(&ctx, vec![]);
        let mut shutdown = services.shutdown_handle();
        let mut follower = HubFollower::new("test", &ctx);
        services.stop(Duration::from_secs(1)).await;
        assert!(follower.next(&mut shutdown).await.is_none());
    }
}
