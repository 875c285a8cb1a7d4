//! What a key stores and what a reader gets back to write with.
//!
//! A key's stored object is a [`Dvvset`] of [`Value`]s: bytes or a tombstone,
//! each with a timestamp from the coordinating node's clock (for
//! last-write-wins stores).
//! Readers receive the object's siblings and a [`Context`]: the join of the
//! set, encoded as an opaque token that the next write hands back.

use crate::dvvset::{Dvvset, VersionVector};
#[cfg(test)]
use crate::ids::ActorId;
use serde::{Deserialize, Serialize};

/// One version of a key: the bytes written, or a tombstone for a delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// Milliseconds since the Unix epoch, assigned by the coordinating node
    /// (never below the newest timestamp already stored for the key, plus
    /// one); used to collapse siblings in last-write-wins stores. What a
    /// client sends here is replaced.
    pub timestamp_ms: u64,
    /// The bytes, or `None` for a tombstone. Encoded as one byte string
    /// (the same bytes on the wire as a sequence of `u8`, written at once).
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
}

impl Value {
    /// A value holding `data`.
    pub fn bytes(data: Vec<u8>, timestamp_ms: u64) -> Self {
        Self {
            timestamp_ms,
            data: Some(data),
        }
    }

    /// A tombstone: a delete is a write of one.
    pub fn tombstone(timestamp_ms: u64) -> Self {
        Self {
            timestamp_ms,
            data: None,
        }
    }

    /// True for a delete marker.
    pub fn is_tombstone(&self) -> bool {
        self.data.is_none()
    }

    /// Bytes this value occupies on the wire and on disk (for limits).
    pub fn size_bytes(&self) -> usize {
        self.data.as_ref().map_or(0, Vec::len)
    }

    /// Last-write-wins order: the later timestamp wins; on a tie the
    /// greater bytes, and any value beats a tombstone, so every node and
    /// client picks the same winner.
    pub fn newer_than(&self, other: &Value) -> bool {
        (self.timestamp_ms, &self.data) > (other.timestamp_ms, &other.data)
    }
}

/// Collapses `object` to its newest value for a last-write-wins store.
pub fn last_write_wins(object: &Object) -> Object {
    object.lww(Value::newer_than)
}

/// The stored form of a key: its DVVSet of values.
pub type Object = Dvvset<Value>;

/// Most bytes postcard spends on a `u64` or a length (a varint).
const VARINT_BYTES_MAX: usize = 10;

impl Dvvset<Value> {
    /// An upper bound on the object's postcard encoding, in bytes: what
    /// the object limits are checked against. Computed from lengths, never
    /// by encoding, so checking a large object costs nothing; it is within
    /// a few dozen bytes per value of the exact size.
    pub fn size_bytes(&self) -> usize {
        // Per entry: actor, counter, value count. Per value: timestamp,
        // the option's tag, the byte length, the bytes.
        let per_entry = 3 * VARINT_BYTES_MAX;
        let per_value = 2 * VARINT_BYTES_MAX + 1;
        VARINT_BYTES_MAX
            + self
                .entries()
                .iter()
                .map(|e| {
                    per_entry
                        + e.values
                            .iter()
                            .map(|v| per_value + v.size_bytes())
                            .sum::<usize>()
                })
                .sum::<usize>()
    }
}

/// Format byte of a token without a key: the empty context, and tokens made
/// before contexts named their key.
const CONTEXT_FORMAT_UNBOUND: u8 = 1;

/// Format byte of a token bound to its key: format, key tag, clock.
const CONTEXT_FORMAT_KEYED: u8 = 2;

/// Bytes of the key tag in a keyed token.
const KEY_TAG_BYTES: usize = 8;

/// The causal context a reader hands back when it writes: "I have seen
/// these versions". Opaque to applications; encoded as a hex token for
/// command lines and JSON.
///
/// A context read from one key is bound to that key: written to another
/// key it would claim to have seen versions of that key it never saw (a
/// clock is just counters per actor), and the write would silently discard
/// them. The SDK refuses such a write ([`Context::check_key`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    clock: VersionVector,
    key: Option<[u8; KEY_TAG_BYTES]>,
}

