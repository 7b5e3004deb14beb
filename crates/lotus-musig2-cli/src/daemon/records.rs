//! The session records: what the store says about each session this node
//! takes part in, and its metrics (phase timings, outcomes). A session is
//! recorded once, ends once, and is never resumed after a restart.

use std::time::Instant;

use lotus_musig2::coordinator::{Blame, CoordinatorError};
use serde_json::Value;

use super::metrics::{Outcome, Phase};
use super::store::{BroadcastState, SessionErrorInfo, SessionRecord, StoreError};
use super::views::request_json;
use super::{ApiError, Daemon, RequestId, SessionId, lock, parse_id};

/// Sessions whose phase timings are tracked at once (beyond it a new
/// session is not timed; its other metrics are kept).
const MAX_TIMED_SESSIONS: usize = 4096;

pub(super) fn error_info(
    code: &'static str,
    signer: Option<usize>,
    culprits: Vec<usize>,
    message: &str,
) -> SessionErrorInfo {
    SessionErrorInfo {
        code: code.to_string(),
        signer,
        culprits,
        message: message.to_string(),
        grounds: "unproven".into(),
        evidence: None,
    }
}

/// [`error_info`] with the coordinator's grounds and evidence.
pub(super) fn error_info_with_blame(
    code: &'static str,
    signer: Option<usize>,
    culprits: Vec<usize>,
    message: &str,
    blame: &Blame,
) -> SessionErrorInfo {
    let mut info = error_info(code, signer, culprits, message);
    info.grounds = match blame {
        Blame::Proof(_) => "proof",
        Blame::Observed => "observed",
        Blame::Reported { .. } => "reported",
        _ => "unproven",
    }
    .into();
    info.evidence = blame.evidence().and_then(|e| serde_json::to_value(e).ok());
    info
}

/// The code of a session that ended before this node recorded it.
const SESSION_ENDED: &str = "SESSION_ENDED";

