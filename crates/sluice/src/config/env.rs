//! `SLUICE_*` environment variables override config directives (handy in
//! containers, where editing a file is awkward).
//!
//! Names: `SLUICE_` + the directive path in upper case, levels joined by a
//! double underscore: `SLUICE_LISTEN=1936`, `SLUICE_MAX_CONNECTIONS=3000`,
//! `SLUICE_HTTP_API__LISTEN=1986`, `SLUICE_HTTP_SERVER__DIR=/srv/html`.
//! `SLUICE_DEFAULT_VHOST__<path>` reaches into `vhost __defaultVhost__`, e.g.
//! `SLUICE_DEFAULT_VHOST__HLS__ENABLED=on`. The value is split on whitespace into
//! arguments and replaces the directive's arguments (it is added when absent);
//! the result is validated like the file itself, errors naming the variable.

use std::rc::Rc;

use super::parser::Directive;
use super::DEFAULT_VHOST;

pub const PREFIX: &str = "SLUICE_";
const DEFAULT_VHOST_KEY: &str = "DEFAULT_VHOST";

fn leaf(name: &str, args: Vec<String>, file: &Rc<str>) -> Directive {
    Directive {
        name: name.to_string(),
        args,
        children: Vec::new(),
        block: false,
        file: file.clone(),
        line: 0,
        end_line: 0,
    }
}

fn block(name: &str, args: Vec<String>, file: &Rc<str>) -> Directive {
    Directive {
        block: true,
        ..leaf(name, args, file)
    }
}

/// Applies every `SLUICE_*` variable of `vars` to `tree`; returns one line per
/// override applied, for the log.
pub fn apply(
    tree: &mut Vec<Directive>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<String> {
    let mut applied = Vec::new();
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    vars.sort();
    for (key, value) in vars {
        let path: Vec<String> = key[PREFIX.len()..]
            .split("__")
            .map(|p| p.to_ascii_lowercase())
            .collect();
        if path.iter().any(|p| p.is_empty()) {
            continue;
        }
        let file: Rc<str> = Rc::from(format!("environment {key}"));
        let args: Vec<String> = value.split_whitespace().map(str::to_string).collect();
        let mut level: &mut Vec<Directive> = tree;
        let mut parts = path.as_slice();
        if parts.first().map(String::as_str) == Some(&DEFAULT_VHOST_KEY.to_ascii_lowercase()) {
            let pos = level.iter().position(|d| {
                d.name == "vhost" && d.args.first().map(String::as_str) == Some(DEFAULT_VHOST)
            });
            let pos = match pos {
                Some(p) => p,
                None => {
                    level.push(block("vhost", vec![DEFAULT_VHOST.to_string()], &file));
                    level.len() - 1
                }
            };
            level = &mut level[pos].children;
            parts = &parts[1..];
        }
        let Some((last, blocks)) = parts.split_last() else {
            continue;
        };
        for name in blocks {
            let pos = match level.iter().position(|d| &d.name == name && d.block) {
                Some(p) => p,
                None => {
                    level.push(block(name, Vec::new(), &file));
                    level.len() - 1
                }
            };
            level = &mut level[pos].children;
        }
        // Several `listen` lines (or any repeated directive) collapse into the override.
        level.retain(|d| &d.name != last || d.block);
        level.push(leaf(last, args, &file));
        applied.push(format!("{key}={value}"));
    }
    applied
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn with_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        Config::parse_with_env(
            text,
            "t.conf",
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn overrides_top_level_nested_and_default_vhost() {
        let cfg = with_env(
            "listen 1935; listen 1936; max_connections 10;",
            &[
                ("SLUICE_LISTEN", "127.0.0.1:2000"),
                ("SLUICE_MAX_CONNECTIONS", "77"),
                ("SLUICE_HTTP_API__ENABLED", "on"),
                ("SLUICE_HTTP_API__LISTEN", "127.0.0.1:2001"),
                ("SLUICE_DEFAULT_VHOST__GOP_CACHE", "off"),
                ("PATH", "/bin"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.listen.len(), 1);
        assert_eq!(cfg.listen[0].port(), 2000);
        assert_eq!(cfg.max_connections, 77);
        assert!(cfg.http_api.enabled);
        assert_eq!(cfg.http_api.listen.port(), 2001);
        assert!(!cfg.resolve_vhost("x").unwrap().gop_cache);
    }

    #[test]
    fn bad_value_names_the_variable() {
        let err = with_env("", &[("SLUICE_MAX_CONNECTIONS", "lots")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SLUICE_MAX_CONNECTIONS"), "{err}");
        let err = with_env("", &[("SLUICE_NO_SUCH_THING", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SLUICE_NO_SUCH_THING"), "{err}");
    }
}
