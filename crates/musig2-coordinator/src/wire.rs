//! The direct messages between co-signers, encoded with postcard inside the
//! network layer's versioned frame (`/lotus/musig2/3.0.0`, wire version 1).
//! An unknown variant or trailing bytes are decoding errors, never guesses.

use musig2_core::{
    NonceCommitment, PartialSignature, PublicKey, PublicNonce, Signature, SignedContribution,
    Statement,
};
use musig2_security::{MessageKind, SessionAnnouncement};

use crate::evidence::Evidence;
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

/// The message bodies, one per protocol step. Every contribution (commitment,
/// nonce, partial signature, abort, finalization) is signed by its sender's
/// signing key as a [`musig2_core::SignedContribution`], so that what a signer
/// said can be shown to anyone (see [`crate::evidence`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// The signed signing request, sent by its creator to each co-signer
    /// (and by a signer to a joiner that saw another announcement under the
    /// same session id, which then holds the creator's equivocation).
    SigningRequest(Box<SessionAnnouncement>),
    /// A signer joins: its key, its peer id and the digest of the
    /// announcement it joins, bound by its signature over [`join_digest`].
    SessionJoin {
        /// The joiner's index in the sorted key list.
        signer_index: u32,
        /// The joiner's key.
        pubkey: PublicKey,
        /// The joiner's peer id.
        peer_id: String,
        /// `Signed::digest` of the announcement the joiner saw.
        announcement_digest: [u8; 32],
        /// Lotus Schnorr signature over [`join_digest`].
        signature: Signature,
    },
    /// Phase 0: a commitment to the sender's public nonce.
    NonceCommit {
        /// The sender's index.
        signer_index: u32,
        /// The commitment.
        commitment: NonceCommitment,
        /// The sender's signature ([`Statement::NonceCommitment`]).
        signature: Signature,
    },
    /// Round 1: the sender's public nonce.
    NonceShare {
        /// The sender's index.
        signer_index: u32,
        /// The nonce.
        nonce: PublicNonce,
        /// The sender's signature ([`Statement::PublicNonce`]).
        signature: Signature,
    },
    /// Round 2: the sender's partial signature and the digest of the view it
    /// signed over ([`musig2_core::evidence::transcript`]).
    PartialSigShare {
        /// The sender's index.
        signer_index: u32,
        /// The partial signature.
        partial_sig: PartialSignature,
        /// The sender's transcript digest.
        transcript: [u8; 32],
        /// The sender's signature ([`Statement::PartialSignature`]).
        signature: Signature,
    },
    /// The sender aborts the session, naming whom it blames and on what
    /// grounds; signed ([`Statement::Abort`] over [`AbortReport::digest`]).
    SessionAbort {
        /// What the sender reports.
        report: Box<AbortReport>,
        /// The sender's signature.
        signature: Signature,
    },
    /// The coordinator reports that it broadcast the final signature;
    /// signed ([`Statement::Finalized`] over [`finalized_digest`]).
    SignatureFinalized {
        /// The final signature.
        signature: Signature,
        /// The broadcast transaction's id, when the coordinator knows it
        /// (a node with a Chronik client can check it).
        txid: Option<[u8; 32]>,
        /// The coordinator's signature.
        attestation: Signature,
    },
    /// The sender rejected one of our messages.
    ValidationError {
        /// A stable error code.
        code: String,
        /// Details.
        detail: String,
    },
    /// The sender's view of the session (every signed commitment and nonce
    /// it holds), sent to a co-signer whose round-2 transcript differs.
    TranscriptView {
        /// The signed contributions, in signer order.
        contributions: Vec<SignedContribution>,
    },
    /// Signed contributions carried for their signers (`docs/PROTOCOL.md`
    /// §7.5): the relay's complete round (and, after round 2, the final
    /// signature instead of the partial signatures), or, when a signer stops
    /// waiting for the relay, everything it holds. Each contribution is
    /// checked under its own signer's key; one that does not verify is the
    /// carrier's fault, never its named signer's.
    RoundBatch {
        /// Commitments, nonces and partial signatures, any order.
        contributions: Vec<SignedContribution>,
        /// The session's final signature, once the sender has it.
        signature: Option<Signature>,
        /// The sender stopped waiting for the relay and asks each co-signer
        /// for what it holds and the batch lacks (answered once per round).
        want: bool,
    },
}

