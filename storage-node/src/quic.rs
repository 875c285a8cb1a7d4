//! The node's QUIC settings: what one connection may hold towards the
//! node, for a peer in good standing and for one that has earned a strike
//! (see `server::strikes`).

use crate::config::NodeConfig;
use crate::server::strikes::{STRUCK_STREAM_WINDOW_BYTES, STRUCK_WINDOW_BYTES};
use crate::NodeError;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Bytes a peer may send on one stream before the node has read them.
/// Much less than the largest frame: a frame the node refuses from its
/// header (too large for its kind) costs the node at most this much
/// received and decrypted, not the whole frame. A larger frame still
/// arrives whole, the window moving on as the node reads.
pub(crate) const STREAM_WINDOW_BYTES_MAX: u32 = 1 << 20;

/// The server config for connections from an address with a recent
/// strike; replaced with the other one when the node reloads its TLS
/// files.
pub(crate) type StruckConfig = Arc<RwLock<Arc<quinn::ServerConfig>>>;

/// The node's two server configs, with the same TLS files and limits.
pub(crate) struct ServerConfigs {
    /// For every connection, unless its address has a recent strike.
    pub normal: quinn::ServerConfig,
    /// For a connection from an address with a recent strike: small
    /// windows from its handshake on.
    pub struck: quinn::ServerConfig,
}

/// Both server configs from the node's TLS files and limits; made again
/// when the node reloads its certificates.
pub(crate) fn server_configs(config: &NodeConfig) -> Result<ServerConfigs, NodeError> {
    let quic = Arc::new(quire_net::tls::server_config(&config.tls)?);
    let server = |struck: bool| {
        let mut server_config = quinn::ServerConfig::with_crypto(quic.clone());
        server_config.transport_config(Arc::new(transport(config, struck)));
        // Connection attempts waiting for the accept loop: no more than
        // could be served at once.
        server_config.max_incoming(config.limits.connections_max as usize);
        server_config
    };
    Ok(ServerConfigs {
        normal: server(false),
        struck: server(true),
    })
}

fn transport(config: &NodeConfig, struck: bool) -> quinn::TransportConfig {
    let l = &config.limits;
    let (window, stream_window) = if struck {
        (STRUCK_WINDOW_BYTES, STRUCK_STREAM_WINDOW_BYTES)
    } else {
        (
            l.connection_window_bytes,
            (l.frame_bytes_max + 64).min(STREAM_WINDOW_BYTES_MAX),
        )
    };
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(l.streams_per_connection_max.into())
        .max_concurrent_uni_streams(0u32.into())
        .receive_window(window.into())
        .stream_receive_window(stream_window.into())
        .max_idle_timeout(Some(
            Duration::from_millis(l.idle_timeout_ms.into())
                .try_into()
                .expect("idle timeout fits a QUIC varint"),
        ))
        // Nothing in the protocol uses datagrams: a peer gets no buffer
        // to fill with them.
        .datagram_receive_buffer_size(None);
    t
}
