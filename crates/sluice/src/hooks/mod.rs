//! HTTP hooks (SRS's `http_hooks`): the server POSTs a JSON description of an event to the
//! URLs configured for it, in order. For connect, publish and play the answers decide: every
//! URL must allow (HTTP 200/201 with body `0` or `{"code": 0}`), and the first refusal,
//! time-out or unreachable server denies the client. The other events are notifications
//! whose failures are only logged.
//!
//! Bodies carry SRS 5/6's fields (`srs_app_http_hooks.cpp`), so an SRS hook server works
//! unchanged. Each call runs on the task of the client it is about, so a slow hook server
//! delays that client only, and never longer than `http_hooks.timeout_ms` per URL.

pub mod client;
mod ids;

use serde_json::{json, Map, Value};
use tracing::{info, warn};

pub use client::HookError;
pub use ids::{server_id, service_id};

use crate::config::{AccessScope, HookUrl, HttpHooksConfig, VhostConfig};
use crate::context::Context;
use crate::hub::StreamKey;
use crate::stream_url::mask_param;

/// The client (and stream) a hook is about: SRS's `SrsRequest` fields that hooks send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookRequest {
    pub client_id: String,
    /// The client's IP address, without port.
    pub ip: String,
    /// The resolved vhost (`__defaultVhost__` when no named vhost matched).
    pub vhost: String,
    pub app: String,
    pub stream: String,
    /// The stream's query string with its leading `?` (SRS's form), or empty.
    pub param: String,
    pub tc_url: String,
    pub page_url: String,
}

impl HookRequest {
    /// SRS's `get_stream_url`: `/app/stream` on the default vhost, `vhost/app/stream` else.
    pub fn stream_url(&self) -> String {
        if self.vhost == crate::config::DEFAULT_VHOST {
            format!("/{}/{}", self.app, self.stream)
        } else {
            format!("{}/{}/{}", self.vhost, self.app, self.stream)
        }
    }

    /// SRS's `param`: the query string with a leading `?`.
    pub fn param_of(query: &str) -> String {
        if query.is_empty() || query.starts_with('?') {
            query.to_string()
        } else {
            format!("?{query}")
        }
    }

    /// For hooks about a stream rather than a connection (DVR, HLS): the publisher's details
    /// (ip, tcUrl, pageUrl and its stream's query as `param`, as SRS's copy of the
    /// publisher's request has them) come from the client registry while it is connected.
    pub fn for_stream(ctx: &Context, client_id: &str, key: &StreamKey) -> HookRequest {
        let mut r = HookRequest {
            client_id: client_id.to_string(),
            vhost: key.vhost.clone(),
            app: key.app.clone(),
            stream: key.stream.clone(),
            ..HookRequest::default()
        };
        if let Some(c) = ctx.clients.get(client_id) {
            let s = c.state();
            r.ip = c.peer.ip().to_canonical().to_string();
            r.tc_url = s.tc_url;
            r.page_url = s.page_url;
            r.param = HookRequest::param_of(&s.raw_param);
        }
        r
    }

    fn key(&self) -> StreamKey {
        StreamKey {
            vhost: self.vhost.clone(),
            app: self.app.clone(),
            stream: self.stream.clone(),
        }
    }
}

/// A hook said no (or could not be asked): what the client is told, and the log line.
#[derive(Debug, thiserror::Error)]
#[error("{action} hook {url} denied: {error}")]
pub struct Denied {
    pub action: &'static str,
    pub url: String,
    pub error: HookError,
}

fn base(action: &str, req: &HookRequest) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("server_id".into(), json!(server_id()));
    m.insert("service_id".into(), json!(service_id()));
    m.insert("action".into(), json!(action));
    m.insert("client_id".into(), json!(req.client_id));
    m.insert("ip".into(), json!(req.ip));
    m.insert("vhost".into(), json!(req.vhost));
    m.insert("app".into(), json!(req.app));
    m
}

/// The fields every stream event carries, as SRS 5+ sends them: tcUrl, stream, param,
/// stream_url and stream_id (the stream's id as the API lists it; publishers and players
/// create the stream before their hooks, so it exists; empty only if it is gone).
fn stream_fields(ctx: &Context, m: &mut Map<String, Value>, req: &HookRequest) {
    let id = ctx
        .hub
        .get(&req.key())
        .map(|s| s.id.clone())
        .unwrap_or_default();
    stream_fields_with_id(m, req, &id);
}

fn stream_fields_with_id(m: &mut Map<String, Value>, req: &HookRequest, stream_id: &str) {
    m.insert("tcUrl".into(), json!(req.tc_url));
    m.insert("stream".into(), json!(req.stream));
    m.insert("param".into(), json!(req.param));
    m.insert("stream_url".into(), json!(req.stream_url()));
    m.insert("stream_id".into(), json!(stream_id));
}

