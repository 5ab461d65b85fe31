//! `ff_log_dir`, `ff_log_level`, `vhost { transcode { } }` and `vhost { ingest { } }` → typed
//! config.

use std::path::PathBuf;

use super::{
    bad_value, flag, integer, invalid, need_block, no_block, one_arg, path, positive_seconds,
    template_vars, unknown, Seen,
};
use crate::config::parser::Directive;
use crate::config::types::*;
use crate::config::ConfigError;

/// Variables of a transcode engine's output URL.
const TRANSCODE_OUTPUT_VARS: &[&str] = &["vhost", "port", "app", "stream", "engine", "param"];
/// Variables of an ingest engine's output URL: SRS's `[vhost]` and `[port]`, and sluice's
/// `[app]`, `[stream]` (from the input URL) and `[engine]` (`ffmpeg::ingest::input_names`).
const INGEST_OUTPUT_VARS: &[&str] = &["vhost", "port", "app", "stream", "engine"];
/// Limits that catch typos (an extra zero) rather than express real ceilings.
const MAX_BITRATE_KBPS: u64 = 1_000_000;
const MAX_DIMENSION: u64 = 16_384;
const MAX_FPS: f64 = 1000.0;
const MAX_THREADS: u64 = 256;
const MAX_SAMPLE_RATE: u64 = 384_000;
const MAX_CHANNELS: u64 = 64;

pub(super) fn ff_log_level(d: &Directive) -> Result<String, ConfigError> {
    const LEVELS: &[&str] = &[
        "quiet", "panic", "fatal", "error", "warning", "info", "verbose", "debug", "trace",
    ];
    let v = one_arg(d)?;
    if !LEVELS.contains(&v) {
        return Err(bad_value(d, v, &LEVELS.join(", ")));
    }
    Ok(v.to_string())
}

/// A `transcode [SCOPE] { }` or `ingest [ID] { }` block, which may appear several times in
/// a vhost (once per scope or id; an ingest without an id is `ingest-N`, N its place among
/// the vhost's ingests from 1).
pub(super) fn vhost_directive(d: &Directive, v: &mut VhostConfig) -> Result<(), ConfigError> {
    if d.name == "transcode" {
        if !d.block || d.args.len() > 1 {
            return Err(invalid(d, "expected `transcode [APP[/STREAM]] { ... }`"));
        }
        let scope = d.args.first().cloned().unwrap_or_default();
        if v.transcodes.iter().any(|t| t.scope == scope) {
            return Err(invalid(d, format!("transcode \"{scope}\" given twice")));
        }
        let t = transcode(d, scope)?;
        v.transcodes.push(t);
    } else {
        // SRS takes `ingest { }` without an id too; it is named by its place then.
        if !d.block || d.args.len() > 1 {
            return Err(invalid(d, "expected `ingest [ID] { ... }`"));
        }
        let id = match d.args.first() {
            Some(id) if id.is_empty() => return Err(invalid(d, "empty ingest id")),
            Some(id) => id.clone(),
            None => format!("ingest-{}", v.ingests.len() + 1),
        };
        if v.ingests.iter().any(|i| i.id == id) {
            return Err(invalid(d, format!("ingest \"{id}\" given twice")));
        }
        let i = ingest(d, id)?;
        v.ingests.push(i);
    }
    Ok(())
}

fn ffmpeg_path(d: &Directive) -> Result<Option<PathBuf>, ConfigError> {
    path(d).map(Some)
}

fn transcode(d: &Directive, scope: String) -> Result<TranscodeConfig, ConfigError> {
    let mut t = TranscodeConfig {
        scope,
        enabled: false,
        ffmpeg: None,
        engines: Vec::new(),
    };
    let mut seen = Seen::default();
    for c in &d.children {
        if c.name == "engine" {
            let e = engine(c, true)?;
            if t.engines.iter().any(|x| x.name == e.name) {
                return Err(invalid(c, format!("engine \"{}\" given twice", e.name)));
            }
            t.engines.push(e);
            continue;
        }
        if !seen.check(c)? {
            continue;
        }
        match c.name.as_str() {
            "enabled" => t.enabled = flag(c)?,
            "ffmpeg" => t.ffmpeg = ffmpeg_path(c)?,
            _ => return Err(unknown(c, " in transcode")),
        }
    }
    Ok(t)
}

