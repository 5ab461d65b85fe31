//! Directive tree → typed `Config`, validating every value.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::known;
use super::parser::Directive;
use super::types::*;
use super::ConfigError;

// One module per family of directives; all private: the only way in is [`build`].
mod bandcheck;
mod cluster;
mod dvr;
mod ffmpeg;
mod hls;
mod hooks;
mod http;
mod rtc;
mod srt;

/// Bounds that keep typos like an extra zero from turning into absurd behaviour.
const MAX_MAX_CONNECTIONS: u64 = 1_000_000;
const MAX_QUEUE_SECONDS: f64 = 3600.0;
const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// A week: longer than any scheduled start a player could sensibly wait for.
const MAX_UNPUBLISHED_SECS: u64 = 7 * 24 * 3600;
const MAX_MW_LATENCY_MS: u64 = 10_000;

pub(super) fn invalid(d: &Directive, message: impl Into<String>) -> ConfigError {
    let mut message = message.into();
    if d.end_line != d.line {
        message.push_str(&format!(
            " (is a \";\" missing at the end of line {}?)",
            d.line
        ));
    }
    ConfigError::Invalid {
        file: d.file.to_string(),
        line: d.line,
        directive: d.name.clone(),
        message,
    }
}

pub(super) fn unknown(d: &Directive, context: &str) -> ConfigError {
    ConfigError::UnknownDirective {
        file: d.file.to_string(),
        line: d.line,
        name: d.name.clone(),
        context: context.to_string(),
    }
}

pub(super) fn warn_unimplemented(warnings: &mut Vec<String>, d: &Directive, scope: &str) {
    warnings.push(format!(
        "{}:{}: {scope}{}: known SRS directive, not implemented by sluice yet; ignored",
        d.file, d.line, d.name
    ));
}

/// A second occurrence of a single-valued directive in one scope is ignored with a
/// warning, as SRS keeps the first (its `get(name)` returns the first match): `check`
/// answers false for it and the caller skips it. The warnings are collected per thread
/// while [`build`] runs and end up in `Config::warnings`.
#[derive(Default)]
pub(super) struct Seen(HashMap<String, (String, u32)>);

