//! The inbound pipeline for direct messages: blacklist and size checks on
//! the raw bytes → decode → (for joins) signature verification → the
//! security layer (time, replay, phase, role, sender slots) → the session.
//! Also gossip, and messages for completed sessions.
//!
//! Principles: nothing unauthenticated takes a slot or state (a join is
//! verified before the security layer records its sender); a message for a
//! completed session can never undo the completion; messages for a session
//! that ended recently are dropped rather than kept to be replayed later.

use std::sync::Arc;

use musig2_net::{MessageId, PeerId, Verdict};
use musig2_security::{
    Admission, Delivery, DirectMessage, Malformation, MessageKind, Rule, SenderRole,
    SessionAnnouncement, SessionId as SecSessionId, SignedObject, TransactionType, Violation,
};
use tracing::{debug, warn};

use super::state::{BUFFERED_PER_SESSION, Orphan};

/// Chronik look-ups a session starts for reported broadcasts, at most.
const MAX_BROADCAST_CHECKS: u8 = 3;
use super::{Inner, REQUESTS_TOPIC, decode_exact, lock, sec_peer};
use crate::events::{ConfirmationBasis, ErrorCode, SessionId};
use crate::evidence::Blame;
use crate::session::{Action, Fault};
use crate::wire::{self, Body, WireMessage};

impl Inner {
    /// A direct message from an authenticated peer.
    pub(super) fn on_direct(self: &Arc<Self>, peer: PeerId, payload: Vec<u8>) {
        let now = self.clock.now_ms();
        let size = payload.len();
        // Blacklisted, graylisted and oversized input is dropped before decoding.
        if lock(&self.security)
            .check_size(&sec_peer(&peer), Delivery::Direct, size, now)
            .is_err()
        {
            return;
        }
        let message = match wire::decode(&payload) {
            Ok(m) => m,
            Err(e) => {
                lock(&self.security).report_violation(
                    &sec_peer(&peer),
                    Violation::Malformed(Malformation::Undecodable(e.to_string())),
                    now,
                );
                return;
            }
        };
        if let Body::SigningRequest(announcement) = &message.body {
            if self.on_forwarded_announcement(&peer, announcement) {
                return;
            }
            let checked = self.judge_request(&peer, Delivery::Direct, size, announcement, now);
            match checked {
                // A copy of one already handled: nothing more to do.
                Ok(false) => {}
                Ok(true) => {
                    if !self.on_session_announcement_copy(announcement) {
                        self.on_announcement(*announcement.clone());
                    }
                }
                Err(rejection) => debug!(%rejection, "signing request rejected"),
            }
            return;
        }
        enum Route {
            Live,
            Completed,
            Ended,
            Unknown,
        }
        let route = {
            let mut state = lock(&self.state);
            let route = match state.sessions.get(&message.session_id) {
                Some(s) if s.is_done() => Route::Completed,
                Some(_) => Route::Live,
                None if state.ended.contains_key(&message.session_id) => Route::Ended,
                None => Route::Unknown,
            };
            if matches!(route, Route::Unknown) {
                // Decided and stored under one lock: a session opened after
                // this replays it; one opened before was seen above. (Two
                // lock scopes here once let a session open in between, replay
                // its orphans, and strand this message for good.)
                state.orphans.push(Orphan {
                    peer,
                    message,
                    size,
                    arrived: now,
                });
                return;
            }
            route
        };
        match route {
            Route::Live => self.admit(peer, message, size),
            Route::Completed => self.on_late(peer, message),
            Route::Ended => lock(&self.state).counters.late_messages += 1,
            Route::Unknown => {}
        }
    }

