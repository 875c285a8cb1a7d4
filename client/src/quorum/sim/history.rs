//! What was written: each write, the dots it was given, whether it was
//! acknowledged, and which dots a fault may have taken.
//!
//! The loss checker needs three facts per acknowledged write, kept here:
//!
//! - its **dot**, read from the acknowledged object (a write can be given
//!   several: a slow coordinator and its replacement, or a duplicated
//!   request, each make one). Each key has its own DVVSet, so a dot names
//!   a value only together with its key ([`Slot`]). A key's dots are
//!   unique or the checker is blind, so issuing one twice is itself a
//!   violation: it is how kv679 loses data (a node whose counters went
//!   back in time);
//! - whether a later write **superseded** it: a write whose context covers
//!   the dot and that some node stored. In a siblings store that is the
//!   only way a value may disappear;
//! - whether a fault **took** it: a crash that loses data (a power cut in
//!   a buffered store, a lost disk) may destroy the only copies of an
//!   acknowledged write, and that loss is the store's promise, not a bug.
//!   A dot is lost to a fault when a data-losing crash made some node
//!   forget it and, then or later, no node knows it any more (the later
//!   case: a hint dropped after delivery to a home node that has since
//!   lost it in a power cut). A copy still in flight is not counted, so
//!   the checker errs towards excusing.

use super::node::{Dot, Key, SimNode};
use quire_shared::{Object, Value, VersionVector};
use std::collections::{BTreeMap, BTreeSet};

/// Index of a write in [`History::writes`].
pub type WriteId = usize;

/// A key and one of its dots: what names a value in a world.
pub type Slot = (Key, Dot);

/// One put or delete, as the client issued it.
#[derive(Clone, Debug)]
pub struct Write {
    /// The writing client.
    pub client: usize,
    /// The key.
    pub key: Key,
    /// What was written (unique bytes, or a tombstone).
    pub value: Value,
    /// The writer's context.
    pub context: VersionVector,
    /// Dots nodes gave it, in order.
    pub issued: Vec<Dot>,
    /// The dot in the acknowledged object, once acknowledged.
    pub acked: Option<Dot>,
}

/// Every write of a world and what became of its dots.
#[derive(Debug, Default)]
pub struct History {
    /// The writes, by id.
    pub writes: Vec<Write>,
    /// Who each issued dot belongs to.
    owners: BTreeMap<Slot, WriteId>,
    /// Dots a data-losing crash made some node forget.
    tainted: BTreeSet<Slot>,
    /// Tainted dots no node knew any more at some point: excused if
    /// missing at the end.
    lost: BTreeSet<Slot>,
}

impl History {
    /// Records a new write; returns its id.
    pub fn write(
        &mut self,
        client: usize,
        key: Key,
        value: Value,
        context: VersionVector,
    ) -> WriteId {
        self.writes.push(Write {
            client,
            key,
            value,
            context,
            issued: Vec::new(),
            acked: None,
        });
        self.writes.len() - 1
    }

    /// A node gave `write` the dot `dot`. A dot issued twice is a
    /// violation: two values would share one identity and replicas would
    /// keep one of them at random.
    pub fn issue(&mut self, write: WriteId, dot: Dot) -> Result<(), String> {
        let slot = (self.writes[write].key.clone(), dot);
        if let Some(&first) = self.owners.get(&slot) {
            return Err(format!(
                "dot a{}:{} of {} issued twice (writes w{first} and w{write}): a node re-used a counter",
                dot.0.get(),
                dot.1,
                String::from_utf8_lossy(&slot.0),
            ));
        }
        self.owners.insert(slot, write);
        self.writes[write].issued.push(dot);
        Ok(())
    }

    /// `write` was acknowledged with `object`: finds its dot there.
    pub fn acknowledge(&mut self, write: WriteId, object: &Object) -> Result<Dot, String> {
        let w = &self.writes[write];
        let dot = dots_of(object)
            // The coordinator stamped the value with its clock: compare
            // what was written.
            .find(|(dot, value)| w.issued.contains(dot) && value.data == w.value.data)
            .map(|(dot, _)| dot);
        let Some(dot) = dot else {
            return Err(format!(
                "w{write} acknowledged, but the acknowledged object does not hold it"
            ));
        };
        self.writes[write].acked = Some(dot);
        Ok(dot)
    }

    /// True when a write that some node stored had seen `dot` of `key`.
    pub fn superseded(&self, key: &[u8], (actor, counter): Dot) -> bool {
        self.writes
            .iter()
            .any(|w| w.key == key && !w.issued.is_empty() && w.context.get(actor) >= counter)
    }

    /// True when a fault may have taken `dot` of `key`.
    pub fn lost(&self, key: &[u8], dot: Dot) -> bool {
        self.lost.contains(&(key.to_vec(), dot))
    }

    /// Every issued dot `node` knows.
    pub fn known_by(&self, node: &SimNode) -> Vec<Slot> {
        self.owners
            .keys()
            .filter(|(key, dot)| node.knows(key, *dot))
            .cloned()
            .collect()
    }

    /// A crash lost data at `node`, which knew `before` until then: the
    /// dots it forgot are tainted, and any tainted dot no node knows is
    /// lost.
    pub fn crashed(&mut self, before: Vec<Slot>, node: &SimNode, nodes: &[SimNode]) {
        for slot in before {
            if !node.knows(&slot.0, slot.1) {
                self.tainted.insert(slot);
            }
        }
        self.sweep(nodes);
    }

    /// Marks lost every tainted dot that no node knows now; called after
    /// every crash that loses data and every hint drop.
    pub fn sweep(&mut self, nodes: &[SimNode]) {
        for slot in &self.tainted {
            if !self.lost.contains(slot) && !nodes.iter().any(|n| n.knows(&slot.0, slot.1)) {
                self.lost.insert(slot.clone());
            }
        }
    }
}

/// Every value of `object` with its dot.
pub fn dots_of(object: &Object) -> impl Iterator<Item = (Dot, &Value)> {
    object.entries().iter().flat_map(|e| {
        e.values
            .iter()
            .enumerate()
            .map(move |(i, v)| ((e.actor, e.counter - i as u64), v))
    })
}
