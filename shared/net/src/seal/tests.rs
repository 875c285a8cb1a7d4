//! Seals made and checked with throw-away certificates from rcgen: what
//! verifies, and each way a forged or altered document is refused.

use super::*;
use crate::test_ca::Ca;
use quire_shared::wire::{decode_payload, encode_frame, FRAME_HEADER_BYTES};
use quire_shared::{ClusterId, Member, NodeId, Pending, StoreConfig, SuccessorError};

fn document() -> Membership {
    let members = (1..=3)
        .map(|i| Member {
            id: NodeId(i),
            addr: format!("127.0.0.1:{}", 7400 + i),
            zone: "z".into(),
            weight: 1,
        })
        .collect();
    let store = StoreConfig {
        name: "default".into(),
        n: 3,
        r: 2,
        w: 2,
        durability: quire_shared::Durability::Sync,
        policy: quire_shared::ConflictPolicy::Siblings,
        limits: Default::default(),
    };
    Membership::new(ClusterId(7), 16, members, vec![store]).unwrap()
}

fn sealers() -> (tempfile::TempDir, Sealer, Sealer) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let admin = Sealer::load(&ca.identity(dir.path(), Role::Admin, "op")).unwrap();
    let client = Sealer::load(&ca.identity(dir.path(), Role::Client, "app")).unwrap();
    (dir, admin, client)
}

#[test]
fn an_admin_signed_document_verifies_and_any_change_after_signing_does_not() {
    let (_dir, admin, client) = sealers();
    let signed = admin.sign(document()).unwrap();
    admin.verifier().verify(&signed).unwrap();
    client.verifier().verify(&signed).unwrap();

    let mut altered = signed.clone();
    altered.stores.clear();
    assert!(matches!(
        admin.verifier().verify(&altered),
        Err(SealError::BadSignature)
    ));
    let mut later = signed.clone();
    later.epoch = u64::MAX - 1;
    assert!(matches!(
        admin.verifier().verify(&later),
        Err(SealError::BadSignature)
    ));
    assert!(matches!(
        admin.verifier().verify(&document()),
        Err(SealError::Shape(SealShapeError::Unsealed))
    ));
}

#[test]
fn only_an_admin_of_this_cluster_signs() {
    let (_dir, admin, client) = sealers();
    match client.sign(document()) {
        Err(SealError::CannotSign(why)) => assert!(why.contains("needs an admin"), "{why}"),
        other => panic!("a client signed: {other:?}"),
    }
    // A client's certificate in an admin's seal: not an admin.
    let mut forged = admin.sign(document()).unwrap();
    if let Some(Seal::Admin(AdminSeal { cert, .. })) = &mut forged.seal {
        *cert = client.cert.to_vec();
    }
    assert!(matches!(
        admin.verifier().verify(&forged),
        Err(SealError::NotAdmin(_))
    ));
    // An admin of another cluster's CA.
    let (_other_dir, stranger, _) = sealers();
    let foreign = stranger.sign(document()).unwrap();
    assert!(matches!(
        admin.verifier().verify(&foreign),
        Err(SealError::Untrusted(_))
    ));
}

#[test]
fn a_document_revoking_its_signer_does_not_verify() {
    let (_dir, admin, _) = sealers();
    let signed = admin.sign(document()).unwrap();
    let Some(Seal::Admin(AdminSeal { cert, .. })) = &signed.seal else {
        panic!("signed")
    };
    let der = CertificateDer::from(cert.clone());
    let serial = Serial(
        webpki::EndEntityCert::try_from(&der)
            .unwrap()
            .serial()
            .to_vec(),
    );
    let mut doc = document();
    doc.revoked = vec![serial];
    let signed = admin.sign(doc).unwrap();
    assert!(matches!(
        admin.verifier().verify(&signed),
        Err(SealError::Revoked(_))
    ));
}

#[test]
fn anyone_seals_the_flip_of_a_signed_change_and_nothing_else() {
    let (_dir, admin, client) = sealers();
    let mut change = document();
    let mut owners = change.owners.clone();
    owners.rotate_left(1);
    change.pending = Some(Pending {
        since: change.epoch,
        owners,
    });
    let change = admin.sign(change).unwrap();
    let flip = change.flip().unwrap();
    let sealed = client
        .seal(flip.clone(), &change)
        .expect("a flip needs no admin");
    assert!(matches!(sealed.seal, Some(Seal::Flipped { .. })));
    admin.verifier().verify(&sealed).unwrap();

    // Anything but the flip is refused, made by a client or claimed.
    let mut other = flip.clone();
    other.stores.clear();
    assert!(matches!(
        client.seal(other.clone(), &change),
        Err(SealError::CannotSign(_))
    ));
    other.seal = sealed.seal.clone();
    assert!(matches!(
        admin.verifier().verify(&other),
        Err(SealError::Shape(SealShapeError::NotTheFlip))
    ));
}

