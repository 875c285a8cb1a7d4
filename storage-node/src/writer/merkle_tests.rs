//! The Merkle segments kept current at every commit equal a rebuild
//! from the data, after any sequence of the writer's operations: puts,
//! replications, stand-in puts and replications (hints, which are not the
//! node's data and must leave the segments alone), hint drops and
//! conditional deletes.

use super::apply::{apply, Actors};
use super::WriteOp;
use crate::storage::{data_key, split_data_key, MerkleSource, PartitionSummary, Storage};
use proptest::prelude::*;
use quire_shared::merkle::Segments;
use quire_shared::reap::only_tombstones;
use quire_shared::replica;
use quire_shared::{ActorId, ConflictPolicy, NodeId, Object, StoreLimits, Value, VersionVector};
use std::collections::BTreeMap;

/// One step of a history, over a few keys so that they collide often.
#[derive(Clone, Debug)]
enum Step {
    /// A coordinated put with the stored context (or none).
    Put {
        key: u8,
        byte: u8,
        with_context: bool,
    },
    /// A replicated object made by a foreign actor.
    Replicate { key: u8, actor: u8, byte: u8 },
    /// A stand-in put kept as a hint.
    HintPut { key: u8, byte: u8 },
    /// Hints for the home dropped (as after delivery).
    DropHints { key: u8 },
    /// A conditional delete, of what is stored or of a stale copy.
    DeleteIfEqual { key: u8, stale: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..12u8, any::<u8>(), any::<bool>()).prop_map(|(key, byte, with_context)| Step::Put {
            key,
            byte,
            with_context
        }),
        (0..12u8, 1..4u8, any::<u8>()).prop_map(|(key, actor, byte)| Step::Replicate {
            key,
            actor,
            byte
        }),
        (0..12u8, any::<u8>()).prop_map(|(key, byte)| Step::HintPut { key, byte }),
        (0..12u8).prop_map(|key| Step::DropHints { key }),
        (0..12u8, any::<bool>()).prop_map(|(key, stale)| Step::DeleteIfEqual { key, stale }),
    ]
}

/// Keys spread over two stores and two partitions.
fn key_of(k: u8) -> Vec<u8> {
    let store = if k % 2 == 0 { "s" } else { "t" };
    data_key(store, u32::from(k % 3 == 0), &[b'k', k])
}

const HOME: NodeId = NodeId(9);

fn put(dk: Vec<u8>, byte: u8, context: VersionVector, hint: Option<NodeId>) -> WriteOp {
    WriteOp::Put {
        data_key: dk,
        value: if byte < 40 {
            Value::tombstone(u64::from(byte))
        } else {
            Value::bytes(vec![byte], u64::from(byte))
        },
        context,
        hint,
        members: vec![HOME],
        policy: ConflictPolicy::Siblings,
        limits: StoreLimits::default(),
    }
}

fn run(storage: &Storage, steps: &[Step]) {
    let mut actors = Actors {
        node: ActorId(1_000),
        hint: ActorId(2_000),
    };
    for chunk in steps.chunks(3) {
        // Several writes per transaction, as the writer batches them.
        let mut txn = storage.begin_write().unwrap();
        for s in chunk {
            let op = match s.clone() {
                Step::Put {
                    key,
                    byte,
                    with_context,
                } => {
                    let dk = key_of(key);
                    let context = match with_context {
                        true => txn.get_object(&dk).unwrap().unwrap_or_default().join(),
                        false => VersionVector::new(),
                    };
                    put(dk, byte, context, None)
                }
                Step::Replicate { key, actor, byte } => WriteOp::Replicate {
                    data_key: key_of(key),
                    object: replica::coordinate_put(
                        &Object::default(),
                        &VersionVector::new(),
                        ActorId(u64::from(actor)),
                        Value::bytes(vec![byte], 1),
                        ConflictPolicy::Siblings,
                    ),
                    hint: None,
                    members: vec![HOME],
                    policy: ConflictPolicy::Siblings,
                    limits: StoreLimits::default(),
                },
                Step::HintPut { key, byte } => {
                    put(key_of(key), byte, VersionVector::new(), Some(HOME))
                }
                Step::DropHints { key } => {
                    let dk = key_of(key);
                    let clock = txn.get_hint(HOME, &dk).unwrap().unwrap_or_default().join();
                    WriteOp::DropHints {
                        target: HOME,
                        items: vec![(dk, clock)],
                    }
                }
                Step::DeleteIfEqual { key, stale } => {
                    let dk = key_of(key);
                    let mut object = txn.get_object(&dk).unwrap().unwrap_or_default();
                    if stale {
                        object = Object::default();
                    }
                    WriteOp::DeleteIfEqual {
                        data_key: dk,
                        object,
                    }
                }
            };
            apply(&mut txn, &mut actors, &op).unwrap();
        }
        txn.commit().unwrap();
    }
}

/// Every (store, partition) the keys may land in.
fn partitions() -> Vec<(&'static str, u32)> {
    vec![("s", 0), ("s", 1), ("t", 0), ("t", 1)]
}

