//! Files and keys on disk: a node process creates its data directory 0700
//! and its LMDB files 0600 whatever umask it was started with (it sets its
//! own); private keys are created 0600 in one step, never over an existing
//! file and never through a symlink; node directories hold no CA key and a
//! node runs without one.
//!
//! Both tests clear this process's umask first, so every mode checked is
//! the one the code asked for, not one a restrictive umask happened to
//! produce (umask is process wide; both tests set the same value).

mod common;

use common::TestCluster;
use quire::certs::ClusterCa;
use quire::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn clear_umask() {
    rustix::process::umask(rustix::fs::Mode::empty());
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_files_are_private_and_nodes_hold_no_ca_key() {
    clear_umask();
    let mut cluster = TestCluster::processes(2, false).await;
    cluster
        .add_node()
        .await
        .expect("a third node, as `quire node new`");
    let layout = cluster.layout().clone();
    let dir = cluster.dir().to_owned();

    // What `quire up` and `quire node new` wrote.
    assert_eq!(mode(&dir), 0o700, "cluster directory");
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("client-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("ca.pem")), 0o644);
    for k in 1..=3 {
        let node_dir = layout.node_dir(k);
        assert_eq!(mode(&node_dir.join("node-key.pem")), 0o600, "node {k}");
        let files = files_under(&node_dir);
        assert!(
            files.iter().all(|f| f.file_name().unwrap() != "ca-key.pem"),
            "node {k} holds a CA key: {files:?}"
        );
        let config = std::fs::read_to_string(layout.node_config(k)).unwrap();
        assert!(!config.contains("ca-key"), "node {k}'s config: {config}");
    }

    // What each node process made itself, started with umask 0.
    for k in 1..=3 {
        let pid = cluster.pid(k).expect("a node process");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let umask = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        assert!(umask.ends_with("0077"), "node {k}: {umask}");
        let data = cluster.node(k).data_dir();
        assert_eq!(mode(&data), 0o700, "node {k}'s data directory");
        for file in ["data.mdb", "lock.mdb", quire_node::LISTEN_ADDR_FILE] {
            assert_eq!(mode(&data.join(file)), 0o600, "node {k}'s {file}");
        }
    }

    // A node never reads the CA key: with it gone, a node restarts and
    // serves.
    let away = tempfile::tempdir().unwrap();
    std::fs::rename(dir.join("ca-key.pem"), away.path().join("ca-key.pem")).unwrap();
    cluster.kill(1).await;
    cluster.restart(1).await;
    let client = cluster.client().await;
    client
        .put("default", b"k", b"v".to_vec(), &Context::empty())
        .await
        .expect("put without a CA key anywhere near the nodes");
    assert_eq!(
        client.get("default", b"k").await.unwrap().values(),
        vec![b"v".as_slice()]
    );
}

#[test]
fn private_keys_are_created_0600_never_over_a_file_and_never_through_a_symlink() {
    clear_umask();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pem = ClusterCa::generate("keys").unwrap().pem();

    pem.write(&dir.join("ca.pem"), &dir.join("ca-key.pem"))
        .expect("written");
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("ca.pem")), 0o644);

    // An existing key is never replaced.
    let again = pem.write(&dir.join("ca2.pem"), &dir.join("ca-key.pem"));
    let e = again.expect_err("an existing key is kept");
    assert!(e.to_string().contains("exists"), "{e}");

    // A symlink at the key's path, dangling or not, is not followed: the
    // file it names is neither created nor written.
    let target = dir.join("elsewhere.pem");
    std::os::unix::fs::symlink(&target, dir.join("planted-key.pem")).unwrap();
    assert!(pem
        .write(&dir.join("c3.pem"), &dir.join("planted-key.pem"))
        .is_err());
    assert!(!target.exists(), "the key went through the symlink");
    std::fs::write(&target, "not a key").unwrap();
    assert!(pem
        .write(&dir.join("c4.pem"), &dir.join("planted-key.pem"))
        .is_err());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not a key");

    // Nor is one at a certificate's path.
    std::os::unix::fs::symlink(&target, dir.join("planted.pem")).unwrap();
    assert!(pem
        .write(&dir.join("planted.pem"), &dir.join("k5.pem"))
        .is_err());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not a key");
}
