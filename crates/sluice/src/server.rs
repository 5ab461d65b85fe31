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
    #[error("cannot listen on {addr} for {what}: {source}")]
    ListenFor {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    /// A certificate or key of a TLS listener or vhost: the running ones stay.
    #[error("{0}")]
    Tls(#[from] crate::tls::CertError),
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
    // Certificates first: a TLS listener without a usable one refuses to start.
    let acceptors = crate::tls::Acceptors::build(&config)?;
    let listeners = bind_all(&config)?;
    let srt_listener = crate::srt::bind(&config.srt_server)?;
    let rtc_socket = crate::rtc::bind(&config.rtc_server)?;
    startup.ready();
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let max_connections = config.max_connections;
    let ctx = Context::new(config);
    ctx.tls.install(acceptors);
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(4);
    ctx.set_reloader(reload_tx);
    if let Some(l) = srt_listener {
        ctx.srt.set_listener(l);
    }
    if let Some(b) = rtc_socket {
        ctx.rtc.set_bound(b);
    }
    // Started before the listeners accept, so that the services that follow the hub
    // see every publish; the listeners are bound, so ingests and transcoders can dial.
    let services = Services::start(&ctx, services());
    let mut running = Listeners {
        ctx: ctx.clone(),
        limit,
        api_limit: Arc::new(Semaphore::new(crate::admission::API_MAX_CONNECTIONS)),
        max_connections,
        running: HashMap::new(),
    };
    for (l, endpoint) in listeners {
        running.spawn(l, endpoint);
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
        Box::new(crate::srt::SrtService),
        Box::new(crate::rtc::RtcService),
        Box::new(crate::cluster::DirectoryService),
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

/// What a listening socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Endpoint {
    Rtmp,
    Rtmps,
    Http(http::Role),
    Https(http::Role),
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Rtmp => "RTMP",
            Endpoint::Rtmps => "RTMPS",
            Endpoint::Http(http::Role::Api) => "HTTP API",
            Endpoint::Http(http::Role::Server) => "HTTP server",
            Endpoint::Http(http::Role::Both) => "HTTP API and server",
            Endpoint::Https(http::Role::Api) => "HTTPS API",
            Endpoint::Https(http::Role::Server) => "HTTPS server",
            Endpoint::Https(http::Role::Both) => "HTTPS API and server",
        }
    }
}

/// Every socket a config asks for, with what it serves.
fn wanted(config: &Config) -> Vec<(SocketAddr, Endpoint)> {
    let mut out: Vec<(SocketAddr, Endpoint)> =
        config.listen.iter().map(|a| (*a, Endpoint::Rtmp)).collect();
    if config.rtmps.enabled {
        out.push((config.rtmps.listen, Endpoint::Rtmps));
    }
    let http = |api: Option<SocketAddr>, server: Option<SocketAddr>| match (api, server) {
        (Some(a), Some(s)) if a == s => vec![(a, http::Role::Both)],
        _ => api
            .map(|a| (a, http::Role::Api))
            .into_iter()
            .chain(server.map(|s| (s, http::Role::Server)))
            .collect(),
    };
    let on = |enabled: bool, addr: SocketAddr| enabled.then_some(addr);
    for (a, role) in http(
        on(config.http_api.enabled, config.http_api.listen),
        on(config.http_server.enabled, config.http_server.listen),
    ) {
        out.push((a, Endpoint::Http(role)));
    }
    // HTTPS serves what its plain listener serves: on only where that one is on.
    for (a, role) in http(
        on(
            config.http_api.enabled && config.http_api.https.enabled,
            config.http_api.https.listen,
        ),
        on(
            config.http_server.enabled && config.http_server.https.enabled,
            config.http_server.https.listen,
        ),
    ) {
        out.push((a, Endpoint::Https(role)));
    }
    out
}

/// Binds every socket of the config; the first that fails stops the start.
fn bind_all(config: &Config) -> anyhow::Result<Vec<(TcpListener, Endpoint)>> {
    let mut out = Vec::new();
    for (addr, endpoint) in wanted(config) {
        let l = crate::listen::bind(addr).map_err(|source| ReloadError::ListenFor {
            addr,
            what: endpoint.name(),
            source,
        })?;
        out.push((l, endpoint));
    }
    Ok(out)
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
    running: HashMap<(SocketAddr, Endpoint), JoinHandle<()>>,
}

