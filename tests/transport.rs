//! The client's connections to a real node behind a fault proxy: a request
//! that times out gives up its own stream, not the connection other
//! requests share; only repeated timeouts with no answer in between (or
//! QUIC itself) close a connection.

mod common;

use common::proxy::Fault;
use common::TestCluster;
use quire::shared::wire::{Reply, Request};
use quire_client::transport::{Transport, TransportError, SILENT_TIMEOUTS_MAX};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// One node behind a fault proxy, and a transport connected to it through
/// the proxy, with that connection's id.
async fn connected() -> (TestCluster, Transport, usize) {
    let cluster = TestCluster::start_proxied(1).await;
    let t = cluster.transport();
    let proxy = cluster.proxies[0].addr;
    t.call(&proxy.to_string(), &Request::GetMembership, T)
        .await
        .expect("the node answers");
    let id = t.connection_id(proxy).expect("a connection");
    (cluster, t, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_timeout_does_not_close_a_shared_connection() {
    let (cluster, t, id) = connected().await;
    let proxy = &cluster.proxies[0];
    let addr = proxy.addr.to_string();
    let ask = Request::GetMembership;

    // Every datagram now takes 300 ms each way: a slow node.
    proxy.set(Fault::Delay(Duration::from_millis(300)));
    let long = {
        let (t, addr, ask) = (t.clone(), addr.clone(), ask.clone());
        tokio::spawn(async move { t.call(&addr, &ask, T).await })
    };
    let short = t.call(&addr, &ask, Duration::from_millis(100)).await;
    assert!(
        matches!(
            short,
            Err(TransportError::Timeout(_) | TransportError::Slow(_))
        ),
        "{short:?}"
    );
    let long = long.await.expect("task");
    assert!(
        matches!(long, Ok(ref r) if matches!(r.result, Ok(Reply::Membership(Some(_))))),
        "the request in flight beside the timed-out one: {long:?}"
    );
    assert_eq!(t.connection_id(proxy.addr), Some(id), "same connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_in_a_row_from_a_silent_node_close_the_connection() {
    let (cluster, t, id) = connected().await;
    let proxy = &cluster.proxies[0];
    let addr = proxy.addr.to_string();
    let ask = Request::GetMembership;

    // Not a datagram gets through: as if the node's process were gone.
    proxy.set(Fault::DropAll);
    let short = Duration::from_millis(100);
    for i in 1..SILENT_TIMEOUTS_MAX {
        let r = t.call(&addr, &ask, short).await;
        assert!(
            matches!(r, Err(TransportError::Timeout(_) | TransportError::Slow(_))),
            "{r:?}"
        );
        assert_eq!(
            t.connection_id(proxy.addr),
            Some(id),
            "closed after only {i} timeouts"
        );
    }
    // A datagram from before the fault may still land during the first
    // timeout and count as a sign of life: allow one more.
    let mut timeouts = SILENT_TIMEOUTS_MAX - 1;
    while t.connection_id(proxy.addr).is_some() {
        assert!(
            timeouts <= SILENT_TIMEOUTS_MAX,
            "still open after {timeouts} silent timeouts"
        );
        let r = t.call(&addr, &ask, short).await;
        assert!(
            matches!(r, Err(TransportError::Timeout(_) | TransportError::Slow(_))),
            "{r:?}"
        );
        timeouts += 1;
    }

    // The node is back: the next request connects afresh.
    proxy.set(Fault::Pass);
    t.call(&addr, &ask, T).await.expect("a new connection");
    let again = t.connection_id(proxy.addr).expect("a connection");
    assert_ne!(again, id);
}
