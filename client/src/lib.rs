//! `quire-client`: the Quire SDK. Dynamo's brain lives here.
//!
//! Storage nodes only store and answer; this crate pulls membership, computes
//! preference lists, runs the get/put quorum state machines over QUIC and
//! hands siblings and contexts to the application.
//!
//! # Layout
//!
//! - [`config`]: the client config file (seeds, TLS files, timeouts).
//! - [`admin`]: forming a cluster, creating stores.
//! - `transport` (internal; public with feature `testing`): QUIC + mutual
//!   TLS, one reused connection per node.
//! - `quorum` (internal): the get and put state machines, sans I/O.
//! - `driver` (internal): the tokio glue that pumps a machine over the
//!   transport.
//! - `health` (internal): failure detection, local to the client.
//! - [`maintain`]: hint delivery, a pass at a time, and the maintenance
//!   loop (hint delivery and anti-entropy).
//! - [`repair`]: Merkle anti-entropy between the home replicas of each
//!   partition.
//! - [`clock`]: the wall clock the SDK reads (shiftable in fault tests).
//! - [`client`]: the public [`Client`] handle: membership, health.
//! - [`operations`]: get, put, delete and status on a [`Client`].
//! - [`store`]: [`Store`], a store handle with conflict resolution and
//!   read-modify-write.
//! - [`resolve`]: [`Resolver`]s that reconcile siblings.
//! - [`error`]: the SDK error type, [`ClientError`].

pub mod admin;
pub mod change;
pub mod client;
pub mod clock;
pub mod config;
pub(crate) mod driver;
pub mod error;
pub(crate) mod health;
pub mod maintain;
pub mod operations;
pub(crate) mod quorum;
pub mod repair;
pub mod resolve;
pub mod store;
// Raw single-node requests: internal to the SDK, public only for tests and
// tools that must speak to one node directly (feature `testing`).
#[cfg(feature = "testing")]
pub mod transport;
#[cfg(not(feature = "testing"))]
pub(crate) mod transport;

pub use change::{DropReport, TransferReport, TransferStatus};
pub use client::{Client, ClientStats};
pub use config::ClientConfig;
pub use error::ClientError;
pub use maintain::MaintenanceReport;
pub use operations::{GetResult, NodeStatus, PutResult};
pub use quire_shared::{ConflictPolicy, Context, Membership, PreferenceList};
pub use quorum::targets::Target;
pub use quorum::{MachineError, NodeFailure, QuorumError};
pub use repair::{ReapPlan, RepairReport};
pub use resolve::{merge_with, KeepSiblings, LastWriteWins, Resolver, Sibling};
pub use store::{Retry, Store};
// Named by `ClientError` and `AdminError`: applications match on them even
// though the transport itself is internal.
pub use transport::{SetupError, TransportError};
