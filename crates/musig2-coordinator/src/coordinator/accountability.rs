//! Who is blamed, and what follows: judging a co-signer's signed abort,
//! spotting a second announcement under a live session id, and holding
//! only proven culprits against their peers' reputation.

use std::sync::Arc;

use musig2_core::Signature;
use musig2_security::{SessionAnnouncement, Signed, SignedObject};
use tracing::{info, warn};

use super::{Inner, lock, sec_peer};
use crate::events::{ErrorCode, SessionId};
use crate::evidence::{Blame, Evidence};
use crate::session::{Fault, Session};
use crate::wire::{AbortReport, RelayedAbort};

/// A co-signer's abort, judged here. The messenger is not the culprit by
/// default:
/// - a relayed abort is judged as its original author's (signature checked
///   against that signer's key);
/// - with evidence that checks out against our session, its culprit is
///   named, with the proof;
/// - a timeout, disconnection or undeliverable message names the signers
///   both the aborter and we find missing (recorded as the aborter's
///   report, never as proof): in a relayed session the first signer to
///   find the relay gone is often the one whose own contribution could not
///   reach it;
/// - a view mismatch names nobody if we saw differing views too;
/// - anything else (a close, an accusation without proof or that we do not
///   share, a bad signature) names the aborter, who did end the session, as
///   observed here.
///
/// The returned fault carries the original signed abort, which the caller
/// relays to the other co-signers.
pub(crate) fn judge_abort(
    session: &Session,
    from: usize,
    report: &AbortReport,
    signature: Signature,
) -> Fault {
    let said = format!("signer {from} aborted: {} ({})", report.code, report.reason);
    let abort = match session.verify_abort(from, report, signature) {
        Ok(abort) => abort,
        Err(_) => return aborter_fault(from, format!("{said}; its abort is not signed")),
    };
    if let Some(relayed) = &report.relayed {
        let original = relayed.report();
        let origin = relayed.from as usize;
        if origin == from || origin == session.me {
            return aborter_fault(from, format!("{said}; it relays an abort it cannot relay"));
        }
        return match session.verify_abort(origin, &original, relayed.signature) {
            Ok(_) => {
                let mut fault = judge_own(
                    session,
                    origin,
                    &original,
                    abort_of(session, &original, relayed),
                );
                fault.message = format!("{} (relayed by signer {from})", fault.message);
                fault
            }
            Err(_) => aborter_fault(from, format!("{said}; the abort it relays is not signed")),
        };
    }
    let relay = RelayedAbort::new(from, report, signature);
    let mut fault = judge_own(session, from, report, Some(abort));
    fault.relay = Some(Box::new(relay));
    fault
}

/// The signed contribution a relayed abort is (for `Blame::Reported`).
fn abort_of(
    session: &Session,
    original: &AbortReport,
    relayed: &RelayedAbort,
) -> Option<musig2_core::SignedContribution> {
    Some(musig2_core::SignedContribution {
        session_id: session.session_id,
        signer_index: relayed.from,
        statement: musig2_core::Statement::Abort(original.digest()),
        signature: relayed.signature,
    })
}

/// Judges signer `from`'s own (signature-checked) abort.
fn judge_own(
    session: &Session,
    from: usize,
    report: &AbortReport,
    abort: Option<musig2_core::SignedContribution>,
) -> Fault {
    let said = format!("signer {from} aborted: {} ({})", report.code, report.reason);
    if let Some(evidence) = &report.evidence {
        return match evidence.verify(&session.facts()) {
            Ok(culprit) => Fault {
                code: proven_code(evidence),
                signer: Some(culprit),
                message: said,
                blame: Blame::Proof(Box::new(evidence.clone())),
                from_abort: true,
                culprits: Vec::new(),
                relay: None,
            },
            Err(e) => aborter_fault(from, format!("{said}; {e}")),
        };
    }
    match ErrorCode::parse(&report.code) {
        Some(
            code @ (ErrorCode::RoundTimeout
            | ErrorCode::JoinTimeout
            | ErrorCode::ParticipantDisconnected
            | ErrorCode::DeliveryFailed),
        ) => {
            let missing = session.missing();
            let agreed: Vec<usize> = report
                .culprits
                .iter()
                .map(|c| *c as usize)
                .filter(|c| missing.contains(c))
                .collect();
            match (agreed.first().copied(), abort) {
                (Some(first), Some(abort)) => Fault {
                    code,
                    signer: Some(first),
                    message: format!("{said}; missing here too: {agreed:?}"),
                    blame: Blame::Reported {
                        by: from,
                        abort: Box::new(abort),
                    },
                    from_abort: true,
                    culprits: Vec::new(),
                    relay: None,
                }
                .with_culprits(agreed),
                // Nobody we find missing: the aborter stopped early, on
                // grounds we do not share.
                _ => aborter_fault(from, format!("{said}; nobody it names is missing here")),
            }
        }
        Some(ErrorCode::ViewMismatch)
            if !session.view_mismatch.is_empty() || !session.other_announcement.is_empty() =>
        {
            Fault {
                code: ErrorCode::ViewMismatch,
                signer: None,
                message: said,
                blame: Blame::Unproven,
                from_abort: true,
                culprits: Vec::new(),
                relay: None,
            }
        }
        _ => aborter_fault(from, said),
    }
}

