//! Hard limits, checked before anything is allocated or stored.
//!
//! LMDB keys are at most 511 bytes and a data key is
//! `store length ‖ store ‖ partition ‖ key`, so user keys stop at 480 bytes
//! and store names at 24. Values have a configurable maximum below a hard
//! ceiling; frames must fit a value with a few siblings.
//!
//! A key's whole object is bounded too ([`StoreLimits`], per store): each
//! blind write adds a sibling and every write ships the whole object, so
//! without a bound one key could outgrow the frame limit, after which no
//! replication, repair or read of it could ever succeed again.

use crate::object::Object;
use crate::wire::ErrorCode;
use serde::{Deserialize, Serialize};

/// Longest user key, in bytes.
pub const KEY_BYTES_MAX: usize = 480;
/// Longest store name, in bytes.
pub const STORE_NAME_BYTES_MAX: usize = 24;
/// Default largest value, in bytes (1 MiB).
pub const VALUE_BYTES_MAX_DEFAULT: usize = 1 << 20;
/// No configuration may raise the value limit above this (16 MiB).
pub const VALUE_BYTES_CEILING: usize = 16 << 20;
/// Default largest frame, in bytes: room for a maximum value with siblings.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 16 << 20;
/// No configuration may raise the frame limit above this (64 MiB).
pub const FRAME_BYTES_CEILING: u32 = 64 << 20;
/// Room a frame needs besides the one object or value it carries: message
/// tags, store name, key (at most 480 bytes), hint and cursor. A node's
/// frame limit must exceed its value limit by this much.
pub const FRAME_ENVELOPE_BYTES: usize = 4096;

/// Default sibling count past which a node warns about a key (Riak's).
pub const SIBLINGS_WARN_DEFAULT: u32 = 25;
/// Default sibling count a write may not grow a key past (Riak's).
pub const SIBLINGS_MAX_DEFAULT: u32 = 100;
/// No store may allow more siblings than this.
pub const SIBLINGS_CEILING: u32 = 100_000;
/// Default bound on a key's encoded object: whatever leaves the default
/// frame room for its envelope, so every message carrying one object
/// (a replication, a stored reply, a hint) still fits one frame.
pub const OBJECT_BYTES_MAX_DEFAULT: u32 = FRAME_BYTES_MAX_DEFAULT - FRAME_ENVELOPE_BYTES as u32;
/// No store may allow objects larger than this: the largest frame any
/// node may be configured with, less the envelope.
pub const OBJECT_BYTES_CEILING: u32 = FRAME_BYTES_CEILING - FRAME_ENVELOPE_BYTES as u32;
/// No store may bound objects below this.
pub const OBJECT_BYTES_FLOOR: u32 = 1024;

/// Default time a tombstone is kept after its delete before it may be
/// reaped (one hour): long enough that a replica briefly away, or a hint
/// still on its way home, has caught up with the delete first.
pub const TOMBSTONE_GRACE_MS_DEFAULT: u64 = 60 * 60 * 1000;

/// Most entries (actors) in a context or an object a node or client
/// accepts. Far above what keys reach (one entry per start of a node that
/// coordinated the key, and per stand-in round that wrote it), and there
/// so that a peer cannot make a node store and hand on a vector of any
/// length.
pub const VERSION_VECTOR_ENTRIES_MAX: usize = 4096;

/// Most values (siblings and tombstones, over all entries) an object may
/// hold anywhere: decoding refuses more, and a replica refuses a merge
/// that would make more, so every stored object still decodes. Far above
/// [`SIBLINGS_CEILING`], which coordinators enforce; replicas merge
/// concurrent coordinators' siblings past it.
pub const OBJECT_VALUES_MAX: usize = 4 * SIBLINGS_CEILING as usize;

