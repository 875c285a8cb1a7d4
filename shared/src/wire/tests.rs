//! Wire laws: every message round-trips; no truncated or corrupted frame
//! panics the decoder.

use super::*;
use crate::dvvset::Dvvset;
use crate::ids::ActorId;
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Value> {
    (
        any::<u64>(),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
    )
        .prop_map(|(timestamp_ms, data)| Value { timestamp_ms, data })
}

fn object() -> impl Strategy<Value = Object> {
    prop::collection::vec((1u64..5, value()), 0..6).prop_map(|events| {
        let mut o = Dvvset::new();
        for (actor, v) in events {
            o.event(ActorId(actor), v);
        }
        o
    })
}

fn request() -> impl Strategy<Value = Request> {
    let key = prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        (any::<u32>(), any::<Option<u64>>()).prop_map(|(protocol_version, cluster_id)| {
            let cluster_id = cluster_id.map(ClusterId);
            Request::Hello {
                protocol_version,
                cluster_id,
            }
        }),
        ("[a-z]{1,8}", key.clone()).prop_map(|(store, key)| Request::Get {
            store,
            key,
            hint: None
        }),
        (
            "[a-z]{1,8}",
            key.clone(),
            value(),
            prop::collection::vec((any::<u64>(), 1u64..9), 0..4)
        )
            .prop_map(|(store, key, value, ctx)| Request::Put {
                store,
                key,
                value,
                context: VersionVector::from_pairs(ctx.into_iter().map(|(a, c)| (ActorId(a), c))),
                hint: None,
            }),
        ("[a-z]{1,8}", key.clone(), object(), any::<Option<u64>>()).prop_map(
            |(store, key, object, hint)| Request::Replicate {
                store,
                key,
                object,
                hint: hint.map(NodeId)
            }
        ),
        (any::<u64>(), prop::option::of(key.clone()), any::<u32>()).prop_map(
            |(target, after, limit)| Request::Hints {
                target: NodeId(target),
                after,
                limit
            }
        ),
        (
            any::<u64>(),
            prop::collection::vec(("[a-z]{1,8}", key.clone(), object()), 0..3)
        )
            .prop_map(|(target, hints)| Request::DropHints {
                target: NodeId(target),
                hints: hints
                    .into_iter()
                    .map(|(store, key, object)| DeliveredHint {
                        store,
                        key,
                        clock: object.join()
                    })
                    .collect(),
            }),
        Just(Request::GetMembership),
        ("[a-z]{1,8}", any::<u32>())
            .prop_map(|(store, partition)| Request::MerkleRoot { store, partition }),
        (
            "[a-z]{1,8}",
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>()
        )
            .prop_map(
                |(store, partition, first, count, group)| Request::MerkleSegments {
                    store,
                    partition,
                    first,
                    count,
                    group
                }
            ),
        (
            "[a-z]{1,8}",
            any::<u32>(),
            prop::collection::vec(any::<u16>(), 0..5),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(key.clone()),
            prop::option::of(any::<u32>())
        )
            .prop_map(
                |(store, partition, segments, tombstones_only, digests, after, bytes_max)| {
                    Request::ScanSegment {
                        store,
                        partition,
                        segments,
                        tombstones_only,
                        listing: if digests {
                            Listing::Digests
                        } else {
                            Listing::Objects
                        },
                        after,
                        bytes_max,
                    }
                }
            ),
        Just(Request::Stats),
        ("[a-z]{1,8}", any::<u32>()).prop_map(|(store, partition)| Request::DropPartition {
            store,
            partition,
            root: [7; 16]
        }),
        ("[a-z]{1,8}", any::<u32>())
            .prop_map(|(store, partition)| Request::TransferState { store, partition }),
        ("[a-z]{1,8}", any::<u32>(), progress()).prop_map(|(store, partition, progress)| {
            Request::TransferPage {
                store,
                partition,
                change: progress.change,
                entries: Vec::new(),
                progress: Some(progress),
            }
        }),
        ("[a-z]{1,8}", key.clone(), object())
            .prop_map(|(store, key, object)| { Request::DeleteIfEqual { store, key, object } }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let key = prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        prop::option::of(object()).prop_map(Reply::Object),
        object().prop_map(Reply::Stored),
        (
            prop::collection::vec(("[a-z]{1,8}", key.clone(), object()), 0..3),
            prop::option::of(key.clone())
        )
            .prop_map(|(hints, next)| Reply::Hints {
                hints: hints
                    .into_iter()
                    .map(|(store, key, object)| Hint { store, key, object })
                    .collect(),
                next,
            }),
        any::<u32>().prop_map(Reply::Dropped),
        (any::<[u8; 16]>(), any::<u64>())
            .prop_map(|(root, tombstones)| Reply::MerkleRoot(PartitionDigest { root, tombstones })),
        progress().prop_map(Reply::Transfer),
        (any::<u64>(), any::<bool>(), any::<[u8; 16]>())
            .prop_map(|(keys, more, root)| Reply::PartitionDropped { keys, more, root }),
        (
            prop::collection::vec((key.clone(), any::<[u8; 16]>()), 0..3),
            prop::option::of(key.clone())
        )
            .prop_map(|(keys, next)| Reply::SegmentDigests {
                keys: keys
                    .into_iter()
                    .map(|(key, digest)| KeyDigest { key, digest })
                    .collect(),
                next,
            }),
        prop::collection::vec(any::<[u8; 16]>(), 0..4).prop_map(Reply::MerkleSegments),
        (
            prop::collection::vec((key.clone(), object()), 0..3),
            prop::option::of(key.clone())
        )
            .prop_map(|(entries, next)| Reply::Segment {
                entries: entries
                    .into_iter()
                    .map(|(key, object)| Entry { key, object })
                    .collect(),
                next,
            }),
        (any::<u64>(), any::<u64>()).prop_map(|(objects, exchanges)| {
            Reply::Stats(NodeStats {
                stores: vec![StoreTotals {
                    store: "s".into(),
                    objects,
                    bytes: 1,
                    tombstones: 0,
                }],
                hints: vec![(NodeId(1), 2)],
                merkle_exchanges: exchanges,
            })
        }),
        any::<bool>().prop_map(Reply::Deleted),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(req in request()) {
        let frame = encode_frame(&req);
        prop_assert_eq!(decode_frame::<Request>(&frame, u32::MAX).unwrap(), req);
    }

    #[test]
    fn replies_round_trip(reply in reply(), epoch in any::<u64>()) {
        let response = Response { epoch, result: Ok(reply) };
        let frame = encode_frame(&response);
        prop_assert_eq!(decode_frame::<Response>(&frame, u32::MAX).unwrap(), response);
    }

    #[test]
    fn truncated_frames_are_errors(req in request(), cut in 0usize..200) {
        let frame = encode_frame(&req);
        let cut = cut % frame.len();
        prop_assert!(decode_frame::<Request>(&frame[..cut], u32::MAX).is_err());
    }

    #[test]
    fn corrupted_frames_never_panic(req in request(), at in any::<usize>(), byte in any::<u8>()) {
        let mut frame = encode_frame(&req);
        let at = at % frame.len();
        frame[at] = byte;
        let _ = decode_frame::<Request>(&frame, u32::MAX);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = decode_payload::<Request>(&bytes);
        let _ = decode_payload::<Response>(&bytes);
    }
}

#[test]
fn oversized_frames_are_refused_from_the_header() {
    let header = (1u32 << 30).to_be_bytes();
    assert_eq!(
        payload_len(header, 1 << 20),
        Err(FrameError::TooLarge {
            len: 1 << 30,
            max: 1 << 20
        })
    );
}

#[test]
fn unknown_tags_are_malformed() {
    assert!(matches!(
        decode_payload::<Request>(&[200]),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn responses_round_trip() {
    let r = Response {
        epoch: 4,
        result: Err(ErrorReply {
            code: ErrorCode::UnknownStore,
            message: "no store x".into(),
        }),
    };
    assert_eq!(
        decode_frame::<Response>(&encode_frame(&r), 1024).unwrap(),
        r
    );
}

#[test]
fn replies_carrying_a_malformed_object_do_not_validate() {
    let mut good = Dvvset::new();
    good.event(ActorId(1), Value::bytes(b"a".to_vec(), 1));
    good.event(ActorId(2), Value::bytes(b"b".to_vec(), 1));
    // The same entries in the wrong order, as a peer could send them.
    let bad: Object = postcard::from_bytes(
        &postcard::to_allocvec(&good.entries().iter().rev().collect::<Vec<_>>()).unwrap(),
    )
    .unwrap();
    assert!(!bad.is_well_formed());
    let hint = |object| Hint {
        store: "s".into(),
        key: b"k".to_vec(),
        object,
    };
    for (reply, ok) in [
        (Reply::Object(None), true),
        (Reply::Object(Some(good.clone())), true),
        (Reply::Stored(good.clone()), true),
        (Reply::Object(Some(bad.clone())), false),
        (Reply::Stored(bad.clone()), false),
        (
            Reply::Hints {
                hints: vec![hint(good.clone()), hint(bad.clone())],
                next: None,
            },
            false,
        ),
        (Reply::Dropped(1), true),
    ] {
        assert_eq!(reply.clone().validated().is_ok(), ok, "{reply:?}");
    }
}

fn progress() -> impl Strategy<Value = TransferProgress> {
    (
        any::<u64>(),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..20)),
        any::<bool>(),
        any::<u64>(),
        any::<u64>(),
        (any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |(change, after, done, keys, bytes, (started_ms, updated_ms))| TransferProgress {
                change,
                after,
                done,
                keys,
                bytes,
                started_ms,
                updated_ms,
            },
        )
}

#[test]
fn a_put_membership_request_starts_with_its_tag_and_fits_its_cap() {
    let member = crate::Member {
        id: crate::NodeId(1),
        addr: "127.0.0.1:7000".into(),
        zone: "z".into(),
        weight: 1,
    };
    let doc = crate::Membership::new(crate::ClusterId(9), 64, vec![member], Vec::new()).unwrap();
    let frame = encode_frame(&Request::PutMembership {
        membership: Box::new(doc.clone()),
        base: Some(doc.version()),
    });
    let payload = &frame[crate::wire::FRAME_HEADER_BYTES..];
    assert_eq!(payload[0], PUT_MEMBERSHIP_TAG);
    // The largest document a node takes, with the largest base, fits.
    let max = crate::limits::MEMBERSHIP_BYTES_MAX;
    let envelope = payload.len() - postcard::to_allocvec(&doc).unwrap().len();
    assert!((max + envelope) as u32 <= request_payload_max(PUT_MEMBERSHIP_TAG, u32::MAX));
    // Other kinds keep the frame limit.
    let get = encode_frame(&Request::GetMembership);
    assert_eq!(request_payload_max(get[4], 7), 7);
    assert_eq!(request_payload_max(PUT_MEMBERSHIP_TAG, 7), 7);
}
