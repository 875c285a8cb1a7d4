//! Request handling: validation, then a read or a queued write.
//!
//! Every refusal is a typed [`ErrorReply`] and is decided before anything is
//! written, so bad input never touches stored data.
//!
//! # Layout
//!
//! - this file: the shared state and the dispatch of each request kind;
//! - [`data`]: get, put and replicate of user keys;
//! - [`hints`]: the hints a stand-in holds for other nodes;
//! - [`merkle`]: anti-entropy digests and scans, totals, and the
//!   conditional delete of tombstone reaping;
//! - [`membership`]: hello and the membership document.

mod data;
mod hints;
mod membership;
mod merkle;
mod transfer;

use crate::config::Limits;
use crate::metrics::NodeMetrics;
use crate::storage::{Identity, Storage, StorageError};
use crate::writer::{WriteOutcome, Writer};
use quire_net::identity::Peer;
use quire_shared::access::{authorize, Grant, Principal};
use quire_shared::wire::{ErrorCode, ErrorReply, Reply, Request, Response};
use quire_shared::{ClusterId, Membership};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Everything a request handler needs; shared by all connections.
pub struct NodeState {
    /// Node and actor ids.
    pub identity: Identity,
    /// Read side of storage.
    pub storage: Storage,
    /// Write side of storage (group commit).
    pub writer: Writer,
    /// Newest membership document, cached from storage.
    pub(crate) membership: RwLock<Option<Arc<Membership>>>,
    /// Size limits.
    pub limits: Limits,
    /// The cluster from the node's config, if set: the only one whose
    /// first document a fresh node takes.
    pub cluster_id: Option<ClusterId>,
    /// Checks the seal of every membership document offered: only
    /// documents an admin signed (or their flips) are taken.
    /// Swapped when the node reloads its TLS files (a new CA bundle).
    pub(crate) verifier: RwLock<Arc<quire_net::seal::Verifier>>,
    /// What the node tells Prometheus (Merkle roots served, for `Stats`
    /// too).
    pub(crate) metrics: NodeMetrics,
    /// Where the node serves its metrics, told in `Hello`.
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    /// The partitions it is receiving (`limits.transfers_in_max`).
    pub(crate) inbound: crate::inbound::Inbound,
}

/// The writer answered an operation with the outcome of another kind: a
/// bug, reported to the client as a storage failure instead of a panic.
pub(crate) fn unexpected(outcome: &WriteOutcome) -> ErrorReply {
    tracing::error!(?outcome, "writer returned an unexpected outcome");
    refuse(
        ErrorCode::Storage,
        format!("internal error: unexpected writer outcome {outcome:?}"),
    )
}

pub(crate) fn refuse(code: ErrorCode, message: impl Into<String>) -> ErrorReply {
    ErrorReply {
        code,
        message: message.into(),
    }
}

pub(crate) fn storage_failed(e: StorageError) -> ErrorReply {
    if let StorageError::FailStopped(_) = e {
        // Logged once when it happened; the client tries another replica.
        return refuse(ErrorCode::Unavailable, e.to_string());
    }
    tracing::error!(error = %e, "storage failure");
    refuse(ErrorCode::Storage, e.to_string())
}

impl NodeState {
    /// Builds the state, loading the stored membership document.
    pub fn new(
        identity: Identity,
        storage: Storage,
        writer: Writer,
        limits: Limits,
        cluster_id: Option<ClusterId>,
        verifier: quire_net::seal::Verifier,
        metrics_addr: Option<std::net::SocketAddr>,
    ) -> Result<Self, StorageError> {
        let membership = storage.membership()?.map(Arc::new);
        let metrics = NodeMetrics::new(writer.stats());
        let inbound = crate::inbound::Inbound::new(limits.transfers_in_max);
        Ok(Self {
            identity,
            storage,
            writer,
            membership: RwLock::new(membership),
            limits,
            cluster_id,
            verifier: RwLock::new(Arc::new(verifier)),
            metrics,
            metrics_addr,
            inbound,
        })
    }

    /// The cached membership document.
    pub fn membership(&self) -> Option<Arc<Membership>> {
        self.membership
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.membership().map_or(0, |m| m.epoch)
    }