    /// A message for a session that completed here. Only the current
    /// coordinator's signed `SignatureFinalized` with our very signature
    /// means something (broadcast reported; confirmed at once on its word,
    /// or after a Chronik look-up where the node has a client); everything
    /// else is counted and ignored: no abort, error or wrong finalization
    /// can remove a valid signature or stop failover.
    pub(super) fn on_late(self: &Arc<Self>, peer: PeerId, message: WireMessage) {
        let session_id = message.session_id;
        let actions = {
            let mut state = lock(&self.state);
            let Some(session) = state.sessions.get_mut(&session_id) else {
                return;
            };
            let index = session.peers.iter().position(|p| *p == Some(peer));
            let from_coordinator = index.is_some() && index == session.coordinator_index();
            match (&message.body, index) {
                (
                    Body::SignatureFinalized {
                        signature,
                        txid,
                        attestation,
                    },
                    Some(i),
                ) if from_coordinator => {
                    match session.verify_finalized(i, signature, *txid, *attestation) {
                        Ok(()) => match (&self.config.broadcast_check, *txid) {
                            (None, txid) => Some(session.confirm_broadcast(
                                ConfirmationBasis::CoordinatorWord {
                                    coordinator_index: i,
                                    txid,
                                },
                            )),
                            (Some(_), Some(_))
                                if session.broadcast_checks >= MAX_BROADCAST_CHECKS =>
                            {
                                state.counters.broadcasts_unconfirmed += 1;
                                None
                            }
                            (Some(chronik), Some(txid)) => {
                                session.broadcast_checks += 1;
                                let chronik = Arc::clone(chronik);
                                let this = Arc::clone(self);
                                tokio::spawn(async move {
                                    this.check_broadcast(chronik, session_id, i, txid).await;
                                });
                                None
                            }
                            (Some(_), None) => {
                                warn!(
                                    signer = i,
                                    "the coordinator reported a broadcast without a txid; not confirmed"
                                );
                                state.counters.broadcasts_unconfirmed += 1;
                                None
                            }
                        },
                        Err(fault) => {
                            warn!(signer = i, message = %fault.message, "coordinator finalized another signature; ours is kept");
                            state.counters.finalize_mismatches += 1;
                            None
                        }
                    }
                }
                (Body::SignatureFinalized { .. }, Some(i)) if session.is_later_backup(i) => {
                    // Its failover clock runs ahead of ours: judged when we
                    // reach it (sweep or trigger), not before.
                    session.early_finalization = Some(Box::new((i, peer, message.clone())));
                    state.counters.late_messages += 1;
                    None
                }
                // A co-signer that stopped waiting for the relay asks for
                // what it lacks: the final signature, once.
                (Body::RoundBatch { want: true, .. }, Some(i)) => {
                    let answer = session.answer_done(i, true);
                    if answer.is_empty() {
                        state.counters.late_messages += 1;
                        None
                    } else {
                        Some(answer)
                    }
                }
                (Body::SessionAbort { report, .. }, _) => {
                    debug!(?index, reason = %report.reason, "abort after completion ignored; the signature is kept");
                    // A co-signer that gave up (a timeout report) may lack
                    // only our signature: it gets it, once.
                    let answer = index
                        .map(|i| session.answer_done(i, true))
                        .filter(|answer| !answer.is_empty());
                    state.counters.aborts_after_completion += 1;
                    answer
                }
                _ => {
                    state.counters.late_messages += 1;
                    None
                }
            }
        };
        if let Some(actions) = actions {
            self.apply(session_id, actions);
        }
    }

