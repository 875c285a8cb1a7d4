//! Node configuration, read from a TOML file.
//!
//! Relative paths in the file are resolved against the file's own directory,
//! so a config and its certificates can move together. Loading and the TLS
//! files are shared with the client ([`quire_net`]); the settings here are
//! the node's own.

pub use quire_net::config::ConfigError;
use quire_net::config::{load_toml, resolve_relative};
pub use quire_net::tls::TlsFiles;
use quire_shared::limits::{
    FRAME_BYTES_CEILING, FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_CEILING, VALUE_BYTES_MAX_DEFAULT,
};
use quire_shared::ClusterId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Names the node's config in error messages.
const KIND: &str = "config";

/// Everything a node needs to start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// UDP address to listen on; port 0 picks a free port (the bound address
    /// is written to `DATA_DIR/listen-addr`).
    pub listen: SocketAddr,
    /// Directory of the LMDB environment and the node's identity.
    pub data_dir: PathBuf,
    /// The cluster this node belongs to (16 hex digits). A node without a
    /// membership document takes a first one only for this cluster, so a
    /// stray admin of another cluster cannot claim a fresh node. Without
    /// it, the first document offered decides (a warning at start).
    #[serde(
        default,
        with = "quire_shared::ids::hex_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_id: Option<ClusterId>,
    /// Certificates for mutual TLS.
    pub tls: TlsFiles,
    /// Size limits and connection limits.
    #[serde(default)]
    pub limits: Limits,
    /// LMDB settings.
    #[serde(default)]
    pub storage: StorageSettings,
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
    /// Test hook: skip every fsync after the node has opened its storage,
    /// so the power-loss tests can prove their filesystem loses what was
    /// never fsynced. The field exists only with the `fault-injection`
    /// feature, which only test builds enable (the root crate's
    /// dev-dependency); a release binary has no such field and, as every
    /// config section denies unknown fields, refuses to start with a
    /// config naming it. It cannot be switched on by accident in
    /// production, and it is never written when off.
    #[cfg(feature = "fault-injection")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub test_skip_fsync: bool,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            map_size_bytes: 16 << 30,
            batch_writes_max: 256,
            flush_interval_ms: 100,
            #[cfg(feature = "fault-injection")]
            test_skip_fsync: false,
        }
    }
}

impl NodeConfig {
    /// Reads and checks a config file; relative paths become relative to the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: NodeConfig = load_toml(path, KIND)?;
        resolve_relative(
            path,
            std::iter::once(&mut config.data_dir).chain(config.tls.paths_mut()),
        );
        config.validate()?;
        Ok(config)
    }

    /// Checks limits against their ceilings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            kind: KIND,
            message,
        };
        let l = &self.limits;
        if l.value_bytes_max == 0 || l.value_bytes_max > VALUE_BYTES_CEILING {
            return Err(invalid(format!(
                "limits.value_bytes_max must be 1..={VALUE_BYTES_CEILING}"
            )));
        }
        if (l.frame_bytes_max as usize) < l.value_bytes_max + 4096
            || l.frame_bytes_max > FRAME_BYTES_CEILING
        {
            return Err(invalid(format!(
                "limits.frame_bytes_max must hold a maximum value plus 4096 bytes and be at most {FRAME_BYTES_CEILING}"
            )));
        }
        if l.streams_per_connection_max == 0
            || self.storage.batch_writes_max == 0
            || self.storage.flush_interval_ms == 0
        {
            return Err(invalid(
                "limits.streams_per_connection_max, storage.batch_writes_max and storage.flush_interval_ms must be positive"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::StorageSettings;

    /// A build without the `fault-injection` feature (a release build)
    /// refuses a config that switches the fsync-skipping test hook on.
    /// Run with `cargo test -p quire-node`: a workspace test build enables
    /// the feature, and then this test is not compiled.
    #[cfg(not(feature = "fault-injection"))]
    #[test]
    fn a_build_without_fault_injection_refuses_the_fsync_test_hook() {
        let refused = toml::from_str::<StorageSettings>("test_skip_fsync = true");
        assert!(refused.is_err(), "{refused:?}");
    }

    #[test]
    fn the_fsync_test_hook_is_never_written_when_off() {
        let text = toml::to_string(&StorageSettings::default()).unwrap();
        assert!(!text.contains("test_skip_fsync"), "{text}");
    }
}
