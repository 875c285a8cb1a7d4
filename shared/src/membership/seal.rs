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
