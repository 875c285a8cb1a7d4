//! A simulated storage node: what a real one keeps, and what it does with
//! each request it is delivered.
//!
//! It differs from a real node in its storage (two maps instead of LMDB)
//! and never in what it stores: every write goes through the rule a real
//! node's writer applies ([`quire_shared::replica`]), with the same
//! inputs (a stand-in's base is every copy of the key it holds), and
//! hinted objects are kept apart from data, as in the node's `hints`
//! database.
//!
//! Crashes come in the three kinds a real node meets:
//!
//! - a process crash keeps everything (the page cache survives);
//! - a power cut in a buffered store loses what was written since the
//!   last flush (a sync store acknowledges only what is on disk, so it
//!   loses nothing);
//! - a lost disk loses everything.
//!
//! Whatever the kind, the node comes back with new actors, as a real node
//! takes new ones at every start (`storage-node/src/storage.rs`): data
//! that went back in time must never make it issue a dot twice.

use super::config::Knobs;
use super::digests::ScanAsk;
use quire_shared::replica;
use quire_shared::slots::Slots;
use quire_shared::wire::{
    DeliveredHint, ErrorCode, ErrorReply, Hint, Reply, Request, TransferProgress, PROTOCOL_VERSION,
};
use quire_shared::{ActorId, ConflictPolicy, Membership, NodeId, Object, StoreLimits};
use std::collections::BTreeMap;

/// A user key (one store per world).
pub type Key = Vec<u8>;

/// A value's identity: `(actor, counter)`.
pub type Dot = (ActorId, u64);

/// Most hints a node returns in one page (as the real node's limit).
const HINTS_PAGE_MAX: usize = 1_000;

/// Hands out actor ids, each once per world; small numbers keep traces
/// readable.
#[derive(Debug, Default)]
pub struct Mint {
    last: u64,
}

impl Mint {
    /// An actor id no one in this world has used.
    pub fn fresh(&mut self) -> ActorId {
        self.last += 1;
        ActorId(self.last)
    }
}

/// What a node keeps: data, and hints held for other nodes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Disk {
    /// Key → object, for keys this node is a home replica of.
    pub data: BTreeMap<Key, Object>,
    /// (home node, key) → object held for that node.
    pub hints: BTreeMap<(NodeId, Key), Object>,
    /// Partition → how far its incoming transfer has come (written with
    /// the page it marks, as the real node does).
    pub transfers: BTreeMap<u32, TransferProgress>,
}

/// How a node goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// The process dies; what it wrote survives.
    Process,
    /// Power is cut: a buffered node loses what it wrote since its last
    /// flush.
    Power,
    /// The disk is lost.
    Disk,
}

/// What the node needs from the world to answer a request.
pub struct Env<'a> {
    /// The store's conflict policy.
    pub policy: ConflictPolicy,
    /// The store's object limits.
    pub limits: StoreLimits,
    /// The membership as it stands (the ownership check: home or incoming
    /// replicas of a key take its writes and reads).
    pub doc: &'a Membership,
    /// Partitions of the ring (a key's partition places it in a digest).
    pub partitions: u32,
    /// This node's clock, in milliseconds (it stamps values).
    pub clock_ms: u64,
    /// Where new actors come from.
    pub mint: &'a mut Mint,
    /// Deliberate bugs (all off in real worlds).
    pub knobs: Knobs,
}

/// What handling one request did.
pub struct Handled {
    /// The answer.
    pub reply: Result<Reply, ErrorReply>,
    /// The dot a coordinated put issued.
    pub issued: Option<Dot>,
    /// Whether anything kept changed.
    pub changed: bool,
    /// Hints dropped (after delivery).
    pub dropped: u32,
}

impl Handled {
    /// An answer that changed nothing.
    pub(super) fn answer(reply: Result<Reply, ErrorReply>) -> Self {
        Self {
            reply,
            issued: None,
            changed: false,
            dropped: 0,
        }
    }
}

