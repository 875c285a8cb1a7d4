//! Client configuration, read from a TOML file (`client.toml`).
//!
//! Relative paths are resolved against the file's directory. Loading and
//! the TLS files are shared with the node ([`quire_net`]); the settings here
//! are the client's own.

pub use quire_net::config::ConfigError;
use quire_net::config::{load_toml, resolve_relative};
pub use quire_net::tls::TlsFiles;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Names the client's config in error messages.
const KIND: &str = "client config";

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

impl ClientConfig {
    /// Reads a config file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: ClientConfig = load_toml(path, KIND)?;
        resolve_relative(path, config.tls.paths_mut());
        if config.seeds.is_empty() {
            return Err(ConfigError::Invalid {
                kind: KIND,
                message: "seeds must list at least one node address".into(),
            });
        }
        Ok(config)
    }
}
