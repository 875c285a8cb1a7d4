//! Hello and the membership document: who this node is, which cluster it
//! belongs to, and the newest document it was given.

use super::{refuse, unexpected, NodeState};
use crate::writer::{WriteOp, WriteOutcome};
use quire_shared::replica::MembershipOffer;
use quire_shared::wire::{ErrorCode, ErrorReply, Reply, PROTOCOL_VERSION};
use quire_shared::{ClusterId, Membership, MembershipVersion};
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
            metrics: self.metrics_addr,
            clock_ms: super::data::now_ms(),
        })
    }

    /// Takes an offered membership document: gossip (no `base`) keeps the
    /// document that supersedes; an admin's compare-and-set change (with
    /// `base`) is refused with `EpochConflict` unless the node holds exactly
    /// that base. A node only ever takes documents of its own cluster: the
    /// one in its config before it holds any document.
    pub(super) async fn put_membership(
        &self,
        doc: Membership,
        base: Option<MembershipVersion>,
    ) -> Result<Reply, ErrorReply> {
        doc.validate()
            .map_err(|e| refuse(ErrorCode::InvalidMembership, e.to_string()))?;
        let mine = self.membership().map(|m| m.cluster_id).or(self.cluster_id);
        if let Some(mine) = mine {
            if mine != doc.cluster_id {
                return Err(refuse(
                    ErrorCode::WrongCluster,
                    format!(
                        "node belongs to cluster {mine}, document is for {}",
                        doc.cluster_id
                    ),
                ));
            }
        }
        // Whoever offers it, a document is taken only with a seal that
        // verifies: signed by an admin of the cluster CA, or the flip of
        // such a document.
        // It is also checked against the document held (see
        // `Verifier::verify_successor`): here for a typed answer, and again
        // in the write that stores it, against the document held then.
        let current = self.membership();
        let signer = self
            .verifier()
            .verify_successor(&doc, current.as_deref())
            .map_err(|e| refuse(ErrorCode::Forbidden, e.to_string()))?;
        let op = WriteOp::Membership {
            doc,
            base,
            signer: Some(signer),
        };
        match self.write(op).await? {
            WriteOutcome::Membership { held, verdict } => {
                let epoch = held.epoch;
                match verdict {
                    MembershipOffer::Refused(why) => {
                        return Err(refuse(ErrorCode::Forbidden, why.to_string()));
                    }
                    MembershipOffer::Conflict => {
                        return Err(refuse(
                            ErrorCode::EpochConflict,
                            format!(
                                "the change was built on another document; the node holds epoch {epoch}: re-read and retry"
                            ),
                        ));
                    }
                    MembershipOffer::Accept | MembershipOffer::Keep => {}
                }
                let mut cache = self.membership.write().unwrap_or_else(|e| e.into_inner());
                if cache.as_ref().is_none_or(|c| held.supersedes(c)) {
                    *cache = Some(Arc::new(*held));
                }
                Ok(Reply::MembershipEpoch(epoch))
            }
            other => Err(unexpected(&other)),
        }
    }
}
