//! Messages arriving: a request at its node, an answer (or a timeout) at
//! its client.
//!
//! A request takes effect when it arrives, whether or not its sender still
//! waits: a put's replica may store a value long after the put gave up on
//! it, and the checkers must cope. What each node did for an operation is
//! recorded beside the operation ([`Op::stored`], [`Op::read`]) so that an
//! outcome can be checked against what really happened, and every dot a
//! node issues goes into the history, which refuses a dot issued twice.

use super::network::{Message, Payload};
use super::node::{Crash, Env};
use super::trace::{ShowOpt, N};
use super::world::{Owner, World};
use crate::quorum::NodeFailure;
use quire_shared::wire::{ErrorCode, ErrorReply, Reply, Request};
use quire_shared::NodeId;

impl World {
    /// A request arrives at its node.
    pub(super) fn arrive(&mut self, m: &Message, request: &Request) -> Result<(), String> {
        let call = m.call;
        if !self.net.reachable(m.client, m.node) {
            trace!(self, "#{call} cut off from {}", N(m.node));
            return Ok(());
        }
        if !self.node(m.node).up {
            // A refused connection, or silence until the call times out.
            if self.rng.chance(self.net.faults.fast_fail) {
                let failure = Err(NodeFailure::Unreachable("connection refused".into()));
                let reply = Message {
                    payload: Payload::Reply(failure),
                    ..m.clone()
                };
                let at = self.now_ms + self.rng.between(1, 5);
                self.agenda
                    .push(at, super::world::Event::Deliver(Box::new(reply)));
            }
            trace!(self, "#{call} reached {} while down", N(m.node));
            return Ok(());
        }
        if self.calls[&call].timed_out {
            // Its sender gave up on it; it takes effect all the same.
            self.stats.late_requests += 1;
        }
        let writes = matches!(request, Request::Put { .. } | Request::Replicate { .. });
        let result = if writes && self.rng.chance(self.net.faults.refuse) {
            trace!(self, "#{call} refused by {}", N(m.node));
            Err(NodeFailure::Refused(ErrorReply {
                code: ErrorCode::ValueTooLarge,
                message: "simulated: a lower value limit".into(),
            }))
        } else {
            self.apply(m, request)?.map_err(NodeFailure::Refused)
        };
        self.transmit(Message {
            payload: Payload::Reply(result),
            ..m.clone()
        });
        Ok(())
    }

    /// The node handles the request; what it did is recorded.
    fn apply(
        &mut self,
        m: &Message,
        request: &Request,
    ) -> Result<Result<Reply, ErrorReply>, String> {
        let index = m.node.get() as usize - 1;
        let mut env = Env {
            policy: self.cfg.policy,
            limits: self.cfg.limits,
            doc: &self.doc,
            partitions: self.doc.partitions,
            clock_ms: 1_000_000 + self.now_ms + self.skews[index],
            mint: &mut self.mint,
            knobs: self.knobs,
        };
        let handled = self.nodes[index].handle(&mut env, request);
        let call = &self.calls[&m.call];
        let op = match call.owner {
            Owner::Op(id) => Some(id),
            Owner::Task(..) | Owner::Probe => None,
        };
        if handled.changed {
            self.mutations += 1;
        }
        if let (Some(_), Request::Put { hint: Some(_), .. }) = (handled.issued, request) {
            self.stats.stand_in_puts += 1;
        }
        if let Some(dot) = handled.issued {
            let write = call
                .write
                .ok_or("a node coordinated a put no one asked for")?;
            self.history.issue(write, dot)?;
        }
        if handled.dropped > 0 {
            self.stats.hints_dropped += u64::from(handled.dropped);
            self.history.sweep(&self.nodes);
        }
        match &handled.reply {
            Ok(Reply::Stored(o)) => {
                trace!(
                    self,
                    "{} #{} stored {}",
                    N(m.node),
                    m.call,
                    ShowOpt(Some(o))
                );
                if let Some(op) = op.and_then(|id| self.ops.get_mut(&id)) {
                    op.stored.push((m.node, o.clone()));
                }
            }
            Ok(Reply::Object(o)) => {
                trace!(
                    self,
                    "{} #{} has {}",
                    N(m.node),
                    m.call,
                    ShowOpt(o.as_ref())
                );
                if let Some(op) = op.and_then(|id| self.ops.get_mut(&id)) {
                    op.read.push((m.node, o.clone()));
                }
            }
            Ok(other) => trace!(self, "{} #{} answers {}", N(m.node), m.call, kind(other)),
            Err(e) => trace!(self, "{} #{} refuses: {:?}", N(m.node), m.call, e.code),
        }
        Ok(handled.reply)
    }

