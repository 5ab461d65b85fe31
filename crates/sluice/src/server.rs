//! Starting and stopping the services of one server process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::context::Context;
use crate::http;
use crate::listen::Gate;
use crate::rtmp_service;
use crate::service::{Service, Services};

/// Why a reload changed nothing (the running config stays). The text is what the log
/// and the raw API's reply show.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("running on the embedded default config: nothing to reload (start with -c FILE)")]
    NoConfigFile,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} for HTTP: {source}")]
    ListenHttp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reload is not available in this process")]
    Unavailable,
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Runs the server until SIGINT, SIGTERM or SIGQUIT (graceful). `startup` is told
/// once the listeners are bound.
pub fn run(
    config: Config,
    config_name: String,
    startup: Arc<crate::process::Startup>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, config_name, startup))
}

async fn serve(
    config: Config,
    config_name: String,
    startup: Arc<crate::process::Startup>,
) -> anyhow::Result<()> {
    info!(
        "sluice {} starting, pid={}, config={}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        config_name
    );
    for w in &config.warnings {
        warn!("config: {w}");
    }
    crate::limits::raise_and_log(config.max_connections);
    let listeners = rtmp_service::bind(&config.listen).await?;
    let http_listeners = bind_http(&config).await?;
    startup.ready();
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let max_connections = config.max_connections;
    let ctx = Context::new(config);
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(4);
    ctx.set_reloader(reload_tx);
    // Started before the listeners accept, so that the services that follow the hub
    // see every publish; the listeners are bound, so ingests and transcoders can dial.
    let services = Services::start(&ctx, services());
    let mut running = Listeners {
        ctx: ctx.clone(),
        limit,
        api_limit: Arc::new(Semaphore::new(crate::admission::API_MAX_CONNECTIONS)),
        max_connections,
        rtmp: HashMap::new(),
        http: HashMap::new(),
    };
    for l in listeners {
        running.spawn_rtmp(l);
    }
    for (l, role) in http_listeners {
        running.spawn_http(l, role);
    }
    let signal = loop {
        tokio::select! {
            s = wait_for_signal() => match s {
                Signal::Reload => {
                    if let Err(e) = running.reload().await {
                        error!("reload failed, keeping the running config: {e}");
                    }
                }
                other => break other,
            },
            Some(reply) = reload_rx.recv() => {
                let r = running.reload().await;
                if let Err(e) = &r {
                    error!("reload failed, keeping the running config: {e}");
                }
                let _ = reply.send(r);
            }
        }
    };
    running.stop_accepting();
    let deadline = if signal == Signal::Graceful {
        let started = tokio::time::Instant::now();
        // Clients that never leave must not eat the services' time: they get half.
        close_clients(&ctx, started + GRACEFUL_TIMEOUT / 2).await;
        (started + GRACEFUL_TIMEOUT).saturating_duration_since(tokio::time::Instant::now())
    } else {
        info!(
            "{}: shutting down (services get {FAST_STOP_TIMEOUT:?} to finish)",
            signal.name()
        );
        FAST_STOP_TIMEOUT
    };
    let late = services.stop(deadline).await;
    if late.is_empty() {
        info!("{}: shutdown complete", signal.name());
    } else {
        warn!(
            "{}: shutdown complete; {} cut short: their work may be incomplete",
            signal.name(),
            late.join(", ")
        );
    }
    Ok(())
}

/// The background services of a server, in the order they start. Each one finishes
/// its own work when the server stops (see [`crate::service`]).
fn services() -> Vec<Box<dyn Service>> {
    vec![
        // Pacing of merged writes and the tasks that feed players.
        Box::new(crate::delivery::DeliveryService),
        Box::new(crate::stats::kbps::Sampler),
        Box::new(crate::stats::pithy::PithyPrint),
        Box::new(crate::heartbeat::Heartbeat),
        Box::new(crate::hls::Hls),
        Box::new(crate::dvr::Dvr),
        Box::new(crate::forward::Forward),
        Box::new(crate::edge::Edge),
        Box::new(crate::ffmpeg::Ffmpeg),
        Box::new(crate::rtc::RtcService),
    ]
}

