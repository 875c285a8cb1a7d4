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
//! - [`client`]: the public [`Client`] API.
//! - [`error`]: the SDK error type, [`ClientError`].

pub mod client;
pub mod config;
pub mod driver;
pub mod error;
pub mod quorum;
pub mod transport;

pub use client::{Client, GetResult, NodeStatus, PutResult};
pub use config::ClientConfig;
pub use error::ClientError;
pub use quire_shared::{Context, Membership, PreferenceList};