    /// Looks the reported transaction up through Chronik; confirms the
    /// broadcast only if it is there.
    async fn check_broadcast(
        self: Arc<Self>,
        chronik: Arc<musig2_identity::chronik::ChronikClient>,
        session_id: SessionId,
        coordinator_index: usize,
        txid: [u8; 32],
    ) {
        let seen = chronik
            .tx(&musig2_identity::TxId::from_internal_bytes(txid))
            .await;
        let actions = {
            let mut state = lock(&self.state);
            let Some(session) = state.sessions.get_mut(&session_id) else {
                return;
            };
            // The indexer must know the transaction, and it must carry our
            // signature in an input: any other transaction proves nothing.
            let signature = session.final_signature.map(|s| s.to_bytes());
            let carries = match (&seen, signature) {
                (Ok(indexed), Some(sig)) => indexed
                    .tx
                    .inputs
                    .iter()
                    .any(|input| input.script_sig.windows(64).any(|w| w == sig)),
                _ => false,
            };
            if !carries || session.coordinator_index() != Some(coordinator_index) {
                match &seen {
                    Err(e) => {
                        warn!(error = %e, "the reported broadcast is not seen through Chronik; failover goes on")
                    }
                    Ok(_) => warn!(
                        "the reported transaction does not carry this session's signature; failover goes on"
                    ),
                }
                state.counters.broadcasts_unconfirmed += 1;
                return;
            }
            session.confirm_broadcast(ConfirmationBasis::ChronikSeen {
                coordinator_index,
                txid,
            })
        };
        self.apply(session_id, actions);
    }

    /// Authentication, security checks, then processing or buffering.
    pub(super) fn admit(self: &Arc<Self>, peer: PeerId, message: WireMessage, size: usize) {
        let now = self.clock.now_ms();
        let session_id = message.session_id;
        let (index, phase, role) = {
            let state = lock(&self.state);
            let Some(session) = state.sessions.get(&session_id) else {
                return;
            };
            let by_peer = session.peers.iter().position(|p| *p == Some(peer));
            let index = match (&message.body, by_peer) {
                (
                    Body::SessionJoin {
                        signer_index,
                        pubkey,
                        peer_id,
                        announcement_digest,
                        signature,
                    },
                    _,
                ) => {
                    // Verify first: a join that its signer did not sign takes
                    // no sender slot and is the sender's fault alone.
                    let index = *signer_index as usize;
                    if let Err(fault) = session.verify_join(
                        index,
                        pubkey,
                        peer_id,
                        announcement_digest,
                        signature,
                        &peer,
                    ) {
                        drop(state);
                        debug!(%peer, message = %fault.message, "forged join dropped");
                        lock(&self.state).counters.forged_joins += 1;
                        lock(&self.security).record_invalid_signature(
                            &sec_peer(&peer),
                            SignedObject::SessionJoin,
                            now,
                        );
                        return;
                    }
                    Some(index)
                }
                (_, found) => found,
            };
            // A contribution we hold already, identical (it came in a
            // batch first): nothing new, and never a wrong-phase penalty
            // for its honest signer.
            if let (Some(i), Some((statement, signature))) = (index, message.body.statement())
                && session.holds(i, &statement, &signature)
            {
                drop(state);
                lock(&self.state).counters.late_messages += 1;
                return;
            }
            let role = if index.is_some() && index == session.coordinator_index() {
                SenderRole::Coordinator
            } else {
                SenderRole::Participant
            };
            (index, session.phase, role)
        };
        let Some(index) = index else {
            lock(&self.security).report_violation(
                &sec_peer(&peer),
                Violation::Malformed(Malformation::Undecodable(
                    "sender is not a participant of the session".into(),
                )),
                now,
            );
            return;
        };
        let direct = DirectMessage {
            session_id: SecSessionId::from_bytes(session_id),
            kind: message.body.kind(),
            sequence: message.sequence,
            sent_at: message.sent_at,
            phase,
            sender_role: role,
            size,
        };
        let admission = lock(&self.security).check_direct_message(&sec_peer(&peer), &direct, now);
        if admission.is_ok() && message.body.claimed_index().is_some_and(|c| c != index) {
            // An authenticated participant that claims another signer's index.
            self.fault(
                session_id,
                Fault {
                    code: ErrorCode::InvalidContribution,
                    signer: Some(index),
                    message: "message claims another signer's index".into(),
                    blame: Blame::Observed,
                    from_abort: false,
                    culprits: Vec::new(),
                    relay: None,
                },
            );
            return;
        }
        match admission {
            Ok(Admission::Process) => self.process(peer, index, message),
            Ok(Admission::Buffer) => {
                // The phase was read under an earlier lock: if it has moved on
                // since (and the phase change already drained the buffer), the
                // message is processed now, not buffered where nothing would
                // ever drain it (a session then stalled "waiting for
                // signers []"). Checked and stored under one lock.
                let kind = message.body.kind();
                let mut state = lock(&self.state);
                let ready = state.sessions.get(&session_id).is_some_and(|s| {
                    s.phase != phase
                        && musig2_security::phase::check_phase(
                            kind,
                            s.phase,
                            SenderRole::Coordinator,
                        ) == Ok(Admission::Process)
                });
                if ready {
                    drop(state);
                    self.process(peer, index, message);
                    return;
                }
                let list = state.buffered.entry(session_id).or_default();
                // Batches are unstaged: one early batch per sender is kept
                // (the latest), so that no sender can fill the buffer.
                if kind == MessageKind::RoundBatch
                    && let Some(slot) = list
                        .iter_mut()
                        .find(|(_, i, m)| *i == index && m.body.kind() == kind)
                {
                    *slot = (peer, index, message);
                    return;
                }
                if list.len() < BUFFERED_PER_SESSION {
                    list.push((peer, index, message));
                } else {
                    state.counters.buffered_dropped += 1;
                }
            }
            Err(rejection) => {
                debug!(%rejection, "direct message rejected");
                let kind = message.body.kind();
                // Never answer an error or an abort (no ping-pong), nor a join
                // (answered joins could be used to reflect traffic).
                let answerable = !matches!(
                    message.body,
                    Body::ValidationError { .. }
                        | Body::SessionAbort { .. }
                        | Body::SessionJoin { .. }
                        | Body::TranscriptView { .. }
                        | Body::RoundBatch { .. }
                );
                let first = answerable
                    && lock(&self.state)
                        .validation_replied
                        .insert((session_id, peer));
                if first {
                    let body = Body::ValidationError {
                        code: rejection.rule.to_string(),
                        detail: format!("{kind:?}: {rejection}"),
                    };
                    self.apply(session_id, vec![Action::SendTo(index, body)]);
                }
            }
        }
    }

