//! The web console (`/console/`), the player and publisher pages (`/players/`) and the
//! landing page of the HTTP server's root, all embedded in the binary so that a fresh
//! sluice shows something useful in a browser with no files on disk and nothing loaded
//! from the internet. docs/console.md describes the pages.
//!
//! On the HTTP server these are a fallback: a file under `http_server.dir` with the same
//! path wins (an operator who copied SRS's console to `dir/console/` keeps it), and the
//! landing page shows only when the root has no `index.html`. On the API port they are
//! plain routes, outside the API's auth: the pages hold no data, and the console asks the
//! API (with the operator's credentials) for everything it shows.
//!
//! The JavaScript players are the bulk of the bytes, so they are embedded gzipped too
//! (made by scripts/vendor-players.sh) and sent compressed to every browser that accepts
//! it; their file names carry their versions, so browsers may cache them for good. The
//! console's own files are small and change with sluice: they carry an ETag instead.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::config::{Config, DEFAULT_VHOST};
use crate::context::Context;

/// The hls.js build the pages load (see scripts/vendor-players.sh).
pub const HLS_JS: &str = "/console/vendor/hls-1.7.4.light.min.js";
/// The mpegts.js build the pages load.
pub const MPEGTS_JS: &str = "/console/vendor/mpegts-1.8.2.min.js";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// The same bytes gzipped, for the large files.
    gzipped: Option<&'static [u8]>,
    /// Versioned name: cache for a year, never revalidate.
    immutable: bool,
}

macro_rules! asset {
    ($path:expr, $ct:expr, $file:expr) => {
        Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $file)),
            gzipped: None,
            immutable: false,
        }
    };
}

macro_rules! vendored {
    ($path:expr, $file:expr) => {
        Asset {
            path: $path,
            content_type: "application/javascript",
            body: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/assets/vendor/",
                $file
            )),
            gzipped: Some(include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/assets/vendor/",
                $file,
                ".gz"
            ))),
            immutable: true,
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "application/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Every embedded file by URL path. `/` (the landing page) is served only as the
/// server root's fallback, see [`fallback`].
static ASSETS: &[Asset] = &[
    asset!("/", HTML, "landing.html"),
    asset!("/console/", HTML, "console/index.html"),
    asset!("/console/console.js", JS, "console/console.js"),
    asset!("/console/sluice.css", CSS, "console/sluice.css"),
    asset!("/players/", HTML, "players/index.html"),
    asset!("/players/player.js", JS, "players/player.js"),
    asset!("/players/publisher.html", HTML, "players/publisher.html"),
    asset!("/players/publisher.js", JS, "players/publisher.js"),
    asset!("/players/whep.html", HTML, "players/whep.html"),
    asset!("/players/whep.js", JS, "players/whep.js"),
    asset!("/players/whip.html", HTML, "players/whip.html"),
    asset!("/players/whip.js", JS, "players/whip.js"),
    vendored!(HLS_JS, "hls-1.7.4.light.min.js"),
    vendored!(MPEGTS_JS, "mpegts-1.8.2.min.js"),
    asset!(
        "/console/vendor/LICENSE.hls.js",
        TEXT,
        "vendor/LICENSE.hls.js"
    ),
    asset!(
        "/console/vendor/LICENSE.mpegts.js",
        TEXT,
        "vendor/LICENSE.mpegts.js"
    ),
    asset!(
        "/console/vendor/LICENSE.mpegts.js.bundled.txt",
        TEXT,
        "vendor/LICENSE.mpegts.js.bundled.txt"
    ),
];

/// The console's settings endpoint, answered from the running config.
const CONFIG_PATH: &str = "/console/config.json";

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// A strong ETag of an asset: FNV-1a 64 of its bytes, computed once per asset.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for &b in a.body {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
                format!("\"{h:016x}\"")
            })
            .collect()
    });
    ASSETS
        .iter()
        .position(|a| a.path == asset.path)
        .and_then(|i| tags.get(i))
        .map_or("\"\"", String::as_str)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            // `gzip;q=0` refuses it.
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// What the pages may load and talk to: scripts and styles from sluice only (so a name that
/// slipped past escaping still runs nothing), the API and the media wherever the operator
/// points them, blob: for the players' MediaSource and worker; and no framing by other
/// sites, as the console's buttons kick clients and reload the config.
const PAGE_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; media-src * blob:; worker-src 'self' blob:; connect-src *; \
frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