/// What an aborting signer reports: a stable code, whom it blames, its
/// evidence where it holds proof, and, when it stopped because of another
/// signer's abort, that signed abort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortReport {
    /// The [`crate::ErrorCode`] text (`ROUND_TIMEOUT`, `EQUIVOCATION`, …).
    pub code: String,
    /// The sorted indices of the signers it blames.
    pub culprits: Vec<u32>,
    /// Proof against the culprit, if the sender holds one.
    pub evidence: Option<Evidence>,
    /// Free text.
    pub reason: String,
    /// The co-signer's abort the sender stopped on, if any (one level only:
    /// a relayed abort carries no relay of its own).
    pub relayed: Option<Box<RelayedAbort>>,
}

/// A co-signer's signed abort, relayed: its report (without a relay) and
/// its signature, which anyone checks against the aborter's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayedAbort {
    /// The aborting signer's index.
    pub from: u32,
    /// Its code.
    pub code: String,
    /// Whom it blamed.
    pub culprits: Vec<u32>,
    /// Its evidence.
    pub evidence: Option<Evidence>,
    /// Its free text.
    pub reason: String,
    /// Its signature ([`Statement::Abort`] over the report's digest).
    pub signature: Signature,
}

impl RelayedAbort {
    /// Wraps signer `from`'s abort (its relay, if any, is not kept).
    pub fn new(from: usize, report: &AbortReport, signature: Signature) -> Self {
        Self {
            from: from as u32,
            code: report.code.clone(),
            culprits: report.culprits.clone(),
            evidence: report.evidence.clone(),
            reason: report.reason.clone(),
            signature,
        }
    }

    /// The report the aborter signed.
    pub fn report(&self) -> AbortReport {
        AbortReport {
            code: self.code.clone(),
            culprits: self.culprits.clone(),
            evidence: self.evidence.clone(),
            reason: self.reason.clone(),
            relayed: None,
        }
    }
}

impl AbortReport {
    /// `SHA256("lotus-musig2/abort/v1" ‖ postcard(self))`, what the abort's
    /// signature covers.
    pub fn digest(&self) -> [u8; 32] {
        let mut bytes = b"lotus-musig2/abort/v1".to_vec();
        bytes.extend(postcard::to_allocvec(self).unwrap_or_default());
        musig2_core::hash::sha256(&bytes)
    }
}

