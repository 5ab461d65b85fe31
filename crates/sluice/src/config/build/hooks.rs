//! `vhost { http_hooks { } refer { } security { } }` and `heartbeat { }` → typed config.

use std::net::IpAddr;
use std::time::Duration;

use super::{
    flag, integer, invalid, need_block, no_block, one_arg, positive_seconds, unknown, Seen,
};
use crate::config::parser::Directive;
use crate::config::types::*;
use crate::config::ConfigError;

/// Longest heartbeat interval accepted (a typo guard).
const MAX_HEARTBEAT_SECONDS: f64 = 86_400.0;
/// Variables SRS replaces in an `on_hls_notify` URL.
const HLS_NOTIFY_VARS: &[&str] = &[
    "server_id",
    "service_id",
    "app",
    "stream",
    "ts_url",
    "param",
];

fn urls(d: &Directive) -> Result<Vec<HookUrl>, ConfigError> {
    no_block(d)?;
    if d.args.is_empty() {
        return Err(invalid(d, "expected at least one URL"));
    }
    d.args
        .iter()
        .map(|a| HookUrl::parse(a).map_err(|e| invalid(d, e.to_string())))
        .collect()
}

pub(super) fn http_hooks(d: &Directive, h: &mut HttpHooksConfig) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        if !seen.check(c)? {
            continue;
        }
        match c.name.as_str() {
            "enabled" => h.enabled = flag(c)?,
            "on_connect" => h.on_connect = urls(c)?,
            "on_close" => h.on_close = urls(c)?,
            "on_publish" => h.on_publish = urls(c)?,
            "on_unpublish" => h.on_unpublish = urls(c)?,
            "on_play" => h.on_play = urls(c)?,
            "on_stop" => h.on_stop = urls(c)?,
            "on_dvr" => h.on_dvr = urls(c)?,
            "on_hls" => h.on_hls = urls(c)?,
            "on_hls_notify" => {
                no_block(c)?;
                if c.args.is_empty() {
                    return Err(invalid(c, "expected at least one URL"));
                }
                for a in &c.args {
                    // The host part must already be valid; the variables may be anywhere.
                    HookUrl::parse(a).map_err(|e| invalid(c, e.to_string()))?;
                    super::template_vars(c, a, HLS_NOTIFY_VARS)?;
                }
                h.on_hls_notify = c.args.clone();
            }
            "timeout_ms" => {
                h.timeout = Duration::from_millis(integer(c, 1, MAX_HOOK_TIMEOUT_MS, " ms")?)
            }
            _ => return Err(unknown(c, " in http_hooks")),
        }
    }
    Ok(())
}

fn domains(d: &Directive) -> Result<Vec<String>, ConfigError> {
    no_block(d)?;
    if d.args.iter().any(|a| a.is_empty()) {
        return Err(invalid(d, "empty domain"));
    }
    Ok(d.args.clone())
}

pub(super) fn refer(d: &Directive, r: &mut ReferConfig) -> Result<(), ConfigError> {
    if !d.block {
        // SRS 2's `refer DOMAINS;`, which SRS rewrites to `refer { enabled on; all ...; }`.
        r.enabled = true;
        r.all = Some(domains(d)?);
        return Ok(());
    }
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        if !seen.check(c)? {
            continue;
        }
        match c.name.as_str() {
            "enabled" => r.enabled = flag(c)?,
            "all" => r.all = Some(domains(c)?),
            "publish" => r.publish = Some(domains(c)?),
            "play" => r.play = Some(domains(c)?),
            _ => return Err(unknown(c, " in refer")),
        }
    }
    Ok(())
}

/// SRS 2's `refer_publish` / `refer_play` at vhost level.
pub(super) fn legacy_refer(d: &Directive, r: &mut ReferConfig) -> Result<(), ConfigError> {
    let list = Some(domains(d)?);
    r.enabled = true;
    if d.name == "refer_publish" {
        r.publish = list;
    } else {
        r.play = list;
    }
    Ok(())
}

fn access_target(d: &Directive, v: &str) -> Result<AccessTarget, ConfigError> {
    const EXPECTED: &str = "all, an IPv4 or IPv6 address, or ADDRESS/PREFIX";
    if v == "all" {
        return Ok(AccessTarget::All);
    }
    let bad = || invalid(d, format!("invalid value \"{v}\" (expected {EXPECTED})"));
    match v.split_once('/') {
        None => v.parse::<IpAddr>().map(AccessTarget::Ip).map_err(|_| bad()),
        Some((a, p)) => {
            let addr: IpAddr = a.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    invalid(
                        d,
                        format!("invalid prefix length \"{p}\" (expected 0..={max})"),
                    )
                })?;
            Ok(AccessTarget::Cidr(network_of(addr, prefix), prefix))
        }
    }
}

pub(super) fn security(d: &Directive, s: &mut SecurityConfig) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        match c.name.as_str() {
            "enabled" => {
                if !seen.check(c)? {
                    continue;
                }
                s.enabled = flag(c)?;
            }
            "allow" | "deny" => {
                no_block(c)?;
                let [scope, target] = c.args.as_slice() else {
                    return Err(invalid(
                        c,
                        "expected two values: publish|play and all|IP|CIDR",
                    ));
                };
                let scope = match scope.as_str() {
                    "publish" => AccessScope::Publish,
                    "play" => AccessScope::Play,
                    v => {
                        return Err(invalid(
                            c,
                            format!("invalid value \"{v}\" (expected publish or play)"),
                        ))
                    }
                };
                s.rules.push(SecurityRule {
                    allow: c.name == "allow",
                    scope,
                    target: access_target(c, target)?,
                });
            }
            _ => return Err(unknown(c, " in security")),
        }
    }
    Ok(())
}

pub(super) fn heartbeat(d: &Directive, h: &mut HeartbeatConfig) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        if !seen.check(c)? {
            continue;
        }
        match c.name.as_str() {
            "enabled" => h.enabled = flag(c)?,
            "interval" => {
                // Whole milliseconds, so 9.3 is exactly SRS's 9300 ms.
                let secs = positive_seconds(c, MAX_HEARTBEAT_SECONDS)?;
                h.interval = Duration::from_millis((secs * 1000.0).round() as u64)
            }
            "url" => h.url = HookUrl::parse(one_arg(c)?).map_err(|e| invalid(c, e.to_string()))?,
            "device_id" => h.device_id = one_arg(c)?.to_string(),
            "summaries" => h.summaries = flag(c)?,
            "ports" => h.ports = flag(c)?,
            _ => return Err(unknown(c, " in heartbeat")),
        }
    }
    Ok(())
}
