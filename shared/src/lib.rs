//! `quire-shared`: the logic every Quire process agrees on, with no I/O.
//!
//! Nodes and clients must hash keys, walk the ring, merge versions and encode
//! messages identically, so that logic lives here once. Nothing in this crate
//! opens a socket, reads a clock or touches a file: time is passed in, and
//! every function can be property-tested in microseconds.
//!
//! # Layout
//!
//! - [`ids`]: typed node, actor and cluster ids.
//! - [`ring`]: key positions (MD5), partitions, preference lists.
//! - [`claim`]: which node owns which partition: weighted, zone-aware, and
//!   moving few partitions when the cluster changes.
//! - [`dvvset`]: dotted version vector sets, the per-key version history that
//!   keeps concurrent writes as siblings.
//! - [`object`]: what a key stores (a DVVSet of timestamped values or
//!   tombstones) and the opaque context token handed to applications.
//! - [`merkle`]: Merkle segment hashes of a partition, for anti-entropy.
//! - [`membership`]: the membership document: members, stores, owners, epoch.
//! - [`replica`]: what a replica does to a key's stored object for each
//!   write (coordinated put, stand-in put, replication, hint drop,
//!   membership offer); nodes and the client's simulation run this code.
//! - [`reap`]: tombstone reaping, which deleted keys may be removed for
//!   good (both phases' rules).
//! - [`limits`]: sizes checked before anything is allocated or stored.
//! - [`bounded`]: sequences decoded with a cap on their length.
//! - [`wire`]: requests, responses, error codes and length-prefixed framing.

pub mod access;
pub mod bounded;
pub mod claim;
pub mod dvvset;
pub mod ids;
pub mod limits;
pub mod membership;
pub mod merkle;
pub mod object;
pub mod reap;
pub mod replica;
pub mod ring;
pub mod slots;
pub mod wire;

pub use dvvset::{Dvvset, VersionVector};
pub use ids::{ActorId, ClusterId, IdParseError, NodeId};
pub use limits::StoreLimits;
pub use membership::{
    AdminSeal, Change, ChangeError, ConflictPolicy, Durability, Member, MemberState, Membership,
    MembershipError, MembershipVersion, Pending, Seal, SealShapeError, StoreConfig, SuccessorError,
    Transfer,
};
pub use object::{last_write_wins, Context, ContextError, Object, Value};
pub use ring::PreferenceList;
