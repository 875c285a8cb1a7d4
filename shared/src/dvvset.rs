//! Dotted version vector sets (DVVSet).
//!
//! From Almeida, Gonçalves, Preguiça et al., "Dotted Version Vectors:
//! Efficient Causality Tracking for Distributed Key-Value Stores" (and the
//! compact "DVVSet" form of "Scalable and Accurate Causality Tracking for
//! Eventually Consistent Stores", DAIS 2014). A DVVSet holds, per actor (a
//! node that coordinated writes), a counter and the values written at that
//! actor that are still live. Value `i` of an entry (newest first) has the dot
//! `(actor, counter - i)`. Concurrent writes therefore stay as siblings, and
//! the set's size is bounded by the number of coordinating actors: no client
//! ids, no pruning.
//!
//! Every value here is a plain data structure; entries are kept sorted by
//! actor so that equal sets have equal encodings (Merkle hashes depend on it).

use crate::limits::{OBJECT_VALUES_MAX, VERSION_VECTOR_ENTRIES_MAX};

/// Most entries a vector or an object decodes before it is refused as
/// malformed: twice what is accepted, so that one just over the limit
/// still decodes and gets the precise refusal ([`Malformed::TooManyEntries`],
/// `InvalidContext` or `InvalidObject` on the wire), while one far over it
/// costs nothing to refuse (an entry is 2 bytes on the wire and 16 or more
/// in memory).
const ENTRIES_DECODED_MAX: usize = 2 * VERSION_VECTOR_ENTRIES_MAX;
use serde::{Deserialize, Serialize};

pub use crate::ids::ActorId;

/// Why a decoded version vector or DVVSet breaks the invariants the
/// algorithms rely on. Either arrives from a peer (a context in a put, an
/// object in a replication or a reply), so it is checked, never trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Actors are not in strictly ascending order (unsorted, or one twice).
    #[error("entries are not sorted by actor with each actor once")]
    Unsorted,
    /// A context entry has counter zero: no dot has that counter.
    #[error("context entry for actor {0} has counter 0")]
    ZeroCounter(ActorId),
    /// An entry holds more values than its counter has dots.
    #[error("entry for actor {0} holds more values than its counter")]
    ValuesAboveCounter(ActorId),
    /// More entries than [`VERSION_VECTOR_ENTRIES_MAX`].
    #[error("{0} entries; at most {VERSION_VECTOR_ENTRIES_MAX} are accepted")]
    TooManyEntries(usize),
}

/// Checks what every decoded vector must hold: a bounded number of
/// entries and strictly ascending actors.
fn check_entries(len: usize, mut actors: impl Iterator<Item = ActorId>) -> Result<(), Malformed> {
    if len > VERSION_VECTOR_ENTRIES_MAX {
        return Err(Malformed::TooManyEntries(len));
    }
    let mut previous: Option<ActorId> = None;
    actors.try_for_each(|actor| {
        if previous.is_some_and(|p| p >= actor) {
            return Err(Malformed::Unsorted);
        }
        previous = Some(actor);
        Ok(())
    })
}

/// One actor's entry: its counter and the live values it coordinated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct Entry<V> {
    /// The coordinating actor.
    pub actor: ActorId,
    /// The highest dot counter this set knows for `actor`.
    pub counter: u64,
    /// Live values, newest first: `values[i]` has dot `(actor, counter - i)`.
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, OBJECT_VALUES_MAX>")]
    pub values: Vec<V>,
}

/// A dotted version vector set over values of type `V`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct Dvvset<V> {
    /// Entries sorted by actor, at most one per actor. Their values
    /// together are at most [`OBJECT_VALUES_MAX`] (checked as they decode).
    #[serde(
        deserialize_with = "crate::bounded::weighed_vec::<_, _, ENTRIES_DECODED_MAX, OBJECT_VALUES_MAX>"
    )]
    entries: Vec<Entry<V>>,
}

/// A version vector: what a reader has seen, handed back with a write so the
/// coordinator can discard exactly the values the writer knew about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector {
    /// `(actor, counter)` pairs sorted by actor, counters above zero.
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, ENTRIES_DECODED_MAX>")]
    entries: Vec<(ActorId, u64)>,
}

