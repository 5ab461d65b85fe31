//! "SRS config in, same behaviour out", as a tested promise (issue 15): a corpus of small
//! SRS-style configs checked with `sluice -t` (accepted, accepted with a warning, or
//! refused with the right words), each tied to its row of docs/srs-compat.md so the table
//! stays true; and the behaviours that only a running server shows (the SRS 1/2
//! vhost-level edge form pulling from its origin).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// What `sluice -t` must say about a config.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Exit 0, no warning.
    Accepted,
    /// Exit 0, a warning containing every word.
    Warned(&'static [&'static str]),
    /// Exit 1, the error containing every word.
    Refused(&'static [&'static str]),
}

/// One SRS-style config, what sluice says of it, and its row in docs/srs-compat.md
/// (`key` is the row's first cell, `status` its second).
struct Case {
    key: &'static str,
    status: &'static str,
    conf: &'static str,
    verdict: Verdict,
}

const CORPUS: &[Case] = &[
    Case {
        key: "`hls_keys on`",
        status: "same",
        conf: "vhost __defaultVhost__ { hls { enabled on; hls_keys on; hls_fragments_per_key 5; \
               hls_key_file [app]/[stream]-[seq].key; hls_key_file_path ./objs/nginx/html; \
               hls_key_url https://localhost:8080/; } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`hls_keys off`",
        status: "same",
        conf: "vhost __defaultVhost__ { hls { enabled on; hls_keys off; } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`hls_key_file` without `[seq]` or `.key`",
        status: "differs",
        conf: "vhost __defaultVhost__ { hls { enabled on; hls_keys on; \
               hls_key_file [app]/[stream].key; } }",
        verdict: Verdict::Refused(&["hls_key_file", "must contain [seq]"]),
    },
    Case {
        key: "`dvr_path` ending in `.mp4`",
        status: "differs",
        conf: "vhost __defaultVhost__ { dvr { enabled on; dvr_path ./objs/[app]/[stream].mp4; } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`http_remux` mounts ending in `.ts`, `.aac`, `.mp3`",
        status: "same",
        conf: "vhost __defaultVhost__ { http_remux { enabled on; mount [vhost]/[app]/[stream].ts; } } \
               vhost a.test { http_remux { enabled on; mount [vhost]/[app]/[stream].aac; } } \
               vhost b.test { http_remux { enabled on; mount [vhost]/[app]/[stream].mp3; } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`http_remux { hstrs }` (SRS 2)",
        status: "same",
        conf: "vhost __defaultVhost__ { http_remux { enabled on; hstrs on; mount [vhost]/[app]/[stream].flv; } }",
        verdict: Verdict::Warned(&["hstrs: always on"]),
    },
    Case {
        key: "`http_remux` mount ending in another extension (`.mp4`, `.m4a`)",
        status: "same",
        conf: "vhost __defaultVhost__ { http_remux { enabled on; mount [vhost]/[app]/[stream].mp4; } }",
        verdict: Verdict::Refused(&["mount", "must end with .flv, .ts, .aac or .mp3"]),
    },
    Case {
        key: "`[app]`, `[stream]`, `[engine]` in ingest outputs",
        status: "differs",
        conf: "vhost __defaultVhost__ { ingest cam { enabled on; input { type stream; url rtsp://cam/show/cam1; } \
               engine hd { enabled off; output rtmp://127.0.0.1:[port]/[app]/[stream]_[engine]; } } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`dvr_path` ending in `.flv`",
        status: "same",
        conf: "vhost __defaultVhost__ { dvr { enabled on; dvr_plan segment; dvr_duration 30; \
               dvr_path ./objs/[app]/[stream]-[timestamp].flv; } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "vhost-level `mode remote; origin H:P;` (SRS 1/2)",
        status: "same",
        conf: "vhost __defaultVhost__ { mode remote; origin 127.0.0.1:19350; token_traverse on; }",
        verdict: Verdict::Warned(&["vhost.mode", "SRS 1/2 vhost-level form, moved into cluster"]),
    },
    Case {
        key: "`cluster { mode remote; origin H:P; }`",
        status: "same",
        conf: "vhost __defaultVhost__ { cluster { mode remote; origin 127.0.0.1:19350; } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`mode remote` without `origin`",
        status: "differs",
        conf: "vhost __defaultVhost__ { mode remote; }",
        verdict: Verdict::Refused(&["mode remote needs at least one origin"]),
    },
    Case {
        key: "`daemon on` without `srs_log_tank`",
        status: "same",
        conf: "daemon on;",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`daemon on; srs_log_tank console;`",
        status: "differs",
        conf: "daemon on; srs_log_tank console;",
        verdict: Verdict::Warned(&["srs_log_tank console", "no log is kept"]),
    },
    Case {
        key: "`srs_log_tank`, `srs_log_file`, `srs_log_level`",
        status: "differs",
        conf: "srs_log_tank file; srs_log_file ./objs/srs.log; srs_log_level trace;",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`http_api { raw_api { } auth { } }`",
        status: "same",
        conf: "http_api { enabled on; listen 1985; crossdomain on; \
               raw_api { enabled on; allow_reload on; } \
               auth { enabled on; username admin; password admin; } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`play { atc; atc_auto; }` (SRS 3+), vhost-level `atc`, `atc_auto` (SRS 1/2)",
        status: "same",
        conf: "vhost __defaultVhost__ { play { atc on; atc_auto on; } }\n\
               vhost atc.srs.com { atc on; atc_auto on; }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`bandcheck { enabled; key; interval; limit_kbps; }`",
        status: "same",
        conf: "vhost bandcheck.srs.com { enabled on; chunk_size 65000; bandcheck { enabled on; \
               key \"35c9b402c12a7246868752e2878f7e0e\"; interval 30; limit_kbps 4000; } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`bandcheck` key and interval",
        status: "differs",
        conf: "vhost bandcheck.srs.com { bandcheck { enabled on; } }",
        verdict: Verdict::Refused(&["bandcheck is enabled without a key"]),
    },
    Case {
        key: "Duplicate single-valued directives",
        status: "same",
        conf: "vhost __defaultVhost__ { gop_cache on; gop_cache off; }",
        verdict: Verdict::Warned(&["gop_cache: duplicate directive, ignored", "as SRS does"]),
    },
    Case {
        key: "`forward HOST[:PORT];` (SRS 1/2 short form)",
        status: "same",
        conf: "vhost __defaultVhost__ { forward 127.0.0.1:19350; }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`ingest { }` without an id",
        status: "same",
        conf: "vhost __defaultVhost__ { ingest { enabled on; input { type file; url ./a.flv; } \
               engine { enabled off; output rtmp://127.0.0.1:[port]/live/a; } } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "engine `perfile { }`, `iformat`",
        status: "same",
        conf: "vhost __defaultVhost__ { ingest cam { enabled on; input { type stream; url rtsp://cam/1; } \
               engine { enabled off; perfile { rtsp_transport tcp; } iformat rtsp; \
               output rtmp://127.0.0.1:[port]/live/cam; } } }",
        verdict: Verdict::Accepted,
    },
    Case {
        key: "`threads { }` (SRS 5+ thread stats)",
        status: "not supported",
        conf: "threads { interval 10; }",
        verdict: Verdict::Warned(&["threads: known SRS directive, not implemented"]),
    },
    Case {
        key: "`http_hooks`",
        status: "same",
        conf: "vhost __defaultVhost__ { http_hooks { enabled on; \
               on_connect http://127.0.0.1:8085/api/v1/clients; \
               on_close http://127.0.0.1:8085/api/v1/clients; \
               on_publish http://127.0.0.1:8085/api/v1/streams; \
               on_unpublish http://127.0.0.1:8085/api/v1/streams; \
               on_play http://127.0.0.1:8085/api/v1/sessions; \
               on_stop http://127.0.0.1:8085/api/v1/sessions; \
               on_dvr http://127.0.0.1:8085/api/v1/dvrs; \
               on_hls http://127.0.0.1:8085/api/v1/hls; \
               on_hls_notify http://127.0.0.1:8085/api/v1/hls/[app]/[stream]/[ts_url][param]; } }",
        verdict: Verdict::Accepted,
    },
];

