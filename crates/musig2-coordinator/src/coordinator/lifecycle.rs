//! Session lifecycle with no caller needed: the sweep times out joins and
//! rounds (naming every missing signer), expires and unsticks sessions,
//! fails sessions whose participants left; completion releases the security
//! slot at once and keeps the result in a bounded cache; faults and closes
//! forget a session and everything held for it.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use musig2_net::PeerId;
use musig2_security::{Millis, SecurityEvent, SessionId as SecSessionId, SessionPhase};
use tracing::warn;

use super::{Inner, lock};
use crate::events::{CoordinatorEvent, ErrorCode, SessionId};
use crate::evidence::Blame;
use crate::session::{Action, Fault};
use crate::wire::{AbortReport, Body, WireMessage};

/// How long a node whose round timer fired waits for its co-signers'
/// timeout reports before it names the signers it misses.
pub(crate) const TIMEOUT_GRACE_MS: Millis = 2_000;

impl Inner {
    /// Bookkeeping on our own session milestones. Lock order: the state is
    /// read and released before the security manager is taken.
    pub(super) fn on_own_event(&self, session_id: SessionId, event: &CoordinatorEvent) {
        match event {
            CoordinatorEvent::SessionReady { .. } => {
                // Co-signers' connections are session connections.
                let peers = lock(&self.state).session_peers(&session_id);
                self.exempt_peers(peers, true);
            }
            CoordinatorEvent::SessionComplete { .. } => self.on_complete(session_id),
            _ => {}
        }
    }

