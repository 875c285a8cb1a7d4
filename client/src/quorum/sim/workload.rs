//! The workload: clients running gets, puts and deletes through the real
//! quorum machines, several at once.
//!
//! A client plans each request as the SDK does (`operations.rs`): targets
//! and spares from the key's preference list and the client's own failure
//! detector, the store's `R` or `W`, the SDK's timeouts. It keeps the
//! context of its last read or write of each key and writes with it most
//! of the time (a blind write now and then), so writes supersede what
//! their writer saw and concurrent ones stay siblings. Each written value
//! is unique in its world (`c<client>.<n>`), which is what lets the loss
//! checker say which write a value came from.
//!
//! The machines run unchanged; this file pumps them, records what they
//! were told, and has each outcome checked as it is given.

use super::checkers;
use super::client::{Op, Outcome, Purpose, Running};
use super::trace::{Show, N};
use super::world::{Event, Owner, World};
use super::STORE;
use crate::quorum::get::{Fanout, GetMachine};
use crate::quorum::put::{PutMachine, PutRequest};
use crate::quorum::targets::{plan, Planned};
use crate::quorum::{MachineError, NodeFailure};
use quire_shared::wire::Reply;
use quire_shared::{NodeId, Value};
use std::time::Duration;

impl World {
    /// A client may start an operation: one more if it has room.
    pub(super) fn client_tick(&mut self, c: usize) -> Result<(), String> {
        let client = &self.clients[c];
        if !self.chaos || client.ops_left == 0 || client.waiting >= self.cfg.concurrency {
            return Ok(());
        }
        self.clients[c].ops_left -= 1;
        let key = self
            .lists
            .keys()
            .nth(self.rng.index(self.cfg.keys))
            .cloned();
        let key = key.expect("a world has keys");
        let context = self.clients[c].contexts.get(&key).cloned();
        let roll = self.rng.between(0, 99);
        let purpose = if roll < 40 {
            Purpose::Read
        } else {
            // Mostly with the last context; blind now and then.
            let context = context.filter(|_| roll < 85).unwrap_or_default();
            let value = if roll >= 90 {
                Value::tombstone(0)
            } else {
                let name = format!("c{c}.{}", self.history.writes.len());
                Value::bytes(name.into_bytes(), 0)
            };
            Purpose::Write(self.history.write(c, key.clone(), value, context))
        };
        self.start_op(c, key, purpose)?;
        if self.clients[c].waiting < self.cfg.concurrency {
            self.schedule_tick(c);
        }
        Ok(())
    }

    /// The client's next chance to start an operation, after a pause.
    pub(super) fn schedule_tick(&mut self, c: usize) {
        let at = self.now_ms + self.rng.between(1, self.cfg.op_gap_ms_max.max(1));
        self.agenda.push(at, Event::ClientTick(c));
    }

    /// Starts an operation of client `c` on `key`, planned as the SDK
    /// plans it; first probes the nodes it believes down and is due to.
    pub(super) fn start_op(
        &mut self,
        c: usize,
        key: Vec<u8>,
        purpose: Purpose,
    ) -> Result<(), String> {
        let now = self.instant(self.now_ms);
        let mut due = self.clients[c].health.due_probes(now);
        // The detector keeps them in a hash map: order them, or the trace
        // would differ from run to run.
        due.sort();
        for node in due {
            let hello = quire_shared::wire::Request::Hello {
                protocol_version: quire_shared::wire::PROTOCOL_VERSION,
                cluster_id: None,
            };
            self.call(Owner::Probe, c, node, hello, self.cfg.attempt_ms);
        }
        // Planned as `Client::plan` plans it.
        let health = &self.clients[c].health;
        let list = self.lists[&key].clone();
        let Planned {
            targets,
            spares: spare_nodes,
            moving,
        } = plan(&self.doc, &list, self.cfg.n, |n| health.is_up(n));
        let incoming: Vec<NodeId> = moving.iter().flat_map(|m| m.all_incoming()).collect();
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let machine = match purpose {
            Purpose::Read | Purpose::Audit => {
                let r = if purpose == Purpose::Audit {
                    targets.len()
                } else {
                    self.cfg.r
                };
                // An audit reads every replica; a client's read fans out
                // as the world says.
                let fanout = match self.cfg.speculate_after_ms {
                    Some(ms) if purpose == Purpose::Read => Fanout::Quorum {
                        speculate_after: Duration::from_millis(ms),
                    },
                    _ => Fanout::All,
                };
                let m = GetMachine::with_fanout(
                    now,
                    (STORE, &key),
                    (&targets, &spare_nodes),
                    r,
                    timeout,
                    fanout,
                );
                Running::Get(m.expect("1 <= R <= N"))
            }
            Purpose::Write(w) => {
                let write = &self.history.writes[w];
                let request = PutRequest {
                    store: STORE.into(),
                    key: key.clone(),
                    value: write.value.clone(),
                    context: write.context.clone(),
                };
                let attempt = Duration::from_millis(self.cfg.attempt_ms);
                let m = PutMachine::new(
                    now,
                    request,
                    &targets,
                    &spare_nodes,
                    self.cfg.w,
                    timeout,
                    attempt,
                );
                Running::Put(m.expect("1 <= W <= N").during_change(moving))
            }
        };
        let id = self.next_op;
        self.next_op += 1;
        let shown: Vec<String> = targets
            .iter()
            .map(|t| match t.hint {
                None => N(t.node).to_string(),
                Some(h) => format!("{}({})", N(t.node), N(h)),
            })
            .collect();
        trace!(
            self,
            "op{id} c{c} {purpose:?} {} → {}",
            String::from_utf8_lossy(&key),
            shown.join(" ")
        );
        self.clients[c].waiting += 1;
        let op = Op {
            client: c,
            list,
            incoming,
            key,
            purpose,
            machine,
            started_ms: self.now_ms,
            decided: false,
            targets,
            stored: Vec::new(),
            read: Vec::new(),
        };
        self.ops.insert(id, op);
        self.stats.ops += 1;
        self.pump(id)
    }

