//! `vhost { cluster { } }` and `vhost { forward { } }` → typed config.

use super::{bad_value, flag, invalid, need_block, no_block, one_arg, unknown, Seen};
use crate::config::parser::Directive;
use crate::config::types::*;
use crate::config::ConfigError;

/// Directives of `cluster { }` SRS has and sluice ignores (origin clusters, HTTP-FLV edges).
const CLUSTER_UNIMPLEMENTED: &[&str] = &["debug_srs_upnode", "protocol", "follow_client"];

/// Most upstream servers one list may name: a typo guard, not a real limit.
const MAX_HOSTS: usize = 64;

/// `HOST`, `HOST:PORT` or `[V6]:PORT`, optionally after `rtmp://` or `rtmps://` (RTMP
/// over TLS to that server); only the shape is checked (names resolve later).
fn host_port(d: &Directive, v: &str) -> Result<String, ConfigError> {
    const EXPECTED: &str = "HOST, HOST:PORT or rtmps://HOST:PORT";
    let full = v;
    let (scheme, v) = crate::forward::relay::split_scheme(v);
    if v.is_empty() || v.contains('/') || v.chars().any(char::is_whitespace) {
        return Err(bad_value(d, full, EXPECTED));
    }
    let port = if let Some(rest) = v.strip_prefix('[') {
        let (_, after) = rest.split_once(']').ok_or(bad_value(d, v, EXPECTED))?;
        after.strip_prefix(':')
    } else {
        match v.matches(':').count() {
            0 => None,
            1 => v.split_once(':').map(|(_, p)| p),
            _ => return Err(bad_value(d, v, "HOST:PORT, with IPv6 in brackets")),
        }
    };
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(bad_value(d, full, EXPECTED)),
        }
    }
    Ok(match scheme {
        "rtmps" => format!("rtmps://{v}"),
        _ => v.to_string(),
    })
}

fn hosts(d: &Directive) -> Result<Vec<String>, ConfigError> {
    no_block(d)?;
    if d.args.is_empty() {
        return Err(invalid(d, "expected at least one HOST:PORT"));
    }
    if d.args.len() > MAX_HOSTS {
        return Err(invalid(d, format!("more than {MAX_HOSTS} servers")));
    }
    d.args.iter().map(|a| host_port(d, a)).collect()
}

pub(super) fn cluster(
    d: &Directive,
    c: &mut ClusterConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for x in &d.children {
        let n = x.name.as_str();
        if CLUSTER_UNIMPLEMENTED.contains(&n) {
            super::warn_unimplemented(warnings, x, "vhost.cluster.");
            continue;
        }
        if !seen.check(x)? {
            continue;
        }
        match n {
            "mode" => {
                c.mode = match one_arg(x)? {
                    "local" => ClusterMode::Local,
                    "remote" => ClusterMode::Remote,
                    v => return Err(bad_value(x, v, "local or remote")),
                }
            }
            "origin" => c.origins = hosts(x)?,
            // SRS writes `token_traverse on;`; a bare `token_traverse;` reads as on.
            "token_traverse" => {
                c.token_traverse = if x.args.is_empty() {
                    no_block(x)?;
                    true
                } else {
                    flag(x)?
                }
            }
            "origin_cluster" => c.origin_cluster = flag(x)?,
            "coworkers" => c.coworkers = hosts(x)?,
            "vhost" => c.upstream_vhost = Some(one_arg(x)?.to_string()),
            "redirect" => c.redirect = flag(x)?,
            "directory" => {
                let v = one_arg(x)?;
                if !v.starts_with("redis://") || v.len() <= "redis://".len() {
                    return Err(bad_value(x, v, "redis://HOST:PORT/DB"));
                }
                c.directory = Some(v.to_string());
            }
            "directory_ttl" => {
                let v = one_arg(x)?;
                match v.parse::<f64>() {
                    Ok(s) if (1.0..=3600.0).contains(&s) => {
                        c.directory_ttl_ms = (s * 1000.0) as u64
                    }
                    _ => return Err(bad_value(x, v, "seconds, 1 to 3600")),
                }
            }
            "advertise" => c.advertise = Some(host_port(x, one_arg(x)?)?),
            _ => return Err(unknown(x, " in cluster")),
        }
    }
    if c.mode == ClusterMode::Remote && c.origins.is_empty() {
        return Err(invalid(d, "mode remote needs at least one origin"));
    }
    if c.origin_cluster && c.mode == ClusterMode::Remote {
        warnings.push(format!(
            "{}:{}: origin_cluster applies to mode local only; ignored on an edge",
            d.file, d.line
        ));
    }
    Ok(())
}

