//! Hello and the membership document: who this node is, which cluster it
//! belongs to, and the newest document it was given.

use super::{refuse, unexpected, NodeState};
use crate::writer::{WriteOp, WriteOutcome};
use quire_shared::wire::{ErrorCode, ErrorReply, Reply, PROTOCOL_VERSION};
use quire_shared::{ClusterId, Membership};
use std::sync::Arc;

impl NodeState {
    /// Answers `Hello`: refuses another protocol or another cluster.
    pub(super) fn hello(
        &self,
        protocol_version: u32,
        cluster_id: Option<ClusterId>,
    ) -> Result<Reply, ErrorReply> {
        if protocol_version != PROTOCOL_VERSION {
            return Err(refuse(
                ErrorCode::ProtocolMismatch,
                format!("node speaks protocol {PROTOCOL_VERSION}, client {protocol_version}"),
            ));
        }
        let mine = self.membership().map(|m| m.cluster_id);
        if let (Some(theirs), Some(mine)) = (cluster_id, mine) {
            if theirs != mine {
                return Err(refuse(
                    ErrorCode::WrongCluster,
                    format!("node belongs to cluster {mine}, not {theirs}"),
                ));
            }
        }
        Ok(Reply::Hello {
            node_id: self.identity.node_id,
            actor_id: self.identity.actor_id,
            cluster_id: mine,
            protocol_version: PROTOCOL_VERSION,
        })
    }

    pub(super) async fn put_membership(&self, doc: Membership) -> Result<Reply, ErrorReply> {
        doc.validate()
            .map_err(|e| refuse(ErrorCode::InvalidMembership, e.to_string()))?;
        if let Some(current) = self.membership() {
            if current.cluster_id != doc.cluster_id {
                return Err(refuse(
                    ErrorCode::WrongCluster,
                    format!(
                        "node belongs to cluster {}, document is for {}",
                        current.cluster_id, doc.cluster_id
                    ),
                ));
            }
        }
        match self.write(WriteOp::Membership(doc)).await? {
            WriteOutcome::Membership(held) => {
                let epoch = held.epoch;
                let mut cache = self.membership.write().unwrap_or_else(|e| e.into_inner());
                if cache.as_ref().is_none_or(|c| c.epoch < epoch) {
                    *cache = Some(Arc::new(held));
                }
                Ok(Reply::MembershipEpoch(epoch))
            }
            other => Err(unexpected(&other)),
        }
    }
}
