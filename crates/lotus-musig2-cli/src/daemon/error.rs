//! The daemon's errors: [`DaemonError`] at set-up, [`ApiError`] (a stable
//! code, a message and an HTTP status) for the API's operations.

use std::path::PathBuf;

use lotus_musig2::coordinator::CoordinatorError;
use serde_json::{Value, json};

use super::consent::{self, ConsentError};
use super::store::StoreError;

/// Errors of the daemon's set-up.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is inconsistent.
    #[error("config: {0}")]
    Config(String),
    /// A consent rule is invalid.
    #[error(transparent)]
    Consent(#[from] consent::ConfigError),
    /// A file in the data directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The session store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An API error: a stable code, a message and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or a wrong bearer token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No such request or session.
    #[error("{0}")]
    NotFound(String),
    /// The request or session is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// The request expired before the answer.
    #[error("the request expired")]
    Expired,
    /// The coordinator refused.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// The session store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An upstream service (the Chronik indexer) failed.
    #[error("{0}")]
    Upstream(String),
    /// Something failed on our side (e.g. the identity store).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::Expired => 410,
            Self::Coordinator(e) => match e {
                CoordinatorError::InvalidRequest(_) => 400,
                CoordinatorError::UnknownRequest | CoordinatorError::UnknownSession => 404,
                CoordinatorError::AlreadyJoined | CoordinatorError::WrongState(_) => 409,
                CoordinatorError::SignerNotFound(_) | CoordinatorError::Net(_) => 502,
                _ => 500,
            },
            Self::Store(_) | Self::Internal(_) => 500,
            Self::Upstream(_) => 502,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::BadRequest(_) => "bad_request",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Expired => "request_expired",
            Self::Coordinator(e) => match e {
                CoordinatorError::InvalidRequest(_) => "invalid_request",
                CoordinatorError::UnknownRequest => "unknown_request",
                CoordinatorError::UnknownSession => "unknown_session",
                CoordinatorError::AlreadyJoined => "already_joined",
                CoordinatorError::WrongState(_) => "wrong_state",
                CoordinatorError::SignerNotFound(_) => "signer_not_found",
                CoordinatorError::Net(_) => "network",
                _ => "internal",
            },
            Self::Store(_) => "store",
            Self::Upstream(_) => "upstream",
            Self::Internal(_) => "internal",
        }
    }

    /// `{"error": {"code", "message"}}`.
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code(), "message": self.to_string()}})
    }
}

impl From<ConsentError> for ApiError {
    fn from(e: ConsentError) -> Self {
        match e {
            ConsentError::Unknown => Self::NotFound(e.to_string()),
            ConsentError::Expired => Self::Expired,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn errors_have_a_code_a_status_and_the_documented_shape() {
        let e = ApiError::from(ConsentError::Unknown);
        assert_eq!((e.status(), e.code()), (404, "not_found"));
        assert_eq!(ApiError::Expired.status(), 410);
        let e = ApiError::from(CoordinatorError::AlreadyJoined);
        assert_eq!((e.status(), e.code()), (409, "already_joined"));
        let body = ApiError::Unauthorized.body();
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(body["error"]["message"].is_string());
    }
}