    /// Hands an admitted message to its session, then replays buffered
    /// messages whose phase has come (a loop, never recursion).
    fn process(self: &Arc<Self>, peer: PeerId, index: usize, message: WireMessage) {
        let session_id = message.session_id;
        self.process_one(peer, index, message);
        self.drain_buffered(session_id);
    }

    fn process_one(self: &Arc<Self>, peer: PeerId, index: usize, message: WireMessage) {
        let now = self.clock.now_ms();
        let session_id = message.session_id;
        let result = {
            let mut state = lock(&self.state);
            let Some(session) = state.sessions.get_mut(&session_id) else {
                return;
            };
            if session.is_done() {
                // Completed while the message waited in the buffer.
                drop(state);
                self.on_late(peer, message);
                return;
            }
            match message.body {
                Body::SessionJoin {
                    pubkey,
                    peer_id,
                    announcement_digest,
                    signature,
                    ..
                } => {
                    let r = session.on_join(
                        index,
                        &pubkey,
                        &peer_id,
                        &announcement_digest,
                        &signature,
                        &peer,
                        now,
                    );
                    let admitted = session.joined(index);
                    if r.is_ok() {
                        // Its signature proves the key's owner speaks from
                        // this peer, admitted or not (a joiner shown another
                        // announcement still gets ours).
                        state.directory.insert(pubkey, peer);
                    }
                    r.map(|actions| (actions, admitted.then_some(peer)))
                }
                Body::NonceCommit {
                    commitment,
                    signature,
                    ..
                } => session
                    .on_commitment(index, commitment, signature, now)
                    .map(|a| (a, None)),
                Body::NonceShare {
                    nonce, signature, ..
                } => session
                    .on_nonce(index, nonce, signature, now)
                    .map(|a| (a, None)),
                Body::PartialSigShare {
                    partial_sig,
                    transcript,
                    signature,
                    ..
                } => session
                    .on_partial_sig(index, partial_sig, transcript, signature, now)
                    .map(|a| (a, None)),
                Body::TranscriptView { contributions } => {
                    session.on_view(index, &contributions).map(|a| (a, None))
                }
                Body::RoundBatch {
                    contributions,
                    signature,
                    want,
                } => session
                    .on_batch(index, &contributions, signature, want, now)
                    .map(|a| (a, None)),
                Body::SignatureFinalized {
                    signature,
                    txid,
                    attestation,
                } => session
                    .on_finalized(index, &signature, txid, attestation)
                    .map(|a| (a, None)),
                // Our own timeout report, relayed back by a co-signer it
                // ended: nothing we did not know (we decide after the grace).
                Body::SessionAbort { report, .. }
                    if session.timeout_reported_at.is_some()
                        && report
                            .relayed
                            .as_ref()
                            .is_some_and(|r| r.from as usize == session.me) =>
                {
                    Ok((Vec::new(), None))
                }
                Body::SessionAbort { report, signature } => Err(
                    super::accountability::judge_abort(session, index, &report, signature),
                ),
                Body::ValidationError { code, detail } => {
                    warn!(signer = index, %code, %detail, "a co-signer rejected one of our messages");
                    Ok((Vec::new(), None))
                }
                Body::SigningRequest(_) => Ok((Vec::new(), None)),
            }
        };
        match result {
            Ok((actions, joined)) => {
                let _ = lock(&self.security)
                    .record_session_progress(SecSessionId::from_bytes(session_id), now);
                if let Some(peer) = joined {
                    // A joined co-signer keeps its connection slot.
                    self.exempt_peers(vec![peer], true);
                }
                self.apply(session_id, actions);
            }
            Err(fault) => self.fault(session_id, fault),
        }
    }

