//! LMDB keys of data and hints, and the record a hint is stored as.
//!
//! A data key is `store length ‖ store ‖ partition (u32 BE) ‖ key`: at most
//! 1 + 24 + 4 + 480 = 509 bytes, under LMDB's 511. A hint is held per home
//! node, under `home (u64 BE) ‖ data key`, which for the longest store
//! names and keys is 517 bytes: too long for LMDB, so every stand-in write
//! of such a key used to fail. The limits on keys and store names stay (480
//! and 24 are what users were promised); instead a hint whose data key does
//! not fit is kept under `home ‖ 0xff ‖ SHA-256(data key)`, and its record
//! carries the data key itself so that hint pages return the real store and
//! key. A data key starts with the store's length (1 to 24), never 0xff, so
//! the two forms never meet; SHA-256 keeps distinct data keys apart (a
//! collision is not known to exist), and reading a hint checks the data key
//! in its record all the same. Hints of keys that fit keep the form and the
//! record format they always had, so hints stored before this change are
//! read as they are.

use quire_shared::limits::{KEY_BYTES_MAX, STORE_NAME_BYTES_MAX};
use quire_shared::{NodeId, Object};
use serde::{Deserialize, Serialize};

/// LMDB's longest key (its default `MDB_MAXKEYSIZE`).
pub const LMDB_KEY_BYTES_MAX: usize = 511;
/// Bytes of the home node id in front of a hint key.
const HOME_BYTES: usize = 8;
/// Longest data key a hint key holds as it is.
const HINT_DATA_KEY_BYTES_MAX: usize = LMDB_KEY_BYTES_MAX - HOME_BYTES;
/// First byte of a hashed hint key's suffix; no data key starts with it.
const HASHED: u8 = 0xff;
/// Record format of a hint under its data key: the object alone.
const HINT_FORMAT_OBJECT: u8 = 1;
/// Record format of a hint under a hashed key: its data key and object.
const HINT_FORMAT_KEYED: u8 = 2;

// Every data key fits LMDB; only hint keys need the hashed form.
const _: () = assert!(1 + STORE_NAME_BYTES_MAX + 4 + KEY_BYTES_MAX <= LMDB_KEY_BYTES_MAX);

/// The LMDB key of a user key.
pub fn data_key(store: &str, partition: u32, key: &[u8]) -> Vec<u8> {
    let mut k = partition_prefix(store, partition);
    k.extend_from_slice(key);
    k
}

/// The prefix every data key of `store`'s `partition` starts with (and
/// every segment key of its Merkle segments).
pub fn partition_prefix(store: &str, partition: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + store.len() + 4 + KEY_BYTES_MAX);
    k.push(store.len() as u8);
    k.extend_from_slice(store.as_bytes());
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Splits a data key into store, partition and user key; `None` if it is
/// not one `data_key` made.
pub fn split_data_key(data_key: &[u8]) -> Option<(String, u32, Vec<u8>)> {
    let (&len, rest) = data_key.split_first()?;
    let len = usize::from(len);
    if rest.len() < len + 4 {
        return None;
    }
    let store = std::str::from_utf8(&rest[..len]).ok()?.to_string();
    let partition = u32::from_be_bytes(rest[len..len + 4].try_into().ok()?);
    Some((store, partition, rest[len + 4..].to_vec()))
}

/// True when a hint of `data_key` is kept under the hashed form.
fn hashed(data_key: &[u8]) -> bool {
    data_key.len() > HINT_DATA_KEY_BYTES_MAX
}

/// The prefix of every hint key held for `home`.
pub(super) fn hint_prefix(home: NodeId) -> [u8; HOME_BYTES] {
    home.get().to_be_bytes()
}

/// The LMDB key of the hint of `data_key` held for `home`.
pub(super) fn hint_key(home: NodeId, data_key: &[u8]) -> Vec<u8> {
    let mut k = hint_prefix(home).to_vec();
    if hashed(data_key) {
        k.push(HASHED);
        k.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, data_key).as_ref());
    } else {
        k.extend_from_slice(data_key);
    }
    k
}

/// The LMDB key a hint page resumes at: `cursor` is the suffix (after the
/// home) of the last key of the previous page. `None` for a cursor no hint
/// key has, so a forged one cannot make LMDB refuse the lookup.
pub(super) fn hint_key_at(home: NodeId, cursor: &[u8]) -> Option<Vec<u8>> {
    (cursor.len() <= HINT_DATA_KEY_BYTES_MAX).then(|| {
        let mut k = hint_prefix(home).to_vec();
        k.extend_from_slice(cursor);
        k
    })
}

/// A hint under a hashed key: its data key travels in the record.
#[derive(Serialize, Deserialize)]
struct KeyedHint {
    data_key: Vec<u8>,
    object: Object,
}

/// The record a hint of `data_key` is stored as.
pub(super) fn encode_hint(data_key: &[u8], object: &Object) -> Vec<u8> {
    let (format, body) = if hashed(data_key) {
        let keyed = KeyedHint {
            data_key: data_key.to_vec(),
            object: object.clone(),
        };
        (HINT_FORMAT_KEYED, postcard::to_allocvec(&keyed))
    } else {
        (HINT_FORMAT_OBJECT, postcard::to_allocvec(object))
    };
    let mut out = vec![format];
    out.extend(body.expect("stored records always encode"));
    out
}

/// Decodes the record under hint key suffix `suffix` (the key after the
/// home) into its data key and object; `None` if it is damaged.
pub(super) fn decode_hint(suffix: &[u8], record: &[u8]) -> Option<(Vec<u8>, Object)> {
    match record.split_first()? {
        (&HINT_FORMAT_OBJECT, body) if suffix.first() != Some(&HASHED) => {
            Some((suffix.to_vec(), postcard::from_bytes(body).ok()?))
        }
        (&HINT_FORMAT_KEYED, body) if suffix.first() == Some(&HASHED) => {
            let keyed: KeyedHint = postcard::from_bytes(body).ok()?;
            Some((keyed.data_key, keyed.object))
        }
        _ => None,
    }
}
