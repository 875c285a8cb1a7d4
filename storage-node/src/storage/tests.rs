//! Storage formats: records written by earlier binaries still decode.

use super::*;
use quire_shared::{ClusterId, ConflictPolicy, Durability, Member, StoreConfig, StoreLimits};

/// A membership document exactly as protocol-1 nodes stored it (format
/// byte 1, then postcard), captured from that code: epoch 7, cluster
/// `c1`, members `1111` and `2222`, stores `carts` (n=1, buffered, lww)
/// and `default` (n=2, r=1, w=2).
const MEMBERSHIP_V1_HEX: &str = "01c10107040291220e3132372e302e302e313a37343031056c6f63616c01a2440e3132372e302e302e313a37343032056c6f63616c020205636172747301010101010764656661756c740201020000049122a2449122a244";

fn expected_v1_document() -> Membership {
    let member = |id, port, weight| Member {
        id: NodeId(id),
        addr: format!("127.0.0.1:{port}"),
        zone: "local".into(),
        weight,
    };
    let store = |name: &str, n, r, w, durability, policy| StoreConfig {
        name: name.into(),
        n,
        r,
        w,
        durability,
        policy,
        limits: StoreLimits::default(),
    };
    let mut doc = Membership::new(
        ClusterId(0xc1),
        4,
        vec![member(0x1111, 7401, 1), member(0x2222, 7402, 2)],
        vec![
            store(
                "default",
                2,
                1,
                2,
                Durability::Sync,
                ConflictPolicy::Siblings,
            ),
            store("carts", 1, 1, 1, Durability::Buffered, ConflictPolicy::Lww),
        ],
    )
    .expect("valid");
    doc.epoch = 7;
    // Round robin, as the claim of those binaries laid the ring out.
    doc.owners = [0x1111, 0x2222, 0x1111, 0x2222].map(NodeId).to_vec();
    doc
}

#[test]
fn a_membership_document_of_format_1_decodes_and_is_rewritten_in_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
        let mut txn = storage.env.begin_rw_txn().unwrap();
        let record = hex::decode(MEMBERSHIP_V1_HEX).unwrap();
        txn.put(storage.meta, &META_MEMBERSHIP, &record, WriteFlags::empty())
            .unwrap();
        txn.commit().unwrap();
    }
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    let doc = storage
        .membership()
        .unwrap()
        .expect("the old document is kept");
    assert_eq!(doc, expected_v1_document());

    let mut newer = doc.clone();
    newer.epoch += 1;
    newer.stores[0].limits.siblings_max = 7;
    let mut txn = storage.begin_write().unwrap();
    txn.put_membership(&newer).unwrap();
    txn.commit().unwrap();
    drop(storage);
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(storage.membership().unwrap(), Some(newer));
}

/// A membership document as protocol-2 and -3 nodes stored it (format
/// byte 2), captured from that code: the format-1 document at epoch 8,
/// with store `carts` limited to 5 / 7 siblings and 4096 bytes.
const MEMBERSHIP_V2_HEX: &str = "02c10108040291220e3132372e302e302e313a37343031056c6f63616c01a2440e3132372e302e302e313a37343032056c6f63616c02020563617274730101010101050780200764656661756c740201020000196480e0ff07049122a2449122a244";

#[test]
fn a_membership_document_of_format_2_keeps_its_limits_and_gets_the_default_grace() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
        let mut txn = storage.env.begin_rw_txn().unwrap();
        let record = hex::decode(MEMBERSHIP_V2_HEX).unwrap();
        txn.put(storage.meta, &META_MEMBERSHIP, &record, WriteFlags::empty())
            .unwrap();
        txn.commit().unwrap();
    }
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    let doc = storage
        .membership()
        .unwrap()
        .expect("the old document is kept");
    let mut expected = expected_v1_document();
    expected.epoch = 8;
    expected.stores[0].limits = StoreLimits {
        siblings_warn: 5,
        siblings_max: 7,
        object_bytes_max: 4096,
        tombstone_grace_ms: quire_shared::limits::TOMBSTONE_GRACE_MS_DEFAULT,
    };
    assert_eq!(doc, expected);

    let mut newer = doc.clone();
    newer.epoch += 1;
    newer.stores[1].limits.tombstone_grace_ms = 250;
    let mut txn = storage.begin_write().unwrap();
    txn.put_membership(&newer).unwrap();
    txn.commit().unwrap();
    drop(storage);
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(storage.membership().unwrap(), Some(newer));
}

fn object_of(bytes: usize, tag: u8) -> Object {
    let mut o = Object::new();
    o.event(
        quire_shared::ActorId(1),
        quire_shared::Value::bytes(vec![tag; bytes], 1),
    );
    o
}

/// Every page of the hints held for `home`, following the cursors.
fn all_pages(storage: &Storage, home: NodeId, limit: usize, bytes_max: usize) -> Vec<HintsPage> {
    let mut pages = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = storage
            .hints_page(home, after.as_deref(), limit, bytes_max)
            .unwrap();
        let next = page.next.clone();
        pages.push(page);
        match next {
            Some(cursor) => after = Some(cursor),
            None => return pages,
        }
    }
}

