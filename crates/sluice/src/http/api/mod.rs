//! The HTTP API under `/api/v1/`, with SRS's paths, JSON shapes and error codes so
//! that SRS's console and scripts work against sluice. docs/api.md lists every
//! endpoint and where we differ from SRS.
//!
//! Every reply is a JSON object with `code` (0 or an SRS error code), `server`,
//! `service` and `pid`; errors also carry a `msg` for humans and a fitting HTTP status.

mod guard;
mod raw;
mod resources;
mod services;
mod summaries;

use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::context::Context;

/// SRS's error codes (`srs_kernel_error.hpp`) used by the API.
pub mod codes {
    pub const SUCCESS: i64 = 0;
    /// ERROR_SYSTEM_CONFIG_RAW: the raw API could not serve the request.
    pub const CONFIG_RAW: i64 = 1060;
    /// ERROR_SYSTEM_CONFIG_RAW_DISABLED.
    pub const CONFIG_RAW_DISABLED: i64 = 1061;
    /// ERROR_RTMP_VHOST_NOT_FOUND.
    pub const VHOST_NOT_FOUND: i64 = 2014;
    /// ERROR_RTMP_STREAM_NOT_FOUND.
    pub const STREAM_NOT_FOUND: i64 = 2048;
    /// ERROR_RTMP_CLIENT_NOT_FOUND.
    pub const CLIENT_NOT_FOUND: i64 = 2049;
}

/// SRS's default page size for `streams` and `clients` ("default query top 10").
pub const DEFAULT_PAGE_COUNT: usize = 10;

