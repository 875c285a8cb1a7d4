//! The identity URIs, the grant list's order and the authorization table.

use super::*;
use proptest::prelude::*;

fn client(name: &str) -> Principal {
    Principal::new(Role::Client, name).unwrap()
}

#[test]
fn identity_uris_round_trip_and_refuse_what_is_not_one() {
    let p = Principal::new(Role::Admin, "operator").unwrap();
    assert_eq!(p.uri(), "quire://admin/operator");
    assert_eq!(Principal::from_uri(&p.uri()), Some(p));
    let node = Principal::node(NodeId(0xab));
    assert_eq!(node.uri(), "quire://node/00000000000000ab");
    assert_eq!(
        Principal::from_uri(&node.uri()).unwrap().node_id(),
        Some(NodeId(0xab))
    );
    for bad in [
        "quire://root/x",
        "quire://client/",
        "quire://client/a/b",
        "quire://client/a b",
        "https://client/a",
        "quire://client",
    ] {
        assert_eq!(Principal::from_uri(bad), None, "{bad}");
    }
    assert_eq!(client("cart").node_id(), None);
    let long = "x".repeat(PRINCIPAL_NAME_BYTES_MAX + 1);
    assert_eq!(Principal::new(Role::Client, long), None);
}

#[test]
fn each_role_gets_what_the_table_says() {
    let mut grants = Vec::new();
    set_grant(&mut grants, "cart", "carts", Some(Access::Write));
    set_grant(&mut grants, "report", "carts", Some(Access::Read));
    let admin = Principal::new(Role::Admin, "op").unwrap();
    let node = Principal::node(NodeId(1));
    let scopes = [
        Scope::Open,
        Scope::Hints,
        Scope::Read("carts"),
        Scope::Write("carts"),
        Scope::Read("other"),
    ];
    for s in scopes {
        assert!(authorize(&admin, s, &grants).is_ok(), "{s:?}");
        assert!(authorize(&node, s, &grants).is_err(), "{s:?}");
    }
    let ok = |p: &Principal, s| authorize(p, s, &grants).is_ok();
    let cart = client("cart");
    let report = client("report");
    let stranger = client("stranger");
    assert!(ok(&cart, Scope::Read("carts")) && ok(&cart, Scope::Write("carts")));
    assert!(ok(&report, Scope::Read("carts")) && !ok(&report, Scope::Write("carts")));
    assert!(!ok(&stranger, Scope::Read("carts")) && ok(&stranger, Scope::Open));
    assert!(!ok(&cart, Scope::Read("other")));
    let denied = authorize(&report, Scope::Write("carts"), &grants).unwrap_err();
    assert_eq!(
        denied.to_string(),
        "client \"report\" may not write store \"carts\" (no grant)"
    );
}

proptest! {
    /// Any sequence of grants and revocations leaves a valid, sorted list
    /// in which each pair holds what was last set for it.
    #[test]
    fn set_grant_keeps_the_list_sorted(ops in proptest::collection::vec(
        (0u8..4, 0u8..3, proptest::option::of(any::<bool>())), 0..40)
    ) {
        let mut grants = Vec::new();
        let mut model = std::collections::BTreeMap::new();
        for (n, s, a) in ops {
            let (name, store) = (format!("c{n}"), format!("s{s}"));
            let access = a.map(|w| if w { Access::Write } else { Access::Read });
            set_grant(&mut grants, &name, &store, access);
            match access {
                Some(a) => { model.insert((name, store), a); }
                None => { model.remove(&(name, store)); }
            }
        }
        prop_assert!(validate_grants(&grants).is_ok());
        prop_assert_eq!(grants.len(), model.len());
        for ((name, store), a) in &model {
            prop_assert_eq!(access_of(&grants, name, store), Some(*a));
        }
    }
}

#[test]
fn unsorted_or_doubled_grants_are_refused() {
    let g = |name: &str, store: &str| Grant {
        name: name.into(),
        store: store.into(),
        access: Access::Read,
    };
    assert_eq!(
        validate_grants(&[g("b", "s"), g("a", "s")]),
        Err(GrantError::Unsorted)
    );
    assert_eq!(
        validate_grants(&[g("a", "s"), g("a", "s")]),
        Err(GrantError::Unsorted)
    );
    assert!(matches!(
        validate_grants(&[g("a b", "s")]),
        Err(GrantError::BadName { .. })
    ));
    assert!(validate_grants(&[g("a", "s"), g("a", "t"), g("b", "s")]).is_ok());
}
