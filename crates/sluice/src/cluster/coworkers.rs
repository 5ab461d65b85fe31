//! SRS's origin-cluster coworker query: `GET http://COWORKER/api/v1/clusters?vhost=&ip=&app=
//! &stream=&coworker=` answers `{"code":0,"data":{"origin":{"ip","port",...}}}` when that
//! origin publishes the stream, `"origin": null` when it does not. sluice asks with it and
//! answers it (`http/api/procs.rs::clusters`), so SRS and sluice origins mix.

use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use crate::config::HookUrl;
use crate::hub::StreamKey;

/// A coworker that does not answer within this is skipped (SRS's hook timeout is 30 s, far
/// too long for a player waiting; a healthy origin answers in milliseconds).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The query URL SRS's `redirect_to_origin_cluster` builds.
pub fn query_url(coworker: &str, key: &StreamKey, ip: &str) -> String {
    format!(
        "http://{coworker}/api/v1/clusters?vhost={}&ip={ip}&app={}&stream={}&coworker={coworker}",
        key.vhost, key.app, key.stream
    )
}

/// `HOST:PORT` of the RTMP service of the origin that has the stream, from a coworker's
/// reply; `None` for `origin: null`, a refusal or anything malformed.
pub fn parse_reply(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("code").and_then(Value::as_i64) != Some(0) {
        return None;
    }
    let origin = v.get("data")?.get("origin")?;
    let ip = origin.get("ip")?.as_str()?;
    let port = origin.get("port")?.as_u64()?;
    if ip.is_empty() || port == 0 || port > u64::from(u16::MAX) || ip.contains(['/', ' ']) {
        return None;
    }
    Some(if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    })
}

/// Asks one coworker; errors (unreachable, time-out, bad reply) read as "not there".
pub async fn query(coworker: &str, key: &StreamKey) -> Result<Option<String>, String> {
    let host = coworker.rsplit_once(':').map_or(coworker, |(h, _)| h);
    let url = HookUrl::parse(&query_url(coworker, key, host)).map_err(|e| e.to_string())?;
    let answer = crate::hooks::client::request(Method::GET, &url, None, QUERY_TIMEOUT)
        .await
        .map_err(|e| format!("coworker {coworker}: {e}"))?;
    if answer.status != 200 {
        return Err(format!("coworker {coworker}: HTTP {}", answer.status));
    }
    Ok(parse_reply(&answer.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srs_replies() {
        // What SRS 5/6 answers (srs_app_coworkers.cpp dumps) for a stream it has.
        let srs = br#"{"code":0,"data":{"query":{"ip":"10.0.0.2","vhost":"__defaultVhost__","app":"live","stream":"s"},"origin":{"ip":"10.0.0.1","port":19350,"vhost":"__defaultVhost__","api":"10.0.0.1:1985","routers":["10.0.0.1:1985"]}}}"#;
        assert_eq!(parse_reply(srs).as_deref(), Some("10.0.0.1:19350"));
        let none = br#"{"code":0,"data":{"query":{},"origin":null}}"#;
        assert_eq!(parse_reply(none), None);
        assert_eq!(
            parse_reply(br#"{"code":0,"data":{"origin":{"ip":"::1","port":1935}}}"#).as_deref(),
            Some("[::1]:1935")
        );
        for bad in [
            &br#"{"code":1,"data":{"origin":{"ip":"a","port":1}}}"#[..],
            br#"{"code":0,"data":{"origin":{"ip":"","port":1}}}"#,
            br#"{"code":0,"data":{"origin":{"ip":"a","port":70000}}}"#,
            br#"{"code":0,"data":{"origin":{"ip":"a/b","port":1}}}"#,
            b"not json",
            b"",
        ] {
            assert_eq!(parse_reply(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn url_is_srs_form() {
        let key = StreamKey {
            vhost: "__defaultVhost__".into(),
            app: "live".into(),
            stream: "s".into(),
        };
        assert_eq!(
            query_url("127.0.0.1:1985", &key, "127.0.0.1"),
            "http://127.0.0.1:1985/api/v1/clusters?vhost=__defaultVhost__&ip=127.0.0.1&app=live&stream=s&coworker=127.0.0.1:1985"
        );
    }
}
