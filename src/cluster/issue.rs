//! More identities for a cluster directory: `quire cert issue`.
//!
//! `quire up` makes the node certificates and one admin identity for the
//! local operator (`DIR/client.toml`). Applications get identities of
//! their own, each in a directory an operator can hand over whole:
//! `DIR/clients/NAME/` holds the certificate, its key, the cluster CA and
//! a `client.toml` ready for `--config`. A node certificate made here
//! names a new node id, for a node started from another directory (a
//! machine of its own).

use super::hosts::HostNode;
use super::layout::{io_err, Layout, LayoutError};
use crate::certs::{fresh_node_id, ClusterCa};
use quire_client::config::{ClientConfig, TlsFiles as ClientTls};
use quire_shared::access::{Principal, Role};
use std::path::PathBuf;

/// What `quire cert issue` wrote.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The identity the certificate names.
    pub principal: Principal,
    /// The directory holding the certificate and key.
    pub dir: PathBuf,
    /// The ready-to-use config: `client.toml` for clients and admins,
    /// `node.toml` for a node.
    pub config: Option<PathBuf>,
}

impl Layout {
    /// `DIR/clients/NAME`: a client or admin identity.
    pub fn client_dir(&self, name: &str) -> PathBuf {
        self.dir.join("clients").join(name)
    }

    /// `DIR/nodes/NAME`: a node certificate made for another machine.
    pub fn issued_node_dir(&self, name: &str) -> PathBuf {
        self.dir.join("nodes").join(name)
    }

    /// Issues a certificate from the cluster CA for `role` `name`, valid
    /// `days` days. A client or admin gets `DIR/clients/NAME/` with
    /// `client.toml` (the seeds of `DIR/client.toml`); a node gets
    /// `DIR/nodes/NAME/` with a certificate naming a new node id. An
    /// identity already issued under that name is refused, never
    /// overwritten.
    pub fn issue(&self, role: Role, name: &str, days: u32) -> Result<Issued, LayoutError> {
        self.issue_for(role, name, days, &HostNode::default())
    }

    /// Like [`Layout::issue`]; a node also gets a `node.toml` for `host`
    /// (see [`super::hosts`]), so its directory is all a machine needs.
    pub fn issue_for(
        &self,
        role: Role,
        name: &str,
        days: u32,
        host: &HostNode,
    ) -> Result<Issued, LayoutError> {
        let bad = |what: String| LayoutError::Mismatch(what);
        let file = self.read()?.ok_or_else(|| {
            bad(format!(
                "{} holds no cluster (no cluster.toml): create one with `quire up`",
                self.dir.display()
            ))
        })?;
        let named = Principal::new(role, name).ok_or_else(|| {
            bad(format!(
                "{name:?} is not a valid name: use 1 to 64 bytes of letters, digits, '-', '_' or '.'"
            ))
        })?;
        // A node's identity is its node id; NAME only names the directory.
        let principal = match role {
            Role::Node => Principal::node(fresh_node_id()),
            _ => named,
        };
        let dir = match role {
            Role::Node => self.issued_node_dir(name),
            _ => self.client_dir(name),
        };
        if dir.exists() {
            return Err(bad(format!(
                "{} exists: an identity named {name:?} was issued already (remove the directory to issue it again)",
                dir.display()
            )));
        }
        let key_path = self.dir.join("ca-key.pem");
        let key = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let ca = ClusterCa::load(&file.cluster_id, &key)?;
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let ca_pem = self.dir.join("ca.pem");
        std::fs::copy(&ca_pem, dir.join("ca.pem")).map_err(io_err(&ca_pem))?;
        if role == Role::Node {
            ca.node(principal.node_id().expect("a node identity"), days)?
                .write(&dir.join("node.pem"), &dir.join("node-key.pem"))?;
            let config = self.write_issued_node_config(&dir, file.id()?, host)?;
            return Ok(Issued {
                principal,
                dir,
                config: Some(config),
            });
        }
        ca.client(&principal, days)?
            .write(&dir.join("client.pem"), &dir.join("client-key.pem"))?;
        let operator = ClientConfig::load(&self.client_config())
            .map_err(|e| bad(format!("cannot read the cluster's client.toml: {e}")))?;
        let config = ClientConfig {
            seeds: operator.seeds,
            tls: ClientTls {
                cert: "client.pem".into(),
                key: "client-key.pem".into(),
                ca: "ca.pem".into(),
            }
            .into(),
            timeouts: operator.timeouts,
            reads: operator.reads,
        };
        let path = dir.join("client.toml");
        self.write_toml(&path, &config)?;
        Ok(Issued {
            principal,
            dir,
            config: Some(path),
        })
    }
}
