//! The writer driven through its handle over a real LMDB environment in a
//! temporary directory: batching, durability modes, reopen, replication and
//! membership.

use super::*;
use crate::storage::data_key;
use quire_shared::dvvset::VersionVector;
use quire_shared::Membership;
use quire_shared::{ActorId, ConflictPolicy, Object, StoreLimits, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

const FLUSH: std::time::Duration = std::time::Duration::from_millis(50);

/// Writer bounds with `batch` writes per commit and the default byte bound.
fn bounds(batch: usize) -> Bounds {
    Bounds {
        batch_writes_max: batch,
        queue_bytes_max: 256 << 20,
    }
}

fn open(dir: &std::path::Path) -> (Storage, crate::storage::Identity) {
    Storage::open(dir, 64 << 20).expect("storage opens")
}

/// A put of `value` under `data_key` with no context, into a siblings
/// store with default limits.
fn plain_put(data_key: Vec<u8>, value: Vec<u8>) -> WriteOp {
    WriteOp::Put {
        data_key,
        value: Value::bytes(value, 1),
        context: VersionVector::new(),
        hint: None,
        members: Vec::new(),
        policy: ConflictPolicy::Siblings,
        limits: StoreLimits::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, id) = open(dir.path());
    let (writer, thread) = Writer::start(storage.clone(), id.actor_id, bounds(256), FLUSH);
    let tasks: Vec<_> = (0..400u32)
        .map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(
                        WriteOp::Put {
                            data_key: data_key("s", 0, &i.to_be_bytes()),
                            value: Value::bytes(i.to_be_bytes().to_vec(), 1),
                            context: VersionVector::new(),
                            hint: None,
                            members: Vec::new(),
                            policy: ConflictPolicy::Siblings,
                            limits: StoreLimits::default(),
                        },
                        true,
                    )
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Ok(WriteOutcome::Stored(_))));
    }
    let (commits, writes) = writer.stats().snapshot();
    assert_eq!(writes, 400);
    assert!(
        commits < 400,
        "no batching: {commits} commits for 400 writes"
    );
    for i in 0..400u32 {
        let o = storage
            .get(&data_key("s", 0, &i.to_be_bytes()))
            .unwrap()
            .expect("acknowledged write is stored");
        assert_eq!(
            o.values().next().unwrap().data.as_deref(),
            Some(&i.to_be_bytes()[..])
        );
    }
    drop(writer);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_writes_skip_the_meta_page_fsync_that_sync_writes_wait_for() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, id) = open(dir.path());
    let (writer, thread) = Writer::start(storage.clone(), id.actor_id, bounds(8), FLUSH);
    let put = |i: u8| WriteOp::Put {
        data_key: data_key("s", 0, &[i]),
        value: Value::bytes(vec![i], 1),
        context: VersionVector::new(),
        hint: None,
        members: Vec::new(),
        policy: ConflictPolicy::Siblings,
        limits: StoreLimits::default(),
    };
    for i in 0..5 {
        writer.write(put(i), false).await.unwrap();
    }
    assert_eq!(writer.stats().syncs.load(Ordering::Relaxed), 0);
    for i in 5..8 {
        writer.write(put(i), true).await.unwrap();
    }
    assert_eq!(writer.stats().syncs.load(Ordering::Relaxed), 3);
    for i in 0..8 {
        assert!(storage.get(&data_key("s", 0, &[i])).unwrap().is_some());
    }
    drop(writer);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_and_data_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = data_key("s", 3, b"k");
    let first = {
        let (storage, id) = open(dir.path());
        let (writer, thread) = Writer::start(storage, id.actor_id, bounds(8), FLUSH);
        let op = WriteOp::Put {
            data_key: key.clone(),
            value: Value::bytes(b"v".to_vec(), 1),
            context: VersionVector::new(),
            hint: None,
            members: Vec::new(),
            policy: ConflictPolicy::Siblings,
            limits: StoreLimits::default(),
        };
        let Ok(WriteOutcome::Stored(o)) = writer.write(op, true).await else {
            panic!("put failed");
        };
        assert_eq!(
            o.entries()[0].actor,
            id.actor_id,
            "the node's actor assigns the dot"
        );
        drop(writer);
        thread.join().unwrap();
        id
    };
    let (storage, id) = open(dir.path());
    assert_eq!(id.node_id, first.node_id, "the node id is kept");
    assert_eq!(id.reset_secret, first.reset_secret);
    assert_ne!(
        id.actor_id, first.actor_id,
        "a new actor at every start, so no dot is ever issued twice"
    );
    assert_eq!(storage.get(&key).unwrap().unwrap().value_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_syncs_and_an_older_membership_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, id) = open(dir.path());
    let (writer, _thread) = Writer::start(storage.clone(), id.actor_id, bounds(8), FLUSH);
    let key = data_key("s", 0, b"k");
    let mut remote = Object::new();
    remote.event(ActorId(7), Value::bytes(b"remote".to_vec(), 1));
    writer
        .write(
            WriteOp::Put {
                data_key: key.clone(),
                value: Value::bytes(b"local".to_vec(), 1),
                context: VersionVector::new(),
                hint: None,
                members: Vec::new(),
                policy: ConflictPolicy::Siblings,
                limits: StoreLimits::default(),
            },
            true,
        )
        .await
        .unwrap();
    writer
        .write(
            WriteOp::Replicate {
                data_key: key.clone(),
                object: remote,
                hint: None,
                members: Vec::new(),
                policy: ConflictPolicy::Siblings,
                limits: StoreLimits::default(),
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(storage.get(&key).unwrap().unwrap().value_count(), 2);

    let member = |id| quire_shared::Member {
        id,
        addr: format!("127.0.0.1:{}", id.get()),
        zone: "z".into(),
        weight: 1,
    };
    let mut newer = Membership::new(
        quire_shared::ClusterId(1),
        16,
        vec![member(quire_shared::NodeId(1))],
        Vec::new(),
    )
    .unwrap();
    newer.epoch = 5;
    let mut older = newer.clone();
    older.epoch = 4;
    writer
        .write(
            WriteOp::Membership {
                doc: newer,
                base: None,
                signer: None,
            },
            true,
        )
        .await
        .unwrap();
    let Ok(WriteOutcome::Membership { held, .. }) = writer
        .write(
            WriteOp::Membership {
                doc: older,
                base: None,
                signer: None,
            },
            true,
        )
        .await
    else {
        panic!("membership write failed");
    };
    assert_eq!(held.epoch, 5);
    assert_eq!(storage.membership().unwrap().unwrap().epoch, 5);
}

/// A failed fsync, on the write path or in the flusher, stops the writer:
/// every later write is refused and nothing more is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_refuses_every_later_write() {
    for durable in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (storage, id) = open(dir.path());
        let (writer, _thread) = Writer::start(storage.clone(), id.actor_id, bounds(8), FLUSH);
        let put = |i: u8| plain_put(data_key("s", 0, &[i]), vec![i]);
        storage.inject_sync_failure();
        let first = writer.write(put(1), durable).await;
        if durable {
            assert!(
                matches!(first, Err(StorageError::FailStopped(_))),
                "{first:?}"
            );
        } else {
            // Acknowledged before the flush, as buffered writes are; the
            // flusher's failure trips the stop.
            assert!(first.is_ok());
        }
        let reason = tokio::time::timeout(Duration::from_secs(5), writer.fail_stop().failed())
            .await
            .expect("the writer fail-stops");
        assert!(!reason.is_empty());
        let later = writer.write(put(2), false).await;
        assert!(
            matches!(later, Err(StorageError::FailStopped(_))),
            "{later:?}"
        );
        assert!(storage.get(&data_key("s", 0, &[2])).unwrap().is_none());
    }
}

