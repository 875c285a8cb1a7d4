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
//! The checks that need cryptography live in `quire-net`; this module
//! holds the shapes and the bytes that are signed.

use super::Membership;
use serde::{Deserialize, Serialize};

/// The proof that a document is the cluster's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seal {
    /// Signed by an admin.
    Admin {
        /// The admin's certificate (DER), issued by the cluster CA.
        #[serde(with = "serde_bytes")]
        cert: Vec<u8>,
        /// The signature over [`Membership::signed_bytes`].
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
        /// When it was signed (Unix seconds): the certificate must have
        /// been valid then, so a document outlives the certificate that
        /// signed it.
        signed_at: u64,
    },
    /// The flip of this admin-signed document.
    Flipped(Box<Membership>),
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
    /// A flip whose carried document is not signed by an admin, or does
    /// not flip into this one.
    #[error("the document claims to flip epoch {from}, but is not that document's flip")]
    NotTheFlip {
        /// The epoch of the carried document.
        from: u64,
    },
}

impl Membership {
    /// The bytes an admin signs: the document's encoding without its seal.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut unsealed = self.clone();
        unsealed.seal = None;
        postcard::to_allocvec(&unsealed).expect("a membership document always encodes")
    }

    /// The admin-signed document whose signature vouches for this one:
    /// itself, or the document it is the flip of (checked here: the
    /// carried document must flip into exactly this one).
    pub fn signed_origin(&self) -> Result<&Membership, SealShapeError> {
        match &self.seal {
            None => Err(SealShapeError::Unsealed),
            Some(Seal::Admin { .. }) => Ok(self),
            Some(Seal::Flipped(from)) => {
                let not_the_flip = || SealShapeError::NotTheFlip { from: from.epoch };
                if !matches!(from.seal, Some(Seal::Admin { .. })) {
                    return Err(not_the_flip());
                }
                let flipped = from.flip().ok_or_else(not_the_flip)?;
                if flipped.signed_bytes() == self.signed_bytes() {
                    Ok(from)
                } else {
                    Err(not_the_flip())
                }
            }
        }
    }
}