#[test]
fn hints_of_the_longest_store_names_and_keys_are_kept_apart_and_paged_with_their_keys() {
    use quire_shared::limits::{KEY_BYTES_MAX, STORE_NAME_BYTES_MAX};
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    let store = "s".repeat(STORE_NAME_BYTES_MAX);
    let long = |last: u8| {
        let mut key = vec![b'k'; KEY_BYTES_MAX];
        key[KEY_BYTES_MAX - 1] = last;
        data_key(&store, u32::MAX, &key)
    };
    let keys = [long(1), long(2), data_key("s", 0, b"short")];
    let (home, other) = (NodeId(7), NodeId(8));
    let mut txn = storage.begin_write().unwrap();
    for (i, dk) in keys.iter().enumerate() {
        txn.put_hint(home, dk, &object_of(10, i as u8)).unwrap();
    }
    txn.put_hint(other, &keys[0], &object_of(10, 9)).unwrap();
    txn.commit().unwrap();

    for (i, dk) in keys.iter().enumerate() {
        let held = storage.get_hints(&[home], dk).unwrap();
        assert_eq!(held, Some(object_of(10, i as u8)), "hint {i} is its own");
    }
    let page = storage.hints_page(home, None, 100, usize::MAX).unwrap();
    assert_eq!(page.next, None);
    let mut paged: Vec<_> = page.hints.iter().map(|(dk, _)| dk.clone()).collect();
    paged.sort();
    let mut expected = keys.to_vec();
    expected.sort();
    assert_eq!(paged, expected, "pages give the real data keys");

    // One at a time, following the cursors, nothing is lost or repeated.
    let pages = all_pages(&storage, home, 1, usize::MAX);
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|p| p.hints.len() == 1));

    let mut txn = storage.begin_write().unwrap();
    txn.del_hint(home, &keys[0]).unwrap();
    txn.commit().unwrap();
    assert_eq!(storage.get_hints(&[home], &keys[0]).unwrap(), None);
    assert!(storage.get_hints(&[other], &keys[0]).unwrap().is_some());
}

#[test]
fn hint_pages_are_bounded_by_bytes_and_hold_at_least_one_hint() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = Storage::open(dir.path(), 64 << 20).unwrap();
    let home = NodeId(7);
    let mut txn = storage.begin_write().unwrap();
    for i in 0..10u8 {
        txn.put_hint(home, &data_key("s", 0, &[i]), &object_of(100_000, i))
            .unwrap();
    }
    txn.commit().unwrap();
    let pages = all_pages(&storage, home, 1000, 350_000);
    let sizes: Vec<usize> = pages.iter().map(|p| p.hints.len()).collect();
    assert_eq!(sizes, vec![3, 3, 3, 1]);
    // A budget below one hint still moves one per page.
    let pages = all_pages(&storage, home, 1000, 10);
    assert_eq!(pages.len(), 10);
    assert!(pages.iter().all(|p| p.hints.len() == 1));
}

/// Stores `record` as the membership document, then opens the node again
/// and returns what it reads.
fn reopened_with_membership_record(record: &[u8]) -> Option<Membership> {
    let dir = tempfile::tempdir().unwrap();
    {
        let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
        let mut txn = storage.env.begin_rw_txn().unwrap();
        txn.put(storage.meta, &META_MEMBERSHIP, &record, WriteFlags::empty())
            .unwrap();
        txn.commit().unwrap();
    }
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    storage.membership().unwrap()
}

/// A membership document as protocol-4 and -5 nodes stored it (format
/// byte 3): the current encoding of a document with nothing pending and
/// no grants, without its last two bytes (the `None` of `pending` and the
/// empty grants, which format 3 lacked).
#[test]
fn a_membership_document_of_format_3_decodes_with_nothing_pending() {
    let mut doc = expected_v1_document();
    doc.epoch = 9;
    let current = postcard::to_allocvec(&doc).unwrap();
    assert_eq!(
        current[current.len() - 2..],
        [0, 0],
        "no pending, no grants"
    );
    let mut record = vec![3u8];
    record.extend_from_slice(&current[..current.len() - 2]);
    assert_eq!(reopened_with_membership_record(&record), Some(doc));
}

/// A membership document as protocol-6 nodes stored it (format byte 4):
/// pending owners, and no grants (the current encoding without its last
/// byte, the empty grant list).
#[test]
fn a_membership_document_of_format_4_keeps_its_pending_owners_and_has_no_grants() {
    let mut doc = expected_v1_document();
    doc.epoch = 10;
    doc.pending = Some(quire_shared::Pending {
        since: 10,
        owners: doc.owners.clone(),
    });
    let current = postcard::to_allocvec(&doc).unwrap();
    assert_eq!(current.last(), Some(&0), "no grants");
    let mut record = vec![4u8];
    record.extend_from_slice(&current[..current.len() - 1]);
    assert_eq!(reopened_with_membership_record(&record), Some(doc));
}

#[test]
fn after_a_failed_fsync_no_commit_is_written_and_every_sync_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = Storage::open(dir.path(), 16 << 20).unwrap();
    let key = data_key("s", 0, b"k");
    let mut txn = storage.begin_write().unwrap();
    txn.put_object(&key, &object_of(8, 1)).unwrap();
    txn.commit().unwrap();
    storage.sync().unwrap();

    storage.inject_sync_failure();
    let failed = storage.sync().expect_err("the injected failure");
    assert!(failed.is_write_back_failure(), "{failed}");
    // A commit after it is refused before LMDB writes anything: its own
    // fsync could report success for pages the failed one lost.
    let mut txn = storage.begin_write().unwrap();
    txn.put_object(&key, &object_of(8, 2)).unwrap();
    let refused = txn.commit().expect_err("a commit after a failed fsync");
    assert!(matches!(refused, StorageError::FailStopped(_)), "{refused}");
    assert!(refused.is_write_back_failure());
    assert_eq!(storage.get(&key).unwrap(), Some(object_of(8, 1)));
    assert!(storage.sync().is_err(), "a failed fsync is not forgotten");
}
