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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterConfig {
    pub mode: ClusterMode,
    /// `HOST:PORT` (or `HOST`, port 1935), as written; tried in order, failing over.
    pub origins: Vec<String>,
    /// Pass the player's (or publisher's) stream parameters to the origin, so that the
    /// origin's hooks see the client's token instead of the edge's empty one.
    pub token_traverse: bool,
}

impl ClusterConfig {
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