/// Why a context token could not be read or used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContextError {
    /// The token is not hexadecimal.
    #[error("context token is not hexadecimal")]
    NotHex,
    /// The token is empty or its format byte is unknown.
    #[error("context token has an unknown format (was it copied whole?)")]
    UnknownFormat,
    /// The token's body does not decode to a version vector.
    #[error("context token is corrupt")]
    Corrupt,
    /// The token's clock has more entries than any node accepts in a
    /// context ([`crate::limits::VERSION_VECTOR_ENTRIES_MAX`]): no read
    /// returns one, so it was made by hand; refused here rather than by
    /// every replica the write reaches.
    #[error("context token holds {0} versions; at most {max} are accepted", max = crate::limits::VERSION_VECTOR_ENTRIES_MAX)]
    TooManyEntries(usize),
    /// The context was read from another key (or store).
    #[error("this context was read from another key; read this key and write with its context")]
    OtherKey,
}

/// The tag that binds a context to `store`/`key`: the first bytes of the
/// key's ring position.
fn key_tag(store: &str, key: &[u8]) -> [u8; KEY_TAG_BYTES] {
    let position = crate::ring::key_position(store, key);
    let mut tag = [0; KEY_TAG_BYTES];
    tag.copy_from_slice(&position[..KEY_TAG_BYTES]);
    tag
}

impl Context {
    /// The context of a writer that has read nothing: valid for any key.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The context of what was read from (or written to) `store`/`key`.
    pub fn for_key(store: &str, key: &[u8], clock: VersionVector) -> Self {
        Self {
            clock,
            key: Some(key_tag(store, key)),
        }
    }

    /// A context bound to no key, from a bare clock (tests, tools).
    pub fn unbound(clock: VersionVector) -> Self {
        Self { clock, key: None }
    }

    /// The clock: which versions the reader had seen.
    pub fn clock(&self) -> &VersionVector {
        &self.clock
    }

    /// True when the context holds no version (a blind write).
    pub fn is_empty(&self) -> bool {
        self.clock.is_empty()
    }

    /// Refuses a context read from another key than `store`/`key`.
    pub fn check_key(&self, store: &str, key: &[u8]) -> Result<(), ContextError> {
        match self.key {
            Some(tag) if tag != key_tag(store, key) => Err(ContextError::OtherKey),
            _ => Ok(()),
        }
    }

    /// The opaque token form: hex of a format byte, the key tag (if bound)
    /// and the postcard-encoded clock.
    pub fn to_token(&self) -> String {
        let mut bytes = match self.key {
            Some(tag) => {
                let mut b = vec![CONTEXT_FORMAT_KEYED];
                b.extend_from_slice(&tag);
                b
            }
            None => vec![CONTEXT_FORMAT_UNBOUND],
        };
        bytes.extend(postcard::to_allocvec(&self.clock).expect("version vectors always encode"));
        hex::encode(bytes)
    }