fn serve_asset(asset: &Asset, method: &Method, headers: &HeaderMap) -> Response {
    let tag = etag(asset);
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, asset.content_type)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::ETAG, tag)
        .header(header::VARY, "Accept-Encoding");
    if asset.content_type == HTML {
        builder = builder
            .header(header::CONTENT_SECURITY_POLICY, PAGE_POLICY)
            .header(header::X_FRAME_OPTIONS, "SAMEORIGIN");
    }
    builder = if asset.immutable {
        builder.header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
    } else {
        builder.header(header::CACHE_CONTROL, "no-cache")
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if not_modified {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    let body: &'static [u8] = match asset.gzipped {
        Some(gz) if accepts_gzip(headers) => {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            gz
        }
        _ => asset.body,
    };
    builder = builder.header(header::CONTENT_LENGTH, body.len());
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    builder.body(body).unwrap_or_default()
}

fn redirect(to: &'static str) -> Response {
    let mut r = (StatusCode::MOVED_PERMANENTLY, "301 Moved Permanently\n").into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

/// The page SRS's own console links as "Preview" (`srs_player.html` next to its console).
const SRS_PLAYER_PATH: &str = "/players/srs_player.html";

/// SRS's console previews a stream with `/players/srs_player.html?vhost=&app=&stream=NAME.flv
/// &server=&port=&schema=`: sent on to our player with the HTTP-FLV URL those name. Only
/// characters a host, port or stream path holds are kept, so the Location header cannot
/// carry anything else.
fn srs_player(query: &str) -> Response {
    let clean = |k: &str, default: &str| -> String {
        let v = crate::http::api::query_value(query, k).unwrap_or(default);
        v.chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-._~/:[]".contains(*c))
            .collect()
    };
    let schema = match clean("schema", "http").as_str() {
        "https" => "https",
        _ => "http",
    };
    let server = clean("server", "127.0.0.1");
    let port = clean("port", "8080");
    let app = clean("app", "live");
    let stream = clean("stream", "livestream.flv");
    let url = format!("{schema}://{server}:{port}/{app}/{stream}");
    // The URL goes in a query value: its ':' and '/' are escaped.
    let encoded: String = url
        .bytes()
        .map(|b| match b {
            b':' => "%3A".to_string(),
            b'/' => "%2F".to_string(),
            b'[' => "%5B".to_string(),
            b']' => "%5D".to_string(),
            _ => char::from(b).to_string(),
        })
        .collect();
    let mut r = (StatusCode::FOUND, "302 Found\n").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/players/?url={encoded}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The port of a listen address, or null when that listener is off.
fn port_or_null(enabled: bool, port: u16) -> Value {
    if enabled {
        json!(port)
    } else {
        Value::Null
    }
}

/// What the pages need to find the API and build play URLs: the listeners' ports and
/// the HTTP-FLV mount and HLS state of each vhost (what players use anyway; no secret).
/// `same_origin_api`: whether the API answers on the port that served this.
pub fn settings(config: &Config, same_origin_api: bool) -> Value {
    let vhosts: Vec<Value> = config
        .vhosts
        .iter()
        .filter(|v| v.enabled)
        .map(|v| {
            json!({
                "name": v.name,
                "default": v.name == DEFAULT_VHOST,
                "flv_mount": v.http_remux.enabled.then(|| v.http_remux.mount.clone()),
                "hls": v.hls.enabled,
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "api": {
            "port": port_or_null(config.http_api.enabled, config.http_api.listen.port()),
            "same_origin": same_origin_api,
            "crossdomain": config.http_api.crossdomain,
        },
        "http_port": port_or_null(config.http_server.enabled, config.http_server.listen.port()),
        "rtmp_ports": config.listen.iter().map(|a| a.port()).collect::<Vec<_>>(),
        "vhosts": vhosts,
        "players": { "hls": HLS_JS, "flv": MPEGTS_JS },
    })
}

fn settings_response(config: &Config, same_origin_api: bool, method: &Method) -> Response {
    let body = serde_json::to_vec(&settings(config, same_origin_api)).unwrap_or_default();
    let len = body.len();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::CONTENT_LENGTH, len)
        .body(if *method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(body)
        })
        .unwrap_or_default()
}

/// What the pages answer for `path` on a listener; None when the path is not ours.
fn answer(config: &Config, same_origin_api: bool, parts: &Parts, root: bool) -> Option<Response> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return None;
    }
    let path = parts.uri.path();
    match path {
        "/console" | "/console/index.html" => Some(redirect("/console/")),
        "/players" | "/players/index.html" => Some(redirect("/players/")),
        SRS_PLAYER_PATH => Some(srs_player(parts.uri.query().unwrap_or(""))),
        CONFIG_PATH => Some(settings_response(config, same_origin_api, &parts.method)),
        "/" if !root => None,
        _ => find(path).map(|a| serve_asset(a, &parts.method, &parts.headers)),
    }
}