/// What a coordinator's finalization signs:
/// `SHA256("lotus-musig2/finalized/v1" ‖ signature ‖ flag ‖ txid)`.
pub fn finalized_digest(signature: &Signature, txid: Option<&[u8; 32]>) -> [u8; 32] {
    let mut bytes = b"lotus-musig2/finalized/v1".to_vec();
    bytes.extend_from_slice(&signature.to_bytes());
    match txid {
        Some(t) => {
            bytes.push(1);
            bytes.extend_from_slice(t);
        }
        None => bytes.push(0),
    }
    musig2_core::hash::sha256(&bytes)
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
            Self::TranscriptView { .. } => MessageKind::TranscriptView,
            Self::RoundBatch { .. } => MessageKind::RoundBatch,
        }
    }

    /// A contribution's signed statement and signature (commitment, nonce,
    /// partial signature), if the body is one.
    pub fn statement(&self) -> Option<(Statement, Signature)> {
        match self {
            Self::NonceCommit {
                commitment,
                signature,
                ..
            } => Some((Statement::NonceCommitment(*commitment), *signature)),
            Self::NonceShare {
                nonce, signature, ..
            } => Some((Statement::PublicNonce(*nonce), *signature)),
            Self::PartialSigShare {
                partial_sig,
                transcript,
                signature,
                ..
            } => Some((
                Statement::PartialSignature {
                    partial_sig: *partial_sig,
                    transcript: *transcript,
                },
                *signature,
            )),
            _ => None,
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

/// What a joining signer signs: `SHA256("lotus-musig2/session-join/v2" ‖
/// request_id ‖ announcement_digest ‖ ser33(pubkey) ‖ peer_id)`.
pub fn join_digest(
    request_id: &[u8; 32],
    announcement_digest: &[u8; 32],
    pubkey: &PublicKey,
    peer_id: &str,
) -> [u8; 32] {
    let mut bytes = Vec::with_capacity(96 + 33 + peer_id.len());
    bytes.extend_from_slice(b"lotus-musig2/session-join/v2");
    bytes.extend_from_slice(request_id);
    bytes.extend_from_slice(announcement_digest);
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
    use musig2_core::{Keypair, NonceGenInputs, Statement, nonce_gen, schnorr};
    use musig2_security::{SessionRequest, SigningMetadata};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// A message with the body variant `variant` (0..9), its fields drawn from `seed`.
    fn message(variant: u8, seed: u64, text: String) -> WireMessage {
        let mut rng = StdRng::seed_from_u64(seed);
        let signer = Keypair::random(&mut rng);
        let (_, nonce) = nonce_gen(&mut rng, signer.public_key(), NonceGenInputs::default());
        let index = (seed % 100) as u32;
        let mut digest = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rng, &mut digest);
        let signature = schnorr::sign(signer.secret_key(), &digest);
        let psig = PartialSignature::from_bytes(&schnorr::challenge(
            &digest,
            &signer.public_key(),
            &digest,
        ))
        .unwrap();
        let contribution =
            |statement| SignedContribution::sign(digest, index, statement, signer.secret_key());
        let body = match variant % 10 {
            0 => {
                let other = Keypair::random(&mut rng).public_key();
                let request = SessionRequest {
                    signers: vec![signer.public_key(), other],
                    message: digest,
                    creator_peer_id: text.clone(),
                    creator_addrs: vec![text],
                    metadata: SigningMetadata::default(),
                    election_method: "lexicographic".into(),
                    nonce_commitments: seed.is_multiple_of(2),
                    coordinator_election: seed.is_multiple_of(3),
                    created_at: seed,
                    expires_at: seed.saturating_add(1 + seed % 1000),
                    request_nonce: digest,
                };
                let announcement = SessionAnnouncement::new_signed(request, &signer).unwrap();
                Body::SigningRequest(Box::new(announcement))
            }
            1 => Body::SessionJoin {
                signer_index: index,
                pubkey: signer.public_key(),
                peer_id: text,
                announcement_digest: digest,
                signature,
            },
            2 => Body::NonceCommit {
                signer_index: index,
                commitment: NonceCommitment::commit(&digest, &signer.public_key(), &nonce),
                signature,
            },
            3 => Body::NonceShare {
                signer_index: index,
                nonce,
                signature,
            },
            4 => Body::PartialSigShare {
                signer_index: index,
                partial_sig: psig,
                transcript: digest,
                signature,
            },
            5 => {
                let evidence = seed.is_multiple_of(2).then(|| {
                    let (_, other) =
                        nonce_gen(&mut rng, signer.public_key(), NonceGenInputs::default());
                    Evidence::Equivocation(musig2_core::EquivocationProof {
                        signer: signer.public_key(),
                        first: contribution(Statement::PublicNonce(nonce)),
                        second: contribution(Statement::PublicNonce(other)),
                    })
                });
                Body::SessionAbort {
                    report: Box::new(AbortReport {
                        code: text.clone(),
                        culprits: vec![index, index / 2],
                        evidence,
                        reason: text.clone(),
                        relayed: seed.is_multiple_of(3).then(|| {
                            Box::new(RelayedAbort {
                                from: index,
                                code: text.clone(),
                                culprits: vec![],
                                evidence: None,
                                reason: text,
                                signature,
                            })
                        }),
                    }),
                    signature,
                }
            }
            6 => Body::SignatureFinalized {
                signature,
                txid: seed.is_multiple_of(3).then_some(digest),
                attestation: signature,
            },
            7 => Body::ValidationError {
                code: text.clone(),
                detail: text,
            },
            8 => Body::TranscriptView {
                contributions: vec![
                    contribution(Statement::PublicNonce(nonce)),
                    contribution(Statement::PartialSignature {
                        partial_sig: psig,
                        transcript: digest,
                    }),
                ],
            },
            _ => Body::RoundBatch {
                contributions: vec![
                    contribution(Statement::NonceCommitment(NonceCommitment::commit(
                        &digest,
                        &signer.public_key(),
                        &nonce,
                    ))),
                    contribution(Statement::PublicNonce(nonce)),
                ],
                signature: seed.is_multiple_of(2).then_some(signature),
                want: seed.is_multiple_of(3),
            },
        };
        WireMessage {
            session_id: digest,
            sequence: seed,
            sent_at: seed.rotate_left(17),
            body,
        }
    }

    /// Random bytes, or a real encoding with one byte changed, cut short or
    /// with bytes appended.
    fn peer_bytes() -> impl Strategy<Value = Vec<u8>> {
        let mutated = (
            any::<u8>(),
            any::<u64>(),
            ".{0,20}",
            any::<prop::sample::Index>(),
            any::<u8>(),
            0u8..3,
        )
            .prop_map(|(variant, seed, text, at, byte, how)| {
                let mut bytes = encode(&message(variant, seed, text)).unwrap();
                let i = at.index(bytes.len());
                match how {
                    0 => bytes[i] = byte,
                    1 => bytes.truncate(i),
                    _ => bytes.extend([byte; 3]),
                }
                bytes
            });
        prop_oneof![proptest::collection::vec(any::<u8>(), 0..512), mutated]
    }

    proptest! {
        /// Whatever a peer sends either is refused or decodes to a message
        /// whose canonical encoding is no longer than what was sent and
        /// decodes back to the same message (decoding never panics).
        #[test]
        fn peer_bytes_are_refused_or_round_trip(bytes in peer_bytes()) {
            if let Ok(message) = decode(&bytes) {
                let canonical = encode(&message).unwrap();
                prop_assert!(canonical.len() <= bytes.len());
                prop_assert_eq!(decode(&canonical).unwrap(), message);
            }
        }

        /// Every body variant survives encoding; a trailing byte or a
        /// truncation is refused; the body reports its kind and claimed index.
        #[test]
        fn every_body_round_trips_strictly(variant in 0u8..10, seed in any::<u64>(), text in ".{0,40}") {
            let message = message(variant, seed, text);
            let mut bytes = encode(&message).unwrap();
            prop_assert_eq!(&decode(&bytes).unwrap(), &message);
            let expected_kind = [
                MessageKind::SigningRequest, MessageKind::SessionJoin, MessageKind::NonceCommit,
                MessageKind::NonceShare, MessageKind::PartialSigShare, MessageKind::SessionAbort,
                MessageKind::SignatureFinalized, MessageKind::ValidationError,
                MessageKind::TranscriptView, MessageKind::RoundBatch,
            ][usize::from(variant)];
            prop_assert_eq!(message.body.kind(), expected_kind);
            prop_assert_eq!(
                message.body.claimed_index(),
                (1..=4).contains(&variant).then_some((seed % 100) as usize)
            );
            bytes.push(0);
            prop_assert_eq!(decode(&bytes), Err(postcard::Error::DeserializeBadEncoding));
            bytes.truncate(bytes.len() - 2);
            prop_assert!(decode(&bytes).is_err());
        }
    }
}