impl Listeners {
    fn spawn(&mut self, l: TcpListener, endpoint: Endpoint) {
        let Ok(addr) = l.local_addr() else {
            return;
        };
        let ctx = self.ctx.clone();
        let task = match endpoint {
            Endpoint::Rtmp | Endpoint::Rtmps => tokio::spawn(rtmp_service::serve(
                ctx,
                l,
                self.limit.clone(),
                endpoint == Endpoint::Rtmps,
            )),
            Endpoint::Http(role) | Endpoint::Https(role) => {
                let router = http::router(ctx.clone(), role);
                let gate = match role {
                    http::Role::Api => Gate::Api(self.api_limit.clone()),
                    http::Role::Server => Gate::Shared(self.limit.clone()),
                    http::Role::Both => Gate::Both {
                        shared: self.limit.clone(),
                        api: self.api_limit.clone(),
                    },
                };
                let tls = matches!(endpoint, Endpoint::Https(_)).then_some(match role {
                    http::Role::Api => crate::tls::TlsListener::Api,
                    http::Role::Server | http::Role::Both => crate::tls::TlsListener::Server,
                });
                tokio::spawn(http::serve(
                    ctx,
                    l,
                    router,
                    role,
                    gate,
                    endpoint.name(),
                    tls,
                ))
            }
        };
        self.running.insert((addr, endpoint), task);
    }

    fn stop_accepting(&mut self) {
        for (_, t) in self.running.drain() {
            t.abort();
        }
    }

    /// Reloads the config file: a bad file (syntax, values, a certificate that does
    /// not load, or a port that cannot be bound) changes nothing; a good one is
    /// applied where it differs. Certificates are read again whatever changed, so
    /// that a renewed certificate is taken by a SIGHUP.
    async fn reload(&mut self) -> Result<String, ReloadError> {
        let old = self.ctx.config();
        let Some(path) = old.source.clone() else {
            return Err(ReloadError::NoConfigFile);
        };
        let new = Config::load_with_env(&path, std::env::vars())?;
        for w in &new.warnings {
            warn!("config: {w}");
        }
        let acceptors = crate::tls::Acceptors::build(&new)?;
        // Bind every new socket first: if one fails, nothing is applied.
        let matches = |have: &SocketAddr, want: &SocketAddr| {
            have == want || (want.port() == 0 && have.ip() == want.ip())
        };
        let wanted = wanted(&new);
        let mut fresh = Vec::new();
        for (addr, endpoint) in &wanted {
            if self
                .running
                .keys()
                .any(|(a, e)| e == endpoint && matches(a, addr))
            {
                continue;
            }
            // The address may be held by the same port serving something else
            // (an HTTP role that changed).
            if let Some(key) = self.running.keys().find(|(a, _)| matches(a, addr)).copied() {
                if let Some(t) = self.running.remove(&key) {
                    t.abort();
                    let _ = t.await;
                }
            }
            let l = crate::listen::bind(*addr).map_err(|source| match endpoint {
                Endpoint::Rtmp => ReloadError::Listen {
                    addr: *addr,
                    source,
                },
                other => ReloadError::ListenFor {
                    addr: *addr,
                    what: other.name(),
                    source,
                },
            })?;
            fresh.push((l, *endpoint));
        }
        let mut changes = Vec::new();
        if acceptors.listeners() > 0 {
            changes.push("TLS certificates loaded".to_string());
        }
        self.ctx.tls.install(acceptors);
        // Removed listeners stop accepting; their connections stay.
        let removed: Vec<(SocketAddr, Endpoint)> = self
            .running
            .keys()
            .filter(|(a, e)| !wanted.iter().any(|(w, we)| we == e && matches(a, w)))
            .copied()
            .collect();
        for k in removed {
            if let Some(t) = self.running.remove(&k) {
                t.abort();
                changes.push(format!("{} stopped listening on {}", k.1.name(), k.0));
            }
        }
        for (l, endpoint) in fresh {
            if let Ok(a) = l.local_addr() {
                changes.push(format!("{} listening on {a}", endpoint.name()));
            }
            self.spawn(l, endpoint);
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
                src.apply_pacing(v.pacing());
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
            "directory",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }
}