/// `sluice -t -c CONF` run in `cwd`: (exit code, stdout and stderr).
fn check_in(cwd: &Path, conf: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-t")
        .arg("-c")
        .arg(conf)
        .current_dir(cwd)
        .output()
        .expect("run sluice -t");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `sluice -t -c FILE`: (exit code, stdout and stderr).
fn check(dir: &Path, name: &str, conf: &str) -> (Option<i32>, String) {
    let path = dir.join(name);
    fs::write(&path, format!("{conf}\n")).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .current_dir(dir)
        .output()
        .expect("run sluice -t");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The status cell of the row whose first cell is `key`, in docs/srs-compat.md.
fn doc_status<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
    doc.lines().find_map(|l| {
        let mut cells = l.split('|').map(str::trim).skip(1);
        (cells.next()? == key).then(|| cells.next()).flatten()
    })
}

#[test]
fn srs_configs_are_accepted_warned_or_refused_as_documented() {
    let dir = unique_dir("srs-compat-corpus");
    let doc = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/srs-compat.md"
    ))
    .expect("docs/srs-compat.md");
    for (i, case) in CORPUS.iter().enumerate() {
        assert_eq!(
            doc_status(&doc, case.key),
            Some(case.status),
            "docs/srs-compat.md: the row {} must say {:?}",
            case.key,
            case.status
        );
        let (code, out) = check(&dir, &format!("case-{i}.conf"), case.conf);
        let label = format!("{} ({})", case.key, case.conf);
        match case.verdict {
            Verdict::Accepted => {
                assert_eq!(code, Some(0), "{label}: {out}");
                assert!(
                    !out.contains("warning"),
                    "{label}: unexpected warning: {out}"
                );
            }
            Verdict::Warned(words) => {
                assert_eq!(code, Some(0), "{label}: {out}");
                let warning = out
                    .lines()
                    .find(|l| l.contains("warning") && words.iter().all(|w| l.contains(w)));
                assert!(
                    warning.is_some(),
                    "{label}: no warning with {words:?}: {out}"
                );
            }
            Verdict::Refused(words) => {
                assert_eq!(code, Some(1), "{label}: {out}");
                let error = out
                    .lines()
                    .find(|l| l.contains("config error") && words.iter().all(|w| l.contains(w)));
                assert!(error.is_some(), "{label}: no error with {words:?}: {out}");
            }
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

/// The SRS 1/2 edge form (`mode remote; origin H:P;` right in the vhost) used to leave an
/// origin whose players waited forever; converted as SRS does, the edge pulls.
#[test]
fn legacy_vhost_level_edge_pulls_from_its_origin() {
    require_ffmpeg();
    let base = "daemon off;\nsrs_log_tank console;\nmax_connections 100;\n";
    let origin = Server::start_with(
        "compat-origin",
        &format!("{base}vhost __defaultVhost__ {{ }}\n"),
    );
    let edge = Server::start_with(
        "compat-edge",
        &format!(
            "{base}vhost __defaultVhost__ {{ mode remote; origin 127.0.0.1:{}; }}\n",
            origin.port
        ),
    );
    let mut publisher = spawn_publisher(&origin, AVC_AAC, &origin.url("live/old"), "origin");
    std::thread::sleep(Duration::from_millis(1500));
    let out = edge.tmp("edge-player.flv");
    let out_s = out.to_str().expect("utf-8 path").to_string();
    let mut player = Proc::spawn(
        "ffmpeg edge player",
        {
            let mut cmd = Command::new("ffmpeg");
            cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
            cmd.args(["-rw_timeout", "10000000", "-i", &edge.url("live/old")]);
            cmd.args(["-t", "3", "-c", "copy", "-f", "flv", "-y", &out_s]);
            cmd
        },
        edge.tmp("edge-player.log"),
    );
    player.expect_success(Duration::from_secs(30));
    let stats = flv_stats(&out);
    assert!(
        stats.video_frames > 30,
        "the edge did not pull from its origin: {stats:?}\n{}",
        edge.log()
    );
    assert!(
        edge.log().contains("moved into cluster"),
        "the conversion is said in the log:\n{}",
        edge.log()
    );
    publisher.kill();
}

/// Issue 15: a relative `include` is read from the working directory, as SRS does; the
/// including file's folder is the fallback, and a warning says which file was read when
/// that matters.
#[test]
fn relative_includes_resolve_like_srs() {
    let doc = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/srs-compat.md"
    ))
    .expect("docs/srs-compat.md");
    assert_eq!(doc_status(&doc, "`include` (relative path)"), Some("same"));
    let cwd = unique_dir("srs-compat-include");
    let conf_dir = cwd.join("conf");
    fs::create_dir_all(&conf_dir).unwrap();
    let main = conf_dir.join("main.conf");
    fs::write(&main, "include vhost.conf;\n").unwrap();

    // Only in the working directory: read from there, silently.
    fs::write(cwd.join("vhost.conf"), "vhost a { gop_cache off; }\n").unwrap();
    let (code, out) = check_in(&cwd, &main);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning"), "{out}");

    // In both, different: the working directory's wins (the other one would not load).
    fs::write(conf_dir.join("vhost.conf"), "max_connections 0;\n").unwrap();
    let (code, out) = check_in(&cwd, &main);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("include vhost.conf: read from the working directory")
            && out.contains("as SRS does"),
        "{out}"
    );

    // Only next to the including file: read from there, with a warning.
    fs::remove_file(cwd.join("vhost.conf")).unwrap();
    fs::write(conf_dir.join("vhost.conf"), "vhost b { }\n").unwrap();
    let (code, out) = check_in(&cwd, &main);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("include vhost.conf: not in the working directory"),
        "{out}"
    );

    // Nowhere: the error names both places.
    fs::remove_file(conf_dir.join("vhost.conf")).unwrap();
    let (code, out) = check_in(&cwd, &main);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("working directory") && out.contains("conf/vhost.conf"),
        "{out}"
    );
    let _ = fs::remove_dir_all(&cwd);
}