/// Most members a membership document may name: more than any cluster
/// needs, few enough that checking a document is cheap.
pub const MEMBERS_MAX: usize = 4096;
/// Most stores a membership document may hold.
pub const STORES_MAX: usize = 1024;
/// Most partitions a ring may have (`Q`): entries in an owner table.
pub const PARTITIONS_MAX: usize = 1 << 16;
/// Most encoded bytes of a membership document (two full owner tables,
/// the most members and stores): every change resends it whole.
pub const MEMBERSHIP_BYTES_MAX: usize = 4 << 20;
/// Most delivered hints one `DropHints` may name (a page is at most 1000).
pub const DROP_HINTS_MAX: usize = 1024;
/// Most keys one `TransferPage` carries: bounds the receiving writer's
/// transaction (the foreground's writes wait behind it) and decoding.
pub const TRANSFER_PAGE_ENTRIES_MAX: usize = 1024;

/// Per-store bounds on one key's object, kept in the membership document
/// so that every node of the store applies the same ones.
///
/// Nodes refuse a write (a coordinated put or a replication) whose result
/// would exceed a bound and be larger than what they hold: a write that
/// shrinks an object (one made with a context that merges its siblings) is
/// always taken, so a key over its limit can always be repaired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreLimits {
    /// Siblings past which a node logs a warning for the key: writers are
    /// writing blind, or not handing back the contexts they read.
    pub siblings_warn: u32,
    /// Siblings a write may not grow a key's object past.
    pub siblings_max: u32,
    /// Encoded bytes a write may not grow a key's object past (each node
    /// also holds it under its own frame limit, less the envelope).
    pub object_bytes_max: u32,
    /// Milliseconds a key's newest tombstone must be old before anti-entropy
    /// may reap the key. A copy of the key older than the delete that
    /// reaches a replica after the reaping (a late hint, a replica back
    /// from a long absence) brings the deleted value back: the grace is
    /// the time such copies get to meet the tombstone first.
    pub tombstone_grace_ms: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            siblings_warn: SIBLINGS_WARN_DEFAULT,
            siblings_max: SIBLINGS_MAX_DEFAULT,
            object_bytes_max: OBJECT_BYTES_MAX_DEFAULT,
            tombstone_grace_ms: TOMBSTONE_GRACE_MS_DEFAULT,
        }
    }
}

/// A write refused because its result would break a [`StoreLimits`] bound.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The object would hold more siblings than the store allows.
    #[error("the write would leave {siblings} siblings; the store's limit is {max}")]
    TooManySiblings {
        /// Siblings the write would leave.
        siblings: usize,
        /// The store's `siblings_max`.
        max: u32,
    },
    /// The object would be larger than the store (or node) allows.
    #[error("the write would make the object {bytes} bytes; the limit is {max}")]
    ObjectTooLarge {
        /// The object's encoded size, at most.
        bytes: usize,
        /// The bound applied.
        max: usize,
    },
}

impl LimitExceeded {
    /// The wire code a node refuses with.
    pub fn code(&self) -> ErrorCode {
        match self {
            LimitExceeded::TooManySiblings { .. } => ErrorCode::TooManySiblings,
            LimitExceeded::ObjectTooLarge { .. } => ErrorCode::ObjectTooLarge,
        }
    }
}

impl StoreLimits {
    /// Checks the bounds against each other and their ceilings.
    pub fn validate(&self) -> Result<(), String> {
        if self.siblings_max == 0 || self.siblings_max > SIBLINGS_CEILING {
            return Err(format!(
                "siblings_max must be 1..={SIBLINGS_CEILING} (got {})",
                self.siblings_max
            ));
        }
        if self.siblings_warn == 0 || self.siblings_warn > self.siblings_max {
            return Err(format!(
                "siblings_warn must be 1..=siblings_max (got {} with siblings_max {})",
                self.siblings_warn, self.siblings_max
            ));
        }
        if !(OBJECT_BYTES_FLOOR..=OBJECT_BYTES_CEILING).contains(&self.object_bytes_max) {
            return Err(format!(
                "object_bytes_max must be {OBJECT_BYTES_FLOOR}..={OBJECT_BYTES_CEILING} (got {})",
                self.object_bytes_max
            ));
        }
        Ok(())
    }

