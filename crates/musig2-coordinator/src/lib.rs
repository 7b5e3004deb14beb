#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod events;
pub mod evidence;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod identity;
mod session;
pub mod txrequest;
pub mod wire;

pub use config::{CoordinatorConfig, JoinDecision, JoinPolicy, JoinRequest};
pub use coordinator::{
    Coordinator, FinalSignature, REQUEST_KEY_PREFIX, REQUESTS_TOPIC, SESSION_KEY_PREFIX,
    SIGNER_KEY_PREFIX, SignedTransaction, TransactionSigning,
};
pub use events::{
    ConfirmationBasis, CoordinatorEvent, ErrorCode, RequestId, SessionId, SessionInfo,
};
pub use evidence::{Blame, Evidence};
pub use session::RELAY_MIN_SIGNERS;
pub use txrequest::{RequestRefusal, TransactionView};

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
    /// This node refuses the signing request (its transaction does not
    /// check out, or it is a blind request and blind signing is off).
    #[error("signing request refused: {0}")]
    Refused(#[from] crate::txrequest::RequestRefusal),
    /// A transaction could not be built, signed or verified.
    #[error("transaction: {0}")]
    Transaction(String),
}
