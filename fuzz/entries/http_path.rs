//! URL paths and RTMP URLs: static file sanitising, HTTP-FLV mount resolution, tcUrl parsing.
//!
//! The body of the `http_path` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/http_path/` and `fuzz/regressions/http_path/` under plain `cargo test`.

use sluice::config::Config;
use std::sync::OnceLock;

const CONF: &str = r#"
listen 1935;
http_server { enabled on; listen 8080; dir ./objs/nginx/html; }
vhost __defaultVhost__ {
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
vhost example.com {
    http_remux { enabled on; mount /live/[stream].flv; }
}
vhost other.net {
    http_remux { enabled on; mount [vhost]/x-[app]/[stream]-y.flv; }
}
"#;

fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| Config::parse(CONF, "fuzz.conf").expect("fixed fuzz config parses"))
}

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Up to three fields separated by NUL: path, query/app, host/stream.
    let mut parts = text.splitn(3, '\0');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let c = parts.next().unwrap_or("");
    if let Ok(segs) = sluice::http::static_files::sanitize(a) {
        for s in &segs {
            assert!(!s.is_empty() && s != "." && s != "..");
            assert!(!s.contains(['/', '\\', '\0']));
        }
    }
    let host = if c.is_empty() { None } else { Some(c) };
    let _ = sluice::http::flv_live::resolve(config(), a, b, host);
    let req = sluice::stream_url::parse(a, b, c);
    let _ = req.url();
    let _ = sluice::stream_url::mask_param(&req.param);
}
