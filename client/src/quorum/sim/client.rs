//! A client and its operations: what one client knows (its failure
//! detector, its contexts) and what one running operation records (its
//! machine, what each node stored or answered for it).
//!
//! The get and put machines are driven through [`Running`], one enum over
//! the two, so the world can hold both in one table without boxing.

use super::history::WriteId;
use crate::health::Health;
use crate::quorum::get::{GetMachine, GetOutcome};
use crate::quorum::put::{PutMachine, PutOutcome};
use crate::quorum::targets::Target;
use crate::quorum::{Machine, MachineError, NodeFailure, Outbound};
use quire_shared::wire::Reply;
use quire_shared::{NodeId, Object, PreferenceList, VersionVector};
use std::collections::BTreeMap;
use std::time::Instant;

/// One client's state.
pub struct SimClient {
    /// Which nodes it believes down: the SDK's failure detector.
    pub health: Health,
    /// The context of its last read or write of each key.
    pub contexts: BTreeMap<Vec<u8>, VersionVector>,
    /// Operations it has yet to start.
    pub ops_left: u32,
    /// Operations it waits on (undecided).
    pub waiting: usize,
}

impl SimClient {
    /// A client that will run `ops` operations.
    pub fn new(ops: u32) -> Self {
        Self {
            health: Health::default(),
            contexts: BTreeMap::new(),
            ops_left: ops,
            waiting: 0,
        }
    }
}

/// Why an operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// An application read.
    Read,
    /// An application put or delete.
    Write(WriteId),
    /// The auditor's read of every replica (`R = N`), repairing.
    Audit,
}

/// A machine being run.
pub enum Running {
    /// A get.
    Get(GetMachine),
    /// A put or delete.
    Put(PutMachine),
}

impl Running {
    /// See [`Machine::poll_timeout`].
    pub fn poll_timeout(&self) -> Instant {
        match self {
            Running::Get(m) => m.poll_timeout(),
            Running::Put(m) => m.poll_timeout(),
        }
    }

    /// See [`Machine::poll_finished`].
    pub fn poll_finished(&self) -> bool {
        match self {
            Running::Get(m) => m.poll_finished(),
            Running::Put(m) => m.poll_finished(),
        }
    }

    /// See [`Machine::poll_send`].
    pub fn poll_send(&mut self) -> Option<Outbound> {
        match self {
            Running::Get(m) => m.poll_send(),
            Running::Put(m) => m.poll_send(),
        }
    }

    /// See [`Machine::handle_reply`].
    pub fn handle_reply(&mut self, now: Instant, node: NodeId, reply: Result<Reply, NodeFailure>) {
        match self {
            Running::Get(m) => m.handle_reply(now, node, reply),
            Running::Put(m) => m.handle_reply(now, node, reply),
        }
    }

    /// See [`Machine::poll_outcome`].
    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        match self {
            Running::Get(m) => m.poll_outcome().map(Outcome::Get),
            Running::Put(m) => m.poll_outcome().map(Outcome::Put),
        }
    }

    /// See [`Machine::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Running::Get(m) => m.handle_timeout(now),
            Running::Put(m) => m.handle_timeout(now),
        }
    }
}

/// A machine's outcome.
pub enum Outcome {
    /// A get's.
    Get(Result<GetOutcome, MachineError>),
    /// A put's.
    Put(Result<PutOutcome, MachineError>),
}

/// One operation in flight.
pub struct Op {
    /// The client running it.
    pub client: usize,
    /// The key's preference list when it started (a change may flip
    /// while it runs).
    pub list: PreferenceList,
    /// Incoming home replicas of its key when it started (a pending
    /// change moves the key): a put sends them plain copies.
    pub incoming: Vec<NodeId>,
    /// Its key.
    pub key: Vec<u8>,
    /// Why it runs.
    pub purpose: Purpose,
    /// The machine.
    pub machine: Running,
    /// When it started.
    pub started_ms: u64,
    /// Whether its outcome was given.
    pub decided: bool,
    /// The targets it started with.
    pub targets: Vec<Target>,
    /// What each node stored for it (puts, and gets' repairs).
    pub stored: Vec<(NodeId, Object)>,
    /// What each node answered it (gets).
    pub read: Vec<(NodeId, Option<Object>)>,
}

impl Op {
    /// The write it carries, if it is one.
    pub fn write(&self) -> Option<WriteId> {
        match self.purpose {
            Purpose::Write(w) => Some(w),
            Purpose::Read | Purpose::Audit => None,
        }
    }
}