/// The method, URI and headers of a request whose path may be one of the pages, kept to
/// answer it after the file server had it; None for every other path, so that HLS and
/// file requests pay nothing for the console.
pub fn head_of(parts: &Parts) -> Option<Parts> {
    let path = parts.uri.path();
    let ours = path == "/" || path.starts_with("/console") || path.starts_with("/players");
    if !ours {
        return None;
    }
    let mut head = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone())
        .body(())
        .unwrap_or_default()
        .into_parts()
        .0;
    head.headers = parts.headers.clone();
    Some(head)
}

/// The HTTP server's fallback, called with a request that `http_server.dir` answered
/// with 404: the embedded page at that path (the landing page at `/`), or None.
pub fn fallback(ctx: &Context, parts: &Parts) -> Option<Response> {
    let config = ctx.config();
    // Both listeners on one address: the API is on this very port.
    let same_origin =
        config.http_api.enabled && config.http_api.listen == config.http_server.listen;
    answer(&config, same_origin, parts, true)
}

/// The console and player pages on the API's own port (as SRS serves its console on
/// 1985), outside the API's auth; the root stays the API's.
pub fn api_router(ctx: Arc<Context>) -> Router {
    async fn on_api(State(ctx): State<Arc<Context>>, req: Request) -> Response {
        let (parts, _) = req.into_parts();
        answer(&ctx.config(), true, &parts, false)
            .unwrap_or_else(|| (StatusCode::NOT_FOUND, "404 Not Found\n").into_response())
    }
    Router::new()
        .route("/console", get(on_api))
        .route("/console/", get(on_api))
        .route("/console/{*rest}", get(on_api))
        .route("/players", get(on_api))
        .route("/players/", get(on_api))
        .route("/players/{*rest}", get(on_api))
        .with_state(ctx)
}

#[cfg(test)]
mod tests {
    #[test]
    fn srs_consoles_preview_goes_to_our_player() {
        let r = super::srs_player(
            "vhost=__defaultVhost__&app=live&stream=cam.flv&server=10.0.0.1&port=8080&autostart=true&schema=http",
        );
        assert_eq!(r.status(), axum::http::StatusCode::FOUND);
        assert_eq!(
            r.headers()[axum::http::header::LOCATION],
            "/players/?url=http%3A%2F%2F10.0.0.1%3A8080%2Flive%2Fcam.flv"
        );
        // Nothing but URL characters reaches the header.
        let r = super::srs_player("stream=a%0d%0aSet-Cookie:x\"<>&server=h");
        assert_eq!(
            r.headers()[axum::http::header::LOCATION],
            "/players/?url=http%3A%2F%2Fh%3A8080%2Flive%2Fa0d0aSet-Cookie%3Ax"
        );
    }

    use super::*;
    use axum::http::Request as HttpRequest;

