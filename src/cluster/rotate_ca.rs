//! Rotating the cluster CA of a local cluster: `quire cert rotate-ca
//! begin|switch|finish`.
//!
//! Nobody may meet a certificate it does not trust yet, and no document
//! may be signed only under a CA that is about to go. So the CA changes in
//! three steps, with every client reloaded between them (SIGHUP for the
//! long-running commands, `Client::reload_tls` in an application):
//!
//! 1. **begin**: a new CA (`ca-next.pem`, `ca-next-key.pem`); the bundle
//!    `ca.pem` trusts the old and the new one; nodes reload.
//! 2. **switch**: every node, the operator and every issued identity get a
//!    certificate from the new CA, whose key becomes `ca-key.pem`; nodes
//!    reload. (The command then re-signs the membership document with the
//!    operator's new certificate.)
//! 3. **finish**: the bundle trusts only the new CA; nodes reload. The
//!    command refuses while the membership document is still signed under
//!    the old CA.
//!
//! The files say which step is next, so a step run twice or out of order
//! is refused with what to run instead.

use super::layout::{io_err, Layout, LayoutError};
use super::rotate::node_id_of;
use crate::certs::{operator, replace_public_file, ClusterCa, Pem};
use quire_net::identity::principal_of;
use quire_net::tls::load_certs;
use quire_shared::NodeId;
use std::path::{Path, PathBuf};

/// Which step of a CA rotation this directory is ready for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaStep {
    /// No rotation under way.
    Begin,
    /// The bundle trusts both CAs; certificates are still the old CA's.
    Switch,
    /// Certificates are the new CA's; the bundle still trusts the old one.
    Finish,
}

/// What a step did.
#[derive(Clone, Debug)]
pub struct CaRotated {
    /// The step that ran.
    pub step: CaStep,
    /// Each local node: its number, id (when re-issued), and whether a
    /// running process was told to reload.
    pub nodes: Vec<(usize, Option<NodeId>, bool)>,
    /// Files written (bundles and certificates), for the operator to copy
    /// to machines this directory does not run.
    pub written: Vec<PathBuf>,
}

impl Layout {
    /// `DIR/ca-next.pem`: the new CA's certificate during a rotation.
    pub fn next_ca_file(&self) -> PathBuf {
        self.dir.join("ca-next.pem")
    }

    fn next_ca_key_file(&self) -> PathBuf {
        self.dir.join("ca-next-key.pem")
    }

    /// The step a CA rotation of this directory is ready for.
    pub fn ca_step(&self) -> CaStep {
        match (
            self.next_ca_key_file().exists(),
            self.next_ca_file().exists(),
        ) {
            (true, _) => CaStep::Switch,
            (false, true) => CaStep::Finish,
            (false, false) => CaStep::Begin,
        }
    }

