//! `/api/v1/summaries`: SRS's `data.self` and `data.system` objects, from `/proc`
//! (see [`crate::stats::system`]). Disk figures SRS reports from `/proc/diskstats`
//! are given as 0: sluice does not sample disks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::ok_reply;
use crate::context::Context;
use crate::stats::system;

pub async fn summaries(State(ctx): State<Arc<Context>>) -> Response {
    let now_ms = crate::util::unix_ms();
    let stat = system::self_stat();
    let rss = system::self_rss_kb();
    let mem = system::meminfo();
    let load = system::loadavg();
    let up = system::uptime();
    let net = system::net_bytes();
    let socks = system::sockets();
    let ok = stat.is_some() && rss.is_some() && mem.is_some() && load.is_some() && up.is_some();
    let stat = stat.unwrap_or_default();
    let rss = rss.unwrap_or(0);
    let mem = mem.unwrap_or_default();
    let [l1, l5, l15] = load.unwrap_or([0.0; 3]);
    let (uptime, idle) = up.unwrap_or((0.0, 0.0));
    let net = net.unwrap_or_default();
    let socks = socks.unwrap_or_default();
    let cpu = ctx.rates.cpu.usage();
    let cpus = system::cpu_count();
    let mem_percent = if mem.total_kb > 0 {
        rss as f64 / mem.total_kb as f64
    } else {
        0.0
    };
    let argv: Vec<String> = std::env::args().collect();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    ok_reply([(
        "data",
        json!({
            "ok": ok,
            "now_ms": now_ms,
            "self": {
                // SRS's field carries the SRS release whose API this follows (see
                // `/api/v1/versions`); sluice's own version is beside it.
                "version": super::srs_compat_version(),
                "sluice_version": env!("CARGO_PKG_VERSION"),
                "pid": std::process::id(),
                "ppid": stat.ppid,
                "argv": argv.join(" "),
                "cwd": cwd,
                "mem_kbyte": rss,
                "mem_percent": mem_percent,
                "cpu_percent": cpu.process,
                "srs_uptime": ctx.started.elapsed().as_secs(),
                "threads": stat.num_threads,
            },
            "system": {
                "cpu_percent": cpu.host,
                "disk_read_KBps": 0,
                "disk_write_KBps": 0,
                "disk_busy_percent": 0.0,
                "mem_ram_kbyte": mem.total_kb,
                "mem_ram_percent": mem.ram_used_fraction(),
                "mem_swap_kbyte": mem.swap_total_kb,
                "mem_swap_percent": mem.swap_used_fraction(),
                "cpus": cpus,
                "cpus_online": cpus,
                "uptime": uptime,
                // SRS's spelling, kept so that its console finds the field.
                "ilde_time": idle,
                "load_1m": l1,
                "load_5m": l5,
                "load_15m": l15,
                "net_sample_time": now_ms,
                "net_recv_bytes": net.recv,
                "net_send_bytes": net.send,
                "net_recvi_bytes": net.recv_intranet,
                "net_sendi_bytes": net.send_intranet,
                "srs_sample_time": now_ms,
                "srs_recv_bytes": ctx.counters.bytes_in.load(Ordering::Relaxed),
                "srs_send_bytes": ctx.counters.bytes_out.load(Ordering::Relaxed),
                "conn_sys": socks.tcp_inuse,
                "conn_sys_et": socks.tcp_established,
                "conn_sys_tw": socks.tcp_time_wait,
                "conn_sys_udp": socks.udp_inuse,
                "conn_srs": ctx.clients.len(),
                // sluice's: connections refused on accept, by cap (see `/metrics`).
                "conn_refused": {
                    "max_connections": ctx.counters.refused.load(Ordering::Relaxed),
                    "max_connections_per_ip": ctx.counters.refused_per_ip.load(Ordering::Relaxed),
                    "api": ctx.counters.refused_api.load(Ordering::Relaxed),
                },
            },
        }),
    )])
}
