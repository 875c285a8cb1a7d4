//! The tokio driver: pumps a quorum machine over the transport.
//!
//! Each outbound request runs as its own task, so a request the machine no
//! longer waits for (replication past `W`) still completes in the
//! background.

use crate::quorum::{Machine, MachineError, NodeFailure};
use crate::transport::Transport;
use quire_shared::wire::Response;
use quire_shared::{Membership, NodeId};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Observes every node answer (the client uses it to spread membership).
pub type EpochObserver = Arc<dyn Fn(NodeId, &Response) + Send + Sync>;

/// Runs `machine` to its outcome.
pub async fn drive<M: Machine>(
    mut machine: M,
    transport: &Transport,
    membership: &Membership,
    observer: EpochObserver,
) -> Result<M::Outcome, MachineError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(NodeId, Result<_, NodeFailure>)>();
    loop {
        while let Some(out) = machine.poll_send() {
            let tx = tx.clone();
            let transport = transport.clone();
            let observer = observer.clone();
            let addr = membership.member(out.node).map(|m| m.addr.clone());
            let budget = out.deadline.saturating_duration_since(Instant::now());
            tokio::spawn(async move {
                let result = match addr {
                    None => Err(NodeFailure::Unexpected("node not in membership".into())),
                    Some(addr) => match transport.call(&addr, &out.request, budget).await {
                        Ok(response) => {
                            observer(out.node, &response);
                            response.result.map_err(NodeFailure::Refused)
                        }
                        Err(e) => Err(NodeFailure::Unreachable(e.to_string())),
                    },
                };
                let _ = tx.send((out.node, result));
            });
        }
        if let Some(outcome) = machine.poll_outcome() {
            return outcome;
        }
        let deadline = machine.poll_timeout();
        tokio::select! {
            Some((node, reply)) = rx.recv() => machine.handle_reply(Instant::now(), node, reply),
            _ = tokio::time::sleep_until(deadline.into()) => machine.handle_timeout(Instant::now()),
        }
    }
}
