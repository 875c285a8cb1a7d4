//! The SDK's error type: one enum, every variant saying what to do next.

use crate::quorum::{MachineError, NodeFailure, QuorumError};
use crate::transport::{SetupError, TransportError};
use quire_shared::wire::{ErrorCode, ErrorReply};
use quire_shared::ContextError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The client config could not be read.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A config made with [`crate::ClientConfig::builder`] lacks a setting
    /// it cannot do without.
    #[error("client config incomplete: {0}")]
    Incomplete(crate::config::MissingSetting),
    /// TLS or the local socket could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// No seed answered with a membership document.
    #[error("no seed answered with a membership document: {}", .0.join("; "))]
    NoSeedReachable(Vec<String>),
    /// The store does not exist in the membership document.
    #[error("store {store:?} does not exist (stores: {known})")]
    UnknownStore {
        /// The name asked for.
        store: String,
        /// The stores that exist, comma-separated.
        known: String,
    },
    /// The request is invalid (bad key, value too large, a context the
    /// replicas never issued), or would break the store's object limits
    /// (`TooManySiblings`, `ObjectTooLarge`: the message names the key and
    /// the way out); no node stored it.
    #[error("invalid request ({code:?}): {message}")]
    Invalid {
        /// The reason code, as a node would give it.
        code: ErrorCode,
        /// Details.
        message: String,
    },
    /// A node refused the write because it is not a home replica of the
    /// key in its (newer) membership; the client refreshed its membership
    /// and retried once, and the cluster changed again meanwhile. Retry.
    #[error("membership changed during the request: {message}")]
    StaleMembership {
        /// What the node said.
        message: String,
    },
    /// The nodes refused this client's identity the request: its
    /// certificate's role, or its grants, do not allow it (the message
    /// names the identity, the role and the store). An admin grants
    /// access with `quire grant`.
    #[error("forbidden: {message}")]
    Forbidden {
        /// What the node said.
        message: String,
    },
    /// A context token does not decode.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Too few replicas answered.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// A single-node request failed in transport.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A single node refused a request.
    #[error("node refused: {0}")]
    Refused(ErrorReply),
    /// A [`crate::RequestOptions`] value is out of range: R or W must be
    /// between 1 and the store's N, a timeout must not be zero. Nothing
    /// was sent.
    #[error("request option {option} = {value} is out of range (1..={max})")]
    InvalidOption {
        /// `r`, `w` or `timeout`.
        option: &'static str,
        /// The value given.
        value: u64,
        /// The largest value allowed (the store's N for R and W).
        max: u64,
    },
    /// A stored value is not a value of the [`crate::TypedStore`]'s type:
    /// written by another writer, or before the type changed.
    #[error("the value of key {key:?} does not decode as {type_name}: {reason}")]
    Decode {
        /// The key, lossily as text.
        key: String,
        /// The type it should hold.
        type_name: &'static str,
        /// Why it does not.
        reason: crate::typed::DecodeError,
    },
    /// A value could not be encoded for a [`crate::TypedStore`] (a type
    /// postcard cannot write, such as a map with non-string keys in some
    /// serde representations). Nothing was sent.
    #[error("a {type_name} cannot be encoded: {source}")]
    Encode {
        /// The value's type.
        type_name: &'static str,
        /// postcard's reason.
        source: postcard::Error,
    },
    /// The store's R or W cannot be met for this key: it is zero, or more
    /// than the replicas chosen for the key (a preference list shorter
    /// than N). Nothing was sent; fix the store's settings or the cluster.
    #[error("{operation} cannot wait for {needed} of the key's {targets} replicas (R and W must be between 1 and N)")]
    InvalidQuorum {
        /// `get` or `put`.
        operation: &'static str,
        /// R or W.
        needed: usize,
        /// Replicas chosen for the key.
        targets: usize,
    },
}

impl From<MachineError> for ClientError {
    fn from(e: MachineError) -> Self {
        match e {
            MachineError::Quorum(q) => match refused_request(&q) {
                Some((ErrorCode::Forbidden, message)) => ClientError::Forbidden { message },
                Some((code, message)) => ClientError::Invalid { code, message },
                None => ClientError::Quorum(q),
            },
            MachineError::Rejected(ErrorCode::NotOwner, message) => {
                ClientError::StaleMembership { message }
            }
            MachineError::Rejected(ErrorCode::Forbidden, message) => {
                ClientError::Forbidden { message }
            }
            MachineError::Rejected(code, message) => ClientError::Invalid { code, message },
            MachineError::InvalidQuorum {
                operation,
                needed,
                targets,
            } => ClientError::InvalidQuorum {
                operation,
                needed,
                targets,
            },
        }
    }
}

/// The refusal behind a failed write that no replica stored because of
/// the write itself: it would break the store's object limits, or its
/// context is not one the key's replicas issued, or the client may not
/// make it (`Forbidden`). The quorum machines try
/// every home replica in turn on such a refusal, so it ends as a quorum
/// failure; the caller is better told what to do about the key.
fn refused_request(q: &QuorumError) -> Option<(ErrorCode, String)> {
    if q.succeeded > 0 {
        return None;
    }
    q.failures.iter().find_map(|(_, failure)| match failure {
        NodeFailure::Refused(ErrorReply {
            code:
                code @ (ErrorCode::TooManySiblings
                | ErrorCode::ObjectTooLarge
                | ErrorCode::InvalidContext
                | ErrorCode::Forbidden),
            message,
        }) => Some((*code, message.clone())),
        _ => None,
    })
}
