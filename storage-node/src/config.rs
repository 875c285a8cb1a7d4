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
    /// TCP address to serve Prometheus metrics on (`GET /metrics`, plain
    /// HTTP: give it a loopback or monitoring-network address); none
    /// serves no metrics. Port 0 picks a free port (the bound address is
    /// written to `DATA_DIR/metrics-addr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Certificates for mutual TLS.
    pub tls: TlsFiles,
    /// Size limits and connection limits.
    #[serde(default)]
    pub limits: Limits,
    /// LMDB settings.
    #[serde(default)]
    pub storage: StorageSettings,
    /// The async runtime's threads.
    #[serde(default)]
    pub runtime: RuntimeSettings,
}

/// Most runtime threads a config may ask for.
pub const WORKER_THREADS_MAX: usize = 1024;

/// How the node's async runtime is built (see [`crate::runtime`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Threads that serve requests (QUIC, TLS, decoding, LMDB reads); 0,
    /// the default, is one per core. Nodes that share a machine (a local
    /// cluster, several nodes and their clients on a few cores) do better
    /// with 1, a current-thread runtime (measured with 3 nodes and the
    /// benchmark client on 2 cores: reads at 0.37x to 0.39x of the
    /// quic-echo baseline against 0.27x to 0.32x with one thread per
    /// core; `quire up` writes 1).
    /// Writes are committed by the node's writer thread either way.
    pub worker_threads: usize,
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
    /// A connection with no traffic for this long is closed. Must be
    /// positive: QUIC reads 0 as "never", which would let dead and idle
    /// peers hold connection slots forever.
    pub idle_timeout_ms: u32,
    /// Connections the node serves at once, from everyone; a connection
    /// over the cap is refused before its handshake.
    pub connections_max: u32,
    /// Connections the node serves at once from one IP address, so one
    /// peer cannot take every slot of [`Limits::connections_max`].
    pub connections_per_peer_max: u32,
    /// A request frame must arrive whole within this long of its stream
    /// being opened; a slower sender is cut off (its stream stopped, a
    /// typed `Unavailable` answer), so it cannot hold a stream slot and a
    /// buffer indefinitely.
    pub request_read_timeout_ms: u32,
    /// Bytes of request frames the node holds at once, across every
    /// connection, from the first byte read until the answer is sent. A
    /// request whose next bytes do not fit waits (its sender is held by
    /// QUIC flow control) until others finish; at least one frame.
    pub request_bytes_in_flight_max: u64,
    /// Partitions the node receives at once in a membership change, from
    /// every client together; a transfer page of another partition is
    /// refused (`Unavailable`) until one is done (see `crate::inbound`).
    pub transfers_in_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            value_bytes_max: VALUE_BYTES_MAX_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            streams_per_connection_max: 256,
            connection_window_bytes: 64 << 20,
            idle_timeout_ms: 30_000,
            connections_max: 1024,
            connections_per_peer_max: 128,
            request_read_timeout_ms: 10_000,
            request_bytes_in_flight_max: 256 << 20,
            transfers_in_max: 2,
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
    /// How often the commits of `buffered` stores are made durable (their
    /// meta page flushed; their pages are flushed at commit): what an OS
    /// crash or power loss may undo (a process crash loses nothing).
    pub flush_interval_ms: u32,
    /// Bytes of writes queued for the writer thread at once; a write that
    /// does not fit waits for the queue to drain. The queue is bounded in
    /// jobs too, but jobs differ in size by six orders of magnitude.
    pub writer_queue_bytes_max: u64,
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
            writer_queue_bytes_max: 256 << 20,
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
        let positive = [
            (
                "limits.streams_per_connection_max",
                l.streams_per_connection_max,
            ),
            ("limits.idle_timeout_ms", l.idle_timeout_ms),
            ("limits.connections_max", l.connections_max),
            (
                "limits.connections_per_peer_max",
                l.connections_per_peer_max,
            ),
            ("limits.request_read_timeout_ms", l.request_read_timeout_ms),
            ("limits.transfers_in_max", l.transfers_in_max),
            ("storage.flush_interval_ms", self.storage.flush_interval_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(format!(
                "{name} must be positive (0 would mean no bound at all)"
            )));
        }
        if self.runtime.worker_threads > WORKER_THREADS_MAX {
            return Err(invalid(format!(
                "runtime.worker_threads must be at most {WORKER_THREADS_MAX} (0 is one per core)"
            )));
        }
        if self.storage.batch_writes_max == 0 {
            return Err(invalid("storage.batch_writes_max must be positive".into()));
        }
        if l.connections_per_peer_max > l.connections_max {
            return Err(invalid(format!(
                "limits.connections_per_peer_max ({}) must be at most limits.connections_max ({})",
                l.connections_per_peer_max, l.connections_max
            )));
        }
        // QUIC carries the idle timeout as a varint of milliseconds; every
        // u32 fits, so only the lower bound needs checking.
        let frame = u64::from(l.frame_bytes_max);
        if l.request_bytes_in_flight_max < frame
            || l.request_bytes_in_flight_max > u64::from(u32::MAX)
        {
            return Err(invalid(format!(
                "limits.request_bytes_in_flight_max must hold one frame ({frame} bytes) and be below 4 GiB"
            )));
        }
        if self.storage.writer_queue_bytes_max < frame
            || self.storage.writer_queue_bytes_max > u64::from(u32::MAX)
        {
            return Err(invalid(format!(
                "storage.writer_queue_bytes_max must hold one frame ({frame} bytes) and be below 4 GiB"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Limits, NodeConfig, RuntimeSettings, StorageSettings, TlsFiles, WORKER_THREADS_MAX,
    };

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

    fn config_with(limits: Limits, storage: StorageSettings) -> NodeConfig {
        NodeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: "data".into(),
            cluster_id: None,
            metrics_listen: None,
            tls: TlsFiles {
                cert: "node.pem".into(),
                key: "node-key.pem".into(),
                ca: "ca.pem".into(),
            },
            limits,
            storage,
            runtime: RuntimeSettings::default(),
        }
    }

    /// The runtime's threads: 0 (one per core) and 1 (current thread) are
    /// accepted, past the ceiling refused with the setting named, and a
    /// file without the section gets 0.
    #[test]
    fn runtime_threads_are_validated_and_default_to_one_per_core() {
        let mut config = config_with(Limits::default(), StorageSettings::default());
        for ok in [0, 1, 4, WORKER_THREADS_MAX] {
            config.runtime.worker_threads = ok;
            assert!(config.validate().is_ok(), "{ok}");
        }
        config.runtime.worker_threads = WORKER_THREADS_MAX + 1;
        let e = config.validate().unwrap_err().to_string();
        assert!(e.contains("runtime.worker_threads must be at most"), "{e}");
        let parsed: RuntimeSettings = toml::from_str("").unwrap();
        assert_eq!(parsed.worker_threads, 0);
        let parsed: RuntimeSettings = toml::from_str("worker_threads = 1").unwrap();
        assert_eq!(parsed.worker_threads, 1);
        assert!(toml::from_str::<RuntimeSettings>("threads = 1").is_err());
    }

    /// Every resource bound is checked at load: zero (which QUIC or a
    /// semaphore would read as "no bound" or "never") and inconsistent
    /// pairs are refused with the setting's name.
    #[test]
    fn resource_bounds_are_validated_with_the_setting_named() {
        let refused = |limits: Limits, storage: StorageSettings| {
            config_with(limits, storage)
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(config_with(Limits::default(), StorageSettings::default())
            .validate()
            .is_ok());
        let e = refused(
            Limits {
                idle_timeout_ms: 0,
                ..Limits::default()
            },
            StorageSettings::default(),
        );
        assert!(e.contains("limits.idle_timeout_ms must be positive"), "{e}");
        for (limits, name) in [
            (
                Limits {
                    connections_max: 0,
                    ..Limits::default()
                },
                "limits.connections_max",
            ),
            (
                Limits {
                    request_read_timeout_ms: 0,
                    ..Limits::default()
                },
                "limits.request_read_timeout_ms",
            ),
            (
                Limits {
                    connections_per_peer_max: 2000,
                    connections_max: 1000,
                    ..Limits::default()
                },
                "limits.connections_per_peer_max",
            ),
            (
                Limits {
                    request_bytes_in_flight_max: 1 << 20,
                    ..Limits::default()
                },
                "limits.request_bytes_in_flight_max",
            ),
        ] {
            let e = refused(limits, StorageSettings::default());
            assert!(e.contains(name), "{e}");
        }
        let e = refused(
            Limits::default(),
            StorageSettings {
                writer_queue_bytes_max: 1024,
                ..StorageSettings::default()
            },
        );
        assert!(e.contains("storage.writer_queue_bytes_max"), "{e}");
    }

    #[test]
    fn the_fsync_test_hook_is_never_written_when_off() {
        let text = toml::to_string(&StorageSettings::default()).unwrap();
        assert!(!text.contains("test_skip_fsync"), "{text}");
    }
}