/// One storage node.
pub struct SimNode {
    /// Its id.
    pub id: NodeId,
    /// False while crashed.
    pub up: bool,
    /// The actor of the dots it makes as a home replica.
    pub actor: ActorId,
    /// The actor of the dots it makes as a stand-in.
    pub stand_in: ActorId,
    /// What it holds now.
    pub disk: Disk,
    /// What a power cut leaves: the state at the last flush (buffered
    /// stores only; a sync store's every write is on disk).
    flushed: Option<Disk>,
    /// Its transfer slots, two as the real default of
    /// `limits.transfers_in_max` (in memory: a crash frees them).
    pub slots: Slots,
}

impl SimNode {
    /// A new, empty node; `buffered` when its store is flushed on an
    /// interval rather than fsynced per write.
    pub fn new(id: NodeId, buffered: bool, mint: &mut Mint) -> Self {
        Self {
            id,
            up: true,
            actor: mint.fresh(),
            stand_in: mint.fresh(),
            disk: Disk::default(),
            flushed: buffered.then(Disk::default),
            slots: Slots::new(2),
        }
    }

    /// Every copy of `key` held: data first, then hints for any node.
    pub fn copies<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = &'a Object> + 'a {
        let hints = self.disk.hints.iter().filter(move |((_, k), _)| k == key);
        self.disk
            .data
            .get(key)
            .into_iter()
            .chain(hints.map(|(_, o)| o))
    }

    /// True when some copy of `key` has seen `dot` (holds it, or holds a
    /// write that replaced it).
    pub fn knows(&self, key: &[u8], (actor, counter): Dot) -> bool {
        self.copies(key).any(|o| o.join().get(actor) >= counter)
    }

    /// The buffered store's flush: what is held now survives a power cut.
    pub fn flush(&mut self) {
        if let Some(f) = &mut self.flushed {
            f.clone_from(&self.disk);
        }
    }

    /// Goes down, losing what `crash` loses.
    pub fn crash(&mut self, crash: Crash) {
        self.up = false;
        self.slots.clear();
        match crash {
            Crash::Process => {}
            Crash::Power => {
                if let Some(f) = &self.flushed {
                    self.disk.clone_from(f);
                }
            }
            Crash::Disk => {
                self.disk = Disk::default();
                if let Some(f) = &mut self.flushed {
                    *f = Disk::default();
                }
            }
        }
    }

    /// Comes back up with new actors (unless a knob keeps the old ones).
    pub fn restart(&mut self, mint: &mut Mint, knobs: Knobs) {
        self.up = true;
        if !knobs.reuse_actor {
            self.actor = mint.fresh();
            self.stand_in = mint.fresh();
        }
    }

    /// Stores `next` under `slot`, checking two laws of the replica
    /// rules: a copy never goes back in time (its history grows or stays),
    /// and a copy that has a history holds a value. A value is only ever
    /// discarded for a write that replaced it, and that write's own value
    /// (or its own replacement's) is kept in its stead, so a written key
    /// can never end up with no value at all, not even a tombstone.
    pub(super) fn keep<K: Ord>(slot: &mut BTreeMap<K, Object>, at: K, next: Object) {
        if let Some(old) = slot.get(&at) {
            assert!(
                old.less(&next) || old.equal_history(&next),
                "a replica's copy went back in time"
            );
        }
        assert!(
            next.entries().is_empty() || next.value_count() > 0,
            "a replica's copy of a written key holds no value: {}",
            super::trace::Show(&next)
        );
        slot.insert(at, next);
    }

