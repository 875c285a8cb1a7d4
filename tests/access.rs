//! Who may do what, on real nodes: every certificate names a role and a
//! name, nodes authorize each request by them and by the grants in the
//! membership document, and a client talks to a member's address only if
//! the node there is that member.

mod common;

use common::{cluster_ca, quire_json, test_timeouts, TestCluster};
use quire::admin::AdminError;
use quire::shared::access::{Access, Role};
use quire::shared::wire::{ErrorCode, Reply, Request};
use quire::shared::{Context, Object, Value};
use quire_client::transport::{Transport, TransportError};
use quire_client::{Client, ClientConfig, ClientError};
use std::path::Path;
use std::time::Duration;

const STORE: &str = "default";
const T: Duration = Duration::from_secs(5);

/// A new identity issued from the test cluster's CA, and its config.
fn identity(cluster: &TestCluster, role: Role, name: &str) -> ClientConfig {
    let issued = cluster.layout().issue(role, name, 30).expect("issued");
    let mut config = ClientConfig::load(&issued.config.expect("a client config")).unwrap();
    config.timeouts = test_timeouts();
    config
}

fn forbidden(result: Result<impl std::fmt::Debug, ClientError>) -> String {
    match result {
        Err(ClientError::Forbidden { message }) => message,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

fn new_store(name: &str) -> quire::shared::StoreConfig {
    let mut store = quire::admin::default_store(3);
    store.name = name.into();
    store
}

/// Offers `doc` to the node at `addr` as gossip (no compare-and-set base).
async fn offer(
    t: &Transport,
    addr: &str,
    doc: &quire::shared::Membership,
) -> quire::shared::wire::Response {
    let put = Request::PutMembership {
        membership: Box::new(doc.clone()),
        base: None,
    };
    t.call(addr, &put, T).await.expect("the node answers")
}

/// Grants one access, asserting that every member took the document (so
/// the next request meets the new grants on every replica).
async fn set(admin: &Client, name: &str, access: Option<Access>) {
    let (_, missed) = admin.set_grant(name, STORE, access).await.unwrap();
    assert!(missed.is_empty(), "{missed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_decide_what_a_client_identity_may_read_and_write() {
    let cluster = TestCluster::start(3).await;
    let admin = cluster.client().await;
    admin
        .put(STORE, b"cart", b"apple".to_vec(), &Context::empty())
        .await
        .unwrap();
    let cart = Client::connect(identity(&cluster, Role::Client, "cart"))
        .await
        .expect("any identity of the cluster reads the membership");

    let message = forbidden(cart.get(STORE, b"cart").await);
    assert!(
        message.contains("client \"cart\" may not read store \"default\""),
        "{message}"
    );

    set(&admin, "cart", Some(Access::Read)).await;
    let read = cart.get(STORE, b"cart").await.expect("a reader reads");
    assert_eq!(read.values(), vec![b"apple".as_slice()]);
    let message = forbidden(
        cart.put(STORE, b"cart", b"pear".to_vec(), &read.context)
            .await,
    );
    assert!(message.contains("may not write store"), "{message}");

    set(&admin, "cart", Some(Access::Write)).await;
    cart.put(STORE, b"cart", b"pear".to_vec(), &read.context)
        .await
        .expect("a writer writes");
    assert_eq!(
        admin.get(STORE, b"cart").await.unwrap().values(),
        vec![b"pear".as_slice()]
    );

    // Revoked: refused at its very next request, on the same connections.
    set(&admin, "cart", None).await;
    forbidden(cart.get(STORE, b"cart").await);
    // Nothing a refused identity asked for was stored.
    assert_eq!(
        admin.get(STORE, b"cart").await.unwrap().values(),
        vec![b"pear".as_slice()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_changes_the_cluster() {
    let cluster = TestCluster::start(3).await;
    let cart = Client::connect(identity(&cluster, Role::Client, "cart"))
        .await
        .unwrap();
    // A client may not grant itself access, create stores or rewrite the
    // membership (a document at the last usable epoch would freeze the
    // cluster; one without stores would delete them all).
    for result in [
        cart.set_grant("cart", STORE, Some(Access::Write))
            .await
            .map(|_| ()),
        cart.create_store(new_store("extra")).await.map(|_| ()),
    ] {
        match result {
            Err(AdminError::Forbidden(why)) => {
                assert!(why.contains("needs an admin certificate"), "{why}")
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }
    let t = Transport::new(&cart.config().tls, &test_timeouts()).unwrap();
    let mut forged = cluster.membership.clone();
    forged.epoch = u64::MAX - 1;
    forged.stores.clear();
    for addr in &cluster.node_addrs {
        let answer = offer(&t, &addr.to_string(), &forged).await;
        let refusal = answer.result.expect_err("refused");
        assert_eq!(refusal.code, ErrorCode::Forbidden, "{refusal:?}");
        assert_eq!(answer.epoch, cluster.membership.epoch, "document unchanged");
    }
    // An admin identity issued later may.
    let ops = Client::connect(identity(&cluster, Role::Admin, "ops"))
        .await
        .unwrap();
    ops.set_grant("cart", STORE, Some(Access::Read))
        .await
        .expect("an admin grants");
}

/// Stand-ins keep hints per store; a client sees, and may drop, only the
/// hints of stores it may write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_only_the_hints_of_stores_it_writes() {
    let cluster = TestCluster::start(3).await;
    let admin = cluster.client().await;
    admin.create_store(new_store("other")).await.unwrap();
    set(&admin, "cart", Some(Access::Write)).await;
    let stand_in = cluster.node_addrs[0].to_string();
    let home = cluster.membership.members[1].id;
    let mut object = Object::new();
    object.event(quire::shared::ActorId(9), Value::bytes(b"x".to_vec(), 1));
    let admin_t = cluster.transport();
    for store in [STORE, "other"] {
        let request = Request::Replicate {
            store: store.into(),
            key: b"k".to_vec(),
            object: object.clone(),
            hint: Some(home),
        };
        let answer = admin_t.call(&stand_in, &request, T).await.unwrap();
        assert!(answer.result.is_ok(), "{answer:?}");
    }
    let cart_config = identity(&cluster, Role::Client, "cart");
    let cart_t = Transport::new(&cart_config.tls, &test_timeouts()).unwrap();
    let stores_seen = |t: &Transport| {
        let t = t.clone();
        let stand_in = stand_in.clone();
        async move {
            let page = Request::Hints {
                target: home,
                after: None,
                limit: 100,
            };
            match t.call(&stand_in, &page, T).await.unwrap().result {
                Ok(Reply::Hints { hints, .. }) => {
                    hints.into_iter().map(|h| h.store).collect::<Vec<_>>()
                }
                other => panic!("{other:?}"),
            }
        }
    };
    let mut all = stores_seen(&admin_t).await;
    all.sort();
    assert_eq!(all, vec![STORE.to_string(), "other".into()]);
    assert_eq!(stores_seen(&cart_t).await, vec![STORE.to_string()]);
    let drop_other = Request::DropHints {
        target: home,
        hints: vec![quire::shared::wire::DeliveredHint {
            store: "other".into(),
            key: b"k".to_vec(),
            clock: object.join(),
        }],
    };
    let refusal = cart_t.call(&stand_in, &drop_other, T).await.unwrap().result;
    assert_eq!(refusal.expect_err("refused").code, ErrorCode::Forbidden);
    assert_eq!(stores_seen(&admin_t).await.len(), 2, "nothing dropped");
}

/// A node's certificate names its node id: a client refuses to talk to a
/// node at a member's address that is not that member, and a certificate
/// of another role is neither a node nor a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_talks_to_a_member_address_only_if_that_member_answers() {
    let cluster = TestCluster::start(3).await;
    let t = cluster.transport();
    let members = &cluster.membership.members;
    // Say the membership put member 0 where member 1 listens.
    let mut moved = cluster.membership.clone();
    moved.members[0].addr = members[1].addr.clone();
    moved.members[1].addr = members[0].addr.clone();
    t.expect_members(&moved);
    match t.call(&members[1].addr, &Request::GetMembership, T).await {
        Err(TransportError::WrongNode {
            expected, found, ..
        }) => {
            assert_eq!(expected, members[0].id);
            assert_eq!(found, members[1].id);
        }
        other => panic!("expected WrongNode, got {other:?}"),
    }
    t.expect_members(&cluster.membership);
    let answer = t
        .call(&members[1].addr, &Request::GetMembership, T)
        .await
        .expect("the right node is talked to");
    assert!(answer.result.is_ok());
}

/// Writes `pem` into `dir` and returns client TLS files using it.
fn tls_of(
    cluster: &TestCluster,
    pem: &quire::certs::Pem,
    dir: &std::path::Path,
) -> quire_client::config::TlsFiles {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    pem.write(&cert, &key).unwrap();
    quire_client::config::TlsFiles {
        cert,
        key,
        ca: cluster.layout().dir.join("ca.pem"),
    }
}

/// Certificates that name no identity, or the wrong kind, get nothing:
/// a node's certificate cannot make requests (refused at the handshake:
/// it is not a client certificate), a client's cannot serve (the client
/// refuses it at the handshake), and one signed by the cluster CA without
/// a `quire://` identity has every request refused with `Forbidden`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_of_the_wrong_kind_get_nothing() {
    let cluster = TestCluster::start(1).await;
    let addr = cluster.node_addrs[0].to_string();
    let dir = tempfile::tempdir().unwrap();
    let node_dir = cluster.layout().node_dir(1);
    let as_client = quire_client::config::TlsFiles {
        cert: node_dir.join("node.pem"),
        key: node_dir.join("node-key.pem"),
        ca: cluster.layout().dir.join("ca.pem"),
    };
    let t = Transport::new(&as_client, &test_timeouts()).unwrap();
    match t.call(&addr, &Request::GetMembership, T).await {
        Err(TransportError::Connect { .. } | TransportError::Stream { .. }) => {}
        other => panic!("a node certificate made a request: {other:?}"),
    }

    // No identity: the CA's signature, a client usage, no quire:// URI.
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let anonymous = cluster_ca(&cluster).sign_params(params).unwrap();
    let t = Transport::new(tls_of(&cluster, &anonymous, dir.path()), &test_timeouts()).unwrap();
    for request in [Request::GetMembership, Request::Stats] {
        let refusal = t
            .call(&addr, &request, T)
            .await
            .unwrap()
            .result
            .expect_err("refused");
        assert_eq!(refusal.code, ErrorCode::Forbidden);
        assert!(
            refusal.message.contains("names no Quire identity"),
            "{refusal:?}"
        );
    }

    // A client certificate presented by a server: the SDK will not talk.
    let client_tls = identity(&cluster, Role::Client, "impostor").tls;
    let client_files = client_tls.files().expect("issued as files");
    let crypto = quire_net::tls::server_config(client_files).unwrap();
    let endpoint = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(std::sync::Arc::new(crypto)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let impostor = endpoint.local_addr().unwrap().to_string();
    let accept = tokio::spawn(async move {
        if let Some(incoming) = endpoint.accept().await {
            let _ = incoming.await;
        }
    });
    let t = cluster.transport();
    match t.call(&impostor, &Request::GetMembership, T).await {
        Err(TransportError::Connect { .. }) => {}
        other => panic!("the SDK talked to a client certificate: {other:?}"),
    }
    accept.abort();
}

/// An admin certificate of the cluster CA outside its validity: expired,
/// or not valid yet.
fn admin_valid(cluster: &TestCluster, from: (i32, u8), to: (i32, u8)) -> quire::certs::Pem {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let uri = quire::shared::access::Principal::new(Role::Admin, "late")
        .unwrap()
        .uri();
    params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
    params.not_before = rcgen::date_time_ymd(from.0, from.1, 1);
    params.not_after = rcgen::date_time_ymd(to.0, to.1, 1);
    cluster_ca(cluster).sign_params(params).unwrap()
}

/// Expired and not-yet-valid certificates fail the handshake, however
/// powerful the identity they name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_outside_their_validity_fail_the_handshake() {
    let cluster = TestCluster::start(1).await;
    let addr = cluster.node_addrs[0].to_string();
    for (from, to) in [((2020, 1), (2021, 1)), ((2090, 1), (2091, 1))] {
        let dir = tempfile::tempdir().unwrap();
        let pem = admin_valid(&cluster, from, to);
        let t = Transport::new(tls_of(&cluster, &pem, dir.path()), &test_timeouts()).unwrap();
        match t.call(&addr, &Request::GetMembership, T).await {
            Err(TransportError::Connect { .. } | TransportError::Stream { .. }) => {}
            other => panic!("a certificate valid {from:?}..{to:?} was served: {other:?}"),
        }
    }
}

/// `quire status` warns about a certificate that expires within 30 days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_warns_about_a_certificate_that_expires_soon() {
    let cluster = TestCluster::start(1).await;
    let issued = cluster.layout().issue(Role::Client, "soon", 10).unwrap();
    let status = quire_json(&issued.config.unwrap(), &["status"]);
    let expiring = status["expiring_certificates"].as_array().unwrap();
    assert_eq!(expiring.len(), 1, "{status}");
    assert_eq!(expiring[0]["certificate"], "client");
    // Ten days, less the seconds since the certificate was made.
    let days_left = expiring[0]["days_left"].as_i64().unwrap();
    assert!((9..=10).contains(&days_left), "{status}");
}

/// A node's certificate close to its end is reported too: `quire status`
/// learns it from the connection to the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_warns_about_a_node_certificate_that_expires_soon() {
    let mut cluster = TestCluster::start(1).await;
    let ca = cluster_ca(&cluster);
    let id = cluster.membership.members[0].id;
    cluster.stop(1).await;
    common::replace_node_certificate(&cluster, 1, &ca.node(id, 10).unwrap());
    cluster.restart(1).await;
    let status = quire_json(&cluster.layout().client_config(), &["status"]);
    let expiring = status["expiring_certificates"].as_array().unwrap();
    assert_eq!(expiring.len(), 1, "only the node's: {status}");
    assert_eq!(expiring[0]["certificate"], format!("node {id}"));
    let days_left = expiring[0]["days_left"].as_i64().unwrap();
    assert!((9..=10).contains(&days_left), "{status}");
}

/// A revoked certificate is refused from its next request on, on the
/// connection it already has, whatever its grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_at_its_next_request() {
    let cluster = TestCluster::start(3).await;
    let admin = cluster.client().await;
    set(&admin, "cart", Some(Access::Write)).await;
    let config = identity(&cluster, Role::Client, "cart");
    let cart = Client::connect(config.clone()).await.unwrap();
    cart.put(STORE, b"k", b"v".to_vec(), &Context::empty())
        .await
        .expect("granted");
    let chain = quire_net::tls::load_certs(&config.tls.files().unwrap().cert, "client").unwrap();
    let serial = quire_net::identity::serial_of(&chain[0]).unwrap();
    let (_, missed) = admin.revoke_certificate(serial.clone()).await.unwrap();
    assert!(missed.is_empty(), "{missed:?}");
    let message = forbidden(cart.get(STORE, b"k").await);
    assert!(message.contains("is revoked"), "{message}");
    assert!(message.contains(&serial.to_string()), "{message}");
    // Its other identities are not affected: a new certificate for the
    // same name works.
    std::fs::remove_dir_all(cluster.layout().client_dir("cart")).unwrap();
    let renewed = Client::connect(identity(&cluster, Role::Client, "cart"))
        .await
        .unwrap();
    assert_eq!(
        renewed.get(STORE, b"k").await.unwrap().values(),
        vec![b"v".as_slice()]
    );
}

/// A client that presents no certificate at all is not served: the node
/// requires one at the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_not_served() {
    use quinn::rustls;
    let cluster = TestCluster::start(1).await;
    let mut roots = rustls::RootCertStore::empty();
    for ca in
        quire_net::tls::load_certs(&cluster.client_config.tls.files().unwrap().ca, "CA").unwrap()
    {
        roots.add(ca).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(quire_net::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![quire::shared::wire::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(quic)));
    let asked = async {
        let conn = endpoint
            .connect(cluster.node_addrs[0], quire_net::tls::NODE_SERVER_NAME)?
            .await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        quire_net::frame::write_frame(&mut send, &Request::GetMembership).await?;
        let answer: quire::shared::wire::Response =
            quire_net::frame::read_frame(&mut recv, 1 << 20).await?;
        Ok::<_, Box<dyn std::error::Error>>(answer)
    };
    let answer = tokio::time::timeout(T, asked)
        .await
        .expect("refused in time");
    assert!(
        answer.is_err(),
        "a client without a certificate was answered: {answer:?}"
    );
}

/// A leaked admin key, revoked by another admin, cannot sign its way back:
/// its next epoch without its own serial, and a rival of the revoking
/// document, are refused by every node (the held document revokes the
/// signer); a document of the honest admin's backdated by an hour is
/// refused (no signing time well before the held document's). The nodes
/// keep the revoking document; the honest admin's next change lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_admin_cannot_sign_its_revocation_away() {
    let cluster = TestCluster::start(3).await;
    let admin = cluster.client().await;
    let leaked = identity(&cluster, Role::Admin, "leaked");
    let leaked_tls = leaked.tls.files().unwrap().clone();
    let chain = quire_net::tls::load_certs(&leaked_tls.cert, "admin").unwrap();
    let serial = quire_net::identity::serial_of(&chain[0]).unwrap();
    let (held, missed) = admin.revoke_certificate(serial.clone()).await.unwrap();
    assert!(missed.is_empty(), "{missed:?}");
    let held_epoch = held.epoch;

    let mut comeback = admin.membership().as_ref().clone();
    assert_eq!(comeback.epoch, held_epoch);
    comeback.epoch += 1;
    comeback.revoked.clear();
    comeback.seal = None;
    let by_leaked = common::sign(leaked_tls.clone(), comeback.clone());
    let mut rival = comeback.clone();
    rival.epoch = held_epoch;
    let rival = common::sign(leaked_tls.clone(), rival);
    let material = quire_net::tls::TlsMaterial::load(&cluster.client_config.tls).unwrap();
    let sealer = quire_net::seal::Sealer::from_material(&material).unwrap();
    let mut kept = comeback.clone();
    kept.revoked = vec![serial.clone()];
    let backdated = sealer
        .sign_at(kept, quire_net::seal::now_unix() - 3_600)
        .unwrap();

    let t = cluster.transport();
    for (doc, expect) in [
        (&by_leaked, "a certificate that the held document"),
        (&rival, "a certificate that the held document"),
        (
            &backdated,
            "more than 300 s before the document it replaces",
        ),
    ] {
        for addr in &cluster.node_addrs {
            let answer = offer(&t, &addr.to_string(), doc).await;
            let refusal = answer.result.expect_err("refused");
            assert_eq!(refusal.code, ErrorCode::Forbidden, "{refusal:?}");
            assert!(refusal.message.contains(expect), "{}", refusal.message);
            assert_eq!(answer.epoch, held_epoch, "the revoking document is kept");
        }
    }
    // The honest admin's next change keeps the revocation and lands.
    let (doc, missed) = admin.create_store(new_store("after")).await.unwrap();
    assert!(missed.is_empty(), "{missed:?}");
    assert_eq!(doc.epoch, held_epoch + 1);
    assert!(doc.revoked.contains(&serial));
}

/// Days from now until the first certificate in `pem_file` expires.
fn days_left(pem_file: &Path) -> f64 {
    let chain = quire_net::tls::load_certs(pem_file, "certificate").unwrap();
    let not_after = quire_net::validity::not_after_unix(&chain[0]).expect("a validity");
    let now = quire_net::seal::now_unix() as f64;
    (not_after as f64 - now) / 86_400.0
}

/// The CLI from cold processes: `quire cert issue` writes a ready
/// `client.toml` with the validity asked for (365 days unless told; the
/// CA has ten years), `--grant` grants at once, and `quire revoke` and
/// `quire grant` change what the identity may do from its next command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_issues_identities_and_grants_and_revokes_access() {
    let cluster = TestCluster::start(3).await;
    let dir = cluster.layout().dir.clone();
    let operator = cluster.layout().client_config();
    // Each command a process of its own: how it ended and what it said.
    let run = |config: Option<&Path>, args: &[&str]| {
        let out = common::quire_cli(config, args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let dir_arg = dir.to_str().expect("a UTF-8 path");

    let issue = [
        "cert",
        "issue",
        "client",
        "app",
        "--dir",
        dir_arg,
        "--days",
        "10",
        "--grant",
        "default:rw",
    ];
    let (ok, _, err) = run(None, &issue);
    assert!(ok, "{err}");
    let app_dir = dir.join("clients").join("app");
    let app = app_dir.join("client.toml");
    let left = days_left(&app_dir.join("client.pem"));
    assert!((9.9..=10.1).contains(&left), "{left} days");
    let (ok, _, err) = run(None, &["cert", "issue", "admin", "ops2", "--dir", dir_arg]);
    assert!(ok, "{err}");
    let left = days_left(&dir.join("clients").join("ops2").join("client.pem"));
    assert!((364.9..=365.1).contains(&left), "{left} days");
    let left = days_left(&dir.join("ca.pem"));
    assert!((3649.9..=3650.1).contains(&left), "{left} days");

    let as_app = |args: &[&str]| run(Some(&app), args);
    let as_operator = |args: &[&str]| run(Some(&operator), args);
    let (ok, _, err) = as_app(&["put", "default", "k", "v"]);
    assert!(ok, "granted read and write at issue: {err}");

    let (ok, _, err) = as_operator(&["revoke", "app", "--store", "default"]);
    assert!(ok, "{err}");
    let (ok, _, err) = as_app(&["get", "default", "k"]);
    assert!(!ok, "revoked, yet read");
    assert!(err.contains("may not read store \"default\""), "{err}");

    let (ok, _, err) = as_operator(&["grant", "app", "--store", "default", "--read"]);
    assert!(ok, "{err}");
    let (ok, out, err) = as_app(&["get", "default", "k"]);
    assert!(ok, "granted read: {err}");
    assert!(out.contains('v'), "{out}");
    let (ok, _, err) = as_app(&["put", "default", "k", "w"]);
    assert!(!ok, "read only, yet wrote");
    assert!(err.contains("may not write store \"default\""), "{err}");
}
