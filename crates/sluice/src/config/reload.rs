//! Guards for replacing a running configuration (issue 24 item 4).
//!
//! Every directive has a default, so an empty file is a valid config that turns off the API,
//! the HTTP server and HLS and moves RTMP to 1935. A config file truncated or emptied by a
//! deploy must not be mistaken for that: a file (with its includes) that holds no directive
//! at all is refused by `sluice -t`, at start-up and by reload. The built-in defaults stay
//! reachable on purpose: start without `-c` (the embedded conf/sluice.conf), or write a file
//! with at least one directive (`listen 1935;` is a complete config).
//!
//! What a reload turns off or moves is listed by [`reload_changes`], so that the server logs it
//! at WARN: an operator must see "HTTP API disabled" without digging through INFO lines.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use super::parser::Directive;
use super::{Config, ConfigError};

/// Refuses a loaded file whose directive tree (includes expanded, before `SLUICE_*`
/// environment overrides, which are the same at every reload and so cannot tell a truncated
/// file from a complete one) is empty: comments and blank lines alone count as empty.
pub(super) fn check_not_empty(tree: &[Directive], path: &Path) -> Result<(), ConfigError> {
    if tree.is_empty() {
        return Err(ConfigError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Something a reload turns off or moves away, worth a WARN line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadChange {
    /// RTMP stops accepting on `stopped`; `started` are the addresses it listens on instead
    /// (empty when the listener is only removed).
    RtmpListenerStopped {
        stopped: Vec<SocketAddr>,
        started: Vec<SocketAddr>,
    },
    HttpApiDisabled {
        was: SocketAddr,
    },
    HttpApiMoved {
        from: SocketAddr,
        to: SocketAddr,
    },
    HttpServerDisabled {
        was: SocketAddr,
    },
    HttpServerMoved {
        from: SocketAddr,
        to: SocketAddr,
    },
    /// Removed or disabled: its clients are closed.
    VhostRemoved {
        vhost: String,
    },
    HlsDisabled {
        vhost: String,
    },
    DvrDisabled {
        vhost: String,
    },
    HttpRemuxDisabled {
        vhost: String,
    },
    /// Hooks often carry authentication: without them every publish and play is allowed.
    HooksDisabled {
        vhost: String,
    },
    /// Same for allow/deny rules.
    SecurityDisabled {
        vhost: String,
    },
    /// `srt_server` changed: the SRT listener keeps what it was started with.
    SrtServerNeedsRestart,
}

fn addrs(list: &[SocketAddr]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for ReloadChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadChange::RtmpListenerStopped { stopped, started } if started.is_empty() => {
                write!(f, "RTMP stops listening on {}", addrs(stopped))
            }
            ReloadChange::RtmpListenerStopped { stopped, started } => write!(
                f,
                "RTMP moves from {} to {}",
                addrs(stopped),
                addrs(started)
            ),
            ReloadChange::HttpApiDisabled { was } => {
                write!(f, "HTTP API disabled (was listening on {was})")
            }
            ReloadChange::HttpApiMoved { from, to } => write!(f, "HTTP API moves from {from} to {to}"),
            ReloadChange::HttpServerDisabled { was } => {
                write!(f, "HTTP server disabled (was listening on {was})")
            }
            ReloadChange::HttpServerMoved { from, to } => {
                write!(f, "HTTP server moves from {from} to {to}")
            }
            ReloadChange::VhostRemoved { vhost } => {
                write!(f, "vhost {vhost} removed or disabled: its clients are closed")
            }
            ReloadChange::HlsDisabled { vhost } => write!(f, "HLS turned off for vhost {vhost}"),
            ReloadChange::DvrDisabled { vhost } => write!(f, "DVR turned off for vhost {vhost}"),
            ReloadChange::HttpRemuxDisabled { vhost } => {
                write!(f, "HTTP-FLV (http_remux) turned off for vhost {vhost}")
            }
            ReloadChange::HooksDisabled { vhost } => write!(
                f,
                "http_hooks turned off for vhost {vhost}: publish and play are no longer checked by hooks"
            ),
            ReloadChange::SecurityDisabled { vhost } => write!(
                f,
                "security rules turned off for vhost {vhost}: every client is allowed"
            ),
            ReloadChange::SrtServerNeedsRestart => write!(
                f,
                "srt_server changed: the SRT listener keeps its start-up settings until a restart"
            ),
        }
    }
}

/// What going from `old` to `new` turns off or moves, in a stable order (listeners, HTTP, then
/// vhosts in `old`'s order). Additions and other value changes are not listed: they take
/// nothing away.
pub fn reload_changes(old: &Config, new: &Config) -> Vec<ReloadChange> {
    let mut out = Vec::new();
    let stopped: Vec<SocketAddr> = old
        .listen
        .iter()
        .filter(|a| !new.listen.contains(a))
        .copied()
        .collect();
    if !stopped.is_empty() {
        let started = new
            .listen
            .iter()
            .filter(|a| !old.listen.contains(a))
            .copied()
            .collect();
        out.push(ReloadChange::RtmpListenerStopped { stopped, started });
    }
    if old.http_api.enabled {
        let (was, now) = (old.http_api.listen, new.http_api.listen);
        if !new.http_api.enabled {
            out.push(ReloadChange::HttpApiDisabled { was });
        } else if was != now {
            out.push(ReloadChange::HttpApiMoved { from: was, to: now });
        }
    }
    if old.http_server.enabled {
        let (was, now) = (old.http_server.listen, new.http_server.listen);
        if !new.http_server.enabled {
            out.push(ReloadChange::HttpServerDisabled { was });
        } else if was != now {
            out.push(ReloadChange::HttpServerMoved { from: was, to: now });
        }
    }
    if old.srt_server != new.srt_server {
        out.push(ReloadChange::SrtServerNeedsRestart);
    }
    for o in old.vhosts.iter().filter(|v| v.enabled) {
        let vhost = || o.name.clone();
        let Some(n) = new.vhosts.iter().find(|n| n.name == o.name && n.enabled) else {
            out.push(ReloadChange::VhostRemoved { vhost: vhost() });
            continue;
        };
        if o.hls.enabled && !n.hls.enabled {
            out.push(ReloadChange::HlsDisabled { vhost: vhost() });
        }
        if o.dvr.enabled && !n.dvr.enabled {
            out.push(ReloadChange::DvrDisabled { vhost: vhost() });
        }
        if o.http_remux.enabled && !n.http_remux.enabled {
            out.push(ReloadChange::HttpRemuxDisabled { vhost: vhost() });
        }
        if o.http_hooks.enabled && !n.http_hooks.enabled {
            out.push(ReloadChange::HooksDisabled { vhost: vhost() });
        }
        if o.security.enabled && !n.security.enabled {
            out.push(ReloadChange::SecurityDisabled { vhost: vhost() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, "t.conf").unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_changed_srt_server_needs_a_restart() {
        let old = parse("srt_server { enabled on; listen 10080; }");
        let same = parse("srt_server { enabled on; listen 10080; }");
        let moved = parse("srt_server { enabled on; listen 10081; }");
        assert!(reload_changes(&old, &same).is_empty());
        assert_eq!(
            reload_changes(&old, &moved),
            vec![ReloadChange::SrtServerNeedsRestart]
        );
    }

    /// A scratch file per test (no tempfile dependency).
    fn file(tag: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-reload-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join("sluice.conf");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    #[test]
    fn empty_or_comment_only_files_are_refused_with_their_name() {
        for (tag, text) in [
            ("empty", ""),
            ("blank", "\n\n   \n"),
            ("comment", "# listen 1935;\n# vhost __defaultVhost__ { }\n"),
        ] {
            let path = file(tag, text);
            let e = Config::load(&path).expect_err(tag);
            let msg = e.to_string();
            assert!(matches!(e, ConfigError::Empty { .. }), "{tag}: {msg}");
            assert!(msg.contains(&path.display().to_string()), "{tag}: {msg}");
            assert!(msg.contains("no directive"), "{tag}: {msg}");
            let e =
                Config::load_with_env(&path, [("SLUICE_LISTEN".to_string(), "19350".to_string())])
                    .expect_err(tag);
            assert!(
                matches!(e, ConfigError::Empty { .. }),
                "{tag} with env: {e}"
            );
        }
    }

    #[test]
    fn an_include_of_nothing_is_empty_too() {
        let path = file("include", "");
        let main = path.with_file_name("main.conf");
        std::fs::write(&main, "include sluice.conf;\n").unwrap_or_else(|e| panic!("{e}"));
        let e = Config::load(&main).expect_err("include of an empty file");
        assert!(matches!(e, ConfigError::Empty { .. }), "{e}");
    }

    #[test]
    fn one_directive_is_a_complete_config() {
        let c = Config::load(&file("minimal", "# all defaults\nlisten 1935;\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen, vec![addr("0.0.0.0:1935")]);
        // Text that is not a file (the embedded default, tests) is not checked.
        assert!(Config::parse("", "embedded").is_ok());
    }

    #[test]
    fn truncated_inside_a_block_is_a_syntax_error() {
        let full = "listen 1935;\nvhost __defaultVhost__ {\n    hls { enabled on; }\n}\n";
        // Every cut inside the vhost block (after its "{", before its "}") is refused.
        let open = full.find('{').unwrap_or_default();
        let close = full.rfind('}').unwrap_or_default();
        for cut in open + 1..close {
            let path = file("cut", &full[..cut]);
            assert!(
                Config::load(&path).is_err(),
                "cut at {cut}: {:?}",
                &full[..cut]
            );
        }
    }

    const FULL: &str = "listen 1935 19350;
        http_api { enabled on; listen 1985; }
        http_server { enabled on; listen 8080; }
        vhost __defaultVhost__ {
            hls { enabled on; }
            dvr { enabled on; }
            http_remux { enabled on; }
            http_hooks { enabled on; on_publish http://127.0.0.1:8085/api/v1/streams; }
            security { enabled on; allow publish all; allow play all; }
        }
        vhost other.test { }";

    #[test]
    fn an_emptied_config_lists_everything_it_turns_off() {
        let changes = reload_changes(&parse(FULL), &parse(""));
        assert_eq!(
            changes,
            vec![
                ReloadChange::RtmpListenerStopped {
                    stopped: vec![addr("0.0.0.0:19350")],
                    started: vec![],
                },
                ReloadChange::HttpApiDisabled {
                    was: addr("0.0.0.0:1985")
                },
                ReloadChange::HttpServerDisabled {
                    was: addr("0.0.0.0:8080")
                },
                ReloadChange::HlsDisabled {
                    vhost: "__defaultVhost__".into()
                },
                ReloadChange::DvrDisabled {
                    vhost: "__defaultVhost__".into()
                },
                ReloadChange::HttpRemuxDisabled {
                    vhost: "__defaultVhost__".into()
                },
                ReloadChange::HooksDisabled {
                    vhost: "__defaultVhost__".into()
                },
                ReloadChange::SecurityDisabled {
                    vhost: "__defaultVhost__".into()
                },
                ReloadChange::VhostRemoved {
                    vhost: "other.test".into()
                },
            ]
        );
        let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(text[0], "RTMP stops listening on 0.0.0.0:19350");
        assert_eq!(text[1], "HTTP API disabled (was listening on 0.0.0.0:1985)");
        assert_eq!(text[3], "HLS turned off for vhost __defaultVhost__");
    }

    #[test]
    fn moves_are_listed_and_additions_are_not() {
        let old = parse("listen 1935; http_api { enabled on; listen 1985; } http_server { enabled on; listen 8080; }");
        let new = parse(
            "listen 1936; http_api { enabled on; listen 1986; } http_server { enabled on; listen 8081; }
             vhost __defaultVhost__ { hls { enabled on; } }",
        );
        assert_eq!(
            reload_changes(&old, &new),
            vec![
                ReloadChange::RtmpListenerStopped {
                    stopped: vec![addr("0.0.0.0:1935")],
                    started: vec![addr("0.0.0.0:1936")],
                },
                ReloadChange::HttpApiMoved {
                    from: addr("0.0.0.0:1985"),
                    to: addr("0.0.0.0:1986")
                },
                ReloadChange::HttpServerMoved {
                    from: addr("0.0.0.0:8080"),
                    to: addr("0.0.0.0:8081")
                },
            ]
        );
        assert_eq!(
            ReloadChange::RtmpListenerStopped {
                stopped: vec![addr("0.0.0.0:1935")],
                started: vec![addr("0.0.0.0:1936")],
            }
            .to_string(),
            "RTMP moves from 0.0.0.0:1935 to 0.0.0.0:1936"
        );
        // The reverse takes nothing away but the extra listeners and HLS.
        assert_eq!(reload_changes(&new, &new), vec![]);
        assert_eq!(reload_changes(&parse(FULL), &parse(FULL)), vec![]);
    }
}