fn ingest(d: &Directive, id: String) -> Result<IngestConfig, ConfigError> {
    let mut i = IngestConfig {
        id,
        enabled: false,
        input_type: IngestInputType::File,
        input_url: String::new(),
        ffmpeg: None,
        engines: Vec::new(),
    };
    let mut seen = Seen::default();
    for c in &d.children {
        if c.name == "engine" {
            i.engines.push(engine(c, false)?);
            continue;
        }
        if !seen.check(c)? {
            continue;
        }
        match c.name.as_str() {
            "enabled" => i.enabled = flag(c)?,
            "ffmpeg" => i.ffmpeg = ffmpeg_path(c)?,
            "input" => {
                need_block(c, 0)?;
                let mut seen = Seen::default();
                for ic in &c.children {
                    if !seen.check(ic)? {
                        continue;
                    }
                    match ic.name.as_str() {
                        "type" => {
                            i.input_type = match one_arg(ic)? {
                                "file" => IngestInputType::File,
                                "stream" => IngestInputType::Stream,
                                v => return Err(bad_value(ic, v, "file or stream")),
                            }
                        }
                        "url" => i.input_url = one_arg(ic)?.to_string(),
                        _ => return Err(unknown(ic, " in ingest.input")),
                    }
                }
            }
            _ => return Err(unknown(c, " in ingest")),
        }
    }
    if i.enabled {
        if i.input_url.is_empty() {
            return Err(invalid(d, "enabled, but input { url ...; } is missing"));
        }
        if i.engines.is_empty() {
            return Err(invalid(
                d,
                "enabled, but no engine { output ...; } is given",
            ));
        }
    }
    Ok(i)
}

/// `-KEY VALUE` pairs of `vfilter`, `vparams` and `aparams`.
fn params(d: &Directive) -> Result<Vec<(String, String)>, ConfigError> {
    need_block(d, 0)?;
    let mut out = Vec::new();
    for c in &d.children {
        no_block(c)?;
        let value = match c.args.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            _ => return Err(invalid(c, "expected at most one value")),
        };
        out.push((c.name.clone(), value));
    }
    Ok(out)
}

fn word(d: &Directive) -> Result<String, ConfigError> {
    let v = one_arg(d)?;
    if v.is_empty()
        || v.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(invalid(d, format!("invalid value \"{v}\"")));
    }
    Ok(v.to_string())
}

fn small(d: &Directive, lo: u64, hi: u64) -> Result<u32, ConfigError> {
    let n = integer(d, lo, hi, "")?;
    u32::try_from(n).map_err(|_| invalid(d, "value out of range"))
}