thread_local! {
    static DUPLICATES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most duplicate warnings kept from one build: a generated config repeating a line
/// thousands of times gets one line saying so, not thousands.
const MAX_DUPLICATE_WARNINGS: usize = 100;

impl Seen {
    /// True the first time `d`'s name is seen in this scope.
    pub(super) fn check(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        self.check_as(d, &d.name)
    }

    /// Like `check`, for a directive that has several spellings sharing one `key`.
    pub(super) fn check_as(&mut self, d: &Directive, key: &str) -> Result<bool, ConfigError> {
        if let Some((file, line)) = self.0.get(key) {
            let msg = format!(
                "{}:{}: {}: duplicate directive, ignored: the first one (at {file}:{line}) is used, as SRS does",
                d.file, d.line, d.name
            );
            DUPLICATES.with(|w| {
                let mut w = w.borrow_mut();
                if w.len() < MAX_DUPLICATE_WARNINGS {
                    w.push(msg);
                } else if w.len() == MAX_DUPLICATE_WARNINGS {
                    w.push("more duplicate directives ignored (warnings stop here)".into());
                }
            });
            return Ok(false);
        }
        self.0.insert(key.to_string(), (d.file.to_string(), d.line));
        Ok(true)
    }
}

/// Takes the duplicate warnings of the build that ran on this thread.
fn take_duplicates() -> Vec<String> {
    DUPLICATES.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

pub(super) fn no_block(d: &Directive) -> Result<(), ConfigError> {
    if d.block {
        return Err(invalid(d, "does not take a { } block"));
    }
    Ok(())
}

pub(super) fn need_block(d: &Directive, args: usize) -> Result<(), ConfigError> {
    if !d.block {
        return Err(invalid(d, "expected a { } block"));
    }
    if d.args.len() != args {
        return Err(invalid(
            d,
            format!(
                "expected {args} argument(s) before \"{{\", got {}",
                d.args.len()
            ),
        ));
    }
    Ok(())
}

pub(super) fn one_arg(d: &Directive) -> Result<&str, ConfigError> {
    no_block(d)?;
    match d.args.as_slice() {
        [one] => Ok(one),
        args => Err(invalid(
            d,
            format!("expected exactly one value, got {}", args.len()),
        )),
    }
}

pub(super) fn bad_value(d: &Directive, v: &str, expected: &str) -> ConfigError {
    invalid(d, format!("invalid value \"{v}\" (expected {expected})"))
}

pub(super) fn flag(d: &Directive) -> Result<bool, ConfigError> {
    match one_arg(d)? {
        "on" => Ok(true),
        "off" => Ok(false),
        v => Err(bad_value(d, v, "on or off")),
    }
}

pub(super) fn integer(d: &Directive, lo: u64, hi: u64, unit: &str) -> Result<u64, ConfigError> {
    let v = one_arg(d)?;
    let expected = format!("an integer {lo}..={hi}{unit}");
    let n: u64 = if v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse().map_err(|_| bad_value(d, v, &expected))?
    } else {
        return Err(bad_value(d, v, &expected));
    };
    if n < lo || n > hi {
        return Err(invalid(
            d,
            format!("value {n} out of range (expected {lo}..={hi}{unit})"),
        ));
    }
    Ok(n)
}

fn millis(d: &Directive, lo: u64, hi: u64) -> Result<Duration, ConfigError> {
    integer(d, lo, hi, " milliseconds").map(Duration::from_millis)
}

fn seconds(d: &Directive) -> Result<f64, ConfigError> {
    positive_seconds(d, MAX_QUEUE_SECONDS)
}

/// A plain decimal number of seconds in (0, max]: no sign, exponent, inf or nan.
pub(super) fn positive_seconds(d: &Directive, max: f64) -> Result<f64, ConfigError> {
    let v = one_arg(d)?;
    let expected = format!("seconds, a number > 0 and <= {max}");
    let ok_chars = v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let n: f64 = match v.parse() {
        Ok(n) if ok_chars => n,
        _ => return Err(bad_value(d, v, &expected)),
    };
    if !(n > 0.0 && n <= max) {
        return Err(invalid(
            d,
            format!("value {v} out of range (expected {expected})"),
        ));
    }
    Ok(n)
}

fn chunk_size(d: &Directive) -> Result<u32, ConfigError> {
    let n = integer(
        d,
        u64::from(MIN_CHUNK_SIZE),
        u64::from(MAX_CHUNK_SIZE),
        " bytes",
    )?;
    u32::try_from(n).map_err(|_| invalid(d, "value out of range"))
}

fn time_jitter(d: &Directive) -> Result<TimeJitter, ConfigError> {
    match one_arg(d)? {
        "full" => Ok(TimeJitter::Full),
        "zero" => Ok(TimeJitter::Zero),
        "off" => Ok(TimeJitter::Off),
        v => Err(bad_value(d, v, "full, zero or off")),
    }
}

pub(super) fn path(d: &Directive) -> Result<PathBuf, ConfigError> {
    let v = one_arg(d)?;
    if v.is_empty() {
        return Err(invalid(d, "empty path"));
    }
    Ok(PathBuf::from(v))
}

/// `1935` (all IPv4 interfaces), `127.0.0.1:1935`, `[::]:1935`.
pub(super) fn endpoint(d: &Directive, v: &str) -> Result<SocketAddr, ConfigError> {
    const EXPECTED: &str = "PORT, IPV4:PORT or [IPV6]:PORT";
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = v.parse().map_err(|_| bad_value(d, v, EXPECTED))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    v.parse().map_err(|_| bad_value(d, v, EXPECTED))
}

struct Builder {
    cfg: Config,
    seen: Seen,
    listen_given: bool,
    /// Whether `srs_log_tank` was written (see [`daemon_log_default`]).
    tank_given: bool,
}

/// SRS's default tank is `file`: a daemon's stdout and stderr go to /dev/null, so with
/// `daemon on` and no `srs_log_tank` the log goes to `srs_log_file` (SRS's default
/// `./objs/srs.log`, relative to the working directory) rather than nowhere. In the
/// foreground sluice keeps the console. A daemon told `srs_log_tank console` loses its
/// log: said with a warning.
fn daemon_log_default(b: &mut Builder) {
    if !b.cfg.daemon {
        return;
    }
    if !b.tank_given {
        b.cfg.log.tank = LogTank::File;
    } else if b.cfg.log.tank == LogTank::Console {
        b.cfg.warnings.push(
            "daemon on with srs_log_tank console: a daemon's console is /dev/null, so no log \
             is kept (use srs_log_tank file)"
                .to_string(),
        );
    }
}

/// Turns the expanded directive tree into a validated `Config`.
pub fn build(tree: &[Directive]) -> Result<Config, ConfigError> {
    take_duplicates();
    let built = build_tree(tree);
    let duplicates = take_duplicates();
    let mut cfg = built?;
    cfg.warnings.extend(duplicates);
    Ok(cfg)
}

fn build_tree(tree: &[Directive]) -> Result<Config, ConfigError> {
    let mut b = Builder {
        cfg: Config {
            vhosts: Vec::new(),
            listen: Vec::new(),
            ..Config::default()
        },
        seen: Seen::default(),
        listen_given: false,
        tank_given: false,
    };
    let mut vhost_lines: HashMap<String, (String, u32)> = HashMap::new();
    for d in tree {
        match d.name.as_str() {
            "vhost" => {
                need_block(d, 1)?;
                let name = d.args.first().map(String::as_str).unwrap_or_default();
                if name.is_empty() {
                    return Err(invalid(d, "empty vhost name"));
                }
                if let Some((file, line)) = vhost_lines.get(name) {
                    // SRS serves the first block of a name.
                    b.cfg.warnings.push(format!(
                        "{}:{}: vhost \"{name}\" defined twice, ignored: the first one (at {file}:{line}) is used, as SRS does",
                        d.file, d.line
                    ));
                    continue;
                }
                vhost_lines.insert(name.to_string(), (d.file.to_string(), d.line));
                let v = vhost(d, name, &mut b.cfg.warnings)?;
                b.cfg.vhosts.push(v);
            }
            "rtmp" => {
                need_block(d, 0)?;
                for c in &d.children {
                    match c.name.as_str() {
                        "listen" | "chunk_size" => b.rtmp_directive(c)?,
                        _ => return Err(unknown(c, " in rtmp")),
                    }
                }
            }
            _ => b.root_directive(d)?,
        }
    }
    if !b.listen_given {
        b.cfg.listen = Config::default().listen;
    }
    daemon_log_default(&mut b);
    if !b.cfg.vhosts.iter().any(|v| v.name == DEFAULT_VHOST) {
        b.cfg.vhosts.push(VhostConfig::new(DEFAULT_VHOST));
    }
    Ok(b.cfg)
}

impl Builder {
    /// `listen` and `chunk_size`, valid both at the top level (SRS ≤ 6) and in `rtmp { }`
    /// (SRS 7); they share one duplicate check so the two spellings cannot disagree.
    fn rtmp_directive(&mut self, d: &Directive) -> Result<(), ConfigError> {
        match d.name.as_str() {
            "listen" => {
                // Several `listen` lines add up, like nginx.
                no_block(d)?;
                if d.args.is_empty() {
                    return Err(invalid(d, "expected at least one address"));
                }
                for a in &d.args {
                    let addr = endpoint(d, a)?;
                    if self.cfg.listen.contains(&addr) {
                        return Err(invalid(d, format!("address {addr} listed twice")));
                    }
                    self.cfg.listen.push(addr);
                }
                self.listen_given = true;
            }
            _ => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                self.cfg.chunk_size = chunk_size(d)?;
            }
        }
        Ok(())
    }

    fn root_directive(&mut self, d: &Directive) -> Result<(), ConfigError> {
        let name = d.name.as_str();
        if name == "listen" || name == "chunk_size" {
            return self.rtmp_directive(d);
        }
        if known::ROOT.contains(&name) {
            warn_unimplemented(&mut self.cfg.warnings, d, "");
            return Ok(());
        }
        match name {
            "http_api" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                http::http_api(d, &mut self.cfg.http_api, &mut self.cfg.warnings)?;
            }
            // `http_stream` is the SRS 1 name, which SRS still renames on load.
            "http_server" | "http_stream" => {
                if !self.seen.check_as(d, "http_server")? {
                    return Ok(());
                }
                http::http_server(d, &mut self.cfg.http_server, &mut self.cfg.warnings)?;
            }
            "rtmps" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                http::tls_listen(d, &mut self.cfg.rtmps, "rtmps")?;
            }
            "srt_server" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                srt::srt_server(d, &mut self.cfg.srt_server, &mut self.cfg.warnings)?;
            }
            "heartbeat" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                hooks::heartbeat(d, &mut self.cfg.heartbeat)?;
            }
            "rtc_server" => {
                self.seen.check(d)?;
                rtc::rtc_server(d, &mut self.cfg.rtc_server, &mut self.cfg.warnings)?;
            }
            "ff_log_dir" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                self.cfg.ff_log.dir = path(d)?;
            }
            "ff_log_level" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                self.cfg.ff_log.level = ffmpeg::ff_log_level(d)?;
            }
            "max_connections" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                let n = integer(d, 1, MAX_MAX_CONNECTIONS, "")?;
                self.cfg.max_connections =
                    usize::try_from(n).map_err(|_| invalid(d, "value out of range"))?;
            }
            "max_connections_per_ip" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                let n = integer(d, 0, MAX_MAX_CONNECTIONS, "")?;
                self.cfg.max_connections_per_ip =
                    usize::try_from(n).map_err(|_| invalid(d, "value out of range"))?;
            }
            "pithy_print_ms" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                self.cfg.pithy_print = millis(d, 0, MAX_PITHY_PRINT_MS)?;
            }
            "daemon" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                self.cfg.daemon = flag(d)?;
            }
            "pid" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                self.cfg.pid = path(d)?;
            }
            "srs_log_tank" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                self.tank_given = true;
                self.cfg.log.tank = match one_arg(d)? {
                    "console" => LogTank::Console,
                    "file" => LogTank::File,
                    v => return Err(bad_value(d, v, "console or file")),
                };
            }
            "srs_log_level" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                self.cfg.log.level = match one_arg(d)? {
                    "verbose" => LogLevel::Verbose,
                    "info" => LogLevel::Info,
                    "trace" => LogLevel::Trace,
                    "warn" => LogLevel::Warn,
                    "error" => LogLevel::Error,
                    v => return Err(bad_value(d, v, "verbose, info, trace, warn or error")),
                };
            }
            "srs_log_file" => {
                if !self.seen.check(d)? {
                    return Ok(());
                }
                self.cfg.log.file = path(d)?;
            }
            _ => return Err(unknown(d, "")),
        }
        Ok(())
    }
}

