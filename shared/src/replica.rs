//! What a replica does to a key's stored object for each write it is sent.
//!
//! These rules live in `quire-shared`, not in the node, because two places
//! must run exactly the same code: a storage node applies them inside its
//! LMDB write transaction, and the client's seeded simulation applies them
//! to its in-memory nodes, so the quorum machines are tested against the
//! real rules rather than a second copy that could drift. Each rule is a
//! pure function of the objects read and returns the object to store (or a
//! verdict); reading and writing objects, and choosing and recording actor
//! ids, stay with the caller.
//!
//! The rules, in Dynamo's words:
//!
//! - [`coordinate_put`]: a home replica coordinates a put;
//! - [`coordinate_put_as_stand_in`]: a stand-in (sloppy quorum) coordinates
//!   a put for a down home replica and keeps the result as a hint;
//! - [`replicate`]: a replica (or stand-in, for a hint) takes the
//!   coordinator's object, or a read repair;
//! - [`hint_delivered`]: a stand-in decides whether a hint it handed off may
//!   be forgotten;
//! - [`accept_membership`]: a node decides whether an offered membership
//!   document replaces the one it holds.

use crate::access::Serial;
use crate::dvvset::{ActorId, VersionVector};
use crate::membership::{ConflictPolicy, Membership, MembershipVersion, SuccessorError};
use crate::object::{last_write_wins, Object, Value};

/// What a coordinator keeps of the `object` it made: everything, or in a
/// last-write-wins store only the newest value, which is its own new value
/// (stamped above everything it holds), so every value it drops was
/// written before it. Applied to coordinated writes only: see
/// [`replicate`] for why a replica must not collapse on its own.
fn settle(object: Object, policy: ConflictPolicy) -> Object {
    match policy {
        ConflictPolicy::Siblings => object,
        ConflictPolicy::Lww => last_write_wins(&object),
    }
}

/// A home replica coordinates a put: `stored` (empty when the key is new)
/// updated with `value` as a new dot of `actor`, the replica's own actor.
///
/// The writer's `context` is what it had read: the values it covers are
/// replaced, and every value it has not seen stays as a sibling, so a
/// concurrent write is never lost (except by the store's choice of
/// [`ConflictPolicy::Lww`]).
///
/// The value's timestamp is the coordinating node's clock reading (set by
/// the caller), raised to one past the newest timestamp already in `stored`
/// if the clock is behind: a write that has seen every value is then newer
/// than all of them whatever the clocks say, and a client's clock plays no
/// part (one running a year ahead would otherwise win every
/// last-write-wins race for a year).
pub fn coordinate_put(
    stored: &Object,
    context: &VersionVector,
    actor: ActorId,
    mut value: Value,
    policy: ConflictPolicy,
) -> Object {
    let newest = stored.values().map(|v| v.timestamp_ms).max();
    if let Some(newest) = newest {
        value.timestamp_ms = value.timestamp_ms.max(newest.saturating_add(1));
    }
    settle(stored.update(context, actor, value), policy)
}

/// A stand-in coordinates a put for a down home replica; the caller keeps
/// the result as a hint for that home replica.
///
/// `local_copies` must be every copy of the key the stand-in holds: its own
/// data copy and its hint copies for every member. The base is their sync,
/// so the new dot is above any dot this stand-in actor made for the key and
/// still remembers.
///
/// `actor` must be the stand-in actor, not the node's own, and the caller
/// must replace it whenever delivered hints are dropped (see
/// [`hint_delivered`]): a stand-in forgets a hinted object once it is
/// delivered home, and with it the dots it made for that key; reusing one of
/// those dots for another value would make the home replica treat two values
/// as one and drop one. Dots of a new actor cannot collide with forgotten
/// ones. Stand-ins only coordinate when every home replica is down, so this
/// adds few actors.
pub fn coordinate_put_as_stand_in(
    local_copies: impl IntoIterator<Item = Object>,
    context: &VersionVector,
    actor: ActorId,
    value: Value,
    policy: ConflictPolicy,
) -> Object {
    coordinate_put(&stand_in_base(local_copies), context, actor, value, policy)
}

