//! Starting and stopping the services of one server process.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::config::Config;
use crate::context::Context;
use crate::http;
use crate::rtmp_service;

/// Runs the server until SIGINT or SIGTERM.
pub fn run(config: Config, config_name: String) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, config_name))
}

fn write_pid(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            warn!("cannot create pid dir {}: {e}", dir.display());
            return;
        }
    }
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        warn!("cannot write pid file {}: {e}", path.display());
    }
}

async fn serve(config: Config, config_name: String) -> anyhow::Result<()> {
    info!(
        "sluice {} starting, pid={}, config={}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        config_name
    );
    for w in &config.warnings {
        warn!("config: {w}");
    }
    if config.daemon {
        warn!("daemon on: not supported yet, running in the foreground (use a supervisor such as systemd)");
    }
    let listeners = rtmp_service::bind(&config.listen).await?;
    let http_listeners = bind_http(&config).await?;
    let pid_path = config.pid.clone();
    write_pid(&pid_path);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let ctx = Context::new(config);
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(rtmp_service::serve(
            ctx.clone(),
            l,
            limit.clone(),
        )));
    }
    for (l, role) in http_listeners {
        let name = match role {
            http::Role::Api => "HTTP API",
            http::Role::Server => "HTTP server",
            http::Role::Both => "HTTP API and server",
        };
        let router = http::router(ctx.clone(), role);
        tasks.push(tokio::spawn(http::serve(
            ctx.clone(),
            l,
            router,
            limit.clone(),
            name,
        )));
    }
    let signal = wait_for_signal().await;
    info!("{signal}: shutting down");
    for t in tasks {
        t.abort();
    }
    let _ = std::fs::remove_file(&pid_path);
    Ok(())
}

/// The HTTP listeners: `http_api` and `http_server`, sharing one socket when
/// they are configured on the same address (as SRS allows).
async fn bind_http(config: &Config) -> anyhow::Result<Vec<(tokio::net::TcpListener, http::Role)>> {
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
    let mut out = Vec::new();
    for (addr, role) in wanted {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for HTTP"))?;
        out.push((l, role));
    }
    Ok(out)
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, Ctrl-C still kills the process by default.
        std::future::pending::<()>().await;
        return "never";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
