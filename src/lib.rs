//! Quire: an always-writeable, Dynamo-style key-value store.
//!
//! This crate is the `quire` command line and the one-stop import for
//! applications: it re-exports the SDK ([`quire_client`]) and the shared
//! types, and adds the tooling the CLI and tests share.
//!
//! # Layout
//!
//! - [`certs`]: the cluster CA and node/client certificates (rcgen).
//! - [`admin`]: forming a cluster and handing out its membership document.
//! - [`bench`](mod@bench): `quire bench`, YCSB-style workloads and baselines.
//! - [`cluster`]: the one launcher of local clusters (in this process or as
//!   node processes), used by the CLI, the bench, the examples and the tests.
//! - [`local`]: `quire up` / `quire down` on top of it.
//! - [`progress`]: progress bars on stderr when it is a terminal.

pub use quire_client::admin;
pub use quire_client::config;
pub mod bench;
pub mod certs;
pub mod cluster;
pub mod local;
pub mod progress;

pub use quire_client::{
    merge_with, Client, ClientConfig, ClientError, ClientMetrics, ClientStats, ConflictPolicy,
    Context, GetResult, KeepSiblings, LastWriteWins, Membership, NodeStatus, OperationKind,
    PreferenceList, PutResult, RequestOptions, Resolver, Retry, Sibling, Store, TypedRead,
    TypedSiblings, TypedStore,
};
pub use quire_shared as shared;
