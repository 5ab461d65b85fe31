//! `vhost { dvr { } }` → typed config.

use std::time::Duration;

use super::{
    bad_value, flag, integer, invalid, need_block, no_block, one_arg, template_vars, unknown, Seen,
};
use crate::config::parser::Directive;
use crate::config::types::*;
use crate::config::ConfigError;

/// Variables SRS replaces in `dvr_path`.
const DVR_PATH_VARS: &[&str] = &[
    "vhost",
    "app",
    "stream",
    "timestamp",
    "2006",
    "01",
    "02",
    "15",
    "04",
    "05",
    "999",
];

/// A day is plenty for one segment; beyond that a typo is more likely than intent.
const MAX_DVR_DURATION_SECONDS: u64 = 86_400;

pub(super) fn dvr(d: &Directive, dvr: &mut DvrConfig) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        if !seen.check(c)? {
            continue;
        }
        match c.name.as_str() {
            "enabled" => dvr.enabled = flag(c)?,
            "dvr_apply" => dvr.apply = apply(c)?,
            "dvr_plan" => {
                dvr.plan = match one_arg(c)? {
                    "session" => DvrPlan::Session,
                    "segment" => DvrPlan::Segment,
                    v => return Err(bad_value(c, v, "session or segment")),
                }
            }
            "dvr_path" => {
                let v = one_arg(c)?;
                if v.is_empty() {
                    return Err(invalid(c, "empty path"));
                }
                template_vars(c, v, DVR_PATH_VARS)?;
                // Without a per-stream variable every stream would write the same file.
                if !v.contains("[stream]") {
                    return Err(invalid(
                        c,
                        format!("\"{v}\": the path must contain [stream]"),
                    ));
                }
                // SRS picks MP4 by the extension (`.mp4`), FLV otherwise: so does sluice
                // (`dvr::is_mp4_path`; fragmented MP4, dvr/mp4.rs).
                dvr.path = v.to_string();
            }
            "dvr_duration" => {
                dvr.duration =
                    Duration::from_secs(integer(c, 1, MAX_DVR_DURATION_SECONDS, " seconds")?)
            }
            "dvr_wait_keyframe" => dvr.wait_keyframe = flag(c)?,
            "time_jitter" => {
                dvr.time_jitter = match one_arg(c)? {
                    "full" => TimeJitter::Full,
                    "zero" => TimeJitter::Zero,
                    "off" => TimeJitter::Off,
                    v => return Err(bad_value(c, v, "full, zero or off")),
                }
            }
            _ => return Err(unknown(c, " in dvr")),
        }
    }
    Ok(())
}

/// `all`, `none`, or `app/stream` values.
fn apply(d: &Directive) -> Result<DvrApply, ConfigError> {
    no_block(d)?;
    match d
        .args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Err(invalid(d, "expected all, none or APP/STREAM values")),
        ["all"] => Ok(DvrApply::All),
        ["none"] => Ok(DvrApply::Streams(Vec::new())),
        list => {
            let mut out = Vec::new();
            for v in list {
                match v.split_once('/') {
                    Some((a, s)) if !a.is_empty() && !s.is_empty() && !s.contains('/') => {
                        out.push((a.to_string(), s.to_string()))
                    }
                    _ => return Err(bad_value(d, v, "all, none or APP/STREAM")),
                }
            }
            Ok(DvrApply::Streams(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::*;
    use std::time::Duration;

    fn vhost(body: &str) -> Result<VhostConfig, ConfigError> {
        let cfg = Config::parse(&format!("vhost v {{ {body} }}"), "test.conf")?;
        Ok(cfg
            .vhost("v")
            .cloned()
            .unwrap_or_else(|| VhostConfig::new("v")))
    }

    #[test]
    fn defaults_are_srs_defaults() {
        let v = vhost("dvr { }").unwrap();
        assert_eq!(v.dvr, DvrConfig::default());
        assert!(!v.dvr.enabled);
        assert_eq!(v.dvr.plan, DvrPlan::Session);
        assert_eq!(v.dvr.duration, Duration::from_secs(30));
    }

    #[test]
    fn full_block() {
        let v = vhost(
            "dvr { enabled on; dvr_apply live/a live/b; dvr_plan segment; \
             dvr_path ./rec/[vhost]/[app]/[stream]-[2006][01][02]-[15][04][05]-[999].flv; \
             dvr_duration 10; dvr_wait_keyframe off; time_jitter zero; }",
        )
        .unwrap();
        assert!(v.dvr.enabled);
        assert_eq!(v.dvr.plan, DvrPlan::Segment);
        assert_eq!(v.dvr.duration, Duration::from_secs(10));
        assert!(!v.dvr.wait_keyframe);
        assert_eq!(v.dvr.time_jitter, TimeJitter::Zero);
        assert!(v.dvr.apply.matches("live", "b"));
        assert!(!v.dvr.apply.matches("live", "c"));
        assert!(vhost("dvr { dvr_apply none; }")
            .unwrap()
            .dvr
            .apply
            .matches("x", "y")
            .eq(&false));
    }

    #[test]
    fn bad_values_are_refused() {
        for body in [
            "dvr { dvr_plan append; }",
            "dvr { dvr_path ./[app]/[steam].flv; }",
            "dvr { dvr_path ./[app]/all.flv; }",
            "dvr { dvr_duration 0; }",
            "dvr { dvr_apply live; }",
            "dvr { dvr_apply; }",
            "dvr { dvr_bogus 1; }",
            "dvr { time_jitter some; }",
        ] {
            assert!(vhost(body).is_err(), "{body} accepted");
        }
    }
}
