//! Node configuration, read from a TOML file.
//!
//! Relative paths in the file are resolved against the file's own directory,
//! so a config and its certificates can move together.

use quire_shared::limits::{
    FRAME_BYTES_CEILING, FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_CEILING, VALUE_BYTES_MAX_DEFAULT,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything a node needs to start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// UDP address to listen on; port 0 picks a free port (the bound address
    /// is written to `DATA_DIR/listen-addr`).
    pub listen: SocketAddr,
    /// Directory of the LMDB environment and the node's identity.
    pub data_dir: PathBuf,
    /// Certificates for mutual TLS.
    pub tls: TlsFiles,
    /// Size limits and connection limits.
    #[serde(default)]
    pub limits: Limits,
    /// LMDB settings.
    #[serde(default)]
    pub storage: StorageSettings,
}

/// PEM files for the node's TLS identity and the cluster CA.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The node's certificate chain.
    pub cert: PathBuf,
    /// The node's private key.
    pub key: PathBuf,
    /// The cluster CA that client certificates must chain to.
    pub ca: PathBuf,
}

/// Hard limits, each refused with a typed error when exceeded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest value accepted, in bytes (at most 16 MiB).
    pub value_bytes_max: usize,
    /// Largest request frame read, in bytes (at most 64 MiB).
    pub frame_bytes_max: u32,
    /// Concurrent requests (streams) one client connection may have open.
    pub streams_per_connection_max: u32,
    /// Bytes one connection may have in flight towards the node.
    pub connection_window_bytes: u32,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout_ms: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            value_bytes_max: VALUE_BYTES_MAX_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            streams_per_connection_max: 256,
            connection_window_bytes: 64 << 20,
            idle_timeout_ms: 30_000,
        }
    }
}

/// LMDB environment settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Largest size the database may grow to (virtual; costs nothing until
    /// used).
    pub map_size_bytes: u64,
    /// Most writes committed together in one transaction (group commit).
    pub batch_writes_max: usize,
    /// How often writes to `buffered` stores are flushed to disk: what an
    /// OS crash or power loss may undo (a process crash loses nothing).
    pub flush_interval_ms: u32,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            map_size_bytes: 16 << 30,
            batch_writes_max: 256,
            flush_interval_ms: 100,
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a node config.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl NodeConfig {
    /// Reads and checks a config file; relative paths become relative to the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.data_dir,
            &mut config.tls.cert,
            &mut config.tls.key,
            &mut config.tls.ca,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks limits against their ceilings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.value_bytes_max == 0 || l.value_bytes_max > VALUE_BYTES_CEILING {
            return Err(ConfigError::Invalid(format!(
                "limits.value_bytes_max must be 1..={VALUE_BYTES_CEILING}"
            )));
        }
        if (l.frame_bytes_max as usize) < l.value_bytes_max + 4096
            || l.frame_bytes_max > FRAME_BYTES_CEILING
        {
            return Err(ConfigError::Invalid(format!(
                "limits.frame_bytes_max must hold a maximum value plus 4096 bytes and be at most {FRAME_BYTES_CEILING}"
            )));
        }
        if l.streams_per_connection_max == 0
            || self.storage.batch_writes_max == 0
            || self.storage.flush_interval_ms == 0
        {
            return Err(ConfigError::Invalid(
                "limits.streams_per_connection_max, storage.batch_writes_max and storage.flush_interval_ms must be positive"
                    .into(),
            ));
        }
        Ok(())
    }
}