#[test]
fn a_write_refused_for_its_limits_stores_nothing_and_spares_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, id) = open(dir.path());
    let limits = StoreLimits {
        siblings_warn: 1,
        siblings_max: 2,
        ..StoreLimits::default()
    };
    let blind = |key: &[u8], v: u8| WriteOp::Put {
        data_key: data_key("s", 0, key),
        value: Value::bytes(vec![v], 1),
        context: VersionVector::new(),
        hint: None,
        members: Vec::new(),
        policy: ConflictPolicy::Siblings,
        limits,
    };
    let mut third = Object::new();
    third.event(ActorId(7), Value::bytes(b"third".to_vec(), 1));
    let ops = vec![
        blind(b"full", 1),
        blind(b"full", 2),
        blind(b"full", 3),
        blind(b"other", 4),
        WriteOp::Replicate {
            data_key: data_key("s", 0, b"full"),
            object: third,
            hint: None,
            members: Vec::new(),
            policy: ConflictPolicy::Siblings,
            limits,
        },
    ];
    let mut actors = Actors {
        node: id.actor_id,
        hint: ActorId(fresh_id()),
    };
    let fail_stop = FailStop::default();
    let flusher = Flusher::start(storage.clone(), FLUSH, fail_stop.clone());
    let stats = WriterStats::default();
    let mut answers = Vec::new();
    let mut batch: Vec<Job> = ops
        .into_iter()
        .map(|op| {
            let (tx, rx) = oneshot::channel();
            answers.push(rx);
            (op, true, tx)
        })
        .collect();
    let context = BatchContext {
        storage: &storage,
        stats: &stats,
        flusher: &flusher,
        fail_stop: &fail_stop,
    };
    assert!(commit_batch(&context, &mut actors, &mut batch));
    flusher.stop();
    let outcomes: Vec<_> = answers
        .into_iter()
        .map(|mut rx| rx.try_recv().expect("answered").expect("no storage error"))
        .collect();
    assert!(matches!(outcomes[0], WriteOutcome::Stored(_)));
    assert!(matches!(outcomes[1], WriteOutcome::Stored(_)));
    let WriteOutcome::Refused { code, message } = &outcomes[2] else {
        panic!("expected a refusal, got {:?}", outcomes[2]);
    };
    assert_eq!(*code, quire_shared::wire::ErrorCode::TooManySiblings);
    assert!(
        message.contains("\"full\"") && message.contains("context"),
        "{message}"
    );
    assert!(
        matches!(outcomes[3], WriteOutcome::Stored(_)),
        "the batch goes on"
    );
    // A replica takes a merge past the sibling bound: each sibling was a
    // coordinated write that met it, and refusing the merge would keep
    // replicas apart.
    let WriteOutcome::Stored(merged) = &outcomes[4] else {
        panic!("a merge is taken, got {:?}", outcomes[4]);
    };
    assert_eq!(merged.value_count(), 3);
    let full = storage.get(&data_key("s", 0, b"full")).unwrap().unwrap();
    assert_eq!(full.value_count(), 3, "the refused put stored nothing");
    assert!(storage.get(&data_key("s", 0, b"other")).unwrap().is_some());
}

