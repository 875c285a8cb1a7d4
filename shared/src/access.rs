//! Who may do what: the identity a certificate carries, the grants the
//! membership document keeps, and the rule that joins them.
//!
//! Mutual TLS says a peer belongs to the cluster; it does not say what
//! the peer may do. Every certificate the cluster CA issues names a
//! [`Principal`] (a role and a name) in a URI subject alternative name,
//! `quire://ROLE/NAME`. Nodes read it from the peer's certificate when a
//! connection is made and check every request with [`authorize`]:
//!
//! - an **admin** may do everything: the data path of every store, and
//!   changes of the cluster (membership, stores, grants), which are
//!   membership documents it signs (`quire-net`'s `seal`): nodes take a
//!   document by its signature, whoever passes it on;
//! - a **client** may do the data path the SDK needs (get, put, replicate,
//!   hints, Merkle digests, scans, transfers) on the stores its
//!   [`Grant`]s allow, and read the membership;
//! - a **node** certificate is for serving only: a node never calls
//!   another, so a node's key presented as a client can do nothing. A
//!   node's name is its node id, which lets a client check that the node
//!   answering at an address is the member the membership puts there.
//!
//! Pure logic, no I/O: the certificate parsing lives in `quire-net`.

use crate::ids::NodeId;
use crate::limits::valid_store_name;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Scheme and authority that open an identity URI.
pub const IDENTITY_URI_PREFIX: &str = "quire://";

/// Longest principal name, in bytes.
pub const PRINCIPAL_NAME_BYTES_MAX: usize = 64;
/// Most grants a membership document holds (decoding refuses more).
pub const GRANTS_MAX: usize = 1 << 16;
/// Most revoked serials a membership document holds.
pub const REVOKED_MAX: usize = 1 << 16;

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A storage node: serves requests, makes none.
    Node,
    /// An application: the data path of the stores it is granted.
    Client,
    /// An operator: everything, including the cluster's shape and grants.
    Admin,
}

impl Role {
    /// The role's name in identity URIs, on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Client => "client",
            Role::Admin => "admin",
        }
    }

    /// The role called `name`, if any.
    pub fn from_name(name: &str) -> Option<Role> {
        [Role::Node, Role::Client, Role::Admin]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// An identity: the role and name a certificate carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// What the holder may do.
    pub role: Role,
    /// Who it is: grants name it; for a node, its node id in hex.
    pub name: String,
}

impl Principal {
    /// An identity, if `name` is a valid principal name
    /// ([`valid_principal_name`]).
    pub fn new(role: Role, name: impl Into<String>) -> Option<Self> {
        let name = name.into();
        valid_principal_name(&name).then_some(Self { role, name })
    }

    /// The identity of the node with id `id`.
    pub fn node(id: NodeId) -> Self {
        Self {
            role: Role::Node,
            name: id.to_string(),
        }
    }

    /// The URI a certificate carries for this identity.
    pub fn uri(&self) -> String {
        format!("{IDENTITY_URI_PREFIX}{}/{}", self.role.name(), self.name)
    }

    /// The identity a URI names, if it is a well-formed identity URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let (role, name) = uri.strip_prefix(IDENTITY_URI_PREFIX)?.split_once('/')?;
        Self::new(Role::from_name(role)?, name)
    }

    /// The node id a node identity names; `None` for other roles, or a
    /// node name that is not an id.
    pub fn node_id(&self) -> Option<NodeId> {
        match self.role {
            Role::Node => self.name.parse().ok(),
            _ => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.role.name(), self.name)
    }
}

/// Whether `name` may name a principal: 1 to 64 bytes of ASCII letters,
/// digits, `-`, `_` and `.`, so it reads the same in a URI, a file name
/// (`DIR/clients/NAME`) and a log line.
pub fn valid_principal_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= PRINCIPAL_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What a grant allows on a store. Writing includes reading: a writer
/// must read to hand back a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Access {
    /// Get, Merkle digests, scans.
    Read,
    /// Read, and put, replicate, deliver hints, reap, transfer.
    Write,
}

impl Access {
    /// The short form used on the command line: `r` or `rw`.
    pub fn short(self) -> &'static str {
        match self {
            Access::Read => "r",
            Access::Write => "rw",
        }
    }

    /// The access `r` or `rw` names.
    pub fn from_short(s: &str) -> Option<Access> {
        match s {
            "r" => Some(Access::Read),
            "rw" => Some(Access::Write),
            _ => None,
        }
    }
}

