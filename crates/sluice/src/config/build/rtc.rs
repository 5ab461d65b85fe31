//! `rtc_server { }` and `vhost { rtc { } }` → typed config.

use super::{flag, integer, invalid, need_block, one_arg, unknown, warn_unimplemented, Seen};
use crate::config::parser::Directive;
use crate::config::types::*;
use crate::config::ConfigError;

/// SRS's `rtc_server` directives we accept but do not act on (TCP media, address
/// families, API-derived candidates, key types): the UDP port and `candidate` are what
/// a WHIP/WHEP exchange needs.
const RTC_SERVER_KNOWN: &[&str] = &[
    "protocol",
    "tcp",
    "ecdsa",
    "encrypt",
    "reuseport",
    "merge_nalus",
    "black_hole",
    "ip_family",
    "api_as_candidates",
    "resolve_api_domain",
    "keep_api_domain",
    "use_auto_detect_network_ip",
    "perf_stat",
    "queue_length",
];

/// SRS's `vhost { rtc { } }` directives we accept but do not act on: NACK and TWCC are
/// always on (str0m answers them), ICE consent is RFC 7675's 30 s, DTLS is passive.
const VHOST_RTC_KNOWN: &[&str] = &[
    "nack",
    "nack_no_copy",
    "twcc",
    "stun_timeout",
    "stun_strict_check",
    "dtls_role",
    "dtls_version",
    "drop_for_pt",
    "pli_for_rtmp",
    "keep_bframe",
    "keep_avc_nalu_sei",
    "opus_bitrate",
    "aac_bitrate",
];

pub(super) fn rtc_server(
    d: &Directive,
    r: &mut RtcServerConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        let n = c.name.as_str();
        if RTC_SERVER_KNOWN.contains(&n) {
            warn_unimplemented(warnings, c, "rtc_server.");
            continue;
        }
        seen.check(c)?;
        match n {
            "enabled" => r.enabled = flag(c)?,
            "listen" => r.listen = integer(c, 1, u16::MAX as u64, "")? as u16,
            "max_handshakes" => r.max_handshakes = integer(c, 1, 100_000, "")? as usize,
            "candidate_port" => r.candidate_port = Some(integer(c, 1, u16::MAX as u64, "")? as u16),
            "candidate" => {
                let v = one_arg(c)?;
                if v.is_empty() || v.len() > 253 || v.chars().any(|ch| ch.is_whitespace()) {
                    return Err(invalid(
                        c,
                        "expected an IP, a host name, * or $NAME (an environment variable)",
                    ));
                }
                r.candidate = v.to_string();
            }
            _ => return Err(unknown(c, " in rtc_server")),
        }
    }
    Ok(())
}

pub(super) fn vhost_rtc(
    d: &Directive,
    r: &mut VhostRtcConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        let n = c.name.as_str();
        if VHOST_RTC_KNOWN.contains(&n) {
            warn_unimplemented(warnings, c, "vhost.rtc.");
            continue;
        }
        seen.check(c)?;
        match n {
            "enabled" => r.enabled = flag(c)?,
            "rtmp_to_rtc" => r.rtmp_to_rtc = flag(c)?,
            "rtc_to_rtmp" => {
                r.rtc_to_rtmp = flag(c)?;
                if !r.rtc_to_rtmp {
                    warnings.push(format!(
                        "{}:{}: vhost.rtc.rtc_to_rtmp off: not honoured: a WHIP publish is always a stream of the hub (RTMP, HTTP-FLV and HLS players get it)",
                        c.file, c.line
                    ));
                }
            }
            _ => return Err(unknown(c, " in rtc")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn candidate_port_is_read_and_bounded() {
        let c = Config::parse(
            "rtc_server { enabled on; listen 8000; candidate 1.2.3.4; candidate_port 18000; }",
            "t.conf",
        )
        .expect("config");
        assert_eq!(c.rtc_server.candidate_port, Some(18000));
        assert_eq!(c.rtc_server.listen, 8000);
        let c = Config::parse("rtc_server { enabled on; }", "t.conf").expect("config");
        assert_eq!(c.rtc_server.candidate_port, None);
        for bad in ["0", "70000", "x"] {
            let e = Config::parse(&format!("rtc_server {{ candidate_port {bad}; }}"), "t.conf");
            assert!(e.is_err(), "candidate_port {bad} accepted");
        }
    }
}
