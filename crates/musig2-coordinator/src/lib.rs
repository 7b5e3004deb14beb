#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod events;
pub mod evidence;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod session;
pub mod wire;

pub use config::{CoordinatorConfig, JoinDecision, JoinPolicy};
pub use coordinator::{
    Coordinator, FinalSignature, REQUEST_KEY_PREFIX, REQUESTS_TOPIC, SESSION_KEY_PREFIX,
    SIGNER_KEY_PREFIX,
};
pub use events::{
    ConfirmationBasis, CoordinatorEvent, ErrorCode, RequestId, SessionId, SessionInfo,
};
pub use evidence::{Blame, Evidence};

/// Errors of the coordinator API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The network layer failed.
    #[error(transparent)]
    Net(#[from] musig2_net::NetError),
    /// A configuration value is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The signing request is malformed (no signers, our key missing, …).
    #[error("invalid signing request: {0}")]
    InvalidRequest(String),
    /// No such signing request is known or discoverable.
    #[error("unknown signing request")]
    UnknownRequest,
    /// No such session.
    #[error("unknown session")]
    UnknownSession,
    /// This node already takes part in that session.
    #[error("already joined")]
    AlreadyJoined,
    /// The call does not fit the session's state (e.g. round 2 before round 1).
    #[error("wrong session state: {0}")]
    WrongState(String),
    /// A co-signer's key could not be found in the DHT in time.
    #[error("signer {0} not found")]
    SignerNotFound(String),
    /// A message could not be encoded.
    #[error("encoding: {0}")]
    Encoding(String),
}
