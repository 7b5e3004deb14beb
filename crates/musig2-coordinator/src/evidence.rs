//! Who is blamed for a failed session, and on what grounds.
//!
//! A node names a signer only on one of these grounds ([`Blame`]):
//! - **proof** it can hand to anyone ([`Evidence`]): two conflicting signed
//!   statements (equivocation), two announcements the creator signed for
//!   one session, a signed partial signature that does not verify against
//!   the transcript its signer itself claimed, a signed nonce that does not
//!   open the same signer's signed commitment;
//! - **observation**: a contribution missing here at a deadline, a peer
//!   gone; true of this node's view, not transferable;
//! - **report**: a co-signer's signed abort names the culprit; recorded as
//!   what that co-signer said, kept only where this node's own view agrees.
//!
//! Only proof reaches reputation as an invalid signature.

use musig2_core::{
    EquivocationProof, KeyAggContext, Lotus, NonceCommitment, PartialSignature, PublicKey,
    PublicNonce, SessionContext, SignedContribution, Statement, nonce_agg, partial_sig_verify,
};
use musig2_security::{SessionAnnouncement, Signed};
use serde::{Deserialize, Serialize};

/// Proof that a signer misbehaved, checkable by anyone who knows the
/// session's announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Evidence {
    /// A signer signed two different commitments, nonces or partial
    /// signatures in one session (checkable with `musig2-core` alone).
    Equivocation(EquivocationProof),
    /// The creator signed two different announcements with one session id.
    AnnouncementEquivocation {
        /// One announcement.
        first: Box<SessionAnnouncement>,
        /// The other.
        second: Box<SessionAnnouncement>,
    },
    /// A signed partial signature that does not verify against the view
    /// (signed commitments and nonces of every signer) whose transcript
    /// digest its signer put in the same signed message.
    InvalidPartialSignature {
        /// The culprit's signed partial signature.
        share: SignedContribution,
        /// Every signer's signed commitment, in signer order (empty without
        /// Phase 0).
        commitments: Vec<SignedContribution>,
        /// Every signer's signed nonce, in signer order.
        nonces: Vec<SignedContribution>,
    },
    /// A signed nonce that does not open the same signer's signed commitment.
    CommitmentMismatch {
        /// The signed commitment.
        commitment: SignedContribution,
        /// The signed nonce.
        nonce: SignedContribution,
    },
}

/// On what grounds a failure names its culprits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Blame {
    /// Nobody is named, or nobody can be proven guilty (views differ, the
    /// session expired, a local failure).
    Unproven,
    /// This node saw it: contributions missing at a deadline, a peer gone.
    Observed,
    /// Co-signer `by` said so in its signed abort (kept only where this
    /// node's own view agrees).
    Reported {
        /// The reporting signer's index.
        by: usize,
        /// Its signed abort.
        abort: Box<SignedContribution>,
    },
    /// Proof anyone can check.
    Proof(Box<Evidence>),
}

impl Blame {
    /// Whether the node holds proof.
    pub fn is_proof(&self) -> bool {
        matches!(self, Self::Proof(_))
    }

