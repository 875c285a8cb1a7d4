//! Certificates for a cluster: one CA, a certificate per node and one for
//! clients, all generated with rcgen.
//!
//! Node certificates carry the DNS name the SDK verifies
//! ([`quire_net::tls::NODE_SERVER_NAME`]), so nodes can move between
//! addresses without new certificates. Every key stays on this machine,
//! and is written readable by its owner only, never over an existing file
//! or through a symlink.

use quire_net::tls::NODE_SERVER_NAME;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// rcgen refused the parameters.
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The private key (PKCS#8).
    pub key: String,
}

impl Pem {
    /// Writes `cert` and `key` files. The key file must not exist yet: it
    /// is created with mode 0600 in the same call that creates it (no
    /// moment where it is readable by others), and never through a
    /// symlink, so a link planted at the key's path cannot redirect the
    /// key elsewhere or overwrite another file.
    pub fn write(&self, cert_path: &Path, key_path: &Path) -> Result<(), CertError> {
        write_file(cert_path, &self.cert, CERT_FILE_MODE, false)?;
        write_file(key_path, &self.key, KEY_FILE_MODE, true)
    }
}

/// Mode of a private key file: its owner's only.
pub const KEY_FILE_MODE: u32 = 0o600;
/// Mode of a certificate file: public material.
pub const CERT_FILE_MODE: u32 = 0o644;

/// Writes `text` to `path`, creating it with `mode`; with `create_new`, an
/// existing file (or a symlink, even a dangling one) is an error instead
/// of being replaced. A symlink at `path` is refused either way.
fn write_file(path: &Path, text: &str, mode: u32, create_new: bool) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options
        .write(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

/// A cluster CA able to sign node and client certificates.
pub struct ClusterCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl ClusterCa {
    /// A new self-signed CA named after the cluster.
    pub fn generate(cluster_name: &str) -> Result<Self, CertError> {
        Self::with_key(cluster_name, KeyPair::generate()?)
    }

    /// The CA of an existing cluster, from its key (`ca-key.pem`), to
    /// issue more certificates (a node added later). The certificate is
    /// made again from the key and the cluster's name; what it signs
    /// verifies against the original `ca.pem`, since issuer name and key
    /// are the same.
    pub fn load(cluster_name: &str, key_pem: &str) -> Result<Self, CertError> {
        Self::with_key(cluster_name, KeyPair::from_pem(key_pem)?)
    }

    fn with_key(cluster_name: &str, key: KeyPair) -> Result<Self, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Quire cluster CA {cluster_name}"),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// The CA certificate and key.
    pub fn pem(&self) -> Pem {
        Pem {
            cert: self.cert.pem(),
            key: self.key.serialize_pem(),
        }
    }

    /// A node certificate: valid for [`NODE_SERVER_NAME`], `localhost` and
    /// 127.0.0.1, usable as a TLS server.
    pub fn node(&self, node_name: &str) -> Result<Pem, CertError> {
        self.sign(
            node_name,
            vec![
                NODE_SERVER_NAME.to_string(),
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate, usable as a TLS client only.
    pub fn client(&self, client_name: &str) -> Result<Pem, CertError> {
        self.sign(client_name, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn sign(
        &self,
        common_name: &str,
        names: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<Pem, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}
