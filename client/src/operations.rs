//! The data path of [`Client`]: get, put, delete and the status probe, and
//! what they return. Each builds a quorum machine for the key's targets and
//! lets the driver pump it over the transport.
//!
//! # Layout
//!
//! - this file: get, put and delete, with or without [`RequestOptions`];
//! - `status`: the `Hello` probe of every member.

mod status;

pub use status::NodeStatus;

use crate::client::Client;
use crate::clock::now_ms;
use crate::config::ReadFanout;
use crate::driver::drive;
use crate::error::ClientError;
use crate::metrics::OperationKind;
use crate::options::RequestOptions;
use crate::quorum::get::{Fanout, GetMachine};
use crate::quorum::put::{PutMachine, PutRequest};
use crate::quorum::targets::{plan, Planned};
use crate::quorum::MachineError;
use crate::resolve::Sibling;
use quire_shared::limits::check_key;
use quire_shared::wire::ErrorCode;
use quire_shared::{
    last_write_wins, ConflictPolicy, Context, Membership, NodeId, Object, StoreConfig, Value,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument as _;

/// What a get found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResult {
    /// The live values (siblings): more than one means concurrent writes
    /// the application should reconcile. Tombstones are left out.
    pub siblings: Vec<Sibling>,
    /// Hand this back with the next write of the key so that it supersedes
    /// everything read here. Present even when the key is not found.
    pub context: Context,
}

impl GetResult {
    /// True when at least one live value exists.
    pub fn found(&self) -> bool {
        !self.siblings.is_empty()
    }

    /// The siblings' bytes.
    pub fn values(&self) -> Vec<&[u8]> {
        self.siblings.iter().map(|s| s.value.as_slice()).collect()
    }
}

/// What a put or delete did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    /// The live values the coordinator holds after this write: the value
    /// just written, plus any concurrent sibling it did not replace.
    pub siblings: Vec<Sibling>,
    /// The context covering exactly `siblings`. A follow-up write with it
    /// replaces all of them, so merge them first if there are several.
    pub context: Context,
    /// How many replicas acknowledged before the call returned.
    pub acknowledged: usize,
    /// Which nodes those were, coordinator first.
    pub stored_on: Vec<NodeId>,
}

/// The object's values that are not tombstones.
fn live_siblings(object: &quire_shared::Object) -> Vec<Sibling> {
    object
        .values()
        .filter_map(|v| {
            v.data.clone().map(|value| Sibling {
                value,
                timestamp_ms: v.timestamp_ms,
            })
        })
        .collect()
}

/// What a read of a store with `policy` returns of the synced `object`.
/// Replicas of a last-write-wins store may hold the newest value of each
/// coordinator that wrote concurrently (replication does not collapse:
/// see [`quire_shared::replica::replicate`]), so the reader keeps the
/// newest, tombstones included: a newer delete hides an older value. The
/// context is unchanged, so the next write replaces everything read.
fn read_as(policy: ConflictPolicy, object: Object) -> Object {
    match policy {
        ConflictPolicy::Siblings => object,
        ConflictPolicy::Lww => last_write_wins(&object),
    }
}

/// The span an operation runs in: at debug level (a span per operation
/// costs too much on the data path to be on by default;
/// `RUST_LOG=quire_client=debug` turns it on), with the store, and the
/// key's partition once planned, on every event inside.
fn operation_span(kind: &'static str, store: &str) -> tracing::Span {
    tracing::debug_span!(
        "quire.operation",
        kind,
        store,
        partition = tracing::field::Empty
    )
}

/// Records `key`'s partition in the current operation's span, if on.
fn record_partition(plan: &Plan, store: &str, key: &[u8]) {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("partition", plan.doc.partition_of(store, key));
    }
}

/// The operation's outcome as a debug event inside its span.
fn outcome_event<T>(result: &Result<T, ClientError>) {
    match result {
        Ok(_) => tracing::debug!("done"),
        Err(e) => tracing::debug!(error = %e, "failed"),
    }
}

/// Where one request for a key goes, as this client sees the cluster now.
pub(crate) struct Plan {
    /// The membership the request was planned with (and reaches nodes by).
    doc: Arc<Membership>,
    /// The store's settings (`N`, `R`, `W`).
    config: StoreConfig,
    /// Targets, spares and what a pending change moves
    /// (`quorum::targets::plan`).
    pub(crate) planned: Planned,
}

