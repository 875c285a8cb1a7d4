//! Every `quire` command is a short-lived process: what its request still
//! does after the answer (replication past W, read repair) must finish
//! before it exits, or a CLI put reaches only W replicas and a CLI get
//! repairs nothing.

mod common;

use common::{place_on, TestCluster, QUIRE};
use quire::shared::wire::{Reply, Request};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn quire(cluster: &TestCluster, args: &[&str]) {
    let out = Command::new(QUIRE)
        .env(
            "RUST_LOG",
            std::env::var("QUIRE_TEST_LOG").unwrap_or_default(),
        )
        .arg("--config")
        .arg(cluster.layout().client_config())
        .args(args)
        .output()
        .expect("run quire");
    common::assert_ran(&out, &format!("quire {args:?}"));
}

/// The nodes holding `key` in their own data.
async fn holders(cluster: &TestCluster, key: &[u8]) -> usize {
    let t = cluster.transport();
    let mut n = 0;
    for node in &cluster.nodes {
        let get = Request::Get {
            store: "default".into(),
            key: key.to_vec(),
            hint: None,
        };
        if let Ok(Reply::Object(Some(_))) = t.call(&node.addr(), &get, T).await.unwrap().result {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_put_reaches_every_replica_and_a_cli_get_repairs() {
    let cluster = TestCluster::start(3).await;
    for i in 0..5 {
        let key = format!("put-{i}");
        quire(&cluster, &["put", "default", &key, "v"]);
        assert_eq!(holders(&cluster, key.as_bytes()).await, 3, "N = 3 copies");
    }
    // A key only the first replica a get asks holds: the first two
    // answers differ, so the CLI get reads the third as well and repairs
    // both that lack it, after its answer and before it exits.
    let t = cluster.transport();
    let first = cluster
        .client()
        .await
        .locate("default", b"stale")
        .unwrap()
        .home()[0];
    place_on(&t, &cluster.membership, &[first], "default", b"stale").await;
    assert_eq!(holders(&cluster, b"stale").await, 1);
    quire(&cluster, &["get", "default", "stale"]);
    assert_eq!(holders(&cluster, b"stale").await, 3, "the get repaired it");
}

/// `quire delete S K` without a context deletes what is there now (it
/// reads first); `--blind` writes a context-less tombstone that leaves
/// every current value standing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_delete_without_a_context_deletes_what_is_there() {
    let cluster = TestCluster::start(3).await;
    let found = |key: &str| {
        let out = Command::new(QUIRE)
            .arg("--config")
            .arg(cluster.layout().client_config())
            .args(["get", "default", key, "--json"])
            .output()
            .expect("run quire");
        assert!(out.status.success());
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["found"].as_bool().unwrap()
    };
    quire(&cluster, &["put", "default", "cart", "apple"]);
    quire(&cluster, &["put", "default", "cart", "pear"]);
    quire(&cluster, &["delete", "default", "cart"]);
    assert!(!found("cart"), "both siblings deleted");
    quire(&cluster, &["put", "default", "kept", "apple"]);
    quire(&cluster, &["delete", "default", "kept", "--blind"]);
    assert!(found("kept"), "a blind delete leaves the value");
}

/// Runs `quire` with the cluster's client config, `stdin` piped in.
fn quire_with_input(cluster: &TestCluster, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(QUIRE)
        .arg("--config")
        .arg(cluster.layout().client_config())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run quire");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Values that are not text go in and come out byte for byte: from a
/// file or stdin, out with `--raw` or as base64 in `--json`; siblings are
/// refused by `--raw` with a reason instead of being glued together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_values_round_trip_through_files_stdin_raw_and_json() {
    use base64::Engine as _;
    let cluster = TestCluster::start(3).await;
    let tmp = tempfile::tempdir().unwrap();
    let blob: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 256) as u8).collect();
    let path = tmp.path().join("blob.bin");
    std::fs::write(&path, &blob).unwrap();
    quire(
        &cluster,
        &["put", "default", "file", "--file", path.to_str().unwrap()],
    );
    let out = quire_with_input(&cluster, &["get", "default", "file", "--raw"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, blob, "--raw prints the stored bytes exactly");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("context: "));

    let piped = quire_with_input(&cluster, &["put", "default", "piped", "-"], &blob[..100]);
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let json = quire_with_input(&cluster, &["get", "default", "piped", "--json"], b"");
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let encoded = doc["values_base64"][0].as_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(decoded, &blob[..100]);
    let text = quire_with_input(&cluster, &["get", "default", "piped"], b"");
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("100 bytes, not UTF-8"),
        "a terminal gets a note, not the bytes"
    );

    // Two blind writes: siblings, which --raw refuses.
    quire(&cluster, &["put", "default", "twice", "a"]);
    quire(&cluster, &["put", "default", "twice", "b"]);
    let refused = quire_with_input(&cluster, &["get", "default", "twice", "--raw"], b"");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("2 siblings"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let missing = quire_with_input(&cluster, &["get", "default", "nothing", "--raw"], b"");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

/// Long commands draw a progress bar on stderr when it is a terminal, and
/// nothing when it is not (scripts and `--json` readers get clean output).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_bars_only_on_a_terminal() {
    let cluster = TestCluster::start(3).await;
    let config = cluster.layout().client_config();
    let command = format!("'{QUIRE}' --config '{}' repair --once", config.display());
    // `script` (util-linux) runs the command on a pseudo-terminal.
    let Ok(on_tty) = Command::new("script")
        .args(["-q", "-c", &command, "/dev/null"])
        .output()
    else {
        panic!("`script` (util-linux) is missing: it gives the command a terminal");
    };
    let drawn = String::from_utf8_lossy(&on_tty.stdout);
    assert!(on_tty.status.success(), "{drawn}");
    assert!(drawn.contains("repair: partitions ["), "{drawn}");
    let piped = Command::new(QUIRE)
        .arg("--config")
        .arg(&config)
        .args(["repair", "--once"])
        .output()
        .unwrap();
    assert!(piped.status.success());
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("repair: partitions"), "{stderr}");
    assert!(String::from_utf8_lossy(&piped.stdout).contains("partitions checked"));
}

/// An SDK operation runs in a span (kind, store, partition) that JSON logs
/// carry on its events, when `RUST_LOG` asks for the SDK's debug level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_operations_log_in_a_span_with_store_and_partition() {
    let cluster = TestCluster::start(3).await;
    quire(&cluster, &["put", "default", "spanned", "v"]);
    let out = Command::new(QUIRE)
        .env("RUST_LOG", "quire_client=debug")
        .args(["--log-format", "json", "--config"])
        .arg(cluster.layout().client_config())
        .args(["get", "default", "spanned"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let partition = cluster.membership.partition_of("default", b"spanned");
    let logs = String::from_utf8_lossy(&out.stderr);
    let done: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "done")
        .collect();
    assert_eq!(done.len(), 1, "{logs}");
    let span = &done[0]["span"];
    assert_eq!(span["name"], "quire.operation", "{logs}");
    assert_eq!(span["kind"], "get");
    assert_eq!(span["store"], "default");
    assert_eq!(span["partition"], partition, "{logs}");
}
