//! Forming a cluster: ask each node who it is, write the membership
//! document and hand it to every node. A cluster formed again with the same
//! nodes keeps its partition owners; if addresses moved, the document gets
//! the new addresses under a higher epoch.

use super::calls::{push_membership, stored_document};
use super::{default_store, AdminError, PARTITIONS_DEFAULT};
use crate::client::load_sealer;
use crate::config::ClientConfig;
use crate::transport::Transport;
use quire_net::seal::Sealer;
use quire_shared::wire::{Reply, Request, Response, PROTOCOL_VERSION};
use quire_shared::{ClusterId, Member, Membership, NodeId, StoreConfig};
use std::time::{Duration, Instant};

fn ids(list: impl Iterator<Item = NodeId>) -> String {
    let mut v: Vec<String> = list.map(|id| id.to_string()).collect();
    v.sort();
    v.join(", ")
}

pub(super) async fn hello(
    transport: &Transport,
    addr: &str,
    deadline: Instant,
) -> Result<(NodeId, u64, Option<ClusterId>), AdminError> {
    let started = Instant::now();
    let request = Request::Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: None,
    };
    loop {
        let last_error = match transport
            .call(addr, &request, Duration::from_millis(1_000))
            .await
        {
            Ok(Response {
                epoch,
                result:
                    Ok(Reply::Hello {
                        node_id,
                        cluster_id,
                        ..
                    }),
            }) => return Ok((node_id, epoch, cluster_id)),
            Ok(other) => format!("unexpected answer {:?}", other.result),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(AdminError::NoAnswer {
                addr: addr.to_string(),
                waited_ms: started.elapsed().as_millis(),
                last_error,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a cluster formed for the first time is made with.
#[derive(Clone, Debug)]
pub struct NewCluster {
    /// Its stores ([`default_store`] when empty).
    pub stores: Vec<StoreConfig>,
    /// Its ring size: a power of two, fixed for the cluster's life
    /// ([`PARTITIONS_DEFAULT`] unless a test or an operator needs another).
    pub partitions: u32,
}

impl Default for NewCluster {
    fn default() -> Self {
        Self {
            stores: Vec::new(),
            partitions: PARTITIONS_DEFAULT,
        }
    }
}

/// Forms (or re-forms) cluster `cluster_id` from the nodes at `addrs` and
/// returns the document every node now holds. `config` gives the admin's
/// TLS identity (its seeds are not used).
///
/// Waits up to `wait` for each node to answer. A new cluster is made as
/// `new` says; a cluster that exists keeps its stores and ring.
pub async fn form_cluster(
    config: &ClientConfig,
    cluster_id: ClusterId,
    addrs: &[String],
    new: NewCluster,
    wait: Duration,
) -> Result<Membership, AdminError> {
    let transport = Transport::new(&config.tls, &config.timeouts)?;
    let sealer = load_sealer(&config.tls)?;
    let formed = form_with(&transport, &sealer, cluster_id, addrs, new, wait).await;
    transport.close();
    formed
}

async fn form_with(
    transport: &Transport,
    sealer: &Sealer,
    cluster_id: ClusterId,
    addrs: &[String],
    new: NewCluster,
    wait: Duration,
) -> Result<Membership, AdminError> {
    let deadline = Instant::now() + wait;
    let mut members = Vec::new();
    let mut newest: Option<Membership> = None;
    for addr in addrs {
        let (id, epoch, theirs) = hello(transport, addr, deadline).await?;
        if let Some(theirs) = theirs.filter(|t| *t != cluster_id) {
            return Err(AdminError::WrongCluster {
                addr: addr.clone(),
                theirs,
                ours: cluster_id,
            });
        }
        if epoch > newest.as_ref().map_or(0, |d| d.epoch) {
            newest = stored_document(transport, addr).await.or(newest);
        }
        members.push(Member {
            id,
            addr: addr.clone(),
            zone: "local".to_string(),
            weight: 1,
        });
    }
    members.sort_by_key(|m| m.id);
    let doc = match newest {
        None => {
            let stores = if new.stores.is_empty() {
                vec![default_store(members.len())]
            } else {
                new.stores
            };
            sealer.sign(Membership::new(
                cluster_id,
                new.partitions,
                members,
                stores,
            )?)?
        }
        Some(mut doc) => {
            // Every member must be running; a running node that is not a
            // member (created with `quire node new`, not joined yet) is
            // fine and simply learns the document.
            let missing = doc
                .members
                .iter()
                .filter(|m| !members.iter().any(|r| r.id == m.id))
                .map(|m| m.id);
            let missing = ids(missing);
            if !missing.is_empty() {
                return Err(AdminError::MembersChanged {
                    running: ids(members.iter().map(|m| m.id)),
                    members: missing,
                });
            }
            let mut moved = false;
            for m in &mut doc.members {
                if let Some(running) = members.iter().find(|r| r.id == m.id) {
                    if m.addr != running.addr {
                        m.addr.clone_from(&running.addr);
                        moved = true;
                    }
                }
            }
            // A document that moved, or whose seal no longer verifies (its
            // signer is not trusted by the CA bundle in use), is made
            // again, signed by this admin.
            if moved || sealer.verifier().verify(&doc).is_err() {
                doc.epoch += 1;
                doc.validate()?;
                doc = sealer.sign(doc)?;
            }
            doc
        }
    };
    // Gossip semantics (no base): the document supersedes whatever each node
    // holds, including a node that missed changes while it was down.
    for (addr, result) in push_membership(transport, &doc, None).await {
        if let Err(refusal) = result {
            return Err(AdminError::Refused {
                addr,
                message: format!("{refusal:?}"),
            });
        }
    }
    Ok(doc)
}
