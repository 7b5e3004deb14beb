//! The crate's single error type. Every failure is a value, never a panic, and
//! every failure caused by one participant names that participant.

use core::fmt;

/// What a participant contributed to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Contribution {
    /// A public key in the key list.
    PublicKey,
    /// A public nonce (Round 1).
    PublicNonce,
    /// A partial signature (Round 2).
    PartialSignature,
    /// A public nonce that does not open its Phase 0 commitment.
    NonceCommitment,
}

impl fmt::Display for Contribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PublicKey => "public key",
            Self::PublicNonce => "public nonce",
            Self::PartialSignature => "partial signature",
            Self::NonceCommitment => "nonce (does not match its commitment)",
        })
    }
}

/// Errors of `musig2-core`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A byte string has the wrong length.
    #[error("{what}: expected {expected} bytes, got {got}")]
    InvalidLength {
        /// What was being parsed.
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// Bytes that should encode a curve point do not.
    #[error("{what}: not a valid secp256k1 point")]
    InvalidPoint {
        /// What was being parsed.
        what: &'static str,
    },
    /// A scalar is not below the group order (or is zero where zero is not allowed).
    #[error("{what}: scalar out of range")]
    InvalidScalar {
        /// What was being parsed.
        what: &'static str,
    },
    /// A participant's contribution is invalid; `signer` is its index in the key list.
    #[error("signer {signer}: invalid {contribution}")]
    InvalidContribution {
        /// Index of the culprit in the (sorted) key list.
        signer: usize,
        /// Which contribution was bad.
        contribution: Contribution,
    },
    /// Key aggregation needs at least one key.
    #[error("the key list is empty")]
    EmptyKeyList,
    /// The aggregate key is the point at infinity (only reachable with crafted keys).
    #[error("the aggregate key is the point at infinity")]
    AggregateKeyInfinity,
    /// A tweak is not below the group order.
    #[error("tweak is not below the group order")]
    TweakOutOfRange,
    /// Applying a tweak gives the point at infinity.
    #[error("tweak gives the point at infinity")]
    TweakInfinity,
    /// A signer index is outside the key list.
    #[error("signer index {index} is outside a key list of {len} keys")]
    SignerIndexOutOfRange {
        /// The index given.
        index: usize,
        /// The number of keys.
        len: usize,
    },
    /// The signing key pair is not the key at the given index of the key list.
    #[error("the signing key is not key {index} of the key list")]
    SignerKeyMismatch {
        /// The index given.
        index: usize,
    },
    /// The secret nonce was generated for another public key.
    #[error("the secret nonce belongs to another public key")]
    SecretNonceKeyMismatch,
    /// The secret nonce is invalid (zero): for example, a zeroed, already-used nonce.
    #[error("invalid secret nonce")]
    InvalidSecretNonce,
    /// The number of public nonces or partial signatures differs from the number of keys.
    #[error("expected {expected} contributions, got {got}")]
    ContributionCount {
        /// The number of keys.
        expected: usize,
        /// The number given.
        got: usize,
    },
    /// A signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
}

impl Error {
    /// The index of the signer this error blames, if it blames one.
    pub fn culprit(&self) -> Option<usize> {
        match self {
            Self::InvalidContribution { signer, .. } => Some(*signer),
            _ => None,
        }
    }
}
