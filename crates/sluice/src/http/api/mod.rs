//! The HTTP API under `/api/v1/`, with SRS's paths, JSON shapes and error codes so
//! that SRS's console and scripts work against sluice. docs/api.md lists every
//! endpoint and where we differ from SRS.
//!
//! Every reply is a JSON object with `code` (0 or an SRS error code), `server`,
//! `service` and `pid`; errors also carry a `msg` for humans. As in SRS, an error about
//! a resource is answered with HTTP 200 and the code in the body (so a JSONP callback
//! runs and scripts that read `code` work); only an unknown path (404) and a failed
//! login (401) use the HTTP status.

mod guard;
mod procs;
mod raw;
mod resources;
mod services;
mod summaries;

use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
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
    /// What SRS's `/api/v1/tests/errors` always answers.
    pub const TEST_ERROR: i64 = 100;
}

/// The page size for `streams` and `clients` when `count` is missing or empty: 10, as SRS
/// since 7.0.128 (ossrs/srs#4584; 7.0.103 to 7.0.127 answered a single item, which left SRS's
/// own console, that never sends `count`, listing one stream and one client). A `count`
/// that is given but 0, negative or not a number means 1 (`max(1, atoi(count))`).
pub const DEFAULT_PAGE_COUNT: usize = 10;

/// The SRS release whose API (paths, shapes, codes) sluice answers like, reported as
/// `major`/`minor`/`revision`/`version` by `/api/v1/versions` so that scripts written
/// for SRS (`major >= 5`) work. sluice's own version is reported beside it.
pub const SRS_COMPAT_VERSION: (u64, u64, u64) = (7, 0, 0);

/// [`SRS_COMPAT_VERSION`] as `x.y.z`.
pub fn srs_compat_version() -> String {
    let (a, b, c) = SRS_COMPAT_VERSION;
    format!("{a}.{b}.{c}")
}

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
    /// `/api/v1/tests/errors`: SRS's fixed error, for testing clients.
    #[error("always an error 100 (a test)")]
    TestError,
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
            ApiError::TestError => codes::TEST_ERROR,
        }
    }

    /// SRS's `srs_api_response_code` answers HTTP 200 with the code in the body; only
    /// its mux (no such path) and its auth answer with an HTTP error status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NoSuchApi(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::VhostNotFound(_)
            | ApiError::StreamNotFound(_)
            | ApiError::ClientNotFound(_)
            | ApiError::RawDisabled(_)
            | ApiError::RawInvalid(_)
            | ApiError::RawNotImplemented(_)
            | ApiError::TestError => StatusCode::OK,
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