/// Why a request failed; each maps to an SRS code and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no vhost with id {0}")]
    VhostNotFound(String),
    #[error("no stream with id {0}")]
    StreamNotFound(String),
    #[error("no client with id {0}")]
    ClientNotFound(String),
    #[error("{0}")]
    RawDisabled(&'static str),
    #[error("{0}")]
    RawInvalid(String),
    #[error("{0}")]
    RawNotImplemented(&'static str),
    #[error("authentication required (HTTP Basic)")]
    Unauthorized,
    #[error("no API at {0}")]
    NoSuchApi(String),
}

impl ApiError {
    pub fn code(&self) -> i64 {
        match self {
            ApiError::VhostNotFound(_) => codes::VHOST_NOT_FOUND,
            ApiError::StreamNotFound(_) => codes::STREAM_NOT_FOUND,
            ApiError::ClientNotFound(_) => codes::CLIENT_NOT_FOUND,
            ApiError::RawDisabled(_) => codes::CONFIG_RAW_DISABLED,
            ApiError::RawInvalid(_) | ApiError::RawNotImplemented(_) => codes::CONFIG_RAW,
            // SRS answers these with the HTTP status as the code.
            ApiError::Unauthorized => 401,
            ApiError::NoSuchApi(_) => 404,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::VhostNotFound(_)
            | ApiError::StreamNotFound(_)
            | ApiError::ClientNotFound(_)
            | ApiError::NoSuchApi(_) => StatusCode::NOT_FOUND,
            ApiError::RawDisabled(_) => StatusCode::FORBIDDEN,
            ApiError::RawInvalid(_) => StatusCode::BAD_REQUEST,
            ApiError::RawNotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_reply(self)
    }
}

pub(crate) fn error_reply(e: ApiError) -> Response {
    let mut body = base(e.code());
    body.insert("msg".into(), Value::String(e.to_string()));
    json_response(e.status(), &Value::Object(body))
}

/// The process's identity in every reply, made once. SRS's `server` is a `vid-`
/// plus 7 random characters, `service` 8 random characters per run, `pid` a string.
pub struct Ids {
    pub server: String,
    pub service: String,
    pub pid: String,
}

/// The ids every reply carries: the same ones hooks and the heartbeat send
/// (one place for them: [`crate::hooks::server_id`]).
pub fn ids() -> &'static Ids {
    static IDS: OnceLock<Ids> = OnceLock::new();
    IDS.get_or_init(|| Ids {
        server: crate::hooks::server_id().to_string(),
        service: crate::hooks::service_id().to_string(),
        pid: std::process::id().to_string(),
    })
}

/// A stable id for a vhost name within this process (SRS gives vhosts `vid-` ids).
pub fn vhost_id(name: &str) -> String {
    // FNV-1a over the server id and the name: stable per process, distinct per name.
    let mut z: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ids().server.bytes().chain([0]).chain(name.bytes()) {
        z = (z ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let s: String = (0..7)
        .map(|_| {
            let c = ALPHABET[(z % 36) as usize] as char;
            z /= 36;
            c
        })
        .collect();
    format!("vid-{s}")
}

/// `{code, server, service, pid}`, the head of every reply.
pub fn base(code: i64) -> Map<String, Value> {
    let ids = ids();
    let mut m = Map::new();
    m.insert("code".into(), json!(code));
    m.insert("server".into(), json!(ids.server));
    m.insert("service".into(), json!(ids.service));
    m.insert("pid".into(), json!(ids.pid));
    m
}

/// A success reply: the base plus `fields`.
pub fn ok_reply(fields: impl IntoIterator<Item = (&'static str, Value)>) -> Response {
    let mut m = base(codes::SUCCESS);
    for (k, v) in fields {
        m.insert(k.into(), v);
    }
    json_response(StatusCode::OK, &Value::Object(m))
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The raw (undecoded) value of `key` in a query string; our keys and values are
/// plain ASCII, so no percent-decoding is needed.
pub fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `?start=&count=`: start defaults to 0, count to [`DEFAULT_PAGE_COUNT`]; values that
/// do not parse fall back to the defaults, and a count of 0 means 1 (as SRS 6+).
pub fn page(query: Option<&str>) -> (usize, usize) {
    let get = |k| {
        query
            .and_then(|q| query_value(q, k))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let start = get("start").unwrap_or(0);
    let count = get("count").unwrap_or(DEFAULT_PAGE_COUNT).max(1);
    (start, count)
}

/// Wraps `router`'s routes in CORS, auth and JSONP (see [`guard`]); the metrics
/// router is wrapped the same way.
pub fn protect(router: Router, ctx: Arc<Context>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(ctx, guard::guard))
}

pub fn router(ctx: Arc<Context>) -> Router {
    let r = Router::new()
        .route("/api", get(api_index))
        .route("/api/", get(api_index))
        .route("/api/v1", get(v1_index))
        .route("/api/v1/", get(v1_index))
        .route("/api/v1/versions", get(versions))
        .route("/api/v1/summaries", get(summaries::summaries))
        .route("/api/v1/vhosts", get(resources::vhosts))
        .route("/api/v1/vhosts/", get(resources::vhosts))
        .route("/api/v1/vhosts/{id}", get(resources::vhost))
        .route("/api/v1/streams", get(resources::streams))
        .route("/api/v1/streams/", get(resources::streams))
        .route("/api/v1/streams/{id}", get(resources::stream))
        .route("/api/v1/clients", get(resources::clients))
        .route("/api/v1/clients/", get(resources::clients))
        .route(
            "/api/v1/clients/{id}",
            get(resources::client).delete(resources::kick),
        )
        .route("/api/v1/raw", get(raw::raw))
        .route("/api/v1/hls", get(services::hls))
        .route("/api/v1/dvrs", get(services::dvrs))
        .route(
            "/api/v1/dvrs/{id}/{action}",
            axum::routing::post(services::dvr_action),
        )
        .route("/api/v1/ffmpegs", get(services::ffmpegs))
        .route("/api/v1/forwards", get(services::forwards))
        .route("/api/v1/edges", get(services::edges))
        .route("/api/{*rest}", any(no_such_api))
        .with_state(ctx.clone());
    protect(r, ctx)
}

async fn no_such_api(req: Request) -> ApiError {
    ApiError::NoSuchApi(short(req.uri().path()))
}

/// Longest piece of a request echoed back in an error message.
const MAX_ECHO: usize = 128;

/// `s` cut to [`MAX_ECHO`] characters, for error messages.
pub fn short(s: &str) -> String {
    s.chars().take(MAX_ECHO).collect()
}

async fn api_index() -> Response {
    ok_reply([("urls", json!({ "v1": "the api version 1.0" }))])
}

async fn v1_index() -> Response {
    ok_reply([(
        "urls",
        json!({
            "versions": "the version of sluice",
            "summaries": "the summary (pid, argv, cwd, cpu, memory, load, network) of the server and host",
            "vhosts": "all vhosts or one: /api/v1/vhosts/{id}",
            "streams": "all streams or one: /api/v1/streams/{id}; paged by ?start=&count= (default count 10)",
            "clients": "all clients or one: /api/v1/clients/{id}; DELETE kicks it; paged by ?start=&count= (default count 10)",
            "raw": "raw api: ?rpc=raw shows the raw api config; rpc=reload is not implemented yet",
        }),
    )])
}

/// Major, minor and revision of a `x.y.z` version (missing or odd parts are 0).
fn version_parts(v: &str) -> [u64; 3] {
    let mut it = v
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    [
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    ]
}

async fn versions(State(_ctx): State<Arc<Context>>) -> Response {
    let v = env!("CARGO_PKG_VERSION");
    let [major, minor, revision] = version_parts(v);
    ok_reply([(
        "data",
        json!({ "major": major, "minor": minor, "revision": revision, "version": v }),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_paging() {
        assert_eq!(query_value("a=1&b=2", "b"), Some("2"));
        assert_eq!(query_value("a&b=2", "a"), Some(""));
        assert_eq!(query_value("a=1", "c"), None);
        assert_eq!(page(None), (0, DEFAULT_PAGE_COUNT));
        assert_eq!(page(Some("start=2&count=1")), (2, 1));
        assert_eq!(page(Some("start=-1&count=0")), (0, 1));
        assert_eq!(page(Some("count=abc")), (0, DEFAULT_PAGE_COUNT));
    }

    #[test]
    fn ids_are_srs_shaped() {
        let i = ids();
        assert!(i.server.starts_with("vid-") && i.server.len() == 11);
        assert_eq!(i.service.len(), 8);
        assert_eq!(i.pid, std::process::id().to_string());
        assert_eq!(vhost_id("a"), vhost_id("a"));
        assert_ne!(vhost_id("a"), vhost_id("b"));
        assert_eq!(version_parts("0.1.2"), [0, 1, 2]);
        assert_eq!(version_parts("1.2.3-rc1"), [1, 2, 3]);
        assert_eq!(version_parts("x"), [0, 0, 0]);
    }

    #[test]
    fn errors_map_to_srs_codes() {
        assert_eq!(ApiError::ClientNotFound("x".into()).code(), 2049);
        assert_eq!(ApiError::StreamNotFound("x".into()).code(), 2048);
        assert_eq!(ApiError::VhostNotFound("x".into()).code(), 2014);
        assert_eq!(
            ApiError::ClientNotFound("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(ApiError::RawDisabled("x").code(), 1061);
    }
}