/// A flip carries the flipped document as bytes, so however deep a peer
/// nests flips inside flips, decoding and checking look one level down:
/// no stack to exhaust.
#[test]
fn flips_nested_in_flips_are_refused_without_recursion() {
    let (_dir, admin, _) = sealers();
    let signed = admin.sign(document()).unwrap();
    let Some(Seal::Admin(seal)) = signed.seal.clone() else {
        panic!("signed")
    };
    let mut doc = document();
    for _ in 0..3_000 {
        let origin = encode_frame(&doc)[FRAME_HEADER_BYTES..].to_vec();
        doc.seal = Some(Seal::Flipped {
            origin,
            seal: seal.clone(),
        });
    }
    let frame = encode_frame(&doc);
    let decoded: Membership = decode_payload(&frame[FRAME_HEADER_BYTES..]).unwrap();
    assert!(matches!(
        admin.verifier().verify(&decoded),
        Err(SealError::Shape(SealShapeError::NotTheFlip))
    ));
}

/// The serial of the certificate that signed `doc`.
fn signer_serial(doc: &Membership) -> Serial {
    let der = CertificateDer::from(doc.seal.as_ref().unwrap().admin().cert.clone());
    crate::identity::serial_of(&der).unwrap()
}

/// A revoked admin cannot sign the next epoch with its serial left out,
/// nor a rival of the document that revokes it: the held document revokes
/// its signer. Another admin may sign either.
#[test]
fn a_revoked_admin_cannot_sign_its_revocation_away() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let leaked = Sealer::load(&ca.identity(dir.path(), Role::Admin, "leaked")).unwrap();
    let other = Sealer::load(&ca.identity(dir.path(), Role::Admin, "other")).unwrap();
    let verifier = other.verifier();
    let leaked_serial = signer_serial(&leaked.sign(document()).unwrap());
    let mut revoking = document();
    revoking.epoch = 2;
    revoking.revoked = vec![leaked_serial.clone()];
    let held = other.sign(revoking).unwrap();

    let mut comeback = held.clone();
    comeback.epoch = 3;
    comeback.revoked.clear();
    let mut rival = comeback.clone();
    rival.epoch = 2;
    for doc in [comeback.clone(), rival] {
        let signed = leaked.sign(doc).unwrap();
        verifier.verify(&signed).unwrap();
        assert!(matches!(
            verifier.verify_successor(&signed, Some(&held)),
            Err(SealError::Successor(SuccessorError::SignerRevoked {
                held_epoch: 2
            }))
        ));
    }
    let by_other = other.sign(comeback).unwrap();
    assert_eq!(
        verifier.verify_successor(&by_other, Some(&held)).unwrap(),
        signer_serial(&by_other)
    );
    verifier.verify_successor(&by_other, None).unwrap();
}

/// A signing time is checked against the certificate's validity, so a
/// certificate past its end could claim a time when it was valid; a later
/// epoch may not claim a time well before the document it replaces, so
/// that door is shut. A held document claiming a time still to come
/// holds back nothing signed now.
#[test]
fn a_signer_cannot_claim_an_earlier_time_than_the_held_document() {
    let (_dir, admin, _) = sealers();
    let verifier = admin.verifier();
    let now = now_unix();
    let held = admin.sign(document()).unwrap();
    let mut later = document();
    later.epoch = 2;

    let backdated = admin.sign_at(later.clone(), now - 3_600).unwrap();
    verifier.verify(&backdated).unwrap();
    assert!(matches!(
        verifier.verify_successor(&backdated, Some(&held)),
        Err(SealError::Successor(SuccessorError::SignedEarlier { .. }))
    ));
    // Within the clocks' skew of the held document: taken.
    let skewed = admin.sign_at(later.clone(), now - 60).unwrap();
    verifier.verify_successor(&skewed, Some(&held)).unwrap();

    let mut fast = document();
    fast.epoch = 1;
    let fast = admin.sign_at(fast, now + 3_600).unwrap();
    let signed_now = admin.sign(later).unwrap();
    verifier.verify_successor(&signed_now, Some(&fast)).unwrap();
}
