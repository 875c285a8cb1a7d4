//! `quire-client`: the Quire SDK. Dynamo's brain lives here.
//!
//! Storage nodes only store and answer; this crate pulls membership, computes
//! preference lists, runs the get/put quorum state machines over QUIC and
//! hands siblings and contexts to the application.
//!
//! # Getting started
//!
//! Connect with a config file (`quire up` writes one) or a config made in
//! code, then read and write. Keys are anything `AsRef<[u8]>` (`&str`,
//! `String`, `Vec<u8>`, byte strings), values anything `Into<Vec<u8>>`
//! (including `bytes::Bytes`).
//!
//! ```no_run
//! use quire_client::{Client, ClientConfig, Context};
//!
//! # async fn example() -> Result<(), quire_client::ClientError> {
//! let config = ClientConfig::builder()
//!     .seed("127.0.0.1:7400")
//!     .tls_files("client.pem", "client-key.pem", "ca.pem")
//!     .build()?;
//! let client = Client::connect(config).await?;
//! client.put("default", "cart-17", "apple", &Context::empty()).await?;
//! let read = client.get("default", "cart-17").await?;
//! // Several siblings mean concurrent writes: merge them and write the
//! // merge back with `read.context`, which replaces them all.
//! client.put("default", "cart-17", "apple,pear", &read.context).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Most applications are better served by a [`TypedStore`]: values of a
//! Rust type, siblings merged by a function of that type, and
//! read-modify-write with retries ([`TypedStore::update`]). A
//! [`Store`] does the same on bytes ([`Store::update`]). Per-request R, W
//! and timeout: [`RequestOptions`]. Metrics for the application's own
//! Prometheus registry: [`Client::register_metrics`].
//!
//! # Layout
//!
//! - [`config`]: the client config (seeds, TLS from files or PEM in
//!   memory, timeouts), from a file or [`ClientConfig::builder`].
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
//! - `seeds` (internal): a new client's first membership document, the
//!   seeds asked in turn with a short hedge.
//! - [`operations`]: get, put, delete and status on a [`Client`].
//! - [`options`]: [`RequestOptions`], per-request R, W and timeout.
//! - [`store`]: [`Store`], a store handle with conflict resolution and
//!   read-modify-write.
//! - [`typed`]: [`TypedStore`], the same for values of a Rust type.
//! - [`resolve`]: [`Resolver`]s that reconcile siblings.
//! - [`metrics`]: [`ClientMetrics`], the SDK's Prometheus metrics.
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
pub mod metrics;
pub mod operations;
pub mod options;
pub(crate) mod quorum;
pub mod repair;
pub mod resolve;
pub(crate) mod seeds;
pub(crate) mod speculate;
pub mod store;
pub mod typed;
// Raw single-node requests: internal to the SDK, public only for tests and
// tools that must speak to one node directly (feature `testing`).
#[cfg(feature = "testing")]
pub mod transport;
#[cfg(not(feature = "testing"))]
pub(crate) mod transport;

pub use change::{
    DropReport, TransferPace, TransferReport, TransferStatus, DEFAULT_PARALLEL_TRANSFERS,
    DEFAULT_TRANSFER_PACE, MAX_PARALLEL_TRANSFERS,
};
pub use client::{Client, ClientStats};
pub use config::ClientConfig;
pub use error::ClientError;
pub use maintain::{MaintenanceReport, BACKGROUND_TRANSFER_PACE};
pub use metrics::{ClientMetrics, OperationKind};
pub use operations::{GetResult, NodeStatus, PutResult};
pub use options::RequestOptions;
pub use quire_shared::{ConflictPolicy, Context, Membership, PreferenceList};
pub use quorum::targets::Target;
pub use quorum::{MachineError, NodeFailure, QuorumError};
pub use repair::{ReapPlan, RepairReport};
pub use resolve::{merge_with, KeepSiblings, LastWriteWins, Resolver, Sibling};
pub use store::{Retry, Store};
pub use typed::{TypedRead, TypedSiblings, TypedStore};
// Named by `ClientError` and `AdminError`: applications match on them even
// though the transport itself is internal.
pub use transport::{SetupError, TransportError};
