//! Coordinator-relayed rounds (`docs/PROTOCOL.md` §7.5). In a session of
//! [`RELAY_MIN_SIGNERS`] or more whose announcement elects a coordinator,
//! each signer sends its commitment, nonce and partial signature to that
//! coordinator alone; the coordinator, once a round is complete, sends every
//! co-signer the whole round in one [`Body::RoundBatch`], and after round 2
//! the final signature instead of the partial signatures. A round costs
//! 2·(n − 1) messages instead of n·(n − 1).
//!
//! The relay needs no trust: every contribution it carries is checked under
//! its own signer's key (one that does not verify is the carrier's fault),
//! and the final signature under the aggregate key. A relay that withholds
//! is not named (nobody can prove it): a signer that waits longer than the
//! relay timeout for its round sends what it holds to every co-signer with
//! `want`; each answers once per round with what the asker lacks, sends its
//! own later contributions to everyone, and on completion tells every asker
//! the final signature.

use super::*;

/// Below this many signers a session exchanges directly: a relay adds a
/// hop and saves little.
pub const RELAY_MIN_SIGNERS: usize = 4;

/// A round, as a bit of [`Session`]'s relay bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    Commitments = 1,
    Nonces = 2,
    PartialSignatures = 4,
}

impl Round {
    fn of(statement: &Statement) -> Option<Self> {
        match statement {
            Statement::NonceCommitment(_) => Some(Self::Commitments),
            Statement::PublicNonce(_) => Some(Self::Nonces),
            Statement::PartialSignature { .. } => Some(Self::PartialSignatures),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        self as u8
    }
}

/// What answering a co-signer's `want` costs at most: one answer per round,
/// and one with the final signature.
const ANSWERED_SIGNATURE: u8 = 8;

/// Batches taken from one co-signer per session; more are ignored unread.
const MAX_BATCHES_PER_SIGNER: u8 = 12;

impl Session {
    /// Whether we relay. The relay keeps relaying after its own timer fired.
    fn is_relay(&self) -> bool {
        self.relay_index == Some(self.me)
    }

    /// The relay, as [`Session::check_ready`] fixes it.
    pub(super) fn pick_relay(&self) -> Option<usize> {
        if self.len() < RELAY_MIN_SIGNERS || !self.announcement.coordinator_election {
            return None;
        }
        elect_coordinator(&self.keys, self.election_method)
            .ok()
            .map(|e| e.coordinator_index)
    }

    /// Where our own contribution goes: to the relay alone, or without a
    /// relay (or once we or a co-signer stopped waiting for it) to every
    /// co-signer. The relay's own commitment and nonce go out in its
    /// batches; its partial signature goes to everyone at once, so that a
    /// relay that dies after signing leaves the others able to finish among
    /// themselves.
    pub(super) fn send_own(&self, body: Body) -> Vec<Action> {
        match self.relay_index {
            Some(relay) if relay != self.me && !self.relay_off => {
                vec![Action::SendTo(relay, body)]
            }
            Some(relay)
                if relay == self.me
                    && !self.relay_off
                    && !matches!(body, Body::PartialSigShare { .. }) =>
            {
                Vec::new()
            }
            _ => vec![Action::SendToAll(body)],
        }
    }

    /// As the relay, once `round` is complete here: the round, in one batch,
    /// to every co-signer (each skips its own contribution).
    pub(super) fn relay_round(&mut self, round: Round) -> Vec<Action> {
        if !self.is_relay() || self.relayed & round.bit() != 0 {
            return Vec::new();
        }
        self.relayed |= round.bit();
        let held = match round {
            Round::Commitments => &self.signed_commitments,
            Round::Nonces => &self.signed_nonces,
            Round::PartialSignatures => return Vec::new(),
        };
        vec![Action::SendToAll(Body::RoundBatch {
            contributions: held.iter().flatten().copied().collect(),
            signature: None,
            want: false,
        })]
    }

    /// As the relay, after round 2: the final signature to every co-signer.
    pub(super) fn relay_signature(&mut self, signature: Signature) -> Vec<Action> {
        let round = Round::PartialSignatures.bit();
        if !self.is_relay() || self.relayed & round != 0 {
            return Vec::new();
        }
        self.relayed |= round;
        vec![Action::SendToAll(Body::RoundBatch {
            contributions: Vec::new(),
            signature: Some(signature),
            want: false,
        })]
    }

    /// Whether we hold exactly this signed statement of `index` already (a
    /// contribution that came both directly and in a batch costs nothing).
    pub(crate) fn holds(&self, index: usize, statement: &Statement, signature: &Signature) -> bool {
        let held = match Round::of(statement) {
            Some(Round::Commitments) => self.signed_commitments.get(index),
            Some(Round::Nonces) => self.signed_nonces.get(index),
            Some(Round::PartialSignatures) => self.signed_psigs.get(index),
            None => None,
        };
        held.copied()
            .flatten()
            .is_some_and(|h| h.statement == *statement && h.signature == *signature)
    }