pub(super) fn forward(d: &Directive, f: &mut ForwardConfig) -> Result<(), ConfigError> {
    // SRS 1/2's short form `forward HOST[:PORT]...;`, which SRS still reads as
    // `forward { enabled on; destination HOST[:PORT]...; }`.
    if !d.block && !d.args.is_empty() {
        if d.args.iter().any(|a| a == "on" || a == "off") {
            return Err(invalid(
                d,
                "`forward on|off;` is not a form: write forward { enabled on; destination HOST:PORT; } (or SRS 1/2's forward HOST:PORT;)",
            ));
        }
        f.enabled = true;
        f.destinations = hosts(d)?;
        return Ok(());
    }
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for x in &d.children {
        if !seen.check(x)? {
            continue;
        }
        match x.name.as_str() {
            "enabled" => f.enabled = flag(x)?,
            "destination" => f.destinations = hosts(x)?,
            "backend" => {
                let v = one_arg(x)?;
                if !v.starts_with("http://") || v.len() <= "http://".len() {
                    return Err(bad_value(
                        x,
                        v,
                        "an http:// URL (use a local proxy for https)",
                    ));
                }
                f.backend = Some(v.to_string());
            }
            _ => return Err(unknown(x, " in forward")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{ClusterMode, Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.conf")
    }

    /// SRS 1/2's `forward HOST...;` short form is `forward { enabled on; destination ...; }`.
    #[test]
    fn forward_short_form() {
        let c = parse("vhost v { forward 127.0.0.1:19350 10.0.0.2; }").unwrap();
        let f = &c.vhost("v").unwrap().forward;
        assert!(f.enabled);
        assert_eq!(f.destinations, ["127.0.0.1:19350", "10.0.0.2"]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(parse("vhost v { forward 127.0.0.1:0; }").is_err());
        assert!(parse("vhost v { forward; }").is_err());
    }

    #[test]
    fn edge_vhost() {
        let c = parse(
            "vhost v { cluster { mode remote; origin 10.0.0.1:1935 10.0.0.2 [::1]:19350; token_traverse on; } }",
        )
        .unwrap();
        let v = c.vhost("v").unwrap();
        assert_eq!(v.cluster.mode, ClusterMode::Remote);
        assert_eq!(
            v.cluster.origins,
            ["10.0.0.1:1935", "10.0.0.2", "[::1]:19350"]
        );
        assert!(v.cluster.token_traverse && v.cluster.is_edge());
        let d = c.vhost("__defaultVhost__").unwrap();
        assert_eq!(d.cluster.mode, ClusterMode::Local);
        assert!(!d.forward.enabled);
    }

    #[test]
    fn forward_vhost() {
        let c = parse(
            "vhost v { forward { enabled on; destination 127.0.0.1:1936 h:1937; backend http://127.0.0.1:8085/api/v1/forward; } }",
        )
        .unwrap();
        let f = &c.vhost("v").unwrap().forward;
        assert!(f.enabled);
        assert_eq!(f.destinations, ["127.0.0.1:1936", "h:1937"]);
        assert_eq!(
            f.backend.as_deref(),
            Some("http://127.0.0.1:8085/api/v1/forward")
        );
        let c = parse(
            "vhost v { forward { enabled on; destination rtmps://a.example:443 RTMP://b:1935; } }",
        )
        .unwrap();
        assert_eq!(
            c.vhost("v").unwrap().forward.destinations,
            ["rtmps://a.example:443", "b:1935"]
        );
    }

    #[test]
    fn srs_extras_warn() {
        let c = parse("vhost v { cluster { mode local; debug_srs_upnode off; protocol rtmp; } }")
            .unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    }

    #[test]
    fn origin_cluster_vhost() {
        let c = parse(
            "vhost v { cluster { mode local; origin_cluster on; coworkers 127.0.0.1:1985 b:1986; redirect on; directory redis://127.0.0.1:6379/0; directory_ttl 2; advertise 10.0.0.1:1935; vhost up.example; } }",
        )
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let cl = &c.vhost("v").unwrap().cluster;
        assert!(cl.origin_cluster && cl.redirect && cl.is_cluster_origin());
        assert_eq!(cl.coworkers, ["127.0.0.1:1985", "b:1986"]);
        assert_eq!(cl.directory.as_deref(), Some("redis://127.0.0.1:6379/0"));
        assert_eq!(cl.directory_ttl_ms, 2000);
        assert_eq!(cl.advertise.as_deref(), Some("10.0.0.1:1935"));
        assert_eq!(cl.upstream_vhost.as_deref(), Some("up.example"));
        let d = &c.vhost("__defaultVhost__").unwrap().cluster;
        assert!(!d.is_cluster_origin());
        assert_eq!(d.directory_ttl_ms, 10_000);
        for bad in [
            "vhost v { cluster { directory http://x; } }",
            "vhost v { cluster { directory_ttl 0; } }",
            "vhost v { cluster { origin_cluster maybe; } }",
            "vhost v { cluster { coworkers; } }",
            "vhost v { cluster { advertise a:0; } }",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn mistakes_are_errors() {
        for bad in [
            "vhost v { cluster { mode remote; } }",
            "vhost v { cluster { mode edge; } }",
            "vhost v { cluster { origin a:b; } }",
            "vhost v { cluster { origin a:0; } }",
            "vhost v { cluster { origin 1:2:3; } }",
            "vhost v { cluster { origin; } }",
            "vhost v { cluster { origin a/b; } }",
            "vhost v { cluster { orign a; } }",
            "vhost v { cluster { token_traverse maybe; } }",
            "vhost v { forward { destination; } }",
            "vhost v { forward { backend https://x/y; } }",
            "vhost v { forward { backend http://; } }",
            "vhost v { forward { enabled yes; } }",
            "vhost v { forward { destinaton a:1; } }",
            "vhost v { forward on; }",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
    }
}
