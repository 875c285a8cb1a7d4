//! Who made a membership document: its seal.
//!
//! Every document a node or client accepts carries one. Either an admin
//! signed it (the admin's certificate rides along, so anyone holding the
//! cluster CA can check it), or it is the flip of a signed document whose
//! pending change has finished moving data: the flip is fully determined
//! by the document it flips ([`Membership::flip`]), so any client's
//! maintenance can make it without an admin key, and anyone can check it
//! by flipping the carried document again.
//!
//! A flip carries the document it flips as the bytes that were signed,
//! not as a nested document: a nested one could nest again, and a peer
//! could send a chain deep enough to exhaust a decoder's stack.
//!
//! The checks that need cryptography live in `quire-net`; this module
//! holds the shapes and the bytes that are signed.

use super::Membership;
use crate::access::Serial;
use serde::{Deserialize, Serialize};

/// An admin's signature over a document's signed bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSeal {
    /// The admin's certificate (DER), issued by the cluster CA.
    #[serde(with = "serde_bytes")]
    pub cert: Vec<u8>,
    /// The signature over the signed bytes.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// When it was signed (Unix seconds): the certificate must have been
    /// valid then, so a document outlives the certificate that signed it.
    pub signed_at: u64,
}

/// The proof that a document is the cluster's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seal {
    /// Signed by an admin.
    Admin(AdminSeal),
    /// The flip of the document whose signed bytes are `origin`, which
    /// `seal` signs.
    Flipped {
        /// The flipped document's [`Membership::signed_bytes`].
        #[serde(with = "serde_bytes")]
        origin: Vec<u8>,
        /// The admin's signature over `origin`.
        seal: AdminSeal,
    },
}

/// Why a document's seal is not acceptable, before any cryptography.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealShapeError {
    /// No seal at all.
    #[error(
        "the document is not signed: membership documents must be signed by an admin certificate"
    )]
    Unsealed,
    /// A flip whose carried document does not flip into this one.
    #[error("the document claims to be a flip, but is not the flip of the document it carries")]
    NotTheFlip,
}

impl Membership {
    /// The bytes an admin signs: the document's encoding without its seal.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut unsealed = self.clone();
        unsealed.seal = None;
        postcard::to_allocvec(&unsealed).expect("a membership document always encodes")
    }

    /// The bytes whose signature vouches for this document, and that
    /// signature: its own, or (for a flip) those of the document it flips,
    /// checked here to flip into exactly this one.
    pub fn signed_part(&self) -> Result<(Vec<u8>, &AdminSeal), SealShapeError> {
        match &self.seal {
            None => Err(SealShapeError::Unsealed),
            Some(Seal::Admin(seal)) => Ok((self.signed_bytes(), seal)),
            Some(Seal::Flipped { origin, seal }) => {
                let from: Membership =
                    postcard::from_bytes(origin).map_err(|_| SealShapeError::NotTheFlip)?;
                let flipped = from
                    .flip()
                    .filter(|_| from.seal.is_none())
                    .ok_or(SealShapeError::NotTheFlip)?;
                if flipped.signed_bytes() == self.signed_bytes() {
                    Ok((origin.clone(), seal))
                } else {
                    Err(SealShapeError::NotTheFlip)
                }
            }
        }
    }
}

/// How far a document's signing time may lie behind the one it replaces
/// (seconds): admins' clocks disagree a little, never by more.
pub const SIGNED_AT_SKEW_SECS: u64 = 300;

/// Why a document may not replace the one held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SuccessorError {
    /// The held document revokes the certificate that signed the offer: a
    /// revoked admin cannot sign its own revocation away.
    #[error("the document is signed by a certificate that the held document (epoch {held_epoch}) revokes")]
    SignerRevoked {
        /// The held document's epoch.
        held_epoch: u64,
    },
    /// A later epoch signed well before the document it replaces (or
    /// before now, if that document claims a time still to come): a
    /// certificate past its end cannot sign by claiming an old time.
    #[error("the document was signed at {signed_at} (Unix seconds), more than {SIGNED_AT_SKEW_SECS} s before the document it replaces ({held_signed_at}); check the signing admin's clock")]
    SignedEarlier {
        /// The offered document's signing time.
        signed_at: u64,
        /// The held document's (or now, whichever is earlier).
        held_signed_at: u64,
    },
}

impl Seal {
    /// The admin signature that vouches for the document: its own, or
    /// the flipped document's.
    pub fn admin(&self) -> &AdminSeal {
        match self {
            Seal::Admin(seal) | Seal::Flipped { seal, .. } => seal,
        }
    }
}

impl Membership {
    /// When the admin signature vouching for this document was made.
    pub fn signed_at(&self) -> Option<u64> {
        self.seal.as_ref().map(|s| s.admin().signed_at)
    }

    /// Whether this document, signed by the certificate with serial
    /// `signer` (when known), may replace `held`, at `now` (Unix seconds):
    /// `held` must not revoke its signer, and a later epoch may not claim a
    /// signing time more than [`SIGNED_AT_SKEW_SECS`] before `held`'s, or
    /// before `now` if `held` claims a later time than that (a document
    /// signed by a clock running fast must not hold back every later one).
    /// Documents of the same epoch (two admins' rival changes, settled by
    /// digest) are not compared by time: both were built on the same
    /// predecessor, which both already followed.
    pub fn check_successor(
        &self,
        held: &Membership,
        signer: Option<&Serial>,
        now: u64,
    ) -> Result<(), SuccessorError> {
        if signer.is_some_and(|s| held.revoked.binary_search(s).is_ok()) {
            return Err(SuccessorError::SignerRevoked {
                held_epoch: held.epoch,
            });
        }
        if self.epoch <= held.epoch {
            return Ok(());
        }
        if let (Some(signed_at), Some(held_signed_at)) = (self.signed_at(), held.signed_at()) {
            let held_signed_at = held_signed_at.min(now);
            if signed_at.saturating_add(SIGNED_AT_SKEW_SECS) < held_signed_at {
                return Err(SuccessorError::SignedEarlier {
                    signed_at,
                    held_signed_at,
                });
            }
        }
        Ok(())
    }
}
