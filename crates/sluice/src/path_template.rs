//! SRS's path variables (`[vhost]`, `[app]`, `[stream]`, `[seq]`, `[timestamp]`, the time
//! fields `[2006] [01] [02] [15] [04] [05] [999]` and `[duration]`) and the check that keeps
//! the result inside its output root.
//!
//! Why the check: app and stream names come from the network. A publisher naming its stream
//! `../../etc/x` must not make the server write outside `hls_path` (or the DVR dir), so the
//! rendered path is split into components and refused when any of them could climb out.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// Longest rendered relative path we accept; far above any sane template, and it keeps a
/// hostile stream name from producing names the file system refuses in odd ways.
pub const MAX_RELATIVE_PATH: usize = 1024;

/// The values a template may use. Unset ones leave their variable in place, so a name can be
/// rendered before `[duration]` is known and again once it is.
#[derive(Debug, Clone, Default)]
pub struct Vars<'a> {
    pub vhost: &'a str,
    pub app: &'a str,
    pub stream: &'a str,
    pub seq: Option<u64>,
    /// What `[timestamp]` becomes: UNIX ms, or the floor index with `hls_ts_floor`.
    pub timestamp: Option<u64>,
    /// Wall-clock time for the date fields (UTC: the server has no time zone database).
    pub time: Option<SystemTime>,
    /// Milliseconds.
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path \"{0}\" would leave the output directory")]
    Escapes(String),
    #[error("path \"{0}\" is empty or names a directory")]
    Empty(String),
    #[error("path of {0} bytes is too long")]
    TooLong(usize),
    #[error("path \"{0}\" contains a control character")]
    Control(String),
}

/// Substitutes every known variable that has a value.
pub fn render(template: &str, vars: &Vars) -> String {
    let mut out = template
        .replace("[vhost]", vars.vhost)
        .replace("[app]", vars.app)
        .replace("[stream]", vars.stream);
    if let Some(seq) = vars.seq {
        out = out.replace("[seq]", &seq.to_string());
    }
    if let Some(ts) = vars.timestamp {
        out = out.replace("[timestamp]", &ts.to_string());
    }
    if let Some(d) = vars.duration_ms {
        out = out.replace("[duration]", &d.to_string());
    }
    if let Some(t) = vars.time {
        let ms = i64::try_from(crate::util::unix_ms_of(t)).unwrap_or(i64::MAX);
        let (y, mo, d) = media::civil::civil_from_days(ms.div_euclid(86_400_000));
        let in_day = ms.rem_euclid(86_400_000);
        out = out
            .replace("[2006]", &format!("{y:04}"))
            .replace("[01]", &format!("{mo:02}"))
            .replace("[02]", &format!("{d:02}"))
            .replace("[15]", &format!("{:02}", in_day / 3_600_000))
            .replace("[04]", &format!("{:02}", in_day / 60_000 % 60))
            .replace("[05]", &format!("{:02}", in_day / 1000 % 60))
            .replace("[999]", &format!("{:03}", in_day % 1000));
    }
    out
}

/// The normalized relative form of `rendered`: empty and `.` components dropped, anything
/// that could climb out (`..`, a root, a drive prefix) or confuse tools (control characters)
/// refused.
pub fn normalize(rendered: &str) -> Result<PathBuf, PathError> {
    if rendered.len() > MAX_RELATIVE_PATH {
        return Err(PathError::TooLong(rendered.len()));
    }
    if rendered.chars().any(char::is_control) {
        return Err(PathError::Control(rendered.escape_debug().to_string()));
    }
    let mut out = PathBuf::new();
    for part in rendered.split('/') {
        for c in Path::new(part).components() {
            match c {
                Component::Normal(n) => out.push(n),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(PathError::Escapes(rendered.to_string()));
                }
            }
        }
    }
    if out.as_os_str().is_empty() || rendered.ends_with('/') {
        return Err(PathError::Empty(rendered.to_string()));
    }
    Ok(out)
}

/// `root` joined with the normalized `rendered`: always a path under `root`.
pub fn under(root: &Path, rendered: &str) -> Result<PathBuf, PathError> {
    Ok(root.join(normalize(rendered)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use std::time::UNIX_EPOCH;

    fn vars<'a>() -> Vars<'a> {
        Vars {
            vhost: "v",
            app: "live",
            stream: "s",
            ..Vars::default()
        }
    }

    #[test]
    fn stream_variables() {
        assert_eq!(render("[app]/[stream].m3u8", &vars()), "live/s.m3u8");
        assert_eq!(
            render("[vhost]/[app]/[stream]-[seq].ts", &vars()),
            "v/live/s-[seq].ts"
        );
        let v = Vars {
            seq: Some(7),
            timestamp: Some(1234),
            duration_ms: Some(2002),
            ..vars()
        };
        assert_eq!(
            render("[stream]-[seq]-[timestamp]-[duration].ts", &v),
            "s-7-1234-2002.ts"
        );
    }

    #[test]
    fn time_fields_are_utc() {
        // 2024-02-29T13:05:09.042Z
        let t = UNIX_EPOCH + Duration::from_millis(1_709_211_909_042);
        let v = Vars {
            time: Some(t),
            ..vars()
        };
        assert_eq!(
            render("[2006]/[01]/[02]/[15][04][05]-[999].ts", &v),
            "2024/02/29/130509-042.ts"
        );
        let epoch = Vars {
            time: Some(UNIX_EPOCH),
            ..vars()
        };
        assert_eq!(render("[2006]-[01]-[02]", &epoch), "1970-01-01");
    }

    #[test]
    fn traversal_is_refused() {
        for bad in ["../x.ts", "live/../../x.ts", "live/..", "..", "a/b/../c.ts"] {
            assert!(
                matches!(normalize(bad), Err(PathError::Escapes(_))),
                "{bad}"
            );
        }
        let v = Vars {
            stream: "../../etc/passwd",
            ..vars()
        };
        assert!(under(Path::new("/srv/hls"), &render("[app]/[stream].m3u8", &v)).is_err());
        assert!(normalize("a\0b").is_err());
        assert!(normalize("a\nb").is_err());
        assert!(normalize("").is_err());
        assert!(normalize("live/").is_err());
        assert!(normalize(&"a".repeat(MAX_RELATIVE_PATH + 1)).is_err());
    }

    #[test]
    fn harmless_forms_are_normalized() {
        assert_eq!(
            under(Path::new("/srv/hls"), "/live//./s.m3u8"),
            Ok(PathBuf::from("/srv/hls/live/s.m3u8"))
        );
        // Dots inside a name are not traversal.
        assert_eq!(normalize("live/a..b.ts"), Ok(PathBuf::from("live/a..b.ts")));
        assert_eq!(normalize("live/...ts"), Ok(PathBuf::from("live/...ts")));
    }
}