    /// Replays buffered messages whose phase has come.
    pub(super) fn drain_buffered(self: &Arc<Self>, session_id: SessionId) {
        loop {
            let ready = {
                let mut state = lock(&self.state);
                let Some(phase) = state.sessions.get(&session_id).map(|s| s.phase) else {
                    return;
                };
                let Some(list) = state.buffered.get_mut(&session_id) else {
                    return;
                };
                let position = list.iter().position(|(_, _, m)| {
                    musig2_security::phase::check_phase(
                        m.body.kind(),
                        phase,
                        SenderRole::Coordinator,
                    ) == Ok(Admission::Process)
                });
                match position {
                    Some(p) => list.remove(p),
                    None => return,
                }
            };
            let (peer, index, message) = ready;
            self.process_one(peer, index, message);
        }
    }

    /// Admits the messages that arrived for `session_id` before we knew it.
    pub(super) fn replay_orphans(self: &Arc<Self>, session_id: SessionId) {
        let now = self.clock.now_ms();
        let mine = lock(&self.state).orphans.take_session(&session_id);
        for Orphan {
            peer,
            mut message,
            size,
            arrived,
        } in mine
        {
            // The message was timely when it arrived; judge its timestamp as of then.
            message.sent_at = message.sent_at.saturating_add(now.saturating_sub(arrived));
            self.admit(peer, message, size);
        }
    }

    /// Judges a signing request delivered by `peer`: `Ok(true)` for a new
    /// one (every check, its request token paid), `Ok(false)` for a copy of
    /// one already pending or running here (every check but the rate).
    fn judge_request(
        &self,
        peer: &PeerId,
        delivery: Delivery,
        size: usize,
        a: &SessionAnnouncement,
        now: musig2_security::Millis,
    ) -> Result<bool, musig2_security::Rejection> {
        let fresh = !self.is_known_copy(a);
        let mut security = lock(&self.security);
        if fresh {
            security.check_session_announcement(&sec_peer(peer), delivery, size, a, now)?;
        } else {
            security.check_session_announcement_copy(&sec_peer(peer), delivery, size, a, now)?;
        }
        Ok(fresh)
    }

