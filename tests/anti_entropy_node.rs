//! The node's anti-entropy requests over a real connection: typed errors
//! for bad input, digests that follow the data, scans, totals and the
//! conditional delete.

mod common;

use common::TestCluster;
use quire::shared::merkle::{entry_hash, Segments, SEGMENTS};
use quire::shared::wire::{
    ErrorCode, KeyDigest, Listing, PartitionDigest, Reply, Request, Response,
};
use quire::shared::{Object, Value, VersionVector};
use quire_client::transport::Transport;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

async fn ask(t: &Transport, addr: &str, request: Request) -> Result<Reply, ErrorCode> {
    match t.call(addr, &request, T).await.expect("the node answers") {
        Response { result: Ok(r), .. } => Ok(r),
        Response { result: Err(e), .. } => Err(e.code),
    }
}

fn root(store: &str, partition: u32) -> Request {
    Request::MerkleRoot {
        store: store.into(),
        partition,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_scans_totals_and_conditional_deletes_follow_the_data() {
    let cluster = TestCluster::start(1).await;
    let t = cluster.transport();
    let addr = cluster.membership.members[0].addr.clone();
    let partitions = cluster.membership.partitions;
    let key = b"apple".to_vec();
    let partition = cluster.membership.partition_of("default", &key);

    // Bad input: typed, and nothing stored changes.
    assert_eq!(
        ask(&t, &addr, root("nope", 0)).await,
        Err(ErrorCode::UnknownStore)
    );
    assert_eq!(
        ask(&t, &addr, root("default", partitions)).await,
        Err(ErrorCode::PartitionOutOfRange)
    );
    let segments = |first, count, group| Request::MerkleSegments {
        store: "default".into(),
        partition,
        first,
        count,
        group,
    };
    assert_eq!(
        ask(&t, &addr, segments(1000, 100, 1)).await,
        Err(ErrorCode::SegmentOutOfRange)
    );
    assert_eq!(
        ask(&t, &addr, segments(0, 32, 0)).await,
        Err(ErrorCode::SegmentOutOfRange)
    );
    let listing = |segments: Vec<u16>, listing, after| Request::ScanSegment {
        store: "default".into(),
        partition,
        segments,
        tombstones_only: false,
        listing,
        after,
        bytes_max: None,
    };
    let scan = |segments, after| listing(segments, Listing::Objects, after);
    assert_eq!(
        ask(&t, &addr, scan(vec![SEGMENTS], None)).await,
        Err(ErrorCode::SegmentOutOfRange)
    );
    assert_eq!(
        ask(&t, &addr, scan(vec![], Some(vec![]))).await,
        Err(ErrorCode::BadCursor)
    );
    assert_eq!(
        ask(&t, &addr, scan(vec![], Some(vec![1; 481]))).await,
        Err(ErrorCode::BadCursor)
    );

    // A node never drops a partition it is a replica of.
    let drop = |store: &str, partition| Request::DropPartition {
        store: store.into(),
        partition,
        root: [0; 16],
    };
    assert_eq!(
        ask(&t, &addr, drop("default", partition)).await,
        Err(ErrorCode::StillReplica)
    );
    assert_eq!(
        ask(&t, &addr, drop("default", partitions)).await,
        Err(ErrorCode::PartitionOutOfRange)
    );
    assert_eq!(
        ask(&t, &addr, drop("nope", 0)).await,
        Err(ErrorCode::UnknownStore)
    );
    // Transfer records: the same checks.
    let mark = Request::TransferPage {
        store: "default".into(),
        partition: partitions,
        change: 1,
        entries: Vec::new(),
        progress: Some(Default::default()),
    };
    assert_eq!(
        ask(&t, &addr, mark).await,
        Err(ErrorCode::PartitionOutOfRange)
    );
    let state = Request::TransferState {
        store: "nope".into(),
        partition: 0,
    };
    assert_eq!(ask(&t, &addr, state).await, Err(ErrorCode::UnknownStore));

    let empty = PartitionDigest {
        root: Segments::default().root(),
        tombstones: 0,
    };
    assert_eq!(
        ask(&t, &addr, root("default", partition)).await,
        Ok(Reply::MerkleRoot(empty))
    );
    let put = Request::Put {
        store: "default".into(),
        key: key.clone(),
        value: Value::tombstone(1),
        context: VersionVector::new(),
        hint: None,
    };
    let Ok(Reply::Stored(stored)) = ask(&t, &addr, put).await else {
        panic!("put stored");
    };
    let expected = Segments::rebuild("default", [(key.as_slice(), &stored)]);
    assert_eq!(
        ask(&t, &addr, root("default", partition)).await,
        Ok(Reply::MerkleRoot(PartitionDigest {
            root: expected.root(),
            tombstones: 1,
        }))
    );
    assert_eq!(
        ask(&t, &addr, segments(0, SEGMENTS, 1)).await,
        Ok(Reply::MerkleSegments(
            expected.0.iter().map(|s| s.0).collect()
        ))
    );
    let Ok(Reply::Segment { entries, next }) = ask(&t, &addr, scan(vec![], None)).await else {
        panic!("scan answered");
    };
    assert_eq!((entries.len(), next), (1, None));
    assert_eq!(entries[0].object, stored);
    // The digest listing names the key with the hash its segment holds.
    assert_eq!(
        ask(&t, &addr, listing(vec![], Listing::Digests, None)).await,
        Ok(Reply::SegmentDigests {
            keys: vec![KeyDigest {
                key: key.clone(),
                digest: entry_hash(&key, &stored).0,
            }],
            next: None,
        })
    );

    let Ok(Reply::Stats(stats)) = ask(&t, &addr, Request::Stats).await else {
        panic!("stats answered");
    };
    assert_eq!(
        (stats.stores[0].objects, stats.stores[0].tombstones),
        (1, 1)
    );
    assert!(stats.merkle_exchanges >= 2);

    // A stale object does not delete; the held one does, and the digests
    // are those of an empty partition again.
    let delete = |object: Object| Request::DeleteIfEqual {
        store: "default".into(),
        key: key.clone(),
        object,
    };
    assert_eq!(
        ask(&t, &addr, delete(Object::default())).await,
        Ok(Reply::Deleted(false))
    );
    assert_eq!(
        ask(&t, &addr, delete(stored)).await,
        Ok(Reply::Deleted(true))
    );
    assert_eq!(
        ask(&t, &addr, root("default", partition)).await,
        Ok(Reply::MerkleRoot(empty))
    );
    let Ok(Reply::Stats(stats)) = ask(&t, &addr, Request::Stats).await else {
        panic!("stats answered");
    };
    assert!(stats.stores.iter().all(|s| s.objects == 0));
}

/// A scan's page holds no more than the bytes its asker names (a paced
/// transfer's small pages), at least one key, and the pages together
/// every key once; without a bound the frame limit alone applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_page_holds_no_more_than_the_bytes_asked_for() {
    let cluster = TestCluster::start(1).await;
    let t = cluster.transport();
    let addr = cluster.membership.members[0].addr.clone();
    let partition = 0;
    let mut keys: Vec<Vec<u8>> = (0u32..)
        .map(|i| format!("k{i}").into_bytes())
        .filter(|k| cluster.membership.partition_of("default", k) == partition)
        .take(12)
        .collect();
    keys.sort();
    for key in &keys {
        let put = Request::Put {
            store: "default".into(),
            key: key.clone(),
            value: Value::bytes(vec![b'v'; 1000], 1),
            context: VersionVector::new(),
            hint: None,
        };
        assert!(matches!(ask(&t, &addr, put).await, Ok(Reply::Stored(_))));
    }
    // Every page of a scan asking for `bytes_max`, in order.
    let count = keys.len();
    let pages = |bytes_max: Option<u32>| {
        let t = &t;
        let addr = &addr;
        async move {
            let (mut pages, mut after) = (Vec::new(), None);
            loop {
                let scan = Request::ScanSegment {
                    store: "default".into(),
                    partition,
                    segments: Vec::new(),
                    tombstones_only: false,
                    listing: Listing::Objects,
                    after: after.take(),
                    bytes_max,
                };
                let Ok(Reply::Segment { entries, next }) = ask(t, addr, scan).await else {
                    panic!("scan answered");
                };
                pages.push(entries.into_iter().map(|e| e.key).collect::<Vec<_>>());
                match next {
                    Some(n) => after = Some(n),
                    None => return pages,
                }
                assert!(pages.len() <= count + 1, "a scan that never ends");
            }
        }
    };
    let sizes = |pages: &[Vec<Vec<u8>>]| pages.iter().map(Vec::len).collect::<Vec<_>>();
    // Each record is a little over 1000 bytes: two fit in 2500, one in
    // 1500; a bound below one record still returns one per page; with no
    // bound, the frame limit (16 MiB) holds all twelve.
    for (bytes_max, per_page) in [(Some(2500), 2), (Some(1500), 1), (Some(0), 1), (None, 12)] {
        let got = pages(bytes_max).await;
        assert_eq!(
            sizes(&got),
            vec![per_page; 12 / per_page],
            "{bytes_max:?}: keys per page"
        );
        assert_eq!(
            got.concat(),
            keys,
            "{bytes_max:?}: every key once, in order"
        );
    }
}