/// Applies `op` alone in a batch with `actors`, returning its outcome.
fn apply_one(storage: &Storage, actors: &mut Actors, op: WriteOp) -> WriteOutcome {
    let fail_stop = FailStop::default();
    let flusher = Flusher::start(storage.clone(), FLUSH, fail_stop.clone());
    let (tx, mut rx) = oneshot::channel();
    let mut batch: Vec<Job> = vec![(op, false, tx)];
    let stats = WriterStats::default();
    let context = BatchContext {
        storage,
        stats: &stats,
        flusher: &flusher,
        fail_stop: &fail_stop,
    };
    commit_batch(&context, actors, &mut batch);
    flusher.stop();
    rx.try_recv().expect("answered").expect("no storage error")
}

#[test]
fn stand_in_dots_held_in_a_hint_copy_count_as_issued_and_no_others_do() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, id) = open(dir.path());
    let mut actors = Actors {
        node: id.actor_id,
        hint: ActorId(fresh_id()),
    };
    let (home, key) = (quire_shared::NodeId(42), data_key("s", 0, b"k"));
    let put = |context: VersionVector, hint| WriteOp::Put {
        data_key: key.clone(),
        value: Value::bytes(b"v".to_vec(), 1),
        context,
        hint,
        members: vec![home],
        policy: ConflictPolicy::Siblings,
        limits: StoreLimits::default(),
    };
    let WriteOutcome::Stored(hinted) =
        apply_one(&storage, &mut actors, put(VersionVector::new(), Some(home)))
    else {
        panic!("stand-in put refused");
    };
    assert_eq!(hinted.counter(actors.hint), 1);

    // The stand-in dot lives only in the hint copy: a home put or a
    // replication into the data copy that carries it is taken.
    let ok = apply_one(&storage, &mut actors, put(hinted.join(), None));
    assert!(matches!(ok, WriteOutcome::Stored(_)), "{ok:?}");
    let replicate = WriteOp::Replicate {
        data_key: key.clone(),
        object: hinted.clone(),
        hint: None,
        members: vec![home],
        policy: ConflictPolicy::Siblings,
        limits: StoreLimits::default(),
    };
    assert!(matches!(
        apply_one(&storage, &mut actors, replicate),
        WriteOutcome::Stored(_)
    ));

    // A dot past it, of either actor, is refused.
    let hint_actor = actors.hint;
    for (actor, op_hint) in [
        (hint_actor, None),
        (hint_actor, Some(home)),
        (actors.node, Some(home)),
    ] {
        let claim = VersionVector::from_pairs([(actor, 5)]);
        let outcome = apply_one(&storage, &mut actors, put(claim, op_hint));
        assert!(
            matches!(&outcome, WriteOutcome::Refused { code, .. } if *code == quire_shared::wire::ErrorCode::InvalidContext),
            "{outcome:?}"
        );
    }
}

/// The writer saves the Merkle segments when it stops cleanly, and not
/// after a failed fsync: the next open then rebuilds them from the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_saves_the_segments_at_a_clean_stop_only() {
    for fail in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let (storage, id) = open(dir.path());
            let (writer, thread) = Writer::start(storage.clone(), id.actor_id, bounds(8), FLUSH);
            let put = |key: &[u8]| plain_put(data_key("s", 3, key), b"v".to_vec());
            assert!(writer.write(put(b"k"), true).await.is_ok());
            if fail {
                storage.inject_sync_failure();
                let refused = writer.write(put(b"j"), true).await;
                assert!(matches!(refused, Err(StorageError::FailStopped(_))));
                assert!(writer.fail_stop().reason().is_some());
            }
            drop(writer);
            thread.join().unwrap();
        }
        let (storage, _) = open(dir.path());
        let want = if fail {
            crate::storage::MerkleSource::Rebuilt
        } else {
            crate::storage::MerkleSource::Saved
        };
        assert_eq!(storage.merkle_source(), want, "fail: {fail}");
        assert_ne!(
            storage.merkle_segments("s", 3).unwrap(),
            quire_shared::merkle::Segments::default(),
            "the key is in its segment either way"
        );
    }
}