/// SRS 1/2's vhost-level edge directives, which SRS 3+ moves into `cluster { }` on load
/// (`srs_config_transform_vhost`).
const LEGACY_CLUSTER: &[&str] = &["mode", "origin", "token_traverse", "debug_srs_upnode"];

/// The vhost's `cluster` block with SRS 1/2's vhost-level `mode`, `origin`,
/// `token_traverse` and `debug_srs_upnode` moved into it, as SRS does on load (appended
/// to an existing `cluster { }`, where a repeated directive is then refused as usual);
/// None when the vhost has none of them. Said with a warning: the form is converted, not
/// ignored (ignoring it left an edge that never pulled).
fn legacy_cluster(vhost: &Directive, warnings: &mut Vec<String>) -> Option<Directive> {
    let legacy: Vec<&Directive> = vhost
        .children
        .iter()
        .filter(|c| LEGACY_CLUSTER.contains(&c.name.as_str()))
        .collect();
    let first = legacy.first()?;
    for c in &legacy {
        warnings.push(format!(
            "{}:{}: vhost.{}: SRS 1/2 vhost-level form, moved into cluster {{ }} as SRS does \
             on load; write it as cluster {{ {} ...; }}",
            c.file, c.line, c.name, c.name
        ));
    }
    let mut block = vhost
        .children
        .iter()
        .find(|c| c.name == "cluster")
        .cloned()
        .unwrap_or_else(|| Directive {
            name: "cluster".into(),
            args: Vec::new(),
            children: Vec::new(),
            block: true,
            file: first.file.clone(),
            line: first.line,
            end_line: first.line,
        });
    block.children.extend(legacy.into_iter().cloned());
    Some(block)
}

