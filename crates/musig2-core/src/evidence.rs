//! Attributable contributions, transcripts and equivocation proofs (ours; not
//! in BIP327 or lotus-sdk).
//!
//! Every message a signer sends in a session — its nonce commitment, its
//! public nonce, its partial signature, an abort — is a [`SignedContribution`]:
//! the statement, the session id and the signer's index, signed with the
//! signer's own key (Lotus Schnorr over
//! `H_tag(session_id ‖ be32(index) ‖ kind ‖ payload)`, tag
//! `"lotus-musig2/contribution/v1"`).
//!
//! An honest signer states exactly one nonce commitment, one public nonce
//! and one partial signature per session, and sends the same one to every
//! co-signer. Two different signed statements of one of those kinds, for one
//! session and one signer index, therefore prove that the signer
//! equivocated: [`EquivocationProof::verify`] checks such a pair with nothing
//! but this crate and the signer's public key.
//!
//! Round 2 messages carry a [`transcript`] digest of everything the sender
//! saw (the announcement's digest, every commitment, every public nonce), so
//! that signers who were shown different inputs notice it before anyone is
//! blamed for a partial signature that was computed over another view.

use alloc::vec::Vec;

use crate::commitment::NonceCommitment;
use crate::error::Error;
use crate::hash::{Hasher, tag};
use crate::keys::{PublicKey, SecretKey};
use crate::nonce::PublicNonce;
use crate::schnorr;
use crate::session::PartialSignature;
use crate::signature::Signature;

/// What a signer states in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Statement {
    /// Phase 0: a commitment to its public nonce.
    NonceCommitment(NonceCommitment),
    /// Round 1: its public nonce.
    PublicNonce(PublicNonce),
    /// Round 2: its partial signature, and the [`transcript`] digest of the
    /// view it was computed over.
    PartialSignature {
        /// The partial signature.
        partial_sig: PartialSignature,
        /// The sender's transcript digest.
        transcript: [u8; 32],
    },
    /// It aborts the session; the digest of the abort's content (reason,
    /// culprits, evidence) as the layer above encodes it.
    Abort([u8; 32]),
    /// It, as the session's coordinator, reports the final signature
    /// broadcast; the digest of the report as the layer above encodes it.
    Finalized([u8; 32]),
}

impl Statement {
    /// The one-byte kind in the signed encoding.
    pub fn kind(&self) -> u8 {
        match self {
            Self::NonceCommitment(_) => 1,
            Self::PublicNonce(_) => 2,
            Self::PartialSignature { .. } => 3,
            Self::Abort(_) => 4,
            Self::Finalized(_) => 5,
        }
    }

    /// Whether an honest signer makes at most one statement of this kind per
    /// session (so two different ones prove equivocation): commitments,
    /// nonces and partial signatures.
    pub fn is_single_use(&self) -> bool {
        matches!(
            self,
            Self::NonceCommitment(_) | Self::PublicNonce(_) | Self::PartialSignature { .. }
        )
    }

    fn payload(&self) -> Vec<u8> {
        match self {
            Self::NonceCommitment(c) => c.to_bytes().to_vec(),
            Self::PublicNonce(n) => n.to_bytes().to_vec(),
            Self::PartialSignature {
                partial_sig,
                transcript,
            } => {
                let mut out = partial_sig.to_bytes().to_vec();
                out.extend_from_slice(transcript);
                out
            }
            Self::Abort(d) | Self::Finalized(d) => d.to_vec(),
        }
    }
}

/// A statement bound to a session and a signer index, signed by the signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SignedContribution {
    /// The session (32 bytes).
    pub session_id: [u8; 32],
    /// The signer's index among the sorted keys.
    pub signer_index: u32,
    /// What it states.
    pub statement: Statement,
    /// Lotus Schnorr signature over [`SignedContribution::digest`].
    pub signature: Signature,
}

impl SignedContribution {
    /// Signs `statement` for `session_id` as signer `signer_index`.
    pub fn sign(
        session_id: [u8; 32],
        signer_index: u32,
        statement: Statement,
        secret: &SecretKey,
    ) -> Self {
        let digest = digest(&session_id, signer_index, &statement);
        Self {
            session_id,
            signer_index,
            statement,
            signature: schnorr::sign(secret, &digest),
        }
    }

    /// `H_tag(session_id ‖ be32(signer_index) ‖ kind ‖ payload)`, the signed message.
    pub fn digest(&self) -> [u8; 32] {
        digest(&self.session_id, self.signer_index, &self.statement)
    }

    /// Checks the signature under `signer`'s key.
    pub fn verify(&self, signer: &PublicKey) -> Result<(), Error> {
        schnorr::verify(signer, &self.digest(), &self.signature)
    }
}