    /// The session completed: credit the co-signers, release its security
    /// slot and buffers now, keep the session (signature, failover) in the
    /// bounded completed cache, and forget the oldest completed session
    /// beyond its capacity.
    fn on_complete(&self, session_id: SessionId) {
        let now = self.clock.now_ms();
        let (peers, evicted) = {
            let mut state = lock(&self.state);
            let peers = state.session_peers(&session_id);
            if let Some(s) = state.sessions.get_mut(&session_id) {
                s.completed_at = Some(now);
            }
            // A finalization that arrived before our last partial signature
            // is judged now that we are complete.
            let finalizations: Vec<(PeerId, WireMessage)> = state
                .buffered
                .remove(&session_id)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, _, m)| matches!(m.body, Body::SignatureFinalized { .. }))
                .map(|(peer, _, m)| (peer, m))
                .collect();
            state.late_finalizations.extend(finalizations);
            state.validation_replied.retain(|(id, _)| *id != session_id);
            state.completed.push_back(session_id);
            let mut evicted = Vec::new();
            while state.completed.len() > self.config.completed_capacity.max(1) {
                if let Some(old) = state.completed.pop_front() {
                    evicted.push(old);
                }
            }
            (peers, evicted)
        };
        {
            let mut security = lock(&self.security);
            for peer in &peers {
                security.record_session_completed(&super::sec_peer(peer), now);
            }
            security.close_session(&SecSessionId::from_bytes(session_id));
        }
        self.identities_completed(session_id, now);
        for old in evicted {
            lock(&self.state).counters.completed_evicted += 1;
            self.remove(old);
        }
    }

    /// Reports a failure and closes the session: the state is gone before the
    /// application hears `SessionError`, then `SessionClosed`. A completed
    /// session cannot fail: its signature stays.
    pub(super) fn fault(self: &Arc<Self>, session_id: SessionId, fault: Fault) {
        let culprits = if fault.culprits.is_empty() {
            fault.signer.into_iter().collect()
        } else {
            fault.culprits.clone()
        };
        self.fault_naming(session_id, fault, culprits);
    }

    /// [`fault`](Self::fault) naming several culprits (every signer that did
    /// not join or contribute in time).
    pub(super) fn fault_naming(
        self: &Arc<Self>,
        session_id: SessionId,
        fault: Fault,
        culprits: Vec<usize>,
    ) {
        let (done, invalid) = {
            let state = lock(&self.state);
            let session = state.sessions.get(&session_id);
            (
                session.is_some_and(|s| s.is_done()),
                // Aggregate first leaves partial signatures unchecked: one
                // that does not verify is proof, whatever else ended the
                // session (an abort, a disconnection).
                session
                    .filter(|s| {
                        s.phase == SessionPhase::PartialSigExchange && !fault.blame.is_proof()
                    })
                    .and_then(|s| s.invalid_partial()),
            )
        };
        if done {
            warn!(session = %hex::encode(session_id), code = fault.code.as_str(), message = %fault.message, "fault after completion ignored; the signature is kept");
            return;
        }
        let (fault, culprits) = match invalid {
            Some(proven) => {
                let culprits = proven.culprits.clone();
                (proven, culprits)
            }
            None => (fault, culprits),
        };
        warn!(session = %hex::encode(session_id), code = fault.code.as_str(), signer = ?fault.signer, ?culprits, proof = fault.blame.is_proof(), message = %fault.message, "session failed");
        self.penalise_proven(session_id, &fault);
        if !fault.from_abort || fault.relay.is_some() {
            // Tell every co-signer, signed, whom we blame and on what
            // evidence, so nobody waits for us and each can judge (best
            // effort). A failure learnt from a co-signer's abort relays that
            // signed abort: those it did not tell judge it themselves, and
            // name its author, not us.
            let report = AbortReport {
                code: fault.code.as_str().to_owned(),
                culprits: culprits.iter().map(|c| *c as u32).collect(),
                evidence: fault.blame.evidence().cloned(),
                reason: fault.message.clone(),
                relayed: fault.relay.clone(),
            };
            let body = lock(&self.state)
                .sessions
                .get(&session_id)
                .map(|s| s.abort_body(report));
            if let Some(body) = body {
                self.apply(session_id, vec![Action::SendToAll(body)]);
            }
        }
        let removed = self.forget(session_id);
        self.emit(CoordinatorEvent::SessionError {
            session_id,
            code: fault.code,
            signer: fault.signer,
            culprits,
            message: fault.message,
            blame: fault.blame,
        });
        if removed {
            self.emit(CoordinatorEvent::SessionClosed(session_id));
        }
    }

    /// Forgets a session and emits `SessionClosed`.
    pub(super) fn remove(&self, session_id: SessionId) -> bool {
        let removed = self.forget(session_id);
        if removed {
            self.emit(CoordinatorEvent::SessionClosed(session_id));
        }
        removed
    }

    /// Forgets a session (its secret nonce is dropped, hence zeroized, here)
    /// and everything held for it.
    fn forget(&self, session_id: SessionId) -> bool {
        let (removed, released) = {
            let mut state = lock(&self.state);
            state.buffered.remove(&session_id);
            state.validation_replied.retain(|(id, _)| *id != session_id);
            state.completed.retain(|id| *id != session_id);
            let _ = state.orphans.take_session(&session_id);
            state.ended.insert(session_id, ());
            let removed = state.sessions.remove(&session_id);
            let mut released = Vec::new();
            if let Some(s) = removed.as_ref().filter(|s| s.nonce_drawn) {
                let expires_at = s.announcement.expires_at;
                state.remember_signed(session_id, expires_at);
            }
            if let Some(s) = &removed {
                state.requests.remove(&s.request_id);
                // Its co-signers count against the general limit again,
                // unless another live session still uses them.
                let in_use: HashSet<&PeerId> = state
                    .sessions
                    .values()
                    .flat_map(|o| o.peers.iter().flatten())
                    .collect();
                released = s
                    .peers
                    .iter()
                    .flatten()
                    .filter(|p| !in_use.contains(p))
                    .copied()
                    .collect();
            }
            (removed.is_some(), released)
        };
        self.exempt_peers(released, false);
        lock(&self.security).close_session(&SecSessionId::from_bytes(session_id));
        removed
    }

    /// Expired and stuck sessions (by the security layer's clocks) are
    /// failed, completed ones past expiry just closed.
    pub(super) fn cleanup_expired(self: &Arc<Self>) -> Vec<SessionId> {
        let now = self.clock.now_ms();
        let stale = lock(&self.security).stale_sessions(now);
        let ids: Vec<SessionId> = stale.all().map(|s| s.to_bytes()).collect();
        for id in &ids {
            self.fault(
                *id,
                Fault::nobody(ErrorCode::Expired, "session expired or stuck"),
            );
        }
        ids
    }

    /// The timeouts of every live session at `now`: a participant gone too
    /// long, the join phase past its deadline, a round waiting too long.
    /// Also returns the sessions whose round timer fired just now: their
    /// report goes out before their verdict.
    #[allow(clippy::type_complexity)]
    fn timeouts(
        &self,
        now: Millis,
    ) -> (
        Vec<(SessionId, Fault, Vec<usize>)>,
        Vec<(SessionId, Vec<usize>)>,
    ) {
        let grace = self.config.disconnect_grace.as_millis() as Millis;
        let round = self.config.round_timeout.as_millis() as Millis;
        let join = self.config.join_timeout.as_millis() as Millis;
        let state = lock(&self.state);
        let mut faults = Vec::new();
        let mut reports = Vec::new();
        for (id, session) in state.sessions.iter().filter(|(_, s)| !s.is_done()) {
            let gone: Vec<usize> = session
                .peers
                .iter()
                .enumerate()
                .filter(|(i, p)| {
                    *i != session.me
                        && p.and_then(|p| state.disconnected.get(&p))
                            // Only a disconnection during this session counts.
                            .is_some_and(|since| {
                                *since >= session.started_at && now.saturating_sub(*since) >= grace
                            })
                })
                .map(|(i, _)| i)
                .collect();
            if let Some(first) = gone.first() {
                faults.push((
                    *id,
                    observed(
                        ErrorCode::ParticipantDisconnected,
                        Some(*first),
                        format!("signer {first} disconnected (gone: {gone:?})"),
                    ),
                    gone,
                ));
                continue;
            }
            // Signers shown another announcement under this id are victims
            // of the creator until proven otherwise: never named for it.
            // The very contribution owed, arrived and waiting for our phase,
            // is not missing (any other buffered message does not count).
            let (owed, missing) = session.missing_with_kind();
            let waiting: Vec<usize> = state
                .buffered
                .get(id)
                .map(|list| {
                    list.iter()
                        .filter(|(_, _, m)| Some(m.body.kind()) == owed)
                        .map(|(_, index, _)| *index)
                        .collect()
                })
                .unwrap_or_default();
            let missing: Vec<usize> = missing
                .into_iter()
                .filter(|i| !waiting.contains(i))
                .collect();
            if session.phase == SessionPhase::SigningRequest {
                let deadline = session
                    .started_at
                    .saturating_add(join)
                    .min(session.announcement.expires_at);
                if now < deadline {
                    continue;
                }
                // A signer that joined another announcement under our id and
                // never showed it (an honest one would have: we sent it ours,
                // and the two prove the creator's equivocation) did not join
                // this one: named, as observed.
                let fault = observed(
                    ErrorCode::JoinTimeout,
                    missing.first().copied(),
                    format!("signers {missing:?} did not join in time"),
                );
                faults.push((*id, fault, missing));
            } else if session.timeout_reported_at.is_some()
                || now.saturating_sub(session.progressed_at) >= round
            {
                // (A partial signature held unchecked that does not verify
                // replaces the verdict with its proof in `fault_naming`.)
                // A signer missing here may be stuck one round behind,
                // waiting for a contribution that reached us but not it (a
                // partition): our report goes out first, and the verdict
                // waits `TIMEOUT_GRACE_MS` for the co-signers' reports (a
                // report is judged as an abort: only the signers both views
                // miss are named). Once reported, the session ends at the
                // grace's end even if it moved meanwhile: our report told
                // every co-signer it was over.
                if session.view_mismatch.is_empty() {
                    match session.timeout_reported_at {
                        None => {
                            reports.push((*id, missing));
                            continue;
                        }
                        Some(at) if now.saturating_sub(at) < TIMEOUT_GRACE_MS => continue,
                        Some(_) => {}
                    }
                }
                let fault = if session.view_mismatch.is_empty() {
                    observed(
                        ErrorCode::RoundTimeout,
                        missing.first().copied(),
                        format!(
                            "phase {} timed out waiting for signers {missing:?}",
                            session.phase
                        ),
                    )
                } else {
                    Fault::nobody(
                        ErrorCode::ViewMismatch,
                        format!(
                            "signers {:?} signed over another view, and no view exchanged proves who equivocated",
                            session.view_mismatch
                        ),
                    )
                };
                let culprits = if fault.signer.is_some() {
                    missing
                } else {
                    Vec::new()
                };
                let mut fault = fault;
                // Our report already told every co-signer.
                fault.from_abort = session.timeout_reported_at.is_some();
                faults.push((*id, fault, culprits));
            }
        }
        (faults, reports)
    }

    /// Sends our timeout report for each session whose round timer fired:
    /// an abort naming the signers we miss. The session stays open for the
    /// grace period (see [`Inner::timeouts`]).
    fn report_timeouts(self: &Arc<Self>, reports: Vec<(SessionId, Vec<usize>)>, now: Millis) {
        for (id, missing) in reports {
            let body = {
                let mut state = lock(&self.state);
                let Some(s) = state.sessions.get_mut(&id) else {
                    continue;
                };
                s.timeout_reported_at = Some(now);
                s.abort_body(AbortReport {
                    code: ErrorCode::RoundTimeout.as_str().to_owned(),
                    culprits: missing.iter().map(|c| *c as u32).collect(),
                    evidence: None,
                    reason: format!(
                        "phase {} timed out waiting for signers {missing:?}",
                        s.phase
                    ),
                    relayed: None,
                })
            };
            self.apply(id, vec![Action::SendToAll(body)]);
        }
    }

    /// Runs on a timer inside the node: timeouts, expiry, pruning, and the
    /// security layer's events (a blacklisted peer is cut off at the
    /// transport and its queued input dropped).
    pub(super) fn sweep(self: &Arc<Self>) {
        let now = self.clock.now_ms();
        self.relay_fallbacks(now);
        let (faults, reports) = self.timeouts(now);
        self.report_timeouts(reports, now);
        for (id, fault, culprits) in faults {
            self.fault_naming(id, fault, culprits);
        }
        self.failover_due(now);
        self.cleanup_expired();
        // Sessions that ended while waiting for joins free their creator's turn.
        self.resume_deferred_joins();
        let skew = self.config.security.max_timestamp_skew_ms;
        lock(&self.state).prune(now, skew);
        let events = {
            let mut security = lock(&self.security);
            security.prune(now);
            security.drain_events()
        };
        for e in events {
            let peer = PeerId::from_str(e.peer().as_str()).ok();
            match (&e, peer) {
                (SecurityEvent::PeerBlacklisted { .. }, Some(peer)) => self.cut_off(peer),
                (SecurityEvent::PeerUnblacklisted { .. }, Some(peer)) => {
                    let net = self.net.clone();
                    tokio::spawn(async move {
                        let _ = net.unblock_peer(peer).await;
                    });
                }
                _ => {}
            }
            self.emit(CoordinatorEvent::Security(e));
        }
    }

    /// Sessions whose relay is late: we exchange directly from now on
    /// ([`crate::session::Session::relay_fallback`]).
    fn relay_fallbacks(self: &Arc<Self>, now: Millis) {
        let timeout = self
            .config
            .relay_timeout
            .min(self.config.round_timeout / 2)
            .as_millis() as Millis;
        let due: Vec<(SessionId, Vec<Action>)> = {
            let mut state = lock(&self.state);
            let due: Vec<(SessionId, Vec<Action>)> = state
                .sessions
                .iter_mut()
                .filter(|(_, s)| !s.is_done() && s.timeout_reported_at.is_none())
                .map(|(id, s)| (*id, s.relay_fallback(now, timeout)))
                .filter(|(_, actions)| !actions.is_empty())
                .collect();
            state.counters.relay_fallbacks += due.len() as u64;
            due
        };
        for (id, actions) in due {
            self.apply(id, actions);
        }
    }

    /// Deterministic failover of every completed, unconfirmed session.
    fn failover_due(self: &Arc<Self>, now: Millis) {
        let timeout = self.config.broadcast_timeout.as_millis() as Millis;
        let due: Vec<(SessionId, Vec<Action>)> = {
            let mut state = lock(&self.state);
            state
                .sessions
                .iter_mut()
                .filter(|(_, s)| s.is_done())
                .map(|(id, s)| (*id, s.failover_due(now, timeout)))
                .filter(|(_, actions)| !actions.is_empty())
                .collect()
        };
        for (id, actions) in due {
            self.apply(id, actions);
            self.replay_early_finalization(id);
        }
    }

    /// A blacklisted peer: drop what it has queued here, and block it at the
    /// transport (its connections close, new ones are refused, its queued
    /// direct messages are dropped).
    fn cut_off(&self, peer: PeerId) {
        lock(&self.state).orphans.drop_peer(&peer);
        let net = self.net.clone();
        tokio::spawn(async move {
            let _ = net.block_peer(peer).await;
        });
    }
}

/// A failure this node observed (not transferable proof).
fn observed(code: ErrorCode, signer: Option<usize>, message: String) -> Fault {
    let mut fault = Fault::nobody(code, message);
    fault.signer = signer;
    if signer.is_some() {
        fault.blame = Blame::Observed;
    }
    fault
}
