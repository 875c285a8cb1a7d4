//! Forming a cluster: ask each node who it is, write the membership document
//! and hand it to every node.
//!
//! Used by `quire up` and by test harnesses. A cluster formed again with the
//! same nodes keeps its partition owners; if addresses moved, the document
//! gets the new addresses under a higher epoch.

use quire_client::transport::Transport;
use quire_shared::wire::{Reply, Request, Response, PROTOCOL_VERSION};
use quire_shared::{Durability, Member, Membership, MembershipError, NodeId, StoreConfig};
use std::time::{Duration, Instant};

/// Partitions of a new cluster (the design's default `Q`).
pub const PARTITIONS_DEFAULT: u32 = 256;

/// The store every new cluster starts with.
pub const DEFAULT_STORE: &str = "default";

/// Why a cluster could not be formed.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// A node never answered `Hello`.
    #[error("node at {addr} did not answer within {waited_ms} ms: {last_error}")]
    NoAnswer {
        /// The node's address.
        addr: String,
        /// How long we tried.
        waited_ms: u128,
        /// The last failure seen.
        last_error: String,
    },
    /// A node holds a document of another cluster.
    #[error(
        "node at {addr} belongs to cluster {theirs:016x}, not {ours:016x}; wrong data directory?"
    )]
    WrongCluster {
        /// The node's address.
        addr: String,
        /// Its cluster.
        theirs: u64,
        /// Ours.
        ours: u64,
    },
    /// The nodes are not the ones the stored document names.
    #[error("the running nodes ({running}) are not the cluster's members ({members}); adding or removing nodes needs rebalancing, which `quire up` does not do")]
    MembersChanged {
        /// Ids answering now.
        running: String,
        /// Ids in the stored document.
        members: String,
    },
    /// The document is invalid.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// A node refused the document.
    #[error("node at {addr} refused the membership document: {message}")]
    Refused {
        /// The node's address.
        addr: String,
        /// Its answer.
        message: String,
    },
}

/// The `default` store for a cluster of `nodes`: (N, R, W) = (3, 2, 2),
/// reduced to fit a smaller cluster, synced writes.
pub fn default_store(nodes: usize) -> StoreConfig {
    let n = nodes.clamp(1, 3) as u8;
    StoreConfig {
        name: DEFAULT_STORE.to_string(),
        n,
        r: n.min(2),
        w: n.min(2),
        durability: Durability::Sync,
    }
}

fn ids(list: impl Iterator<Item = NodeId>) -> String {
    let mut v: Vec<String> = list.map(|id| format!("{id:016x}")).collect();
    v.sort();
    v.join(", ")
}

async fn hello(
    transport: &Transport,
    addr: &str,
    deadline: Instant,
) -> Result<(NodeId, u64, Option<u64>), FormError> {
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
            return Err(FormError::NoAnswer {
                addr: addr.to_string(),
                waited_ms: started.elapsed().as_millis(),
                last_error,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stored_document(transport: &Transport, addr: &str) -> Option<Membership> {
    match transport
        .call(addr, &Request::GetMembership, Duration::from_millis(1_000))
        .await
    {
        Ok(Response {
            result: Ok(Reply::Membership(doc)),
            ..
        }) => doc,
        _ => None,
    }
}

/// Forms (or re-forms) cluster `cluster_id` from the nodes at `addrs` and
/// returns the document every node now holds.
///
/// Waits up to `wait` for each node to answer. A new cluster gets `stores`
/// (or [`default_store`] when empty) and [`PARTITIONS_DEFAULT`] partitions.
pub async fn form_cluster(
    transport: &Transport,
    cluster_id: u64,
    addrs: &[String],
    stores: Vec<StoreConfig>,
    wait: Duration,
) -> Result<Membership, FormError> {
    let deadline = Instant::now() + wait;
    let mut members = Vec::new();
    let mut newest: Option<Membership> = None;
    for addr in addrs {
        let (id, epoch, theirs) = hello(transport, addr, deadline).await?;
        if let Some(theirs) = theirs.filter(|t| *t != cluster_id) {
            return Err(FormError::WrongCluster {
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
            let stores = if stores.is_empty() {
                vec![default_store(members.len())]
            } else {
                stores
            };
            Membership::new(cluster_id, PARTITIONS_DEFAULT, members, stores)?
        }
        Some(mut doc) => {
            let same_ids = doc.members.len() == members.len()
                && doc.members.iter().zip(&members).all(|(a, b)| a.id == b.id);
            if !same_ids {
                return Err(FormError::MembersChanged {
                    running: ids(members.iter().map(|m| m.id)),
                    members: ids(doc.members.iter().map(|m| m.id)),
                });
            }
            let moved = doc
                .members
                .iter()
                .zip(&members)
                .any(|(a, b)| a.addr != b.addr);
            if moved {
                for (old, new) in doc.members.iter_mut().zip(&members) {
                    old.addr.clone_from(&new.addr);
                }
                doc.epoch += 1;
                doc.validate()?;
            }
            doc
        }
    };
    for m in &doc.members {
        let answer = transport
            .call(
                &m.addr,
                &Request::PutMembership {
                    membership: doc.clone(),
                },
                Duration::from_millis(3_000),
            )
            .await;
        match answer {
            Ok(Response {
                result: Ok(Reply::MembershipEpoch(_)),
                ..
            }) => {}
            Ok(other) => {
                return Err(FormError::Refused {
                    addr: m.addr.clone(),
                    message: format!("{:?}", other.result),
                })
            }
            Err(e) => {
                return Err(FormError::Refused {
                    addr: m.addr.clone(),
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(doc)
}
