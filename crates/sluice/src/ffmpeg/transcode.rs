//! `vhost { transcode { engine NAME { } } }`: one ffmpeg per enabled engine of a published
//! stream, reading it back from this server and publishing the result as a new stream.
//!
//! No loops: a stream is not transcoded when one of our own processes publishes it (we know
//! each engine's output stream), nor, as in SRS, when its name ends with `_ENGINE` for an
//! engine of its vhost. The first rule is exact; the second also covers outputs we cannot map
//! back to a stream (another server that relays to us, a template without `[stream]`).

use std::sync::Arc;

use tracing::debug;

use super::supervisor::{find_program, ProcessSpec};
use super::{
    common_args, file_safe, fill, local_rtmp, log_path, own_stream, EngineError, Kind, Wanted,
};
use crate::config::{Config, EngineConfig};
use crate::context::Context;
use crate::hub::StreamKey;

pub(super) fn params(out: &mut Vec<String>, list: &[(String, String)]) {
    for (k, v) in list {
        out.push(format!("-{k}"));
        if !v.is_empty() {
            out.push(v.clone());
        }
    }
}

/// The codec and format options of an engine (everything between input and output URL).
pub fn engine_args(e: &EngineConfig) -> Vec<String> {
    let mut a = Vec::new();
    params(&mut a, &e.vfilter);
    match e.vcodec.as_deref() {
        Some("vn") => a.push("-vn".into()),
        Some(c) => {
            a.extend(["-vcodec".into(), c.to_string()]);
            if c != "copy" {
                if let Some(b) = e.vbitrate.filter(|b| *b > 0) {
                    a.extend(["-b:v".into(), format!("{b}k")]);
                }
                if let Some(f) = e.vfps {
                    a.extend(["-r".into(), format!("{f}")]);
                }
                if let (Some(w), Some(h)) = (e.vwidth, e.vheight) {
                    a.extend(["-s".into(), format!("{w}x{h}")]);
                }
                if let Some(p) = &e.vprofile {
                    a.extend(["-profile:v".into(), p.clone()]);
                }
                if let Some(p) = &e.vpreset {
                    a.extend(["-preset".into(), p.clone()]);
                }
                if let Some(t) = e.vthreads {
                    a.extend(["-threads".into(), t.to_string()]);
                }
                params(&mut a, &e.vparams);
            }
        }
        None => {}
    }
    match e.acodec.as_deref() {
        Some("an") => a.push("-an".into()),
        Some(c) => {
            a.extend(["-acodec".into(), c.to_string()]);
            if c != "copy" {
                if let Some(b) = e.abitrate.filter(|b| *b > 0) {
                    a.extend(["-b:a".into(), format!("{b}k")]);
                }
                if let Some(r) = e.asample_rate {
                    a.extend(["-ar".into(), r.to_string()]);
                }
                if let Some(c) = e.achannels {
                    a.extend(["-ac".into(), c.to_string()]);
                }
                params(&mut a, &e.aparams);
            }
        }
        None => {}
    }
    a.extend([
        "-f".into(),
        e.oformat.clone().unwrap_or_else(|| "flv".into()),
    ]);
    a
}

/// Whether `key` is (probably) the output of one of our transcoders.
fn is_transcoded(config: &Config, outputs: &[StreamKey], key: &StreamKey) -> bool {
    if outputs.contains(key) {
        return true;
    }
    config.vhost(&key.vhost).is_some_and(|v| {
        v.transcodes.iter().flat_map(|t| &t.engines).any(|e| {
            key.stream
                .strip_suffix(e.name.as_str())
                .is_some_and(|s| s.ends_with('_'))
        })
    })
}

/// A stream name is one URL path piece for ffmpeg; refuse those that would not survive that.
fn check_name(key: &StreamKey) -> Result<(), EngineError> {
    for (what, v) in [("app", &key.app), ("stream", &key.stream)] {
        if v.is_empty()
            || v.len() > 512
            || v.chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '/' || c == '?' || c == '#')
        {
            return Err(EngineError::UnsafeName {
                what,
                name: v.chars().take(64).collect(),
            });
        }
    }
    Ok(())
}

fn id(key: &StreamKey, engine: &str) -> String {
    format!("transcode {key}/{engine}")
}

/// What should run for `key` according to `config`, for a publish without a query string.
pub fn build(config: &Config, key: &StreamKey) -> Vec<Result<Wanted, (String, EngineError)>> {
    build_with_param(config, key, "")
}

/// `[param]` of an output URL: the publisher's query string with its `?` (SRS's
/// `req->param`), or nothing. A query that could reach past the URL's query part (a `/`,
/// `\`, space, control character or non-ASCII byte) gives nothing: the publisher must not
/// steer a transcoder's output to another stream.
fn param_var(raw: &str) -> String {
    let raw = raw.trim_start_matches('?');
    if raw.is_empty()
        || !raw
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
    {
        return String::new();
    }
    format!("?{raw}")
}