impl Daemon {
    /// `DELETE /v1/sessions/{id}`: aborts the session with every co-signer.
    pub fn close(&self, session_id: &str) -> Result<Value, ApiError> {
        let id = parse_id("session_id", session_id)?;
        match self.inner.coordinator.close_session(id) {
            Ok(()) => {}
            Err(CoordinatorError::UnknownSession) => {
                return Err(match self.inner.store.get(&id)? {
                    Some(r) if r.is_final() => {
                        ApiError::Conflict("the session has already ended".into())
                    }
                    // Ended in the coordinator; its outcome is on its way
                    // to the store.
                    Some(_) => ApiError::Conflict(
                        "the session has already ended; its outcome is being recorded".into(),
                    ),
                    None => ApiError::NotFound("no open session with that id".into()),
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.end(
            id,
            Outcome::Closed,
            "SESSION_ABORTED",
            error_info("SESSION_ABORTED", None, vec![], "closed through the API"),
        )?;
        let record = self.inner.store.get(&id)?;
        Ok(serde_json::to_value(record).unwrap_or(Value::Null))
    }

    /// Records a session this node takes part in (from the coordinator's
    /// snapshot), if it is not recorded yet, and starts timing it.
    /// `false` if the coordinator no longer knows the session.
    pub(super) fn track(&self, session_id: SessionId) -> Result<bool, StoreError> {
        let Some(info) = self.inner.coordinator.get_session(session_id) else {
            return Ok(false);
        };
        let announcement = self.inner.coordinator.get_announcement(session_id);
        let now = self.now();
        let created = self.inner.store.update(&session_id, |old| {
            if old.is_some() {
                return None;
            }
            Some(SessionRecord {
                session_id: hex::encode(session_id),
                request_id: hex::encode(info.request_id),
                phase: info.phase.as_str().to_string(),
                signers: info.signers.iter().map(ToString::to_string).collect(),
                my_index: info.my_index,
                coordinator_index: info.coordinator_index,
                aggregate_pubkey: info.aggregate_pubkey.to_string(),
                message: hex::encode(info.message),
                signature: None,
                sighash_type: None,
                error: None,
                nonces: nonces_hex(&info.public_nonces),
                request: announcement.as_ref().map(request_json),
                broadcast: None,
                created_at: now,
                updated_at: now,
            })
        })?;
        if created.is_some() {
            let mut marks = lock(&self.inner.marks);
            if marks.len() < MAX_TIMED_SESSIONS {
                marks.insert(session_id, Instant::now());
            }
        }
        Ok(true)
    }

    /// Records a session of ours that ended before [`Daemon::track`] could
    /// read it, from what we asked for, as `SESSION_ENDED`; the
    /// coordinator's own error, if the event follower sees it after this,
    /// replaces that code.
    pub(super) fn track_ended(
        &self,
        session_id: SessionId,
        request_id: RequestId,
        signers: &[lotus_musig2::core::PublicKey],
        message: [u8; 32],
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut sorted = signers.to_vec();
        sorted.sort();
        let me = self.inner.keypair.public_key();
        self.inner.store.update(&session_id, |old| {
            if old.is_some() {
                return None;
            }
            Some(SessionRecord {
                session_id: hex::encode(session_id),
                request_id: hex::encode(request_id),
                phase: "CLOSED".into(),
                signers: sorted.iter().map(ToString::to_string).collect(),
                my_index: sorted.iter().position(|k| *k == me).unwrap_or_default(),
                coordinator_index: None,
                aggregate_pubkey: String::new(),
                message: hex::encode(message),
                signature: None,
                sighash_type: None,
                error: Some(error_info(
                    SESSION_ENDED,
                    None,
                    vec![],
                    "the session ended before this node recorded it (see the events)",
                )),
                nonces: vec![],
                request: None,
                broadcast: None,
                created_at: now,
                updated_at: now,
            })
        })?;
        Ok(())
    }

    /// A phase of a timed session ended: observes its duration, starts the next.
    pub(super) fn phase_done(&self, session_id: SessionId, phase: Phase) {
        let mut marks = lock(&self.inner.marks);
        if let Some(start) = marks.get_mut(&session_id) {
            self.inner
                .metrics
                .phase(phase, start.elapsed().as_secs_f64());
            *start = Instant::now();
        }
    }

    /// Updates a running session's phase in the store.
    pub(super) fn set_phase(&self, session_id: SessionId) -> Result<(), StoreError> {
        let Some(info) = self.inner.coordinator.get_session(session_id) else {
            return Ok(());
        };
        let now = self.now();
        self.inner.store.update(&session_id, |old| {
            let mut r = old?;
            // `COMPLETE` is written with the signature, never before it.
            if r.is_final() || info.phase == lotus_musig2::security::SessionPhase::Complete {
                return None;
            }
            r.phase = info.phase.as_str().to_string();
            r.coordinator_index = info.coordinator_index;
            r.nonces = nonces_hex(&info.public_nonces);
            r.updated_at = now;
            Some(r)
        })?;
        Ok(())
    }

    /// Ends a session with an error (once: a session that already ended
    /// keeps its outcome; a closure here overrides the coordinator's own
    /// `SESSION_CLOSED`).
    pub(super) fn end(
        &self,
        session_id: SessionId,
        outcome: Outcome,
        code: &'static str,
        error: SessionErrorInfo,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut ended = false;
        self.inner.store.update(&session_id, |old| {
            let mut r = old?;
            let overridable = (outcome == Outcome::Closed
                && r.error.as_ref().is_some_and(|e| e.code == "SESSION_CLOSED"))
                || r.error.as_ref().is_some_and(|e| e.code == SESSION_ENDED);
            if r.signature.is_some() || (r.error.is_some() && !overridable) {
                return None;
            }
            ended = r.error.is_none();
            r.phase = "CLOSED".into();
            r.error = Some(error);
            r.updated_at = now;
            Some(r)
        })?;
        if ended {
            lock(&self.inner.marks).remove(&session_id);
            let code = (outcome == Outcome::Failed).then_some(code);
            self.inner.metrics.session_ended(outcome, code);
        }
        Ok(())
    }

    /// Records the signature of a completed session.
    pub(super) fn complete(&self, session_id: SessionId) -> Result<(), StoreError> {
        let Ok(fin) = self.inner.coordinator.get_final_signature(session_id) else {
            return Ok(());
        };
        let info = self.inner.coordinator.get_session(session_id);
        let now = self.now();
        let mut completed = false;
        self.inner.store.update(&session_id, |old| {
            let mut r = old?;
            if r.signature.is_some() {
                return None;
            }
            completed = true;
            r.phase = "COMPLETE".into();
            r.signature = Some(fin.signature.to_string());
            r.sighash_type = fin.sighash_type;
            r.error = None;
            if let Some(info) = info {
                r.coordinator_index = info.coordinator_index;
            }
            // `should-broadcast` may have come first.
            if r.broadcast.is_none() {
                r.broadcast = Some(BroadcastState::waiting());
            }
            r.updated_at = now;
            Some(r)
        })?;
        if completed {
            self.phase_done(session_id, Phase::Round2);
            lock(&self.inner.marks).remove(&session_id);
            self.inner.metrics.session_ended(Outcome::Completed, None);
        }
        Ok(())
    }

    /// At start: a session that was running when the node stopped is over
    /// (it is never resumed: its secret nonce is gone).
    pub(super) fn mark_interrupted(&self) -> Result<(), StoreError> {
        let now = self.now();
        for r in self.inner.store.list()? {
            if r.is_final() {
                // A broadcast still to be done when the node stopped: nobody
                // here will be told to do it any more.
                let unconfirmed = r.broadcast.as_ref().is_some_and(|b| {
                    b.state == super::broadcasting::WAITING || b.state == super::broadcasting::OURS
                });
                if unconfirmed && let Ok(id) = parse_id("session_id", &r.session_id) {
                    self.inner.store.update(&id, |old| {
                        let mut r = old?;
                        if let Some(b) = r.broadcast.as_mut() {
                            b.state = super::broadcasting::INTERRUPTED.into();
                        }
                        r.updated_at = now;
                        Some(r)
                    })?;
                }
                continue;
            }
            let Ok(id) = parse_id("session_id", &r.session_id) else {
                continue;
            };
            self.inner.store.update(&id, |old| {
                let mut r = old?;
                r.phase = "CLOSED".into();
                r.error = Some(error_info(
                    "NODE_RESTARTED",
                    None,
                    vec![],
                    "the node stopped before the session ended; sessions are never resumed",
                ));
                r.updated_at = now;
                Some(r)
            })?;
        }
        Ok(())
    }

    /// When this node may gossip its advertisement again: peers count a
    /// second one within `min_advertisement_interval_ms` against it, and the
    /// last one may have gone out just before a restart.
    pub fn gossip_not_before(&self) -> u64 {
        let interval = self
            .inner
            .coordinator
            .with_security(|s| s.config().min_advertisement_interval_ms);
        match self.inner.store.last_gossiped() {
            Ok(Some(at)) => at.saturating_add(interval),
            Ok(None) => 0,
            // Unknown: wait a whole interval rather than be counted.
            Err(_) => self.now().saturating_add(interval),
        }
    }

    /// Records that our advertisement was gossiped at `at`.
    pub fn gossiped(&self, at: u64) {
        if let Err(e) = self.inner.store.set_last_gossiped(at) {
            tracing::warn!(error = %e, "advertisement time not recorded");
        }
    }

    /// Clean shutdown: saves the peers' scores, then closes every open
    /// session with an abort to its co-signers.
    pub fn shut_down(&self) {
        self.save_reputation();
        let Ok(records) = self.inner.store.list() else {
            return;
        };
        for r in records.into_iter().filter(|r| !r.is_final()) {
            let Ok(id) = parse_id("session_id", &r.session_id) else {
                continue;
            };
            // Completed, its signature not yet recorded by the follower:
            // record it; never abort a signed session.
            if self.inner.coordinator.get_final_signature(id).is_ok() {
                if let Err(e) = self.complete(id) {
                    tracing::warn!(error = %e, "signature not recorded");
                }
                continue;
            }
            if self.inner.coordinator.close_session(id).is_ok()
                && let Err(e) = self.end(
                    id,
                    Outcome::Closed,
                    "SESSION_ABORTED",
                    error_info("SESSION_ABORTED", None, vec![], "the node shut down"),
                )
            {
                tracing::warn!(error = %e, "session not recorded as closed");
            }
        }
    }
}

fn nonces_hex(nonces: &[Option<lotus_musig2::core::PublicNonce>]) -> Vec<Option<String>> {
    nonces
        .iter()
        .map(|n| n.map(|n| hex::encode(n.to_bytes())))
        .collect()
}
