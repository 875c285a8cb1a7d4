//! The transport's ceiling: a bare quinn server with the node's TLS setup
//! that answers every request with a canned reply of the same size a node
//! would send, with no storage and no quorum behind it.

use crate::certs::{CertError, ClusterCa};
use quire_client::config::TlsFiles;
use quire_net::frame::{read_frame, write_encoded, write_frame, FrameReadError};
use quire_shared::limits::FRAME_BYTES_CEILING;
use quire_shared::wire::{encode_frame, FrameError, Reply, Request, Response};
use quire_shared::{Dvvset, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// A running echo server and a client connected to it.
pub struct EchoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A client with the matching certificates.
    pub client: EchoClient,
    endpoint: quinn::Endpoint,
}

/// One QUIC connection to the echo server, one stream per request: the
/// same framing and TLS as the SDK's, with nothing else on the way.
#[derive(Clone)]
pub struct EchoClient {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
}

impl EchoClient {
    async fn connect(tls: &TlsFiles, addr: SocketAddr) -> Result<Self, EchoError> {
        let setup = |e: &dyn std::fmt::Display| EchoError::Setup(e.to_string());
        let quic = quire_net::tls::client_config(tls).map_err(|e| setup(&e))?;
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("literal"))
            .map_err(|e| setup(&e))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        // The connection is made when the bench starts and may sit idle
        // while the stores are measured first: keep it alive as the SDK
        // does, or the server's idle timeout closes it and every echo
        // call fails.
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(std::time::Duration::from_secs(5)));
        config.transport_config(Arc::new(transport));
        endpoint.set_default_client_config(config);
        let connection = endpoint
            .connect(addr, quire_net::tls::NODE_SERVER_NAME)
            .map_err(|e| setup(&e))?
            .await
            .map_err(|e| setup(&e))?;
        Ok(Self {
            endpoint,
            connection,
        })
    }

    /// Sends one request and reads its answer.
    pub async fn call(&self, request: &Request) -> Result<Response, String> {
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(|e| e.to_string())?;
        write_frame(&mut send, request)
            .await
            .map_err(|e| e.to_string())?;
        read_frame(&mut recv, FRAME_BYTES_CEILING)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Why the echo baseline could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EchoError {
    /// Certificates.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// TLS or socket setup.
    #[error("echo server setup: {0}")]
    Setup(String),
}

impl EchoServer {
    /// Starts on 127.0.0.1 (free port) with certificates written to `dir`;
    /// gets are answered with a `value_bytes` value.
    pub async fn start(dir: &Path, value_bytes: usize) -> Result<Self, EchoError> {
        let ca = ClusterCa::generate("echo")?;
        ca.pem()
            .write(&dir.join("ca.pem"), &dir.join("ca-key.pem"))?;
        ca.node(quire_shared::NodeId(1), crate::certs::LEAF_DAYS_DEFAULT)?
            .write(&dir.join("node.pem"), &dir.join("node-key.pem"))?;
        ca.client(
            &quire_shared::access::Principal::new(quire_shared::access::Role::Client, "echo")
                .expect("valid name"),
            crate::certs::LEAF_DAYS_DEFAULT,
        )?
        .write(&dir.join("client.pem"), &dir.join("client-key.pem"))?;
        let setup = |e: &dyn std::fmt::Display| EchoError::Setup(e.to_string());
        let quic = quire_net::tls::server_config(&TlsFiles {
            cert: dir.join("node.pem"),
            key: dir.join("node-key.pem"),
            ca: dir.join("ca.pem"),
        })
        .map_err(|e| setup(&e))?;
        let server = quinn::ServerConfig::with_crypto(Arc::new(quic));
        let endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().expect("literal"))
            .map_err(|e| setup(&e))?;
        let addr = endpoint.local_addr().map_err(|e| setup(&e))?;
        let mut object = Dvvset::new();
        object.event(
            quire_shared::ActorId(1),
            Value::bytes(vec![b'x'; value_bytes], 1),
        );
        let get_reply = Arc::new(encode_frame(&Response {
            epoch: 1,
            result: Ok(Reply::Object(Some(object.clone()))),
        }));
        let put_reply = Arc::new(encode_frame(&Response {
            epoch: 1,
            result: Ok(Reply::Stored(object)),
        }));
        let accept = endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accept.accept().await {
                let (get_reply, put_reply) = (get_reply.clone(), put_reply.clone());
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        let (get_reply, put_reply) = (get_reply.clone(), put_reply.clone());
                        tokio::spawn(async move {
                            let reply = match read_frame(&mut recv, FRAME_BYTES_CEILING).await {
                                Ok(Request::Get { .. }) => get_reply,
                                Ok(_) | Err(FrameReadError::Frame(FrameError::Malformed(_))) => {
                                    put_reply
                                }
                                Err(_) => return,
                            };
                            // Encoded once at start-up: the baseline measures
                            // the transport, not serialisation.
                            let _ = write_encoded(&mut send, &reply).await;
                        });
                    }
                });
            }
        });
        let client = EchoClient::connect(
            &TlsFiles {
                cert: dir.join("client.pem"),
                key: dir.join("client-key.pem"),
                ca: dir.join("ca.pem"),
            },
            addr,
        )
        .await?;
        Ok(Self {
            addr,
            client,
            endpoint,
        })
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.client.connection.close(0u32.into(), b"done");
        self.client.endpoint.close(0u32.into(), b"done");
        self.endpoint.close(0u32.into(), b"done");
    }
}
