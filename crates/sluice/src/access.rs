//! Who may connect, publish and play, decided from the config alone: the referer check
//! (`vhost.refer`, on the client's `pageUrl`) and the allow/deny rules (`vhost.security`, on
//! its IP). Both follow SRS's semantics so an SRS config means the same thing here.

use std::net::IpAddr;

use crate::config::{network_of, AccessScope, AccessTarget, ReferConfig, SecurityConfig};

/// The host of a page URL, as SRS takes it: after `://`, before the first `/`, then before
/// the first `:` (so a port is dropped; an IPv6 literal page host never matches).
fn page_domain(page_url: &str) -> &str {
    let rest = page_url
        .find("://")
        .and_then(|i| page_url.get(i + 3..))
        .unwrap_or(page_url);
    let rest = rest.split('/').next().unwrap_or("");
    rest.split(':').next().unwrap_or("")
}

/// SRS's refer match: the page's domain ends with one of `domains` (so `example.com` also
/// admits `www.example.com`, and `evilexample.com`; write `.example.com` to require a
/// sub-domain boundary).
pub fn refer_matches(page_url: &str, domains: &[String]) -> bool {
    let domain = page_domain(page_url);
    domains.iter().any(|d| domain.ends_with(d.as_str()))
}

/// Why a referer check failed, for the client's status and the log; None when allowed.
/// `scope` None is the connect-time check (`refer.all`).
pub fn check_refer(
    cfg: &ReferConfig,
    scope: Option<AccessScope>,
    page_url: &str,
) -> Option<String> {
    if !cfg.enabled {
        return None;
    }
    let (list, name) = match scope {
        None => (&cfg.all, "all"),
        Some(AccessScope::Publish) => (&cfg.publish, "publish"),
        Some(AccessScope::Play) => (&cfg.play, "play"),
    };
    let list = list.as_ref()?;
    if refer_matches(page_url, list) {
        None
    } else {
        Some(format!(
            "pageUrl \"{page_url}\" is not on the refer {name} list"
        ))
    }
}

/// A client coming through an IPv4-mapped IPv6 socket is matched as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn target_matches(target: &AccessTarget, ip: IpAddr) -> bool {
    match *target {
        AccessTarget::All => true,
        AccessTarget::Ip(a) => canonical(a) == ip,
        AccessTarget::Cidr(net, prefix) => {
            net.is_ipv4() == ip.is_ipv4() && network_of(ip, prefix) == net
        }
    }
}

/// Why the allow/deny rules refused a client: shown to the client (RTMP status description,
/// HTTP body) and logged, so the text names the rule; a type so callers can tell a `deny`
/// match from a missing `allow`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityDenied {
    /// A `deny` rule matched the client.
    #[error("{scope} from {ip} denied by rule \"deny {scope} {target}\"")]
    DenyRule {
        scope: AccessScope,
        ip: IpAddr,
        target: AccessTarget,
    },
    /// No rule matched, and SRS refuses in that case (there are `allow` rules, or no rule).
    #[error("{scope} from {ip} not allowed by any of {rules} rules")]
    NotAllowed {
        scope: AccessScope,
        ip: IpAddr,
        rules: usize,
    },
}