    /// What we hold of `round` and the rounds after it (ours included),
    /// and the final signature once known.
    fn holdings(&self, round: Round) -> (Vec<SignedContribution>, Option<Signature>) {
        let lists = [
            (Round::Commitments, &self.signed_commitments),
            (Round::Nonces, &self.signed_nonces),
            (Round::PartialSignatures, &self.signed_psigs),
        ];
        let held = lists
            .into_iter()
            .filter(|(r, _)| r.bit() >= round.bit())
            .flat_map(|(_, list)| list.iter().flatten().copied())
            .collect();
        (held, self.final_signature)
    }

    /// The relay timer: our contribution to the current round went out
    /// `timeout` ago and the round is still not complete here. We stop
    /// waiting for the relay: everything we hold goes to every co-signer,
    /// asking for what we lack, and the rest of the session runs without a
    /// relay on our side (our own contributions go to everyone). Co-signers
    /// that still use the relay send theirs to it alone, so this repeats,
    /// once per round, while a round stalls. Returns nothing if not due.
    pub fn relay_fallback(&mut self, now: Millis, timeout: Millis) -> Vec<Action> {
        if self.relay_index.is_none() || now.saturating_sub(self.progressed_at) < timeout {
            return Vec::new();
        }
        let waiting = match self.phase {
            SessionPhase::NonceCommit if self.commitments.iter().any(Option::is_none) => {
                Round::Commitments
            }
            SessionPhase::NonceExchange if self.context.is_none() => Round::Nonces,
            SessionPhase::PartialSigExchange => Round::PartialSignatures,
            _ => return Vec::new(),
        };
        // Once per round: co-signers answer a `want` once per round too.
        if self.fell_back & waiting.bit() != 0 {
            return Vec::new();
        }
        self.fell_back |= waiting.bit();
        self.relay_off = true;
        info!(session = %hex::encode(self.session_id), phase = %self.phase, "the relay is late; exchanging directly");
        let (contributions, signature) = self.holdings(waiting);
        vec![Action::SendToAll(Body::RoundBatch {
            contributions,
            signature,
            want: true,
        })]
    }

