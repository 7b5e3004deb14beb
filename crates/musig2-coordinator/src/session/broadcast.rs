//! After completion: the coordinator's broadcast, its confirmation and
//! failover on the clock (`docs/PROTOCOL.md` §11.6).

use super::*;

impl Session {
    /// Whether signer `index` is a backup after the current coordinator in
    /// the priority order: a node whose failover clock runs ahead of ours
    /// may already be that backup and report its broadcast.
    pub fn is_later_backup(&self, index: usize) -> bool {
        let (Some(current), Some(f)) = (self.coordinator_index(), self.failover.as_ref()) else {
            return false;
        };
        matches!(
            (f.priority_of(current), f.priority_of(index)),
            (Some(c), Some(i)) if i > c
        )
    }

    pub(super) fn should_broadcast(&self) -> Vec<Action> {
        match self.coordinator_index() {
            Some(c) if c == self.me => vec![Action::Emit(CoordinatorEvent::ShouldBroadcast {
                session_id: self.session_id,
                coordinator_index: c,
            })],
            _ => Vec::new(),
        }
    }

    /// The application decided the current coordinator failed.
    pub fn coordinator_failed(&mut self) -> Result<Vec<Action>, Misuse> {
        let failover = self.failover.as_mut().ok_or_else(|| {
            Misuse("no failover: the session is not complete, or failover is disabled".into())
        })?;
        Ok(match failover.coordinator_failed() {
            FailoverStep::Next {
                attempt,
                coordinator,
            } => {
                info!(session = %hex::encode(self.session_id), attempt, coordinator, "coordinator failover");
                let mut actions = vec![Action::Emit(CoordinatorEvent::CoordinatorFailed {
                    session_id: self.session_id,
                    attempt,
                })];
                actions.extend(self.should_broadcast());
                actions
            }
            FailoverStep::Exhausted { attempts } => {
                vec![Action::Emit(CoordinatorEvent::FailoverExhausted {
                    session_id: self.session_id,
                    attempts,
                })]
            }
            _ => Vec::new(),
        })
    }

    /// Deterministic failover: the coordinator of attempt `k` (1-based, in
    /// the election's priority order) has `timeout` from completion + (k−1)·
    /// `timeout` to confirm its broadcast; after that every node moves on to
    /// the next, with no message, so honest nodes agree on the current
    /// coordinator up to the spread of their completion times.
    pub fn failover_due(&mut self, now: Millis, timeout: Millis) -> Vec<Action> {
        let (Some(completed), Some(f)) = (self.completed_at, self.failover.as_ref()) else {
            return Vec::new();
        };
        if !f.is_active() || timeout == 0 {
            return Vec::new();
        }
        let due = 1 + (now.saturating_sub(completed) / timeout) as usize;
        let mut actions = Vec::new();
        while self
            .failover
            .as_ref()
            .is_some_and(|f| f.is_active() && f.attempt() < due)
        {
            match self.coordinator_failed() {
                Ok(more) => actions.extend(more),
                Err(_) => break,
            }
        }
        actions
    }

    /// We broadcast (`txid` if we know it): tell everyone, signed, and stop
    /// failover.
    pub fn broadcast_complete(&mut self, txid: Option<[u8; 32]>) -> Result<Vec<Action>, Misuse> {
        let signature = self
            .final_signature
            .ok_or_else(|| Misuse("the session is not complete".into()))?;
        if let Some(f) = self.failover.as_mut() {
            f.broadcast_confirmed();
        }
        let attestation = self
            .sign_statement(Statement::Finalized(finalized_digest(
                &signature,
                txid.as_ref(),
            )))
            .signature;
        Ok(vec![
            Action::SendToAll(Body::SignatureFinalized {
                signature,
                txid,
                attestation,
            }),
            Action::Emit(CoordinatorEvent::BroadcastConfirmed {
                session_id: self.session_id,
                basis: ConfirmationBasis::Local { txid },
            }),
        ])
    }

    /// Checks the coordinator's signed report of its broadcast: its
    /// attestation verifies under its key and it names our signature. A
    /// finalization of another signature, or one its coordinator did not
    /// sign, confirms nothing.
    pub fn verify_finalized(
        &self,
        index: usize,
        signature: &Signature,
        txid: Option<[u8; 32]>,
        attestation: Signature,
    ) -> Result<(), Fault> {
        self.signed_by(
            index,
            Statement::Finalized(finalized_digest(signature, txid.as_ref())),
            attestation,
        )?;
        if self.final_signature.is_some_and(|s| s != *signature) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "finalized a different signature",
            ));
        }
        Ok(())
    }

    /// The broadcast is confirmed on `basis`: failover stops, and
    /// `BroadcastConfirmed` is emitted once.
    pub fn confirm_broadcast(&mut self, basis: ConfirmationBasis) -> Vec<Action> {
        let already = self.failover.as_ref().is_some_and(Failover::is_confirmed);
        if let Some(f) = self.failover.as_mut() {
            f.broadcast_confirmed();
        }
        if already {
            Vec::new()
        } else {
            vec![Action::Emit(CoordinatorEvent::BroadcastConfirmed {
                session_id: self.session_id,
                basis,
            })]
        }
    }

    /// The coordinator reports its broadcast, signed, and its word is the
    /// basis (a node with a Chronik client checks the txid first instead).
    pub fn on_finalized(
        &mut self,
        index: usize,
        signature: &Signature,
        txid: Option<[u8; 32]>,
        attestation: Signature,
    ) -> Result<Vec<Action>, Fault> {
        self.verify_finalized(index, signature, txid, attestation)?;
        Ok(self.confirm_broadcast(ConfirmationBasis::CoordinatorWord {
            coordinator_index: index,
            txid,
        }))
    }

    /// The sighash type of the final signature: explicit metadata wins,
    /// then Taproot → 0x61, P2PKH → 0x41, else none. Logged every time.
    pub fn sighash_type(&self) -> Option<u8> {
        let meta = &self.announcement.metadata;
        let (value, rule) = match (meta.sighash_type, meta.input_script_type) {
            (Some(explicit), _) => (Some(explicit), "explicit metadata.sighash_type"),
            (None, Some(InputScriptType::Taproot)) => {
                (Some(0x61), "taproot: SIGHASH_ALL|SIGHASH_LOTUS")
            }
            (None, Some(InputScriptType::PubKeyHash)) => {
                (Some(0x41), "pubkeyhash: SIGHASH_ALL|SIGHASH_FORKID")
            }
            (None, _) => (None, "no script type: none"),
        };
        info!(session = %hex::encode(self.session_id), sighash = ?value, rule, "sighash type assigned");
        value
    }
}