/// The segments and tombstone count of every partition, recomputed from
/// the stored data.
fn from_data(storage: &Storage) -> BTreeMap<(String, u32), PartitionSummary> {
    let mut out = BTreeMap::new();
    for (store, p) in partitions() {
        let mut entries = Vec::new();
        for k in 0..12u8 {
            let dk = key_of(k);
            let (s, q, key) = split_data_key(&dk).unwrap();
            if (s.as_str(), q) == (store, p) {
                if let Some(o) = storage.get(&dk).unwrap() {
                    entries.push((key, o));
                }
            }
        }
        let segments = Segments::rebuild(store, entries.iter().map(|(k, o)| (k.as_slice(), o)));
        let tombstones = entries.iter().filter(|(_, o)| only_tombstones(o)).count() as u64;
        out.insert(
            (store.to_string(), p),
            PartitionSummary {
                segments,
                tombstones,
            },
        );
    }
    out
}

fn held(storage: &Storage) -> BTreeMap<(String, u32), PartitionSummary> {
    partitions()
        .into_iter()
        .map(|(s, p)| ((s.to_string(), p), storage.partition_summary(s, p).unwrap()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn incremental_segments_equal_a_rebuild(steps in prop::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
        run(&storage, &steps);
        let incremental = held(&storage);
        prop_assert_eq!(&incremental, &from_data(&storage));
        storage.rebuild_merkle().unwrap();
        prop_assert_eq!(&incremental, &held(&storage));
    }
}

#[test]
fn a_data_directory_without_segments_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let steps: Vec<Step> = (0..12u8)
        .map(|key| Step::Put {
            key,
            // Every third key a tombstone, so the counts are rebuilt too.
            byte: if key % 3 == 0 { key } else { 100 + key },
            with_context: false,
        })
        .collect();
    let before = {
        let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
        run(&storage, &steps);
        let before = held(&storage);
        // As a binary from before the `merkle` database left it.
        storage.forget_merkle_for_tests();
        assert!(held(&storage)
            .values()
            .all(|s| *s == PartitionSummary::default()));
        before
    };
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(held(&storage), before);
    assert_ne!(before[&("s".to_string(), 0)], PartitionSummary::default());
    let tombstones: u64 = before.values().map(|s| s.tombstones).sum();
    assert_eq!(tombstones, 4, "keys 0, 3, 6 and 9 are tombstones");
}

/// Twelve puts, every third key a tombstone; `byte` varies the values.
fn puts(byte: u8) -> Vec<Step> {
    (0..12u8)
        .map(|key| Step::Put {
            key,
            byte: if key % 3 == 0 { key } else { byte + key },
            with_context: false,
        })
        .collect()
}

#[test]
fn segments_saved_at_a_clean_stop_are_read_back_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
        assert_eq!(storage.merkle_source(), MerkleSource::Rebuilt);
        run(&storage, &puts(100));
        storage.save_merkle().unwrap();
        held(&storage)
    };
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(storage.merkle_source(), MerkleSource::Saved);
    assert_eq!(held(&storage), before);
    assert_eq!(held(&storage), from_data(&storage));
    assert_ne!(before[&("s".to_string(), 0)], PartitionSummary::default());
}

/// The open that reads saved segments removes their marker before any
/// write: after a crash (no save), the next open rebuilds from the data
/// and does not take the older saved copy for current.
#[test]
fn after_a_stop_without_a_save_the_next_open_rebuilds_over_an_older_saved_copy() {
    let dir = tempfile::tempdir().unwrap();
    let saved = {
        let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
        run(&storage, &puts(100));
        storage.save_merkle().unwrap();
        held(&storage)
    };
    let changed = {
        let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
        assert_eq!(storage.merkle_source(), MerkleSource::Saved);
        run(&storage, &puts(150));
        // Dropped without a save: a crash, as far as the segments go.
        held(&storage)
    };
    assert_ne!(changed, saved, "the second run changed the data");
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(storage.merkle_source(), MerkleSource::Rebuilt);
    assert_eq!(held(&storage), changed);
    assert_eq!(held(&storage), from_data(&storage));
}

/// A directory an older node left (segments kept in every transaction,
/// marker format 2) is read as saved.
#[test]
fn an_older_nodes_segments_are_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
        run(&storage, &puts(100));
        storage.save_merkle().unwrap();
        storage.set_merkle_format_for_tests(2);
        held(&storage)
    };
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(storage.merkle_source(), MerkleSource::Saved);
    assert_eq!(held(&storage), before);
}

/// A marker of a format this binary does not know (a newer binary's) is
/// not trusted, and is removed: left standing, the newer binary would
/// trust its own copy after this one wrote data.
#[test]
fn a_marker_of_an_unknown_format_is_removed_and_the_segments_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
        run(&storage, &puts(100));
        storage.save_merkle().unwrap();
        storage.set_merkle_format_for_tests(9);
    }
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(storage.merkle_source(), MerkleSource::Rebuilt);
    assert_eq!(storage.merkle_marker_for_tests(), None);
    assert_eq!(held(&storage), from_data(&storage));
}

/// Emptying a partition takes it out of memory: a partition dropped after
/// a move costs nothing, and reads as one never held.
#[test]
fn an_emptied_partition_leaves_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    run(
        &storage,
        &[Step::Put {
            key: 2,
            byte: 100,
            with_context: false,
        }],
    );
    assert_eq!(storage.merkle_partitions_for_tests(), 1);
    run(
        &storage,
        &[Step::DeleteIfEqual {
            key: 2,
            stale: false,
        }],
    );
    assert_eq!(storage.get(&key_of(2)).unwrap(), None);
    assert_eq!(storage.merkle_partitions_for_tests(), 0);
}
