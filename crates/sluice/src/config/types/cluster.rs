//! Typed config of the cluster side: `vhost { cluster { } }` (origin or edge) and
//! `vhost { forward { } }`.

/// SRS's `cluster.mode`: `local` serves its own publishers (an origin), `remote` pulls what
/// its players ask for from upstream and pushes its publishers there (an edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterMode {
    #[default]
    Local,
    Remote,
}

/// Upstream of an edge: `host:port` pairs, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub mode: ClusterMode,
    /// `HOST:PORT` (or `HOST`, port 1935), as written; tried in order, failing over.
    pub origins: Vec<String>,
    /// Pass the player's (or publisher's) stream parameters to the origin, so that the
    /// origin's hooks see the client's token instead of the edge's empty one.
    pub token_traverse: bool,
    /// SRS's `cluster { vhost X; }`: the vhost an edge asks its origin for (the edge's own
    /// vhost when unset).
    pub upstream_vhost: Option<String>,
    /// SRS's `origin_cluster on;` (mode local): a stream this origin does not have is
    /// looked up on the coworkers (and the directory) and pulled or redirected to.
    pub origin_cluster: bool,
    /// SRS's `coworkers HOST:PORT...;`: the HTTP API addresses of the other origins.
    pub coworkers: Vec<String>,
    /// sluice: `redirect on;` sends RTMP players of a stream held by another origin there
    /// (SRS's RTMP 302) instead of pulling it here. Off by default: ffmpeg cannot follow.
    pub redirect: bool,
    /// sluice: `directory redis://HOST:PORT/DB;`, the shared stream directory.
    pub directory: Option<String>,
    /// sluice: `directory_ttl SECONDS;` (default 10), renewed every third of it.
    pub directory_ttl_ms: u64,
    /// sluice: `advertise HOST:PORT;`, the RTMP address other nodes reach this origin at
    /// (registered in the directory, answered to coworker queries).
    pub advertise: Option<String>,
}

/// Default of `directory_ttl`.
pub const DEFAULT_DIRECTORY_TTL_MS: u64 = 10_000;

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            mode: ClusterMode::Local,
            origins: Vec::new(),
            token_traverse: false,
            upstream_vhost: None,
            origin_cluster: false,
            coworkers: Vec::new(),
            redirect: false,
            directory: None,
            directory_ttl_ms: DEFAULT_DIRECTORY_TTL_MS,
            advertise: None,
        }
    }
}

impl ClusterConfig {
    /// An origin of an origin cluster: asks its coworkers or the directory for streams it
    /// does not have.
    pub fn is_cluster_origin(&self) -> bool {
        self.mode == ClusterMode::Local && (self.origin_cluster || self.directory.is_some())
    }

    pub fn is_edge(&self) -> bool {
        self.mode == ClusterMode::Remote
    }
}

/// `forward { enabled; destination HOST:PORT...; backend URL; }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForwardConfig {
    pub enabled: bool,
    /// `HOST:PORT` destinations; each gets the stream under the same app/stream name.
    pub destinations: Vec<String>,
    /// `http://` URL asked on each publish for more RTMP URLs (SRS 5's on_forward).
    pub backend: Option<String>,
}