    /// The evidence, if the node holds proof.
    pub fn evidence(&self) -> Option<&Evidence> {
        match self {
            Self::Proof(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`Evidence::verify`] refused a piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("evidence does not hold: {0}")]
pub struct InvalidEvidence(pub &'static str);

/// What a piece of evidence is checked against: one session, as this node
/// knows it.
pub struct SessionFacts<'a> {
    /// The announcement this node holds.
    pub announcement: &'a SessionAnnouncement,
    /// The session id.
    pub session_id: [u8; 32],
    /// The sorted signer keys.
    pub keys: &'a [PublicKey],
    /// The key aggregation (with the Taproot tweak where the session has it).
    pub key_agg: &'a KeyAggContext<Lotus>,
    /// Whether the session has Phase 0.
    pub commitments: bool,
}

impl Evidence {
    /// The index of the signer it proves guilty, in the session of `facts`.
    pub fn culprit(&self, facts: &SessionFacts<'_>) -> Option<usize> {
        match self {
            Self::Equivocation(p) => Some(p.signer_index() as usize),
            Self::AnnouncementEquivocation { first, .. } => {
                facts.keys.iter().position(|k| *k == first.creator_pubkey)
            }
            Self::InvalidPartialSignature { share, .. } => Some(share.signer_index as usize),
            Self::CommitmentMismatch { nonce, .. } => Some(nonce.signer_index as usize),
        }
    }

    /// Checks the evidence against the session; returns the culprit's index.
    pub fn verify(&self, facts: &SessionFacts<'_>) -> Result<usize, InvalidEvidence> {
        match self {
            Self::Equivocation(proof) => {
                let index = proof.signer_index() as usize;
                if proof.first.session_id != facts.session_id
                    || facts.keys.get(index) != Some(&proof.signer)
                {
                    return Err(InvalidEvidence("not about this session's signer"));
                }
                proof
                    .verify()
                    .map_err(|_| InvalidEvidence("not an equivocation"))?;
                Ok(index)
            }
            Self::AnnouncementEquivocation { first, second } => {
                verify_announcement_pair(first, second, facts)
            }
            Self::InvalidPartialSignature {
                share,
                commitments,
                nonces,
            } => verify_invalid_partial(share, commitments, nonces, facts),
            Self::CommitmentMismatch { commitment, nonce } => {
                let index = nonce.signer_index as usize;
                let key = self.signed_by(facts, index, &[commitment, nonce])?;
                match (commitment.statement, nonce.statement) {
                    (Statement::NonceCommitment(c), Statement::PublicNonce(n))
                        if c.verify(&facts.session_id, &key, index, &n).is_err() =>
                    {
                        Ok(index)
                    }
                    _ => Err(InvalidEvidence("the nonce opens the commitment")),
                }
            }
        }
    }

    /// Checks that every contribution is about this session, by signer
    /// `index`, and signed by its key.
    fn signed_by(
        &self,
        facts: &SessionFacts<'_>,
        index: usize,
        contributions: &[&SignedContribution],
    ) -> Result<PublicKey, InvalidEvidence> {
        let key = *facts
            .keys
            .get(index)
            .ok_or(InvalidEvidence("no such signer"))?;
        for c in contributions {
            if c.session_id != facts.session_id || c.signer_index as usize != index {
                return Err(InvalidEvidence("a statement is about another session"));
            }
            c.verify(&key)
                .map_err(|_| InvalidEvidence("a statement is not signed by its signer"))?;
        }
        Ok(key)
    }
}

fn verify_announcement_pair(
    first: &SessionAnnouncement,
    second: &SessionAnnouncement,
    facts: &SessionFacts<'_>,
) -> Result<usize, InvalidEvidence> {
    let ours = facts.session_id;
    if first.session_id().to_bytes() != ours || second.session_id().to_bytes() != ours {
        return Err(InvalidEvidence("an announcement is about another session"));
    }
    if first.digest() == second.digest() {
        return Err(InvalidEvidence("the announcements are the same"));
    }
    for a in [first, second] {
        a.validate()
            .map_err(|_| InvalidEvidence("a malformed announcement"))?;
        a.verify_signature()
            .map_err(|_| InvalidEvidence("an announcement is not signed by its creator"))?;
    }
    facts
        .keys
        .iter()
        .position(|k| *k == first.creator_pubkey)
        .ok_or(InvalidEvidence("the creator is not a signer"))
}

/// The signed statements of every signer, in order, each checked.
fn view<T>(
    contributions: &[SignedContribution],
    facts: &SessionFacts<'_>,
    pick: impl Fn(&Statement) -> Option<T>,
) -> Result<Vec<T>, InvalidEvidence> {
    if contributions.len() != facts.keys.len() {
        return Err(InvalidEvidence("the view does not cover every signer"));
    }
    contributions
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let key = facts.keys.get(i).ok_or(InvalidEvidence("no such signer"))?;
            if c.session_id != facts.session_id || c.signer_index as usize != i {
                return Err(InvalidEvidence("a statement is out of place"));
            }
            c.verify(key)
                .map_err(|_| InvalidEvidence("a statement is not signed by its signer"))?;
            pick(&c.statement).ok_or(InvalidEvidence("a statement of the wrong kind"))
        })
        .collect()
}

fn verify_invalid_partial(
    share: &SignedContribution,
    commitments: &[SignedContribution],
    nonces: &[SignedContribution],
    facts: &SessionFacts<'_>,
) -> Result<usize, InvalidEvidence> {
    let index = share.signer_index as usize;
    let key = facts
        .keys
        .get(index)
        .ok_or(InvalidEvidence("no such signer"))?;
    if share.session_id != facts.session_id {
        return Err(InvalidEvidence("the share is about another session"));
    }
    share
        .verify(key)
        .map_err(|_| InvalidEvidence("the share is not signed by its signer"))?;
    let Statement::PartialSignature {
        partial_sig,
        transcript,
    } = share.statement
    else {
        return Err(InvalidEvidence("not a partial signature"));
    };
    let commitments: Option<Vec<NonceCommitment>> = if facts.commitments {
        Some(view(commitments, facts, |s| match s {
            Statement::NonceCommitment(c) => Some(*c),
            _ => None,
        })?)
    } else {
        None
    };
    let nonces: Vec<PublicNonce> = view(nonces, facts, |s| match s {
        Statement::PublicNonce(n) => Some(*n),
        _ => None,
    })?;
    let claimed = musig2_core::evidence::transcript(
        &facts.session_id,
        &facts.announcement.digest(),
        commitments.as_deref(),
        &nonces,
    );
    if claimed != transcript {
        return Err(InvalidEvidence(
            "the view is not the one the signer claimed",
        ));
    }
    partial_invalid(facts, &nonces, &partial_sig, index)
}

fn partial_invalid(
    facts: &SessionFacts<'_>,
    nonces: &[PublicNonce],
    partial_sig: &PartialSignature,
    index: usize,
) -> Result<usize, InvalidEvidence> {
    let context = SessionContext::new(
        facts.key_agg,
        &nonce_agg(nonces),
        &facts.announcement.message,
    )
    .map_err(|_| InvalidEvidence("the view gives no session context"))?;
    let nonce = nonces.get(index).ok_or(InvalidEvidence("no such signer"))?;
    match partial_sig_verify(&context, partial_sig, nonce, index) {
        Ok(()) => Err(InvalidEvidence("the partial signature is valid")),
        Err(_) => Ok(index),
    }
}
