//! The rest of SRS's `/api/v1/` index, so that its console and scripts find every
//! path they know: process and host figures (`rusages`, `self_proc_stats`,
//! `system_proc_stats`, `meminfos`) read from `getrusage(2)` and `/proc` (Linux), the
//! static `authors` and `features`, the `requests` echo, the origin-cluster query
//! `clusters`, and the `tests/` endpoints. Shapes are SRS 7's (`srs_app_http_api.cpp`);
//! where a figure cannot be read, `ok` is false and the numbers are 0, as in SRS.

use std::sync::Arc;

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Number, Value};

use super::{ok_reply, query_value, short, srs_compat_version, ApiError};
use crate::context::Context;
use crate::hub::StreamKey;
use crate::stats::system;

/// Names of `/proc/[pid]/stat`'s fields from the 4th (ppid) on, as SRS's
/// `self_proc_stats` names them (`man 5 proc`).
const STAT_FIELDS: &[&str] = &[
    "ppid",
    "pgrp",
    "session",
    "tty_nr",
    "tpgid",
    "flags",
    "minflt",
    "cminflt",
    "majflt",
    "cmajflt",
    "utime",
    "stime",
    "cutime",
    "cstime",
    "priority",
    "nice",
    "num_threads",
    "itrealvalue",
    "starttime",
    "vsize",
    "rss",
    "rsslim",
    "startcode",
    "endcode",
    "startstack",
    "kstkesp",
    "kstkeip",
    "signal",
    "blocked",
    "sigignore",
    "sigcatch",
    "wchan",
    "nswap",
    "cnswap",
    "exit_signal",
    "processor",
    "rt_priority",
    "policy",
    "delayacct_blkio_ticks",
    "guest_time",
    "cguest_time",
];

/// A kernel number as JSON: signed, or unsigned beyond `i64` (`rsslim` is often
/// `u64::MAX`), 0 if it is not a number.
fn number(v: &str) -> Value {
    v.parse::<i64>()
        .map(Number::from)
        .or_else(|_| v.parse::<u64>().map(Number::from))
        .map(Value::Number)
        .unwrap_or(json!(0))
}

fn now_ms() -> u64 {
    crate::util::unix_ms()
}

/// `getrusage(RUSAGE_SELF)`; times in whole seconds as SRS reports them.
pub async fn rusages() -> Response {
    let ru = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).ok();
    let mut data = Map::new();
    data.insert("ok".into(), json!(ru.is_some()));
    data.insert("sample_time".into(), json!(now_ms()));
    let fields: [(&str, i64); 16] = match ru {
        Some(r) => [
            ("ru_utime", r.user_time().tv_sec()),
            ("ru_stime", r.system_time().tv_sec()),
            ("ru_maxrss", r.max_rss()),
            ("ru_ixrss", r.shared_integral()),
            ("ru_idrss", r.unshared_data_integral()),
            ("ru_isrss", r.unshared_stack_integral()),
            ("ru_minflt", r.minor_page_faults()),
            ("ru_majflt", r.major_page_faults()),
            ("ru_nswap", r.full_swaps()),
            ("ru_inblock", r.block_reads()),
            ("ru_oublock", r.block_writes()),
            ("ru_msgsnd", r.ipc_sends()),
            ("ru_msgrcv", r.ipc_receives()),
            ("ru_nsignals", r.signals()),
            ("ru_nvcsw", r.voluntary_context_switches()),
            ("ru_nivcsw", r.involuntary_context_switches()),
        ],
        None => [
            ("ru_utime", 0),
            ("ru_stime", 0),
            ("ru_maxrss", 0),
            ("ru_ixrss", 0),
            ("ru_idrss", 0),
            ("ru_isrss", 0),
            ("ru_minflt", 0),
            ("ru_majflt", 0),
            ("ru_nswap", 0),
            ("ru_inblock", 0),
            ("ru_oublock", 0),
            ("ru_msgsnd", 0),
            ("ru_msgrcv", 0),
            ("ru_nsignals", 0),
            ("ru_nvcsw", 0),
            ("ru_nivcsw", 0),
        ],
    };
    for (k, v) in fields {
        data.insert(k.into(), json!(v));
    }
    ok_reply([("data", Value::Object(data))])
}

/// Every field of `/proc/self/stat`, named as SRS names them; `percent` is the process's
/// CPU use over the last sampling interval (a fraction of one core).
pub async fn self_proc_stats(State(ctx): State<Arc<Context>>) -> Response {
    let stat = system::self_stat_fields();
    let mut data = Map::new();
    data.insert("ok".into(), json!(stat.is_some()));
    data.insert("sample_time".into(), json!(now_ms()));
    data.insert("percent".into(), json!(ctx.rates.cpu.usage().process));
    let stat = stat.unwrap_or_default();
    data.insert("pid".into(), json!(stat.pid));
    data.insert("comm".into(), json!(stat.comm));
    data.insert("state".into(), json!(stat.state));
    for (i, name) in STAT_FIELDS.iter().enumerate() {
        let v = stat.rest.get(i).map_or(json!(0), |v| number(v));
        data.insert((*name).into(), v);
    }
    ok_reply([("data", Value::Object(data))])
}