    /// Runs `step` if it is the next one (see the module doc).
    pub fn rotate_ca(&self, step: CaStep, days: u32) -> Result<CaRotated, LayoutError> {
        let file = self.read()?.ok_or_else(|| {
            LayoutError::Mismatch(format!("{} holds no cluster", self.dir.display()))
        })?;
        let next = self.ca_step();
        if next != step {
            return Err(LayoutError::Mismatch(match next {
                CaStep::Begin => format!(
                    "no CA rotation is under way in {}: start one with `quire cert rotate-ca begin`",
                    self.dir.display()
                ),
                _ => format!(
                    "the CA rotation in {} is at `{}`: run `quire cert rotate-ca {}` next",
                    self.dir.display(),
                    step_name(next),
                    step_name(next)
                ),
            }));
        }
        let mut written = Vec::new();
        let mut reissued = Vec::new();
        match step {
            CaStep::Begin => {
                let new = ClusterCa::generate(&file.cluster_id)?;
                new.pem()
                    .write(&self.next_ca_file(), &self.next_ca_key_file())?;
                let old = read(&self.dir.join("ca.pem"))?;
                let bundle = format!("{}\n{}", old.trim_end(), new.pem().cert);
                written.extend(self.spread_bundle(&bundle)?);
            }
            CaStep::Switch => {
                let key = read(&self.next_ca_key_file())?;
                let new = ClusterCa::load(&file.cluster_id, &key)?;
                reissued = self.reissue(&new, file.nodes, days, &mut written)?;
                // The new key signs from now on; the old one is gone.
                let next_cert = self.next_ca_file();
                Pem {
                    cert: read(&next_cert)?,
                    key,
                }
                .replace(&next_cert, &self.dir.join("ca-key.pem"))?;
                let next_key = self.next_ca_key_file();
                std::fs::remove_file(&next_key).map_err(io_err(&next_key))?;
            }
            CaStep::Finish => {
                let new = read(&self.next_ca_file())?;
                written.extend(self.spread_bundle(&new)?);
                let next = self.next_ca_file();
                std::fs::remove_file(&next).map_err(io_err(&next))?;
            }
        }
        let nodes = (1..=file.nodes)
            .map(|k| {
                let id = reissued.iter().find(|(n, _)| *n == k).map(|(_, id)| *id);
                (k, id, self.reload_node(k))
            })
            .collect();
        Ok(CaRotated {
            step,
            nodes,
            written,
        })
    }

    /// Writes `bundle` as the CA file of the directory and of every
    /// identity issued from it.
    fn spread_bundle(&self, bundle: &str) -> Result<Vec<PathBuf>, LayoutError> {
        let mut paths = vec![self.dir.join("ca.pem")];
        for sub in ["clients", "nodes"] {
            for dir in subdirs(&self.dir.join(sub))? {
                paths.push(dir.join("ca.pem"));
            }
        }
        for path in &paths {
            replace_public_file(path, bundle)?;
        }
        Ok(paths)
    }

    /// New certificates from `ca` for every local node (same ids), the
    /// operator and every issued identity (same names and ids).
    fn reissue(
        &self,
        ca: &ClusterCa,
        nodes: usize,
        days: u32,
        written: &mut Vec<PathBuf>,
    ) -> Result<Vec<(usize, NodeId)>, LayoutError> {
        let mut local = Vec::new();
        for k in 1..=nodes {
            let dir = self.node_dir(k);
            let id = node_id_of(&dir.join("node.pem"))?;
            let cert = dir.join("node.pem");
            ca.node(id, days)?
                .replace(&cert, &dir.join("node-key.pem"))?;
            written.push(cert);
            local.push((k, id));
        }
        for dir in subdirs(&self.dir.join("nodes"))? {
            let cert = dir.join("node.pem");
            let id = node_id_of(&cert)?;
            ca.node(id, days)?
                .replace(&cert, &dir.join("node-key.pem"))?;
            written.push(cert);
        }
        for dir in subdirs(&self.dir.join("clients"))? {
            let cert = dir.join("client.pem");
            let principal = load_certs(&cert, "client certificate")
                .ok()
                .and_then(|chain| principal_of(&chain[0]).ok())
                .ok_or_else(|| {
                    LayoutError::Mismatch(format!("{} names no identity", cert.display()))
                })?;
            ca.client(&principal, days)?
                .replace(&cert, &dir.join("client-key.pem"))?;
            written.push(cert);
        }
        let cert = self.dir.join("client.pem");
        ca.client(&operator(), days)?
            .replace(&cert, &self.dir.join("client-key.pem"))?;
        written.push(cert);
        Ok(local)
    }
}

/// The command word of a step.
pub fn step_name(step: CaStep) -> &'static str {
    match step {
        CaStep::Begin => "begin",
        CaStep::Switch => "switch",
        CaStep::Finish => "finish",
    }
}

fn read(path: &Path) -> Result<String, LayoutError> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// The directories inside `dir` (none if it does not exist), sorted.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, LayoutError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}
