//! Signing membership documents as an admin, and checking any document's
//! seal against the cluster CA.
//!
//! Mutual TLS says who is talking, not who made what they pass on: a
//! client spreads documents it was given, and a node hands out the one it
//! holds. So every document carries a [`Seal`] that anyone holding the
//! cluster CA can check, and nodes and clients take only documents whose
//! seal verifies: signed by a certificate the CA issued to an admin (as of
//! when it signed), not revoked by the document itself, or the flip of
//! such a document. The epoch still only grows, so an old signed document
//! cannot roll a node back either. An offer is also checked against the
//! document held ([`Verifier::verify_successor`]): its signer must not be
//! one the held document revokes, and a later epoch claims no signing
//! time well before the held document's.

use crate::identity::principal_of;
use crate::tls::{load_certs, PemOrigin, TlsError, TlsFiles, TlsMaterial, TlsSource};
use quire_shared::access::{Role, Serial};
use quire_shared::{AdminSeal, Membership, Seal, SealShapeError};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor, UnixTime};
use std::path::Path;
use std::time::Duration;

/// Why a document's seal does not verify, or a document cannot be sealed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// No seal, or a flip that is not the flip it claims to be.
    #[error(transparent)]
    Shape(#[from] SealShapeError),
    /// The signing certificate does not chain to the cluster CA, or was
    /// not valid when it signed.
    #[error("the document's signer is not trusted by the cluster CA: {0}")]
    Untrusted(String),
    /// The signing certificate is not an admin's.
    #[error("the document is signed by {0}; only admins may change the cluster")]
    NotAdmin(String),
    /// The document itself revokes the certificate that signed it.
    #[error("the document is signed by a revoked certificate (serial {0})")]
    Revoked(Serial),
    /// The signature does not match the document.
    #[error("the document's signature does not verify")]
    BadSignature,
    /// A document that may not replace the held one (its signer is
    /// revoked there, or it claims an earlier signing time).
    #[error(transparent)]
    Successor(#[from] quire_shared::SuccessorError),
    /// This side cannot sign: its identity is not an admin's, or its key
    /// is not an ECDSA P-256 key.
    #[error("cannot sign a membership document: {0}")]
    CannotSign(String),
    /// The CA, certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Seconds since the Unix epoch, now: the clock seals are made and
/// checked by, wherever a signing time is compared with the present.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks seals against the cluster CA.
#[derive(Clone, Debug)]
pub struct Verifier {
    roots: Vec<TrustAnchor<'static>>,
}

impl Verifier {
    /// The verifier for the cluster whose CA certificate is in `ca`.
    pub fn load(ca: &Path) -> Result<Self, TlsError> {
        Self::from_certs(
            &load_certs(ca, "CA certificate")?,
            &PemOrigin::File(ca.to_owned()),
        )
    }

    /// The verifier for the cluster CA certificates `ca` (from `from`).
    pub fn from_certs(ca: &[CertificateDer<'_>], from: &PemOrigin) -> Result<Self, TlsError> {
        let roots = ca
            .iter()
            .map(|c| {
                webpki::anchor_from_trusted_cert(c)
                    .map(|a| a.to_owned())
                    .map_err(|e| TlsError::BadCa {
                        from: from.clone(),
                        source: rustls::Error::General(e.to_string()),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { roots })
    }

    /// Whether `doc`'s seal verifies (see the module doc for the rules).
    pub fn verify(&self, doc: &Membership) -> Result<(), SealError> {
        self.verify_signer(doc).map(|_| ())
    }

    /// Whether `doc` may replace `held` (none on a node or client that has
    /// no document yet): its seal verifies, and
    /// [`Membership::check_successor`] allows it (the held document does
    /// not revoke its signer; a later epoch claims no signing time well
    /// before the held document's). So a revoked admin cannot sign its own
    /// revocation away, and one whose certificate has expired cannot go on
    /// signing by claiming a time when it was valid. Returns the signer's
    /// serial, for a node to check again in the write that stores `doc`.
    pub fn verify_successor(
        &self,
        doc: &Membership,
        held: Option<&Membership>,
    ) -> Result<Serial, SealError> {
        let serial = self.verify_signer(doc)?;
        if let Some(held) = held {
            doc.check_successor(held, Some(&serial), now_unix())?;
        }
        Ok(serial)
    }

    /// Verifies `doc`'s seal and returns its signer's serial.
    fn verify_signer(&self, doc: &Membership) -> Result<Serial, SealError> {
        let (signed, seal) = doc.signed_part()?;
        let AdminSeal {
            cert,
            signature,
            signed_at,
        } = seal;

        let der = CertificateDer::from(cert.as_slice());
        let signer = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| SealError::Untrusted(e.to_string()))?;
        let at = UnixTime::since_unix_epoch(Duration::from_secs(*signed_at));
        signer
            .verify_for_usage(
                &[webpki::ring::ECDSA_P256_SHA256],
                &self.roots,
                &[],
                at,
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(|e| SealError::Untrusted(e.to_string()))?;
        let principal = principal_of(&der).map_err(|e| SealError::NotAdmin(e.to_string()))?;
        if principal.role != Role::Admin {
            return Err(SealError::NotAdmin(principal.to_string()));
        }
        let serial = Serial(signer.serial().to_vec());
        if doc.revoked.binary_search(&serial).is_ok() {
            return Err(SealError::Revoked(serial));
        }
        signer
            .verify_signature(webpki::ring::ECDSA_P256_SHA256, &signed, signature)
            .map_err(|_| SealError::BadSignature)?;
        Ok(serial)
    }
}

/// Seals documents this side makes: signs them if its identity is an
/// admin's, or seals flips (which need no signature) for anyone.
pub struct Sealer {
    verifier: Verifier,
    cert: CertificateDer<'static>,
    /// The signing key, for an admin identity with an ECDSA P-256 key;
    /// otherwise why this side cannot sign.
    key: Result<EcdsaKeyPair, String>,
}

impl Sealer {
    /// Loads this side's identity (certificate and key) and the cluster CA.
    pub fn load(tls: &TlsFiles) -> Result<Self, TlsError> {
        Self::from_material(&TlsMaterial::load(&TlsSource::Files(tls.clone()))?)
    }

    /// The sealer for identity and CA already loaded, from files or memory.
    pub fn from_material(tls: &TlsMaterial) -> Result<Self, TlsError> {
        let verifier = Verifier::from_certs(&tls.ca, &tls.ca_from)?;
        let cert = tls.certs[0].clone();
        let key = match principal_of(&cert) {
            Ok(p) if p.role == Role::Admin => match &tls.key {
                PrivateKeyDer::Pkcs8(der) => EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_ASN1_SIGNING,
                    der.secret_pkcs8_der(),
                    &SystemRandom::new(),
                )
                .map_err(|e| format!("the admin key is not an ECDSA P-256 key: {e}")),
                _ => Err("the admin key is not a PKCS#8 ECDSA P-256 key".to_string()),
            },
            Ok(p) => Err(format!(
                "this identity is {p}; changing the cluster needs an admin certificate"
            )),
            Err(e) => Err(e.to_string()),
        };
        Ok(Self {
            verifier,
            cert,
            key,
        })
    }

    /// The verifier for the same cluster.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// True when `doc` carries this identity's signature, directly or as
    /// the flip of a document it signed: after a CA rotation, a document
    /// re-signed by the new admin certificate needs no second re-signing.
    pub fn signed_this(&self, doc: &Membership) -> bool {
        match &doc.seal {
            Some(Seal::Admin(seal)) | Some(Seal::Flipped { seal, .. }) => {
                seal.cert == self.cert.as_ref()
            }
            None => false,
        }
    }

    /// Seals `doc`, a document made on top of `base`: as the flip of
    /// `base` when it is exactly that (anyone may), else signed as this
    /// admin.
    pub fn seal(&self, mut doc: Membership, base: &Membership) -> Result<Membership, SealError> {
        doc.seal = None;
        let is_flip = base
            .flip()
            .is_some_and(|f| f.signed_bytes() == doc.signed_bytes());
        if is_flip && self.verifier.verify(base).is_ok() {
            if let Ok((origin, seal)) = base.signed_part() {
                doc.seal = Some(Seal::Flipped {
                    origin,
                    seal: seal.clone(),
                });
                return Ok(doc);
            }
        }
        self.sign(doc)
    }

    /// Signs `doc` as this admin.
    pub fn sign(&self, doc: Membership) -> Result<Membership, SealError> {
        self.sign_at(doc, now_unix())
    }

    /// Signs `doc` claiming `signed_at` (Unix seconds) as its time: tests
    /// of what a signer lying about its time can and cannot do.
    #[doc(hidden)]
    pub fn sign_at(&self, mut doc: Membership, signed_at: u64) -> Result<Membership, SealError> {
        let key = self
            .key
            .as_ref()
            .map_err(|why| SealError::CannotSign(why.clone()))?;
        doc.seal = None;
        let signature = key
            .sign(&SystemRandom::new(), &doc.signed_bytes())
            .map_err(|_| SealError::CannotSign("the key refused to sign".into()))?;
        doc.seal = Some(Seal::Admin(AdminSeal {
            cert: self.cert.to_vec(),
            signature: signature.as_ref().to_vec(),
            signed_at,
        }));
        Ok(doc)
    }
}

#[cfg(test)]
mod tests;