    /// These limits as a node with frame limit `frame_bytes_max` applies
    /// them: an object must also fit its frames there.
    pub fn within_frame(self, frame_bytes_max: u32) -> Self {
        let fits = frame_bytes_max.saturating_sub(FRAME_ENVELOPE_BYTES as u32);
        Self {
            object_bytes_max: self.object_bytes_max.min(fits),
            ..self
        }
    }

    /// Whether a write that turns `stored` into `next` may be stored.
    /// `Ok(true)` asks the caller to warn: `next` has more than
    /// `siblings_warn` siblings. A result over a bound is refused only if
    /// it grows the object, so a write that merges siblings always passes.
    pub fn check(&self, stored: &Object, next: &Object) -> Result<bool, LimitExceeded> {
        let siblings = next.value_count();
        if siblings > self.siblings_max as usize && siblings > stored.value_count() {
            return Err(LimitExceeded::TooManySiblings {
                siblings,
                max: self.siblings_max,
            });
        }
        let bytes = next.size_bytes();
        let max = self.object_bytes_max as usize;
        if bytes > max && bytes > stored.size_bytes() {
            return Err(LimitExceeded::ObjectTooLarge { bytes, max });
        }
        Ok(siblings > self.siblings_warn as usize)
    }

    /// Like [`StoreLimits::check`], for a replica taking a merge (a
    /// coordinator's object, a read repair, a hint, anti-entropy): the
    /// sibling bound is not enforced there. Those siblings were each
    /// acknowledged by some coordinator (the bound holds for every
    /// coordinated write); refusing their merge would keep replicas apart
    /// for good and strand hints, found by the simulation. The byte bound
    /// stays: an object over it could not travel at all.
    pub fn check_merge(&self, stored: &Object, next: &Object) -> Result<bool, LimitExceeded> {
        let values = next.value_count();
        if values > OBJECT_VALUES_MAX && values > stored.value_count() {
            return Err(LimitExceeded::TooManySiblings {
                siblings: values,
                max: OBJECT_VALUES_MAX as u32,
            });
        }
        match self.check(stored, next) {
            Err(LimitExceeded::TooManySiblings { .. }) => {
                let bytes = next.size_bytes();
                let max = self.object_bytes_max as usize;
                if bytes > max && bytes > stored.size_bytes() {
                    return Err(LimitExceeded::ObjectTooLarge { bytes, max });
                }
                Ok(true)
            }
            other => other,
        }
    }
}

/// Checks a user key: non-empty and at most [`KEY_BYTES_MAX`] bytes.
pub fn check_key(key: &[u8]) -> Result<(), (ErrorCode, String)> {
    if key.is_empty() {
        return Err((ErrorCode::EmptyKey, "key is empty".into()));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err((
            ErrorCode::KeyTooLarge,
            format!("key is {} bytes; the limit is {KEY_BYTES_MAX}", key.len()),
        ));
    }
    Ok(())
}

/// Checks a value against the configured maximum.
pub fn check_value(len: usize, value_bytes_max: usize) -> Result<(), (ErrorCode, String)> {
    if len > value_bytes_max {
        return Err((
            ErrorCode::ValueTooLarge,
            format!("value is {len} bytes; the limit is {value_bytes_max}"),
        ));
    }
    Ok(())
}

