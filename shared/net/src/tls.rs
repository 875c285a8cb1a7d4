//! TLS for both ends of a connection, so the client's rules and the node's
//! cannot drift apart.
//!
//! The rules: TLS 1.3 only; ALPN `quire/4`, which versions the whole wire
//! ([`quire_shared::wire::ALPN`]), so a peer speaking another version fails
//! the handshake instead of misreading frames; both peers present a
//! certificate and verify the other's against the cluster CA; ring is the
//! only crypto provider.
//!
//! The CA vouches for membership of the cluster. Names play no part beyond
//! satisfying TLS, which is why every node certificate carries the same
//! [`NODE_SERVER_NAME`] and nodes can change address without new
//! certificates.

use quinn::crypto::rustls::{NoInitialCipherSuite, QuicClientConfig, QuicServerConfig};
use quire_shared::wire::ALPN;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod source;
pub use source::{TlsMaterial, TlsPem, TlsSource};

/// TLS server name every node certificate carries; the cluster CA vouches
/// for membership, the name only satisfies TLS.
pub const NODE_SERVER_NAME: &str = "quire-node";

/// Older versions are refused: there are no old peers to talk to, and 1.3
/// is what QUIC requires anyway.
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// PEM files for one side's TLS identity and the cluster CA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// This side's certificate chain, signed by the cluster CA.
    pub cert: PathBuf,
    /// This side's private key.
    pub key: PathBuf,
    /// The cluster CA that the peer's certificate must chain to.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// All three paths, for resolving relative ones once a config is loaded
    /// ([`crate::config::resolve_relative`]); a field added here is then
    /// resolved by every config that embeds these files.
    pub fn paths_mut(&mut self) -> [&mut PathBuf; 3] {
        [&mut self.cert, &mut self.key, &mut self.ca]
    }
}

/// Where PEM material came from, for error messages: a file names its
/// path; PEM handed over in memory (a secret store, an environment
/// variable) has none to name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemOrigin {
    /// Read from this file.
    File(PathBuf),
    /// Handed over in memory ([`TlsPem`]).
    Memory,
}

impl std::fmt::Display for PemOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemOrigin::File(path) => write!(f, "{}", path.display()),
            PemOrigin::Memory => f.write_str("PEM in memory"),
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file is missing, unreadable or holds no valid PEM (or PEM
    /// given in memory does not parse).
    #[error("cannot load {what} from {from}: {source}")]
    Pem {
        /// What the file should hold ("CA certificate", "private key", ...).
        what: &'static str,
        /// The file, or memory.
        from: PemOrigin,
        /// The cause.
        source: pem::Error,
    },
    /// A certificate file parsed but holds no certificate.
    #[error("cannot load {what} from {from}: no certificate found")]
    NoCertificate {
        /// What the file should hold.
        what: &'static str,
        /// The file, or memory.
        from: PemOrigin,
    },
    /// A CA certificate cannot serve as a trust anchor.
    #[error("cannot load CA certificate from {from}: {source}")]
    BadCa {
        /// The CA file, or memory.
        from: PemOrigin,
        /// Why rustls refused it.
        source: rustls::Error,
    },
    /// rustls refused the material (for example a key that does not match
    /// its certificate).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the CA.
    #[error("tls: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// quinn found no cipher suite it can protect QUIC's initial packets
    /// with.
    #[error("tls: {0}")]
    Quic(#[from] NoInitialCipherSuite),
}

/// Loads a certificate chain from a PEM file; `what` names it in errors.
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let from = PemOrigin::File(path.to_owned());
    let certs = CertificateDer::pem_file_iter(path).and_then(|it| it.collect());
    certs_or_error(certs, what, from)
}

/// Parses a certificate chain from PEM text in memory.
pub fn parse_certs(
    pem_text: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem_text).collect();
    certs_or_error(certs, what, PemOrigin::Memory)
}

/// The one rule for both origins: PEM that parses must hold a certificate.
fn certs_or_error(
    certs: Result<Vec<CertificateDer<'static>>, pem::Error>,
    what: &'static str,
    from: PemOrigin,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    match certs {
        Err(source) => Err(TlsError::Pem { what, from, source }),
        Ok(certs) if certs.is_empty() => Err(TlsError::NoCertificate { what, from }),
        Ok(certs) => Ok(certs),
    }
}

/// Loads a private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        what: "private key",
        from: PemOrigin::File(path.to_owned()),
        source,
    })
}

/// Parses a private key from PEM text in memory.
pub fn parse_key(pem_text: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem_text).map_err(|source| TlsError::Pem {
        what: "private key",
        from: PemOrigin::Memory,
        source,
    })
}

/// The crypto provider: ring only, passed explicitly everywhere so no
/// second provider (aws-lc-rs) can be picked up from the graph and make
/// rustls panic at run time.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The trust anchors for the cluster CA certificates `ca`.
fn cluster_roots(
    ca: Vec<CertificateDer<'static>>,
    from: &PemOrigin,
) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            from: from.clone(),
            source,
        })?;
    }
    Ok(roots)
}

/// The node's side: its certificate, and a client certificate required and
/// chained to the cluster CA.
pub fn server_config(files: &TlsFiles) -> Result<QuicServerConfig, TlsError> {
    let provider = provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(cluster_roots(
            load_certs(&files.ca, "CA certificate")?,
            &PemOrigin::File(files.ca.clone()),
        )?),
        provider.clone(),
    )
    .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            load_certs(&files.cert, "node certificate")?,
            load_key(&files.key)?,
        )?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(QuicServerConfig::try_from(config)?)
}

/// The client's side: its certificate, and node certificates chained to
/// the cluster CA. Connect with [`NODE_SERVER_NAME`] as the server name.
pub fn client_config(files: &TlsFiles) -> Result<QuicClientConfig, TlsError> {
    client_config_from(&TlsMaterial::load(&TlsSource::Files(files.clone()))?)
}

/// [`client_config`] for material already loaded, from files or memory.
pub fn client_config_from(material: &TlsMaterial) -> Result<QuicClientConfig, TlsError> {
    let roots = cluster_roots(material.ca.clone(), &material.ca_from)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_root_certificates(roots)
        .with_client_auth_cert(material.certs.clone(), material.key.clone_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(QuicClientConfig::try_from(config)?)
}
