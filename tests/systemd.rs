//! The node under systemd: it speaks the notify protocol (`READY=1` once it
//! serves, `STOPPING=1` on SIGTERM), writes JSON logs when asked, and the
//! hardened unit in docs/deploy passes `systemd-analyze verify`.

use quire::cluster::layout::Layout;
use rustix::process::{kill_process, Pid, Signal};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const QUIRE: &str = env!("CARGO_BIN_EXE_quire");

/// Waits for a notify datagram containing `state`; false if none came.
fn wait_state(socket: &UnixDatagram, state: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        let Ok(n) = socket.recv(&mut buf) else {
            return false;
        };
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == state)
        {
            return true;
        }
    }
}

/// Fails the test with what the node said.
fn fail_with_logs(mut node: std::process::Child, what: &str) -> ! {
    let _ = node.kill();
    let out = node.wait_with_output().unwrap();
    panic!(
        "{what}; the node said:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_node_notifies_ready_and_stopping_and_logs_json() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("cluster"));
    layout.create(1, 0).expect("a one-node cluster directory");
    let socket_path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let node = Command::new(QUIRE)
        .args(["--log-format", "json", "--config"])
        .arg(layout.node_config(1))
        .arg("node")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_LOG", "info,quire_node=trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a node");
    if !wait_state(&socket, "READY=1") {
        fail_with_logs(node, "no READY=1");
    }
    // Serving by then: the bound address is on record.
    assert!(std::fs::read_to_string(layout.bound_addr_file(1)).is_ok());
    // A request (the node has no membership yet: refused, but logged in
    // its span).
    let addr = std::fs::read_to_string(layout.bound_addr_file(1)).unwrap();
    layout
        .write_client_config(vec![addr.trim().to_string()])
        .unwrap();
    let asked = Command::new(QUIRE)
        .arg("--config")
        .arg(layout.client_config())
        .arg("status")
        .output()
        .unwrap();
    assert!(
        !asked.status.success(),
        "no cluster formed yet: {}",
        String::from_utf8_lossy(&asked.stdout)
    );
    // A request naming a partition: its span carries it.
    let config = quire::ClientConfig::load(&layout.client_config()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answer = runtime.block_on(async {
        let transport =
            quire_client::transport::Transport::new(config.tls.clone(), &config.timeouts).unwrap();
        let root = quire::shared::wire::Request::MerkleRoot {
            store: "default".into(),
            partition: 3,
        };
        transport
            .call(addr.trim(), &root, Duration::from_secs(5))
            .await
    });
    assert!(answer.is_ok(), "the node answered: {answer:?}");
    kill_process(Pid::from_raw(node.id() as i32).unwrap(), Signal::TERM).unwrap();
    if !wait_state(&socket, "STOPPING=1") {
        fail_with_logs(node, "no STOPPING=1");
    }
    let out = node.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a clean stop exits 0: {:?}",
        out.status
    );
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the node logged something");
    let mut in_request_span = 0;
    let mut with_partition = 0;
    for line in lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
        let span = &parsed["span"];
        if span["name"] == "request" {
            assert!(
                span["kind"].is_string() && span["peer"].is_string(),
                "{line}"
            );
            assert!(span["principal"].is_string(), "{line}");
            in_request_span += 1;
            if span["kind"] == "merkle-root" {
                assert_eq!(span["partition"], 3, "{line}");
                assert_eq!(span["store"], "default", "{line}");
                with_partition += 1;
            }
        }
    }
    assert!(
        in_request_span > 0,
        "request events carry their span:\n{logs}"
    );
    assert_eq!(with_partition, 1, "{logs}");
}

#[test]
fn the_hardened_unit_passes_systemd_analyze_verify() {
    let Ok(status) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!("systemd-analyze is missing: .ci/run installs Debian's systemd package");
    };
    assert!(status.status.success());
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy/quire-node.service"),
    )
    .unwrap();
    for needed in [
        "Type=notify",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=",
        "ReadWritePaths=/var/lib/quire",
        "UMask=0077",
        "LimitNOFILE=",
        "Restart=on-failure",
        "WatchdogSec=",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed:?}");
    }
    // verify checks that ExecStart's binary exists: point it at ours.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("quire-node.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/quire-node", QUIRE)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
