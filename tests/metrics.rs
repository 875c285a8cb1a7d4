//! Each node serves Prometheus metrics over HTTP: scraped here with real
//! HTTP requests from a cluster of real nodes, found the way an operator
//! finds them (`quire status --json`, a separate process), after real
//! traffic: puts, gets, a refused request, and hints held for a stopped
//! node.

mod common;

use common::TestCluster;
use quire::shared::wire::{ErrorCode, Request};
use quire::Context;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const KEYS: usize = 20;

/// An HTTP answer: status code, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends `request` (a whole HTTP/1.1 request head) to `url`'s host and
/// reads the answer until the node closes the connection.
fn http(url: &str, request: &str) -> Answer {
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("an http URL");
    let mut stream = TcpStream::connect(host).expect("metrics port accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .expect("an answer, then close");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    Answer {
        status: status.parse().unwrap(),
        headers,
        body: body.to_string(),
    }
}

fn scrape(url: &str) -> Answer {
    http(url, "GET /metrics HTTP/1.1\r\nHost: node\r\n\r\n")
}

/// The value of the sample named exactly `series` (name and labels as
/// printed), if present.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Checks the Prometheus text format line by line: every sample belongs
/// to a family with `# HELP` and `# TYPE` before it, and reads
/// `name{labels} value`.
fn assert_well_formed(body: &str) {
    let mut typed: Vec<String> = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line == "# EOF" || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "{line:?}: value"
        );
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line:?}: name"
        );
        assert!(
            typed.iter().any(|t| name.starts_with(t.as_str())),
            "{line:?}: no # TYPE before it"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line:?}: labels"
            );
        }
    }
}

/// What `quire status --json` says each node's metrics URL is, in the
/// order of `cluster.nodes`.
fn metrics_urls(cluster: &TestCluster) -> Vec<String> {
    let status = common::quire_json(&cluster.layout().client_config(), &["status"]);
    let nodes = status["nodes"].as_array().unwrap();
    cluster
        .nodes
        .iter()
        .map(|node| {
            let addr = node.addr().to_string();
            let n = nodes
                .iter()
                .find(|n| n["addr"] == addr.as_str())
                .unwrap_or_else(|| panic!("{addr} not in {status}"));
            n["metrics"]
                .as_str()
                .unwrap_or_else(|| panic!("no metrics URL in {n}"))
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serve_prometheus_metrics_of_real_traffic() {
    let mut cluster = TestCluster::start(4).await;
    let urls = metrics_urls(&cluster);
    assert_eq!(urls.len(), 4);
    for url in &urls {
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    }

    // Storage totals are read at a node's first scrape and kept 30 s: each
    // node is scraped once, after the traffic it is checked for.
    let client = cluster.client().await;
    put_keys(&client, "key").await;
    let fourth = scrape(&urls[3]);
    let fourth_objects = sample(&fourth.body, r#"quire_node_store_objects{store="default"}"#);
    // Stop node 4: the writes it should take become hints on the others.
    let stopped = cluster.nodes[3].node_id;
    cluster.nodes[3].stop().await;
    put_keys(&client, "later").await;
    // A refused request, counted under its code.
    let refused = Request::Get {
        store: "no-such-store".into(),
        key: b"k".to_vec(),
        hint: None,
    };
    let answer = cluster
        .transport()
        .call(&cluster.nodes[0].addr(), &refused, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.result.unwrap_err().code, ErrorCode::UnknownStore);

    let (mut objects, mut hints, mut puts) = (0.0, 0.0, 0.0);
    for (i, url) in urls[..3].iter().enumerate() {
        let a = scrape(url);
        assert_eq!(a.status, 200, "{url}");
        assert_eq!(
            a.headers.get("content-type").map(String::as_str),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert_well_formed(&a.body);
        let get = |series: &str| sample(&a.body, series);
        assert_eq!(
            get(r#"quire_node_build_info{version="0.1.0",protocol="10"}"#),
            Some(1.0),
            "{}",
            a.body
        );
        puts += get(r#"quire_node_requests_total{kind="put",outcome="ok"}"#).unwrap_or(0.0);
        objects += get(r#"quire_node_store_objects{store="default"}"#).unwrap_or(0.0);
        hints += get(&format!(r#"quire_node_hints_held{{target="{stopped}"}}"#)).unwrap_or(0.0);
        let batches = get("quire_node_writer_batch_writes_count").unwrap();
        let writes = get("quire_node_writer_batch_writes_sum").unwrap();
        assert!(batches >= 1.0 && writes >= batches, "{}", a.body);
        assert!(get("quire_node_writer_fsync_seconds_count").unwrap() >= 1.0);
        assert!(get(r#"quire_node_request_seconds_count{kind="hello"}"#).unwrap() >= 1.0);
        assert!(get("quire_node_connections_open").unwrap() >= 1.0);
        // The data file holds at least the records it stores.
        let held = get(r#"quire_node_store_bytes{store="default"}"#).unwrap();
        let file = get("quire_node_data_file_bytes").unwrap();
        assert!(held > 0.0 && file >= held, "file {file}, records {held}");
        if i == 0 {
            assert_eq!(
                get(r#"quire_node_requests_total{kind="get",outcome="UnknownStore"}"#),
                Some(1.0),
                "{}",
                a.body
            );
        }
    }
    // The later keys were all coordinated by the three running nodes.
    assert!(puts >= KEYS as f64 && puts <= (2 * KEYS) as f64, "{puts}");
    // N = 3 copies of every key: on the nodes, or held as hints for the
    // stopped one.
    assert!(hints >= 1.0, "hints for the stopped node are counted");
    assert_eq!(
        objects + hints + fourth_objects.unwrap_or(0.0),
        (2 * 3 * KEYS) as f64,
        "copies: {objects} on nodes 1-3, {hints} hints, {fourth_objects:?} on node 4"
    );

    // Anything but GET /metrics is refused, and a huge head is cut off.
    let other = http(&urls[0], "GET /data HTTP/1.1\r\n\r\n");
    assert_eq!(other.status, 404);
    let post = http(
        &urls[0],
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert_eq!(
        post.headers.get("allow").map(String::as_str),
        Some("GET, HEAD")
    );
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(http(&urls[0], &huge).status, 431);
    let head = http(&urls[0], "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    client.close();
}

/// Puts `KEYS` keys named `prefix-i` and waits for their replication.
async fn put_keys(client: &quire::Client, prefix: &str) {
    for i in 0..KEYS {
        let key = format!("{prefix}-{i}");
        client
            .put("default", key.as_bytes(), b"v".to_vec(), &Context::empty())
            .await
            .unwrap();
        client.get("default", key.as_bytes()).await.unwrap();
    }
    client.settle(Duration::from_secs(5)).await;
}
