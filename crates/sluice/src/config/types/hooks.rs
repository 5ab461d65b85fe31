//! Typed config of the access side: HTTP hooks (`vhost.http_hooks`), referer checks
//! (`vhost.refer`), allow/deny rules (`vhost.security`) and the heartbeat (`heartbeat`).
//!
//! Defaults are SRS's except the hook time-out, which SRS does not let one set (its HTTP client
//! waits 30 s); ours is short so a dead hook server fails a client quickly.

use std::net::IpAddr;
use std::time::Duration;

/// An `http://host[:port]/path` URL, split once at load time. Only plain HTTP: TLS to a hook
/// server needs a local proxy (see docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookUrl {
    /// As written in the config (for logs).
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Path and query, always starting with `/`.
    pub path: String,
    /// `https://`: the call goes over TLS, the server's certificate checked against the
    /// system trust store (or `SSL_CERT_FILE`).
    pub secure: bool,
}

/// Why a hook URL was refused. Config errors show it after the directive; `on_hls_notify`
/// logs it for URLs built at run time. Each message starts with the URL as written, so the
/// operator sees which one of several hooks is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookUrlError {
    #[error("\"{0}\": expected an http:// or https:// URL")]
    NotHttp(String),
    #[error("\"{0}\": URL has spaces or control characters")]
    BadCharacters(String),
    #[error("\"{0}\": user:password in hook URLs is not supported")]
    Credentials(String),
    #[error("\"{0}\": unclosed \"[\" in the host")]
    UnclosedBracket(String),
    #[error("\"{0}\": no host")]
    NoHost(String),
    #[error("\"{url}\": invalid port \"{port}\"")]
    InvalidPort { url: String, port: String },
}

impl HookUrl {
    /// Splits `http[s]://host[:port][/path]`.
    pub fn parse(v: &str) -> Result<HookUrl, HookUrlError> {
        let lower = v.to_ascii_lowercase();
        let secure = lower.starts_with("https://");
        let skip = if secure { 8 } else { 7 };
        let Some(rest) = v
            .get(skip..)
            .filter(|_| secure || lower.starts_with("http://"))
        else {
            return Err(HookUrlError::NotHttp(v.to_string()));
        };
        if v.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(HookUrlError::BadCharacters(v.to_string()));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(HookUrlError::Credentials(v.to_string()));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| HookUrlError::UnclosedBracket(v.to_string()))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(HookUrlError::NoHost(v.to_string()));
        }
        let port = match port {
            None if secure => 443,
            None => 80,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                HookUrlError::InvalidPort {
                    url: v.to_string(),
                    port: p.to_string(),
                }
            })?,
        };
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(HookUrl {
            url: v.to_string(),
            host: host.to_string(),
            port,
            path,
            secure,
        })
    }

    /// `host:port` as the HTTP Host header wants it (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Default time-out of one hook call (connect, request and response together).
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_millis(5_000);
/// Longest hook time-out accepted: SRS's own fixed client time-out.
pub const MAX_HOOK_TIMEOUT_MS: u64 = 30_000;

/// `vhost { http_hooks { } }`. Each event holds the URLs called for it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHooksConfig {
    /// SRS default: off.
    pub enabled: bool,
    pub on_connect: Vec<HookUrl>,
    pub on_close: Vec<HookUrl>,
    pub on_publish: Vec<HookUrl>,
    pub on_unpublish: Vec<HookUrl>,
    pub on_play: Vec<HookUrl>,
    pub on_stop: Vec<HookUrl>,
    pub on_dvr: Vec<HookUrl>,
    pub on_hls: Vec<HookUrl>,
    /// GET templates: `[server_id] [service_id] [app] [stream] [ts_url] [param]` are replaced
    /// per segment, so the URL is only checked to be http:// here.
    pub on_hls_notify: Vec<String>,
    /// Per URL called (not SRS: `timeout_ms`). Default 5 s.
    pub timeout: Duration,
}

impl Default for HttpHooksConfig {
    fn default() -> Self {
        HttpHooksConfig {
            enabled: false,
            on_connect: Vec::new(),
            on_close: Vec::new(),
            on_publish: Vec::new(),
            on_unpublish: Vec::new(),
            on_play: Vec::new(),
            on_stop: Vec::new(),
            on_dvr: Vec::new(),
            on_hls: Vec::new(),
            on_hls_notify: Vec::new(),
            timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

/// `vhost { refer { } }`: the page a client says it was embedded in (`pageUrl`) must be on one
/// of the listed domains. A list that is not given checks nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReferConfig {
    /// SRS default: off.
    pub enabled: bool,
    /// Checked at connect, for every client.
    pub all: Option<Vec<String>>,
    pub publish: Option<Vec<String>>,
    pub play: Option<Vec<String>>,
}

/// What a security rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessScope {
    Publish,
    Play,
}

/// Who a security rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTarget {
    All,
    Ip(IpAddr),
    /// Network address (host bits cleared) and prefix length.
    Cidr(IpAddr, u8),
}

/// As written in a rule (`publish`, `play`), for messages.
impl std::fmt::Display for AccessScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccessScope::Publish => "publish",
            AccessScope::Play => "play",
        })
    }
}

/// As written in a rule (`all`, an address, `net/prefix`), for messages.
impl std::fmt::Display for AccessTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccessTarget::All => f.write_str("all"),
            AccessTarget::Ip(a) => write!(f, "{a}"),
            AccessTarget::Cidr(a, p) => write!(f, "{a}/{p}"),
        }
    }
}

/// `addr` with the bits past `prefix` cleared (prefix clamped to the address size).
pub fn network_of(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityRule {
    /// true for `allow`, false for `deny`.
    pub allow: bool,
    pub scope: AccessScope,
    pub target: AccessTarget,
}

/// `vhost { security { } }`, rules in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityConfig {
    /// SRS default: off.
    pub enabled: bool,
    pub rules: Vec<SecurityRule>,
}

/// SRS `get_heartbeat_*` defaults.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(9_300);
const DEFAULT_HEARTBEAT_URL: &str = "http://127.0.0.1:8085/api/v1/servers";
const DEFAULT_HEARTBEAT_DEVICE_ID: &str = "my-srs-device";

/// Top-level `heartbeat { }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// SRS default: off.
    pub enabled: bool,
    /// SRS default: 9.3 s.
    pub interval: Duration,
    pub url: HookUrl,
    pub device_id: String,
    /// Include the system summaries. SRS default: off.
    pub summaries: bool,
    /// Include the listen addresses. SRS default: off.
    pub ports: bool,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            enabled: false,
            interval: DEFAULT_HEARTBEAT_INTERVAL,
            url: HookUrl {
                url: DEFAULT_HEARTBEAT_URL.to_string(),
                host: "127.0.0.1".to_string(),
                port: 8085,
                path: "/api/v1/servers".to_string(),
                secure: false,
            },
            device_id: DEFAULT_HEARTBEAT_DEVICE_ID.to_string(),
            summaries: false,
            ports: false,
        }
    }
}