/// One client's access to one store, kept in the membership document so
/// that every node applies the same grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The client's principal name.
    pub name: String,
    /// The store.
    pub store: String,
    /// What it may do there.
    pub access: Access,
}

/// Why a list of grants is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// A grant names an invalid principal or store name.
    #[error("grant to {name:?} on store {store:?}: invalid name")]
    BadName {
        /// The principal name.
        name: String,
        /// The store name.
        store: String,
    },
    /// Grants are not sorted by (name, store), or one pair is there twice.
    #[error("grants are not sorted by name and store, or one is there twice")]
    Unsorted,
}

/// Checks a document's grants: valid names, sorted by (name, store) with
/// no pair twice, so that lookups can bisect.
pub fn validate_grants(grants: &[Grant]) -> Result<(), GrantError> {
    for g in grants {
        if !valid_principal_name(&g.name) || !valid_store_name(&g.store) {
            return Err(GrantError::BadName {
                name: g.name.clone(),
                store: g.store.clone(),
            });
        }
    }
    let sorted = grants
        .windows(2)
        .all(|w| (&w[0].name, &w[0].store) < (&w[1].name, &w[1].store));
    if sorted {
        Ok(())
    } else {
        Err(GrantError::Unsorted)
    }
}

/// The access `name` holds on `store`, if any.
pub fn access_of(grants: &[Grant], name: &str, store: &str) -> Option<Access> {
    grants
        .binary_search_by(|g| (g.name.as_str(), g.store.as_str()).cmp(&(name, store)))
        .ok()
        .map(|i| grants[i].access)
}

/// Gives `name` access `access` on `store` (replacing what it had), or
/// takes it away (`None`), keeping the list sorted.
pub fn set_grant(grants: &mut Vec<Grant>, name: &str, store: &str, access: Option<Access>) {
    let at = grants.binary_search_by(|g| (g.name.as_str(), g.store.as_str()).cmp(&(name, store)));
    match (at, access) {
        (Ok(i), Some(access)) => grants[i].access = access,
        (Ok(i), None) => {
            grants.remove(i);
        }
        (Err(i), Some(access)) => grants.insert(
            i,
            Grant {
                name: name.to_string(),
                store: store.to_string(),
                access,
            },
        ),
        (Err(_), None) => {}
    }
}

/// A certificate's serial number (big-endian bytes, as in the
/// certificate).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Serial(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// What a request needs, as the node's dispatch sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Anyone of the cluster: hello, the membership, totals.
    Open,
    /// Reading the named store.
    Read(&'a str),
    /// Writing the named store.
    Write(&'a str),
    /// Hints: each one is for a store, so the node filters them by the
    /// stores the peer may write ([`may`]).
    Hints,
}

/// A refused request: who asked, and what it lacked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{principal} may not {what}")]
pub struct Denied {
    /// The identity that asked.
    pub principal: Principal,
    /// What it was refused, in words ("write store \"cart\"").
    pub what: String,
}

/// Whether `principal` may have `access` to `store` under `grants`.
pub fn may(principal: &Principal, access: Access, store: &str, grants: &[Grant]) -> bool {
    match principal.role {
        Role::Admin => true,
        Role::Node => false,
        Role::Client => {
            access_of(grants, &principal.name, store).is_some_and(|held| held >= access)
        }
    }
}

/// Decides whether `principal` may make a request of scope `scope`.
pub fn authorize(principal: &Principal, scope: Scope<'_>, grants: &[Grant]) -> Result<(), Denied> {
    let denied = |what: String| {
        Err(Denied {
            principal: principal.clone(),
            what,
        })
    };
    match (principal.role, scope) {
        (Role::Admin, _) => Ok(()),
        (Role::Node, _) => denied("make requests: node certificates are for serving".into()),
        (Role::Client, Scope::Open | Scope::Hints) => Ok(()),
        (Role::Client, Scope::Read(store)) if may(principal, Access::Read, store, grants) => Ok(()),
        (Role::Client, Scope::Write(store)) if may(principal, Access::Write, store, grants) => {
            Ok(())
        }
        (Role::Client, Scope::Read(store)) => denied(format!("read store {store:?} (no grant)")),
        (Role::Client, Scope::Write(store)) => denied(format!("write store {store:?} (no grant)")),
    }
}

#[cfg(test)]
mod tests;
