//! Get, put and replicate of user keys: resolve the store and key, check
//! sizes, then read from storage or queue a write.

use super::{refuse, storage_failed, unexpected, NodeState};
use crate::storage::data_key;
use crate::writer::{WriteOp, WriteOutcome};
use quire_shared::limits::{check_key, check_value};
use quire_shared::wire::{ErrorCode, ErrorReply, Reply};
use quire_shared::{ConflictPolicy, Durability, NodeId, Object, StoreLimits, Value, VersionVector};

/// This node's wall clock in milliseconds since the Unix epoch (0 if the
/// clock is before it: the replica rule still orders writes after what is
/// stored), shifted by [`crate::CLOCK_SKEW_ENV`] in test builds.
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        .saturating_add_signed(clock_skew_ms())
}

/// The test clock shift, read once (feature `fault-injection` only).
#[cfg(feature = "fault-injection")]
fn clock_skew_ms() -> i64 {
    static SKEW_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *SKEW_MS.get_or_init(|| {
        std::env::var(crate::CLOCK_SKEW_ENV)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// No shift: release builds never read the test variable.
#[cfg(not(feature = "fault-injection"))]
fn clock_skew_ms() -> i64 {
    0
}

impl NodeState {
    /// Resolves `store`/`key` to an LMDB key, refusing unknown stores and
    /// bad keys.
    pub(super) fn locate(&self, store: &str, key: &[u8]) -> Result<Vec<u8>, ErrorReply> {
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

    pub(super) async fn write(&self, op: WriteOp) -> Result<WriteOutcome, ErrorReply> {
        self.writer.write(op, true).await.map_err(storage_failed)
    }

    /// How `store` resolves conflicts (last write wins: nodes then keep
    /// only the newest value); siblings for a store not known yet.
    pub(super) fn policy(&self, store: &str) -> ConflictPolicy {
        self.membership()
            .and_then(|m| m.store(store).map(|s| s.policy))
            .unwrap_or(ConflictPolicy::Siblings)
    }

    /// The ids of every member, for the writer to find hint copies by.
    pub(super) fn member_ids(&self) -> Vec<NodeId> {
        self.membership()
            .map(|m| m.members.iter().map(|m| m.id).collect())
            .unwrap_or_default()
    }

    /// The bounds on a key's object in `store`, held under this node's
    /// frame limit so every object it stores fits the frames that carry it.
    pub(super) fn object_limits(&self, store: &str) -> StoreLimits {
        self.membership()
            .and_then(|m| m.store(store).map(|s| s.limits))
            .unwrap_or_default()
            .within_frame(self.limits.frame_bytes_max)
    }

    /// A data write, fsynced before the answer unless `store` is buffered.
    pub(super) async fn write_data(
        &self,
        store: &str,
        op: WriteOp,
    ) -> Result<WriteOutcome, ErrorReply> {
        let durable = self
            .membership()
            .and_then(|m| m.store(store).map(|s| s.durability))
            .is_none_or(|d| d == Durability::Sync);
        self.writer.write(op, durable).await.map_err(storage_failed)
    }

    /// Refuses an object from the wire that breaks the DVVSet invariants
    /// or holds a value over this node's limit.
    pub(super) fn check_object(&self, object: &Object) -> Result<(), ErrorReply> {
        object
            .validate()
            .map_err(|e| refuse(ErrorCode::InvalidObject, format!("object: {e}")))?;
        for v in object.values() {
            check_value(v.size_bytes(), self.limits.value_bytes_max)
                .map_err(|(code, msg)| refuse(code, msg))?;
        }
        Ok(())
    }

    /// Refuses an un-hinted write of a key this node is not a home replica
    /// (or, while a change moves data, an incoming one) of in its
    /// membership: a client with a stale document would otherwise
    /// land plain data on a non-owner and count it towards W. Writes kept as
    /// hints (`hint = Some(home)`) are what stand-ins are for.
    pub(super) fn check_home_replica(
        &self,
        store: &str,
        key: &[u8],
        hint: Option<NodeId>,
    ) -> Result<(), ErrorReply> {
        let Some(doc) = self.membership() else {
            return Ok(()); // `locate` has refused already
        };
        let Some(config) = doc.store(store) else {
            return Ok(());
        };
        if hint.is_some() {
            return Ok(());
        }
        let list = doc.preference_list(store, key, config.n as usize);
        // An incoming replica of a membership change takes writes too
        // (asked only when the node is not home: the common case walks
        // the ring once).
        let me = self.identity.node_id;
        let incoming = || doc.incoming(list.partition, usize::from(config.n));
        if list.home().contains(&me) || incoming().contains(&me) {
            return Ok(());
        }
        Err(refuse(
            ErrorCode::NotOwner,
            format!(
                "node {} is not a home replica of this key (partition {}) in membership epoch {}; refresh membership and retry",
                self.identity.node_id, list.partition, doc.epoch
            ),
        ))
    }

    /// The node's copy of a key, or (asked as a stand-in) every hint it
    /// holds for it. A node that is not a home (or incoming) replica of
    /// the key refuses an un-hinted read with `NotOwner`, as it refuses
    /// writes: after a membership change its copy may be gone or stale,
    /// and a client on an older document must refresh it rather than read
    /// "not found" here.
    pub(super) fn get(
        &self,
        store: &str,
        key: &[u8],
        hint: Option<NodeId>,
    ) -> Result<Reply, ErrorReply> {
        let dk = self.locate(store, key)?;
        self.check_home_replica(store, key, hint)?;
        let object = match hint {
            None => self.storage.get(&dk),
            // Which home a stand-in holds the key for depends on the order
            // failures were seen in: answer with all.
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

    /// A coordinated write: a new dot at this node (or its stand-in actor).
    pub(super) async fn put(
        &self,
        store: &str,
        key: &[u8],
        mut value: Value,
        context: VersionVector,
        hint: Option<NodeId>,
    ) -> Result<Reply, ErrorReply> {
        let dk = self.locate(store, key)?;
        self.check_home_replica(store, key, hint)?;
        check_value(value.size_bytes(), self.limits.value_bytes_max)
            .map_err(|(code, msg)| refuse(code, msg))?;
        // The coordinator's clock, not the client's, orders last-write-wins
        // (the replica rule keeps it above every timestamp already stored).
        value.timestamp_ms = now_ms();
        // The writer checks the context's dots against what it holds;
        // its form is checked here, before anything is queued.
        context
            .validate()
            .map_err(|e| refuse(ErrorCode::InvalidContext, format!("context: {e}")))?;
        let op = WriteOp::Put {
            data_key: dk,
            value,
            context,
            hint,
            members: self.member_ids(),
            policy: self.policy(store),
            limits: self.object_limits(store),
        };
        stored(self.write_data(store, op).await?)
    }

    /// Syncs a coordinator's object into the local copy (or hint).
    pub(super) async fn replicate(
        &self,
        store: &str,
        key: &[u8],
        object: Object,
        hint: Option<NodeId>,
    ) -> Result<Reply, ErrorReply> {
        let dk = self.locate(store, key)?;
        self.check_home_replica(store, key, hint)?;
        self.check_object(&object)?;
        let op = WriteOp::Replicate {
            data_key: dk,
            object,
            hint,
            members: self.member_ids(),
            policy: self.policy(store),
            limits: self.object_limits(store),
        };
        stored(self.write_data(store, op).await?)
    }
}

/// The answer to a put or replication: the object stored, or the writer's
/// refusal.
fn stored(outcome: WriteOutcome) -> Result<Reply, ErrorReply> {
    match outcome {
        WriteOutcome::Stored(o) => Ok(Reply::Stored(o)),
        WriteOutcome::Refused { code, message } => Err(refuse(code, message)),
        other => Err(unexpected(&other)),
    }
}
