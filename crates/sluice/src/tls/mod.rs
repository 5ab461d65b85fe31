//! TLS for RTMPS and HTTPS: the certificates in force, bounded handshakes, and the
//! split connection the delivery path writes to.
//!
//! rustls (with the ring provider) through tokio-rustls: memory-safe, no OpenSSL to
//! install or patch, TLS 1.2 and 1.3 with safe defaults, and maintained by the same
//! people as the HTTP stack's TLS everywhere in Rust. See docs/tls.md.
//!
//! The server configs live here, behind a lock read once per handshake, so that a
//! reload (SIGHUP or the API) swaps certificates for new connections while open ones
//! keep the session they have. A bad certificate or key at reload keeps the old ones.

pub mod certs;
mod stream;
#[cfg(test)]
pub mod test_certs;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::info;

pub use certs::CertError;
pub use stream::{split, TlsReader, TlsWriter};

use crate::admission::{suppressed_note, Throttle};
use crate::config::Config;

/// A client must finish its TLS handshake within this, or it is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once, over every TLS listener. Each holds rustls's
/// handshake state and costs public-key operations; connections past this wait for a
/// turn (holding only their socket and a small task) within the same
/// [`HANDSHAKE_TIMEOUT`], so a burst of real clients (players reconnecting after a
/// network cut) gets through, while a flood of never-finished handshakes costs bounded
/// memory and CPU and ends at the time-out.
pub const MAX_HANDSHAKES: usize = 256;

/// The TLS client config of `rtmps://` upstreams (forward, edge), built on first
/// use: the system's trust store is read once per process. None when it cannot be
/// built (logged); such a connect then fails with a clear error.
pub fn client_config() -> Option<Arc<rustls::ClientConfig>> {
    static CLIENT: std::sync::OnceLock<Option<Arc<rustls::ClientConfig>>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| match certs::client_config() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("TLS client config: {e}");
                None
            }
        })
        .clone()
}

/// [`client_config`] for an `rtmps://` URL, nothing for a plain one (so that plain
/// upstreams never read the trust store).
pub fn client_config_for(url: &str) -> Option<Arc<rustls::ClientConfig>> {
    let secure = crate::forward::relay::split_scheme(url).0 == "rtmps";
    secure.then(client_config).flatten()
}

/// Which listener a TLS connection came in on: each has its own certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsListener {
    Rtmps,
    /// `http_api { https { } }`
    Api,
    /// `http_server { https { } }`, and both HTTP roles on one address.
    Server,
}

/// The server configs built from one config file.
#[derive(Clone, Default)]
pub struct Acceptors {
    by_listener: HashMap<TlsListener, Arc<rustls::ServerConfig>>,
}

impl Acceptors {
    /// Loads every certificate the config names (the enabled TLS listeners' and the
    /// vhosts' own for SNI). Any error fails the whole build.
    pub fn build(config: &Config) -> Result<Acceptors, CertError> {
        let mut loaded: HashMap<(PathBuf, PathBuf), Arc<rustls::sign::CertifiedKey>> =
            HashMap::new();
        let mut load = |cert: &PathBuf, key: &PathBuf| -> Result<_, CertError> {
            let k = (cert.clone(), key.clone());
            if let Some(ck) = loaded.get(&k) {
                return Ok(ck.clone());
            }
            let ck = certs::load_certified_key(cert, key)?;
            loaded.insert(k, ck.clone());
            Ok(ck)
        };
        let mut by_name = HashMap::new();
        for v in config.vhosts.iter().filter(|v| v.enabled) {
            if let Some(t) = &v.tls {
                by_name.insert(v.name.clone(), load(&t.cert, &t.key)?);
            }
        }
        let mut by_listener = HashMap::new();
        let wanted = [
            (TlsListener::Rtmps, &config.rtmps, &[][..]),
            (
                TlsListener::Api,
                &config.http_api.https,
                &[&b"http/1.1"[..]][..],
            ),
            (
                TlsListener::Server,
                &config.http_server.https,
                &[&b"http/1.1"[..]][..],
            ),
        ];
        for (which, l, alpn) in wanted {
            if !l.enabled {
                continue;
            }
            let default = load(&l.cert, &l.key)?;
            by_listener.insert(which, certs::server_config(default, by_name.clone(), alpn)?);
        }
        Ok(Acceptors { by_listener })
    }

    pub fn listeners(&self) -> usize {
        self.by_listener.len()
    }
}

/// Why a TLS connection was not established.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no certificate for this listener")]
    NoCertificate,
    #[error("TLS handshake not finished within {HANDSHAKE_TIMEOUT:?}")]
    TimedOut,
    #[error(
        "TLS handshake not started within {HANDSHAKE_TIMEOUT:?}: \
         {MAX_HANDSHAKES} handshakes were in progress all along"
    )]
    Busy,
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
}

/// What every TLS listener shares: the configs in force and the handshake bound.
pub struct Tls {
    acceptors: RwLock<Acceptors>,
    handshakes: Arc<Semaphore>,
    /// Handshakes refused (busy), timed out or failed: `/metrics`.
    pub failed: AtomicU64,
    pub completed: AtomicU64,
    /// Log lines of failed handshakes, of timed-out ones and of connections that waited
    /// past the cap, each kind on its own budget, so that a flood's line is never
    /// hidden behind a scanner's.
    failures: Throttle,
    timeouts: Throttle,
    busy: Throttle,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            acceptors: RwLock::new(Acceptors::default()),
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            failed: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failures: Throttle::default(),
            timeouts: Throttle::default(),
            busy: Throttle::default(),
        }
    }
}

impl Tls {
    /// Puts new certificates in force for the handshakes that start from now on.
    pub fn install(&self, acceptors: Acceptors) {
        *self
            .acceptors
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = acceptors;
    }

    fn config_for(&self, which: TlsListener) -> Option<Arc<rustls::ServerConfig>> {
        self.acceptors
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_listener
            .get(&which)
            .cloned()
    }

    /// The server's side of a handshake, bounded in time and in number. The caller
    /// logs nothing: failures are logged here, rate-limited (a scan or a flood
    /// must not flood the log).
    pub async fn accept(
        &self,
        which: TlsListener,
        tcp: TcpStream,
        peer: std::net::SocketAddr,
    ) -> Result<(TcpStream, rustls::ServerConnection), HandshakeError> {
        let r = self.handshake(which, tcp).await;
        match &r {
            Ok(_) => {
                self.completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let throttle = match e {
                    HandshakeError::Busy => &self.busy,
                    HandshakeError::TimedOut => &self.timeouts,
                    _ => &self.failures,
                };
                if let Some(n) = throttle.due() {
                    info!("TLS client {peer} closed: {e}{}", suppressed_note(n));
                }
            }
        }
        r
    }

    async fn handshake(
        &self,
        which: TlsListener,
        tcp: TcpStream,
    ) -> Result<(TcpStream, rustls::ServerConnection), HandshakeError> {
        let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        let permit = tokio::time::timeout_at(deadline, self.handshakes.clone().acquire_owned());
        let _permit = match permit.await {
            Ok(Ok(p)) => p,
            // The semaphore is never closed; a timed-out wait is the cap held all along.
            Ok(Err(_)) | Err(_) => return Err(HandshakeError::Busy),
        };
        let config = self
            .config_for(which)
            .ok_or(HandshakeError::NoCertificate)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Ok(tls.into_inner()),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Err(_) => Err(HandshakeError::TimedOut),
        }
    }

    /// Handshakes in progress now.
    pub fn in_flight(&self) -> usize {
        MAX_HANDSHAKES - self.handshakes.available_permits()
    }
}
