//! `quire-client`: the Quire SDK. Dynamo's brain lives here.
//!
//! Storage nodes only store and answer; this crate pulls membership, computes
//! preference lists, runs the get/put quorum state machines over QUIC and
//! hands siblings and contexts to the application.
//!
//! # Layout
//!
//! - [`config`]: the client config file (seeds, TLS files, timeouts).
//! - [`transport`]: QUIC + mutual TLS, one reused connection per node.
//! - [`quorum`]: the get and put state machines, sans I/O.
//! - [`driver`]: the tokio glue that pumps a machine over the transport.
//! - [`health`]: failure detection, local to the client.
//! - [`maintain`]: hint delivery, a pass at a time.
//! - [`client`]: the public [`Client`] API.
//! - [`store`]: [`Store`], a store handle with conflict resolution and
//!   read-modify-write.
//! - [`resolve`]: [`Resolver`]s that reconcile siblings.
//! - [`error`]: the SDK error type, [`ClientError`].

pub mod client;
pub mod config;
pub mod driver;
pub mod error;
pub mod health;
pub mod maintain;
pub mod quorum;
pub mod resolve;
pub mod store;
pub mod transport;

pub use client::{Client, ClientStats, GetResult, NodeStatus, PutResult};
pub use config::ClientConfig;
pub use error::ClientError;
pub use maintain::MaintenanceReport;
pub use quire_shared::{ConflictPolicy, Context, Membership, PreferenceList};
pub use resolve::{merge_with, KeepSiblings, LastWriteWins, Resolver, Sibling};
pub use store::{Retry, Store};
