//! `vhost { dvr { } }`: recording live streams to FLV files.

use std::time::Duration;

use super::TimeJitter;

/// How a publish is cut into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DvrPlan {
    /// One file per publish.
    Session,
    /// A new file every `duration`, at the next keyframe when `wait_keyframe` is on.
    Segment,
}

/// Which streams of the vhost are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DvrApply {
    All,
    /// `app/stream` pairs; nothing is recorded when empty (SRS's `dvr_apply none`).
    Streams(Vec<(String, String)>),
}

impl DvrApply {
    pub fn matches(&self, app: &str, stream: &str) -> bool {
        match self {
            DvrApply::All => true,
            DvrApply::Streams(list) => list.iter().any(|(a, s)| a == app && s == stream),
        }
    }
}

const DEFAULT_DVR_PATH: &str = "./objs/nginx/html/[app]/[stream].[timestamp].flv";
const DEFAULT_DVR_DURATION: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub struct DvrConfig {
    pub enabled: bool,
    pub apply: DvrApply,
    pub plan: DvrPlan,
    /// A path template with SRS's variables ([vhost] [app] [stream] [timestamp] [2006] ...).
    pub path: String,
    pub duration: Duration,
    pub wait_keyframe: bool,
    pub time_jitter: TimeJitter,
}

impl Default for DvrConfig {
    fn default() -> Self {
        DvrConfig {
            enabled: false,
            apply: DvrApply::All,
            plan: DvrPlan::Session,
            path: DEFAULT_DVR_PATH.to_string(),
            duration: DEFAULT_DVR_DURATION,
            wait_keyframe: true,
            time_jitter: TimeJitter::Full,
        }
    }
}
