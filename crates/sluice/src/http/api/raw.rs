//! `/api/v1/raw?rpc=...`: SRS's config RPCs. `rpc=raw` reports the raw API's own
//! config; `rpc=reload` is refused with SRS's codes until reload exists: 1061 when
//! `raw_api` or `allow_reload` is off (as SRS), 1060 with HTTP 501 when it is on.
//! SRS 4+ dropped `query` and `update`; they are invalid RPCs here too.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::json;

use super::{ok_reply, query_value, ApiError};
use crate::context::Context;

pub async fn raw(
    State(ctx): State<Arc<Context>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let config = ctx.config();
    let api = &config.http_api;
    let rpc = q
        .as_deref()
        .and_then(|q| query_value(q, "rpc"))
        .unwrap_or("");
    if rpc == "raw" {
        return Ok(ok_reply([(
            "http_api",
            json!({
                "enabled": api.enabled,
                "listen": api.listen.to_string(),
                "crossdomain": api.crossdomain,
                "raw_api": {
                    "enabled": api.raw_api.enabled,
                    "allow_reload": api.raw_api.allow_reload,
                    "allow_query": false,
                    "allow_update": false,
                },
            }),
        )]));
    }
    if !api.raw_api.enabled {
        return Err(ApiError::RawDisabled(
            "raw api is disabled: set http_api { raw_api { enabled on; } }",
        ));
    }
    match rpc {
        "reload" | "reload-fetch" if !api.raw_api.allow_reload => Err(ApiError::RawDisabled(
            "reload by the raw api is disabled: set raw_api { allow_reload on; }",
        )),
        "reload" | "reload-fetch" => match ctx.request_reload().await {
            Ok(summary) => Ok(ok_reply([("data", json!({ "reload": summary }))])),
            Err(e) => Err(ApiError::RawInvalid(format!(
                "reload failed, the running config is kept: {e}"
            ))),
        },
        "" => Err(ApiError::RawInvalid("missing ?rpc= (raw or reload)".into())),
        other => Err(ApiError::RawInvalid(format!(
            "unknown rpc {:?} (supported: raw, reload)",
            other.chars().take(64).collect::<String>()
        ))),
    }
}
