//! WebRTC signalling on the HTTP API listener, at SRS's paths:
//!
//! - WHIP (RFC 9725) `POST /rtc/v1/whip/?app=APP&stream=NAME` and WHEP
//!   `POST /rtc/v1/whep/?app=APP&stream=NAME`: the body is an SDP offer
//!   (`application/sdp`); the answer is `201 Created` with the SDP answer and a `Location`
//!   whose `DELETE` ends the session.
//! - SRS's JSON exchange `POST /rtc/v1/publish/` and `/rtc/v1/play/`:
//!   `{api, streamurl, sdp, tid}` → `{code, server, sdp, sessionid}`.
//!
//! Both forms go through [`open`]: the vhost's `rtc` switches, the name bounds, the same
//! admission as RTMP (security rules, refer, on_publish/on_play with the query as
//! `param`), then an answer from str0m and the session handed to the UDP task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use str0m::change::SdpOffer;
use str0m::{Candidate, Rtc};
use tracing::info;

use crate::context::Context;
use crate::hooks::{self, HookRequest};
use crate::hub::{SourceSettings, StreamKey};
use crate::rtc::session::SessionGuard;
use crate::rtc::{NewSession, SessionRole, MAX_SDP_BYTES};
use crate::stats::ClientKind;

pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/rtc/v1/whip/", any(whip))
        .route("/rtc/v1/whip", any(whip))
        .route("/rtc/v1/whep/", any(whep))
        .route("/rtc/v1/whep", any(whep))
        .route("/rtc/v1/publish/", any(srs_publish))
        .route("/rtc/v1/play/", any(srs_play))
        .with_state(ctx)
}

/// Why an offer was refused: the status and a line for the client.
type Refused = (StatusCode, String);

fn cors(r: Response) -> Response {
    super::static_files::set_cors(
        r,
        "POST, DELETE, OPTIONS",
        "Content-Type, Authorization",
        "Location",
    )
}

use super::api::query_value;

/// Percent-decoding of a query value (names in a URL may be escaped).
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn whip(State(ctx): State<Arc<Context>>, req: Request) -> Response {
    cors(whip_whep(ctx, req, true).await)
}

async fn whep(State(ctx): State<Arc<Context>>, req: Request) -> Response {
    cors(whip_whep(ctx, req, false).await)
}

struct Offer<'a> {
    publish: bool,
    peer: SocketAddr,
    query: &'a str,
    app: String,
    stream: String,
    vhost: Option<String>,
    host: Option<&'a str>,
    referer: &'a str,
    sdp: &'a str,
}

async fn whip_whep(ctx: Arc<Context>, req: Request, publish: bool) -> Response {
    let peer = super::peer_of(&req).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().unwrap_or("").to_string();
    let path = parts.uri.path().to_string();
    match parts.method {
        Method::OPTIONS => return StatusCode::NO_CONTENT.into_response(),
        Method::DELETE => {
            let Some(id) = query_value(&query, "session") else {
                return (StatusCode::BAD_REQUEST, "no session= in the resource URL\n")
                    .into_response();
            };
            return if ctx.rtc.remove(&unescape(id)).await {
                StatusCode::OK.into_response()
            } else {
                (StatusCode::NOT_FOUND, "no such session\n").into_response()
            };
        }
        Method::POST => {}
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
    let body = match axum::body::to_bytes(body, MAX_SDP_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            info!("rtc offer from {peer} refused: body over {MAX_SDP_BYTES} bytes or unreadable");
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("SDP offer over {MAX_SDP_BYTES} bytes\n"),
            )
                .into_response();
        }
    };
    let Ok(sdp) = std::str::from_utf8(&body) else {
        return (StatusCode::BAD_REQUEST, "SDP offer is not UTF-8\n").into_response();
    };
    let offer = Offer {
        publish,
        peer,
        query: &query,
        app: query_value(&query, "app").map(unescape).unwrap_or_default(),
        stream: query_value(&query, "stream")
            .map(unescape)
            .unwrap_or_default(),
        vhost: query_value(&query, "vhost").map(unescape),
        host: parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.rsplit_once(':').map(|(h, _)| h).unwrap_or(h)),
        referer: parts
            .headers
            .get(header::REFERER)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
        sdp,
    };
    match open(&ctx, &offer).await {
        Ok((answer, id)) => {
            let location = format!(
                "{path}?action=delete&app={}&stream={}&session={id}",
                offer.app, offer.stream
            );
            Response::builder()
                .status(StatusCode::CREATED)
                .header(header::CONTENT_TYPE, "application/sdp")
                .header(header::LOCATION, location)
                .body(Body::from(answer))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Err((code, why)) => (code, format!("{why}\n")).into_response(),
    }
}