    /// Answers `request`, as the real node's handler and writer do.
    pub fn handle(&mut self, env: &mut Env<'_>, request: &Request) -> Handled {
        match request {
            Request::Hello { .. } => Handled::answer(Ok(Reply::Hello {
                node_id: self.id,
                actor_id: self.actor,
                cluster_id: None,
                protocol_version: PROTOCOL_VERSION,
                metrics: None,
                clock_ms: 0,
            })),
            Request::Get { key, hint, .. } => {
                if let Err(e) = self.check_owner(env, key, *hint) {
                    return Handled::answer(Err(e));
                }
                let found = match hint {
                    None => self.disk.data.get(key).cloned(),
                    // A stand-in answers with every hint it holds for the
                    // key, whichever home it holds it for.
                    Some(_) => {
                        let hints = self.disk.hints.iter().filter(|((_, k), _)| k == key);
                        hints.fold(None, |acc: Option<Object>, (_, o)| {
                            Some(acc.map_or_else(|| o.clone(), |a| a.sync(o)))
                        })
                    }
                };
                Handled::answer(Ok(Reply::Object(found)))
            }
            Request::Put {
                key,
                value,
                context,
                hint,
                ..
            } => {
                if let Err(e) = self.check_owner(env, key, *hint) {
                    return Handled::answer(Err(e));
                }
                let mut value = value.clone();
                // The coordinator's clock stamps the value, not the client's.
                value.timestamp_ms = env.clock_ms;
                // A home replica coordinates on its data copy with its own
                // actor; a stand-in on the sync of every copy it holds with
                // its stand-in actor (`coordinate_put_as_stand_in`, with the
                // base kept for the limit check, as the node's writer does).
                let (base, actor) = match hint {
                    None => (
                        self.disk.data.get(key).cloned().unwrap_or_default(),
                        self.actor,
                    ),
                    Some(_) => (
                        replica::stand_in_base(self.copies(key).cloned()),
                        self.stand_in,
                    ),
                };
                let seen_all;
                let context = if env.knobs.put_ignores_context {
                    seen_all = base.join();
                    &seen_all
                } else {
                    context
                };
                let next = replica::coordinate_put(&base, context, actor, value, env.policy);
                if let Err(e) = env.limits.check(&base, &next) {
                    return Handled::answer(Err(refusal(e)));
                }
                let dot = (actor, next.counter(actor));
                match hint {
                    None => Self::keep(&mut self.disk.data, key.clone(), next.clone()),
                    Some(home) => {
                        Self::keep(&mut self.disk.hints, (*home, key.clone()), next.clone())
                    }
                }
                Handled {
                    reply: Ok(Reply::Stored(next)),
                    issued: Some(dot),
                    changed: true,
                    dropped: 0,
                }
            }
            Request::Replicate {
                key, object, hint, ..
            } => {
                if let Err(e) = self.check_owner(env, key, *hint) {
                    return Handled::answer(Err(e));
                }
                let held = match hint {
                    None => self.disk.data.get(key),
                    Some(home) => self.disk.hints.get(&(*home, key.clone())),
                };
                let held = held.cloned().unwrap_or_default();
                let Some(next) = replica::replicate(&held, object, env.policy) else {
                    return Handled::answer(Ok(Reply::Stored(held)));
                };
                if let Err(e) = env.limits.check_merge(&held, &next) {
                    return Handled::answer(Err(refusal(e)));
                }
                match hint {
                    None => Self::keep(&mut self.disk.data, key.clone(), next.clone()),
                    Some(home) => {
                        Self::keep(&mut self.disk.hints, (*home, key.clone()), next.clone())
                    }
                }
                Handled {
                    reply: Ok(Reply::Stored(next)),
                    issued: None,
                    changed: true,
                    dropped: 0,
                }
            }
            Request::Hints {
                target,
                after,
                limit,
            } => Handled::answer(Ok(self.hints_page(*target, after.as_deref(), *limit))),
            Request::DropHints { target, hints } => self.drop_hints(env, *target, hints),
            Request::MerkleRoot { store, partition } => self.merkle_root(env, store, *partition),
            Request::MerkleSegments {
                store,
                partition,
                first,
                count,
                group,
            } => self.merkle_segments(env, (store, *partition), (*first, *count, *group)),
            Request::ScanSegment {
                store,
                partition,
                segments,
                tombstones_only,
                listing,
                after,
                bytes_max: _,
            } => {
                // Pages of the simulation are bounded by keys alone.
                let ask = ScanAsk {
                    partition: *partition,
                    segments,
                    tombstones_only: *tombstones_only,
                    listing: *listing,
                    after: after.as_deref(),
                };
                self.scan_segment(env, store, &ask)
            }
            Request::TransferState { partition, .. } => self.transfer_state(*partition),
            Request::TransferPage {
                partition,
                change,
                entries,
                progress,
                ..
            } => self.transfer_page(env, (*partition, *change), entries, progress.as_ref()),
            Request::DropPartition {
                partition, root, ..
            } => self.drop_partition(env, *partition, *root),
            other => panic!("the simulation never sends {}", other.kind()),
        }
    }