impl VersionVector {
    /// The empty vector: the context of a writer that has read nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vector from pairs in any order; duplicate actors keep their
    /// highest counter and zero counters are dropped, so the result is
    /// canonical.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (ActorId, u64)>) -> Self {
        let mut entries: Vec<(ActorId, u64)> = pairs.into_iter().filter(|p| p.1 > 0).collect();
        entries.sort_unstable();
        let mut out: Vec<(ActorId, u64)> = Vec::with_capacity(entries.len());
        for (actor, counter) in entries {
            match out.last_mut() {
                Some(last) if last.0 == actor => last.1 = last.1.max(counter),
                _ => out.push((actor, counter)),
            }
        }
        Self { entries: out }
    }

    /// The `(actor, counter)` pairs, sorted by actor.
    pub fn pairs(&self) -> &[(ActorId, u64)] {
        &self.entries
    }

    /// The counter known for `actor` (zero when absent).
    pub fn get(&self, actor: ActorId) -> u64 {
        self.entries
            .binary_search_by_key(&actor, |p| p.0)
            .map(|i| self.entries[i].1)
            .unwrap_or(0)
    }

    /// True when every counter here is at most the one in `other`.
    pub fn covered_by(&self, other: &Self) -> bool {
        self.entries.iter().all(|&(a, c)| c <= other.get(a))
    }

    /// True when nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks the form a decoded vector must have (see [`Malformed`]):
    /// what [`VersionVector::from_pairs`] makes always passes. A zero
    /// counter is refused too: no canonical encoder writes one, and it
    /// would turn into an empty entry of the object written with it.
    pub fn validate(&self) -> Result<(), Malformed> {
        check_entries(self.entries.len(), self.entries.iter().map(|p| p.0))?;
        match self.entries.iter().find(|p| p.1 == 0) {
            Some(&(actor, _)) => Err(Malformed::ZeroCounter(actor)),
            None => Ok(()),
        }
    }
}

impl<V> Default for Dvvset<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<V: Clone + PartialEq> Dvvset<V> {
    /// The empty set: a key never written.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set that knows the dots of `context` but holds no values: the
    /// writer's knowledge, ready to be synced with the stored set.
    pub fn from_context(context: &VersionVector) -> Self {
        Self {
            entries: context
                .pairs()
                .iter()
                .map(|&(actor, counter)| Entry {
                    actor,
                    counter,
                    values: Vec::new(),
                })
                .collect(),
        }
    }

    /// Builds a set from entries, checking the invariants a decoded set must
    /// hold (see [`Dvvset::validate`]).
    pub fn from_entries(entries: Vec<Entry<V>>) -> Option<Self> {
        let set = Self { entries };
        set.validate().is_ok().then_some(set)
    }

    /// The entries, sorted by actor.
    pub fn entries(&self) -> &[Entry<V>] {
        &self.entries
    }

    /// The highest counter this set knows for `actor` (zero when absent):
    /// `self.join().get(actor)` without building the join.
    pub fn counter(&self, actor: ActorId) -> u64 {
        self.entries
            .binary_search_by_key(&actor, |e| e.actor)
            .map(|i| self.entries[i].counter)
            .unwrap_or(0)
    }

    /// True when the decoded form respects the invariants (see
    /// [`Dvvset::validate`]); decoders call it on untrusted input.
    pub fn is_well_formed(&self) -> bool {
        self.validate().is_ok()
    }

    /// Checks the invariants a decoded set must hold before any algorithm
    /// here touches it: a bounded number of entries, strictly ascending
    /// actors, no more values than the counter allows. (An entry with
    /// counter zero and no values is allowed, as in the reference
    /// algorithm: it knows nothing and changes no result.)
    pub fn validate(&self) -> Result<(), Malformed> {
        check_entries(self.entries.len(), self.entries.iter().map(|e| e.actor))?;
        match self
            .entries
            .iter()
            .find(|e| e.values.len() as u64 > e.counter)
        {
            Some(e) => Err(Malformed::ValuesAboveCounter(e.actor)),
            None => Ok(()),
        }
    }

    /// Records a new value written at `actor`: a fresh dot
    /// `(actor, counter + 1)`. Existing values stay (they are concurrent with
    /// the new one unless an earlier sync with a context discarded them).
    ///
    /// The caller must not event an actor whose counter is `u64::MAX`
    /// (nodes refuse such a write first): the counter saturates rather
    /// than wrap or panic, and the new dot would not be fresh.
    pub fn event(&mut self, actor: ActorId, value: V) {
        match self.entries.binary_search_by_key(&actor, |e| e.actor) {
            Ok(i) => {
                let entry = &mut self.entries[i];
                entry.counter = entry.counter.saturating_add(1);
                entry.values.insert(0, value);
            }
            Err(i) => self.entries.insert(
                i,
                Entry {
                    actor,
                    counter: 1,
                    values: vec![value],
                },
            ),
        }
    }

