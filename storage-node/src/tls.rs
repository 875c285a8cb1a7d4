//! The node's TLS 1.3 configuration: its certificate, and client
//! certificates required and verified against the cluster CA.

use quire_shared::wire::ALPN;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file is missing or unreadable.
    #[error("cannot load {what} from {path}: {message}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: String,
        /// The cause.
        message: String,
    },
    /// rustls refused the material.
    #[error("tls: {0}")]
    Rustls(String),
}

fn pem_err(what: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        what,
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Loads a certificate chain from a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err("certificates", path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err("certificates", path, e))?;
    if certs.is_empty() {
        return Err(pem_err("certificates", path, "no certificate found"));
    }
    Ok(certs)
}

/// Loads a private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_err("private key", path, e))
}

/// The crypto provider: ring only, so no second provider can appear in the
/// graph and make rustls panic at run time.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls server config: TLS 1.3, ALPN `quire/1`, client
/// certificates required and chained to `ca`.
pub fn server_config(cert: &Path, key: &Path, ca: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c).map_err(|e| pem_err("CA certificate", ca, e))?;
    }
    let provider = provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}
