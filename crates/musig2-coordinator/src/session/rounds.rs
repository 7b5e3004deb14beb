//! The signing rounds of one session: joins, Phase 0 commitments, round 1
//! (nonces) and round 2 (partial signatures), each input checked on arrival.

use super::*;

impl Session {
    /// Our own join, to send to every other signer.
    pub fn my_join(&self) -> Body {
        let peer_id = self
            .peers
            .get(self.me)
            .copied()
            .flatten()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let pubkey = self.keypair.public_key();
        let digest = join_digest(
            &self.request_id,
            &self.announcement_digest,
            &pubkey,
            &peer_id,
        );
        Body::SessionJoin {
            signer_index: self.me as u32,
            pubkey,
            peer_id,
            announcement_digest: self.announcement_digest,
            signature: schnorr::sign(self.keypair.secret_key(), &digest),
        }
    }

    pub(super) fn progress(&mut self, now: Millis) {
        self.progressed_at = now;
    }

    /// Checks a signer's join without recording anything: the key is the
    /// one at `index`, the join names the authenticated sender `from_peer`,
    /// and the signature under that key verifies. A join that fails here was
    /// not sent by the signer it names, so it must not take any slot.
    #[allow(clippy::too_many_arguments)]
    pub fn verify_join(
        &self,
        index: usize,
        pubkey: &PublicKey,
        peer_id: &str,
        announcement_digest: &[u8; 32],
        signature: &Signature,
        from_peer: &PeerId,
    ) -> Result<JoinCheck, Fault> {
        let bad = |m: &str| Fault::blame(ErrorCode::InvalidContribution, index, m.to_string());
        if self.keys.get(index) != Some(pubkey) {
            return Err(bad("join names a key that is not at its index"));
        }
        if PeerId::from_str(peer_id).ok().as_ref() != Some(from_peer) {
            return Err(bad("join sent by another peer than the one it names"));
        }
        schnorr::verify(
            pubkey,
            &join_digest(&self.request_id, announcement_digest, pubkey, peer_id),
            signature,
        )
        .map_err(|_| bad("join signature is invalid"))?;
        Ok(if *announcement_digest == self.announcement_digest {
            JoinCheck::Valid
        } else {
            JoinCheck::OtherAnnouncement
        })
    }

    /// A signer's join. `from_peer` is the authenticated sender.
    #[allow(clippy::too_many_arguments)]
    pub fn on_join(
        &mut self,
        index: usize,
        pubkey: &PublicKey,
        peer_id: &str,
        announcement_digest: &[u8; 32],
        signature: &Signature,
        from_peer: &PeerId,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        if self.verify_join(
            index,
            pubkey,
            peer_id,
            announcement_digest,
            signature,
            from_peer,
        )? == JoinCheck::OtherAnnouncement
        {
            // The joiner is who it says, but saw another announcement: show
            // it ours (it then holds the creator's two signatures) and wait
            // for the creator's proof; the joiner is not admitted.
            if !self.other_announcement.contains(&index) {
                self.other_announcement.push(index);
            }
            self.peers.get_mut(index).map(|p| p.replace(*from_peer));
            return Ok(vec![Action::SendTo(
                index,
                Body::SigningRequest(Box::new(self.announcement.clone())),
            )]);
        }
        if let (Some(p), Some(j)) = (self.peers.get_mut(index), self.joined.get_mut(index)) {
            *p = Some(*from_peer);
            *j = true;
        }
        self.progress(now);
        Ok(self.check_ready())
    }

    /// Called after our own join too: the session is ready once everyone joined.
    pub fn check_ready(&mut self) -> Vec<Action> {
        if self.phase != SessionPhase::SigningRequest || self.joined.iter().any(|j| !j) {
            return Vec::new();
        }
        self.phase = SessionPhase::SessionReady;
        self.elected = if self.options.election {
            elect_coordinator(&self.keys, self.election_method)
                .ok()
                .map(|e| e.coordinator_index)
        } else {
            None
        };
        self.relay_index = self.pick_relay();
        vec![
            Action::Emit(CoordinatorEvent::SessionCreated(self.session_id)),
            Action::Emit(CoordinatorEvent::SessionReady {
                request_id: self.request_id,
                session_id: self.session_id,
            }),
        ]
    }

    pub(super) fn generate_nonce<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> PublicNonce {
        let agg_pk = self.key_agg.nonce_gen_agg_pk();
        let (secnonce, pubnonce) = nonce_gen(
            rng,
            self.keypair.public_key(),
            NonceGenInputs {
                secret_key: Some(self.keypair.secret_key()),
                aggregate_pubkey: Some(&agg_pk),
                message: Some(&self.announcement.message),
                extra_input: Some(&nonce_extra_input(
                    &self.session_id,
                    &self.announcement_digest,
                )),
            },
        );
        self.secnonce = Some(secnonce);
        self.nonce_drawn = true;
        pubnonce
    }

