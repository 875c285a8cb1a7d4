//! The tokio driver: pumps a quorum machine over the transport.
//!
//! The pump runs as a task of its own and polls the machine's calls
//! itself: the caller gets the outcome as soon as it is decided, while the
//! pump carries on until the machine is finished (a get repairing stale
//! replicas) and every call it sent has ended (replication past `W`, which
//! the machine no longer waits for).

use crate::quorum::{Machine, MachineError, NodeFailure, Outbound, QuorumError};
use crate::transport::{Transport, TransportError};
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use quire_shared::wire::{Reply, Response};
use quire_shared::{Membership, NodeId};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

/// Observes every call's result: answers spread membership and mark nodes
/// up, transport failures mark them down.
pub type NodeObserver = Arc<dyn Fn(NodeId, Result<&Response, &TransportError>) + Send + Sync>;

/// How a machine's calls are made.
#[derive(Clone)]
pub struct Calls {
    /// The transport.
    pub transport: Transport,
    /// Where each node is.
    pub membership: Arc<Membership>,
    /// Sees every result.
    pub observer: NodeObserver,
    /// No single call waits longer than this (nor past its deadline): a
    /// node silent this long is treated as down.
    pub call_timeout: Duration,
    /// Counts machines still working after their outcome.
    pub background: Background,
}

/// Machines and requests still at work after the caller got its outcome
/// (replication past `W`, read repair): a short-lived process (each
/// `quire` command) waits for them before it exits, or a put would reach
/// only `W` nodes and a get would repair nothing.
#[derive(Clone, Default)]
pub struct Background {
    state: Arc<(AtomicUsize, Notify)>,
}

/// Held by running work; leaving counts it out.
pub(crate) struct Working(Background);

impl Drop for Working {
    fn drop(&mut self) {
        let (count, idle) = &*self.0.state;
        if count.fetch_sub(1, Ordering::AcqRel) == 1 {
            idle.notify_waiters();
        }
    }
}

impl Background {
    /// Counts one more piece of work until the guard is dropped.
    pub(crate) fn enter(&self) -> Working {
        self.state.0.fetch_add(1, Ordering::AcqRel);
        Working(self.clone())
    }

    /// Resolves once no machine is at work (each is bounded by its
    /// request's deadline).
    pub async fn idle(&self) {
        let (count, idle) = &*self.state;
        loop {
            let notified = idle.notified();
            if count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Runs `machine` and returns its outcome; `finished` is called with the
/// machine once it has nothing left to do (possibly after this returns).
pub async fn drive<M>(
    machine: M,
    calls: Calls,
    finished: impl FnOnce(&M) + Send + 'static,
) -> Result<M::Outcome, MachineError>
where
    M: Machine + Send + 'static,
    M::Outcome: Send + 'static,
{
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let working = calls.background.enter();
    tokio::spawn(async move {
        pump(machine, calls, outcome_tx, finished).await;
        drop(working);
    });
    match outcome_rx.await {
        Ok(outcome) => outcome,
        // The pump only ends without an outcome if the runtime shuts down.
        Err(_) => Err(MachineError::Quorum(QuorumError {
            operation: "request",
            needed: 1,
            succeeded: 0,
            failures: Vec::new(),
            timed_out: true,
        })),
    }
}

async fn pump<M: Machine>(
    mut machine: M,
    calls: Calls,
    outcome_tx: oneshot::Sender<Result<M::Outcome, MachineError>>,
    finished: impl FnOnce(&M),
) {
    // The calls in flight, polled here rather than spawned one task each:
    // a get or put costs one task instead of one per replica, and a call
    // moves into the set once instead of through a task's stages.
    let mut in_flight = FuturesUnordered::new();
    let mut outcome_tx = Some(outcome_tx);
    loop {
        while let Some(out) = machine.poll_send() {
            in_flight.push(call(&calls, out));
        }
        if let Some(outcome) = machine.poll_outcome() {
            if let Some(sender) = outcome_tx.take() {
                let _ = sender.send(outcome);
            }
        }
        if outcome_tx.is_none() && machine.poll_finished() {
            finished(&machine);
            // Calls the machine sent and forgot (a read repair, replication
            // past `W`) still run to their end: this task is counted as
            // background work until they have, so a short-lived process
            // waits for them.
            while in_flight.next().await.is_some() {}
            return;
        }
        let deadline = machine.poll_timeout();
        tokio::select! {
            Some((node, reply)) = in_flight.next() => machine.handle_reply(Instant::now(), node, reply),
            _ = tokio::time::sleep_until(deadline.into()) => machine.handle_timeout(Instant::now()),
        }
    }
}

/// Makes one call the machine asked for and turns its answer into the
/// machine's input; the observer sees the raw result first.
async fn call(calls: &Calls, out: Outbound) -> (NodeId, Result<Reply, NodeFailure>) {
    let budget = out
        .deadline
        .saturating_duration_since(Instant::now())
        .min(calls.call_timeout);
    let result = match calls.membership.member(out.node) {
        None => Err(NodeFailure::Unexpected("node not in membership".into())),
        Some(member) => match calls
            .transport
            .call(&member.addr, &out.request, budget)
            .await
        {
            Ok(response) => {
                (calls.observer)(out.node, Ok(&response));
                // A malformed object is this node's failure, never input
                // to the machine's merges.
                response.result.map_err(NodeFailure::Refused).and_then(|r| {
                    r.validated()
                        .map_err(|e| NodeFailure::Unexpected(format!("malformed reply: {e}")))
                })
            }
            Err(e) => {
                (calls.observer)(out.node, Err(&e));
                Err(NodeFailure::Unreachable(e.to_string()))
            }
        },
    };
    (out.node, result)
}
