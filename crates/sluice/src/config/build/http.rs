//! `http_api { }`, `http_server { }` and `vhost { http_remux { } }` → typed config.

use super::{
    endpoint, flag, invalid, need_block, one_arg, path, template_vars, unknown, warn_unimplemented,
    Seen,
};
use crate::config::known;
use crate::config::parser::Directive;
use crate::config::types::*;
use crate::config::ConfigError;

fn listen(d: &Directive) -> Result<std::net::SocketAddr, ConfigError> {
    endpoint(d, one_arg(d)?)
}

/// `rtmps { }` and `https { }`: `enabled`, `listen`, `key`, `cert`. The files are read
/// (and checked against each other) when the server starts or reloads, not here, so
/// that `sluice -t` on another machine still checks the syntax.
pub(super) fn tls_listen(
    d: &Directive,
    t: &mut TlsListenConfig,
    scope: &str,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        seen.check(c)?;
        match c.name.as_str() {
            "enabled" => t.enabled = flag(c)?,
            "listen" => t.listen = listen(c)?,
            "key" => t.key = path(c)?,
            "cert" => t.cert = path(c)?,
            _ => return Err(unknown(c, &format!(" in {scope}"))),
        }
    }
    Ok(())
}

/// `vhost { tls { cert FILE; key FILE; } }`: both are required.
pub(super) fn vhost_tls(d: &Directive) -> Result<VhostTlsConfig, ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    let (mut key, mut cert) = (None, None);
    for c in &d.children {
        seen.check(c)?;
        match c.name.as_str() {
            "key" => key = Some(path(c)?),
            "cert" => cert = Some(path(c)?),
            _ => return Err(unknown(c, " in vhost.tls")),
        }
    }
    match (key, cert) {
        (Some(key), Some(cert)) => Ok(VhostTlsConfig { key, cert }),
        _ => Err(invalid(d, "needs both cert and key")),
    }
}

pub(super) fn http_api(
    d: &Directive,
    api: &mut HttpApiConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        let n = c.name.as_str();
        if known::HTTP_API.contains(&n) {
            warn_unimplemented(warnings, c, "http_api.");
            continue;
        }
        if !seen.check(c)? {
            continue;
        }
        match n {
            "https" => tls_listen(c, &mut api.https, "http_api.https")?,
            "enabled" => api.enabled = flag(c)?,
            "listen" => api.listen = listen(c)?,
            "crossdomain" => api.crossdomain = flag(c)?,
            "auth" => api.auth = auth(c)?,
            "raw_api" => api.raw_api = raw_api(c)?,
            _ => return Err(unknown(c, " in http_api")),
        }
    }
    Ok(())
}

/// Some only when enabled; then both names must be given, as HTTP Basic auth cannot work
/// with an empty user, and a ':' in the user would split differently on the wire.
fn auth(d: &Directive) -> Result<Option<HttpAuth>, ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    let mut enabled = false;
    let mut username = String::new();
    let mut password = String::new();
    for c in &d.children {
        if !seen.check(c)? {
            continue;
        }
        match c.name.as_str() {
            "enabled" => enabled = flag(c)?,
            "username" => {
                let v = one_arg(c)?;
                if v.contains(':') {
                    return Err(invalid(c, "must not contain \":\" (HTTP Basic auth)"));
                }
                username = v.to_string();
            }
            "password" => password = one_arg(c)?.to_string(),
            _ => return Err(unknown(c, " in http_api.auth")),
        }
    }
    if !enabled {
        return Ok(None);
    }
    if username.is_empty() || password.is_empty() {
        return Err(invalid(
            d,
            "enabled, but username or password is missing or empty",
        ));
    }
    Ok(Some(HttpAuth { username, password }))
}

fn raw_api(d: &Directive) -> Result<RawApiConfig, ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    let mut r = RawApiConfig::default();
    for c in &d.children {
        if !seen.check(c)? {
            continue;
        }
        match c.name.as_str() {
            "enabled" => r.enabled = flag(c)?,
            "allow_reload" => r.allow_reload = flag(c)?,
            "allow_query" => r.allow_query = flag(c)?,
            "allow_update" => r.allow_update = flag(c)?,
            _ => return Err(unknown(c, " in http_api.raw_api")),
        }
    }
    Ok(r)
}

pub(super) fn http_server(
    d: &Directive,
    s: &mut HttpServerConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        let n = c.name.as_str();
        if known::HTTP_SERVER.contains(&n) {
            warn_unimplemented(warnings, c, "http_server.");
            continue;
        }
        if !seen.check(c)? {
            continue;
        }
        match n {
            "enabled" => s.enabled = flag(c)?,
            "listen" => s.listen = listen(c)?,
            "dir" => s.dir = path(c)?,
            "crossdomain" => s.crossdomain = flag(c)?,
            "https" => tls_listen(c, &mut s.https, "http_server.https")?,
            _ => return Err(unknown(c, " in http_server")),
        }
    }
    Ok(())
}

pub(super) fn http_remux(
    d: &Directive,
    r: &mut HttpRemuxConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        let n = c.name.as_str();
        if known::HTTP_REMUX.contains(&n) {
            warn_unimplemented(warnings, c, "vhost.http_remux.");
            continue;
        }
        if n == "hstrs" {
            // SRS 2's switch for HTTP players triggering an edge's pull; SRS 3+ always
            // does it, and so does sluice.
            flag(c)?;
            warnings.push(format!(
                "{}:{}: vhost.http_remux.hstrs: always on (as in SRS 3+: an HTTP player makes an edge pull its origin); ignored",
                c.file, c.line
            ));
            continue;
        }
        if !seen.check(c)? {
            continue;
        }
        match n {
            "enabled" => r.enabled = flag(c)?,
            "mount" => r.mount = mount(c)?,
            "has_audio" => r.has_audio = flag(c)?,
            "has_video" => r.has_video = flag(c)?,
            "guess_has_av" => r.guess_has_av = flag(c)?,
            _ => return Err(unknown(c, " in http_remux")),
        }
    }
    Ok(())
}

/// SRS picks the remux format from the mount's extension: `.flv`, `.ts`, `.aac` or `.mp3`
/// (SRS 7 has no other); anything else is refused rather than served as something else.
fn mount(d: &Directive) -> Result<String, ConfigError> {
    let v = one_arg(d)?;
    if v.is_empty()
        || v.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(invalid(
            d,
            format!("invalid mount \"{v}\" (empty or has spaces)"),
        ));
    }
    if ![".flv", ".ts", ".aac", ".mp3"]
        .iter()
        .any(|ext| v.ends_with(ext))
    {
        return Err(invalid(
            d,
            format!(
                "\"{v}\": the mount must end with .flv, .ts, .aac or .mp3 (SRS's remux formats)"
            ),
        ));
    }
    // Without a '/' SRS would take the whole mount as a host name and serve nothing.
    if !v.contains('/') {
        return Err(invalid(
            d,
            format!("\"{v}\": expected a URL path such as /[app]/[stream].flv"),
        ));
    }
    template_vars(d, v, &["vhost", "app", "stream"])?;
    Ok(v.to_string())
}