/// Calls `urls` in order. With `decide`, the first failure stops and denies; without, every
/// URL is called and failures are logged.
async fn call_all(
    hooks: &HttpHooksConfig,
    action: &'static str,
    urls: &[HookUrl],
    req: &HookRequest,
    body: Value,
    decide: bool,
) -> Result<(), Denied> {
    if !hooks.enabled || urls.is_empty() {
        return Ok(());
    }
    let body = body.to_string();
    for url in urls {
        let started = std::time::Instant::now();
        let r = client::request(hyper::Method::POST, url, Some(body.clone()), hooks.timeout)
            .await
            .and_then(|a| client::check_answer(&a));
        let ms = started.elapsed().as_millis();
        // The body is not logged: it carries the client's token.
        match r {
            Ok(()) => info!(
                "hook {action} ok: url={} client_id={} stream={} param={} in {ms} ms",
                url.url,
                req.client_id,
                req.stream_url(),
                mask_param(req.param.trim_start_matches('?'))
            ),
            Err(error) => {
                let denied = Denied {
                    action,
                    url: url.url.clone(),
                    error,
                };
                if decide {
                    warn!("{denied} (client_id={}, {ms} ms)", req.client_id);
                    return Err(denied);
                }
                warn!("{denied}; ignored (client_id={}, {ms} ms)", req.client_id);
            }
        }
    }
    Ok(())
}

/// When the client names its stream, before the publish or play checks (SRS 3+ sends
/// it then, from `check_vhost`), so `stream` and `param` (the stream's and app's
/// query, e.g. `?token=abc`) are filled. Denies the publish or play on refusal.
pub async fn on_connect(
    _ctx: &Context,
    hooks: &HttpHooksConfig,
    req: &HookRequest,
) -> Result<(), Denied> {
    let mut m = base("on_connect", req);
    m.insert("stream".into(), json!(req.stream));
    m.insert("param".into(), json!(req.param));
    m.insert("tcUrl".into(), json!(req.tc_url));
    m.insert("pageUrl".into(), json!(req.page_url));
    call_all(
        hooks,
        "on_connect",
        &hooks.on_connect,
        req,
        Value::Object(m),
        true,
    )
    .await
}

/// When a connection that passed on_connect ends. Failures are logged only.
pub async fn on_close(
    _ctx: &Context,
    hooks: &HttpHooksConfig,
    req: &HookRequest,
    send_bytes: u64,
    recv_bytes: u64,
) {
    let mut m = base("on_close", req);
    m.insert("send_bytes".into(), json!(send_bytes));
    m.insert("recv_bytes".into(), json!(recv_bytes));
    let _ = call_all(
        hooks,
        "on_close",
        &hooks.on_close,
        req,
        Value::Object(m),
        false,
    )
    .await;
}

/// Before the publisher gets `NetStream.Publish.Start`. Denies the publish on refusal.
pub async fn on_publish(
    ctx: &Context,
    hooks: &HttpHooksConfig,
    req: &HookRequest,
) -> Result<(), Denied> {
    let mut m = base("on_publish", req);
    stream_fields(ctx, &mut m, req);
    call_all(
        hooks,
        "on_publish",
        &hooks.on_publish,
        req,
        Value::Object(m),
        true,
    )
    .await
}

/// After a publish that on_publish allowed ends. Failures are logged only.
pub async fn on_unpublish(ctx: &Context, hooks: &HttpHooksConfig, req: &HookRequest) {
    let mut m = base("on_unpublish", req);
    stream_fields(ctx, &mut m, req);
    let _ = call_all(
        hooks,
        "on_unpublish",
        &hooks.on_unpublish,
        req,
        Value::Object(m),
        false,
    )
    .await;
}

/// Before a player (RTMP or HTTP-FLV) gets any media. Denies the play on refusal.
pub async fn on_play(
    ctx: &Context,
    hooks: &HttpHooksConfig,
    req: &HookRequest,
) -> Result<(), Denied> {
    let mut m = base("on_play", req);
    stream_fields(ctx, &mut m, req);
    m.insert("pageUrl".into(), json!(req.page_url));
    call_all(
        hooks,
        "on_play",
        &hooks.on_play,
        req,
        Value::Object(m),
        true,
    )
    .await
}

/// After a play that on_play allowed ends. Failures are logged only.
pub async fn on_stop(ctx: &Context, hooks: &HttpHooksConfig, req: &HookRequest) {
    let mut m = base("on_stop", req);
    stream_fields(ctx, &mut m, req);
    let _ = call_all(
        hooks,
        "on_stop",
        &hooks.on_stop,
        req,
        Value::Object(m),
        false,
    )
    .await;
}