    /// A coordinated write: the stored set (`self`) updated with `value`
    /// written at `actor` by a client that had seen `context`. Values the
    /// context covers are discarded; values it has not seen remain siblings.
    pub fn update(&self, context: &VersionVector, actor: ActorId, value: V) -> Self {
        let mut next = Self::from_context(context).sync(self);
        next.event(actor, value);
        next
    }

    /// Merges two replicas' sets: the result holds every value that neither
    /// side knows to be obsolete. Commutative, associative and idempotent.
    pub fn sync(&self, other: &Self) -> Self {
        let (a, b) = (&self.entries, &other.entries);
        let mut out = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].actor.cmp(&b[j].actor) {
                std::cmp::Ordering::Less => {
                    out.push(a[i].clone());
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(b[j].clone());
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push(merge_entries(&a[i], &b[j]));
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        Self { entries: out }
    }

    /// The causal past of the whole set as a version vector: the context a
    /// reader hands back so its next write supersedes everything it saw.
    pub fn join(&self) -> VersionVector {
        VersionVector {
            entries: self
                .entries
                .iter()
                .filter(|e| e.counter > 0)
                .map(|e| (e.actor, e.counter))
                .collect(),
        }
    }

    /// Every live value (siblings), in actor order, newest first per actor.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().flat_map(|e| e.values.iter())
    }

    /// Number of live values.
    pub fn value_count(&self) -> usize {
        self.entries.iter().map(|e| e.values.len()).sum()
    }

    /// True when `self`'s history is strictly contained in `other`'s: every
    /// counter is at most `other`'s and the two differ.
    pub fn less(&self, other: &Self) -> bool {
        let (mine, theirs) = (self.join(), other.join());
        mine != theirs && mine.covered_by(&theirs)
    }

    /// True when both sets know exactly the same dots.
    pub fn equal_history(&self, other: &Self) -> bool {
        self.join() == other.join()
    }

    /// Last-write-wins collapse: keeps only the newest value, where
    /// `newer(a, b)` says `a` was written after `b` (for Quire's values, by
    /// their timestamps), and forgets the others while keeping the whole
    /// causal history: the join is unchanged, so a write with this set's
    /// context still supersedes every value it had. The winner becomes its
    /// actor's newest value (as in the reference `dvvset:lww/2`). Among
    /// values no one is newer than, the first in actor order wins, so every
    /// replica picks the same one.
    pub fn lww(&self, newer: impl Fn(&V, &V) -> bool) -> Self {
        let mut winner: Option<(usize, &V)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            for v in &e.values {
                if winner.is_none_or(|(_, w)| newer(v, w)) {
                    winner = Some((i, v));
                }
            }
        }
        Self {
            entries: self
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| Entry {
                    actor: e.actor,
                    counter: e.counter,
                    values: match winner {
                        Some((w, v)) if w == i => vec![v.clone()],
                        _ => Vec::new(),
                    },
                })
                .collect(),
        }
    }
}

/// Merges two entries of the same actor. The one with the higher counter
/// knows more of the history; values the other still holds but the higher one
/// has discarded are gone, and values the lower one has discarded are dropped
/// from the higher one's list too.
fn merge_entries<V: Clone>(x: &Entry<V>, y: &Entry<V>) -> Entry<V> {
    let (hi, lo) = if x.counter >= y.counter {
        (x, y)
    } else {
        (y, x)
    };
    // Dots at or below `floor` are obsolete in an entry.
    let hi_floor = hi.counter - hi.values.len() as u64;
    let lo_floor = lo.counter - lo.values.len() as u64;
    if hi_floor >= lo_floor {
        hi.clone()
    } else {
        // `lo` has discarded dots up to `lo_floor`; keep only hi's newer ones.
        let keep = (hi.counter - lo_floor) as usize;
        Entry {
            actor: hi.actor,
            counter: hi.counter,
            values: hi.values[..keep.min(hi.values.len())].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

impl<V> crate::bounded::Weighed for Entry<V> {
    fn weight(&self) -> usize {
        self.values.len()
    }
}
