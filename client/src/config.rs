//! Client configuration: read from a TOML file (`client.toml`), or made
//! in code with [`ClientConfig::builder`].
//!
//! Relative paths are resolved against the file's directory. Loading and
//! the TLS rules are shared with the node ([`quire_net`]); the settings
//! here are the client's own. The TLS identity comes from PEM files or
//! from PEM text in memory ([`TlsSource`]).
//!
//! # Layout
//!
//! - this file: the config, its timeouts, how reads fan out, and loading
//!   from a file;
//! - `builder`: [`ClientConfigBuilder`], the config made in code.

mod builder;

pub use builder::{ClientConfigBuilder, MissingSetting};

pub use quire_net::config::ConfigError;
use quire_net::config::{load_toml, resolve_relative};
pub use quire_net::tls::{TlsFiles, TlsPem, TlsSource};
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
    /// The client's certificate, key and the cluster CA: files, or PEM
    /// text in memory.
    pub tls: TlsSource,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// How gets ask their replicas.
    #[serde(default)]
    pub reads: Reads,
}

/// How gets ask their replicas.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reads {
    /// How many replicas a get asks at once.
    pub fanout: ReadFanout,
}

/// How many replicas a get asks at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFanout {
    /// `R` replicas first; the others only when one fails, when the
    /// answers are slower than this client's 99th percentile, or when they
    /// differ. A third fewer requests per get at `N` = 3, `R` = 2; a
    /// replica that is behind while the `R` asked agree is repaired by
    /// anti-entropy rather than by the read.
    #[default]
    Quorum,
    /// All `N` replicas at once, as Dynamo does: every home replica is
    /// read, so every one that is behind is repaired by the read.
    All,
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
    /// A config made in code rather than read from a file: seeds, TLS from
    /// files or PEM in memory, timeouts.
    ///
    /// ```
    /// use quire_client::ClientConfig;
    /// use std::time::Duration;
    ///
    /// let config = ClientConfig::builder()
    ///     .seed("10.0.0.1:7400")
    ///     .seed("10.0.0.2:7400")
    ///     .tls_files("app.pem", "app-key.pem", "ca.pem")
    ///     .request_timeout(Duration::from_secs(2))
    ///     .build()?;
    /// assert_eq!(config.seeds.len(), 2);
    /// # Ok::<(), quire_client::ClientError>(())
    /// ```
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

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
