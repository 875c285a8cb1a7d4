//! Client configuration, read from a TOML file (`client.toml`).
//!
//! Relative paths are resolved against the file's directory.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the SDK needs to reach a cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Node addresses (`host:port`) to pull membership from; any one that
    /// answers is enough.
    pub seeds: Vec<String>,
    /// The client's certificate, key and the cluster CA.
    pub tls: TlsFiles,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
}

/// PEM files for mutual TLS.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The client certificate chain, signed by the cluster CA.
    pub cert: PathBuf,
    /// The client's private key.
    pub key: PathBuf,
    /// The cluster CA that node certificates must chain to.
    pub ca: PathBuf,
}

/// Time limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// A whole get or put, all retries included.
    pub request_ms: u64,
    /// Establishing a QUIC connection to one node.
    pub connect_ms: u64,
    /// How long a put's coordinator gets to answer before the next home
    /// replica is asked to coordinate instead.
    pub attempt_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request_ms: 3_000,
            connect_ms: 1_000,
            attempt_ms: 1_000,
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read client config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid client config.
    #[error("invalid client config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// No seeds.
    #[error("client config lists no seeds")]
    NoSeeds,
}

impl ClientConfig {
    /// Reads a config file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: ClientConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.tls.cert,
            &mut config.tls.key,
            &mut config.tls.ca,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if config.seeds.is_empty() {
            return Err(ConfigError::NoSeeds);
        }
        Ok(config)
    }
}