/// True for a valid store name: 1 to 24 bytes of `a-z`, `0-9`, `_`, `-`.
pub fn valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= STORE_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica takes a merge past the sibling bound (each sibling was a
    /// coordinated write that met it), but never one past the byte bound.
    #[test]
    fn a_merge_is_held_to_the_byte_bound_only() {
        use crate::ids::ActorId;
        use crate::object::Value;
        let limits = StoreLimits {
            siblings_warn: 1,
            siblings_max: 1,
            object_bytes_max: 1_000,
            ..StoreLimits::default()
        };
        let one = |actor: u64, len: usize| {
            let mut o = Object::new();
            o.event(ActorId(actor), Value::bytes(vec![7; len], 1));
            o
        };
        let stored = one(1, 8);
        let merged = stored.sync(&one(2, 8));
        assert!(
            limits.check(&stored, &merged).is_err(),
            "a coordinator refuses"
        );
        assert_eq!(
            limits.check_merge(&stored, &merged),
            Ok(true),
            "a replica warns"
        );
        let huge = stored.sync(&one(2, 2_000));
        assert!(matches!(
            limits.check_merge(&stored, &huge),
            Err(LimitExceeded::ObjectTooLarge { .. })
        ));
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(check_key(b"").unwrap_err().0, ErrorCode::EmptyKey);
        assert!(check_key(&[1; KEY_BYTES_MAX]).is_ok());
        assert_eq!(
            check_key(&[1; KEY_BYTES_MAX + 1]).unwrap_err().0,
            ErrorCode::KeyTooLarge
        );
    }

    fn with_values(n: usize, bytes: usize) -> Object {
        let mut o = Object::new();
        for i in 0..n {
            o.event(
                crate::ActorId(i as u64 % 3 + 1),
                crate::Value::bytes(vec![1; bytes], 1),
            );
        }
        o
    }

    #[test]
    fn object_limits_refuse_growth_past_a_bound_but_never_a_shrink() {
        let limits = StoreLimits {
            siblings_warn: 2,
            siblings_max: 3,
            object_bytes_max: 2048,
            tombstone_grace_ms: 0,
        };
        assert_eq!(limits.validate(), Ok(()));
        let empty = Object::new();
        assert_eq!(limits.check(&empty, &with_values(2, 10)), Ok(false));
        assert_eq!(limits.check(&empty, &with_values(3, 10)), Ok(true));
        assert!(matches!(
            limits.check(&with_values(3, 10), &with_values(4, 10)),
            Err(LimitExceeded::TooManySiblings {
                siblings: 4,
                max: 3
            })
        ));
        // Over the bound but smaller than what is held: a merge, taken.
        assert_eq!(
            limits.check(&with_values(6, 10), &with_values(5, 10)),
            Ok(true)
        );
        let err = limits.check(&empty, &with_values(1, 4096)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ObjectTooLarge);
        assert!(limits
            .check(&with_values(1, 4096), &with_values(1, 3000))
            .is_ok());
    }

    #[test]
    fn store_limits_are_validated_and_held_under_the_frame() {
        let d = StoreLimits::default();
        assert_eq!(d.validate(), Ok(()));
        assert!(
            (d.object_bytes_max as usize) + FRAME_ENVELOPE_BYTES
                <= FRAME_BYTES_MAX_DEFAULT as usize
        );
        assert!(StoreLimits {
            siblings_max: 0,
            ..d
        }
        .validate()
        .is_err());
        assert!(StoreLimits {
            siblings_warn: 101,
            ..d
        }
        .validate()
        .is_err());
        assert!(StoreLimits {
            object_bytes_max: OBJECT_BYTES_CEILING + 1,
            ..d
        }
        .validate()
        .is_err());
        assert_eq!(
            d.within_frame(1 << 20).object_bytes_max as usize,
            (1 << 20) - FRAME_ENVELOPE_BYTES
        );
        assert_eq!(d.within_frame(u32::MAX), d);
    }

    #[test]
    fn store_names_are_checked() {
        assert!(valid_store_name("default"));
        assert!(valid_store_name("carts_v2-eu"));
        assert!(!valid_store_name(""));
        assert!(!valid_store_name("Carts"));
        assert!(!valid_store_name(&"a".repeat(STORE_NAME_BYTES_MAX + 1)));
    }
}