/// What a stand-in coordinates on: the sync of every copy of the key it
/// holds (see [`coordinate_put_as_stand_in`], which is [`coordinate_put`]
/// on this base).
pub fn stand_in_base(local_copies: impl IntoIterator<Item = Object>) -> Object {
    local_copies
        .into_iter()
        .fold(Object::new(), |base, copy| base.sync(&copy))
}

/// A replica takes `incoming` (a coordinator's object, a read repair, or a
/// hint handed to a stand-in) into what it `stored` for the key (empty when
/// new). Returns the object to store, or `None` when nothing changed: the
/// incoming object was already known, so the caller skips the write (no
/// page rewritten, no fsync wasted on a repeated replication).
///
/// Sync is idempotent, so delivering the same object twice (a retried
/// replication, a repair racing a put) is harmless.
///
/// The store's policy plays no part: a replica keeps the plain sync, in a
/// last-write-wins store too, and readers pick the newest value. A replica
/// that dropped the older of two values on its own would record it as
/// replaced when no write replaced it. Node clocks differ, so a write that
/// replaced `a` can be stamped before `a`; one replica may then drop a
/// concurrent `c` for the newer-stamped `a` while another holds `c` and
/// knows `a` replaced. Synced, the two keep neither, and the key has lost
/// every value (found by the client's simulation). Without the collapse a
/// replica holds at most the newest value of each coordinator that wrote
/// concurrently, until the next coordinated write replaces them all.
pub fn replicate(stored: &Object, incoming: &Object, _policy: ConflictPolicy) -> Option<Object> {
    let next = stored.sync(incoming);
    (next != *stored).then_some(next)
}

/// True when a stand-in may forget the hint it `held`, now that a copy
/// with clock `delivered` (the join of the copy it read and handed off) is
/// stored at home.
///
/// Only what was delivered may be dropped: the held object's clock must be
/// covered by the delivered one (equal, or older when home moved on). A
/// hint written to since the read has news for the home replica and must
/// wait for the next hand-off. Each drop must be followed by a new stand-in
/// actor (see [`coordinate_put_as_stand_in`]).
pub fn hint_delivered(held: &Object, delivered: &VersionVector) -> bool {
    held.join().covered_by(delivered)
}

/// What a node does with an offered membership document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipOffer {
    /// Store it: it replaces the held one.
    Accept,
    /// Keep the held document (the offer is older, or the same).
    Keep,
    /// A compare-and-set change built on a document the node does not hold:
    /// refuse it, so the admin re-reads and re-applies its change.
    Conflict,
    /// An offer that may not replace the held document (see
    /// [`Membership::check_successor`]): refuse it.
    Refused(SuccessorError),
}

/// What a node holding `current` (none on a new node) does with `offered`,
/// sent with `base` when it is an admin's compare-and-set change built on
/// that document, or without when a client spreads a document it saw.
///
/// Gossip follows [`Membership::supersedes`], so every node converges on
/// one document whatever order offers arrive in, and a repeated offer never
/// rewrites it. A compare-and-set change is taken only on top of the exact
/// document it was built on: an admin who read a document another admin
/// has since replaced must start over from the newer one, so no change is
/// silently dropped. The offer's signer (`signer`, its certificate's
/// serial) must not be revoked by the held document, and a later epoch may
/// not claim an earlier signing time ([`Membership::check_successor`]):
/// checked here, in the write that stores it, so an offer racing the
/// document that revokes its signer cannot slip past. Validation, the
/// cluster check and the seal's cryptography come before this rule.
pub fn accept_membership(
    current: Option<&Membership>,
    offered: &Membership,
    base: Option<MembershipVersion>,
    (signer, now): (Option<&Serial>, u64),
) -> MembershipOffer {
    let Some(held) = current else {
        return MembershipOffer::Accept;
    };
    if held == offered {
        return MembershipOffer::Keep;
    }
    let offer = match base {
        Some(base) if base != held.version() => MembershipOffer::Conflict,
        Some(_) if offered.epoch <= held.epoch => MembershipOffer::Conflict,
        Some(_) => MembershipOffer::Accept,
        None if offered.supersedes(held) => MembershipOffer::Accept,
        None => MembershipOffer::Keep,
    };
    match offer {
        MembershipOffer::Accept => offered
            .check_successor(held, signer, now)
            .map_or_else(MembershipOffer::Refused, |()| MembershipOffer::Accept),
        other => other,
    }
}

#[cfg(test)]
mod tests;