impl Client {
    /// Plans a request for `key` in `store`: the same targets and spares
    /// for a get as for a put, so a read looks where a write under the
    /// same failures went. Refuses an unknown store or an invalid key.
    pub(crate) fn plan(&self, store: &str, key: &[u8]) -> Result<Plan, ClientError> {
        let doc = self.membership();
        let config = self.store_config(&doc, store)?;
        check_key(key).map_err(|(code, message)| ClientError::Invalid { code, message })?;
        let n = config.n as usize;
        let list = doc.preference_list(store, key, n);
        let planned = plan(&doc, &list, n, |n| self.inner.health.is_up(n));
        Ok(Plan {
            doc,
            config,
            planned,
        })
    }

    /// Reads `key` from `store`: every sibling, and the context to write
    /// with. Succeeds when `R` of the key's first `N` healthy nodes answer:
    /// home replicas, or stand-ins answering from the hints they hold for
    /// the home replicas that are down (a node that fails mid-read is
    /// replaced by the next one, as in a put).
    ///
    /// ```no_run
    /// # async fn example(client: quire_client::Client) -> Result<(), quire_client::ClientError> {
    /// let read = client.get("default", "cart-17").await?;
    /// for value in read.values() {
    ///     println!("{}", String::from_utf8_lossy(value));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, store: &str, key: impl AsRef<[u8]>) -> Result<GetResult, ClientError> {
        self.get_opts(store, key, &RequestOptions::default()).await
    }

    /// [`Client::get`] with its own R or timeout.
    ///
    /// ```no_run
    /// # async fn example(client: quire_client::Client) -> Result<(), quire_client::ClientError> {
    /// use quire_client::RequestOptions;
    /// use std::time::Duration;
    /// let quick = RequestOptions::new().r(1).timeout(Duration::from_millis(200));
    /// let read = client.get_opts("default", "cart-17", &quick).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_opts(
        &self,
        store: &str,
        key: impl AsRef<[u8]>,
        options: &RequestOptions,
    ) -> Result<GetResult, ClientError> {
        let key = key.as_ref();
        let read = async {
            match self.get_once(store, key, options).await {
                // The targets came from a stale membership document (a
                // change has moved the key): refresh it and read again,
                // once.
                Err(ClientError::StaleMembership { message }) => {
                    tracing::debug!(%message, "refreshing membership after a NotOwner refusal");
                    self.refresh_membership().await;
                    self.get_once(store, key, options).await
                }
                other => other,
            }
        };
        self.observed(OperationKind::Get, store, read).await
    }

    /// One read with the membership document held now.
    async fn get_once(
        &self,
        store: &str,
        key: &[u8],
        options: &RequestOptions,
    ) -> Result<GetResult, ClientError> {
        let plan = self.plan(store, key)?;
        record_partition(&plan, store, key);
        let fanout = match self.inner.config.reads.fanout {
            ReadFanout::All => Fanout::All,
            ReadFanout::Quorum => Fanout::Quorum {
                speculate_after: self.inner.speculation.delay(),
            },
        };
        let started = Instant::now();
        let machine = GetMachine::with_fanout(
            started,
            (store, key),
            (&plan.planned.targets, &plan.planned.spares),
            options.read_quorum(plan.config.r, plan.config.n)?,
            options.request_timeout(self.request_timeout())?,
            fanout,
        )?;
        let metrics = &self.inner.metrics;
        let (repairs, speculative) = (
            metrics.read_repairs.clone(),
            metrics.speculative_reads.clone(),
        );
        let outcome = drive(machine, self.calls(plan.doc), move |m: &GetMachine| {
            repairs.inc_by(m.repairs() as u64);
            speculative.inc_by(u64::from(m.speculated()));
        })
        .await?;
        self.inner.speculation.record(started.elapsed());
        let object = read_as(plan.config.policy, outcome.object);
        Ok(GetResult {
            siblings: live_siblings(&object),
            context: Context::for_key(store, key, object.join()),
        })
    }

    /// Writes `value` under `key`. `context` is what the writer read
    /// (`GetResult::context`, or `Context::empty()` for a blind write):
    /// values it saw are replaced, values it did not see stay as siblings.
    /// Succeeds when `W` replicas have stored the write.
    ///
    /// ```no_run
    /// # async fn example(client: quire_client::Client) -> Result<(), quire_client::ClientError> {
    /// let read = client.get("default", "cart-17").await?;
    /// client.put("default", "cart-17", "apple,pear", &read.context).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put(
        &self,
        store: &str,
        key: impl AsRef<[u8]>,
        value: impl Into<Vec<u8>>,
        context: &Context,
    ) -> Result<PutResult, ClientError> {
        self.put_opts(store, key, value, context, &RequestOptions::default())
            .await
    }

    /// [`Client::put`] with its own W or timeout.
    pub async fn put_opts(
        &self,
        store: &str,
        key: impl AsRef<[u8]>,
        value: impl Into<Vec<u8>>,
        context: &Context,
        options: &RequestOptions,
    ) -> Result<PutResult, ClientError> {
        let value = Value::bytes(value.into(), now_ms());
        let write = self.write(store, key.as_ref(), value, context, options);
        self.observed(OperationKind::Put, store, write).await
    }

    /// Deletes `key`: writes a tombstone with `context`. Values the context
    /// has not seen survive (a concurrent add wins over a delete).
    pub async fn delete(
        &self,
        store: &str,
        key: impl AsRef<[u8]>,
        context: &Context,
    ) -> Result<PutResult, ClientError> {
        self.delete_opts(store, key, context, &RequestOptions::default())
            .await
    }

    /// [`Client::delete`] with its own W or timeout.
    pub async fn delete_opts(
        &self,
        store: &str,
        key: impl AsRef<[u8]>,
        context: &Context,
        options: &RequestOptions,
    ) -> Result<PutResult, ClientError> {
        let value = Value::tombstone(now_ms());
        let write = self.write(store, key.as_ref(), value, context, options);
        self.observed(OperationKind::Delete, store, write).await
    }

    /// Runs operation `op` of `kind` in its span (see [`operation_span`]),
    /// with its outcome as an event, and counts it in the SDK's metrics.
    async fn observed<T>(
        &self,
        kind: OperationKind,
        store: &str,
        op: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let started = Instant::now();
        let result = async {
            let result = op.await;
            outcome_event(&result);
            result
        }
        .instrument(operation_span(kind.name(), store))
        .await;
        self.inner.metrics.observe(kind, started, &result);
        result
    }

    /// A put, started over once with a refreshed membership document when a
    /// node says it is not a home replica of the key (the targets came from
    /// a stale document).
    async fn write(
        &self,
        store: &str,
        key: &[u8],
        value: Value,
        context: &Context,
        options: &RequestOptions,
    ) -> Result<PutResult, ClientError> {
        context.check_key(store, key)?;
        let mut refreshed = false;
        loop {
            let plan = self.plan(store, key)?;
            record_partition(&plan, store, key);
            let machine = PutMachine::new(
                Instant::now(),
                PutRequest {
                    store: store.to_string(),
                    key: key.to_vec(),
                    value: value.clone(),
                    context: context.clock().clone(),
                },
                &plan.planned.targets,
                &plan.planned.spares,
                options.write_quorum(plan.config.w, plan.config.n)?,
                options.request_timeout(self.request_timeout())?,
                Duration::from_millis(self.inner.config.timeouts.attempt_ms),
            )?
            .during_change(plan.planned.moving);
            let hints = self.inner.metrics.hints_written.clone();
            let finished = move |m: &PutMachine| {
                hints.inc_by(m.hints_written() as u64);
            };
            let outcome = match drive(machine, self.calls(plan.doc), finished).await {
                Err(MachineError::Rejected(ErrorCode::NotOwner, message)) if !refreshed => {
                    tracing::debug!(%message, "refreshing membership after a NotOwner refusal");
                    self.refresh_membership().await;
                    refreshed = true;
                    continue;
                }
                other => other?,
            };
            return Ok(PutResult {
                siblings: live_siblings(&outcome.object),
                context: Context::for_key(store, key, outcome.object.join()),
                acknowledged: outcome.stored_on.len(),
                stored_on: outcome.stored_on,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quire_shared::ActorId;

    #[test]
    fn an_lww_read_keeps_the_newest_value_even_a_tombstone() {
        let mut object = Object::new();
        object.event(ActorId(1), Value::bytes(b"old".to_vec(), 100));
        object.event(ActorId(2), Value::tombstone(200));
        let read = read_as(ConflictPolicy::Lww, object.clone());
        assert!(live_siblings(&read).is_empty(), "the newer delete wins");
        assert_eq!(read.join(), object.join(), "the context covers both");
        let read = read_as(ConflictPolicy::Siblings, object.clone());
        assert_eq!(
            live_siblings(&read).len(),
            1,
            "siblings: tombstones left out"
        );
    }
}
