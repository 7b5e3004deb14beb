//! The crate's error type.

/// Errors of `musig2-election`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElectionError {
    /// An election needs at least one signer.
    #[error("cannot elect a coordinator: no signers")]
    NoSigners,
    /// A name that is not one of the four election methods.
    #[error(
        "unknown election method {name:?} (expected lexicographic, hash-based, first-signer or last-signer)"
    )]
    UnknownMethod {
        /// The name given.
        name: String,
    },
}