fn vhost(
    d: &Directive,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<VhostConfig, ConfigError> {
    let mut v = VhostConfig::new(name);
    let mut seen = Seen::default();
    let ctx = format!(" in vhost {name}");
    // Pre-SRS-3 spellings, applied only where play/publish do not set the value.
    let mut legacy_mw: Option<Duration> = None;
    let mut legacy_first: Option<Duration> = None;
    let mut legacy_normal: Option<Duration> = None;
    let mut explicit = (false, false, false); // play.mw_latency, publish.firstpkt_timeout, publish.normal_timeout
    let legacy_cluster = legacy_cluster(d, warnings);
    if let Some(cluster_block) = &legacy_cluster {
        cluster::cluster(cluster_block, &mut v.cluster, warnings)?;
    }
    for c in &d.children {
        let n = c.name.as_str();
        if legacy_cluster.is_some() && (n == "cluster" || LEGACY_CLUSTER.contains(&n)) {
            continue;
        }
        if known::VHOST.contains(&n) {
            warn_unimplemented(warnings, c, "vhost.");
            continue;
        }
        // Several transcode (one per scope) and ingest (one per id) blocks are allowed.
        if n == "transcode" || n == "ingest" {
            ffmpeg::vhost_directive(c, &mut v)?;
            continue;
        }
        if !seen.check(c)? {
            continue;
        }
        match n {
            "enabled" => v.enabled = flag(c)?,
            "chunk_size" => v.chunk_size = Some(chunk_size(c)?),
            "gop_cache" => v.gop_cache = flag(c)?,
            "queue_length" => v.queue_length = seconds(c)?,
            "time_jitter" => v.time_jitter = time_jitter(c)?,
            "tcp_nodelay" => v.tcp_nodelay = flag(c)?,
            "min_latency" => v.min_latency = flag(c)?,
            // SRS 1/2 spellings; SRS 3+ has them in `play` (which wins when both are given).
            "atc" => v.atc = flag(c)?,
            "atc_auto" => v.atc_auto = flag(c)?,
            "bandcheck" => bandcheck::bandcheck(c, &mut v.bandcheck)?,
            "mw_latency" => legacy_mw = Some(millis(c, 0, MAX_MW_LATENCY_MS)?),
            "publish_1stpkt_timeout" => legacy_first = Some(millis(c, 1, MAX_TIMEOUT_MS)?),
            "publish_normal_timeout" => legacy_normal = Some(millis(c, 1, MAX_TIMEOUT_MS)?),
            "play" => {
                need_block(c, 0)?;
                explicit.0 = play(c, &mut v.play, warnings)?;
            }
            "publish" => {
                need_block(c, 0)?;
                let (f, nt) = publish(c, &mut v.publish, warnings)?;
                explicit.1 = f;
                explicit.2 = nt;
            }
            "http_remux" => http::http_remux(c, &mut v.http_remux, warnings)?,
            "hls" => hls::hls(c, &mut v.hls, warnings)?,
            "dash" => hls::dash(c, &mut v.dash, warnings)?,
            "cluster" => cluster::cluster(c, &mut v.cluster, warnings)?,
            "forward" => cluster::forward(c, &mut v.forward)?,
            "http_hooks" => hooks::http_hooks(c, &mut v.http_hooks)?,
            "refer" => hooks::refer(c, &mut v.refer)?,
            "refer_publish" | "refer_play" => hooks::legacy_refer(c, &mut v.refer)?,
            "security" => hooks::security(c, &mut v.security)?,
            "dvr" => dvr::dvr(c, &mut v.dvr)?,
            "tls" => v.tls = Some(http::vhost_tls(c)?),
            "srt" => srt::vhost_srt(c, &mut v.srt, warnings)?,
            "rtc" => rtc::vhost_rtc(c, &mut v.rtc, warnings)?,
            _ => return Err(unknown(c, &ctx)),
        }
    }
    if let (Some(mw), false) = (legacy_mw, explicit.0) {
        v.play.mw_latency = mw;
    }
    if let (Some(t), false) = (legacy_first, explicit.1) {
        v.publish.firstpkt_timeout = t;
    }
    if let (Some(t), false) = (legacy_normal, explicit.2) {
        v.publish.normal_timeout = t;
    }
    warnings.extend(hls::dash_warnings(name, &v.hls, &v.dash));
    Ok(v)
}

/// Returns whether `mw_latency` was set.
fn play(
    d: &Directive,
    p: &mut PlayConfig,
    warnings: &mut Vec<String>,
) -> Result<bool, ConfigError> {
    let mut seen = Seen::default();
    let mut mw_set = false;
    for c in &d.children {
        let n = c.name.as_str();
        if known::PLAY.contains(&n) {
            warn_unimplemented(warnings, c, "vhost.play.");
            continue;
        }
        if !seen.check(c)? {
            continue;
        }
        match n {
            "gop_cache" => p.gop_cache = Some(flag(c)?),
            "queue_length" => p.queue_length = Some(seconds(c)?),
            "time_jitter" => p.time_jitter = Some(time_jitter(c)?),
            "atc" => p.atc = Some(flag(c)?),
            "atc_auto" => p.atc_auto = Some(flag(c)?),
            "unpublished_timeout" => {
                p.unpublished_timeout =
                    integer(c, 0, MAX_UNPUBLISHED_SECS, " seconds").map(Duration::from_secs)?
            }
            "mw_latency" => {
                p.mw_latency = millis(c, 0, MAX_MW_LATENCY_MS)?;
                mw_set = true;
            }
            _ => return Err(unknown(c, " in play")),
        }
    }
    Ok(mw_set)
}

/// Returns whether (firstpkt_timeout, normal_timeout) were set.
fn publish(
    d: &Directive,
    p: &mut PublishConfig,
    warnings: &mut Vec<String>,
) -> Result<(bool, bool), ConfigError> {
    let mut seen = Seen::default();
    let mut set = (false, false);
    for c in &d.children {
        let n = c.name.as_str();
        if known::PUBLISH.contains(&n) {
            warn_unimplemented(warnings, c, "vhost.publish.");
            continue;
        }
        if !seen.check(c)? {
            continue;
        }
        match n {
            "firstpkt_timeout" => {
                p.firstpkt_timeout = millis(c, 1, MAX_TIMEOUT_MS)?;
                set.0 = true;
            }
            "normal_timeout" => {
                p.normal_timeout = millis(c, 1, MAX_TIMEOUT_MS)?;
                set.1 = true;
            }
            _ => return Err(unknown(c, " in publish")),
        }
    }
    Ok(set)
}

/// Checks the `[name]` variables of a path or URL template against those SRS substitutes
/// there, so a typo such as `[steam]` fails here instead of producing odd file names.
pub(super) fn template_vars(
    d: &Directive,
    template: &str,
    known: &[&str],
) -> Result<(), ConfigError> {
    let mut rest = template;
    while let Some(open) = rest.find('[') {
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find(']') else {
            return Err(invalid(d, format!("unclosed \"[\" in \"{template}\"")));
        };
        let name = after.get(..close).unwrap_or_default();
        if !known.contains(&name) {
            let list: Vec<String> = known.iter().map(|k| format!("[{k}]")).collect();
            return Err(invalid(
                d,
                format!(
                    "unknown variable \"[{name}]\" in \"{template}\" (known: {})",
                    list.join(" ")
                ),
            ));
        }
        rest = after.get(close + 1..).unwrap_or_default();
    }
    Ok(())
}