/// SRS's `{api, streamurl, sdp, tid}` body.
#[derive(serde::Deserialize)]
struct SrsRequest {
    #[serde(default)]
    streamurl: String,
    #[serde(default)]
    sdp: String,
}

async fn srs_publish(State(ctx): State<Arc<Context>>, req: Request) -> Response {
    cors(srs_exchange(ctx, req, true).await)
}

async fn srs_play(State(ctx): State<Arc<Context>>, req: Request) -> Response {
    cors(srs_exchange(ctx, req, false).await)
}

/// SRS's error code for a refused WebRTC exchange (`ERROR_RTC_SDP_EXCHANGE`): its
/// players show the code; the reason goes to our log.
const SRS_ERROR_RTC: u32 = 5012;

async fn srs_exchange(ctx: Arc<Context>, req: Request, publish: bool) -> Response {
    let peer = super::peer_of(&req).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (parts, body) = req.into_parts();
    match parts.method {
        Method::OPTIONS => return StatusCode::NO_CONTENT.into_response(),
        Method::POST => {}
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
    let reply = |code: u32, sdp: &str, sessionid: &str| {
        let body = serde_json::json!({
            "code": code,
            "server": crate::hooks::server_id(),
            "sdp": sdp,
            "sessionid": sessionid,
        });
        (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_SDP_BYTES + 4096).await else {
        return reply(SRS_ERROR_RTC, "", "");
    };
    let Ok(r) = serde_json::from_slice::<SrsRequest>(&body) else {
        return reply(SRS_ERROR_RTC, "", "");
    };
    // webrtc://host[:port]/app/stream[?query]
    let url = r.streamurl.as_str();
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut segs = path.split('/');
    let host = segs
        .next()
        .map(|h| h.rsplit_once(':').map(|(h, _)| h).unwrap_or(h));
    let segs: Vec<&str> = segs.filter(|s| !s.is_empty()).collect();
    let (app, stream) = match segs.as_slice() {
        [.., app, stream] => (app.to_string(), stream.to_string()),
        _ => {
            info!("rtc exchange from {peer} refused: bad streamurl {url:?}");
            return reply(SRS_ERROR_RTC, "", "");
        }
    };
    let offer = Offer {
        publish,
        peer,
        query,
        app,
        stream,
        vhost: query_value(query, "vhost").map(unescape),
        host,
        referer: "",
        sdp: &r.sdp,
    };
    match open(&ctx, &offer).await {
        Ok((answer, id)) => reply(0, &answer, &id),
        Err((_, why)) => {
            info!("rtc exchange from {peer} refused: {why}");
            reply(SRS_ERROR_RTC, "", "")
        }
    }
}

/// Admits an offer and hands its session to the UDP task; returns the SDP answer and
/// the session id (the client id in `/api/v1/clients`).
async fn open(ctx: &Arc<Context>, o: &Offer<'_>) -> Result<(String, String), Refused> {
    let what = if o.publish { "publish" } else { "play" };
    let refuse = |code: StatusCode, why: String| {
        info!("rtc {what} from {} refused: {why}", o.peer);
        (code, why)
    };
    let Some(endpoint) = ctx.rtc.endpoint().cloned() else {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "rtc_server is not enabled".into(),
        ));
    };
    let bounds = crate::stream_url::check("app", &o.app, crate::stream_url::MAX_NAME_LEN)
        .and_then(|_| {
            crate::stream_url::check("stream name", &o.stream, crate::stream_url::MAX_NAME_LEN)
        })
        .and_then(|_| {
            crate::stream_url::check("query string", o.query, crate::stream_url::MAX_PARAM_LEN)
        });
    if let Err(e) = bounds {
        return Err(refuse(StatusCode::BAD_REQUEST, e.to_string()));
    }
    if o.app.is_empty() || o.stream.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "app= and stream= are required".into(),
        ));
    }
    let config = ctx.config();
    let wanted = o.vhost.as_deref().or(o.host).unwrap_or("");
    let Some(vhost) = config.resolve_vhost(wanted) else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            format!("vhost {wanted} is not served here"),
        ));
    };
    if !vhost.rtc.enabled {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("rtc is not enabled on vhost {}", vhost.name),
        ));
    }
    let key = StreamKey {
        vhost: vhost.name.clone(),
        app: o.app.clone(),
        stream: o.stream.clone(),
    };
    let existing = ctx.hub.get(&key);
    if !o.publish && !vhost.rtc.rtmp_to_rtc {
        // Without the bridge only a WebRTC publisher's stream plays over WebRTC.
        let rtc_published = existing
            .as_ref()
            .and_then(|s| s.publisher())
            .and_then(|p| ctx.clients.get(&p.client_id))
            .is_some_and(|c| c.state().kind == ClientKind::RtcPublish);
        if !rtc_published {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "stream {key} is not published over WebRTC and rtmp_to_rtc is off on vhost {}",
                    vhost.name
                ),
            ));
        }
    }
    drop(existing);
    let offer = SdpOffer::from_sdp_string(o.sdp)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("bad SDP offer: {e}")))?;
    let slot = ctx
        .rtc
        .reserve(config.rtc_server.max_handshakes)
        .map_err(|e| refuse(StatusCode::SERVICE_UNAVAILABLE, e))?;

    let cid = ctx.new_client_id();
    let tc_url = format!(
        "webrtc://{}/{}/{}",
        o.host.unwrap_or("localhost"),
        o.app,
        o.stream
    );
    let hook_req = HookRequest {
        client_id: cid.clone(),
        ip: o.peer.ip().to_canonical().to_string(),
        vhost: vhost.name.clone(),
        app: o.app.clone(),
        stream: o.stream.clone(),
        param: HookRequest::param_of(o.query),
        tc_url: tc_url.clone(),
        page_url: o.referer.to_string(),
    };
    let settings = SourceSettings {
        gop_cache: vhost.effective_gop_cache(),
        queue_length_ms: (vhost.effective_queue_length().max(0.0) * 1000.0) as u64,
    };
    let ip = o.peer.ip().to_canonical();
    // The stream exists before the hooks, as for RTMP, so they carry its id.
    let held = ctx.hub.source(&key, settings);
    let admitted = if o.publish {
        hooks::admit_publish(ctx, vhost, &hook_req, ip).await
    } else {
        hooks::admit_play(ctx, vhost, &hook_req, ip).await
    };
    if let Err(why) = admitted {
        drop(held);
        ctx.hub.release(&key);
        return Err(refuse(StatusCode::FORBIDDEN, why.0));
    }

    // A player's `Rtc` sends the RTP packets its stream's feed made once (RTP mode); a
    // publisher's gives whole frames (frame mode: str0m depacketizes).
    let mut builder = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(!o.publish)
        .set_crypto_provider(ctx.rtc.crypto());
    if let Some(cert) = ctx.rtc.dtls_cert() {
        builder = builder.set_dtls_cert(cert);
    }
    let mut rtc = builder
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    for ip in &endpoint.candidates {
        if let Ok(c) = Candidate::host(SocketAddr::new(*ip, endpoint.port), "udp") {
            rtc.add_local_candidate(c);
        }
    }
    let answer = match rtc.sdp_api().accept_offer(offer) {
        Ok(a) => a,
        Err(e) => {
            drop(held);
            ctx.hub.release(&key);
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("SDP offer not acceptable: {e}"),
            ));
        }
    };
    let ufrag = rtc.direct_api().local_ice_credentials().ufrag;

    let registration = ctx.clients.register(&cid, o.peer);
    let role = if o.publish {
        held.apply_pacing(vhost.pacing());
        held.set_atc_policy(crate::hub::AtcPolicy::of(vhost));
        if let Err(e) = held.publish(&cid) {
            drop(held);
            ctx.hub.release(&key);
            return Err(refuse(StatusCode::CONFLICT, e.to_string()));
        }
        // The pacing was applied above (`apply_pacing`: merged writes, or per video frame
        // under `min_latency on`); nothing here overrides it.
        SessionRole::Publisher {
            source: held.clone(),
        }
    } else {
        SessionRole::Player { settings }
    };
    registration.client.update(|c| {
        c.kind = if o.publish {
            ClientKind::RtcPublish
        } else {
            ClientKind::RtcPlay
        };
        c.stream = Some(key.clone());
        c.param = crate::stream_url::mask_param(o.query);
        c.raw_param = o.query.to_string();
        c.tc_url = tc_url;
        c.page_url = o.referer.to_string();
    });
    info!(
        "rtc {what} id={cid} ip={} stream={key} param={}",
        o.peer,
        crate::stream_url::mask_param(o.query)
    );
    let guard = SessionGuard {
        ctx: ctx.clone(),
        registration,
        hooks: vhost.http_hooks.clone(),
        hook_req,
        key: key.clone(),
        publishing: o.publish.then(|| held.clone()),
        started: Instant::now(),
        close_reason: "ended".into(),
    };
    drop(held);
    slot.keep();
    ctx.rtc
        .add(NewSession {
            id: cid.clone(),
            rtc,
            ufrag,
            key,
            role,
            guard,
        })
        .await
        .map_err(|e| refuse(StatusCode::SERVICE_UNAVAILABLE, e))?;
    Ok((answer.to_sdp_string(), cid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_found_and_unescaped() {
        let q = "app=live&stream=a%20b&token=x";
        assert_eq!(query_value(q, "app"), Some("live"));
        assert_eq!(
            query_value(q, "stream").map(unescape).as_deref(),
            Some("a b")
        );
        assert_eq!(query_value(q, "vhost"), None);
        assert_eq!(unescape("%zz%4"), "%zz%4");
    }
}