    /// Refuses an un-hinted read or write of a key this node is neither a
    /// home nor an incoming replica of, as a real node does
    /// (`check_home_replica`): a request planned on the membership before
    /// a change flipped.
    fn check_owner(
        &self,
        env: &Env<'_>,
        key: &[u8],
        hint: Option<NodeId>,
    ) -> Result<(), ErrorReply> {
        let n = usize::from(env.doc.stores[0].n);
        let partition = env.doc.partition_of(super::STORE, key);
        if hint.is_some() || env.doc.is_home_or_incoming(self.id, partition, n) {
            return Ok(());
        }
        Err(ErrorReply {
            code: ErrorCode::NotOwner,
            message: format!(
                "node {} is not a home replica of this key in epoch {}",
                self.id.get(),
                env.doc.epoch
            ),
        })
    }

    /// A page of the hints held for `target` after the cursor `after` (a
    /// key here; the real node's cursor is its LMDB key, as opaque to the
    /// client).
    fn hints_page(&self, target: NodeId, after: Option<&[u8]>, limit: u32) -> Reply {
        let limit = (limit as usize).clamp(1, HINTS_PAGE_MAX);
        let start = (target, after.unwrap_or_default().to_vec());
        let page: Vec<(Key, Object)> = self
            .disk
            .hints
            .range(start..)
            .take_while(|((home, _), _)| *home == target)
            .filter(|((_, k), _)| Some(k.as_slice()) != after)
            .take(limit)
            .map(|((_, k), o)| (k.clone(), o.clone()))
            .collect();
        let next = (page.len() == limit).then(|| page[page.len() - 1].0.clone());
        let hints = page
            .into_iter()
            .map(|(key, object)| Hint {
                store: super::STORE.into(),
                key,
                object,
            })
            .collect();
        Reply::Hints { hints, next }
    }

    /// Forgets delivered hints that did not change since they were read;
    /// the stand-in actor changes with every drop, as the real writer's.
    fn drop_hints(
        &mut self,
        env: &mut Env<'_>,
        target: NodeId,
        hints: &[DeliveredHint],
    ) -> Handled {
        let mut dropped = 0;
        for h in hints {
            let slot = (target, h.key.clone());
            let delivered = self
                .disk
                .hints
                .get(&slot)
                .is_some_and(|held| replica::hint_delivered(held, &h.clock));
            if delivered {
                self.disk.hints.remove(&slot);
                dropped += 1;
            }
        }
        if dropped > 0 && !env.knobs.keep_stand_in_actor {
            self.stand_in = env.mint.fresh();
        }
        Handled {
            reply: Ok(Reply::Dropped(dropped)),
            issued: None,
            changed: dropped > 0,
            dropped,
        }
    }
}

/// A node's refusal of a write over its store's limits.
fn refusal(e: quire_shared::limits::LimitExceeded) -> ErrorReply {
    ErrorReply {
        code: e.code(),
        message: e.to_string(),
    }
}
