//! The server's configuration: SRS's nginx-style file format and directive names, parsed to a
//! tree with file and line (`parser`), then to typed, validated structs (`build`).
//!
//! Directives SRS knows but sluice does not implement are accepted with a warning; unknown
//! ones are errors. See docs/config.md and conf/full.conf.

// All internal: the rest of the crate sees `Config`, its error, and the types below.
mod build;
mod env;
mod error;
mod known;
mod parser;
mod reload;
mod types;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::ConfigError;
pub use reload::{reload_changes, ReloadChange};
// What the rest of the crate names (the other section types are reached through `Config`'s
// fields); add a name here when a module outside `config` needs it.
pub use types::{
    network_of, AccessScope, AccessTarget, BandcheckConfig, ClusterMode, Config, DashConfig,
    DvrConfig, DvrPlan, EngineConfig, FfmpegLogConfig, HeartbeatConfig, HlsAcodec, HlsConfig,
    HlsOnError, HlsVcodec, HookUrl, HookUrlError, HttpHooksConfig, IngestInputType, LogConfig,
    LogLevel, LogTank, ReferConfig, RtcServerConfig, SecurityConfig, SecurityRule, TimeJitter,
    VhostConfig, VhostRtcConfig, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_VHOST,
};
pub use types::{ClusterConfig, DEFAULT_DIRECTORY_TTL_MS};
pub use types::{SrtServerConfig, VhostSrtConfig, DEFAULT_SRT_PORT};

impl Config {
    /// Reads `path` and every file it includes (a relative include from the working
    /// directory as SRS, else from the including file's directory, with a warning).
    /// A file without any directive is refused ([`ConfigError::Empty`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = parser::read_file(path)?;
        let name = path.display().to_string();
        let root = std::fs::canonicalize(path).ok();
        let dir = path.parent();
        let tree = parser::parse_with_includes(&text, &name, dir, root)?;
        let notes = parser::take_include_notes();
        reload::check_not_empty(&tree, path)?;
        let mut cfg = build::build(&tree)?;
        cfg.warnings.extend(notes);
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses text that does not come from a file on disk (the embedded default, tests);
    /// `file_name` only labels messages, and includes resolve against the working directory.
    pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigError> {
        let tree = parser::parse_with_includes(text, file_name, None, None)?;
        build::build(&tree)
    }

    /// Like [`Config::load`], with `SLUICE_*` overrides from `vars` (`SLUICE_VHOST__NAME__DIRECTIVE`-style names, see
    /// docs/config.md).
    pub fn load_with_env(
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = parser::read_file(path)?;
        let name = path.display().to_string();
        let root = std::fs::canonicalize(path).ok();
        let mut tree = parser::parse_with_includes(&text, &name, path.parent(), root)?;
        let notes = parser::take_include_notes();
        reload::check_not_empty(&tree, path)?;
        let applied = env::apply(&mut tree, vars);
        let mut cfg = build::build(&tree)?;
        cfg.warnings.extend(notes);
        cfg.warnings.extend(
            applied
                .into_iter()
                .map(|a| format!("environment override {a}")),
        );
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Like [`Config::parse`], with `SLUICE_*` overrides from `vars`.
    pub fn parse_with_env(
        text: &str,
        file_name: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = parser::parse_with_includes(text, file_name, None, None)?;
        let applied = env::apply(&mut tree, vars);
        let mut cfg = build::build(&tree)?;
        cfg.warnings.extend(
            applied
                .into_iter()
                .map(|a| format!("environment override {a}")),
        );
        Ok(cfg)
    }

    /// SRS's vhost resolution: the enabled vhost of that exact name, else `__defaultVhost__`.
    /// None when neither is enabled.
    pub fn resolve_vhost(&self, name: &str) -> Option<&VhostConfig> {
        self.vhosts
            .iter()
            .find(|v| v.enabled && v.name == name)
            .or_else(|| {
                self.vhosts
                    .iter()
                    .find(|v| v.enabled && v.name == DEFAULT_VHOST)
            })
    }

    /// The vhost of that name if any, enabled or not (for the API and reload diffs).
    pub fn vhost(&self, name: &str) -> Option<&VhostConfig> {
        self.vhosts.iter().find(|v| v.name == name)
    }
}
