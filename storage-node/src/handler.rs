//! Request handling: validation, then a read or a queued write.
//!
//! Every refusal is a typed [`ErrorReply`] and is decided before anything is
//! written, so bad input never touches stored data.

use crate::config::Limits;
use crate::storage::{data_key, split_data_key, Identity, Storage, StorageError};
use crate::writer::{WriteOp, WriteOutcome, Writer};
use quire_shared::limits::{check_key, check_value};
use quire_shared::wire::{ErrorCode, ErrorReply, Hint, Reply, Request, Response, PROTOCOL_VERSION};
use quire_shared::{ConflictPolicy, Durability, Membership};
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
    membership: RwLock<Option<Arc<Membership>>>,
    /// Size limits.
    pub limits: Limits,
}

/// The writer answered an operation with the outcome of another kind: a
/// bug, reported to the client as a storage failure instead of a panic.
fn unexpected(outcome: &WriteOutcome) -> ErrorReply {
    tracing::error!(?outcome, "writer returned an unexpected outcome");
    refuse(
        ErrorCode::Storage,
        format!("internal error: unexpected writer outcome {outcome:?}"),
    )
}

/// Most hints returned in one page.
const HINTS_PAGE_MAX: usize = 1_000;

fn refuse(code: ErrorCode, message: impl Into<String>) -> ErrorReply {
    ErrorReply {
        code,
        message: message.into(),
    }
}

fn storage_failed(e: StorageError) -> ErrorReply {
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
    ) -> Result<Self, StorageError> {
        let membership = storage.membership()?.map(Arc::new);
        Ok(Self {
            identity,
            storage,
            writer,
            membership: RwLock::new(membership),
            limits,
        })
    }

    /// The cached membership document.
    pub fn membership(&self) -> Option<Arc<Membership>> {
        self.membership
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn epoch(&self) -> u64 {
        self.membership().map_or(0, |m| m.epoch)
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Response {
        let result = self.dispatch(request).await;
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

    /// Resolves `store`/`key` to an LMDB key, refusing unknown stores and
    /// bad keys.
    fn locate(&self, store: &str, key: &[u8]) -> Result<Vec<u8>, ErrorReply> {
        let doc = self.membership().ok_or_else(|| {
            refuse(
                ErrorCode::NoMembership,
                "node has no membership document yet; run `quire up` or push one",
            )
        })?;
        if doc.store(store).is_none() {
            let known: Vec<&str> = doc.stores.iter().map(|s| s.name.as_str()).collect();
            return Err(refuse(
                ErrorCode::UnknownStore,
                format!(
                    "store {store:?} does not exist (stores: {})",
                    known.join(", ")
                ),
            ));
        }
        check_key(key).map_err(|(code, msg)| refuse(code, msg))?;
        Ok(data_key(store, doc.partition_of(store, key), key))
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, ErrorReply> {
        self.writer.write(op, true).await.map_err(storage_failed)
    }

    /// How `store` resolves conflicts (last write wins: nodes then keep
    /// only the newest value); siblings for a store not known yet.
    fn policy(&self, store: &str) -> ConflictPolicy {
        self.membership()
            .and_then(|m| m.store(store).map(|s| s.policy))
            .unwrap_or(ConflictPolicy::Siblings)
    }

    /// A data write, fsynced before the answer unless `store` is buffered.
    async fn write_data(&self, store: &str, op: WriteOp) -> Result<WriteOutcome, ErrorReply> {
        let durable = self
            .membership()
            .and_then(|m| m.store(store).map(|s| s.durability))
            .is_none_or(|d| d == Durability::Sync);
        self.writer.write(op, durable).await.map_err(storage_failed)
    }

    async fn dispatch(&self, request: Request) -> Result<Reply, ErrorReply> {
        match request {
            Request::Hello {
                protocol_version,
                cluster_id,
            } => {
                if protocol_version != PROTOCOL_VERSION {
                    return Err(refuse(
                        ErrorCode::ProtocolMismatch,
                        format!(
                            "node speaks protocol {PROTOCOL_VERSION}, client {protocol_version}"
                        ),
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
            Request::Get { store, key, hint } => {
                let dk = self.locate(&store, &key)?;
                let object = match hint {
                    None => self.storage.get(&dk),
                    // Which home a stand-in holds the key for depends on
                    // the order failures were seen in: answer with all.
                    Some(home) => {
                        let mut homes: Vec<_> = self
                            .membership()
                            .map(|m| m.members.iter().map(|m| m.id).collect())
                            .unwrap_or_default();
                        homes.push(home);
                        homes.sort_unstable();
                        homes.dedup();
                        self.storage.get_hints(&homes, &dk)
                    }
                }
                .map_err(storage_failed)?;
                Ok(Reply::Object(object))
            }
            Request::Put {
                store,
                key,
                value,
                context,
                hint,
            } => {
                let dk = self.locate(&store, &key)?;
                check_value(value.size_bytes(), self.limits.value_bytes_max)
                    .map_err(|(code, msg)| refuse(code, msg))?;
                let members = self
                    .membership()
                    .map(|m| m.members.iter().map(|m| m.id).collect())
                    .unwrap_or_default();
                match self
                    .write_data(
                        &store,
                        WriteOp::Put {
                            data_key: dk,
                            value,
                            context,
                            hint,
                            members,
                            policy: self.policy(&store),
                        },
                    )
                    .await?
                {
                    WriteOutcome::Stored(o) => Ok(Reply::Stored(o)),
                    other => Err(unexpected(&other)),
                }
            }
            Request::Hints {
                target,
                after,
                limit,
            } => {
                let limit = (limit as usize).clamp(1, HINTS_PAGE_MAX);
                let page = self
                    .storage
                    .hints_page(target, after.as_deref(), limit)
                    .map_err(storage_failed)?;
                let next = (page.len() == limit).then(|| page[page.len() - 1].0.clone());
                let hints = page
                    .into_iter()
                    .filter_map(|(dk, object)| {
                        let (store, _, key) = split_data_key(&dk)?;
                        Some(Hint { store, key, object })
                    })
                    .collect();
                Ok(Reply::Hints { hints, next })
            }
            Request::DropHints { target, hints } => {
                let mut items = Vec::with_capacity(hints.len());
                for h in hints {
                    items.push((self.locate(&h.store, &h.key)?, h.object));
                }
                match self.write(WriteOp::DropHints { target, items }).await? {
                    WriteOutcome::Dropped(n) => Ok(Reply::Dropped(n)),
                    other => Err(unexpected(&other)),
                }
            }
            Request::Replicate {
                store,
                key,
                object,
                hint,
            } => {
                let dk = self.locate(&store, &key)?;
                if !object.is_well_formed() {
                    return Err(refuse(
                        ErrorCode::InvalidObject,
                        "object entries are unsorted or hold more values than their counters",
                    ));
                }
                for v in object.values() {
                    check_value(v.size_bytes(), self.limits.value_bytes_max)
                        .map_err(|(code, msg)| refuse(code, msg))?;
                }
                match self
                    .write_data(
                        &store,
                        WriteOp::Replicate {
                            data_key: dk,
                            object,
                            hint,
                            policy: self.policy(&store),
                        },
                    )
                    .await?
                {
                    WriteOutcome::Stored(o) => Ok(Reply::Stored(o)),
                    other => Err(unexpected(&other)),
                }
            }
            Request::GetMembership => {
                Ok(Reply::Membership(self.membership().map(|m| (*m).clone())))
            }
            Request::PutMembership { membership } => self.put_membership(membership).await,
        }
    }

    async fn put_membership(&self, doc: Membership) -> Result<Reply, ErrorReply> {
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