/// How long SIGQUIT gives clients to leave and the services to finish their work
/// (playlists ended, files closed, hooks sent, children reaped), in all.
pub const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long SIGTERM and SIGINT give the services: enough to close files and stop
/// child processes (ffmpeg gets its SIGTERM grace), not to wait for slow peers.
pub const FAST_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// SIGQUIT, first half: no new clients (the listeners are closed already); every
/// client is closed so that publishers unpublish and their unpublish/stop/close hooks
/// run (a client leaves the registry after its hooks); then we wait, until `until`, for
/// the clients to be gone. The services finish their work afterwards, in
/// [`Services::stop`].
async fn close_clients(ctx: &Arc<Context>, until: tokio::time::Instant) {
    info!(
        "SIGQUIT: graceful shutdown: closing {} clients",
        ctx.clients.len()
    );
    // Writers finish for good from now on (HLS ends its playlists).
    ctx.set_stopping();
    for c in ctx.clients.list() {
        c.disconnect_for(crate::stats::KickReason::Shutdown);
    }
    loop {
        let clients = ctx.clients.len();
        if clients == 0 {
            info!("graceful shutdown: all clients closed; stopping the services");
            return;
        }
        if tokio::time::Instant::now() >= until {
            warn!(
                "graceful shutdown: {clients} clients still open after {:?}; \
                 stopping the services anyway",
                GRACEFUL_TIMEOUT / 2
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The listening sockets in force, by address, so that a reload changes only
/// what changed (connections on ports that stay are untouched; connections
/// accepted on a removed port keep running too, as in SRS).
struct Listeners {
    ctx: Arc<Context>,
    limit: Arc<Semaphore>,
    /// The HTTP API's own cap, never shared with players (see [`crate::admission`]).
    api_limit: Arc<Semaphore>,
    max_connections: usize,
    rtmp: HashMap<SocketAddr, JoinHandle<()>>,
    http: HashMap<(SocketAddr, http::Role), JoinHandle<()>>,
}

impl Listeners {
    fn spawn_rtmp(&mut self, l: TcpListener) {
        let Ok(addr) = l.local_addr() else {
            return;
        };
        let task = tokio::spawn(rtmp_service::serve(self.ctx.clone(), l, self.limit.clone()));
        self.rtmp.insert(addr, task);
    }

    fn spawn_http(&mut self, l: TcpListener, role: http::Role) {
        let Ok(addr) = l.local_addr() else {
            return;
        };
        let name = match role {
            http::Role::Api => "HTTP API",
            http::Role::Server => "HTTP server",
            http::Role::Both => "HTTP API and server",
        };
        let router = http::router(self.ctx.clone(), role);
        let gate = match role {
            http::Role::Api => Gate::Api(self.api_limit.clone()),
            http::Role::Server => Gate::Shared(self.limit.clone()),
            http::Role::Both => Gate::Both {
                shared: self.limit.clone(),
                api: self.api_limit.clone(),
            },
        };
        let task = tokio::spawn(http::serve(self.ctx.clone(), l, router, role, gate, name));
        self.http.insert((addr, role), task);
    }

    fn stop_accepting(&mut self) {
        for (_, t) in self.rtmp.drain() {
            t.abort();
        }
        for (_, t) in self.http.drain() {
            t.abort();
        }
    }

    /// Reloads the config file: a bad file (syntax, values, or a port that cannot
    /// be bound) changes nothing; a good one is applied where it differs.
    async fn reload(&mut self) -> Result<String, ReloadError> {
        let old = self.ctx.config();
        let Some(path) = old.source.clone() else {
            return Err(ReloadError::NoConfigFile);
        };
        let new = Config::load_with_env(&path, std::env::vars())?;
        for w in &new.warnings {
            warn!("config: {w}");
        }
        // Bind every new socket first: if one fails, nothing is applied.
        let matches = |have: &SocketAddr, want: &SocketAddr| {
            have == want || (want.port() == 0 && have.ip() == want.ip())
        };
        let mut new_rtmp = Vec::new();
        for addr in &new.listen {
            if !self.rtmp.keys().any(|a| matches(a, addr)) {
                new_rtmp.push(crate::listen::bind(*addr).map_err(|source| {
                    ReloadError::Listen {
                        addr: *addr,
                        source,
                    }
                })?);
            }
        }
        let wanted_http = http_wanted(&new);
        let mut new_http = Vec::new();
        for (addr, role) in &wanted_http {
            if !self.http.keys().any(|(a, r)| r == role && matches(a, addr)) {
                // The address may be held by the same port under another role.
                if let Some(key) = self.http.keys().find(|(a, _)| matches(a, addr)).copied() {
                    if let Some(t) = self.http.remove(&key) {
                        t.abort();
                        let _ = t.await;
                    }
                }
                new_http.push((
                    crate::listen::bind(*addr).map_err(|source| ReloadError::ListenHttp {
                        addr: *addr,
                        source,
                    })?,
                    *role,
                ));
            }
        }
        let mut changes = Vec::new();
        // Removed listeners stop accepting; their connections stay.
        let removed_rtmp: Vec<SocketAddr> = self
            .rtmp
            .keys()
            .filter(|a| !new.listen.iter().any(|w| matches(a, w)))
            .copied()
            .collect();
        for a in removed_rtmp {
            if let Some(t) = self.rtmp.remove(&a) {
                t.abort();
                changes.push(format!("RTMP stopped listening on {a}"));
            }
        }
        let removed_http: Vec<(SocketAddr, http::Role)> = self
            .http
            .keys()
            .filter(|(a, r)| !wanted_http.iter().any(|(w, wr)| wr == r && matches(a, w)))
            .copied()
            .collect();
        for k in removed_http {
            if let Some(t) = self.http.remove(&k) {
                t.abort();
                changes.push(format!("HTTP stopped listening on {}", k.0));
            }
        }
        for l in new_rtmp {
            if let Ok(a) = l.local_addr() {
                changes.push(format!("RTMP listening on {a}"));
            }
            self.spawn_rtmp(l);
        }
        for (l, role) in new_http {
            if let Ok(a) = l.local_addr() {
                changes.push(format!("HTTP listening on {a}"));
            }
            self.spawn_http(l, role);
        }
        // The connection cap.
        if new.max_connections > self.max_connections {
            self.limit
                .add_permits(new.max_connections - self.max_connections);
        } else if new.max_connections < self.max_connections {
            // Permits held by live connections come back as they close; those
            // are not taken away (existing clients are never cut by a reload).
            self.limit
                .forget_permits(self.max_connections - new.max_connections);
        }
        if new.max_connections != self.max_connections {
            changes.push(format!(
                "max_connections {} -> {}",
                self.max_connections, new.max_connections
            ));
            self.max_connections = new.max_connections;
        }
        // Read at each accept: applies to new connections, open ones stay.
        if new.max_connections_per_ip != old.max_connections_per_ip {
            changes.push(format!(
                "max_connections_per_ip {} -> {}",
                old.max_connections_per_ip, new.max_connections_per_ip
            ));
        }
        // Vhosts removed or disabled: their clients go.
        let gone: Vec<String> = old
            .vhosts
            .iter()
            .filter(|v| v.enabled)
            .filter(|v| !new.vhosts.iter().any(|n| n.name == v.name && n.enabled))
            .map(|v| v.name.clone())
            .collect();
        // What this turns off or moves, at WARN (issue 24 item 4; the list is built in config/).
        for change in crate::config::reload_changes(&old, &new) {
            warn!("reload: {change}");
        }
        let new = Arc::new(new);
        self.ctx.set_config_arc(new.clone());
        for name in &gone {
            let mut n = 0;
            for c in self.ctx.clients.list() {
                if c.state().stream.as_ref().is_some_and(|k| &k.vhost == name) {
                    c.disconnect_for(crate::stats::KickReason::VhostRemoved);
                    n += 1;
                }
            }
            changes.push(format!("vhost {name} removed: {n} clients closed"));
        }
        // Live streams take the new queue settings and pacing of their vhost.
        for src in self.ctx.hub.sources() {
            if let Some(v) = new.vhost(&src.key.vhost) {
                let q = v.effective_queue_length();
                src.set_settings(crate::hub::SourceSettings {
                    gop_cache: v.effective_gop_cache(),
                    queue_length_ms: if q.is_finite() && q > 0.0 {
                        (q * 1000.0) as u64
                    } else {
                        0
                    },
                });
                src.set_notify_interval(v.play.mw_latency);
            }
        }
        // Services that attach to live streams (HLS...) look again.
        self.ctx.hub.announce_reload();
        let summary = if changes.is_empty() {
            "config reloaded (no listener or vhost changes)".to_string()
        } else {
            format!("config reloaded: {}", changes.join("; "))
        };
        info!("{summary}");
        Ok(summary)
    }
}

/// Which HTTP sockets a config asks for.
fn http_wanted(config: &Config) -> Vec<(SocketAddr, http::Role)> {
    let mut wanted = Vec::new();
    let api = config.http_api.enabled.then_some(config.http_api.listen);
    let server = config
        .http_server
        .enabled
        .then_some(config.http_server.listen);
    match (api, server) {
        (Some(a), Some(s)) if a == s => wanted.push((a, http::Role::Both)),
        _ => {
            if let Some(a) = api {
                wanted.push((a, http::Role::Api));
            }
            if let Some(s) = server {
                wanted.push((s, http::Role::Server));
            }
        }
    }
    wanted
}

/// The HTTP listeners: `http_api` and `http_server`, sharing one socket when
/// they are configured on the same address (as SRS allows).
async fn bind_http(config: &Config) -> anyhow::Result<Vec<(TcpListener, http::Role)>> {
    let wanted = http_wanted(config);
    let mut out = Vec::new();
    for (addr, role) in wanted {
        let l = crate::listen::bind(addr)
            .with_context(|| format!("cannot listen on {addr} for HTTP"))?;
        out.push((l, role));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Terminate,
    Interrupt,
    Graceful,
    Reload,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
            Signal::Graceful => "SIGQUIT",
            Signal::Reload => "SIGHUP",
        }
    }
}

/// SIGTERM/SIGINT: stop now; SIGQUIT: stop gracefully; SIGHUP: reload;
/// SIGUSR1: reopen the log file (handled here, never returned).
async fn wait_for_signal() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut quit), Ok(mut hup), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
    ) else {
        // Without signal handlers the default actions apply.
        std::future::pending::<()>().await;
        return Signal::Terminate;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return Signal::Terminate,
            _ = int.recv() => return Signal::Interrupt,
            _ = quit.recv() => return Signal::Graceful,
            _ = hup.recv() => return Signal::Reload,
            _ = usr1.recv() => match crate::logging::reopen() {
                Ok(true) => info!("SIGUSR1: log file reopened"),
                Ok(false) => info!("SIGUSR1: logging to the console, nothing to reopen"),
                Err(e) => warn!("SIGUSR1: {e:#}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every service the server needs is in its list; a missing one does not fail
    /// any other way than by degrading silently (without `delivery`, merged writes
    /// are not paced and every frame costs a write per player).
    #[test]
    fn the_server_runs_every_service() {
        let names: Vec<&str> = super::services().iter().map(|s| s.name()).collect();
        for want in [
            "delivery",
            "stats",
            "heartbeat",
            "hls",
            "dvr",
            "forward",
            "edge",
            "ffmpeg",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }
}
