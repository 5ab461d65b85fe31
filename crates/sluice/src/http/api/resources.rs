//! `vhosts`, `streams` and `clients`: SRS's statistic objects built from the hub,
//! the client registry and the kbps sampler at the time of the request.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tracing::info;

use super::{effective_method, ok_reply, page, short, vhost_id, ApiError};
use crate::config::{VhostConfig, DEFAULT_VHOST};
use crate::context::Context;
use crate::hub::{Source, StreamKey};
use crate::stats::kbps::Kbps;
use crate::stats::{Client, ClientKind, ClientState};

/// A client and its state, read once per request.
type Snapshot = Vec<(Arc<Client>, ClientState)>;

fn snapshot(ctx: &Context) -> Snapshot {
    ctx.clients
        .list()
        .into_iter()
        .map(|c| {
            let s = c.state();
            (c, s)
        })
        .collect()
}

fn kbps_json(k: Kbps) -> Value {
    json!({ "recv_30s": k.recv_30s, "send_30s": k.send_30s })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// SRS's stream url: `/app/stream` on the default vhost, `vhost/app/stream` otherwise.
pub fn stream_url(key: &StreamKey) -> String {
    if key.vhost == DEFAULT_VHOST {
        format!("/{}/{}", key.app, key.stream)
    } else {
        format!("{}/{}/{}", key.vhost, key.app, key.stream)
    }
}

fn vhost_json(ctx: &Context, v: &VhostConfig, clients: &Snapshot) -> Value {
    let nb_clients = clients
        .iter()
        .filter(|(_, s)| s.stream.as_ref().is_some_and(|k| k.vhost == v.name))
        .count();
    let nb_streams = ctx
        .hub
        .sources()
        .iter()
        .filter(|s| s.key.vhost == v.name && s.is_publishing())
        .count();
    let series = ctx.rates.vhost(&v.name);
    let hls = if v.hls.enabled {
        json!({ "enabled": true, "fragment": v.hls.fragment.as_secs_f64() })
    } else {
        json!({ "enabled": false })
    };
    json!({
        "id": vhost_id(&v.name),
        "name": v.name,
        "enabled": v.enabled,
        "clients": nb_clients,
        "streams": nb_streams,
        "send_bytes": series.send_bytes,
        "recv_bytes": series.recv_bytes,
        "kbps": kbps_json(series.kbps()),
        "hls": hls,
    })
}

pub async fn vhosts(State(ctx): State<Arc<Context>>) -> Response {
    let config = ctx.config();
    let clients = snapshot(&ctx);
    let list: Vec<Value> = config
        .vhosts
        .iter()
        .map(|v| vhost_json(&ctx, v, &clients))
        .collect();
    ok_reply([("vhosts", Value::Array(list))])
}

pub async fn vhost(
    State(ctx): State<Arc<Context>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let config = ctx.config();
    let v = config
        .vhosts
        .iter()
        .find(|v| vhost_id(&v.name) == id)
        .ok_or_else(|| ApiError::VhostNotFound(short(&id)))?;
    Ok(ok_reply([("vhost", vhost_json(&ctx, v, &snapshot(&ctx)))]))
}

fn stream_json(ctx: &Context, src: &Source, clients: &Snapshot, now: u64) -> Value {
    let mine = || {
        clients
            .iter()
            .filter(move |(_, s)| s.stream.as_ref() == Some(&src.key))
    };
    let publisher = src.publisher();
    // The tcUrl the publisher connected with, else any of its players'.
    let tc_url = publisher
        .as_ref()
        .and_then(|p| mine().find(|(c, _)| c.id == p.client_id))
        .or_else(|| mine().next())
        .map(|(_, s)| s.tc_url.clone())
        .unwrap_or_default();
    let series = ctx.rates.stream(&src.id);
    let video_frames = src.stats.video_frames.load(Ordering::Relaxed);
    let audio_frames = src.stats.audio_frames.load(Ordering::Relaxed);
    let mut publish = json!({ "active": publisher.is_some() });
    if let (Some(p), Some(o)) = (&publisher, publish.as_object_mut()) {
        o.insert("cid".into(), json!(p.client_id));
    }
    let (video, audio) = src.codec_info();
    let video = video.map_or(Value::Null, |v| {
        json!({
            "codec": v.codec, "profile": v.profile, "level": v.level,
            "width": v.width, "height": v.height,
        })
    });
    let audio = audio.map_or(Value::Null, |a| {
        json!({
            "codec": a.codec, "sample_rate": a.sample_rate,
            "channel": a.channels, "profile": a.profile,
        })
    });
    json!({
        "id": src.id,
        "name": src.key.stream,
        "vhost": vhost_id(&src.key.vhost),
        "app": src.key.app,
        "tcUrl": tc_url,
        "url": stream_url(&src.key),
        "live_ms": now,
        "clients": mine().count(),
        "frames": video_frames.saturating_add(audio_frames),
        "video_frames": video_frames,
        "audio_frames": audio_frames,
        "send_bytes": series.send_bytes,
        "recv_bytes": src.stats.recv_bytes.load(Ordering::Relaxed),
        "kbps": kbps_json(series.kbps()),
        "publish": publish,
        "video": video,
        "audio": audio,
    })
}

pub async fn streams(State(ctx): State<Arc<Context>>, RawQuery(q): RawQuery) -> Response {
    let (start, count) = page(q.as_deref());
    let sources = ctx.hub.sources();
    let clients = snapshot(&ctx);
    let now = now_ms();
    let list: Vec<Value> = sources
        .iter()
        .skip(start)
        .take(count)
        .map(|s| stream_json(&ctx, s, &clients, now))
        .collect();
    ok_reply([
        ("total", json!(sources.len())),
        ("streams", Value::Array(list)),
    ])
}

pub async fn stream(
    State(ctx): State<Arc<Context>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let src = ctx
        .hub
        .find_by_id(&id)
        .ok_or_else(|| ApiError::StreamNotFound(short(&id)))?;
    Ok(ok_reply([(
        "stream",
        stream_json(&ctx, &src, &snapshot(&ctx), now_ms()),
    )]))
}

/// SRS's `tcUrl` of an HTTP player (`SrsRequest::as_http`): `http://HOST/APP`, the
/// request's path cut to the app. `tc_url` is what the HTTP-FLV server keeps
/// (`http://HOST/APP/STREAM.flv`).
fn http_tc_url(tc_url: &str, app: &str) -> String {
    let host = tc_url
        .strip_prefix("http://")
        .or_else(|| tc_url.strip_prefix("https://"))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    format!("http://{host}/{app}")
}

fn client_json(ctx: &Context, c: &Client, s: &ClientState) -> Value {
    let (vhost, stream_id, url, mut name) = match &s.stream {
        Some(k) => (
            vhost_id(&k.vhost),
            ctx.hub.get(k).map(|src| src.id.clone()).unwrap_or_default(),
            stream_url(k),
            k.stream.clone(),
        ),
        None => Default::default(),
    };
    let mut tc_url = s.tc_url.clone();
    if s.kind == ClientKind::FlvPlay {
        // SRS names an HTTP player's stream with the mount's extension (`livestream.flv`)
        // and gives the tcUrl of the app, not of the file.
        // `.ts`, `.aac`, `.mp3` players too: the extension their URL asked for.
        let ext =
            crate::http::flv_live::RemuxFormat::of_path(&s.tc_url).map_or(".flv", |f| f.ext());
        name.push_str(ext);
        if let Some(k) = &s.stream {
            tc_url = http_tc_url(&s.tc_url, &k.app);
        }
    }
    json!({
        "id": c.id,
        "vhost": vhost,
        "stream": stream_id,
        "ip": c.peer.ip().to_string(),
        "pageUrl": s.page_url,
        "swfUrl": s.swf_url,
        "tcUrl": tc_url,
        "url": url,
        "name": name,
        "type": s.kind.srs_name(),
        "publish": s.kind.is_publish(),
        "alive": (c.started.elapsed().as_millis() as f64) / 1000.0,
        "send_bytes": c.send_bytes.load(Ordering::Relaxed),
        "recv_bytes": c.recv_bytes.load(Ordering::Relaxed),
        "kbps": kbps_json(ctx.rates.client(&c.id)),
    })
}

pub async fn clients(State(ctx): State<Arc<Context>>, RawQuery(q): RawQuery) -> Response {
    let (start, count) = page(q.as_deref());
    let all = snapshot(&ctx);
    let list: Vec<Value> = all
        .iter()
        .skip(start)
        .take(count)
        .map(|(c, s)| client_json(&ctx, c, s))
        .collect();
    ok_reply([("total", json!(all.len())), ("clients", Value::Array(list))])
}

/// `/api/v1/clients/{id}`: GET shows the client, DELETE kicks it; the method may come
/// from JSONP's `method=` (SRS's console kicks with `GET ...?callback=cb&method=DELETE`).
pub async fn client_or_kick(
    State(ctx): State<Arc<Context>>,
    method: Method,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    match effective_method(&method, q.as_deref()) {
        Method::GET => client(&ctx, &id),
        Method::DELETE => kick(&ctx, &id),
        _ => Ok(StatusCode::METHOD_NOT_ALLOWED.into_response()),
    }
}

fn client(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    let c = ctx
        .clients
        .get(id)
        .ok_or_else(|| ApiError::ClientNotFound(short(id)))?;
    let s = c.state();
    Ok(ok_reply([("client", client_json(ctx, &c, &s))]))
}

/// Asks the client's task to close the connection; a kicked publisher ends its stream
/// like any publisher that goes away.
fn kick(ctx: &Context, id: &str) -> Result<Response, ApiError> {
    if !ctx.clients.kick(id) {
        return Err(ApiError::ClientNotFound(short(id)));
    }
    info!("kick client {id} by the API");
    Ok(ok_reply([]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_like_srs() {
        let k = |v: &str| StreamKey {
            vhost: v.into(),
            app: "live".into(),
            stream: "s".into(),
        };
        assert_eq!(stream_url(&k(DEFAULT_VHOST)), "/live/s");
        assert_eq!(stream_url(&k("v1.test")), "v1.test/live/s");
        assert_eq!(
            http_tc_url("http://127.0.0.1:8080/live/s.flv", "live"),
            "http://127.0.0.1:8080/live"
        );
        assert_eq!(http_tc_url("", "live"), "http:///live");
    }
}