    /// An answer reaches its client.
    pub(super) fn answer(
        &mut self,
        call: u64,
        client: usize,
        node: NodeId,
        result: Result<Reply, NodeFailure>,
    ) -> Result<(), String> {
        if !self.net.reachable(client, node) {
            trace!(self, "#{call} answer cut off");
            return Ok(());
        }
        let c = self.calls.get_mut(&call).expect("every call is kept");
        if c.timed_out {
            // The call's budget ran out: the driver gave up its stream.
            trace!(self, "#{call} answer too late");
            return Ok(());
        }
        let first = !c.answered;
        c.answered = true;
        let owner = c.owner;
        match &result {
            Ok(r) => trace!(self, "#{call} answered: {}", kind(r)),
            Err(f) => trace!(self, "#{call} failed: {f}"),
        }
        self.observe(owner, client, node, &result);
        // Checked after the observer, as the driver checks: the node did
        // answer, but nothing it said is used.
        let garbled = result.is_ok() && self.rng.chance(self.net.faults.garble);
        let result = if garbled {
            trace!(self, "#{call} answer garbled");
            Err(NodeFailure::Unexpected("malformed reply".into()))
        } else {
            result
        };
        self.deliver_to(owner, node, result, first)
    }

    /// A call's budget runs out; if no answer came, its owner hears that
    /// the node is unreachable.
    pub(super) fn call_timeout(&mut self, call: u64) -> Result<(), String> {
        let c = self.calls.get_mut(&call).expect("every call is kept");
        c.timed_out = true;
        if c.answered {
            return Ok(());
        }
        let (owner, client, node) = (c.owner, c.client, c.node);
        trace!(self, "#{call} timed out");
        let failure = Err(NodeFailure::Unreachable("timed out".into()));
        self.observe(owner, client, node, &failure);
        self.deliver_to(owner, node, failure, true)
    }

    /// What the driver's observer does: an answer (even a refusal) marks
    /// the node up, a transport failure marks it down. A probe only ever
    /// marks up, as the SDK's probe loop does.
    fn observe(
        &mut self,
        owner: Owner,
        client: usize,
        node: NodeId,
        result: &Result<Reply, NodeFailure>,
    ) {
        let now = self.instant(self.now_ms);
        let health = &self.clients[client].health;
        match (owner, result) {
            (_, Ok(_) | Err(NodeFailure::Refused(_))) => health.mark_up(node),
            (Owner::Probe, _) => {}
            (_, Err(_)) => {
                health.mark_down(node, now);
            }
        }
    }

    /// Hands a call's result to its owner. Operations hear every copy of
    /// an answer (see the module doc of [`super::world`]); a task (hint
    /// delivery, anti-entropy) awaits one answer per call, as the SDK's
    /// maintenance does.
    fn deliver_to(
        &mut self,
        owner: Owner,
        node: NodeId,
        result: Result<Reply, NodeFailure>,
        first: bool,
    ) -> Result<(), String> {
        match owner {
            Owner::Op(id) => self.op_reply(id, node, result),
            Owner::Task(id, slot) if first => self.task_result((id, slot), result),
            Owner::Task(..) | Owner::Probe => Ok(()),
        }
    }

    /// Crashes `node`, losing what `crash` loses; the history learns
    /// which dots it forgot.
    pub(super) fn crash(&mut self, node: NodeId, crash: Crash) {
        let index = node.get() as usize - 1;
        let before = self.history.known_by(&self.nodes[index]);
        self.nodes[index].crash(crash);
        if crash != Crash::Process {
            self.mutations += 1;
            self.history
                .crashed(before, &self.nodes[index], &self.nodes);
        }
    }
}

/// A reply's kind, for traces.
fn kind(reply: &Reply) -> &'static str {
    match reply {
        Reply::Hello { .. } => "hello",
        Reply::Object(_) => "object",
        Reply::Stored(_) => "stored",
        Reply::Hints { .. } => "hints",
        Reply::Dropped(_) => "dropped",
        Reply::Membership(_) => "membership",
        Reply::MembershipEpoch(_) => "epoch",
        Reply::MerkleRoot(_) => "merkle-root",
        Reply::MerkleSegments(_) => "merkle-segments",
        Reply::Segment { .. } => "segment",
        Reply::SegmentDigests { .. } => "segment-digests",
        Reply::Transfer(_) => "transfer-progress",
        Reply::PartitionDropped { .. } => "partition-dropped",
        _ => "other",
    }
}
