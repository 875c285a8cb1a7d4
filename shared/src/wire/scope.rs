//! What each request needs of the identity that sends it.
//!
//! One match over every request kind, so that a request added to the
//! wire cannot be served before someone decides who may send it.

use super::Request;
use crate::access::Scope;

impl Request {
    /// The scope the node authorizes this request against
    /// ([`crate::access::authorize`]).
    pub fn scope(&self) -> Scope<'_> {
        match self {
            // Anyone may spread a membership document: the node takes it
            // only if an admin signed it (or it is the flip of one).
            Request::Hello { .. }
            | Request::GetMembership
            | Request::Stats
            | Request::PutMembership { .. } => Scope::Open,
            Request::Get { store, .. }
            | Request::MerkleRoot { store, .. }
            | Request::MerkleSegments { store, .. }
            | Request::ScanSegment { store, .. }
            | Request::TransferState { store, .. } => Scope::Read(store),
            // Reaping, transfers and drops change what a node stores, and
            // are run by any client's maintenance for the stores it writes.
            Request::Put { store, .. }
            | Request::Replicate { store, .. }
            | Request::DeleteIfEqual { store, .. }
            | Request::TransferPage { store, .. }
            | Request::DropPartition { store, .. } => Scope::Write(store),
            Request::Hints { .. } | Request::DropHints { .. } => Scope::Hints,
        }
    }
}
