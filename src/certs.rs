//! Certificates for a cluster: one CA, and a certificate per node, client
//! and admin, all generated with rcgen.
//!
//! Every certificate names its holder's identity (role and name,
//! [`quire_shared::access`]) in a `quire://ROLE/NAME` URI, which nodes
//! authorize requests by. Node certificates also carry the DNS name the
//! SDK verifies ([`quire_net::tls::NODE_SERVER_NAME`]), so nodes can move
//! between addresses without new certificates. Every key stays on this
//! machine, and is written readable by its owner only, never over an
//! existing file or through a symlink.

use quire_net::tls::NODE_SERVER_NAME;
use quire_shared::access::{Principal, Role};
use quire_shared::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, Ia5String, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
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

impl Pem {
    /// Replaces the `cert` and `key` files of an identity in use: each is
    /// written beside its target and renamed over it, so a process
    /// reloading at any moment reads whole files (the key readable by its
    /// owner only from the start).
    pub fn replace(&self, cert_path: &Path, key_path: &Path) -> Result<(), CertError> {
        replace_file(key_path, &self.key, KEY_FILE_MODE)?;
        replace_file(cert_path, &self.cert, CERT_FILE_MODE)
    }
}

/// Replaces a public file (a CA bundle) in use: written beside its target
/// and renamed over it, so a process reloading at any moment reads a
/// whole file.
pub fn replace_public_file(path: &Path, text: &str) -> Result<(), CertError> {
    replace_file(path, text, CERT_FILE_MODE)
}

/// Writes `text` beside `path` with `mode` (created new, never through a
/// symlink) and renames it over `path`.
fn replace_file(path: &Path, text: &str, mode: u32) -> Result<(), CertError> {
    let tmp = path.with_extension("pem.new");
    let _ = std::fs::remove_file(&tmp);
    write_file(&tmp, text, mode, true)?;
    std::fs::rename(&tmp, path).map_err(|source| CertError::Write {
        path: path.to_owned(),
        source,
    })
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
        (params.not_before, params.not_after) = validity(CA_DAYS);
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

    /// A node certificate for the node with id `id`: it names the node
    /// (`quire://node/ID`, so a client can tell that the node answering
    /// at an address is the member the membership puts there), is valid
    /// for [`NODE_SERVER_NAME`], `localhost` and 127.0.0.1, and usable as
    /// a TLS server only.
    pub fn node(&self, id: NodeId, days: u32) -> Result<Pem, CertError> {
        let principal = Principal::node(id);
        let names = [NODE_SERVER_NAME, "localhost", "127.0.0.1"]
            .iter()
            .map(|n| SanType::DnsName(Ia5String::try_from(*n).expect("ASCII name")))
            .collect();
        self.sign(&principal, names, ExtendedKeyUsagePurpose::ServerAuth, days)
    }

    /// A certificate for a client or an admin, usable as a TLS client
    /// only: it names `principal`, which nodes authorize every request by.
    pub fn client(&self, principal: &Principal, days: u32) -> Result<Pem, CertError> {
        self.sign(
            principal,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            days,
        )
    }

    /// Signs a certificate made from `params` as they are, with a new key:
    /// for certificates the cluster must refuse (no identity, expired, not
    /// yet valid), which tests present to real nodes.
    pub fn sign_params(&self, params: CertificateParams) -> Result<Pem, CertError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    fn sign(
        &self,
        principal: &Principal,
        mut names: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        days: u32,
    ) -> Result<Pem, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        names.push(SanType::URI(Ia5String::try_from(principal.uri())?));
        params.subject_alt_names = names;
        params.distinguished_name.push(
            DnType::CommonName,
            format!("quire {} {}", principal.role.name(), principal.name),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        (params.not_before, params.not_after) = validity(days);
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// Leaf certificates (nodes, clients, admins) are valid this long unless
/// the operator says otherwise: a year, so a leaked key stops working
/// and rotation is a routine.
pub const LEAF_DAYS_DEFAULT: u32 = 365;
/// The cluster CA is valid ten years.
pub const CA_DAYS: u32 = 3650;

/// Valid from an hour ago (clocks between hosts disagree a little) for
/// `days` days.
fn validity(days: u32) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(i64::from(days)),
    )
}

/// The identity of `quire up`'s `client.toml`: an admin, the local
/// operator. Applications get client identities of their own with
/// `quire cert issue client`.
pub fn operator() -> Principal {
    Principal::new(Role::Admin, "operator").expect("a valid name")
}

/// A new node's id, named in its certificate before the node first
/// starts (the node takes it as its own).
pub fn fresh_node_id() -> NodeId {
    NodeId(rand::random::<u64>().max(1))
}

/// A positive 16-byte serial (the top bit clear): unique per
/// certificate, so a deny list can name one.
fn random_serial() -> [u8; 16] {
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    serial
}
