//! `vhost { ingest ID { } }`: ffmpeg pulls a file (looped in real time) or a stream
//! (restarted with back-off when it drops) and publishes it into this server.

use std::sync::Arc;

use super::supervisor::{find_program, ProcessSpec};
use super::transcode::engine_args;
use super::{
    common_args, file_safe, fill, local_rtmp, log_path, own_stream, EngineError, Kind, Wanted,
};
use crate::config::{Config, IngestInputType};
use crate::context::Context;

/// What should run according to `config`.
pub fn build(config: &Config) -> Vec<Result<Wanted, (String, EngineError)>> {
    let mut out = Vec::new();
    let port = local_rtmp(config)
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    for v in config.vhosts.iter().filter(|v| v.enabled) {
        for ing in v.ingests.iter().filter(|i| i.enabled) {
            let program = find_program(ing.ffmpeg.as_deref());
            for (n, e) in ing.engines.iter().enumerate() {
                let engine = if e.name.is_empty() {
                    n.to_string()
                } else {
                    e.name.clone()
                };
                let id = format!("ingest {}/{}/{engine}", v.name, ing.id);
                let program = match &program {
                    Ok(p) => p.clone(),
                    Err(m) => {
                        out.push(Err((id, m.clone().into())));
                        continue;
                    }
                };
                let mut args = common_args(config);
                if ing.input_type == IngestInputType::File {
                    args.extend(["-re".into(), "-stream_loop".into(), "-1".into()]);
                }
                super::transcode::params(&mut args, &e.perfile);
                if let Some(f) = e.iformat.as_ref().filter(|f| *f != "off") {
                    args.extend(["-f".into(), f.clone()]);
                }
                args.extend(["-i".into(), ing.input_url.clone()]);
                if e.enabled {
                    args.extend(engine_args(e));
                } else {
                    let format = e.oformat.clone().unwrap_or_else(|| "flv".into());
                    args.extend(
                        ["-vcodec", "copy", "-acodec", "copy", "-f", &format].map(String::from),
                    );
                }
                let (app, stream) = input_names(&ing.input_url);
                let output = fill(
                    &e.output,
                    &[
                        ("vhost", &v.name),
                        ("port", &port),
                        ("app", &app),
                        ("stream", &stream),
                        ("engine", &engine),
                    ],
                );
                args.extend(["-y".into(), output.clone()]);
                let log = log_path(
                    &config.ff_log,
                    &format!(
                        "ffmpeg-ingest-{}-{}-{}.log",
                        file_safe(&v.name),
                        file_safe(&ing.id),
                        file_safe(&engine)
                    ),
                );
                out.push(Ok(Wanted {
                    id: id.clone(),
                    kind: Kind::Ingest,
                    vhost: v.name.clone(),
                    input: None,
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
    }
    out
}

/// What `[app]` and `[stream]` mean in an ingest's output: the input URL's last two path
/// segments (`rtsp://cam/live/cam1` → `live`, `cam1`; `./media/show.flv` → `media`,
/// `show`), query and extension cut, every character that cannot go in an RTMP URL made
/// `_`. SRS leaves them as they are (its ingest has no stream of its own to name), so an
/// SRS output using them publishes a stream literally called `[stream]`; this names the
/// published stream after its source instead. An input without such a segment gives
/// `live` and `livestream`, SRS's default names.
pub fn input_names(input: &str) -> (String, String) {
    let path = input.split(['?', '#']).next().unwrap_or_default();
    let path = path
        .split_once("://")
        .map(|(_, rest)| rest.split_once('/').map_or("", |(_, p)| p))
        .unwrap_or(path);
    let mut segments = path
        .rsplit('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..");
    let stream = segments
        .next()
        .map(|s| s.rsplit_once('.').map_or(s, |(base, _)| base))
        .filter(|s| !s.is_empty())
        .map(file_safe)
        .unwrap_or_else(|| "livestream".into());
    let app = segments
        .next()
        .map(file_safe)
        .unwrap_or_else(|| "live".into());
    (app, stream)
}

/// Starts the ingests the config in force asks for and stops the others.
pub fn reconcile(ctx: &Arc<Context>) {
    let config = ctx.config();
    ctx.ffmpeg.apply(build(&config), |w| w.kind == Kind::Ingest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_stream_inputs() {
        let cfg = Config::parse(
            "listen 19350; ff_log_dir /dev/null; vhost v { \
             ingest f { enabled on; input { type file; url ./a.flv; } ffmpeg /bin/sh; \
               engine { enabled off; output rtmp://127.0.0.1:[port]/live?vhost=[vhost]/f; } } \
             ingest s { enabled on; input { type stream; url rtmp://far/live/x; } ffmpeg /bin/sh; \
               engine hd { enabled on; vcodec copy; acodec an; output rtmp://127.0.0.1:[port]/live/s; } } \
             ingest off { enabled off; input { type file; url x; } } }",
            "t",
        )
        .unwrap();
        let w: Vec<Wanted> = build(&cfg).into_iter().map(Result::unwrap).collect();
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].id, "ingest v/f/0");
        assert_eq!(
            &w[0].spec.args[5..],
            [
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                "./a.flv",
                "-vcodec",
                "copy",
                "-acodec",
                "copy",
                "-f",
                "flv",
                "-y",
                "rtmp://127.0.0.1:19350/live?vhost=v/f"
            ]
        );
        assert!(w[0].spec.log.is_none());
        assert_eq!(w[0].output.as_ref().unwrap().to_string(), "v/live/f");
        assert_eq!(
            &w[1].spec.args[5..],
            [
                "-i",
                "rtmp://far/live/x",
                "-vcodec",
                "copy",
                "-an",
                "-f",
                "flv",
                "-y",
                "rtmp://127.0.0.1:19350/live/s"
            ]
        );
        assert_eq!(w[1].id, "ingest v/s/hd");
    }

    /// Issue 15: `[app]`, `[stream]` and `[engine]` in an ingest's output are filled from
    /// its input URL and the engine's name (SRS fills `[vhost]` and `[port]` only).
    #[test]
    fn ingest_output_variables() {
        assert_eq!(
            input_names("rtsp://cam:554/live/cam1?token=x"),
            ("live".into(), "cam1".into())
        );
        assert_eq!(
            input_names("./doc/source.200kbps.768x320.flv"),
            ("doc".into(), "source.200kbps.768x320".into())
        );
        assert_eq!(input_names("a.flv"), ("live".into(), "a".into()));
        assert_eq!(
            input_names("rtsp://cam"),
            ("live".into(), "livestream".into())
        );
        assert_eq!(
            input_names("rtmp://h/a b/c;d"),
            ("a_b".into(), "c_d".into()),
            "nothing that could steer the URL"
        );
        assert_eq!(input_names("../../x/../"), ("live".into(), "x".into()));
        let cfg = Config::parse(
            "listen 19350; ff_log_dir /dev/null; vhost v { \
             ingest cam { enabled on; input { type stream; url rtsp://cam/show/cam1; } ffmpeg /bin/sh; \
               engine hd { enabled off; output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine]; } } }",
            "t",
        )
        .unwrap();
        let w: Vec<Wanted> = build(&cfg).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            w[0].spec.args.last().map(String::as_str),
            Some("rtmp://127.0.0.1:19350/show?vhost=v/cam1_hd")
        );
        assert_eq!(w[0].output.as_ref().unwrap().to_string(), "v/show/cam1_hd");
    }

    /// Issue 15: SRS's `ingest { }` without an id, and an engine's `perfile { }` and
    /// `iformat` (input options and container before `-i`), e.g. for an RTSP camera.
    #[test]
    fn ingest_without_id_and_input_options() {
        let cfg = Config::parse(
            "listen 19350; ff_log_dir /dev/null; vhost v { \
             ingest { enabled on; input { type stream; url rtsp://cam/1; } ffmpeg /bin/sh; \
               engine { enabled off; perfile { rtsp_transport tcp; re; } iformat rtsp; \
               output rtmp://127.0.0.1:[port]/live/cam; } } \
             ingest { enabled on; input { type file; url ./a.flv; } ffmpeg /bin/sh; \
               engine { enabled off; output rtmp://127.0.0.1:[port]/live/f; } } }",
            "t",
        )
        .unwrap();
        let ids: Vec<&str> = cfg
            .vhost("v")
            .unwrap()
            .ingests
            .iter()
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(ids, ["ingest-1", "ingest-2"]);
        let w: Vec<Wanted> = build(&cfg).into_iter().map(Result::unwrap).collect();
        assert_eq!(w[0].id, "ingest v/ingest-1/0");
        assert_eq!(
            &w[0].spec.args[5..11],
            ["-rtsp_transport", "tcp", "-re", "-f", "rtsp", "-i"]
        );
        assert_eq!(w[0].spec.args[11], "rtsp://cam/1");
        assert_eq!(w[1].id, "ingest v/ingest-2/0");
        assert!(Config::parse("vhost v { ingest a b { } }", "t").is_err());
        assert!(Config::parse("vhost v { ingest '' { } }", "t").is_err());
    }
}