    /// Whether this exact announcement (equal to the one already verified)
    /// is pending here or is a live session's: a second copy of a request
    /// (it comes directly and by gossip) is judged by every check but the
    /// request rate its first copy paid
    /// (`SecurityManager::check_session_announcement_copy`) and is not
    /// handled twice.
    fn is_known_copy(&self, a: &SessionAnnouncement) -> bool {
        let state = lock(&self.state);
        state.pending.get(&a.request_id) == Some(a)
            || state
                .sessions
                .get(&a.session_id().to_bytes())
                .is_some_and(|s| s.announcement == *a)
    }

    /// A gossip message; returns the verdict, or `None` when a task reports it.
    pub(super) fn on_gossip(
        self: &Arc<Self>,
        message_id: MessageId,
        source: PeerId,
        author: Option<PeerId>,
        topic: String,
        data: Vec<u8>,
    ) -> Option<Verdict> {
        let now = self.clock.now_ms();
        let Some(author) = author else {
            return Some(Verdict::Reject);
        };
        if topic == REQUESTS_TOPIC {
            let Some(a) = decode_exact::<SessionAnnouncement>(&data) else {
                return Some(Verdict::Reject);
            };
            return Some(
                match self.judge_request(&author, Delivery::Gossip, data.len(), &a, now) {
                    // A copy is propagated as the first would have been.
                    Ok(false) => Verdict::Accept,
                    Ok(true) => {
                        self.on_announcement(a);
                        Verdict::Accept
                    }
                    Err(rejection) => refusal_verdict(rejection.rule),
                },
            );
        }
        if TransactionType::from_topic(&topic).is_some() {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let verdict = match this.accept_advertisement(&data, Some(author)).await {
                    Ok(_) => Verdict::Accept,
                    Err(verdict) => verdict,
                };
                let _ = this.net.report_verdict(message_id, source, verdict).await;
            });
            return None;
        }
        Some(Verdict::Ignore)
    }

    /// A later backup's finalization kept by `on_late`: judged now if our
    /// failover has reached that backup.
    pub(super) fn replay_early_finalization(self: &Arc<Self>, session_id: SessionId) {
        let due = {
            let mut state = lock(&self.state);
            let Some(session) = state.sessions.get_mut(&session_id) else {
                return;
            };
            match session.early_finalization.as_deref() {
                Some((i, _, _)) if session.coordinator_index() == Some(*i) => {
                    session.early_finalization.take()
                }
                _ => None,
            }
        };
        if let Some((_, peer, message)) = due.map(|b| *b) {
            self.on_late(peer, message);
        }
    }
}

/// The verdict GossipSub gets for a gossip message the security layer
/// refused. GossipSub scores the *forwarder* of a rejected message, and an
/// honest relay forwards only what its own checks accepted, so `Reject` is
/// kept for messages that are invalid in themselves (any relay running our
/// checks refuses them too): malformed, badly signed, or published by a
/// peer other than the one they name. A refusal that depends on this node's
/// own state or clock (rate limits, key quotas, timestamps, expiry, our
/// lists, a newer version) is `Ignore`: the author is still charged by the
/// security layer, but no relay loses GossipSub score for it.
pub(super) fn refusal_verdict(rule: Rule) -> Verdict {
    match rule {
        Rule::Malformed | Rule::InvalidSignature | Rule::PeerMismatch => Verdict::Reject,
        _ => Verdict::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_messages_invalid_in_themselves_are_rejected() {
        for rule in Rule::ALL {
            let expected = match rule {
                Rule::Malformed | Rule::InvalidSignature | Rule::PeerMismatch => Verdict::Reject,
                _ => Verdict::Ignore,
            };
            assert_eq!(refusal_verdict(rule), expected, "{rule}");
        }
        for rule in [
            Rule::RateLimit,
            Rule::TimestampSkew,
            Rule::Expired,
            Rule::Graylisted,
        ] {
            assert_eq!(refusal_verdict(rule), Verdict::Ignore);
        }
    }
}
