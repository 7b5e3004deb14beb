//! The direct messages between co-signers, encoded with postcard inside the
//! network layer's versioned frame (`/lotus/musig2/3.0.0`, wire version 1).
//! An unknown variant or trailing bytes are decoding errors, never guesses.

use musig2_core::{NonceCommitment, PartialSignature, PublicKey, PublicNonce, Signature};
use musig2_security::{MessageKind, SessionAnnouncement};
use serde::{Deserialize, Serialize};

/// A message to one co-signer about one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    /// The session ([`SessionAnnouncement::session_id`]).
    pub session_id: [u8; 32],
    /// The sender's sequence number in this session, strictly increasing.
    pub sequence: u64,
    /// The sender's clock, ms since the epoch.
    pub sent_at: u64,
    /// What it says.
    pub body: Body,
}

/// The message bodies, one per protocol step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// The signed signing request, sent by its creator to each co-signer.
    SigningRequest(Box<SessionAnnouncement>),
    /// A signer joins: its key and peer id, bound by its signature over
    /// [`join_digest`].
    SessionJoin {
        /// The joiner's index in the sorted key list.
        signer_index: u32,
        /// The joiner's key.
        pubkey: PublicKey,
        /// The joiner's peer id.
        peer_id: String,
        /// Lotus Schnorr signature over [`join_digest`].
        signature: Signature,
    },
    /// Phase 0: a commitment to the sender's public nonce.
    NonceCommit {
        /// The sender's index.
        signer_index: u32,
        /// The commitment.
        commitment: NonceCommitment,
    },
    /// Round 1: the sender's public nonce.
    NonceShare {
        /// The sender's index.
        signer_index: u32,
        /// The nonce.
        nonce: PublicNonce,
    },
    /// Round 2: the sender's partial signature.
    PartialSigShare {
        /// The sender's index.
        signer_index: u32,
        /// The partial signature.
        partial_sig: PartialSignature,
    },
    /// The sender aborts the session.
    SessionAbort {
        /// Why.
        reason: String,
    },
    /// The coordinator broadcast the transaction with this signature.
    SignatureFinalized {
        /// The final signature.
        signature: Signature,
    },
    /// The sender rejected one of our messages.
    ValidationError {
        /// A stable error code.
        code: String,
        /// Details.
        detail: String,
    },
}

impl Body {
    /// The security layer's name for this message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::SigningRequest(_) => MessageKind::SigningRequest,
            Self::SessionJoin { .. } => MessageKind::SessionJoin,
            Self::NonceCommit { .. } => MessageKind::NonceCommit,
            Self::NonceShare { .. } => MessageKind::NonceShare,
            Self::PartialSigShare { .. } => MessageKind::PartialSigShare,
            Self::SessionAbort { .. } => MessageKind::SessionAbort,
            Self::SignatureFinalized { .. } => MessageKind::SignatureFinalized,
            Self::ValidationError { .. } => MessageKind::ValidationError,
        }
    }

    /// The signer index the body claims, if any.
    pub fn claimed_index(&self) -> Option<usize> {
        match self {
            Self::SessionJoin { signer_index, .. }
            | Self::NonceCommit { signer_index, .. }
            | Self::NonceShare { signer_index, .. }
            | Self::PartialSigShare { signer_index, .. } => Some(*signer_index as usize),
            _ => None,
        }
    }
}

/// What a joining signer signs: `SHA256("lotus-musig2/session-join/v1" ‖
/// request_id ‖ ser33(pubkey) ‖ peer_id)`.
pub fn join_digest(request_id: &[u8; 32], pubkey: &PublicKey, peer_id: &str) -> [u8; 32] {
    let mut bytes = Vec::with_capacity(64 + 33 + peer_id.len());
    bytes.extend_from_slice(b"lotus-musig2/session-join/v1");
    bytes.extend_from_slice(request_id);
    bytes.extend_from_slice(&pubkey.to_bytes());
    bytes.extend_from_slice(peer_id.as_bytes());
    musig2_core::hash::sha256(&bytes)
}

/// Encodes a message.
pub fn encode(message: &WireMessage) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(message)
}

/// Decodes a message; trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<WireMessage, postcard::Error> {
    let (message, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(message)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No byte string from a peer makes decoding panic.
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        /// Every message survives encoding; a trailing byte or a truncation is refused.
        #[test]
        fn round_trip_and_strictness(session in any::<[u8; 32]>(), sequence in any::<u64>(), reason in ".{0,40}") {
            let message = WireMessage { session_id: session, sequence, sent_at: 7, body: Body::SessionAbort { reason } };
            let mut bytes = encode(&message).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), message);
            bytes.push(0);
            prop_assert!(decode(&bytes).is_err());
            bytes.truncate(bytes.len().saturating_sub(2));
            prop_assert!(decode(&bytes).is_err());
        }
    }
}
