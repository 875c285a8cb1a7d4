//! The identity a peer's certificate names ([`Principal`]), read once per
//! connection after the handshake has verified the chain.
//!
//! The cluster CA writes the identity as a URI subject alternative name,
//! `quire://ROLE/NAME` ([`Principal::uri`]); a certificate with none, or
//! with two, names nobody and is refused before any request is read.

use quire_shared::access::{Principal, Serial};
use rustls::pki_types::CertificateDer;

/// Why a verified certificate names no identity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The peer presented no certificate (cannot happen past a handshake
    /// that requires one; refused all the same).
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The certificate does not parse as X.509.
    #[error("the peer's certificate does not parse: {0}")]
    Unparsable(String),
    /// No `quire://ROLE/NAME` subject alternative name: a certificate made
    /// before roles existed, or by another tool. Issue a new one with
    /// `quire cert issue`.
    #[error("the certificate names no Quire identity (no quire://ROLE/NAME URI); issue one with `quire cert issue`")]
    NoIdentity,
    /// More than one identity URI: which one would be ambiguous.
    #[error("the certificate names more than one Quire identity")]
    Ambiguous,
}

/// The identity the end-entity certificate `cert` names.
pub fn principal_of(cert: &CertificateDer<'_>) -> Result<Principal, IdentityError> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| IdentityError::Unparsable(e.to_string()))?;
    let mut found = parsed
        .valid_uri_names()
        .filter(|uri| uri.starts_with(quire_shared::access::IDENTITY_URI_PREFIX));
    let uri = found.next().ok_or(IdentityError::NoIdentity)?;
    if found.next().is_some() {
        return Err(IdentityError::Ambiguous);
    }
    Principal::from_uri(uri).ok_or(IdentityError::NoIdentity)
}

/// Who is at the other end of a connection: the identity its certificate
/// names, and that certificate's serial (which a revocation names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The role and name.
    pub principal: Principal,
    /// The certificate's serial number.
    pub serial: Serial,
}

/// The end-entity certificate the peer at the other end of `conn`
/// presented.
fn peer_certificate(conn: &quinn::Connection) -> Result<CertificateDer<'static>, IdentityError> {
    let chain = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(IdentityError::NoCertificate)?;
    chain.first().cloned().ok_or(IdentityError::NoCertificate)
}

/// The identity of the peer at the other end of `conn`.
pub fn peer_principal(conn: &quinn::Connection) -> Result<Principal, IdentityError> {
    principal_of(&peer_certificate(conn)?)
}

/// The identity and certificate serial of the peer at the other end of
/// `conn`.
pub fn peer(conn: &quinn::Connection) -> Result<Peer, IdentityError> {
    let cert = peer_certificate(conn)?;
    Ok(Peer {
        principal: principal_of(&cert)?,
        serial: serial_of(&cert)?,
    })
}

/// The serial number of `cert`.
pub fn serial_of(cert: &CertificateDer<'_>) -> Result<Serial, IdentityError> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| IdentityError::Unparsable(e.to_string()))?;
    Ok(Serial(parsed.serial().to_vec()))
}