    /// A batch from signer `from`: the relay's round, a co-signer's
    /// holdings, or an answer. Each contribution we lack is checked under its
    /// signer's key (a bad one is `from`'s fault: it should have checked it
    /// before carrying it) and taken as if its signer had sent it; a
    /// contribution for a round we cannot take yet is skipped, never
    /// blamed. A final signature that verifies under the aggregate key
    /// completes the session. A `want` is answered once per round with what
    /// `from` lacks.
    pub fn on_batch(
        &mut self,
        from: usize,
        contributions: &[SignedContribution],
        signature: Option<Signature>,
        want: bool,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        if self.is_done() {
            return Ok(self.answer_done(from, want));
        }
        if from == self.me || from >= self.len() || contributions.len() > 3 * self.len() {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                from,
                "an oversized batch",
            ));
        }
        // An honest signer sends a handful per session (the relay one per
        // round, anyone one `want` per round and one answer per asker and
        // round): more are ignored, never verified.
        match self.batches.get_mut(from) {
            Some(count) if *count < MAX_BATCHES_PER_SIGNER => *count += 1,
            _ => return Ok(Vec::new()),
        }
        if want {
            // The asker stopped waiting for the relay: so do we, so that
            // our own contributions still to come reach it directly.
            self.relay_off |= !self.is_relay();
        }
        let mut actions = Vec::new();
        // Commitments, then nonces, then partial signatures, each round
        // checked for completion before the next (a nonce needs its
        // commitment, a partial signature round 1).
        for round in [Round::Commitments, Round::Nonces, Round::PartialSignatures] {
            for c in contributions
                .iter()
                .filter(|c| Round::of(&c.statement) == Some(round))
            {
                actions.extend(self.take_carried(from, c, now)?);
            }
            match round {
                Round::Commitments => actions.extend(self.check_commitments_complete()),
                Round::Nonces => actions.extend(self.check_round1_complete()?),
                Round::PartialSignatures => {}
            }
        }
        if let Some(signature) = signature {
            schnorr::verify(
                &self.aggregate_pubkey(),
                &self.announcement.message,
                &signature,
            )
            .map_err(|_| {
                Fault::blame(
                    ErrorCode::InvalidContribution,
                    from,
                    "a final signature that does not verify",
                )
            })?;
            actions.extend(self.complete_with(signature));
            return Ok(actions);
        }
        if want {
            actions.extend(self.answer(from, contributions));
        }
        actions.extend(self.check_complete()?);
        Ok(actions)
    }

    /// One contribution carried by `from`.
    fn take_carried(
        &mut self,
        from: usize,
        c: &SignedContribution,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        let index = c.signer_index as usize;
        let carrier_fault =
            |m: &str| Fault::blame(ErrorCode::InvalidContribution, from, m.to_string());
        if c.session_id != self.session_id {
            return Err(carrier_fault("a batch with another session's contribution"));
        }
        let key = *self
            .keys
            .get(index)
            .ok_or_else(|| carrier_fault("a batch naming no signer of ours"))?;
        if index == self.me || self.holds(index, &c.statement, &c.signature) {
            return Ok(Vec::new());
        }
        let held = match Round::of(&c.statement) {
            Some(Round::Commitments) => self.signed_commitments.get(index),
            Some(Round::Nonces) => self.signed_nonces.get(index),
            Some(Round::PartialSignatures) => self.signed_psigs.get(index),
            None => None,
        }
        .copied()
        .flatten();
        let takeable = match Round::of(&c.statement) {
            Some(Round::Commitments) => {
                self.commitments_enabled && self.phase < SessionPhase::NonceExchange
            }
            Some(Round::Nonces) => {
                self.context.is_none()
                    && (!self.commitments_enabled
                        || (self.phase >= SessionPhase::NonceCommit
                            && self.commitments.get(index).is_some_and(Option::is_some)))
            }
            Some(Round::PartialSignatures) => {
                self.context.is_some() && self.phase == SessionPhase::PartialSigExchange
            }
            None => false,
        };
        // A round we cannot take yet (or any more), and nothing held to
        // compare with: skipped unverified.
        if held.is_none() && !takeable {
            return Ok(Vec::new());
        }
        c.verify(&key)
            .map_err(|_| carrier_fault("a carried contribution whose signature does not verify"))?;
        // A second, different statement of one kind, both signed: proof.
        if let Some(held) = held {
            return match EquivocationProof::new(key, held, *c) {
                Some(proof) => Err(Fault::proven(
                    ErrorCode::Equivocation,
                    index,
                    format!("signer {index} signed two different statements of one kind"),
                    Evidence::Equivocation(proof),
                )),
                None => Ok(Vec::new()),
            };
        }
        Ok(match Round::of(&c.statement) {
            Some(Round::Commitments) => {
                self.accept_commitment(c, now);
                Vec::new()
            }
            Some(Round::Nonces) => {
                self.accept_nonce(*c, now)?;
                Vec::new()
            }
            Some(Round::PartialSignatures) => self.accept_psig(*c, now),
            None => Vec::new(),
        })
    }

    /// Our answer to `from`'s `want`, once per round: what we hold that its
    /// batch lacks.
    fn answer(&mut self, from: usize, theirs: &[SignedContribution]) -> Vec<Action> {
        let Some(round) = theirs
            .iter()
            .filter_map(|c| Round::of(&c.statement))
            .max_by_key(|r| r.bit())
        else {
            return Vec::new();
        };
        let Some(answered) = self.answered.get_mut(from) else {
            return Vec::new();
        };
        if *answered & round.bit() != 0 {
            return Vec::new();
        }
        *answered |= round.bit();
        let (held, signature) = self.holdings(round);
        let lacking: Vec<SignedContribution> =
            held.into_iter().filter(|c| !theirs.contains(c)).collect();
        if lacking.is_empty() && signature.is_none() {
            return Vec::new();
        }
        vec![Action::SendTo(
            from,
            Body::RoundBatch {
                contributions: lacking,
                signature,
                want: false,
            },
        )]
    }

    /// On completion: every co-signer that asked us for what it lacked and
    /// has not had our final signature gets it (it may still wait).
    pub(super) fn tell_askers(&mut self, signature: Signature) -> Vec<Action> {
        let me = self.me;
        self.answered
            .iter_mut()
            .enumerate()
            .filter(|(i, a)| *i != me && **a != 0 && **a & ANSWERED_SIGNATURE == 0)
            .map(|(i, a)| {
                *a |= ANSWERED_SIGNATURE;
                Action::SendTo(
                    i,
                    Body::RoundBatch {
                        contributions: Vec::new(),
                        signature: Some(signature),
                        want: false,
                    },
                )
            })
            .collect()
    }

    /// A batch (or a timeout report) after we completed: a `want` is
    /// answered once with the final signature (all the asker needs);
    /// anything else is late.
    pub fn answer_done(&mut self, from: usize, want: bool) -> Vec<Action> {
        let (Some(signature), Some(answered)) = (self.final_signature, self.answered.get_mut(from))
        else {
            return Vec::new();
        };
        if !want || from == self.me || *answered & ANSWERED_SIGNATURE != 0 {
            return Vec::new();
        }
        *answered |= ANSWERED_SIGNATURE;
        vec![Action::SendTo(
            from,
            Body::RoundBatch {
                contributions: Vec::new(),
                signature: Some(signature),
                want: false,
            },
        )]
    }
}
