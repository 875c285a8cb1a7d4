//! The SDK's conveniences on real nodes: a config built in code with PEM
//! text in memory, per-request options checked against N, typed stores
//! merging real siblings, and the metrics counting what requests went
//! through (a node stopped, hints written on a stand-in).

mod common;

use common::{test_timeouts, TestCluster};
use quire::{Client, ClientConfig, ClientError, Context, OperationKind, RequestOptions};
use std::collections::BTreeSet;
use std::time::Duration;

const STORE: &str = "default";

/// A client from a config made in code, its identity read into memory:
/// no TLS file is named anywhere.
async fn client_from_pem(cluster: &TestCluster) -> Client {
    let files = cluster
        .client_config
        .tls
        .files()
        .expect("the harness uses files");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let config = ClientConfig::builder()
        .seeds(cluster.client_config.seeds.clone())
        .tls_pem(read(&files.cert), read(&files.key), read(&files.ca))
        .timeouts(test_timeouts())
        .build()
        .expect("complete config");
    assert!(config.tls.files().is_none());
    Client::connect(config)
        .await
        .expect("connects with PEM in memory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pem_in_memory_and_request_options_on_a_real_cluster() {
    let cluster = TestCluster::start(3).await;
    let client = client_from_pem(&cluster).await;
    client
        .put(STORE, "k", "v", &Context::empty())
        .await
        .expect("put");

    // W above N is refused before anything is sent.
    let too_many = RequestOptions::new().w(4);
    let refused = client
        .put_opts(STORE, "other", "x", &Context::empty(), &too_many)
        .await;
    assert!(
        matches!(
            refused,
            Err(ClientError::InvalidOption {
                option: "w",
                value: 4,
                max: 3
            })
        ),
        "{refused:?}"
    );
    assert!(!client.get(STORE, "other").await.unwrap().found());

    // R = 1 and R = N both read the write (all three replicas hold it
    // once the put has settled).
    client.settle(Duration::from_secs(5)).await;
    for r in [1, 3] {
        let read = client
            .get_opts(STORE, "k", &RequestOptions::new().r(r))
            .await
            .expect("read");
        assert_eq!(read.values(), [b"v"], "r = {r}");
    }
    let zero = RequestOptions::new().timeout(Duration::ZERO);
    assert!(matches!(
        client.get_opts(STORE, "k", &zero).await,
        Err(ClientError::InvalidOption {
            option: "timeout",
            ..
        })
    ));
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_store_merges_real_siblings_and_update_collapses_them() {
    let cluster = TestCluster::start(3).await;
    let client = cluster.client().await;
    let carts = client
        .typed_store(STORE, |carts: Vec<BTreeSet<String>>| {
            carts.into_iter().flatten().collect()
        })
        .unwrap();
    // Two blind writes: concurrent, so both stay as siblings.
    for item in ["apple", "pear"] {
        let cart = BTreeSet::from([item.to_string()]);
        carts.put("cart", &cart, &Context::empty()).await.unwrap();
    }
    let raw = carts.siblings("cart").await.unwrap();
    assert_eq!(raw.values.len(), 2, "{:?}", raw.values);
    let read = carts.get("cart").await.unwrap();
    assert_eq!(read.siblings, 2);
    let both = BTreeSet::from(["apple".to_string(), "pear".to_string()]);
    assert_eq!(read.value.as_ref(), Some(&both));

    let after = carts
        .update("cart", |cart| {
            let mut cart = cart.unwrap_or_default();
            cart.insert("plum".into());
            cart
        })
        .await
        .unwrap();
    assert_eq!(after.siblings, 1, "the update replaced both siblings");
    assert_eq!(carts.siblings("cart").await.unwrap().values.len(), 1);
    assert_eq!(after.value.unwrap().len(), 3);

    // Bytes that are not a typed value: an error naming the key, not a
    // silently empty cart.
    client
        .put(STORE, "junk", "not postcard", &Context::empty())
        .await
        .unwrap();
    match carts.get("junk").await {
        Err(ClientError::Decode { key, .. }) => assert_eq!(key, "junk"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_operations_a_node_marked_down_and_hints_written() {
    // Four nodes, N = 3: a stand-in exists for each key.
    let mut cluster = TestCluster::start(4).await;
    cluster.kill(2).await;
    let client = cluster.client().await;
    for i in 0..12 {
        client
            .put(STORE, format!("k{i}"), "v", &Context::empty())
            .await
            .expect("put with a node down");
        client.get(STORE, format!("k{i}")).await.expect("get");
    }
    client.settle(Duration::from_secs(10)).await;
    let stats = client.stats();
    // At least the stopped node (a live node slow past the attempt
    // timeout on a loaded machine may be taken for down too).
    assert!(stats.nodes_marked_down >= 1, "{stats:?}");
    assert!(stats.hints_written >= 1, "{stats:?}");
    assert_eq!(stats.quorum_failures, 0, "{stats:?}");
    assert_eq!(client.metrics().operations(OperationKind::Put), 12);
    assert_eq!(client.metrics().operations(OperationKind::Get), 12);

    let mut registry = prometheus_client::registry::Registry::default();
    client.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let exported = text
        .lines()
        .find_map(|l| l.strip_prefix("quire_client_nodes_marked_down_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert_eq!(exported, Some(stats.nodes_marked_down), "{text}");
    client.close();
}

/// A first seed that never answers (a UDP socket nobody reads: the QUIC
/// handshake waits out the connect timeout, here 60 s) does not hold up
/// the client: the next seed is asked beside it after a short hedge, and
/// the client connects from that one. Seeds that all fail are all named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_first_seed_does_not_hold_up_connecting() {
    let cluster = TestCluster::start(3).await;
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let files = cluster.client_config.tls.files().unwrap().clone();
    let config = |seeds: Vec<String>| {
        ClientConfig::builder()
            .seeds(seeds)
            .tls_files(&files.cert, &files.key, &files.ca)
            .connect_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    };
    let mut seeds = vec![silent_addr.clone()];
    seeds.extend(cluster.client_config.seeds.clone());
    let started = std::time::Instant::now();
    let client = Client::connect(config(seeds)).await.expect("connects");
    // Far below the 60 s the silent seed would cost if waited for.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "connecting took {:?}",
        started.elapsed()
    );
    client
        .put(STORE, "seeded", "v", &Context::empty())
        .await
        .expect("put");

    // Every seed refusing: the error names each one.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let config = ClientConfig::builder()
        .seeds([closed_addr.clone(), "not an address".to_string()])
        .tls_files(&files.cert, &files.key, &files.ca)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    match Client::connect(config).await {
        Err(ClientError::NoSeedReachable(tried)) => {
            assert_eq!(tried.len(), 2, "{tried:?}");
            assert!(
                tried.iter().any(|t| t.contains("not an address")),
                "{tried:?}"
            );
        }
        other => panic!("expected NoSeedReachable, got {:?}", other.map(|_| ())),
    }
    drop(silent);
}