/// The host's `cpu` line of `/proc/stat` (ticks); `percent` is the host's busy share over
/// the last sampling interval.
pub async fn system_proc_stats(State(ctx): State<Arc<Context>>) -> Response {
    let t = system::cpu_times();
    let ok = t.is_some();
    let t = t.unwrap_or_default();
    ok_reply([(
        "data",
        json!({
            "ok": ok,
            "sample_time": now_ms(),
            "percent": ctx.rates.cpu.usage().host,
            "user": t.user,
            "nice": t.nice,
            "sys": t.system,
            "idle": t.idle,
            "iowait": t.iowait,
            "irq": t.irq,
            "softirq": t.softirq,
            "steal": t.steal,
            "guest": t.guest,
        }),
    )])
}

/// `/proc/meminfo` in kB with SRS's derived figures: `MemActive` = total - free,
/// `RealInUse` = active - buffers - cached, `NotInUse` = total - real in use.
pub async fn meminfos() -> Response {
    let m = system::meminfo();
    let ok = m.is_some();
    let m = m.unwrap_or_default();
    let active = m.total_kb.saturating_sub(m.free_kb);
    let real = active
        .saturating_sub(m.buffers_kb)
        .saturating_sub(m.cached_kb);
    let fraction = |part: u64, whole: u64| {
        if whole > 0 {
            part as f64 / whole as f64
        } else {
            0.0
        }
    };
    ok_reply([(
        "data",
        json!({
            "ok": ok,
            "sample_time": now_ms(),
            "percent_ram": fraction(real, m.total_kb),
            "percent_swap": fraction(m.swap_total_kb.saturating_sub(m.swap_free_kb), m.swap_total_kb),
            "MemActive": active,
            "RealInUse": real,
            "NotInUse": m.total_kb.saturating_sub(real),
            "MemTotal": m.total_kb,
            "MemFree": m.free_kb,
            "Buffers": m.buffers_kb,
            "Cached": m.cached_kb,
            "SwapTotal": m.swap_total_kb,
            "SwapFree": m.swap_free_kb,
        }),
    )])
}

pub async fn authors() -> Response {
    ok_reply([(
        "data",
        json!({
            "license": env!("CARGO_PKG_LICENSE"),
            "contributors": "the sluice authors (see the git history)",
        }),
    )])
}

/// SRS's build facts and feature flags, answered for sluice: a flag is true only for
/// what sluice does (docs/srs-compat.md has the full table).
pub async fn features() -> Response {
    ok_reply([(
        "data",
        json!({
            "options": "",
            "options2": "",
            "build": "",
            "build2": "",
            "sluice": env!("CARGO_PKG_VERSION"),
            "features": {
                "ssl": false,
                "hls": true,
                "hds": false,
                "callback": true,
                "api": true,
                "httpd": true,
                "dvr": true,
                "transcode": true,
                "ingest": true,
                "stat": true,
                "caster": false,
                "complex_send": false,
                "tcp_nodelay": false,
                "so_sendbuf": false,
                "mr": false,
            },
        }),
    )])
}

/// The request echoed back (SRS's HTTP debug aid): uri, path, method and headers, and
/// the server's signature under `server`. Header values that are not text are skipped.
pub async fn requests(req: Request) -> Response {
    let headers: Map<String, Value> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), json!(v.to_str().ok()?))))
        .collect();
    ok_reply([(
        "data",
        json!({
            "uri": short(&req.uri().to_string()),
            "path": short(req.uri().path()),
            "METHOD": req.method().as_str(),
            "headers": headers,
            "server": {
                "sigature": "sluice",
                "version": srs_compat_version(),
                "sluice": env!("CARGO_PKG_VERSION"),
                "time": now_ms(),
            },
        }),
    )])
}

/// `/api/v1/tests/errors`: always code 100 (HTTP 200), for testing clients.
pub async fn test_errors() -> ApiError {
    ApiError::TestError
}

/// `/api/v1/tests/redirects`: always a 302 to `/api/v1/tests/errors`.
pub async fn test_redirects() -> Response {
    let mut r = StatusCode::FOUND.into_response();
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_static("/api/v1/tests/errors"),
    );
    r
}