/// `named`: transcode engines are `engine NAME { }`; ingest engines may be anonymous.
fn engine(d: &Directive, named: bool) -> Result<EngineConfig, ConfigError> {
    if !d.block || d.args.len() > 1 || (named && d.args.len() != 1) {
        return Err(invalid(
            d,
            if named {
                "expected `engine NAME { ... }`"
            } else {
                "expected `engine [NAME] { ... }`"
            },
        ));
    }
    let mut e = EngineConfig {
        name: d.args.first().cloned().unwrap_or_default(),
        ..EngineConfig::default()
    };
    if named
        && !e
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(invalid(
            d,
            format!("engine name \"{}\": use letters, digits, _ - .", e.name),
        ));
    }
    let mut seen = Seen::default();
    for c in &d.children {
        if !seen.check(c)? {
            continue;
        }
        match c.name.as_str() {
            "enabled" => e.enabled = flag(c)?,
            "vfilter" => e.vfilter = params(c)?,
            "vcodec" => e.vcodec = Some(word(c)?),
            "vbitrate" => e.vbitrate = Some(small(c, 0, MAX_BITRATE_KBPS)?),
            "vfps" => e.vfps = Some(positive_seconds(c, MAX_FPS)?),
            "vwidth" => e.vwidth = Some(small(c, 1, MAX_DIMENSION)?),
            "vheight" => e.vheight = Some(small(c, 1, MAX_DIMENSION)?),
            "vthreads" => e.vthreads = Some(small(c, 0, MAX_THREADS)?),
            "vprofile" => e.vprofile = Some(word(c)?),
            "vpreset" => e.vpreset = Some(word(c)?),
            "vparams" => e.vparams = params(c)?,
            "acodec" => e.acodec = Some(word(c)?),
            "abitrate" => e.abitrate = Some(small(c, 0, MAX_BITRATE_KBPS)?),
            "asample_rate" => e.asample_rate = Some(small(c, 1, MAX_SAMPLE_RATE)?),
            "achannels" => e.achannels = Some(small(c, 1, MAX_CHANNELS)?),
            "aparams" => e.aparams = params(c)?,
            "oformat" => e.oformat = Some(word(c)?),
            "iformat" => e.iformat = Some(word(c)?),
            "perfile" => e.perfile = params(c)?,
            "output" => {
                let v = word(c)?;
                let vars = if named {
                    TRANSCODE_OUTPUT_VARS
                } else {
                    INGEST_OUTPUT_VARS
                };
                template_vars(c, &v, vars)?;
                e.output = v;
            }
            _ => return Err(unknown(c, " in engine")),
        }
    }
    if e.vwidth.is_some() != e.vheight.is_some() {
        return Err(invalid(d, "vwidth and vheight go together"));
    }
    if e.output.is_empty() && (e.enabled || !named) {
        return Err(invalid(d, "engine without output"));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use crate::config::*;

    fn vhost(body: &str) -> Result<VhostConfig, ConfigError> {
        let cfg = Config::parse(&format!("vhost v {{ {body} }}"), "test.conf")?;
        Ok(cfg
            .vhost("v")
            .cloned()
            .unwrap_or_else(|| VhostConfig::new("v")))
    }

    #[test]
    fn transcode_blocks() {
        let v = vhost(
            "transcode live/s { enabled on; ffmpeg /usr/bin/ffmpeg; \
               engine sd { enabled on; vfilter { vf hflip; } vcodec libx264; vbitrate 300; \
                 vfps 25; vwidth 320; vheight 180; vthreads 2; vprofile baseline; \
                 vpreset ultrafast; vparams { g 50; } acodec aac; abitrate 64; \
                 asample_rate 44100; achannels 2; aparams { } \
                 output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine]; } \
               engine off { enabled off; } } \
             transcode { enabled off; }",
        )
        .unwrap();
        assert_eq!(v.transcodes.len(), 2);
        let t = &v.transcodes[0];
        assert!(t.enabled && t.matches("live", "s") && !t.matches("live", "x"));
        assert!(v.transcodes[1].matches("any", "thing"));
        let e = &t.engines[0];
        assert_eq!(e.vwidth, Some(320));
        assert_eq!(e.vfilter, vec![("vf".to_string(), "hflip".to_string())]);
        assert_eq!(e.vparams, vec![("g".to_string(), "50".to_string())]);
        assert_eq!(e.vfps, Some(25.0));
        assert!(!t.engines[1].enabled);
    }

    #[test]
    fn ingest_blocks() {
        let v = vhost(
            "ingest cam { enabled on; input { type stream; url rtmp://x/live/s; } \
               ffmpeg ./ffmpeg; engine { enabled off; output rtmp://127.0.0.1:[port]/live?vhost=[vhost]/cam; } }",
        )
        .unwrap();
        let i = &v.ingests[0];
        assert_eq!(i.id, "cam");
        assert_eq!(i.input_type, IngestInputType::Stream);
        assert_eq!(i.engines.len(), 1);
        assert!(!i.engines[0].enabled);
    }

    #[test]
    fn bad_blocks_are_refused() {
        for body in [
            "transcode live { } transcode live { }",
            "transcode a b { }",
            "transcode { engine { output x; } }",
            "transcode { engine x { enabled on; } }",
            "transcode { engine x { enabled on; output rtmp://h/[app]/[steam]; } }",
            "transcode { engine a { output o; } engine a { output o; } }",
            "transcode { engine x { vwidth 320; output o; } }",
            "transcode { engine x { vbitrate -1; output o; } }",
            "transcode { engine x;y { output o; } }",
            "ingest a { enabled on; input { type file; } engine { output o; } }",
            "ingest a { enabled on; input { type file; url f.flv; } }",
            "ingest a { input { type device; url x; } }",
            "ingest a { } ingest a { }",
        ] {
            assert!(vhost(body).is_err(), "{body} accepted");
        }
    }

    #[test]
    fn ff_log_settings() {
        let cfg = Config::parse("ff_log_dir /dev/null; ff_log_level warning;", "t").unwrap();
        assert!(cfg.ff_log.discard());
        assert_eq!(cfg.ff_log.level, "warning");
        assert!(Config::parse("ff_log_level loud;", "t").is_err());
        assert_eq!(
            Config::default().ff_log.dir,
            std::path::PathBuf::from("./objs")
        );
    }
}
