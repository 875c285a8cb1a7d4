//! Where a client's TLS identity comes from: PEM files on disk, or PEM
//! text an application holds in memory (read from a secret store or an
//! environment variable, never written to disk). Both end up as one
//! [`TlsMaterial`], so the TLS rules in [`super`] apply the same way.
//!
//! In a TOML config the two are told apart by their keys: `cert`, `key`
//! and `ca` name files; `cert_pem`, `key_pem` and `ca_pem` hold the PEM
//! text itself. Mixing them, or leaving one out, is refused with a message
//! that says which keys are expected.

use super::{load_certs, load_key, parse_certs, parse_key, PemOrigin, TlsError, TlsFiles};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// PEM text for one side's identity and the cluster CA, held in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsPem {
    /// This side's certificate chain, signed by the cluster CA.
    pub cert: String,
    /// This side's private key.
    pub key: String,
    /// The cluster CA that the peer's certificate must chain to.
    pub ca: String,
}

/// The key is a secret: debug output (logs, panics) never shows it.
impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem")
            .field("cert", &format_args!("{} bytes", self.cert.len()))
            .field("key", &format_args!("<redacted>"))
            .field("ca", &format_args!("{} bytes", self.ca.len()))
            .finish()
    }
}

/// Where one side's TLS identity and the cluster CA come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTls", into = "RawTls")]
pub enum TlsSource {
    /// PEM files, read again on every (re)load: a rotation replaces the
    /// files and reloads.
    Files(TlsFiles),
    /// PEM text in memory: a rotation hands over new text.
    Pem(TlsPem),
}

impl TlsSource {
    /// The files, when the identity comes from files (tools that inspect
    /// or rewrite them, such as certificate expiry warnings).
    pub fn files(&self) -> Option<&TlsFiles> {
        match self {
            TlsSource::Files(files) => Some(files),
            TlsSource::Pem(_) => None,
        }
    }

    /// The file paths, for resolving relative ones against the config
    /// file's directory; none for PEM in memory.
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            TlsSource::Files(files) => files.paths_mut().into_iter().collect(),
            TlsSource::Pem(_) => Vec::new(),
        }
    }
}

impl From<TlsFiles> for TlsSource {
    fn from(files: TlsFiles) -> Self {
        TlsSource::Files(files)
    }
}

/// Lets calls that only read an identity take files or a source by
/// reference.
impl From<&TlsFiles> for TlsSource {
    fn from(files: &TlsFiles) -> Self {
        TlsSource::Files(files.clone())
    }
}

impl From<&TlsSource> for TlsSource {
    fn from(source: &TlsSource) -> Self {
        source.clone()
    }
}

impl From<TlsPem> for TlsSource {
    fn from(pem: TlsPem) -> Self {
        TlsSource::Pem(pem)
    }
}

/// The `[tls]` table as written: either the three file keys or the three
/// PEM keys.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_pem: Option<String>,
}

impl TryFrom<RawTls> for TlsSource {
    type Error = String;

    fn try_from(raw: RawTls) -> Result<Self, String> {
        match raw {
            RawTls {
                cert: Some(cert),
                key: Some(key),
                ca: Some(ca),
                cert_pem: None,
                key_pem: None,
                ca_pem: None,
            } => Ok(TlsSource::Files(TlsFiles { cert, key, ca })),
            RawTls {
                cert: None,
                key: None,
                ca: None,
                cert_pem: Some(cert),
                key_pem: Some(key),
                ca_pem: Some(ca),
            } => Ok(TlsSource::Pem(TlsPem { cert, key, ca })),
            _ => Err("tls needs either the files cert, key and ca, \
                      or the PEM text cert_pem, key_pem and ca_pem (not a mix)"
                .into()),
        }
    }
}

impl From<TlsSource> for RawTls {
    fn from(source: TlsSource) -> Self {
        match source {
            TlsSource::Files(f) => RawTls {
                cert: Some(f.cert),
                key: Some(f.key),
                ca: Some(f.ca),
                ..RawTls::default()
            },
            TlsSource::Pem(p) => RawTls {
                cert_pem: Some(p.cert),
                key_pem: Some(p.key),
                ca_pem: Some(p.ca),
                ..RawTls::default()
            },
        }
    }
}

/// One side's certificate chain and key and the cluster CA, parsed and
/// ready for rustls ([`super::client_config_from`]) or for sealing.
pub struct TlsMaterial {
    /// This side's certificate chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// This side's private key.
    pub key: PrivateKeyDer<'static>,
    /// The cluster CA certificates.
    pub ca: Vec<CertificateDer<'static>>,
    /// Where the CA came from, for error messages.
    pub ca_from: PemOrigin,
}

impl TlsMaterial {
    /// Reads and parses `source`; errors name the file (or memory) and
    /// what it should hold.
    pub fn load(source: &TlsSource) -> Result<Self, TlsError> {
        const CERT: &str = "client certificate";
        const CA: &str = "CA certificate";
        Ok(match source {
            TlsSource::Files(f) => Self {
                certs: load_certs(&f.cert, CERT)?,
                key: load_key(&f.key)?,
                ca: load_certs(&f.ca, CA)?,
                ca_from: PemOrigin::File(f.ca.clone()),
            },
            TlsSource::Pem(p) => Self {
                certs: parse_certs(p.cert.as_bytes(), CERT)?,
                key: parse_key(p.key.as_bytes())?,
                ca: parse_certs(p.ca.as_bytes(), CA)?,
                ca_from: PemOrigin::Memory,
            },
        })
    }
}