/// What should run for `key`, published with the query string `param` (for `[param]`).
pub fn build_with_param(
    config: &Config,
    key: &StreamKey,
    param: &str,
) -> Vec<Result<Wanted, (String, EngineError)>> {
    let param = param_var(param);
    let mut out = Vec::new();
    let Some(vhost) = config.vhost(&key.vhost).filter(|v| v.enabled) else {
        return out;
    };
    for t in vhost
        .transcodes
        .iter()
        .filter(|t| t.enabled && t.matches(&key.app, &key.stream))
    {
        for e in t.engines.iter().filter(|e| e.enabled) {
            let id = id(key, &e.name);
            let program = match find_program(t.ffmpeg.as_deref()) {
                Ok(p) => p,
                Err(m) => {
                    out.push(Err((id, m.into())));
                    continue;
                }
            };
            if let Err(m) = check_name(key) {
                out.push(Err((id, m)));
                continue;
            }
            let Some((host, port)) = local_rtmp(config) else {
                out.push(Err((id, EngineError::NoListener)));
                continue;
            };
            let port = port.to_string();
            let input = format!(
                "rtmp://{host}:{port}/{}?vhost={}/{}",
                key.app, key.vhost, key.stream
            );
            let output = fill(
                &e.output,
                &[
                    ("vhost", &key.vhost),
                    ("port", &port),
                    ("app", &key.app),
                    ("stream", &key.stream),
                    ("engine", &e.name),
                    ("param", &param),
                ],
            );
            let mut args = common_args(config);
            params(&mut args, &e.perfile);
            // SRS: `iformat off` lets ffmpeg guess; unset is flv.
            match e.iformat.as_deref() {
                Some("off") => {}
                f => args.extend(["-f".into(), f.unwrap_or("flv").to_string()]),
            }
            args.extend(["-i".into(), input]);
            args.extend(engine_args(e));
            args.extend(["-y".into(), output.clone()]);
            let log = log_path(
                &config.ff_log,
                &format!(
                    "ffmpeg-transcode-{}-{}-{}-{}.log",
                    file_safe(&key.vhost),
                    file_safe(&key.app),
                    file_safe(&key.stream),
                    file_safe(&e.name)
                ),
            );
            out.push(Ok(Wanted {
                id: id.clone(),
                kind: Kind::Transcode,
                vhost: key.vhost.clone(),
                input: Some(key.clone()),
                output: own_stream(config, &output),
                spec: ProcessSpec {
                    name: id,
                    program,
                    args,
                    log,
                },
            }));
        }
    }
    out
}

/// A stream started: run its engines.
pub fn on_published(ctx: &Arc<Context>, key: &StreamKey) {
    let config = ctx.config();
    if is_transcoded(&config, &ctx.ffmpeg.outputs(), key) {
        debug!("transcode: {key} is a transcoder's output; not transcoded again");
        return;
    }
    // `[param]`: the publisher's query string, from its client record.
    let param = ctx
        .hub
        .get(key)
        .and_then(|s| s.publisher())
        .and_then(|p| ctx.clients.get(&p.client_id))
        .map(|c| c.state().raw_param)
        .unwrap_or_default();
    let wanted = build_with_param(&config, key, &param);
    let k = key.clone();
    ctx.ffmpeg.apply(wanted, move |w| {
        w.kind == Kind::Transcode && w.input.as_ref() == Some(&k)
    });
}

/// A stream ended: its engines stop (their input is gone).
pub fn on_unpublished(ctx: &Arc<Context>, key: &StreamKey) {
    ctx.ffmpeg
        .stop_where(|w| w.kind == Kind::Transcode && w.input.as_ref() == Some(key));
    let prefix = format!("transcode {key}/");
    ctx.ffmpeg
        .lock()
        .errors
        .retain(|id, _| !id.starts_with(&prefix));
}

