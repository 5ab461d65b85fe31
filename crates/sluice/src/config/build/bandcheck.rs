//! `vhost { bandcheck { } }` → typed config.

use std::time::Duration;

use super::{flag, integer, invalid, need_block, one_arg, positive_seconds, unknown, Seen};
use crate::config::parser::Directive;
use crate::config::types::*;
use crate::config::ConfigError;

/// Longest `interval` accepted (a day): more is a typo.
const MAX_INTERVAL_SECONDS: f64 = 86_400.0;
/// Longest `key` accepted.
const MAX_KEY_LEN: usize = 256;

pub(super) fn bandcheck(d: &Directive, b: &mut BandcheckConfig) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        if !seen.check(c)? {
            continue;
        }
        match c.name.as_str() {
            "enabled" => b.enabled = flag(c)?,
            "key" => {
                let k = one_arg(c)?;
                if k.is_empty() || k.len() > MAX_KEY_LEN || !k.bytes().all(|x| x.is_ascii_graphic())
                {
                    return Err(invalid(
                        c,
                        format!(
                            "key must be 1..={MAX_KEY_LEN} printable characters without spaces"
                        ),
                    ));
                }
                if k.contains(['&', '?', '=', ',', '#']) {
                    return Err(invalid(c, "key must not contain & ? = , or #"));
                }
                b.key = k.to_string();
            }
            "interval" => {
                b.interval = Duration::from_secs_f64(positive_seconds(c, MAX_INTERVAL_SECONDS)?)
            }
            "limit_kbps" => {
                b.limit_kbps = integer(c, 1, u64::from(MAX_BANDCHECK_LIMIT_KBPS), " kbps")? as u32
            }
            _ => return Err(unknown(c, " in bandcheck")),
        }
    }
    if b.enabled && b.key.is_empty() {
        return Err(invalid(
            d,
            "bandcheck is enabled without a key: every client could run the test",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, "t.conf")
    }

    #[test]
    fn bandcheck_block_and_defaults() {
        let c = parse(
            "vhost b { bandcheck { enabled on; key \"35c9b402c12a7246868752e2878f7e0e\"; interval 2.5; limit_kbps 4000; } }",
        )
        .unwrap();
        let b = &c.vhost("b").unwrap().bandcheck;
        assert!(b.enabled);
        assert_eq!(b.key, "35c9b402c12a7246868752e2878f7e0e");
        assert_eq!(b.interval, std::time::Duration::from_millis(2500));
        assert_eq!(b.limit_kbps, 4000);
        let d = parse("vhost b { }").unwrap();
        let b = &d.vhost("b").unwrap().bandcheck;
        assert!(!b.enabled);
        assert_eq!(b.limit_kbps, 1000);
        assert_eq!(b.interval.as_secs(), 30);
    }

    #[test]
    fn bandcheck_errors_name_the_line() {
        for (text, want) in [
            (
                "vhost b {\n bandcheck { enabled on; } }",
                "t.conf:2: bandcheck",
            ),
            (
                "vhost b { bandcheck {\n limit_kbps 0; } }",
                "t.conf:2: limit_kbps",
            ),
            ("vhost b { bandcheck {\n key a&b; } }", "t.conf:2: key"),
            (
                "vhost b { bandcheck {\n keys x; } }",
                "\"keys\" in bandcheck",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
