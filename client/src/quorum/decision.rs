//! What the get and put machines share about deciding: the quorum they
//! need, what each failed node said, and the one outcome they give.
//!
//! Both machines keep deciding past their outcome (a get listens on to
//! repair, a put places replicas past `W`), so "has this machine decided?"
//! is asked after every input. Keeping the answer, the outcome slot and the
//! error's tally in one place means a second outcome is impossible in
//! release builds and a loud assertion in debug ones, for both machines
//! alike.

use super::{MachineError, NodeFailure, QuorumError};
use quire_shared::NodeId;

/// Where the outcome stands.
enum Slot<T> {
    /// Not decided yet.
    Open,
    /// Decided; the caller has not collected it yet.
    Given(Result<T, MachineError>),
    /// Decided and collected.
    Collected,
}

/// The tally and the one outcome of a quorum machine.
pub struct Decision<T> {
    /// `get` or `put`, for errors.
    operation: &'static str,
    /// Successes needed: R or W.
    needed: usize,
    /// What went wrong where, for the error if `needed` is not reached.
    failures: Vec<(NodeId, NodeFailure)>,
    /// The outcome, given once and collected once.
    slot: Slot<T>,
}

impl<T> Decision<T> {
    /// A decision needing `needed` of `targets` replicas. Refuses a quorum
    /// of zero or above the number of targets
    /// ([`MachineError::InvalidQuorum`]): a machine built with one would
    /// decide on nothing, or never.
    pub fn new(
        operation: &'static str,
        needed: usize,
        targets: usize,
    ) -> Result<Self, MachineError> {
        if needed == 0 || needed > targets {
            return Err(MachineError::InvalidQuorum {
                operation,
                needed,
                targets,
            });
        }
        Ok(Self {
            operation,
            needed,
            failures: Vec::new(),
            slot: Slot::Open,
        })
    }

    /// Successes needed: R or W.
    pub fn needed(&self) -> usize {
        self.needed
    }

    /// True once the outcome is given (collected or not).
    pub fn is_decided(&self) -> bool {
        !matches!(self.slot, Slot::Open)
    }

    /// Nodes that failed so far, and why.
    pub fn failures(&self) -> &[(NodeId, NodeFailure)] {
        &self.failures
    }

    /// `node` failed; kept for the error, decided or not.
    pub fn record(&mut self, node: NodeId, failure: NodeFailure) {
        self.failures.push((node, failure));
    }

    /// Gives `outcome`. Returns false, and gives nothing, if the machine
    /// had decided already: a bug in the machine, asserted in debug builds.
    #[must_use]
    pub fn give(&mut self, outcome: Result<T, MachineError>) -> bool {
        debug_assert!(!self.is_decided(), "a {} decided twice", self.operation);
        if self.is_decided() {
            return false;
        }
        self.slot = Slot::Given(outcome);
        true
    }

    /// Gives a quorum failure: `succeeded` of the needed successes, the
    /// failures recorded so far, and whether the deadline passed. Returns
    /// what [`Decision::give`] does.
    #[must_use]
    pub fn fail(&mut self, succeeded: usize, timed_out: bool) -> bool {
        let error = QuorumError {
            operation: self.operation,
            needed: self.needed,
            succeeded,
            failures: self.failures.clone(),
            timed_out,
        };
        self.give(Err(error.into()))
    }

    /// The outcome, the first time it is asked for after being given.
    pub fn take(&mut self) -> Option<Result<T, MachineError>> {
        match std::mem::replace(&mut self.slot, Slot::Collected) {
            Slot::Given(outcome) => Some(outcome),
            Slot::Open => {
                self.slot = Slot::Open;
                None
            }
            Slot::Collected => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_given_once_and_collected_once() {
        let mut d: Decision<u8> = Decision::new("get", 2, 3).expect("valid");
        assert_eq!(d.take(), None);
        assert!(!d.is_decided());
        assert!(d.give(Ok(7)));
        assert!(d.is_decided());
        assert_eq!(d.take(), Some(Ok(7)));
        assert_eq!(d.take(), None);
        assert!(d.is_decided(), "collected is still decided");
    }

    #[test]
    fn a_failure_carries_the_tally() {
        let mut d: Decision<u8> = Decision::new("put", 2, 3).expect("valid");
        d.record(NodeId(4), NodeFailure::Unreachable("gone".into()));
        assert!(d.fail(1, true));
        match d.take() {
            Some(Err(MachineError::Quorum(q))) => {
                assert_eq!((q.operation, q.needed, q.succeeded), ("put", 2, 1));
                assert_eq!(q.failures.len(), 1);
                assert!(q.timed_out);
            }
            other => panic!("expected a quorum error, got {other:?}"),
        }
    }

    #[test]
    #[should_panic(expected = "decided twice")]
    #[cfg(debug_assertions)]
    fn a_second_outcome_is_a_bug() {
        let mut d: Decision<u8> = Decision::new("get", 1, 1).expect("valid");
        assert!(d.give(Ok(1)));
        let _ = d.give(Ok(2));
    }
}
