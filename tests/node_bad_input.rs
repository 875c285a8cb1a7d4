//! A node answers bad input with a typed error, keeps the connection
//! serving, and leaves stored data untouched.

mod common;

use common::TestCluster;
use quire::shared::dvvset::Entry;
use quire::shared::wire::{encode_frame, ErrorCode, Reply, Request, Response};
use quire::shared::{Dvvset, Membership, Object, Value, VersionVector};
use quire_client::transport::Transport;
use quire_node::config::Limits;
use std::net::SocketAddr;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);
const VALUE_MAX: usize = 4096;

fn code_of(answer: Result<Response, impl std::fmt::Debug>) -> ErrorCode {
    match answer.expect("the node answers") {
        Response { result: Err(e), .. } => {
            assert!(!e.message.is_empty(), "a refusal says why");
            e.code
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn stored_object(t: &Transport, addr: &str, key: &[u8]) -> Option<Object> {
    let get = Request::Get {
        store: "default".into(),
        key: key.to_vec(),
        hint: None,
    };
    match t.call(addr, &get, T).await.expect("get answered").result {
        Ok(Reply::Object(o)) => o,
        other => panic!("expected an object, got {other:?}"),
    }
}

fn put(key: &[u8], len: usize) -> Request {
    Request::Put {
        store: "default".into(),
        key: key.to_vec(),
        value: Value::bytes(vec![7; len], 1),
        context: VersionVector::new(),
        hint: None,
    }
}

/// A frame whose object has an entry with one value but counter 0.
fn ill_formed_replicate() -> Vec<u8> {
    let object = Dvvset::from_entries(vec![Entry {
        actor: quire::shared::ActorId(0x55),
        counter: 0x4d,
        values: vec![Value::bytes(b"ZZZZ".to_vec(), 1)],
    }])
    .expect("well-formed to start with");
    let mut frame = encode_frame(&Request::Replicate {
        store: "default".into(),
        key: b"k".to_vec(),
        object,
        hint: None,
    });
    let at = frame
        .windows(3)
        .position(|w| w == [0x55, 0x4d, 0x01])
        .expect("the entry's encoding is found");
    frame[at + 1] = 0x00;
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_errors_and_the_connection_keeps_serving() {
    let limits = Limits {
        value_bytes_max: VALUE_MAX,
        frame_bytes_max: (VALUE_MAX + 8192) as u32,
        ..Limits::default()
    };
    let cluster = TestCluster::start_with(1, Vec::new(), limits.clone()).await;
    let t = cluster.transport();
    let addr_text = cluster.nodes[0].addr();
    let addr: SocketAddr = addr_text.parse().unwrap();

    // Something stored before the abuse starts.
    let before = match t.call(&addr_text, &put(b"k", 10), T).await.unwrap().result {
        Ok(Reply::Stored(o)) => o,
        other => panic!("put refused: {other:?}"),
    };
    let connection = t.connection_id(addr).expect("a connection is open");

    // Malformed: a correct length, garbage inside.
    let garbage = [0, 0, 0, 3, 0xff, 0xff, 0xff];
    assert_eq!(
        code_of(t.call_raw(addr, &garbage, T).await),
        ErrorCode::Malformed
    );
    // Malformed: the stream ends before the announced length.
    let short = [0, 0, 0, 100, 1, 2];
    assert_eq!(
        code_of(t.call_raw(addr, &short, T).await),
        ErrorCode::Malformed
    );
    // Malformed: a payload with trailing bytes after a valid request.
    let mut trailing = encode_frame(&Request::GetMembership);
    trailing.extend_from_slice(&[9, 9]);
    let len = (trailing.len() - 4) as u32;
    trailing[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        code_of(t.call_raw(addr, &trailing, T).await),
        ErrorCode::Malformed
    );
    // Oversized frame: refused from its header, before the body is read.
    let huge = (limits.frame_bytes_max + 1).to_be_bytes();
    assert_eq!(
        code_of(t.call_raw(addr, &huge, T).await),
        ErrorCode::FrameTooLarge
    );
    // Oversized value inside an acceptable frame.
    assert_eq!(
        code_of(t.call(&addr_text, &put(b"k", VALUE_MAX + 1), T).await),
        ErrorCode::ValueTooLarge
    );
    // Unknown store.
    let unknown = Request::Get {
        store: "nope".into(),
        key: b"k".to_vec(),
        hint: None,
    };
    assert_eq!(
        code_of(t.call(&addr_text, &unknown, T).await),
        ErrorCode::UnknownStore
    );
    // Bad keys.
    assert_eq!(
        code_of(t.call(&addr_text, &put(b"", 1), T).await),
        ErrorCode::EmptyKey
    );
    assert_eq!(
        code_of(t.call(&addr_text, &put(&[b'x'; 481], 1), T).await),
        ErrorCode::KeyTooLarge
    );
    // An object breaking the DVVSet invariants.
    assert_eq!(
        code_of(t.call_raw(addr, &ill_formed_replicate(), T).await),
        ErrorCode::InvalidObject
    );
    // Another protocol version.
    let hello = Request::Hello {
        protocol_version: 99,
        cluster_id: None,
    };
    assert_eq!(
        code_of(t.call(&addr_text, &hello, T).await),
        ErrorCode::ProtocolMismatch
    );
    // An invalid membership document (3 partitions is not a power of two).
    let mut doc: Membership = cluster.membership.clone();
    doc.partitions = 3;
    doc.epoch += 1;
    let bad_doc = Request::PutMembership {
        membership: Box::new(doc),
        base: None,
    };
    assert_eq!(
        code_of(t.call(&addr_text, &bad_doc, T).await),
        ErrorCode::InvalidMembership
    );
    // Another cluster's document.
    let mut other = cluster.membership.clone();
    other.cluster_id.0 += 1;
    other.epoch += 1;
    let wrong = Request::PutMembership {
        membership: Box::new(other),
        base: None,
    };
    assert_eq!(
        code_of(t.call(&addr_text, &wrong, T).await),
        ErrorCode::WrongCluster
    );

    // Every refusal came back on the connection we started with.
    assert_eq!(t.connection_id(addr), Some(connection));
    // The stored object and the membership document are untouched.
    assert_eq!(stored_object(&t, &addr_text, b"k").await, Some(before));
    match t
        .call(&addr_text, &Request::GetMembership, T)
        .await
        .unwrap()
        .result
    {
        Ok(Reply::Membership(Some(doc))) => assert_eq!(doc, cluster.membership),
        other => panic!("membership: {other:?}"),
    }
    // And it still serves writes.
    match t.call(&addr_text, &put(b"k2", 10), T).await.unwrap().result {
        Ok(Reply::Stored(o)) => assert_eq!(o.value_count(), 1),
        other => panic!("put after abuse refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_membership_refuses_data_requests() {
    let mut launched = common::builder(1).launch().await.expect("node starts");
    let t = Transport::new(launched.layout().client_tls(), &common::test_timeouts()).unwrap();
    let node = &mut launched.nodes[0];
    let get = Request::Get {
        store: "default".into(),
        key: b"k".to_vec(),
        hint: None,
    };
    assert_eq!(
        code_of(t.call(&node.addr(), &get, T).await),
        ErrorCode::NoMembership
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused() {
    let cluster = TestCluster::start(1).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let foreign = common::Pki::generate(elsewhere.path());
    // The foreign client trusts our CA (so it would accept the node), but
    // its own certificate chains to another CA.
    let mut tls = foreign.client_tls();
    tls.ca = cluster.layout().client_tls().ca;
    let t = Transport::new(&tls, &common::test_timeouts()).unwrap();
    let answer = t
        .call(&cluster.nodes[0].addr(), &Request::GetMembership, T)
        .await;
    assert!(
        answer.is_err(),
        "node answered a client of another CA: {answer:?}"
    );
    // Our own client is served.
    let ours = cluster.transport();
    assert!(ours
        .call(&cluster.nodes[0].addr(), &Request::GetMembership, T)
        .await
        .is_ok());
}

/// A stream may carry several requests (a client batches them): each is
/// answered, in the order sent, whatever each answer is; a garbled frame
/// among them is refused and nothing after it on that stream is read,
/// while the connection keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_requests_on_one_stream_are_answered_in_order() {
    let cluster = TestCluster::start(1).await;
    let t = cluster.transport();
    let addr: SocketAddr = cluster.nodes[0].addr().parse().unwrap();
    let get = |store: &str, key: &[u8]| Request::Get {
        store: store.into(),
        key: key.to_vec(),
        hint: None,
    };
    let frames = vec![
        encode_frame(&get("default", b"missing")),
        encode_frame(&put(b"batched", 10)),
        encode_frame(&get("no-such-store", b"k")),
        encode_frame(&put(b"batched-too", 10)),
    ];
    let answers = t
        .call_frames(addr, &frames, 4, T)
        .await
        .expect("four answers");
    assert!(
        matches!(answers[0].result, Ok(Reply::Object(None))),
        "{:?}",
        answers[0]
    );
    assert!(
        matches!(answers[1].result, Ok(Reply::Stored(_))),
        "{:?}",
        answers[1]
    );
    assert_eq!(
        code_of(Ok::<_, ()>(answers[2].clone())),
        ErrorCode::UnknownStore
    );
    assert!(
        matches!(answers[3].result, Ok(Reply::Stored(_))),
        "{:?}",
        answers[3]
    );
    let addr_text = addr.to_string();
    assert!(stored_object(&t, &addr_text, b"batched").await.is_some());
    assert!(stored_object(&t, &addr_text, b"batched-too")
        .await
        .is_some());

    // A garbled frame in the middle: refused; the put after it is not read.
    let garbage = vec![0, 0, 0, 3, 0xff, 0xff, 0xff];
    let frames = vec![
        encode_frame(&get("default", b"batched")),
        garbage,
        encode_frame(&put(b"after-garbage", 10)),
    ];
    let answers = t
        .call_frames(addr, &frames, 2, T)
        .await
        .expect("two answers");
    assert!(
        matches!(answers[0].result, Ok(Reply::Object(Some(_)))),
        "{:?}",
        answers[0]
    );
    assert_eq!(
        code_of(Ok::<_, ()>(answers[1].clone())),
        ErrorCode::Malformed
    );
    assert!(
        t.call_frames(addr, &[], 0, T).await.is_ok(),
        "the connection still serves"
    );
    assert!(stored_object(&t, &addr_text, b"after-garbage")
        .await
        .is_none());
}