    /// A call's result reaches operation `id` (if it still runs).
    pub(super) fn op_reply(
        &mut self,
        id: u64,
        node: NodeId,
        result: Result<Reply, NodeFailure>,
    ) -> Result<(), String> {
        let now = self.instant(self.now_ms);
        let Some(op) = self.ops.get_mut(&id) else {
            return Ok(()); // finished: fire and forget
        };
        op.machine.handle_reply(now, node, result);
        self.pump(id)
    }

    /// Operation `id`'s timer is due.
    pub(super) fn op_timeout(&mut self, id: u64) -> Result<(), String> {
        let now = self.instant(self.now_ms);
        let op = self
            .ops
            .get_mut(&id)
            .expect("a timer belongs to a running operation");
        op.machine.handle_timeout(now);
        self.pump(id)?;
        match self.ops.get(&id) {
            Some(op) if self.ms(op.machine.poll_timeout()) <= self.now_ms => Err(format!(
                "op{id} asks for a timeout that has passed and does nothing on it: it would hang"
            )),
            _ => Ok(()),
        }
    }

    /// Sends what operation `id` wants sent, takes its outcome, and ends it
    /// once it is finished.
    fn pump(&mut self, id: u64) -> Result<(), String> {
        let op = self.ops.get_mut(&id).expect("pumping a running operation");
        let mut sends = Vec::new();
        while let Some(out) = op.machine.poll_send() {
            sends.push(out);
        }
        let outcome = op.machine.poll_outcome();
        let client = op.client;
        for out in sends {
            let op = &self.ops[&id];
            checkers::request_fits((&op.list, &op.incoming), out.node, &out.request)
                .map_err(|e| format!("op{id}: {e}"))?;
            let deadline = self.ms(out.deadline);
            let budget = deadline
                .saturating_sub(self.now_ms)
                .min(self.cfg.attempt_ms);
            self.call(Owner::Op(id), client, out.node, out.request, budget);
        }
        if let Some(outcome) = outcome {
            self.decided(id, outcome)?;
        }
        let op = &self.ops[&id];
        if op.decided && op.machine.poll_finished() {
            trace!(self, "op{id} finished");
            if let Some(Op {
                machine: Running::Get(m),
                ..
            }) = self.ops.remove(&id)
            {
                self.stats.read_repairs += m.repairs() as u64;
            }
        }
        Ok(())
    }

    /// Operation `id` gave its outcome: check it, and learn from it as the
    /// application would (the context of what it read or wrote).
    fn decided(&mut self, id: u64, outcome: Outcome) -> Result<(), String> {
        let op = self.ops.get_mut(&id).expect("deciding a running operation");
        if op.decided {
            return Err(format!("op{id} gave a second outcome"));
        }
        op.decided = true;
        if self.now_ms > op.started_ms + self.cfg.timeout_ms {
            return Err(format!("op{id} decided after its deadline"));
        }
        let (client, purpose, key) = (op.client, op.purpose, op.key.clone());
        self.clients[client].waiting -= 1;
        if self.chaos && self.clients[client].ops_left > 0 {
            self.schedule_tick(client);
        }
        let op = &self.ops[&id];
        let context = match outcome {
            Outcome::Put(Ok(out)) => {
                checkers::put_outcome(op, &out, self.cfg.w).map_err(|e| format!("op{id}: {e}"))?;
                let write = op.write().expect("a put carries a write");
                let dot = self.history.acknowledge(write, &out.object)?;
                trace!(
                    self,
                    "op{id} put ok: w{write} a{}:{} in {}",
                    dot.0.get(),
                    dot.1,
                    Show(&out.object)
                );
                self.stats.puts_ok += 1;
                out.object.join()
            }
            Outcome::Get(Ok(out)) => {
                let r = if purpose == Purpose::Audit {
                    op.targets.len()
                } else {
                    self.cfg.r
                };
                checkers::get_outcome(op, &out, r).map_err(|e| format!("op{id}: {e}"))?;
                if out
                    .replies
                    .iter()
                    .any(|(n, _)| !op.targets.iter().any(|t| t.node == *n))
                {
                    self.stats.gets_through_spares += 1;
                }
                trace!(self, "op{id} get ok: {}", Show(&out.object));
                self.stats.gets_ok += 1;
                out.object.join()
            }
            Outcome::Put(Err(e)) | Outcome::Get(Err(e)) => {
                trace!(self, "op{id} failed: {e}");
                if matches!(e, MachineError::Rejected(..)) {
                    self.stats.rejected += 1;
                }
                self.stats.failed += 1;
                if purpose == Purpose::Audit {
                    return Err(format!("op{id}: a repairing read failed with every node up and a quiet network: {e}"));
                }
                return Ok(());
            }
        };
        if purpose != Purpose::Audit {
            self.clients[client].contexts.insert(key, context);
        }
        Ok(())
    }
}
