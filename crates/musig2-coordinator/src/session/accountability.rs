//! What makes a session's failures attributable: our signed statements,
//! checking co-signers' signatures, the views exchanged when transcripts
//! differ, and a second announcement under our session id
//! (`docs/PROTOCOL.md` §11).

use super::*;

impl Session {
    /// Signs one of our statements in this session.
    pub(super) fn sign_statement(&self, statement: Statement) -> SignedContribution {
        SignedContribution::sign(
            self.session_id,
            self.me as u32,
            statement,
            self.keypair.secret_key(),
        )
    }

    /// A co-signer's statement, with its signature checked under its key; a
    /// bad signature on an authenticated co-signer's own message is its fault.
    pub(super) fn signed_by(
        &self,
        index: usize,
        statement: Statement,
        signature: Signature,
    ) -> Result<SignedContribution, Fault> {
        let contribution = SignedContribution {
            session_id: self.session_id,
            signer_index: index as u32,
            statement,
            signature,
        };
        let key = self
            .keys
            .get(index)
            .ok_or_else(|| Fault::blame(ErrorCode::InvalidContribution, index, "no such signer"))?;
        contribution.verify(key).map_err(|_| {
            Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "a contribution whose signature does not verify",
            )
        })?;
        Ok(contribution)
    }

    /// What evidence about this session is checked against.
    pub fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            announcement: &self.announcement,
            session_id: self.session_id,
            keys: &self.keys,
            key_agg: &self.key_agg,
            commitments: self.commitments_enabled,
        }
    }

    /// Our signed abort carrying `report`.
    pub fn abort_body(&self, report: AbortReport) -> Body {
        let signature = self
            .sign_statement(Statement::Abort(report.digest()))
            .signature;
        Body::SessionAbort {
            report: Box::new(report),
            signature,
        }
    }

    /// Checks a co-signer's signed abort; the signed contribution it is.
    pub fn verify_abort(
        &self,
        index: usize,
        report: &AbortReport,
        signature: Signature,
    ) -> Result<SignedContribution, Fault> {
        self.signed_by(index, Statement::Abort(report.digest()), signature)
    }

    /// Our view: every signed commitment and nonce we hold, in signer order.
    pub(super) fn view_body(&self) -> Body {
        Body::TranscriptView {
            contributions: self
                .signed_commitments
                .iter()
                .chain(self.signed_nonces.iter())
                .flatten()
                .copied()
                .collect(),
        }
    }

    /// A co-signer's view. A statement in it that conflicts with the one
    /// its signer sent us, both signed, proves that signer equivocated.
    /// Only a co-signer whose transcript differed from ours may send one,
    /// once, with at most one commitment and one nonce per signer; a
    /// statement equal to ours costs nothing, one that does not verify is
    /// ignored (it proves nothing about its claimed signer), and a view that
    /// shows no conflict changes nothing.
    pub fn on_view(
        &mut self,
        from: usize,
        contributions: &[SignedContribution],
    ) -> Result<Vec<Action>, Fault> {
        if !self.view_mismatch.contains(&from)
            || self.views_received.contains(&from)
            || contributions.len() > 2 * self.len()
        {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                from,
                "an unsolicited, repeated or oversized view",
            ));
        }
        self.views_received.push(from);
        for theirs in contributions {
            let index = theirs.signer_index as usize;
            let Some(key) = self.keys.get(index).copied() else {
                continue;
            };
            let ours = match theirs.statement {
                Statement::NonceCommitment(_) => self.signed_commitments.get(index),
                Statement::PublicNonce(_) => self.signed_nonces.get(index),
                _ => None,
            };
            let Some(Some(ours)) = ours.copied() else {
                continue;
            };
            if ours == *theirs {
                continue;
            }
            if let Some(proof) = EquivocationProof::new(key, ours, *theirs) {
                return Err(Fault::proven(
                    ErrorCode::Equivocation,
                    index,
                    format!(
                        "signer {index} sent different {} to different signers (shown by signer {from})",
                        match theirs.statement {
                            Statement::NonceCommitment(_) => "nonce commitments",
                            _ => "nonces",
                        }
                    ),
                    Evidence::Equivocation(proof),
                ));
            }
        }
        Ok(Vec::new())
    }

    /// Another announcement under our session id arrived: if its creator
    /// signed it, the creator equivocated.
    pub fn on_other_announcement(&self, other: &SessionAnnouncement) -> Result<(), Fault> {
        let evidence = Evidence::AnnouncementEquivocation {
            first: Box::new(self.announcement.clone()),
            second: Box::new(other.clone()),
        };
        match evidence.verify(&self.facts()) {
            Ok(creator) => Err(Fault::proven(
                ErrorCode::Equivocation,
                creator,
                format!("the creator (signer {creator}) signed two announcements for this session"),
                evidence,
            )),
            Err(_) => Ok(()),
        }
    }

    pub(super) fn store_signed(&mut self, signed: &SignedContribution) {
        let n = self.len();
        let list = match signed.statement {
            Statement::NonceCommitment(_) => &mut self.signed_commitments,
            Statement::PublicNonce(_) => &mut self.signed_nonces,
            _ => return,
        };
        if let Some(slot) = held_slot(list, n, signed.signer_index as usize) {
            *slot = Some(*signed);
        }
    }
}
