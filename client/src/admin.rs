//! Forming a cluster: ask each node who it is, write the membership document
//! and hand it to every node.
//!
//! Used by `quire up`, `quire store create` and the local-cluster launcher;
//! an operator's own tooling can call it too. Admin requests go to single
//! nodes, outside the quorum machines. A cluster formed again with the
//! same nodes keeps its partition owners; if addresses moved, the document
//! gets the new addresses under a higher epoch.

use crate::client::Client;
use crate::config::ClientConfig;
use crate::transport::{SetupError, Transport};
use quire_shared::wire::{Reply, Request, Response, PROTOCOL_VERSION};
use quire_shared::{
    ClusterId, ConflictPolicy, Durability, Member, Membership, MembershipError, NodeId, StoreConfig,
};
use std::time::{Duration, Instant};

/// Partitions of a new cluster (the design's default `Q`).
pub const PARTITIONS_DEFAULT: u32 = 256;

/// The store every new cluster starts with.
pub const DEFAULT_STORE: &str = "default";

/// Why a cluster could not be formed or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The admin client's TLS identity or socket could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
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
    #[error("node at {addr} belongs to cluster {theirs}, not {ours}; wrong data directory?")]
    WrongCluster {
        /// The node's address.
        addr: String,
        /// Its cluster.
        theirs: ClusterId,
        /// Ours.
        ours: ClusterId,
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
    /// No node took the changed document.
    #[error("no node accepted the new membership document: {0}")]
    NotAccepted(String),
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
        policy: ConflictPolicy::Siblings,
        limits: quire_shared::StoreLimits::default(),
    }
}

fn ids(list: impl Iterator<Item = NodeId>) -> String {
    let mut v: Vec<String> = list.map(|id| id.to_string()).collect();
    v.sort();
    v.join(", ")
}

async fn hello(
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
/// returns the document every node now holds. `config` gives the admin's
/// TLS identity (its seeds are not used).
///
/// Waits up to `wait` for each node to answer. A new cluster gets `stores`
/// (or [`default_store`] when empty) and [`PARTITIONS_DEFAULT`] partitions.
pub async fn form_cluster(
    config: &ClientConfig,
    cluster_id: ClusterId,
    addrs: &[String],
    stores: Vec<StoreConfig>,
    wait: Duration,
) -> Result<Membership, AdminError> {
    let transport = Transport::new(&config.tls, &config.timeouts)?;
    let formed = form_with(&transport, cluster_id, addrs, stores, wait).await;
    transport.close();
    formed
}

async fn form_with(
    transport: &Transport,
    cluster_id: ClusterId,
    addrs: &[String],
    stores: Vec<StoreConfig>,
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
                return Err(AdminError::MembersChanged {
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
    for (addr, result) in push_membership(transport, &doc).await {
        if let Err(message) = result {
            return Err(AdminError::Refused { addr, message });
        }
    }
    Ok(doc)
}

/// Offers `doc` to every member; returns each member's address and whether
/// it now holds this document (or a newer one).
async fn push_membership(
    transport: &Transport,
    doc: &Membership,
) -> Vec<(String, Result<(), String>)> {
    let mut out = Vec::new();
    for m in &doc.members {
        let request = Request::PutMembership {
            membership: doc.clone(),
        };
        let answer = transport
            .call(&m.addr, &request, Duration::from_millis(3_000))
            .await;
        let result = match answer {
            Ok(Response {
                result: Ok(Reply::MembershipEpoch(epoch)),
                ..
            }) if epoch >= doc.epoch => Ok(()),
            Ok(other) => Err(format!("{:?}", other.result)),
            Err(e) => Err(e.to_string()),
        };
        out.push((m.addr.clone(), result));
    }
    out
}

impl Client {
    /// Adds `store` to the cluster: a new document at the next epoch,
    /// pushed to every member. Succeeds when at least one member took it
    /// (clients carry it to the others); unreachable members are listed in
    /// the result.
    pub async fn create_store(
        &self,
        store: StoreConfig,
    ) -> Result<(Membership, Vec<String>), AdminError> {
        create_store(self.transport(), &self.membership(), store).await
    }
}

async fn create_store(
    transport: &Transport,
    current: &Membership,
    store: StoreConfig,
) -> Result<(Membership, Vec<String>), AdminError> {
    let mut doc = current.clone();
    if doc.store(&store.name).is_some() {
        return Err(MembershipError::DuplicateStore(store.name).into());
    }
    doc.stores.push(store);
    doc.stores.sort_by(|a, b| a.name.cmp(&b.name));
    doc.epoch += 1;
    doc.validate()?;
    let results = push_membership(transport, &doc).await;
    let missed: Vec<String> = results
        .iter()
        .filter_map(|(addr, r)| r.as_ref().err().map(|e| format!("{addr}: {e}")))
        .collect();
    if missed.len() == results.len() {
        return Err(AdminError::NotAccepted(missed.join("; ")));
    }
    // Two changes made at once share an epoch; nodes keep the first they
    // see. Check that ours is the one kept.
    let (addr, _) = results
        .iter()
        .find(|(_, r)| r.is_ok())
        .expect("one member accepted");
    if let Some(held) = stored_document(transport, addr).await {
        if held.epoch == doc.epoch && held != doc {
            return Err(AdminError::NotAccepted(format!(
                "another membership change took epoch {} first; retry",
                doc.epoch
            )));
        }
    }
    Ok((doc, missed))
}