/// SRS's security check (`SrsSecurity::do_check`): a matching `deny` wins; otherwise a
/// matching `allow` admits; with no match, the client is refused when there is any `allow`
/// rule at all (for either scope) or no rule at all, and admitted when there are only `deny`
/// rules.
pub fn check_security(
    cfg: &SecurityConfig,
    scope: AccessScope,
    ip: IpAddr,
) -> Result<(), SecurityDenied> {
    if !cfg.enabled {
        return Ok(());
    }
    let ip = canonical(ip);
    if let Some(rule) = cfg
        .rules
        .iter()
        .find(|r| !r.allow && r.scope == scope && target_matches(&r.target, ip))
    {
        return Err(SecurityDenied::DenyRule {
            scope,
            ip,
            target: rule.target,
        });
    }
    if cfg
        .rules
        .iter()
        .any(|r| r.allow && r.scope == scope && target_matches(&r.target, ip))
    {
        return Ok(());
    }
    let allows = cfg.rules.iter().filter(|r| r.allow).count();
    if allows > 0 || cfg.rules.is_empty() {
        return Err(SecurityDenied::NotAllowed {
            scope,
            ip,
            rules: cfg.rules.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecurityRule;

    fn refer(all: Option<&[&str]>, publish: Option<&[&str]>, play: Option<&[&str]>) -> ReferConfig {
        let v = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| s.to_string()).collect());
        ReferConfig {
            enabled: true,
            all: v(all),
            publish: v(publish),
            play: v(play),
        }
    }

    #[test]
    fn refer_is_a_domain_suffix_match() {
        let d = vec!["ossrs.net".to_string(), "127.0.0.1".to_string()];
        assert!(refer_matches("http://ossrs.net/player.html", &d));
        assert!(refer_matches("https://www.ossrs.net:8080/a/b", &d));
        assert!(refer_matches("ossrs.net", &d));
        assert!(refer_matches("http://127.0.0.1:8080/", &d));
        assert!(!refer_matches("http://ossrs.net.evil.com/", &d));
        assert!(!refer_matches("", &d));
        assert!(!refer_matches("http://evil.com/ossrs.net", &d));
        // SRS's plain suffix rule: documented, not a boundary match.
        assert!(refer_matches("http://evilossrs.net/", &d));
        assert!(!refer_matches(
            "http://evilossrs.net/",
            &[".ossrs.net".into()]
        ));
    }

    #[test]
    fn refer_lists_per_scope() {
        let c = refer(Some(&["a.com"]), Some(&["p.com"]), None);
        assert!(check_refer(&c, None, "http://a.com/").is_none());
        assert!(check_refer(&c, None, "http://b.com/").is_some());
        assert!(check_refer(&c, Some(AccessScope::Publish), "http://p.com/").is_none());
        assert!(check_refer(&c, Some(AccessScope::Publish), "http://a.com/").is_some());
        // No play list: play is not checked.
        assert!(check_refer(&c, Some(AccessScope::Play), "").is_none());
        let off = ReferConfig {
            enabled: false,
            ..c
        };
        assert!(check_refer(&off, None, "http://b.com/").is_none());
    }

    fn rule(allow: bool, scope: AccessScope, target: &str) -> SecurityRule {
        let target = if target == "all" {
            AccessTarget::All
        } else if let Some((a, p)) = target.split_once('/') {
            let p: u8 = p.parse().unwrap();
            AccessTarget::Cidr(network_of(a.parse().unwrap(), p), p)
        } else {
            AccessTarget::Ip(target.parse().unwrap())
        };
        SecurityRule {
            allow,
            scope,
            target,
        }
    }

    fn sec(rules: Vec<SecurityRule>) -> SecurityConfig {
        SecurityConfig {
            enabled: true,
            rules,
        }
    }

    const PUB: AccessScope = AccessScope::Publish;
    const PLAY: AccessScope = AccessScope::Play;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn security_follows_srs_order() {
        // Enabled without rules: everything denied (SRS "not allowed by any of 0/0 rules").
        assert!(check_security(&sec(vec![]), PUB, ip("1.2.3.4")).is_err());
        // Disabled: everything allowed.
        assert!(check_security(&SecurityConfig::default(), PUB, ip("1.2.3.4")).is_ok());
        // Only deny rules: the rest is allowed.
        let c = sec(vec![rule(false, PLAY, "10.0.0.0/8")]);
        assert!(check_security(&c, PLAY, ip("10.1.2.3")).is_err());
        assert!(check_security(&c, PLAY, ip("11.1.2.3")).is_ok());
        assert!(check_security(&c, PUB, ip("10.1.2.3")).is_ok());
        // Deny wins over allow, whatever the order.
        let c = sec(vec![rule(true, PUB, "all"), rule(false, PUB, "1.2.3.4")]);
        assert!(check_security(&c, PUB, ip("1.2.3.4")).is_err());
        assert!(check_security(&c, PUB, ip("1.2.3.5")).is_ok());
        // An allow rule for play only: publish is not allowed by anything.
        let c = sec(vec![rule(true, PLAY, "all")]);
        assert!(check_security(&c, PLAY, ip("8.8.8.8")).is_ok());
        assert!(check_security(&c, PUB, ip("8.8.8.8")).is_err());
        // Allow list.
        let c = sec(vec![
            rule(true, PUB, "127.0.0.1"),
            rule(true, PUB, "192.168.0.0/16"),
        ]);
        assert!(check_security(&c, PUB, ip("127.0.0.1")).is_ok());
        assert!(check_security(&c, PUB, ip("192.168.44.1")).is_ok());
        assert!(check_security(&c, PUB, ip("192.169.0.1")).is_err());
    }

    #[test]
    fn security_ipv6_and_mapped() {
        let c = sec(vec![
            rule(true, PLAY, "2001:db8::/32"),
            rule(true, PLAY, "::1"),
        ]);
        assert!(check_security(&c, PLAY, ip("2001:db8:1::5")).is_ok());
        assert!(check_security(&c, PLAY, ip("::1")).is_ok());
        assert!(check_security(&c, PLAY, ip("2001:db9::1")).is_err());
        // v4 rules match v4-mapped v6 peers, v6 nets never match v4 peers.
        let c = sec(vec![rule(true, PLAY, "127.0.0.0/8")]);
        assert!(check_security(&c, PLAY, ip("::ffff:127.0.0.1")).is_ok());
        let c = sec(vec![rule(true, PLAY, "::/0")]);
        assert!(check_security(&c, PLAY, ip("1.2.3.4")).is_err());
        let c = sec(vec![rule(true, PLAY, "0.0.0.0/0")]);
        assert!(check_security(&c, PLAY, ip("1.2.3.4")).is_ok());
    }

    #[test]
    fn hostile_page_urls_do_not_panic() {
        for s in [
            "://",
            ":",
            "/",
            "a://b:c/d",
            "\u{0}",
            "é://ü",
            "http://[::1]:80/",
        ] {
            let _ = refer_matches(s, &["x".into()]);
        }
    }
}
