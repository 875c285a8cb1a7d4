//! The TLS rules and frame I/O over a real loopback QUIC connection: a
//! server set up with [`server_config`] and a client with
//! [`client_config`], as a node and the SDK are, with throw-away
//! certificates from rcgen.

use crate::frame::{read_frame, write_encoded, write_frame, FrameReadError};
use crate::test_ca::Ca;
use crate::tls::{client_config, server_config, PemOrigin, TlsError, TlsFiles, NODE_SERVER_NAME};
use quinn::ReadExactError;
use quire_shared::wire::{encode_frame, FrameError, Reply, Request, Response, ALPN};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

fn server(files: &TlsFiles) -> (quinn::Endpoint, SocketAddr) {
    let crypto = server_config(files).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    (endpoint, addr)
}

fn client(files: &TlsFiles) -> quinn::Endpoint {
    let crypto = client_config(files).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

/// A connected pair from one CA: (client side, node side).
async fn connected(dir: &Path) -> (quinn::Connection, quinn::Connection) {
    let ca = Ca::new();
    let (node, addr) = server(&ca.node(dir));
    let client = client(&ca.client(dir));
    let connecting = client.connect(addr, NODE_SERVER_NAME).unwrap();
    let (client_side, node_side) =
        tokio::join!(connecting, async { node.accept().await.unwrap().await });
    (client_side.unwrap(), node_side.unwrap())
}

/// Sends `bytes` on a new stream and returns what the node side's
/// `read_frame` made of them.
async fn node_reads(bytes: &[u8], max: u32) -> Result<Request, FrameReadError> {
    let dir = tempfile::tempdir().unwrap();
    let (client_side, node_side) = connected(dir.path()).await;
    let (mut send, _recv) = client_side.open_bi().await.unwrap();
    write_encoded(&mut send, bytes).await.unwrap();
    let (_send, mut recv) = node_side.accept_bi().await.unwrap();
    read_frame(&mut recv, max).await
}

#[tokio::test]
async fn both_sides_agree_on_alpn_and_a_request_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (client_side, node_side) = connected(dir.path()).await;
    for conn in [&client_side, &node_side] {
        let data = conn.handshake_data().unwrap();
        let data = data
            .downcast::<quinn::crypto::rustls::HandshakeData>()
            .unwrap();
        assert_eq!(data.protocol.as_deref(), Some(ALPN));
    }
    let (mut send, mut recv) = client_side.open_bi().await.unwrap();
    write_frame(&mut send, &Request::GetMembership)
        .await
        .unwrap();
    let (mut node_send, mut node_recv) = node_side.accept_bi().await.unwrap();
    let request: Request = read_frame(&mut node_recv, 1024).await.unwrap();
    assert_eq!(request, Request::GetMembership);
    let response = Response {
        epoch: 7,
        result: Ok(Reply::Dropped(3)),
    };
    write_frame(&mut node_send, &response).await.unwrap();
    let answer: Response = read_frame(&mut recv, 1024).await.unwrap();
    assert_eq!(answer, response);
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Ca::new();
    let (node, addr) = server(&cluster.node(dir.path()));
    let mut stranger = Ca::new().client(dir.path());
    // The stranger trusts the cluster's node, but the node must not trust it.
    stranger.ca = dir.path().join("node-ca.pem");
    let client = client(&stranger);
    let connecting = client.connect(addr, NODE_SERVER_NAME).unwrap();
    let (_, node_side) = tokio::join!(connecting, async { node.accept().await.unwrap().await });
    let e = node_side.unwrap_err();
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");
}

#[tokio::test]
async fn an_oversized_frame_is_refused_and_its_body_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let (client_side, node_side) = connected(dir.path()).await;
    let (mut send, _recv) = client_side.open_bi().await.unwrap();
    let frame = encode_frame(&Request::GetMembership);
    send.write_all(&[0, 0, 1, 0]).await.unwrap();
    let (_node_send, mut node_recv) = node_side.accept_bi().await.unwrap();
    let refused = read_frame::<Request>(&mut node_recv, 255).await;
    assert!(
        matches!(
            refused,
            Err(FrameReadError::Frame(FrameError::TooLarge {
                len: 256,
                max: 255
            }))
        ),
        "{refused:?}"
    );
    // The sender is told to stop instead of pushing the rest.
    assert_eq!(send.stopped().await.unwrap(), Some(0u32.into()));
    assert!(send.write_all(&frame).await.is_err());
}

#[tokio::test]
async fn a_cut_short_stream_is_a_stream_failure_not_a_bad_frame() {
    let short_header = node_reads(&[0, 0], 1024).await;
    assert!(
        matches!(
            short_header,
            Err(FrameReadError::Header(ReadExactError::FinishedEarly(2)))
        ),
        "{short_header:?}"
    );
    let short_body = node_reads(&[0, 0, 0, 10, 1, 2, 3], 1024).await;
    assert!(
        matches!(
            short_body,
            Err(FrameReadError::Body(ReadExactError::FinishedEarly(3)))
        ),
        "{short_body:?}"
    );
    let garbage = node_reads(&[0, 0, 0, 2, 0xff, 0xff], 1024).await;
    assert!(
        matches!(
            garbage,
            Err(FrameReadError::Frame(FrameError::Malformed(_)))
        ),
        "{garbage:?}"
    );
}