    /// Phase 0: generate our nonce and publish only its commitment.
    pub fn publish_nonce_commitment<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now: Millis,
    ) -> Result<Vec<Action>, Misuse> {
        if !self.commitments_enabled {
            return Err(Misuse("nonce commitments are disabled".into()));
        }
        if self.phase != SessionPhase::SessionReady {
            return Err(Misuse(format!(
                "cannot commit to a nonce in phase {}",
                self.phase
            )));
        }
        let pubnonce = self.generate_nonce(rng);
        let commitment =
            NonceCommitment::commit(&self.session_id, &self.keypair.public_key(), &pubnonce);
        self.set(Slot::Nonce, self.me, SlotValue::Nonce(pubnonce));
        self.set(Slot::Commitment, self.me, SlotValue::Commitment(commitment));
        let signed = self.sign_statement(Statement::NonceCommitment(commitment));
        self.store_signed(&signed);
        self.phase = SessionPhase::NonceCommit;
        self.progress(now);
        let mut actions = self.send_own(Body::NonceCommit {
            signer_index: self.me as u32,
            commitment,
            signature: signed.signature,
        });
        actions.extend(self.check_commitments_complete());
        Ok(actions)
    }

    pub(super) fn check_commitments_complete(&mut self) -> Vec<Action> {
        if self.phase == SessionPhase::NonceCommit && self.commitments.iter().all(Option::is_some) {
            let mut actions = self.relay_round(Round::Commitments);
            actions.push(Action::Emit(CoordinatorEvent::NonceCommitmentsComplete(
                self.session_id,
            )));
            actions
        } else {
            Vec::new()
        }
    }

    pub fn on_commitment(
        &mut self,
        index: usize,
        commitment: NonceCommitment,
        signature: Signature,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        if self.holds(index, &Statement::NonceCommitment(commitment), &signature) {
            // Already carried here by a batch: nothing new.
            return Ok(Vec::new());
        }
        if self.commitments.get(index).is_some_and(Option::is_some) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "second nonce commitment",
            ));
        }
        let signed = self.signed_by(index, Statement::NonceCommitment(commitment), signature)?;
        self.accept_commitment(&signed, now);
        Ok(self.check_commitments_complete())
    }

    /// Records a co-signer's verified commitment.
    pub(super) fn accept_commitment(&mut self, signed: &SignedContribution, now: Millis) {
        if let Statement::NonceCommitment(commitment) = signed.statement {
            self.store_signed(signed);
            self.set(
                Slot::Commitment,
                signed.signer_index as usize,
                SlotValue::Commitment(commitment),
            );
            self.progress(now);
        }
    }

    /// Round 1: reveal our nonce.
    pub fn start_round1<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now: Millis,
    ) -> Result<Vec<Action>, Misuse> {
        let pubnonce = if self.commitments_enabled {
            if self.phase != SessionPhase::NonceCommit
                || !self.commitments.iter().all(Option::is_some)
            {
                return Err(Misuse("round 1 needs every nonce commitment first".into()));
            }
            self.nonces
                .get(self.me)
                .copied()
                .flatten()
                .ok_or_else(|| Misuse("our nonce is missing".into()))?
        } else {
            if self.phase != SessionPhase::SessionReady {
                return Err(Misuse(format!(
                    "cannot start round 1 in phase {}",
                    self.phase
                )));
            }
            let nonce = self.generate_nonce(rng);
            self.set(Slot::Nonce, self.me, SlotValue::Nonce(nonce));
            nonce
        };
        let signed = self.sign_statement(Statement::PublicNonce(pubnonce));
        self.store_signed(&signed);
        self.phase = SessionPhase::NonceExchange;
        self.progress(now);
        let mut actions = self.send_own(Body::NonceShare {
            signer_index: self.me as u32,
            nonce: pubnonce,
            signature: signed.signature,
        });
        actions.extend(
            self.check_round1_complete()
                .map_err(|f| Misuse(f.message))?,
        );
        Ok(actions)
    }

    pub fn on_nonce(
        &mut self,
        index: usize,
        nonce: PublicNonce,
        signature: Signature,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        if index == self.me {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "a peer sent our own nonce",
            ));
        }
        if self.holds(index, &Statement::PublicNonce(nonce), &signature) {
            return Ok(Vec::new());
        }
        if self.context.is_some() || self.nonces.get(index).is_some_and(Option::is_some) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "second nonce",
            ));
        }
        let signed = self.signed_by(index, Statement::PublicNonce(nonce), signature)?;
        if self.commitments_enabled && self.commitments.get(index).is_some_and(Option::is_none) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "nonce before its commitment",
            ));
        }
        self.accept_nonce(signed, now)?;
        self.check_round1_complete()
    }

    /// Records a co-signer's verified nonce, once its commitment is here:
    /// a nonce that does not open it is proven against its signer.
    pub(super) fn accept_nonce(
        &mut self,
        signed: SignedContribution,
        now: Millis,
    ) -> Result<(), Fault> {
        let Statement::PublicNonce(nonce) = signed.statement else {
            return Ok(());
        };
        let index = signed.signer_index as usize;
        if self.commitments_enabled {
            let signer = self.keys.get(index).copied();
            let commitment = self.commitments.get(index).copied().flatten();
            let signed_commitment = self.signed_commitments.get(index).copied().flatten();
            match (signer, commitment, signed_commitment) {
                (Some(key), Some(c), Some(sc)) => c
                    .verify(&self.session_id, &key, index, &nonce)
                    .map_err(|_| {
                    Fault::proven(
                        ErrorCode::NonceCommitmentMismatch,
                        index,
                        "nonce does not open its commitment",
                        Evidence::CommitmentMismatch {
                            commitment: sc,
                            nonce: signed,
                        },
                    )
                })?,
                // Checked by the callers: never here without its commitment.
                _ => return Ok(()),
            }
        }
        self.store_signed(&signed);
        self.set(Slot::Nonce, index, SlotValue::Nonce(nonce));
        self.progress(now);
        Ok(())
    }

    pub(super) fn check_round1_complete(&mut self) -> Result<Vec<Action>, Fault> {
        if self.phase != SessionPhase::NonceExchange || self.context.is_some() {
            return Ok(Vec::new());
        }
        let Some(nonces) = self
            .nonces
            .iter()
            .copied()
            .collect::<Option<Vec<PublicNonce>>>()
        else {
            return Ok(Vec::new());
        };
        let context = SessionContext::new(
            &self.key_agg,
            &nonce_agg(&nonces),
            &self.announcement.message,
        )
        .map_err(|e| Fault::nobody(ErrorCode::AggregationFailed, e.to_string()))?;
        let commitments: Option<Vec<NonceCommitment>> = if self.commitments_enabled {
            self.commitments.iter().copied().collect()
        } else {
            None
        };
        self.transcript = Some(musig2_core::evidence::transcript(
            &self.session_id,
            &self.announcement_digest,
            commitments.as_deref(),
            &nonces,
        ));
        self.context = Some(Box::new(context));
        let mut actions = self.relay_round(Round::Nonces);
        actions.push(Action::Emit(CoordinatorEvent::Round1Complete(
            self.session_id,
        )));
        Ok(actions)
    }

    /// Round 2: sign (consuming our secret nonce) and send the partial signature.
    pub fn start_round2(&mut self, now: Millis) -> Result<Vec<Action>, Misuse> {
        if self.phase != SessionPhase::NonceExchange {
            return Err(Misuse(format!(
                "cannot start round 2 in phase {}",
                self.phase
            )));
        }
        let context = self
            .context
            .as_ref()
            .ok_or_else(|| Misuse("round 1 is not complete".into()))?;
        let secnonce = self
            .secnonce
            .take()
            .ok_or_else(|| Misuse("our secret nonce is gone".into()))?;
        let transcript = self
            .transcript
            .ok_or_else(|| Misuse("round 1 is not complete".into()))?;
        let psig =
            sign(secnonce, &self.keypair, self.me, context).map_err(|e| Misuse(e.to_string()))?;
        self.set(Slot::Psig, self.me, SlotValue::Psig(psig));
        let signed = self.sign_statement(Statement::PartialSignature {
            partial_sig: psig,
            transcript,
        });
        let n = self.len();
        if let Some(slot) = held_slot(&mut self.signed_psigs, n, self.me) {
            *slot = Some(signed);
        }
        self.phase = SessionPhase::PartialSigExchange;
        self.progress(now);
        let body = Body::PartialSigShare {
            signer_index: self.me as u32,
            partial_sig: psig,
            transcript,
            signature: signed.signature,
        };
        let mut actions = self.send_own(body);
        actions.extend(self.check_complete().map_err(|f| Misuse(f.message))?);
        Ok(actions)
    }

    /// A partial signature: its signature and transcript checked on arrival,
    /// its value only if the aggregate fails (aggregate first). A
    /// partial signature over another view is not verified (its signer may
    /// be honest and shown other nonces): we send that signer our view, so
    /// that an equivocation shows, and the session waits for the proof.
    pub fn on_partial_sig(
        &mut self,
        index: usize,
        psig: PartialSignature,
        transcript: [u8; 32],
        signature: Signature,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        let statement = Statement::PartialSignature {
            partial_sig: psig,
            transcript,
        };
        if index != self.me && self.holds(index, &statement, &signature) {
            return Ok(Vec::new());
        }
        if index == self.me || self.psigs.get(index).is_some_and(Option::is_some) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "second partial signature",
            ));
        }
        let share = self.signed_by(index, statement, signature)?;
        if self.context.is_none() || self.nonces.get(index).is_some_and(Option::is_none) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "partial signature before round 1",
            ));
        }
        let mut actions = self.accept_psig(share, now);
        actions.extend(self.check_complete()?);
        Ok(actions)
    }

    /// Records a co-signer's partial signature whose statement signature
    /// verified, once round 1 is complete here (checked by the callers).
    /// One over another view than ours is not kept: we send its signer our
    /// view and wait for the proof.
    pub(super) fn accept_psig(&mut self, share: SignedContribution, now: Millis) -> Vec<Action> {
        let Statement::PartialSignature {
            partial_sig,
            transcript,
        } = share.statement
        else {
            return Vec::new();
        };
        let index = share.signer_index as usize;
        self.progress(now);
        if self.transcript != Some(transcript) {
            if self.view_mismatch.contains(&index) {
                return Vec::new();
            }
            self.view_mismatch.push(index);
            info!(session = %hex::encode(self.session_id), signer = index, "round-2 transcripts differ; views exchanged");
            return vec![Action::SendTo(index, self.view_body())];
        }
        // Aggregate first: a partial signature is checked only if the
        // aggregate does not verify (`check_complete`) or the session ends
        // otherwise in this round (`invalid_partial`, from the coordinator's
        // `fault_naming`), to name its signer with proof. Every
        // valid session thus costs one verification, not one per signer.
        let n = self.len();
        if let Some(slot) = held_slot(&mut self.signed_psigs, n, index) {
            *slot = Some(share);
        }
        self.set(Slot::Psig, index, SlotValue::Psig(partial_sig));
        Vec::new()
    }

    /// The first co-signer partial signature held that does not verify,
    /// as a proven fault naming every such signer; `None` if all verify.
    pub fn invalid_partial(&self) -> Option<Fault> {
        let context = self.context.as_ref()?;
        let invalid: Vec<usize> = (0..self.len())
            .filter(|i| *i != self.me)
            .filter(|i| {
                matches!(
                    (self.psigs.get(*i), self.nonces.get(*i)),
                    (Some(Some(psig)), Some(Some(nonce)))
                        if partial_sig_verify(context, psig, nonce, *i).is_err()
                )
            })
            .collect();
        let first = *invalid.first()?;
        let share = self.signed_psigs.get(first).copied().flatten()?;
        let evidence = Evidence::InvalidPartialSignature {
            share,
            commitments: self.signed_commitments.iter().flatten().copied().collect(),
            nonces: self.signed_nonces.iter().flatten().copied().collect(),
        };
        let mut fault = Fault::proven(
            ErrorCode::InvalidPartialSignature,
            first,
            format!("signers {invalid:?}: invalid partial signature"),
            evidence,
        );
        fault.culprits = invalid;
        Some(fault)
    }

    pub(super) fn check_complete(&mut self) -> Result<Vec<Action>, Fault> {
        if self.phase != SessionPhase::PartialSigExchange {
            return Ok(Vec::new());
        }
        let (Some(context), Some(psigs)) = (
            &self.context,
            self.psigs
                .iter()
                .copied()
                .collect::<Option<Vec<PartialSignature>>>(),
        ) else {
            return Ok(Vec::new());
        };
        let signature = partial_sig_agg(context, &psigs);
        if musig2_core::verify(context, &signature).is_err() {
            return Err(self.invalid_partial().unwrap_or_else(|| {
                Fault::nobody(
                    ErrorCode::AggregationFailed,
                    "the aggregate signature does not verify",
                )
            }));
        }
        let mut actions = self.relay_signature(signature);
        actions.extend(self.complete_with(signature));
        Ok(actions)
    }

    /// The session is complete with `signature`, verified by the caller:
    /// any secret nonce left is dropped, and the elected coordinator is told
    /// to broadcast.
    pub(super) fn complete_with(&mut self, signature: Signature) -> Vec<Action> {
        self.final_signature = Some(signature);
        self.secnonce = None;
        self.phase = SessionPhase::Complete;
        let mut actions = self.tell_askers(signature);
        actions.push(Action::Emit(CoordinatorEvent::SessionComplete {
            session_id: self.session_id,
            signature,
        }));
        if self.elected.is_some() {
            if self.options.failover {
                let priority = coordinator_priority_list(&self.keys, self.election_method);
                self.failover = Some(Failover::new(priority));
            }
            actions.extend(self.should_broadcast());
        }
        actions
    }
}
