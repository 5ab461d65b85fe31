//! `rtc_server { candidate }`: the addresses announced in SDP answers, as SRS reads them:
//! an IP, a host name (resolved once at start), `*` (the addresses of this host's
//! interfaces) or `$NAME` (an environment variable holding any of those).

use std::net::{IpAddr, ToSocketAddrs};

/// Most addresses announced (each is a candidate line in every answer).
const MAX_CANDIDATES: usize = 8;

pub fn resolve(value: &str) -> Result<Vec<IpAddr>, String> {
    let value = match value.strip_prefix('$') {
        Some(name) => {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?
        }
        None => value.to_string(),
    };
    let value = value.trim();
    if value == "*" || value == "0.0.0.0" {
        return Ok(interfaces());
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let mut ips: Vec<IpAddr> = (value, 0u16)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {value}: {e}"))?
        .map(|a| a.ip())
        .collect();
    ips.dedup();
    ips.truncate(MAX_CANDIDATES);
    if ips.is_empty() {
        return Err(format!("{value} resolves to no address"));
    }
    Ok(ips)
}

/// This host's IPv4 addresses, loopback last (kept only when there is nothing else, so
/// a server on a laptop still answers a browser on the same machine).
fn interfaces() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
                let ip = IpAddr::V4(sin.ip());
                if !ip.is_loopback() && !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
    }
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips.truncate(MAX_CANDIDATES);
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            resolve("10.1.2.3").unwrap(),
            vec![IpAddr::from([10, 1, 2, 3])]
        );
        assert!(!resolve("*").unwrap().is_empty());
        assert!(resolve("localhost")
            .unwrap()
            .iter()
            .all(|ip| ip.is_loopback()));
        std::env::set_var("SLUICE_TEST_CANDIDATE", "192.0.2.7");
        assert_eq!(
            resolve("$SLUICE_TEST_CANDIDATE").unwrap(),
            vec![IpAddr::from([192, 0, 2, 7])]
        );
        assert!(resolve("$SLUICE_TEST_NO_SUCH_VARIABLE").is_err());
    }
}