fn digest(session_id: &[u8; 32], signer_index: u32, statement: &Statement) -> [u8; 32] {
    Hasher::tagged(tag::CONTRIBUTION)
        .chain(session_id)
        .chain(&signer_index.to_be_bytes())
        .chain(&[statement.kind()])
        .chain(&statement.payload())
        .finish()
}

/// Why an [`EquivocationProof`] proves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// One of the two signatures does not verify under the accused key.
    #[error("signature {which} of the proof does not verify under the accused key")]
    BadSignature {
        /// 0 for the first statement, 1 for the second.
        which: u8,
    },
    /// The two statements are about different sessions or signer indices.
    #[error("the two statements are about different sessions or signers")]
    DifferentContext,
    /// The two statements are of different kinds.
    #[error("the two statements are of different kinds")]
    DifferentKinds,
    /// An honest signer may make several statements of this kind.
    #[error("statements of this kind may differ without equivocation")]
    NotSingleUse,
    /// The two statements are the same.
    #[error("the two statements are identical")]
    Identical,
}

/// Two conflicting statements signed by one signer: the proof that it
/// equivocated (sent different commitments, nonces or partial signatures to
/// different co-signers in one session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EquivocationProof {
    /// The accused signer's key.
    pub signer: PublicKey,
    /// One statement.
    pub first: SignedContribution,
    /// The conflicting statement.
    pub second: SignedContribution,
}

impl EquivocationProof {
    /// Pairs two statements, or `None` when they do not conflict (see
    /// [`EquivocationProof::verify`] for what conflicting means).
    pub fn new(
        signer: PublicKey,
        first: SignedContribution,
        second: SignedContribution,
    ) -> Option<Self> {
        let proof = Self {
            signer,
            first,
            second,
        };
        proof.verify().is_ok().then_some(proof)
    }

    /// Checks the proof: both statements are signed by [`Self::signer`],
    /// name the same session and signer index, are of the same single-use
    /// kind, and differ.
    pub fn verify(&self) -> Result<(), ProofError> {
        let (a, b) = (&self.first, &self.second);
        if a.session_id != b.session_id || a.signer_index != b.signer_index {
            return Err(ProofError::DifferentContext);
        }
        if a.statement.kind() != b.statement.kind() {
            return Err(ProofError::DifferentKinds);
        }
        if !a.statement.is_single_use() {
            return Err(ProofError::NotSingleUse);
        }
        if a.statement == b.statement {
            return Err(ProofError::Identical);
        }
        a.verify(&self.signer)
            .map_err(|_| ProofError::BadSignature { which: 0 })?;
        b.verify(&self.signer)
            .map_err(|_| ProofError::BadSignature { which: 1 })
    }

    /// The accused signer's index.
    pub fn signer_index(&self) -> u32 {
        self.first.signer_index
    }
}