fn aborter_fault(from: usize, message: String) -> Fault {
    Fault {
        code: ErrorCode::Aborted,
        signer: Some(from),
        message,
        blame: Blame::Observed,
        from_abort: true,
        culprits: Vec::new(),
        relay: None,
    }
}

fn proven_code(evidence: &Evidence) -> ErrorCode {
    match evidence {
        Evidence::InvalidPartialSignature { .. } => ErrorCode::InvalidPartialSignature,
        Evidence::CommitmentMismatch { .. } => ErrorCode::NonceCommitmentMismatch,
        _ => ErrorCode::Equivocation,
    }
}

impl Inner {
    /// A verified announcement whose session is live here: if it is another
    /// announcement under the same id (the creator signed two), the creator
    /// is proven to equivocate. Returns whether the session was live (the
    /// announcement needs no further handling).
    pub(super) fn on_session_announcement_copy(
        self: &Arc<Self>,
        announcement: &SessionAnnouncement,
    ) -> bool {
        let session_id = announcement.session_id().to_bytes();
        let verdict = {
            let state = lock(&self.state);
            match state.sessions.get(&session_id) {
                Some(s) if !s.is_done() => Some(s.on_other_announcement(announcement)),
                Some(_) => Some(Ok(())),
                None => None,
            }
        };
        match verdict {
            Some(Err(fault)) => {
                info!(session = %hex::encode(session_id), "the creator signed two announcements for one session");
                self.fault(session_id, fault);
                true
            }
            Some(Ok(())) => true,
            None => false,
        }
    }

    /// An announcement that a co-signer of a live session (not its creator)
    /// forwards to us: the other announcement it holds under our session id.
    /// It is evidence, not a request: only the creator's signature matters,
    /// and the forwarder is never charged for what it relays. Returns
    /// whether it was such a forward.
    pub(super) fn on_forwarded_announcement(
        self: &Arc<Self>,
        from: &musig2_net::PeerId,
        announcement: &SessionAnnouncement,
    ) -> bool {
        let session_id = announcement.session_id().to_bytes();
        let (forwarded, ended) = {
            let state = lock(&self.state);
            let forwarded = state.sessions.get(&session_id).is_some_and(|s| {
                s.peers.contains(&Some(*from)) && s.announcement.creator_peer_id != from.to_string()
            });
            (forwarded, state.ended.contains_key(&session_id))
        };
        if ended && announcement.creator_peer_id != from.to_string() {
            // Evidence that arrives after the session ended here: dropped,
            // and never charged to the peer that forwarded it.
            lock(&self.state).counters.late_messages += 1;
            return true;
        }
        if !forwarded {
            return false;
        }
        if announcement.validate().is_ok() && announcement.verify_signature().is_ok() {
            self.on_session_announcement_copy(announcement);
        }
        true
    }

    /// Holds a proven culprit against its peer's reputation; observation,
    /// reports and unproven failures never reach it.
    pub(super) fn penalise_proven(&self, session_id: SessionId, fault: &Fault) {
        let Blame::Proof(evidence) = &fault.blame else {
            return;
        };
        let (peer, key) = {
            let state = lock(&self.state);
            let Some(session) = state.sessions.get(&session_id) else {
                return;
            };
            match fault.signer {
                Some(i) if i != session.me => (
                    session.peers.get(i).copied().flatten(),
                    session.keys.get(i).copied(),
                ),
                _ => (None, None),
            }
        };
        if let Some(key) = key {
            self.identity_proven_fault(key, fault.code.as_str());
        }
        let Some(peer) = peer else { return };
        let object = match **evidence {
            Evidence::InvalidPartialSignature { .. } => SignedObject::PartialSignature,
            Evidence::CommitmentMismatch { .. } => SignedObject::NonceCommitment,
            Evidence::AnnouncementEquivocation { .. } => SignedObject::SessionAnnouncement,
            _ => SignedObject::Other,
        };
        warn!(%peer, code = fault.code.as_str(), "proven fault held against the culprit's peer");
        let now = self.clock.now_ms();
        lock(&self.security).record_invalid_signature(&sec_peer(&peer), object, now);
    }
}
