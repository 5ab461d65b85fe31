//! DVR file names from SRS's path template.
//!
//! Written here rather than shared with HLS because no shared template module existed when
//! DVR was built; the variables are SRS's: `[vhost] [app] [stream] [timestamp]` and the Go-style
//! date parts `[2006] [01] [02] [15] [04] [05] [999]`. Times are UTC (no time-zone database is
//! needed and files sort the same on every host).

use std::path::{Component, Path, PathBuf};

use crate::hub::StreamKey;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("{what} \"{value}\" cannot be used in a file name")]
    UnsafeName { what: &'static str, value: String },
    #[error("the path \"{0}\" would leave the directory the template names")]
    Escapes(String),
}

/// A UTC calendar time, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl Civil {
    pub fn from_unix_millis(ms: u64) -> Civil {
        let secs = ms / 1000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (year, month, day) = media::civil::civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
            millis: (ms % 1000) as u32,
        }
    }
}

/// Now, for [`expand`]'s `unix_ms` (kept so the recorder's callers need not change).
pub fn now_millis() -> u64 {
    crate::util::unix_ms()
}

/// A value that comes from the network must stay one plain file-name piece.
fn check_piece(what: &'static str, value: &str) -> Result<(), PathError> {
    let bad = value.is_empty()
        || value == "."
        || value == ".."
        || value
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(PathError::UnsafeName {
            what,
            value: value.chars().take(64).collect(),
        });
    }
    Ok(())
}

fn parent_dirs(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, Component::ParentDir))
        .count()
}

/// Expands `template` for `key` at `unix_ms`. Refuses names that would put the file
/// anywhere else than where the template points (`..`, `/`, NUL...).
pub fn expand(template: &str, key: &StreamKey, unix_ms: u64) -> Result<PathBuf, PathError> {
    check_piece("vhost", &key.vhost)?;
    check_piece("app", &key.app)?;
    check_piece("stream", &key.stream)?;
    let t = Civil::from_unix_millis(unix_ms);
    let vars: [(&str, String); 11] = [
        ("[vhost]", key.vhost.clone()),
        ("[app]", key.app.clone()),
        ("[stream]", key.stream.clone()),
        ("[timestamp]", unix_ms.to_string()),
        ("[2006]", format!("{:04}", t.year)),
        ("[01]", format!("{:02}", t.month)),
        ("[02]", format!("{:02}", t.day)),
        ("[15]", format!("{:02}", t.hour)),
        ("[04]", format!("{:02}", t.minute)),
        ("[05]", format!("{:02}", t.second)),
        ("[999]", format!("{:03}", t.millis)),
    ];
    // One pass over the template so that a value containing "[app]" is never expanded again.
    let mut out = String::with_capacity(template.len() + 64);
    let mut shape = String::with_capacity(template.len());
    let mut rest = template;
    'outer: while !rest.is_empty() {
        if rest.starts_with('[') {
            for (name, value) in &vars {
                if let Some(after) = rest.strip_prefix(name) {
                    out.push_str(value);
                    shape.push('x');
                    rest = after;
                    continue 'outer;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
            shape.push(c);
        }
        rest = chars.as_str();
    }
    let path = PathBuf::from(&out);
    if parent_dirs(&path) != parent_dirs(Path::new(&shape)) {
        return Err(PathError::Escapes(out));
    }
    Ok(path)
}

/// Where a file is written until it is complete.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stream: &str) -> StreamKey {
        StreamKey {
            vhost: "__defaultVhost__".into(),
            app: "live".into(),
            stream: stream.into(),
        }
    }

    #[test]
    fn civil_time() {
        assert_eq!(
            Civil::from_unix_millis(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                millis: 0
            }
        );
        // 2024-02-29T13:45:07.089Z
        let c = Civil::from_unix_millis(1_709_214_307_089);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis),
            (2024, 2, 29, 13, 45, 7, 89)
        );
        // 2000-12-31T23:59:59.999Z
        let c = Civil::from_unix_millis(978_307_199_999);
        assert_eq!((c.year, c.month, c.day, c.hour), (2000, 12, 31, 23));
    }

    #[test]
    fn expands_every_variable() {
        let p = expand(
            "./rec/[vhost]/[app]/[stream]-[2006][01][02]-[15][04][05]-[999]-[timestamp].flv",
            &key("s"),
            1_709_214_307_089,
        )
        .unwrap();
        assert_eq!(
            p,
            PathBuf::from("./rec/__defaultVhost__/live/s-20240229-134507-089-1709214307089.flv")
        );
        // Unknown brackets stay as they are; values are not expanded twice.
        let p = expand("[x]/[stream].flv", &key("[app]"), 0).unwrap();
        assert_eq!(p, PathBuf::from("[x]/[app].flv"));
        // An operator's own ".." is theirs to write.
        assert!(expand("../rec/[stream].flv", &key("s"), 0).is_ok());
    }

    #[test]
    fn network_names_cannot_escape() {
        for bad in [
            "..",
            ".",
            "a/../../etc",
            "/etc/passwd",
            "a\\b",
            "a\0b",
            "",
            "a\nb",
        ] {
            assert!(
                expand("./rec/[stream]/x.flv", &key(bad), 0).is_err(),
                "{bad:?}"
            );
        }
        // Two halves that would only make ".." together.
        assert!(expand("./rec/.[stream]/f.flv", &key("."), 0).is_err());
        // Shell metacharacters are just characters in a file name.
        let p = expand("./[stream].flv", &key("a;touch${IFS}x"), 0).unwrap();
        assert_eq!(p, PathBuf::from("./a;touch${IFS}x.flv"));
    }

    #[test]
    fn temp_name() {
        assert_eq!(
            temp_path(Path::new("/a/b.flv")),
            PathBuf::from("/a/b.flv.tmp")
        );
    }
}
