//! `vhost { hls { } }` → `HlsConfig`.

use std::time::Duration;

use super::{
    bad_value, flag, integer, invalid, need_block, one_arg, path, positive_seconds, template_vars,
    unknown, warn_unimplemented, Seen,
};
use crate::config::known;
use crate::config::parser::Directive;
use crate::config::types::*;
use crate::config::ConfigError;

/// Bounds that catch a typo (an extra zero, ms instead of s) rather than limit real use.
const MAX_FRAGMENT_SECONDS: f64 = 3600.0;
const MAX_WINDOW_SECONDS: f64 = 86_400.0;
const MAX_DISPOSE_SECONDS: u64 = 86_400;
const MAX_RATIO: f64 = 100.0;
const MAX_NB_NOTIFY: u64 = 1024 * 1024;
/// A key per this many segments at most: beyond it a typo, not a rotation policy.
const MAX_FRAGMENTS_PER_KEY: u64 = 1_000_000;

/// Variables SRS substitutes in `hls_key_file`.
const KEY_VARS: &[&str] = &["vhost", "app", "stream", "seq"];

/// Variables SRS substitutes in `hls_m3u8_file` (`srs_path_build_stream`).
const M3U8_VARS: &[&str] = &["vhost", "app", "stream"];
/// Variables SRS substitutes in `hls_ts_file`: the stream ones, the time fields in Go's
/// reference-date notation, the sequence number, the UNIX time in ms and the duration.
const TS_VARS: &[&str] = &[
    "vhost",
    "app",
    "stream",
    "2006",
    "01",
    "02",
    "15",
    "04",
    "05",
    "999",
    "timestamp",
    "seq",
    "duration",
];

/// A ratio of durations: a plain decimal in [1, MAX_RATIO]. Below 1 the playlist would
/// promise shorter segments than it holds (td) or cut pure audio before the fragment (aof).
fn ratio(d: &Directive) -> Result<f64, ConfigError> {
    let v = one_arg(d)?;
    let expected = format!("a number >= 1 and <= {MAX_RATIO}");
    let ok_chars = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let n: f64 = match v.parse() {
        Ok(n) if ok_chars => n,
        _ => return Err(bad_value(d, v, &expected)),
    };
    if !(1.0..=MAX_RATIO).contains(&n) {
        return Err(invalid(
            d,
            format!("value {v} out of range (expected {expected})"),
        ));
    }
    Ok(n)
}

fn template(d: &Directive, ext: &str, vars: &[&str]) -> Result<String, ConfigError> {
    let v = one_arg(d)?;
    if !v.ends_with(ext) || v.len() == ext.len() {
        return Err(invalid(
            d,
            format!("\"{v}\": expected a file name ending in {ext}"),
        ));
    }
    template_vars(d, v, vars)?;
    Ok(v.to_string())
}

/// `hls_part`: seconds (`0.2`) or milliseconds (`200ms`), from 100 ms to 5 s: shorter parts
/// cost a request each, longer ones give back the latency LL-HLS is for.
fn part_duration(d: &Directive) -> Result<Duration, ConfigError> {
    let v = one_arg(d)?;
    let expected = "a duration from 0.1 to 5 seconds, e.g. 0.2 or 200ms";
    let secs = match v.strip_suffix("ms") {
        Some(ms) if !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()) => {
            ms.parse::<f64>().ok().map(|m| m / 1000.0)
        }
        Some(_) => None,
        None if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            v.parse::<f64>().ok()
        }
        None => None,
    };
    match secs {
        Some(s) if (0.1..=5.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(_) => Err(invalid(
            d,
            format!("value {v} out of range (expected {expected})"),
        )),
        None => Err(bad_value(d, v, expected)),
    }
}