/// SRS's origin-cluster query (`SrsGoApiClusters`): an edge or a coworker asks which origin
/// has `?vhost=&app=&stream=`. `data.origin` is null when the stream is not published
/// here; otherwise where to pull it: `ip` and `port` of our RTMP service, `api` (our
/// API's address) and `routers`. sluice knows only its own streams, so it answers for
/// itself (SRS too answers only from the streams it serves).
pub async fn clusters(
    State(ctx): State<Arc<Context>>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    let q = q.unwrap_or_default();
    let get = |k| short(query_value(&q, k).unwrap_or(""));
    let (ip, vhost, app, stream) = (get("ip"), get("vhost"), get("app"), get("stream"));
    let config = ctx.config();
    let resolved = config.resolve_vhost(if vhost.is_empty() {
        crate::config::DEFAULT_VHOST
    } else {
        &vhost
    });
    let live = resolved.and_then(|v| {
        let key = StreamKey {
            vhost: v.name.clone(),
            app: app.clone(),
            stream: stream.clone(),
        };
        // Only what a local publisher feeds: a stream this origin pulls from another
        // (origin cluster, edge) is not ours to announce, or origins would chase each other.
        ctx.hub
            .get(&key)
            .and_then(|s| s.publisher())
            .filter(|p| !p.client_id.starts_with(crate::edge::PULL_ID_PREFIX))
            .map(|_| v.clone())
    });
    let origin = match live {
        None => Value::Null,
        Some(v) if v.cluster.advertise.is_some() => {
            // The operator said where this origin is reached (`advertise`, sluice).
            let me = crate::cluster::directory::me(&ctx, &v.cluster);
            let (ip, port) = me
                .rtmp
                .rsplit_once(':')
                .unwrap_or((me.rtmp.as_str(), "1935"));
            json!({
                "ip": ip.trim_start_matches('[').trim_end_matches(']'),
                "port": port.parse::<u16>().unwrap_or(1935),
                "vhost": v.name,
                "api": me.api,
                "routers": [me.api],
            })
        }
        Some(v) => {
            let vhost_name = v.name.clone();
            // The address the caller reached us at, unless RTMP listens on one address.
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(host_of)
                .unwrap_or_default();
            let rtmp = config.listen.first().copied();
            let service_ip = match rtmp {
                Some(a) if !a.ip().is_unspecified() => a.ip().to_string(),
                _ => host.clone(),
            };
            let api = format!("{}:{}", service_ip, config.http_api.listen.port());
            json!({
                "ip": service_ip,
                "port": rtmp.map_or(1935, |a| a.port()),
                "vhost": vhost_name,
                "api": api,
                "routers": [api],
            })
        }
    };
    ok_reply([(
        "data",
        json!({
            "query": { "ip": ip, "vhost": vhost, "app": app, "stream": stream },
            "origin": origin,
        }),
    )])
}

/// The host part of a `Host` header (`h`, `h:port`, `[v6]:port`).
fn host_of(h: &str) -> String {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    h.rsplit_once(':').map_or(h, |(host, _)| host).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_numbers_and_hosts() {
        assert_eq!(number("-5"), json!(-5));
        assert_eq!(number("18446744073709551615"), json!(u64::MAX));
        assert_eq!(number("x"), json!(0));
        assert_eq!(host_of("a.test:1985"), "a.test");
        assert_eq!(host_of("a.test"), "a.test");
        assert_eq!(host_of("[::1]:1985"), "::1");
        assert_eq!(STAT_FIELDS.len(), 41);
    }

    async fn ask(ctx: &Arc<Context>, stream: &str) -> Value {
        let req = Request::builder()
            .header(header::HOST, "10.1.2.3:1985")
            .body(axum::body::Body::empty())
            .unwrap();
        let q = format!("vhost=__defaultVhost__&ip=10.1.2.3&app=live&stream={stream}");
        let r = clusters(State(ctx.clone()), RawQuery(Some(q)), req).await;
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// SRS's coworker query: `data.query` echoes the question, `data.origin` says where a
    /// locally published stream is; a pulled stream (an edge's or an origin cluster's
    /// pull) is never announced.
    #[tokio::test]
    async fn clusters_answers_in_srs_shape() {
        let config = crate::config::Config::parse(
            "listen 0.0.0.0:19350; http_api { enabled on; listen 1985; }",
            "t.conf",
        )
        .unwrap();
        let ctx = Context::new(config);
        const SETTINGS: crate::hub::SourceSettings = crate::hub::SourceSettings {
            gop_cache: true,
            queue_length_ms: 10_000,
        };
        let key = |s: &str| StreamKey {
            vhost: crate::config::DEFAULT_VHOST.into(),
            app: "live".into(),
            stream: s.into(),
        };
        let mine = ctx.hub.source(&key("mine"), SETTINGS);
        mine.publish("1").unwrap();
        let pulled = ctx.hub.source(&key("pulled"), SETTINGS);
        pulled.publish("edge-2").unwrap();

        let v = ask(&ctx, "mine").await;
        assert_eq!(v["code"], 0);
        assert_eq!(
            v["data"]["query"],
            json!({"ip": "10.1.2.3", "vhost": "__defaultVhost__", "app": "live", "stream": "mine"})
        );
        assert_eq!(
            v["data"]["origin"],
            json!({
                "ip": "10.1.2.3",
                "port": 19350,
                "vhost": "__defaultVhost__",
                "api": "10.1.2.3:1985",
                "routers": ["10.1.2.3:1985"],
            })
        );
        assert!(ask(&ctx, "pulled").await["data"]["origin"].is_null());
        assert!(ask(&ctx, "none").await["data"]["origin"].is_null());
        drop((mine, pulled));
    }
}
