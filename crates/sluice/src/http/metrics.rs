//! Prometheus `/metrics` on the API listener (text exposition format 0.0.4), behind
//! the same CORS and auth as the API.
//!
//! Byte totals are the connections' own counters; per-stream rates are the kbps
//! sampler's 30 s rates (zero until it has two samples).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::admission::Cap;
use crate::context::Context;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router(ctx: Arc<Context>) -> Router {
    let r = Router::new()
        .route("/metrics", get(metrics))
        .with_state(ctx.clone());
    super::api::protect(r, ctx)
}

async fn metrics(State(ctx): State<Arc<Context>>) -> Response {
    let mut resp = render(&ctx).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

pub fn render(ctx: &Context) -> String {
    let mut out = String::new();
    let sources = ctx.hub.sources();
    let c = &ctx.counters;
    single(
        &mut out,
        "sluice_streams",
        "gauge",
        "Streams the server knows (publishing, or awaited by players).",
        sources.len() as u64,
    );
    single(
        &mut out,
        "sluice_clients",
        "gauge",
        "Connected RTMP, HTTP-FLV and SRT clients.",
        ctx.clients.len() as u64,
    );
    single(
        &mut out,
        "sluice_bytes_received_total",
        "counter",
        "Bytes received from clients.",
        c.bytes_in.load(Ordering::Relaxed),
    );
    single(
        &mut out,
        "sluice_bytes_sent_total",
        "counter",
        "Bytes sent to clients.",
        c.bytes_out.load(Ordering::Relaxed),
    );
    single(
        &mut out,
        "sluice_connections_accepted_total",
        "counter",
        "TCP connections accepted on the RTMP and HTTP listeners.",
        c.accepted.load(Ordering::Relaxed),
    );
    // One family, a series per cap, so that `sum` still gives every refusal and an
    // alert can tell an attack by one address from a server that is simply full.
    family(
        &mut out,
        "sluice_connections_refused_total",
        "counter",
        "Connections closed at once on accept, by the cap that refused them: \
         max_connections (shared by RTMP and the HTTP server), max_connections_per_ip \
         (the peer address holds its limit), api (the HTTP API's own cap).",
    );
    for (reason, n) in [
        ("max_connections", &c.refused),
        ("max_connections_per_ip", &c.refused_per_ip),
        ("api", &c.refused_api),
    ] {
        let _ = writeln!(
            out,
            "sluice_connections_refused_total{{reason=\"{reason}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "sluice_clients_closed_total",
        "counter",
        "Clients the server closed to protect itself, by why: memory (a publisher held \
         too much of the budget of half-sent messages), unpublished (a player waited \
         longer than play.unpublished_timeout for a publisher).",
    );
    for (reason, n) in [
        ("memory", &c.refused_memory),
        ("unpublished", &c.closed_unpublished),
    ] {
        let _ = writeln!(
            out,
            "sluice_clients_closed_total{{reason=\"{reason}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    single(
        &mut out,
        "sluice_tls_handshakes_total",
        "counter",
        "TLS handshakes completed on the RTMPS and HTTPS listeners.",
        ctx.tls.completed.load(Ordering::Relaxed),
    );
    single(
        &mut out,
        "sluice_tls_handshakes_failed_total",
        "counter",
        "TLS connections closed before their handshake completed: not TLS, a client \
         that did not trust the certificate, a time-out, or the cap on handshakes in \
         progress.",
        ctx.tls.failed.load(Ordering::Relaxed),
    );
    single(
        &mut out,
        "sluice_tls_handshakes_in_progress",
        "gauge",
        "TLS handshakes in progress now (at most 256).",
        ctx.tls.in_flight() as u64,
    );
    single(
        &mut out,
        "sluice_pending_message_bytes",
        "gauge",
        "Bytes of RTMP messages publishers have begun and not finished sending.",
        c.pending_message_bytes.load(Ordering::Relaxed),
    );
    family(
        &mut out,
        "sluice_connections_open",
        "gauge",
        "Connections holding a slot of a cap now: max_connections (RTMP and the HTTP \
         server), api (the HTTP API's own; on a port shared with the HTTP server, the \
         API-only reserve).",
    );
    for (cap, name) in [(Cap::Shared, "max_connections"), (Cap::Api, "api")] {
        let _ = writeln!(
            out,
            "sluice_connections_open{{cap=\"{name}\"}} {}",
            ctx.admission.open(cap)
        );
    }
    single(
        &mut out,
        "sluice_srt_connections",
        "gauge",
        "SRT connections (publishers and players) open now.",
        ctx.srt.connections.load(Ordering::Relaxed),
    );
    single(
        &mut out,
        "sluice_srt_handshakes_rejected_total",
        "counter",
        "SRT callers rejected during their handshake for their stream id (missing or \
         unparsable); wrong passphrases are refused by libsrt before that.",
        crate::srt::rejected_handshakes(),
    );
    let clients = ctx.clients.list();
    let mut per_stream: Vec<(String, u64, u64, usize)> = Vec::with_capacity(sources.len());
    for s in &sources {
        let labels = format!(
            "vhost=\"{}\",app=\"{}\",stream=\"{}\"",
            escape_label(&s.key.vhost),
            escape_label(&s.key.app),
            escape_label(&s.key.stream)
        );
        let k = ctx.rates.stream(&s.id).kbps();
        let n = clients
            .iter()
            .filter(|c| crate::util::lock(&c.state).stream.as_ref() == Some(&s.key))
            .count();
        per_stream.push((labels, k.recv_30s, k.send_30s, n));
    }
    family(
        &mut out,
        "sluice_stream_recv_kbps",
        "gauge",
        "Stream's received bit rate over the last 30 s, in kbit/s.",
    );
    for (l, recv, _, _) in &per_stream {
        let _ = writeln!(out, "sluice_stream_recv_kbps{{{l}}} {recv}");
    }
    family(
        &mut out,
        "sluice_stream_send_kbps",
        "gauge",
        "Bit rate sent to the stream's players over the last 30 s, in kbit/s.",
    );
    for (l, _, send, _) in &per_stream {
        let _ = writeln!(out, "sluice_stream_send_kbps{{{l}}} {send}");
    }
    family(
        &mut out,
        "sluice_stream_clients",
        "gauge",
        "Clients of the stream (its publisher and players).",
    );
    for (l, _, _, n) in &per_stream {
        let _ = writeln!(out, "sluice_stream_clients{{{l}}} {n}");
    }
    ll_hls(&mut out, ctx);
    rtc(&mut out, ctx);
    directory(&mut out, ctx);
    out
}

/// LL-HLS blocking requests (playlist reloads and preload-hinted parts), all streams.
fn ll_hls(out: &mut String, ctx: &Context) {
    let s = &ctx.hls.ll.stats;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    single(
        out,
        "sluice_hls_blocked_requests",
        "gauge",
        "LL-HLS requests waiting for a part now.",
        s.parked_now.load(Ordering::Relaxed) as u64,
    );
    single(
        out,
        "sluice_hls_blocked_requests_total",
        "counter",
        "LL-HLS requests that waited for a part (blocking reloads, preload hints).",
        n(&s.parked_total),
    );
    family(
        out,
        "sluice_hls_blocked_wait_seconds_total",
        "counter",
        "Total time LL-HLS requests waited for their part.",
    );
    let _ = writeln!(
        out,
        "sluice_hls_blocked_wait_seconds_total {:.6}",
        n(&s.wait_us_total) as f64 / 1e6
    );
    single(
        out,
        "sluice_hls_blocked_timeouts_total",
        "counter",
        "LL-HLS requests answered 503 because their part did not come in time.",
        n(&s.timeouts_total),
    );
    single(
        out,
        "sluice_hls_blocked_refused_total",
        "counter",
        "LL-HLS requests refused because too many were waiting.",
        n(&s.refused_total),
    );
}

/// The Redis stream directory of an origin cluster (`cluster { directory ...; }`).
fn directory(out: &mut String, ctx: &Context) {
    let d = &ctx.directory;
    single(
        out,
        "sluice_directory_errors_total",
        "counter",
        "Redis stream directory calls that failed (unreachable, time-out, error reply).",
        d.errors.load(Ordering::Relaxed),
    );
    single(
        out,
        "sluice_directory_up",
        "gauge",
        "1 unless the last Redis stream directory call failed.",
        u64::from(!d.is_down()),
    );
    single(
        out,
        "sluice_directory_streams",
        "gauge",
        "Streams this node holds registered in the directory.",
        d.held_count() as u64,
    );
    single(
        out,
        "sluice_directory_lookups_total",
        "counter",
        "Directory lookups (players and pulls of streams not published here).",
        d.lookups.load(Ordering::Relaxed),
    );
    single(
        out,
        "sluice_directory_refused_publishes_total",
        "counter",
        "Publishers refused because another origin holds the stream.",
        d.refusals.load(Ordering::Relaxed),
    );
}

/// WebRTC (`rtc_server`): its sessions (also counted in `sluice_clients`), handshakes
/// in flight, and what was refused or dropped.
fn rtc(out: &mut String, ctx: &Context) {
    let r = &ctx.rtc;
    single(
        out,
        "sluice_rtc_sessions",
        "gauge",
        "WebRTC sessions (WHIP publishers and WHEP players).",
        r.sessions.load(Ordering::Relaxed) as u64,
    );
    single(
        out,
        "sluice_rtc_handshakes",
        "gauge",
        "WebRTC sessions answered but not yet connected (ICE and DTLS).",
        r.handshakes.load(Ordering::Relaxed) as u64,
    );
    single(
        out,
        "sluice_rtc_offers_refused_total",
        "counter",
        "WHIP/WHEP offers refused because the session or handshake bound was reached.",
        r.refused.load(Ordering::Relaxed),
    );
    single(
        out,
        "sluice_rtc_datagrams_dropped_total",
        "counter",
        "Datagrams on the RTC port that matched no session (unknown ICE ufrag or address).",
        r.dropped_datagrams.load(Ordering::Relaxed),
    );
    single(
        out,
        "sluice_rtc_packet_history_bytes",
        "gauge",
        "Bytes of the RTP packets kept for WHEP players, once per stream (current GOP and 3 s, for new players and NACKs).",
        r.feeds.history_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hub::{SourceSettings, StreamKey};

    #[test]
    fn escapes_labels() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_label("plain"), "plain");
    }

    #[test]
    fn renders_every_family() {
        let ctx = Context::new(Config::default());
        let key = StreamKey {
            vhost: "__defaultVhost__".into(),
            app: "li\"ve".into(),
            stream: "s".into(),
        };
        ctx.hub.source(
            &key,
            SourceSettings {
                gop_cache: true,
                queue_length_ms: 1000,
            },
        );
        ctx.counters.refused_per_ip.store(2, Ordering::Relaxed);
        let _open = ctx.admission.opened(Cap::Shared);
        let text = render(&ctx);
        for name in [
            "sluice_streams 1",
            "sluice_clients 0",
            "sluice_bytes_received_total 0",
            "sluice_bytes_sent_total 0",
            "sluice_connections_accepted_total 0",
            "sluice_connections_refused_total{reason=\"max_connections\"} 0",
            "sluice_connections_refused_total{reason=\"max_connections_per_ip\"} 2",
            "sluice_connections_refused_total{reason=\"api\"} 0",
            "sluice_connections_open{cap=\"max_connections\"} 1",
            "sluice_connections_open{cap=\"api\"} 0",
            "sluice_tls_handshakes_total 0",
            "sluice_tls_handshakes_failed_total 0",
            "sluice_tls_handshakes_in_progress 0",
            "sluice_stream_recv_kbps{vhost=\"__defaultVhost__\",app=\"li\\\"ve\",stream=\"s\"} 0",
            "# TYPE sluice_stream_send_kbps gauge",
            "sluice_stream_clients{",
            "sluice_rtc_sessions 0",
            "sluice_rtc_datagrams_dropped_total 0",
            "sluice_rtc_packet_history_bytes 0",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
