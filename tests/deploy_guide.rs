//! `docs/deploy.md`, run: every shell block of the guide, in order, on
//! network-namespace hosts (`common/netns.rs`): hosts 1-4 are `db-1` to
//! `db-4`, host 5 is the admin machine. The guide's first paragraphs list
//! the only changes made to its lines (addresses, a directory per host for
//! the system paths, no `useradd`/ownership, `systemctl enable --now` runs
//! the installed unit's `ExecStart`); everything else runs as written, each
//! block as one `sh -e` script in its host, so a step that fails fails the
//! test.
//!
//! Skips, saying so on stderr, where namespaces cannot be made.

mod common;

use common::netns::{self, Hosts};
use common::QUIRE;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};

/// Host of the admin machine.
const ADMIN: usize = 5;

/// Where a block of the guide runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Admin,
    Host(usize),
}

/// A `sh` block of the guide that names where it runs.
#[derive(Debug)]
struct Step {
    place: Place,
    lines: Vec<String>,
}

/// The guide's runnable blocks: fenced `sh` blocks whose first line is
/// `# on the admin machine` or `# on host db-K`.
fn steps(guide: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut block: Option<Vec<String>> = None;
    for line in guide.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```sh") => block = Some(Vec::new()),
            (Some(_), "```") => {
                let lines = block.take().unwrap();
                let place = match lines.first().map(String::as_str) {
                    Some("# on the admin machine") => Place::Admin,
                    Some(first) => match first.strip_prefix("# on host db-") {
                        Some(k) => Place::Host(k.parse().expect("db-K")),
                        None => continue,
                    },
                    None => continue,
                };
                out.push(Step {
                    place,
                    lines: lines[1..].to_vec(),
                });
            }
            (Some(lines), l) => lines.push(l.to_string()),
            (None, _) => {}
        }
    }
    out
}

/// The test's stand-ins for a host's system paths and the guide's
/// addresses.
struct World {
    hosts: Hosts,
    root: PathBuf,
}

impl World {
    fn host_dir(&self, k: usize) -> PathBuf {
        self.root.join(format!("host-{k}"))
    }

    fn admin_dir(&self) -> PathBuf {
        self.root.join("admin")
    }

    /// `line` with the guide's addresses made the test hosts', and, for a
    /// line about host K (it runs there, or names `db-K`), its system
    /// paths made host K's directory.
    fn localize(&self, line: &str, place: Place) -> String {
        let mut line = line.to_string();
        for k in 1..=4 {
            line = line.replace(&format!("10.0.0.{k}:"), &format!("{}:", self.hosts.addr(k)));
        }
        let host = match place {
            Place::Host(k) => Some(k),
            Place::Admin => (1..=4).find(|k| line.contains(&format!("db-{k} "))),
        };
        if let Some(k) = host {
            let dir = self.host_dir(k);
            for path in [
                "/etc/systemd/system",
                "/etc/quire",
                "/var/lib/quire",
                "/usr/local/bin",
            ] {
                line = line.replace(path, &format!("{}{path}", dir.display()));
            }
        }
        line
    }

    /// A host block's line as the test runs it: `None` for what it
    /// skips (see the guide), the unit's start for `systemctl enable`.
    fn host_line(&self, line: &str, k: usize) -> Option<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["useradd", ..] | ["systemctl", "daemon-reload"] => None,
            ["systemctl", "enable", "--now", "quire-node"] => Some(String::new()),
            _ => {
                let kept: Vec<&str> = words
                    .iter()
                    .enumerate()
                    .filter(|(i, w)| {
                        let owner = |j: usize| matches!(words.get(j), Some(&"-o" | &"-g"));
                        !(matches!(**w, "-o" | "-g") || (*i > 0 && owner(i - 1)))
                    })
                    .map(|(_, w)| *w)
                    .collect();
                Some(self.localize(&kept.join(" "), Place::Host(k)))
            }
        }
    }

    /// Runs `script` with `sh -e` in host `host`, from `cwd`, with the
    /// test's `quire` and `quire-node` first on PATH.
    fn sh(&self, host: usize, cwd: &Path, script: &str) -> Output {
        let bin = self.root.join("bin");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        self.hosts
            .exec(host, "sh")
            .args(["-e", "-x", "-c", script])
            .current_dir(cwd)
            .env("PATH", path)
            .env_remove("QUIRE_CONFIG")
            .env(
                "RUST_LOG",
                std::env::var("QUIRE_TEST_LOG").unwrap_or_default(),
            )
            .output()
            .expect("run sh in a host")
    }

    /// Starts the unit installed in host `k` as systemd would: its
    /// `ExecStart`, in the host.
    fn start_unit(&self, k: usize) -> Child {
        let unit = self
            .host_dir(k)
            .join("etc/systemd/system/quire-node.service");
        let text = std::fs::read_to_string(&unit).expect("the unit is installed");
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("the unit has an ExecStart");
        let exec = self.localize(exec, Place::Host(k));
        let mut words = exec.split_whitespace();
        let program = words.next().unwrap();
        let log = std::fs::File::create(self.host_dir(k).join("journal.log")).unwrap();
        self.hosts
            .exec(k, program)
            .args(words)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the node")
    }
}