/// C's `atoi`: optional sign and leading digits, 0 when there are none; saturates
/// instead of overflowing.
fn atoi(v: &str) -> i64 {
    let v = v.trim_start();
    let (neg, digits) = match v.as_bytes().first() {
        Some(b'-') => (true, v.get(1..).unwrap_or("")),
        Some(b'+') => (false, v.get(1..).unwrap_or("")),
        _ => (false, v),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

/// `?start=&count=` as SRS 7.0.128+ reads them: `start = max(0, atoi(start))`; `count` is
/// [`DEFAULT_PAGE_COUNT`] when missing or empty, else `max(1, atoi(count))`.
pub fn page(query: Option<&str>) -> (usize, usize) {
    let raw = |k| query.and_then(|q| query_value(q, k)).unwrap_or("");
    let start = usize::try_from(atoi(raw("start")).max(0)).unwrap_or(usize::MAX);
    let count = match raw("count") {
        "" => DEFAULT_PAGE_COUNT,
        c => usize::try_from(atoi(c).max(1)).unwrap_or(usize::MAX),
    };
    (start, count)
}

/// The method a request stands for: with JSONP (`?callback=`), SRS's `method=` query
/// (`GET`, `PUT`, `POST` or `DELETE`) replaces the HTTP one, since a `<script>` tag can
/// only GET; that is how SRS's console kicks a client.
pub fn effective_method(method: &Method, query: Option<&str>) -> Method {
    let Some(q) = query else {
        return method.clone();
    };
    // Only a callback the reply is wrapped for (see `guard`): the request is then JSONP.
    if !query_value(q, "callback").is_some_and(guard::valid_callback) {
        return method.clone();
    }
    match query_value(q, "method") {
        Some("GET") => Method::GET,
        Some("PUT") => Method::PUT,
        Some("POST") => Method::POST,
        Some("DELETE") => Method::DELETE,
        _ => method.clone(),
    }
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
        .route("/api/v1/rusages", get(procs::rusages))
        .route("/api/v1/self_proc_stats", get(procs::self_proc_stats))
        .route("/api/v1/system_proc_stats", get(procs::system_proc_stats))
        .route("/api/v1/meminfos", get(procs::meminfos))
        .route("/api/v1/authors", get(procs::authors))
        .route("/api/v1/features", get(procs::features))
        .route("/api/v1/requests", any(procs::requests))
        .route("/api/v1/clusters", get(procs::clusters))
        .route("/api/v1/tests/requests", any(procs::requests))
        .route("/api/v1/tests/errors", any(procs::test_errors))
        .route("/api/v1/tests/redirects", any(procs::test_redirects))
        .route("/api/v1/vhosts", get(resources::vhosts))
        .route("/api/v1/vhosts/", get(resources::vhosts))
        .route("/api/v1/vhosts/{id}", get(resources::vhost))
        .route("/api/v1/streams", get(resources::streams))
        .route("/api/v1/streams/", get(resources::streams))
        .route("/api/v1/streams/{id}", get(resources::stream))
        .route("/api/v1/clients", get(resources::clients))
        .route("/api/v1/clients/", get(resources::clients))
        // `any`: the method may come from JSONP's `method=` (see [`effective_method`]).
        .route("/api/v1/clients/{id}", any(resources::client_or_kick))
        .route("/api/v1/raw", get(raw::raw))
        .route("/api/v1/hls", get(services::hls))
        .route("/api/v1/dvrs", get(services::dvrs))
        .route("/api/v1/dvrs/{id}/{action}", any(services::dvr_action))
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
    ok_reply([
        (
            "urls",
            json!({
                "versions": "the version of SRS (compatible) and of sluice",
                "summaries": "the summary (pid, argv, cwd, cpu, memory, load, network) of the server and host",
                "rusages": "the rusage of the server",
                "self_proc_stats": "the self process stats",
                "system_proc_stats": "the system process stats",
                "meminfos": "the meminfo of system",
                "authors": "the license and authors",
                "features": "the supported features",
                "requests": "the request itself, for http debug",
                "vhosts": "all vhosts or one: /api/v1/vhosts/{id}",
                "streams": "all streams or one: /api/v1/streams/{id}; paged by ?start=&count= (default count 10, as SRS 7.0.128+)",
                "clients": "all clients or one: /api/v1/clients/{id}; DELETE (or JSONP method=DELETE) kicks it; paged by ?start=&count= (default count 10, as SRS 7.0.128+)",
                "raw": "raw api: ?rpc=raw shows the raw api config, ?rpc=reload reloads the config file",
                "clusters": "origin cluster query: ?vhost=&app=&stream= answered from the local streams",
            }),
        ),
        (
            "tests",
            json!({
                "requests": "show the request info",
                "errors": "always return an error 100",
                "redirects": "always redirect to /api/v1/tests/errors",
            }),
        ),
    ])
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

/// SRS's fields carry [`SRS_COMPAT_VERSION`] (the SRS release whose API this answers
/// like); sluice's own version is under `sluice`.
async fn versions(State(_ctx): State<Arc<Context>>) -> Response {
    let v = env!("CARGO_PKG_VERSION");
    let [major, minor, revision] = version_parts(v);
    let (smajor, sminor, srevision) = SRS_COMPAT_VERSION;
    ok_reply([(
        "data",
        json!({
            "major": smajor,
            "minor": sminor,
            "revision": srevision,
            "version": srs_compat_version(),
            "sluice": { "major": major, "minor": minor, "revision": revision, "version": v },
        }),
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
        // SRS 7: start = max(0, atoi), count = max(1, atoi).
        assert_eq!(page(None), (0, 10));
        assert_eq!(page(Some("start=1&count=")), (1, 10));
        assert_eq!(page(Some("start=2&count=1")), (2, 1));
        assert_eq!(page(Some("start=-1&count=0")), (0, 1));
        assert_eq!(page(Some("count=abc")), (0, 1));
        assert_eq!(page(Some("count=20")), (0, 20));
        assert_eq!(page(Some("count=12abc&start=3x")), (3, 12));
        assert_eq!(page(Some("count=-5")), (0, 1));
        assert_eq!(atoi("99999999999999999999999"), i64::MAX);
    }

    #[test]
    fn jsonp_method_overrides_only_with_a_callback() {
        let m = |q: Option<&str>| effective_method(&Method::GET, q);
        assert_eq!(m(Some("callback=cb&method=DELETE")), Method::DELETE);
        assert_eq!(m(Some("method=DELETE&callback=cb")), Method::DELETE);
        assert_eq!(m(Some("callback=cb&method=POST")), Method::POST);
        assert_eq!(m(Some("callback=cb&method=PUT")), Method::PUT);
        assert_eq!(m(Some("method=DELETE")), Method::GET);
        assert_eq!(m(Some("callback=&method=DELETE")), Method::GET);
        assert_eq!(m(Some("callback=alert(1)&method=DELETE")), Method::GET);
        assert_eq!(m(Some("callback=cb&method=PATCH")), Method::GET);
        assert_eq!(m(None), Method::GET);
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
        // As SRS: HTTP 200 with the code in the body, except unknown paths and logins.
        assert_eq!(
            ApiError::ClientNotFound("x".into()).status(),
            StatusCode::OK
        );
        assert_eq!(ApiError::RawDisabled("x").status(), StatusCode::OK);
        assert_eq!(
            ApiError::NoSuchApi("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(ApiError::Unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ApiError::RawDisabled("x").code(), 1061);
        assert_eq!(ApiError::TestError.code(), 100);
    }
}