/// The digest of one signer's view of a session before round 2:
/// `H_tag(session_id ‖ announcement_digest ‖ flag ‖ commitments ‖ nonces)`
/// (tag `"lotus-musig2/transcript/v1"`), where `flag` is 1 with the
/// commitments (32 bytes each, in signer order) and 0 without them, and the
/// nonces are 66 bytes each in signer order. Signers that saw the same
/// announcement, commitments and nonces compute the same digest.
pub fn transcript(
    session_id: &[u8; 32],
    announcement_digest: &[u8; 32],
    commitments: Option<&[NonceCommitment]>,
    nonces: &[PublicNonce],
) -> [u8; 32] {
    let mut hasher = Hasher::tagged(tag::TRANSCRIPT)
        .chain(session_id)
        .chain(announcement_digest);
    match commitments {
        Some(list) => {
            hasher = hasher.chain(&[1]);
            for c in list {
                hasher = hasher.chain(&c.to_bytes());
            }
        }
        None => hasher = hasher.chain(&[0]),
    }
    for n in nonces {
        hasher = hasher.chain(&n.to_bytes());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use crate::nonce::{NonceGenInputs, nonce_gen};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn nonce(rng: &mut StdRng, key: PublicKey) -> PublicNonce {
        nonce_gen(rng, key, NonceGenInputs::default()).1
    }

    fn pair(seed: u64) -> (Keypair, SignedContribution, SignedContribution) {
        let mut rng = StdRng::seed_from_u64(seed);
        let signer = Keypair::random(&mut rng);
        let session = [7u8; 32];
        let first = SignedContribution::sign(
            session,
            2,
            Statement::PublicNonce(nonce(&mut rng, signer.public_key())),
            signer.secret_key(),
        );
        let second = SignedContribution::sign(
            session,
            2,
            Statement::PublicNonce(nonce(&mut rng, signer.public_key())),
            signer.secret_key(),
        );
        (signer, first, second)
    }

    /// A third party holding only the accused key verifies the proof.
    #[test]
    fn two_signed_nonces_prove_equivocation() {
        let (signer, first, second) = pair(1);
        let proof = EquivocationProof::new(signer.public_key(), first, second).unwrap();
        assert_eq!(proof.verify(), Ok(()));
        assert_eq!(proof.signer_index(), 2);
    }

    #[test]
    fn a_forged_proof_is_rejected() {
        let (signer, first, mut second) = pair(2);
        let other = Keypair::random(&mut StdRng::seed_from_u64(99));
        // Not the accused key.
        let wrong_key = EquivocationProof {
            signer: other.public_key(),
            first,
            second,
        };
        assert_eq!(
            wrong_key.verify(),
            Err(ProofError::BadSignature { which: 0 })
        );
        // The second statement replaced after signing.
        let honest = first;
        let mut rng = StdRng::seed_from_u64(100);
        second.statement = Statement::PublicNonce(nonce(&mut rng, signer.public_key()));
        let altered = EquivocationProof {
            signer: signer.public_key(),
            first: honest,
            second,
        };
        assert_eq!(altered.verify(), Err(ProofError::BadSignature { which: 1 }));
        // The same statement twice.
        let same = EquivocationProof {
            signer: signer.public_key(),
            first,
            second: first,
        };
        assert_eq!(same.verify(), Err(ProofError::Identical));
        assert!(EquivocationProof::new(signer.public_key(), first, first).is_none());
    }

    #[test]
    fn statements_from_different_contexts_prove_nothing() {
        let (signer, first, second) = pair(3);
        let mut other_session = second;
        other_session.session_id = [8; 32];
        let resigned = SignedContribution::sign(
            other_session.session_id,
            2,
            other_session.statement,
            signer.secret_key(),
        );
        let proof = EquivocationProof {
            signer: signer.public_key(),
            first,
            second: resigned,
        };
        assert_eq!(proof.verify(), Err(ProofError::DifferentContext));
        let other_index =
            SignedContribution::sign(first.session_id, 3, second.statement, signer.secret_key());
        let proof = EquivocationProof {
            signer: signer.public_key(),
            first,
            second: other_index,
        };
        assert_eq!(proof.verify(), Err(ProofError::DifferentContext));
        let commit = SignedContribution::sign(
            first.session_id,
            2,
            Statement::NonceCommitment(NonceCommitment::from_bytes(&[1; 32]).unwrap()),
            signer.secret_key(),
        );
        let proof = EquivocationProof {
            signer: signer.public_key(),
            first,
            second: commit,
        };
        assert_eq!(proof.verify(), Err(ProofError::DifferentKinds));
        let abort = |d| {
            SignedContribution::sign(
                first.session_id,
                2,
                Statement::Abort(d),
                signer.secret_key(),
            )
        };
        let proof = EquivocationProof {
            signer: signer.public_key(),
            first: abort([1; 32]),
            second: abort([2; 32]),
        };
        assert_eq!(proof.verify(), Err(ProofError::NotSingleUse));
    }

    #[test]
    fn a_contribution_verifies_only_under_its_signer_and_content() {
        let (signer, first, _) = pair(4);
        assert!(first.verify(&signer.public_key()).is_ok());
        let mut moved = first;
        moved.signer_index = 3;
        assert!(moved.verify(&signer.public_key()).is_err());
        let other = Keypair::random(&mut StdRng::seed_from_u64(5));
        assert!(first.verify(&other.public_key()).is_err());
    }

    #[test]
    fn the_transcript_commits_to_every_input() {
        let mut rng = StdRng::seed_from_u64(6);
        let key = Keypair::random(&mut rng).public_key();
        let nonces = [nonce(&mut rng, key), nonce(&mut rng, key)];
        let commitments = [
            NonceCommitment::from_bytes(&[1; 32]).unwrap(),
            NonceCommitment::from_bytes(&[2; 32]).unwrap(),
        ];
        let base = transcript(&[0; 32], &[1; 32], Some(&commitments), &nonces);
        assert_eq!(
            base,
            transcript(&[0; 32], &[1; 32], Some(&commitments), &nonces)
        );
        assert_ne!(
            base,
            transcript(&[9; 32], &[1; 32], Some(&commitments), &nonces)
        );
        assert_ne!(
            base,
            transcript(&[0; 32], &[9; 32], Some(&commitments), &nonces)
        );
        assert_ne!(base, transcript(&[0; 32], &[1; 32], None, &nonces));
        let swapped = [nonces[1], nonces[0]];
        assert_ne!(
            base,
            transcript(&[0; 32], &[1; 32], Some(&commitments), &swapped)
        );
        let other_commitments = [commitments[1], commitments[0]];
        assert_ne!(
            base,
            transcript(&[0; 32], &[1; 32], Some(&other_commitments), &nonces)
        );
    }
}