/// Brings the running transcoders in line with the live streams and the config in force.
pub fn reconcile(ctx: &Arc<Context>) {
    let live: Vec<StreamKey> = ctx
        .hub
        .sources()
        .into_iter()
        .filter(|s| s.is_publishing())
        .map(|s| s.key.clone())
        .collect();
    ctx.ffmpeg.stop_where(|w| {
        w.kind == Kind::Transcode && w.input.as_ref().is_some_and(|k| !live.contains(k))
    });
    ctx.ffmpeg.lock().errors.retain(|id, _| {
        !id.starts_with("transcode ")
            || live
                .iter()
                .any(|k| id.starts_with(&format!("transcode {k}/")))
    });
    for key in &live {
        on_published(ctx, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(body: &str) -> Config {
        Config::parse(
            &format!("listen 19350; ff_log_dir /tmp/fflogs; {body}"),
            "t",
        )
        .unwrap()
    }

    fn key(stream: &str) -> StreamKey {
        StreamKey {
            vhost: "v".into(),
            app: "live".into(),
            stream: stream.into(),
        }
    }

    const ENGINES: &str = "vhost v { transcode live { enabled on; ffmpeg /bin/sh; \
        engine sd { enabled on; vcodec libx264; vbitrate 300; vfps 25; vwidth 320; vheight 180; \
          vthreads 1; vprofile baseline; vpreset ultrafast; vparams { g 50; } acodec aac; \
          abitrate 64; asample_rate 44100; achannels 2; \
          output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine]; } \
        engine noaudio { enabled on; vcodec copy; acodec an; \
          output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine]; } \
        engine off { enabled off; } } }";

    /// Issue 15: `[param]` is the publisher's query (with its `?`), never a path; and an
    /// engine's `perfile`/`iformat` (`off`: ffmpeg guesses) come before `-i`.
    #[test]
    fn param_perfile_and_iformat() {
        let cfg = config(
            "vhost v { transcode { enabled on; ffmpeg /bin/sh; \
             engine sd { enabled on; vcodec copy; acodec copy; perfile { re; } iformat off; \
             output rtmp://127.0.0.1:[port]/[app]/[stream]_[engine][param]; } } }",
        );
        let args = |param: &str| {
            build_with_param(&cfg, &key("s"), param)
                .remove(0)
                .unwrap()
                .spec
                .args
        };
        let a = args("token=abc&x=1");
        assert_eq!(
            a.last().unwrap(),
            "rtmp://127.0.0.1:19350/live/s_sd?token=abc&x=1"
        );
        let i = a.iter().position(|x| x == "-i").unwrap();
        assert_eq!(a[i - 1], "-re", "perfile before -i, no -f with iformat off");
        assert_eq!(args("").last().unwrap(), "rtmp://127.0.0.1:19350/live/s_sd");
        for hostile in ["a=1/../other", "a b", "x=\\y", "é=1"] {
            assert_eq!(
                args(hostile).last().unwrap(),
                "rtmp://127.0.0.1:19350/live/s_sd",
                "{hostile}"
            );
        }
    }

    #[test]
    fn engine_arguments_follow_srs() {
        let cfg = config(ENGINES);
        let wanted: Vec<Wanted> = build(&cfg, &key("s"))
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(wanted.len(), 2);
        let sd = &wanted[0];
        assert_eq!(sd.id, "transcode v/live/s/sd");
        assert_eq!(
            sd.spec.args,
            [
                "-nostdin",
                "-hide_banner",
                "-nostats",
                "-loglevel",
                "info",
                "-f",
                "flv",
                "-i",
                "rtmp://127.0.0.1:19350/live?vhost=v/s",
                "-vcodec",
                "libx264",
                "-b:v",
                "300k",
                "-r",
                "25",
                "-s",
                "320x180",
                "-profile:v",
                "baseline",
                "-preset",
                "ultrafast",
                "-threads",
                "1",
                "-g",
                "50",
                "-acodec",
                "aac",
                "-b:a",
                "64k",
                "-ar",
                "44100",
                "-ac",
                "2",
                "-f",
                "flv",
                "-y",
                "rtmp://127.0.0.1:19350/live?vhost=v/s_sd"
            ]
        );
        assert_eq!(sd.output.as_ref().unwrap().to_string(), "v/live/s_sd");
        assert_eq!(
            sd.spec.log.as_deref(),
            Some(std::path::Path::new(
                "/tmp/fflogs/ffmpeg-transcode-v-live-s-sd.log"
            ))
        );
        let na = &wanted[1].spec.args;
        let tail: Vec<&str> = na.iter().skip(9).map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "-vcodec",
                "copy",
                "-an",
                "-f",
                "flv",
                "-y",
                "rtmp://127.0.0.1:19350/live?vhost=v/s_noaudio"
            ]
        );
    }

    #[test]
    fn hostile_names_stay_one_argument() {
        let cfg = config(ENGINES);
        let name = "a;touch${IFS}pwned`id`$(id)|x&y";
        let wanted = build(&cfg, &key(name));
        let w = wanted[0].as_ref().unwrap();
        assert!(w
            .spec
            .args
            .contains(&format!("rtmp://127.0.0.1:19350/live?vhost=v/{name}")));
        assert!(w
            .spec
            .log
            .as_ref()
            .unwrap()
            .display()
            .to_string()
            .ends_with("ffmpeg-transcode-v-live-a_touch__IFS_pwned_id___id__x_y-sd.log"));
        for bad in ["a b", "a/b", "a?x=1", "a\nb", ""] {
            assert!(build(&cfg, &key(bad))[0].is_err(), "{bad:?}");
        }
    }

    #[test]
    fn outputs_are_not_transcoded_again() {
        let cfg = config(ENGINES);
        assert!(is_transcoded(&cfg, &[], &key("s_sd")));
        assert!(is_transcoded(&cfg, &[key("other")], &key("other")));
        assert!(!is_transcoded(&cfg, &[], &key("s")));
        assert!(!is_transcoded(&cfg, &[], &key("ssd")));
    }

    #[test]
    fn scope_and_missing_ffmpeg() {
        let cfg = config(ENGINES);
        let mut k = key("s");
        k.app = "other".into();
        assert!(build(&cfg, &k).is_empty());
        let cfg = config(
            "vhost v { transcode { enabled on; ffmpeg /nonexistent/ffmpeg; \
             engine e { enabled on; output rtmp://x/[stream]; } } }",
        );
        let e = build(&cfg, &key("s")).remove(0).unwrap_err();
        assert!(e.1.to_string().contains("/nonexistent/ffmpeg"), "{e:?}");
    }
}
