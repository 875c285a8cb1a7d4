//! The quorum state machines, sans I/O.
//!
//! Written the quinn-proto way: a machine takes replies and timeouts with
//! `now` passed in, and hands out requests to send and, eventually, an
//! outcome. It never touches a socket or a clock, so the same code runs under
//! the tokio driver ([`crate::driver`]) and under a seeded simulation that
//! drops, delays and reorders replies.
//!
//! Each machine keeps its state as one phase enum, so it is always clear
//! whether it is still deciding, decided and finishing background work, or
//! done. What both share lives once: choosing targets and calling in spares
//! for failed ones ([`targets`]), and the quorum tally with its one outcome
//! ([`Decision`]), which refuses a quorum that could never be met (or needs
//! no one) with a typed error. The invariants (no node counted twice, no
//! more answers than replicas, exactly one outcome) are `debug_assert!`ed
//! after every input, so every seeded world checks them.

mod decision;
pub mod get;
pub mod put;
#[cfg(test)]
mod sim;
pub mod targets;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fanout;
#[cfg(test)]
mod tests_moving;

pub use decision::Decision;
use quire_shared::wire::{ErrorCode, ErrorReply, Request};
use quire_shared::NodeId;
use std::fmt;
use std::time::Instant;

/// A request the machine wants sent to one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// The node.
    pub node: NodeId,
    /// What to send.
    pub request: Request,
    /// The call is abandoned at this instant. It may outlive the machine's
    /// interest in it: a put coordinator that is slow to answer is replaced,
    /// yet its late answer is still welcome; a get's read repair, sent as
    /// the get ends, has a deadline of its own.
    pub deadline: Instant,
}

/// Why one node did not contribute to a quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeFailure {
    /// The node answered with a refusal.
    Refused(ErrorReply),
    /// The request never got an answer (connect failure, timeout, broken
    /// stream).
    Unreachable(String),
    /// The node answered with a reply of the wrong kind.
    Unexpected(String),
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeFailure::Refused(e) => write!(f, "refused ({:?}: {})", e.code, e.message),
            NodeFailure::Unreachable(why) => write!(f, "unreachable ({why})"),
            NodeFailure::Unexpected(what) => write!(f, "unexpected answer ({what})"),
        }
    }
}

impl NodeFailure {
    /// True when every replica would refuse the same way, because the
    /// request itself is at fault: trying more nodes cannot help. A
    /// `NotOwner` refusal counts: the targets came from a stale membership
    /// document, so the client refreshes it and starts over rather than
    /// trying more nodes of the stale preference list.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            NodeFailure::Refused(ErrorReply {
                code: ErrorCode::EmptyKey
                    | ErrorCode::KeyTooLarge
                    | ErrorCode::ValueTooLarge
                    | ErrorCode::InvalidObject
                    | ErrorCode::Malformed
                    | ErrorCode::FrameTooLarge
                    | ErrorCode::InvalidContext
                    | ErrorCode::TooManySiblings
                    | ErrorCode::ObjectTooLarge
                    | ErrorCode::NotOwner,
                ..
            })
        )
    }
}

/// A quorum that could not be reached: how many were needed, how many
/// answered, and what the others said.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation} needed {needed} replicas but only {succeeded} succeeded{}", describe(.failures, *.timed_out))]
pub struct QuorumError {
    /// `get` or `put`.
    pub operation: &'static str,
    /// R or W.
    pub needed: usize,
    /// Replicas that answered successfully.
    pub succeeded: usize,
    /// What each failed replica said.
    pub failures: Vec<(NodeId, NodeFailure)>,
    /// True when the request's deadline passed with replies outstanding.
    pub timed_out: bool,
}

fn describe(failures: &[(NodeId, NodeFailure)], timed_out: bool) -> String {
    let mut s = String::new();
    for (node, why) in failures {
        s.push_str(&format!("; node {node}: {why}"));
    }
    if timed_out {
        s.push_str("; the others did not answer before the deadline");
    }
    s
}

/// How a machine is pumped; implemented by the get and put machines.
pub trait Machine {
    /// The successful result.
    type Outcome;
    /// The next request to send, if any.
    fn poll_send(&mut self) -> Option<Outbound>;
    /// A node's answer (or its failure) arrived.
    fn handle_reply(
        &mut self,
        now: Instant,
        node: NodeId,
        reply: Result<quire_shared::wire::Reply, NodeFailure>,
    );
    /// Called at or after [`Machine::poll_timeout`].
    fn handle_timeout(&mut self, now: Instant);
    /// When the machine next needs [`Machine::handle_timeout`].
    fn poll_timeout(&self) -> Instant;
    /// The final result, once decided; `None` while waiting.
    fn poll_outcome(&mut self) -> Option<Result<Self::Outcome, MachineError>>;
    /// True when the machine has nothing left to do, even after its
    /// outcome (a get keeps listening for late answers to repair them; a
    /// put keeps placing replicas past `W`).
    fn poll_finished(&self) -> bool {
        true
    }
}

/// How a quorum operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    /// Not enough replicas answered.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// A node refused the request itself (bad key, value too large): every
    /// replica would.
    #[error("request refused: {0:?}: {1}")]
    Rejected(ErrorCode, String),
    /// The quorum asked for can never be met, or needs no replica at all:
    /// `needed` (R or W) must be between 1 and the number of replicas
    /// chosen for the key. Refused by the constructor; nothing was sent.
    #[error("{operation} cannot wait for {needed} of {targets} replicas: a quorum must be between 1 and the number of replicas")]
    InvalidQuorum {
        /// `get` or `put`.
        operation: &'static str,
        /// R or W.
        needed: usize,
        /// Replicas chosen for the key.
        targets: usize,
    },
}

/// The outcome every replica would give if `failure` refuses the request
/// itself (see [`NodeFailure::is_request_error`]); `None` for a failure of
/// one node, which another replica may make up for.
fn rejection(failure: &NodeFailure) -> Option<MachineError> {
    match failure {
        NodeFailure::Refused(e) if failure.is_request_error() => {
            Some(MachineError::Rejected(e.code, e.message.clone()))
        }
        _ => None,
    }
}

/// True when no node appears twice in `nodes` (a debug check: the lists
/// are at most a preference list long).
fn distinct(nodes: &[NodeId]) -> bool {
    nodes
        .iter()
        .enumerate()
        .all(|(i, n)| !nodes[..i].contains(n))
}