    fn parts(method: Method, path: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = HttpRequest::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    async fn body_of(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec()
    }

    #[test]
    fn gzip_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("hv"),
            );
            m
        };
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(accepts_gzip(&h("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&h("*")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn assets_types_caching_and_gzip() {
        let config = Config::default();
        let get = |path: &str, hs: &[(&str, &str)]| {
            answer(&config, false, &parts(Method::GET, path, hs), true).expect(path)
        };
        let r = get("/console/", &[]);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], HTML);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp")
            .contains("script-src 'self'"));
        let tag = r.headers()[header::ETAG]
            .to_str()
            .expect("etag")
            .to_string();
        assert!(String::from_utf8(body_of(r).await)
            .expect("utf-8")
            .contains("console.js"));
        // Revalidation with the ETag: 304 and no body.
        let r = get("/console/", &[("if-none-match", &tag)]);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(body_of(r).await.is_empty());
        assert_eq!(
            get("/console/console.js", &[]).headers()[header::CONTENT_TYPE],
            JS
        );
        assert_eq!(
            get("/console/sluice.css", &[]).headers()[header::CONTENT_TYPE],
            CSS
        );

        // The players: gzipped when accepted, plain otherwise, cached for good.
        let plain = get(HLS_JS, &[]);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert!(plain.headers()[header::CACHE_CONTROL]
            .to_str()
            .expect("cc")
            .contains("immutable"));
        let plain = body_of(plain).await;
        let gz = get(HLS_JS, &[("accept-encoding", "gzip, br")]);
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        let gz = body_of(gz).await;
        assert!(
            gz.len() < plain.len() / 2,
            "gzip {} of {}",
            gz.len(),
            plain.len()
        );
        assert_eq!(gz.get(..2), Some(&[0x1f, 0x8b][..]), "gzip magic");

        // HEAD: headers only.
        let r = answer(&config, false, &parts(Method::HEAD, MPEGTS_JS, &[]), true).expect("head");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(body_of(r).await.is_empty());
    }

    #[test]
    fn routing() {
        let config = Config::default();
        let ans =
            |m: Method, path: &str, root: bool| answer(&config, false, &parts(m, path, &[]), root);
        let r = ans(Method::GET, "/console", true).expect("redirect");
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(r.headers()[header::LOCATION], "/console/");
        assert!(ans(Method::GET, "/", true).is_some());
        // The API port's root stays the API's.
        assert!(ans(Method::GET, "/", false).is_none());
        assert!(ans(Method::GET, "/console/nope.js", true).is_none());
        assert!(ans(Method::POST, "/console/", true).is_none());
        assert!(ans(Method::GET, "/live/s.flv", true).is_none());
    }

    #[test]
    fn settings_name_ports_and_mounts() {
        let mut config = Config::default();
        config.http_api.enabled = true;
        config.http_server.enabled = true;
        let mut v = crate::config::VhostConfig::new(DEFAULT_VHOST);
        v.http_remux.enabled = true;
        config.vhosts = vec![v];
        let s = settings(&config, false);
        assert_eq!(s["api"]["port"], 1985);
        assert_eq!(s["http_port"], 8080);
        assert_eq!(s["api"]["same_origin"], false);
        assert_eq!(s["vhosts"][0]["flv_mount"], "[vhost]/[app]/[stream].flv");
        assert_eq!(s["players"]["hls"], HLS_JS);
        config.http_api.enabled = false;
        assert!(settings(&config, false)["api"]["port"].is_null());
    }

    #[test]
    fn the_player_script_loads_the_embedded_players() {
        let js = find("/players/player.js").expect("player.js").body;
        let js = std::str::from_utf8(js).expect("utf-8");
        assert!(js.contains(HLS_JS) && js.contains(MPEGTS_JS));
        assert!(find(HLS_JS).is_some() && find(MPEGTS_JS).is_some());
    }

    #[test]
    fn every_page_refers_only_to_embedded_files() {
        // A page that names a file we do not embed would 404 in the browser.
        for a in ASSETS.iter().filter(|a| a.content_type == HTML) {
            let html = std::str::from_utf8(a.body).expect("utf-8 page");
            for attr in ["src=\"", "href=\""] {
                for piece in html.split(attr).skip(1) {
                    let url = piece.split('"').next().unwrap_or("");
                    if url.starts_with('#') || url.is_empty() || url.starts_with("data:") {
                        continue;
                    }
                    assert!(
                        !url.contains("://") && !url.starts_with("//"),
                        "{}: external reference {url}",
                        a.path
                    );
                    let base = a.path.rsplit_once('/').map_or("", |(d, _)| d);
                    let abs = if url.starts_with('/') {
                        url.to_string()
                    } else {
                        format!("{base}/{url}")
                    };
                    let abs = abs.split(['?', '#']).next().unwrap_or("");
                    let known = find(abs).is_some()
                        || abs == "/console"
                        || abs == "/players"
                        || abs == CONFIG_PATH;
                    assert!(known, "{}: {url} is not embedded", a.path);
                }
            }
        }
    }
}