/// Stops the nodes when the test ends, passing or failing.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn the_deploy_guide_runs_as_written() {
    if !netns::available() {
        return;
    }
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deploy.md"))
        .expect("docs/deploy.md");
    let steps = steps(&guide);
    assert!(steps.len() >= 9, "the guide's blocks were found: {steps:?}");
    let tmp = tempfile::tempdir().unwrap();
    let world = World {
        hosts: Hosts::create(ADMIN),
        root: tmp.path().to_path_buf(),
    };
    // The binaries, as the guide's build step leaves them: `quire`, and
    // `quire-node` (the same node as `quire --config FILE node`).
    let bin = world.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(QUIRE, bin.join("quire")).unwrap();
    let node_script = bin.join("quire-node");
    std::fs::write(
        &node_script,
        format!("#!/bin/sh\nexec '{QUIRE}' \"$@\" node\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        &node_script,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(world.admin_dir()).unwrap();
    let unit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/deploy/quire-node.service"
    );

    let mut nodes = Nodes(Vec::new());
    let mut exports: Vec<String> = Vec::new();
    let mut last_admin = String::new();
    for step in &steps {
        match step.place {
            Place::Admin => {
                let lines: Vec<String> = step
                    .lines
                    .iter()
                    .map(|l| world.localize(l, Place::Admin))
                    .collect();
                // Exports hold for the admin blocks after them (one shell).
                let script = exports
                    .iter()
                    .chain(lines.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n");
                exports.extend(lines.iter().filter(|l| l.starts_with("export ")).cloned());
                let out = world.sh(ADMIN, &world.admin_dir(), &script);
                assert!(
                    out.status.success(),
                    "admin block failed:\n{script}\n--- stdout\n{}\n--- stderr\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                last_admin = String::from_utf8_lossy(&out.stdout).into_owned();
            }
            Place::Host(k) => {
                // "Copy pki/nodes/db-K/ to host K as ./db-K, with
                // quire-node and the unit beside it."
                let cwd = world.host_dir(k).join("home");
                let files = cwd.join(format!("db-{k}"));
                std::fs::create_dir_all(&files).unwrap();
                let issued = world.admin_dir().join(format!("pki/nodes/db-{k}"));
                for entry in std::fs::read_dir(&issued).expect("the node was issued") {
                    let entry = entry.unwrap();
                    std::fs::copy(entry.path(), files.join(entry.file_name())).unwrap();
                }
                std::fs::copy(&node_script, cwd.join("quire-node")).unwrap();
                std::fs::copy(unit, cwd.join("quire-node.service")).unwrap();
                for dir in ["etc", "var/lib", "usr/local/bin", "etc/systemd/system"] {
                    std::fs::create_dir_all(world.host_dir(k).join(dir)).unwrap();
                }
                let mut script = Vec::new();
                for line in &step.lines {
                    match world.host_line(line, k) {
                        None => {}
                        Some(start) if start.is_empty() => {
                            let out = world.sh(k, &cwd, &script.join("\n"));
                            assert!(
                                out.status.success(),
                                "host db-{k} block failed:\n{}\n{}",
                                script.join("\n"),
                                String::from_utf8_lossy(&out.stderr)
                            );
                            script.clear();
                            nodes.0.push(world.start_unit(k));
                        }
                        Some(line) => script.push(line),
                    }
                }
                assert!(script.is_empty(), "a host block ends by starting its unit");
            }
        }
    }
    // The last block read the key back through the grown cluster, and
    // the cluster now has four members.
    assert!(last_admin.lines().any(|l| l == "apple"), "{last_admin}");
    let config = world.admin_dir().join("pki/client.toml");
    let out = world.sh(
        ADMIN,
        &world.admin_dir(),
        &format!("quire --config '{}' status --json", config.display()),
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let states: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["member"; 4], "{status}");
    drop(nodes);
}