    /// Keys and bytes incoming transfers of the pending membership change
    /// have brought this node so far, per store; `None` when no change is
    /// pending (or the records cannot be read).
    pub(crate) fn transfers_received(&self) -> Option<BTreeMap<String, (u64, u64)>> {
        let change = self.membership()?.pending.as_ref()?.since;
        let records = self
            .storage
            .transfers()
            .map_err(|e| tracing::warn!(error = %e, "reading transfer records failed"))
            .ok()?;
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (store, _, progress) in records.into_iter().filter(|r| r.2.change == change) {
            let totals = out.entry(store).or_default();
            totals.0 += progress.keys;
            totals.1 += progress.bytes;
        }
        Some(out)
    }

    /// The node's metrics in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(self)
    }

    /// Answers one request from the identity `principal` its connection's
    /// certificate names: refused with `Forbidden` unless that identity
    /// may make it (see [`quire_shared::access`]).
    pub async fn handle(&self, request: Request, peer: &Peer) -> Response {
        let result = match self.authorize(&request, peer) {
            Ok(()) => self.dispatch(request, &peer.principal).await,
            Err(refusal) => Err(refusal),
        };
        Response {
            epoch: self.epoch(),
            result,
        }
    }

    /// A response for a frame that could not be decoded or was too large.
    pub fn refusal(&self, code: ErrorCode, message: String) -> Response {
        Response {
            epoch: self.epoch(),
            result: Err(refuse(code, message)),
        }
    }

    /// The seal verifier for the CA bundle loaded last.
    pub(crate) fn verifier(&self) -> Arc<quire_net::seal::Verifier> {
        self.verifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The grants of `doc`, the held membership document (none before
    /// one): borrowed, so a request copies no grant.
    pub(crate) fn grants_of(doc: &Option<Arc<Membership>>) -> &[Grant] {
        doc.as_deref().map_or(&[][..], |m| m.grants.as_slice())
    }

    fn authorize(&self, request: &Request, peer: &Peer) -> Result<(), ErrorReply> {
        let doc = self.membership();
        let principal = &peer.principal;
        if let Some(doc) = doc.as_deref() {
            if doc.revoked.binary_search(&peer.serial).is_ok() {
                tracing::info!(%principal, serial = %peer.serial, "revoked certificate refused");
                return Err(refuse(
                    ErrorCode::Forbidden,
                    format!(
                        "the certificate of {principal} (serial {}) is revoked",
                        peer.serial
                    ),
                ));
            }
        }
        authorize(principal, request.scope(), Self::grants_of(&doc)).map_err(|denied| {
            tracing::info!(%principal, kind = request.kind(), %denied, "request refused");
            refuse(ErrorCode::Forbidden, denied.to_string())
        })
    }

    async fn dispatch(&self, request: Request, principal: &Principal) -> Result<Reply, ErrorReply> {
        match request {
            Request::Hello {
                protocol_version,
                cluster_id,
            } => self.hello(protocol_version, cluster_id),
            Request::Get { store, key, hint } => self.get(&store, &key, hint),
            Request::Put {
                store,
                key,
                value,
                context,
                hint,
            } => self.put(&store, &key, value, context, hint).await,
            Request::Replicate {
                store,
                key,
                object,
                hint,
            } => self.replicate(&store, &key, object, hint).await,
            Request::Hints {
                target,
                after,
                limit,
            } => self.hints(target, after.as_deref(), limit, principal),
            Request::DropHints { target, hints } => self.drop_hints(target, hints, principal).await,
            Request::GetMembership => {
                Ok(Reply::Membership(self.membership().map(|m| (*m).clone())))
            }
            Request::PutMembership { membership, base } => {
                self.put_membership(*membership, base).await
            }
            Request::MerkleRoot { store, partition } => self.merkle_root(&store, partition),
            Request::MerkleSegments {
                store,
                partition,
                first,
                count,
                group,
            } => self.merkle_segments(&store, partition, (first, count, group)),
            Request::ScanSegment {
                store,
                partition,
                segments,
                tombstones_only,
                listing,
                after,
                bytes_max,
            } => {
                self.scan_segment(
                    (&store, partition),
                    &segments,
                    (tombstones_only, listing),
                    (after.as_deref(), bytes_max),
                )
                .await
            }
            Request::Stats => self.stats().await,
            Request::DeleteIfEqual { store, key, object } => {
                self.delete_if_equal(&store, &key, object).await
            }
            Request::TransferState { store, partition } => self.transfer_state(&store, partition),
            Request::TransferPage {
                store,
                partition,
                change,
                entries,
                progress,
            } => {
                self.transfer_page((&store, partition), change, entries, progress)
                    .await
            }
            Request::DropPartition {
                store,
                partition,
                root,
            } => self.drop_partition(&store, partition, root).await,
        }
    }
}