/// Why a client was refused by [`admit_publish`] / [`admit_play`]: safe to tell the client
/// (no hook URL in it) and to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

impl From<Denied> for Refusal {
    fn from(d: Denied) -> Refusal {
        Refusal(format!("denied by the {} hook: {}", d.action, d.error))
    }
}

impl From<crate::access::SecurityDenied> for Refusal {
    fn from(d: crate::access::SecurityDenied) -> Refusal {
        Refusal(d.to_string())
    }
}

/// Every check a publisher passes before its start reply, in SRS's order: allow/deny rules on
/// its IP, the refer publish list on its pageUrl, then the on_publish hook.
pub async fn admit_publish(
    ctx: &Context,
    vhost: &VhostConfig,
    req: &HookRequest,
    ip: std::net::IpAddr,
) -> Result<(), Refusal> {
    crate::access::check_security(&vhost.security, AccessScope::Publish, ip)?;
    if let Some(why) =
        crate::access::check_refer(&vhost.refer, Some(AccessScope::Publish), &req.page_url)
    {
        return Err(Refusal(why));
    }
    // One publisher of a stream cluster-wide (origin cluster with a directory).
    let key = crate::hub::StreamKey {
        vhost: req.vhost.clone(),
        app: req.app.clone(),
        stream: req.stream.clone(),
    };
    crate::cluster::directory::admit(ctx, vhost, &key)
        .await
        .map_err(Refusal)?;
    on_publish(ctx, &vhost.http_hooks, req).await?;
    Ok(())
}

/// The same for a player (RTMP, or HTTP-FLV with the `Referer` header as pageUrl): allow/deny
/// rules, refer play list, then the on_play hook.
pub async fn admit_play(
    ctx: &Context,
    vhost: &VhostConfig,
    req: &HookRequest,
    ip: std::net::IpAddr,
) -> Result<(), Refusal> {
    crate::access::check_security(&vhost.security, AccessScope::Play, ip)?;
    if let Some(why) =
        crate::access::check_refer(&vhost.refer, Some(AccessScope::Play), &req.page_url)
    {
        return Err(Refusal(why));
    }
    on_play(ctx, &vhost.http_hooks, req).await?;
    Ok(())
}

/// on_stop from a place that cannot wait (an HTTP body's `Drop`): runs on its own task.
pub fn spawn_on_stop(ctx: std::sync::Arc<Context>, hooks: HttpHooksConfig, req: HookRequest) {
    if !hooks.enabled || hooks.on_stop.is_empty() {
        return;
    }
    tokio::spawn(async move { on_stop(&ctx, &hooks, &req).await });
}

fn cwd() -> String {
    std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default()
}

/// A DVR file was closed. `publisher` is what the recorder kept about the publisher
/// (see [`HookRequest::for_stream`]) and `stream_id` the recorded stream's id, both taken
/// while it was live, since a file is usually closed after the publisher left (SRS too
/// sends its copy of the publisher's request). `file` as written (relative paths are
/// relative to `cwd`, which the body carries). The caller decides what an Err means
/// (SRS only logs it).
pub async fn on_dvr(
    _ctx: &Context,
    vhost: &VhostConfig,
    publisher: &HookRequest,
    stream_id: &str,
    file: &str,
) -> Result<(), Denied> {
    let hooks = &vhost.http_hooks;
    if !hooks.enabled || hooks.on_dvr.is_empty() {
        return Ok(());
    }
    let req = publisher;
    let mut m = base("on_dvr", req);
    stream_fields_with_id(&mut m, req, stream_id);
    m.insert("cwd".into(), json!(cwd()));
    m.insert("file".into(), json!(file));
    call_all(hooks, "on_dvr", &hooks.on_dvr, req, Value::Object(m), true).await
}

