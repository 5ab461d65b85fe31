//! sluice's own endpoints for the per-stream services (not in SRS): HLS, DVR
//! (with start/stop), ffmpeg processes, forwarders and edge pulls.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{effective_method, ok_reply, short, ApiError};
use crate::context::Context;

pub async fn hls(State(ctx): State<Arc<Context>>) -> Response {
    let list: Vec<Value> = crate::hls::status(&ctx)
        .into_iter()
        .map(|(key, s)| {
            json!({
                "vhost": key.vhost,
                "app": key.app,
                "stream": key.stream,
                "playlist": s.playlist.display().to_string(),
                "playlist_url": s.playlist_url,
                "publishing": s.publishing,
                "sequence": s.sequence,
                "segments": s.segments,
                "last_segment_at_ms": s.last_segment_at_ms,
                "last_segment_duration_ms": s.last_segment_duration_ms,
                "errors": s.errors,
                "last_error": s.last_error,
                "last_error_at_ms": s.last_error_at_ms,
                "format": s.format,
                "dash": s.mpd_url.as_ref().map(|m| json!({ "mpd_url": m })),
                "ll": s.part_target_ms.map(|part| {
                    let live = crate::hls::ll_status(&ctx, &s.playlist_url);
                    json!({
                        "part_target_ms": part,
                        "msn": live.map(|l| l.msn),
                        "parts": live.map(|l| l.parts),
                        "blocked_requests": live.map(|l| l.blocked),
                    })
                }),
            })
        })
        .collect();
    ok_reply([("hls", Value::Array(list))])
}

/// The API's JSON of a service's status: the only place these structs are serialized.
fn to_json(status: impl serde::Serialize) -> Value {
    // Plain structs of strings and numbers: serializing them cannot fail.
    serde_json::to_value(status).unwrap_or(Value::Null)
}

pub async fn dvrs(State(ctx): State<Arc<Context>>) -> Response {
    ok_reply([("dvr", to_json(crate::dvr::status(&ctx)))])
}

/// `POST /api/v1/dvrs/{stream_id}/start|stop`: records a live stream on demand
/// (or stops it), whatever `dvr_apply` says, until the next reload. JSONP callers send
/// `?callback=cb&method=POST`.
pub async fn dvr_action(
    State(ctx): State<Arc<Context>>,
    method: Method,
    Path((id, action)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    if effective_method(&method, q.as_deref()) != Method::POST {
        return Ok(StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    let source = ctx
        .hub
        .find_by_id(&id)
        .ok_or_else(|| ApiError::StreamNotFound(short(&id)))?;
    let key = source.key.clone();
    match action.as_str() {
        "start" => {
            let started =
                crate::dvr::start(&ctx, &key).map_err(|e| ApiError::RawInvalid(e.to_string()))?;
            Ok(ok_reply([
                ("started", json!(started)),
                ("stream", json!(key.to_string())),
            ]))
        }
        "stop" => {
            let stopped = crate::dvr::stop(&ctx, &key);
            Ok(ok_reply([
                ("stopped", json!(stopped)),
                ("stream", json!(key.to_string())),
            ]))
        }
        other => Err(ApiError::NoSuchApi(short(&format!("dvr action {other}")))),
    }
}

pub async fn ffmpegs(State(ctx): State<Arc<Context>>) -> Response {
    ok_reply([("ffmpeg", to_json(crate::ffmpeg::status(&ctx)))])
}

pub async fn forwards(State(ctx): State<Arc<Context>>) -> Response {
    ok_reply([("forward", to_json(crate::forward::status(&ctx)))])
}

pub async fn edges(State(ctx): State<Arc<Context>>) -> Response {
    ok_reply([("edge", to_json(crate::edge::status(&ctx)))])
}