pub(super) fn hls(
    d: &Directive,
    h: &mut HlsConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    let mut fragment_at: Option<&Directive> = None;
    let mut window_at: Option<&Directive> = None;
    for c in &d.children {
        let n = c.name.as_str();
        if known::HLS.contains(&n) {
            warn_unimplemented(warnings, c, "vhost.hls.");
            continue;
        }
        if !seen.check(c)? {
            continue;
        }
        match n {
            "enabled" => h.enabled = flag(c)?,
            "hls_fragment" => {
                h.fragment = Duration::from_secs_f64(positive_seconds(c, MAX_FRAGMENT_SECONDS)?);
                fragment_at = Some(c);
            }
            "hls_window" => {
                h.window = Duration::from_secs_f64(positive_seconds(c, MAX_WINDOW_SECONDS)?);
                window_at = Some(c);
            }
            "hls_td_ratio" => h.td_ratio = ratio(c)?,
            "hls_aof_ratio" => h.aof_ratio = ratio(c)?,
            "hls_on_error" => {
                h.on_error = match one_arg(c)? {
                    "ignore" => HlsOnError::Ignore,
                    "disconnect" => HlsOnError::Disconnect,
                    "continue" => HlsOnError::Continue,
                    v => return Err(bad_value(c, v, "ignore, disconnect or continue")),
                }
            }
            "hls_path" => h.path = path(c)?,
            "hls_m3u8_file" => h.m3u8_file = template(c, ".m3u8", M3U8_VARS)?,
            "hls_ts_file" => {
                let t = template(c, ".ts", TS_VARS)?;
                // Otherwise every segment is written to the same file.
                if !t.contains("[seq]") && !t.contains("[timestamp]") {
                    return Err(invalid(
                        c,
                        format!(
                            "\"{t}\": must contain [seq] or [timestamp] so segment names differ"
                        ),
                    ));
                }
                h.ts_file = t;
            }
            "hls_ts_floor" => h.ts_floor = flag(c)?,
            "hls_entry_prefix" => h.entry_prefix = one_arg(c)?.to_string(),
            "hls_acodec" => {
                h.acodec = match one_arg(c)? {
                    "aac" => HlsAcodec::Aac,
                    "mp3" => HlsAcodec::Mp3,
                    "an" => HlsAcodec::An,
                    v => return Err(bad_value(c, v, "aac, mp3 or an")),
                }
            }
            "hls_vcodec" => {
                h.vcodec = match one_arg(c)? {
                    "h264" => HlsVcodec::H264,
                    "vn" => HlsVcodec::Vn,
                    v => return Err(bad_value(c, v, "h264 or vn")),
                }
            }
            "hls_cleanup" => h.cleanup = flag(c)?,
            "hls_dispose" => {
                h.dispose = Duration::from_secs(integer(c, 0, MAX_DISPOSE_SECONDS, " seconds")?);
            }
            "hls_nb_notify" => {
                let n = integer(c, 1, MAX_NB_NOTIFY, " bytes")?;
                h.nb_notify = u32::try_from(n).map_err(|_| invalid(c, "value out of range"))?;
            }
            "hls_wait_keyframe" => h.wait_keyframe = flag(c)?,
            "hls_dts_directly" => h.dts_directly = flag(c)?,
            "hls_keys" => h.keys = flag(c)?,
            "hls_fragments_per_key" => {
                let n = integer(c, 1, MAX_FRAGMENTS_PER_KEY, "")?;
                h.fragments_per_key =
                    u32::try_from(n).map_err(|_| invalid(c, "value out of range"))?;
            }
            "hls_key_file" => {
                let t = template(c, ".key", KEY_VARS)?;
                // A key file rewritten in place would change the key of segments that
                // players already listed, and they would fail to decrypt.
                if !t.contains("[seq]") {
                    return Err(invalid(
                        c,
                        format!("\"{t}\": must contain [seq] so that each key has its own file"),
                    ));
                }
                h.key_file = t;
            }
            "hls_use_fmp4" => h.use_fmp4 = flag(c)?,
            "hls_fmp4_file" => {
                let t = template(c, ".m4s", TS_VARS)?;
                if !t.contains("[seq]") && !t.contains("[timestamp]") {
                    return Err(invalid(
                        c,
                        format!(
                            "\"{t}\": must contain [seq] or [timestamp] so segment names differ"
                        ),
                    ));
                }
                h.fmp4_file = t;
            }
            "hls_init_file" => h.init_file = template(c, ".mp4", M3U8_VARS)?,
            "hls_ll" => h.ll = flag(c)?,
            "hls_part" => h.part = part_duration(c)?,
            "hls_ll_max_blocked" => {
                h.ll_max_blocked = integer(c, 1, 1_000_000, "")? as usize;
            }
            "hls_key_file_path" => h.key_file_path = Some(path(c)?),
            "hls_key_url" => {
                let v = one_arg(c)?;
                // It is written inside a quoted playlist attribute.
                if v.chars()
                    .any(|ch| ch == '"' || ch.is_whitespace() || ch.is_control())
                {
                    return Err(invalid(
                        c,
                        format!(
                            "\"{}\": no quotes, spaces or control characters in a URL",
                            v.escape_debug()
                        ),
                    ));
                }
                h.key_url = v.to_string();
            }
            _ => return Err(unknown(c, " in hls")),
        }
    }
    if h.keys && h.use_fmp4 {
        let at = d
            .children
            .iter()
            .find(|c| c.name == "hls_keys")
            .unwrap_or(d);
        return Err(invalid(
            at,
            "hls_keys with hls_use_fmp4 is not supported (the init segment would need the \
             key too); use TS segments for AES-128"
                .to_string(),
        ));
    }
    if h.ll && !h.use_fmp4 {
        let at = d.children.iter().find(|c| c.name == "hls_ll").unwrap_or(d);
        return Err(invalid(
            at,
            "hls_ll needs hls_use_fmp4 on: LL-HLS parts are fMP4 fragments".to_string(),
        ));
    }
    if h.ll && h.part > h.fragment {
        let at = d
            .children
            .iter()
            .find(|c| c.name == "hls_part")
            .unwrap_or(d);
        return Err(invalid(
            at,
            format!(
                "hls_part {}s is longer than hls_fragment {}s",
                h.part.as_secs_f64(),
                h.fragment.as_secs_f64()
            ),
        ));
    }
    if h.window < h.fragment {
        let (at, message) = match (window_at, fragment_at) {
            (Some(w), _) => (
                w,
                format!(
                    "window {}s is shorter than hls_fragment {}s",
                    h.window.as_secs_f64(),
                    h.fragment.as_secs_f64()
                ),
            ),
            (None, Some(f)) => (
                f,
                format!(
                    "fragment {}s is longer than hls_window ({}s, the default)",
                    h.fragment.as_secs_f64(),
                    h.window.as_secs_f64()
                ),
            ),
            (None, None) => (d, "hls_window is shorter than hls_fragment".to_string()),
        };
        return Err(invalid(at, message));
    }
    Ok(())
}