    /// Parses a token made by [`Context::to_token`]. An empty string is the
    /// empty context.
    pub fn from_token(token: &str) -> Result<Self, ContextError> {
        if token.is_empty() {
            return Ok(Self::empty());
        }
        let bytes = hex::decode(token.trim()).map_err(|_| ContextError::NotHex)?;
        let (key, body) = match bytes.split_first() {
            Some((&CONTEXT_FORMAT_UNBOUND, body)) => (None, body),
            Some((&CONTEXT_FORMAT_KEYED, rest)) if rest.len() >= KEY_TAG_BYTES => {
                let (tag, body) = rest.split_at(KEY_TAG_BYTES);
                (Some(tag.try_into().expect("split at the tag length")), body)
            }
            _ => return Err(ContextError::UnknownFormat),
        };
        let vv: VersionVector = postcard::from_bytes(body).map_err(|_| ContextError::Corrupt)?;
        // Re-canonicalise: a hand-made token must not smuggle in an
        // unsorted vector, nor one longer than nodes accept.
        let clock = VersionVector::from_pairs(vv.pairs().iter().copied());
        if clock.pairs().len() > crate::limits::VERSION_VECTOR_ENTRIES_MAX {
            return Err(ContextError::TooManyEntries(clock.pairs().len()));
        }
        Ok(Self { clock, key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_token_round_trips() {
        let clock = VersionVector::from_pairs([(ActorId(7), 3), (ActorId(1), 9)]);
        let c = Context::unbound(clock.clone());
        assert_eq!(Context::from_token(&c.to_token()).unwrap(), c);
        let keyed = Context::for_key("s", b"k", clock);
        assert_eq!(Context::from_token(&keyed.to_token()).unwrap(), keyed);
        assert_eq!(keyed.check_key("s", b"k"), Ok(()));
        assert_eq!(keyed.check_key("s", b"j"), Err(ContextError::OtherKey));
        assert_eq!(keyed.check_key("t", b"k"), Err(ContextError::OtherKey));
        assert_eq!(
            c.check_key("s", b"j"),
            Ok(()),
            "an unbound context fits any key"
        );
        assert_eq!(Context::from_token("").unwrap(), Context::empty());
    }

    #[test]
    fn bad_tokens_are_typed_errors() {
        assert_eq!(Context::from_token("zz"), Err(ContextError::NotHex));
        assert_eq!(Context::from_token("03"), Err(ContextError::UnknownFormat));
        assert_eq!(
            Context::from_token("0201"),
            Err(ContextError::UnknownFormat)
        );
        assert_eq!(Context::from_token("01ff"), Err(ContextError::Corrupt));
    }

    /// Found by fuzzing: a hand-made token with more versions than a node
    /// accepts parsed, and only each replica refused the write made with it.
    #[test]
    fn tokens_longer_than_nodes_accept_are_refused() {
        use crate::limits::VERSION_VECTOR_ENTRIES_MAX as MAX;
        let clock = |len: u64| VersionVector::from_pairs((0..len).map(|a| (ActorId(a), 1)));
        let at_limit = Context::unbound(clock(MAX as u64));
        assert_eq!(Context::from_token(&at_limit.to_token()), Ok(at_limit));
        let over = Context::unbound(clock(MAX as u64 + 1)).to_token();
        assert_eq!(
            Context::from_token(&over),
            Err(ContextError::TooManyEntries(MAX + 1))
        );
    }

    #[test]
    fn byte_string_encoding_matches_the_byte_sequence_encoding() {
        // Values stored before data was a byte string still decode: postcard
        // writes both as a length and the raw bytes.
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Plain {
            timestamp_ms: u64,
            data: Option<Vec<u8>>,
        }
        for data in [None, Some(vec![]), Some((0..=255).collect::<Vec<u8>>())] {
            let v = Value {
                timestamp_ms: 1_700_000_000_123,
                data: data.clone(),
            };
            let plain = Plain {
                timestamp_ms: v.timestamp_ms,
                data,
            };
            let a = postcard::to_allocvec(&v).unwrap();
            assert_eq!(a, postcard::to_allocvec(&plain).unwrap());
            assert_eq!(postcard::from_bytes::<Value>(&a).unwrap(), v);
        }
    }

    #[test]
    fn object_size_bounds_the_encoding() {
        let mut o = Object::new();
        assert!(postcard::to_allocvec(&o).unwrap().len() <= o.size_bytes());
        for (i, len) in [0usize, 1, 200, 70_000].into_iter().enumerate() {
            o.event(
                ActorId(u64::MAX - i as u64 % 2),
                Value::bytes(vec![9; len], u64::MAX),
            );
            o.event(ActorId(3), Value::tombstone(i as u64));
            let exact = postcard::to_allocvec(&o).unwrap().len();
            assert!(exact <= o.size_bytes());
            assert!(o.size_bytes() - exact <= 32 * (o.value_count() + o.entries().len() + 1));
        }
    }

    #[test]
    fn lww_order_prefers_later_then_greater_then_values_over_tombstones() {
        let a = Value::bytes(b"a".to_vec(), 5);
        let b = Value::bytes(b"b".to_vec(), 5);
        let t = Value::tombstone(5);
        let later = Value::tombstone(6);
        assert!(b.newer_than(&a) && !a.newer_than(&b));
        assert!(a.newer_than(&t));
        assert!(later.newer_than(&b));
    }
}
