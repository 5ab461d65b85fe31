//! Certificates and keys from PEM files, and the rustls server configs built on them.
//!
//! Every failure names the file and what is wrong with it (missing, unreadable, no
//! certificate in it, no key, a key that does not match the certificate), because an
//! operator meets these at start-up or reload and must fix them from the log alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("key {key} does not match certificate {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// The one crypto provider: ring (no C toolchain beyond what cargo builds, no OpenSSL).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> CertError {
    CertError::File {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads a PEM certificate chain (leaf first) and its private key (PKCS#8, PKCS#1
/// or SEC1), and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertError> {
    let pem = std::fs::read(cert).map_err(|e| file_error("certificate", cert, e))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error("certificate", cert, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(file_error(
            "certificate",
            cert,
            "no CERTIFICATE block in the file",
        ));
    }
    let pem = std::fs::read(key).map_err(|e| file_error("key", key, e))?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        file_error(
            "key",
            key,
            format!("no usable private key (PKCS#8, RSA or EC PEM): {e}"),
        )
    })?;
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| file_error("key", key, format!("unsupported private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| CertError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(ck))
}

/// Picks the certificate by the name the client asked for (SNI): a vhost's own when
/// it has one, else the listener's.
#[derive(Debug)]
pub struct SniResolver {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()));
        Some(named.unwrap_or(&self.default).clone())
    }
}

/// A server config: TLS 1.2 and 1.3 with rustls's safe defaults, no client
/// certificates, `alpn` offered (HTTP/1.1 for the HTTP listeners, none for RTMPS).
pub fn server_config(
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver {
            default,
            by_name: by_name
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client config for `rtmps://` upstreams (forward, edge): the system's trust
/// store (`/etc/ssl/certs`, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), as curl
/// and ffmpeg use. Certificates that fail to parse are skipped with a count.
pub fn client_config() -> Result<Arc<rustls::ClientConfig>, CertError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            "TLS client: no trusted root certificate found (errors: {:?}, unparsable: {ignored}); \
             rtmps:// upstreams will fail verification",
            found.errors
        );
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_certs::TestPki;

    fn write(dir: &Path, tag: &str, pki: &TestPki) -> Arc<CertifiedKey> {
        let (c, k) = (
            dir.join(format!("{tag}.crt")),
            dir.join(format!("{tag}.key")),
        );
        std::fs::write(&c, &pki.cert_pem).unwrap();
        std::fs::write(&k, &pki.key_pem).unwrap();
        load_certified_key(&c, &k).unwrap()
    }

    async fn handshake(server: Arc<rustls::ServerConfig>, sni: &str, trust: &TestPki) -> bool {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let ok = tokio_rustls::TlsConnector::from(trust.client_config())
            .connect(name, tcp)
            .await
            .is_ok();
        accept.await.unwrap();
        ok
    }

    /// A vhost's own certificate is chosen by the name the client asks for; any
    /// other name (or none) gets the listener's.
    #[tokio::test]
    async fn sni_picks_the_vhost_certificate() {
        let dir = std::env::temp_dir().join(format!("sluice-sni-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (listener_pki, vhost_pki) = (TestPki::new("localhost"), TestPki::new("v1.test"));
        let default = write(&dir, "default", &listener_pki);
        let by_name = HashMap::from([("V1.test".to_string(), write(&dir, "v1", &vhost_pki))]);
        let config = server_config(default, by_name, &[]).unwrap();
        assert!(handshake(config.clone(), "v1.test", &vhost_pki).await);
        assert!(!handshake(config.clone(), "v1.test", &listener_pki).await);
        assert!(handshake(config.clone(), "localhost", &listener_pki).await);
        assert!(!handshake(config, "localhost", &vhost_pki).await);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Each way an operator's files can be wrong is named, with the file.
    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("sluice-badcert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (TestPki::new("a"), TestPki::new("b"));
        let p = |n: &str| dir.join(n);
        std::fs::write(p("a.crt"), &a.cert_pem).unwrap();
        std::fs::write(p("b.key"), &b.key_pem).unwrap();
        std::fs::write(p("empty.crt"), "not a certificate\n").unwrap();
        std::fs::write(p("a.key"), &a.key_pem).unwrap();
        let cases = [
            (p("missing.crt"), p("a.key"), "missing.crt"),
            (p("empty.crt"), p("a.key"), "no CERTIFICATE block"),
            (p("a.crt"), p("missing.key"), "missing.key"),
            (p("a.crt"), p("a.crt"), "no usable private key"),
            (p("a.crt"), p("b.key"), "does not match"),
        ];
        for (cert, key, want) in cases {
            let e = load_certified_key(&cert, &key).unwrap_err().to_string();
            assert!(e.contains(want), "{cert:?} {key:?}: {e}");
        }
        assert!(load_certified_key(&p("a.crt"), &p("a.key")).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