/// `vhost { dash { } }`. What cannot be honoured (DASH without fMP4 HLS, another path or
/// fragment than HLS's) is accepted and reported, as `sluice -t` shows warnings; the checks
/// that need the whole vhost are in [`dash_warnings`].
pub(super) fn dash(
    d: &Directive,
    c: &mut DashConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for x in &d.children {
        let n = x.name.as_str();
        if known::DASH.contains(&n) {
            warn_unimplemented(warnings, x, "vhost.dash.");
            continue;
        }
        seen.check(x)?;
        match n {
            "enabled" => c.enabled = flag(x)?,
            "dash_fragment" => {
                c.fragment = Duration::from_secs_f64(positive_seconds(x, MAX_FRAGMENT_SECONDS)?)
            }
            "dash_update_period" => {
                c.update_period = Duration::from_secs_f64(positive_seconds(x, MAX_WINDOW_SECONDS)?)
            }
            "dash_timeshift" => {
                c.timeshift = Duration::from_secs_f64(positive_seconds(x, MAX_WINDOW_SECONDS)?)
            }
            "dash_path" => c.path = path(x)?,
            "dash_mpd_file" => c.mpd_file = template(x, ".mpd", M3U8_VARS)?,
            _ => return Err(unknown(x, " in dash")),
        }
    }
    Ok(())
}

/// DASH settings sluice accepts but cannot honour as written, for `sluice -t`.
pub fn dash_warnings(vhost: &str, hls: &HlsConfig, dash: &DashConfig) -> Vec<String> {
    let mut w = Vec::new();
    if !dash.enabled {
        return w;
    }
    if !(hls.enabled && hls.use_fmp4) {
        w.push(format!(
            "vhost {vhost}: dash needs hls {{ enabled on; hls_use_fmp4 on; }} (the MPD lists HLS's fMP4 segments); no DASH"
        ));
    }
    if dash.path != hls.path {
        w.push(format!(
            "vhost {vhost}: dash_path {} is not hls_path {}: the MPD is written under hls_path, beside the segments it lists",
            dash.path.display(),
            hls.path.display()
        ));
    }
    if dash.fragment != hls.fragment {
        w.push(format!(
            "vhost {vhost}: dash_fragment {}s is not hls_fragment {}s: DASH segments are HLS's",
            dash.fragment.as_secs_f64(),
            hls.fragment.as_secs_f64()
        ));
    }
    w
}
