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