/// An HLS segment was written. `file` is its path on disk, `url` its URL (relative URLs are
/// made relative to the playlist's directory, as SRS does), `m3u8`/`m3u8_url` the playlist's
/// path and URL, `seq_no` the segment's sequence number, `duration` its length in seconds.
#[allow(clippy::too_many_arguments)]
pub async fn on_hls(
    ctx: &Context,
    vhost: &VhostConfig,
    client_id: &str,
    key: &StreamKey,
    file: &str,
    url: &str,
    m3u8: &str,
    m3u8_url: &str,
    seq_no: u64,
    duration: f64,
) -> Result<(), Denied> {
    let hooks = &vhost.http_hooks;
    if !hooks.enabled || hooks.on_hls.is_empty() {
        return Ok(());
    }
    let req = HookRequest::for_stream(ctx, client_id, key);
    let ts_url = segment_url(url, m3u8_url);
    let mut m = base("on_hls", &req);
    stream_fields(ctx, &mut m, &req);
    m.insert("duration".into(), json!(duration));
    m.insert("cwd".into(), json!(cwd()));
    m.insert("file".into(), json!(file));
    m.insert("url".into(), json!(ts_url));
    m.insert("m3u8".into(), json!(m3u8));
    m.insert("m3u8_url".into(), json!(m3u8_url));
    m.insert("seq_no".into(), json!(seq_no));
    call_all(hooks, "on_hls", &hooks.on_hls, &req, Value::Object(m), true).await
}

/// SRS: a relative segment URL is put under the playlist URL's directory.
fn segment_url(ts_url: &str, m3u8_url: &str) -> String {
    let is_http = ts_url.starts_with("http://") || ts_url.starts_with("https://");
    match m3u8_url.rfind('/') {
        Some(i) if i > 0 && !is_http => format!("{}/{ts_url}", m3u8_url.get(..i).unwrap_or("")),
        _ => ts_url.to_string(),
    }
}

/// Fills an `on_hls_notify` template (SRS's variables).
pub fn hls_notify_url(template: &str, req: &HookRequest, ts_url: &str) -> String {
    template
        .replace("[server_id]", server_id())
        .replace("[service_id]", service_id())
        .replace("[app]", &req.app)
        .replace("[stream]", &req.stream)
        .replace("[ts_url]", ts_url)
        .replace("[param]", &req.param)
}

/// An HLS segment is ready: GET each `on_hls_notify` URL (a CDN pre-fetch, typically) and read
/// up to `nb_notify` bytes of the answer (bounded by [`client::MAX_RESPONSE_BYTES`]). When
/// `ts_url` is itself an http URL it is fetched instead, as SRS does. Errors are logged only.
pub async fn on_hls_notify(
    ctx: &Context,
    vhost: &VhostConfig,
    client_id: &str,
    key: &StreamKey,
    ts_url: &str,
    nb_notify: u32,
) {
    let hooks = &vhost.http_hooks;
    if !hooks.enabled || hooks.on_hls_notify.is_empty() {
        return;
    }
    let req = HookRequest::for_stream(ctx, client_id, key);
    for template in &hooks.on_hls_notify {
        let target = if ts_url.starts_with("http://") || ts_url.starts_with("https://") {
            ts_url.to_string()
        } else {
            hls_notify_url(template, &req, ts_url)
        };
        let url = match HookUrl::parse(&target) {
            Ok(u) => u,
            Err(e) => {
                warn!("hook on_hls_notify: {e}; skipped");
                continue;
            }
        };
        match client::request(hyper::Method::GET, &url, None, hooks.timeout).await {
            Ok(a) => info!(
                "hook on_hls_notify: GET {} status={} read={} of {nb_notify} bytes",
                url.url,
                a.status,
                a.body.len().min(nb_notify as usize)
            ),
            Err(e) => warn!("hook on_hls_notify: GET {} failed: {e}; ignored", url.url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_url_and_param_follow_srs() {
        let mut r = HookRequest {
            vhost: "__defaultVhost__".into(),
            app: "live".into(),
            stream: "s".into(),
            ..HookRequest::default()
        };
        assert_eq!(r.stream_url(), "/live/s");
        r.vhost = "v1.test".into();
        assert_eq!(r.stream_url(), "v1.test/live/s");
        assert_eq!(HookRequest::param_of(""), "");
        assert_eq!(HookRequest::param_of("token=1"), "?token=1");
        assert_eq!(HookRequest::param_of("?a=b"), "?a=b");
    }

    #[test]
    fn hls_urls() {
        assert_eq!(
            segment_url("s-1.ts", "http://h/live/s.m3u8"),
            "http://h/live/s-1.ts"
        );
        assert_eq!(segment_url("s-1.ts", "live/s.m3u8"), "live/s-1.ts");
        assert_eq!(segment_url("s-1.ts", "s.m3u8"), "s-1.ts");
        assert_eq!(
            segment_url("http://cdn/x.ts", "live/s.m3u8"),
            "http://cdn/x.ts"
        );
        let r = HookRequest {
            app: "live".into(),
            stream: "s".into(),
            param: "?t=1".into(),
            ..HookRequest::default()
        };
        assert_eq!(
            hls_notify_url("http://cdn/[app]/[stream]/[ts_url][param]", &r, "s-1.ts"),
            "http://cdn/live/s/s-1.ts?t=1"
        );
    }
}