#[test]
fn missing_and_empty_pem_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = Ca::new().node(dir.path());
    let missing = TlsFiles {
        key: dir.path().join("absent.pem"),
        ..files.clone()
    };
    let Err(e) = server_config(&missing) else {
        panic!("a missing key loaded")
    };
    assert!(
        matches!(&e, TlsError::Pem { what: "private key", from: PemOrigin::File(path), .. } if path == &missing.key),
        "{e:?}"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let Err(e) = client_config(&TlsFiles {
        ca: empty.clone(),
        ..files
    }) else {
        panic!("an empty CA file loaded")
    };
    assert!(
        matches!(&e, TlsError::NoCertificate { what: "CA certificate", from: PemOrigin::File(path) } if path == &empty),
        "{e:?}"
    );
}

/// Records what a reader reserved, to see what a frame cost.
struct Recorded(usize);

impl crate::frame::PayloadBudget for Recorded {
    async fn reserve(&mut self, bytes: usize) {
        self.0 += bytes;
    }
}

/// A frame announced at 16 MiB of which 100 KiB arrive costs about what
/// arrived, not what was announced; a whole frame larger than a read
/// chunk arrives intact.
#[tokio::test]
async fn a_frame_costs_what_arrives_not_what_it_announces() {
    let dir = tempfile::tempdir().unwrap();
    let (client_side, node_side) = connected(dir.path()).await;
    let (mut send, _recv) = client_side.open_bi().await.unwrap();
    send.write_all(&(16u32 << 20).to_be_bytes()).await.unwrap();
    send.write_all(&[7u8; 100 << 10]).await.unwrap();
    send.finish().unwrap();
    let (_node_send, mut node_recv) = node_side.accept_bi().await.unwrap();
    let mut budget = Recorded(0);
    let cut =
        crate::frame::read_frame_within::<Request, _>(&mut node_recv, 16 << 20, &mut budget).await;
    assert!(
        matches!(
            cut,
            Err(FrameReadError::Body(ReadExactError::FinishedEarly(n))) if n == 100 << 10
        ),
        "{cut:?}"
    );
    assert!(
        budget.0 <= (100 << 10) + (64 << 10),
        "reserved {} bytes for 100 KiB received",
        budget.0
    );

    let big = Request::Get {
        store: "s".into(),
        key: vec![3; 300 << 10],
        hint: None,
    };
    let (mut send, _recv) = client_side.open_bi().await.unwrap();
    write_frame(&mut send, &big).await.unwrap();
    let (_node_send, mut node_recv) = node_side.accept_bi().await.unwrap();
    let mut budget = Recorded(0);
    let read: Request = crate::frame::read_frame_within(&mut node_recv, 1 << 20, &mut budget)
        .await
        .unwrap();
    assert_eq!(read, big);
    assert_eq!(budget.0, encode_frame(&big).len() - 4);
}

/// PEM handed over in memory makes the same client config as the files
/// it came from; broken PEM in memory says so instead of naming a file.
#[test]
fn pem_in_memory_loads_like_the_files_and_errors_say_memory() {
    use crate::tls::{client_config_from, TlsMaterial, TlsPem, TlsSource};
    let dir = tempfile::tempdir().unwrap();
    let files = Ca::new().client(dir.path());
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let pem = TlsPem {
        cert: read(&files.cert),
        key: read(&files.key),
        ca: read(&files.ca),
    };
    let from_memory = TlsMaterial::load(&TlsSource::Pem(pem.clone())).unwrap();
    let from_files = TlsMaterial::load(&TlsSource::Files(files.clone())).unwrap();
    assert_eq!(from_memory.certs, from_files.certs);
    assert_eq!(from_memory.ca, from_files.ca);
    assert!(client_config_from(&from_memory).is_ok());
    assert!(
        !format!("{pem:?}").contains("PRIVATE"),
        "the key never shows"
    );

    let broken = TlsPem {
        ca: String::new(),
        ..pem.clone()
    };
    let Err(e) = TlsMaterial::load(&TlsSource::Pem(broken)) else {
        panic!("an empty CA loaded")
    };
    assert!(
        matches!(
            &e,
            TlsError::NoCertificate {
                what: "CA certificate",
                from: PemOrigin::Memory
            }
        ),
        "{e:?}"
    );
    let no_key = TlsPem {
        key: "not pem".into(),
        ..pem
    };
    assert!(matches!(
        TlsMaterial::load(&TlsSource::Pem(no_key)),
        Err(TlsError::Pem {
            what: "private key",
            from: PemOrigin::Memory,
            ..
        })
    ));
}

/// A `[tls]` table holds either files or PEM text; a mix is refused with
/// the keys it expects.
#[test]
fn a_tls_table_is_files_or_pem_never_a_mix() {
    use crate::tls::TlsSource;
    let files: TlsSource = toml::from_str("cert = 'c.pem'\nkey = 'k.pem'\nca = 'ca.pem'").unwrap();
    assert!(files.files().is_some());
    let pem: TlsSource = toml::from_str("cert_pem = 'C'\nkey_pem = 'K'\nca_pem = 'A'").unwrap();
    assert!(matches!(pem, TlsSource::Pem(ref p) if p.cert == "C" && p.key == "K"));
    let again: TlsSource = toml::from_str(&toml::to_string(&pem).unwrap()).unwrap();
    assert_eq!(again, pem);
    let mixed = toml::from_str::<TlsSource>("cert = 'c.pem'\nkey_pem = 'K'\nca = 'ca.pem'");
    let e = mixed.unwrap_err().to_string();
    assert!(e.contains("cert_pem, key_pem and ca_pem"), "{e}");
}
