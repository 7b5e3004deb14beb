//! Session limits (concurrency, lifetime, stuck detection) and the per-session,
//! per-sender state that replay protection and phase enforcement need.

use std::collections::HashMap;

use crate::ids::{PeerId, SessionId};
use crate::limits::SecurityConfig;
use crate::phase::{Admission, MessageKind, SenderOrder, SenderRole, SessionPhase, check_phase};
use crate::replay::SequenceState;
use crate::rule::Violation;
use crate::time::Millis;

/// A direct session message's envelope: what the policy needs to judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirectMessage {
    /// The session it is for.
    pub session_id: SessionId,
    /// Its kind.
    pub kind: MessageKind,
    /// The sender's sequence number in this session.
    pub sequence: u64,
    /// The sender's timestamp.
    pub sent_at: Millis,
    /// Our session's phase now ([`SessionPhase::Init`] if we have not
    /// announced or joined it yet).
    pub phase: SessionPhase,
    /// The sender's role in the session.
    pub sender_role: SenderRole,
    /// The encoded message's size in bytes.
    pub size: usize,
}

/// Why a session could not be opened or updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// `max_concurrent_sessions` are already open.
    #[error("already {max} sessions open")]
    TooManySessions {
        /// The limit.
        max: usize,
    },
    /// The session is already open.
    #[error("session {session} is already open")]
    AlreadyOpen {
        /// The session id.
        session: SessionId,
    },
    /// No such open session.
    #[error("unknown session {session}")]
    Unknown {
        /// The session id.
        session: SessionId,
    },
}

/// A snapshot of an open session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    /// When it was opened.
    pub created_at: Millis,
    /// When it expires (`created_at + session_timeout_ms` or earlier).
    pub expires_at: Millis,
    /// When it last made progress.
    pub last_progress_at: Millis,
    /// How many peers have sent accepted messages in it.
    pub senders: usize,
}

/// Sessions that [`SessionRegistry::stale_sessions`] found; the coordinator
/// aborts them and calls [`SessionRegistry::close`] (lotus-sdk
/// `cleanupExpiredSessions`). Each list is sorted; a session is in at most one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StaleSessions {
    /// `expires_at ≤ now`.
    pub expired: Vec<SessionId>,
    /// Not expired, but `last_progress_at + stuck_session_timeout_ms ≤ now`.
    pub stuck: Vec<SessionId>,
}

impl StaleSessions {
    /// Whether there is nothing to clean up.
    pub fn is_empty(&self) -> bool {
        self.expired.is_empty() && self.stuck.is_empty()
    }

    /// Every stale session, expired first.
    pub fn all(&self) -> impl Iterator<Item = &SessionId> {
        self.expired.iter().chain(self.stuck.iter())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct SenderState {
    sequence: SequenceState,
    order: SenderOrder,
}

#[derive(Debug, Clone)]
struct SessionEntry {
    created_at: Millis,
    expires_at: Millis,
    last_progress_at: Millis,
    senders: HashMap<PeerId, SenderState>,
}

/// The open sessions and their limits.
#[derive(Debug, Clone)]
pub struct SessionRegistry {
    max_sessions: usize,
    session_timeout_ms: Millis,
    stuck_timeout_ms: Millis,
    max_senders: usize,
    max_sequence_gap: u64,
    sessions: HashMap<SessionId, SessionEntry>,
}

impl SessionRegistry {
    /// A registry with `config`'s limits.
    pub fn new(config: &SecurityConfig) -> Self {
        Self {
            max_sessions: config.max_concurrent_sessions,
            session_timeout_ms: config.session_timeout_ms,
            stuck_timeout_ms: config.stuck_session_timeout_ms,
            max_senders: config.max_senders_per_session,
            max_sequence_gap: config.max_sequence_gap,
            sessions: HashMap::new(),
        }
    }

    /// Opens a session at `now`, expiring after `session_timeout_ms`.
    /// Expired sessions still count until they are closed.
    pub fn open(&mut self, session: SessionId, now: Millis) -> Result<(), SessionError> {
        self.open_until(session, now, Millis::MAX)
    }

    /// Opens a session that expires at `expires_at` (for example its
    /// announcement's), or after `session_timeout_ms`, whichever is first.
    pub fn open_until(
        &mut self,
        session: SessionId,
        now: Millis,
        expires_at: Millis,
    ) -> Result<(), SessionError> {
        if self.sessions.contains_key(&session) {
            return Err(SessionError::AlreadyOpen { session });
        }
        if self.sessions.len() >= self.max_sessions {
            return Err(SessionError::TooManySessions {
                max: self.max_sessions,
            });
        }
        self.sessions.insert(
            session,
            SessionEntry {
                created_at: now,
                expires_at: expires_at.min(now.saturating_add(self.session_timeout_ms)),
                last_progress_at: now,
                senders: HashMap::new(),
            },
        );
        Ok(())
    }

    /// Records that the session made progress (changed phase, or a failover
    /// attempt began) at `now`; stuck detection counts from the last progress.
    pub fn record_progress(&mut self, session: SessionId, now: Millis) -> Result<(), SessionError> {
        let entry = self
            .sessions
            .get_mut(&session)
            .ok_or(SessionError::Unknown { session })?;
        entry.last_progress_at = entry.last_progress_at.max(now);
        Ok(())
    }

    /// Closes (forgets) a session and its senders' state. Returns whether it was open.
    pub fn close(&mut self, session: &SessionId) -> bool {
        self.sessions.remove(session).is_some()
    }

    /// Whether the session is open.
    pub fn contains(&self, session: &SessionId) -> bool {
        self.sessions.contains_key(session)
    }

    /// A snapshot of an open session.
    pub fn info(&self, session: &SessionId) -> Option<SessionInfo> {
        self.sessions.get(session).map(|e| SessionInfo {
            created_at: e.created_at,
            expires_at: e.expires_at,
            last_progress_at: e.last_progress_at,
            senders: e.senders.len(),
        })
    }

    /// The last sequence number accepted from `peer` in `session`.
    pub fn last_sequence(&self, session: &SessionId, peer: &PeerId) -> Option<u64> {
        self.sessions
            .get(session)
            .and_then(|e| e.senders.get(peer))
            .map(|s| s.sequence.last())
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The expired and stuck sessions at `now` (nothing is removed).
    pub fn stale_sessions(&self, now: Millis) -> StaleSessions {
        let mut stale = StaleSessions::default();
        for (id, e) in &self.sessions {
            if e.expires_at <= now {
                stale.expired.push(*id);
            } else if e.last_progress_at.saturating_add(self.stuck_timeout_ms) <= now {
                stale.stuck.push(*id);
            }
        }
        stale.expired.sort();
        stale.stuck.sort();
        stale
    }

    /// Judges a direct message from `peer` and, if it is admitted, records its
    /// sequence number and kind. Checks, in order: the session is open and
    /// not expired; a new sender fits under `max_senders_per_session`; the
    /// sequence number (replay, gap); role and phase; the sender's order.
    /// Nothing is recorded for a rejected message.
    pub fn admit(
        &mut self,
        peer: &PeerId,
        message: &DirectMessage,
        now: Millis,
    ) -> Result<Admission, Violation> {
        let session = message.session_id;
        let entry = self
            .sessions
            .get_mut(&session)
            .ok_or(Violation::UnknownSession { session })?;
        if entry.expires_at <= now {
            return Err(Violation::SessionExpired {
                session,
                expired_at: entry.expires_at,
            });
        }
        let known = entry.senders.get(peer).copied();
        if known.is_none() && entry.senders.len() >= self.max_senders {
            return Err(Violation::TooManySenders {
                session,
                max: self.max_senders,
            });
        }
        let mut state = known.unwrap_or_default();
        state
            .sequence
            .check(message.sequence, self.max_sequence_gap)?;
        let admission = check_phase(message.kind, message.phase, message.sender_role)?;
        state.order.check(message.kind)?;

        state
            .sequence
            .accept(message.sequence, self.max_sequence_gap)?;
        state.order.record(message.kind);
        entry.senders.insert(peer.clone(), state);
        Ok(admission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rule;

    fn sid(i: u8) -> SessionId {
        SessionId::from_bytes([i; 32])
    }

    fn msg(
        session: SessionId,
        kind: MessageKind,
        sequence: u64,
        phase: SessionPhase,
    ) -> DirectMessage {
        DirectMessage {
            session_id: session,
            kind,
            sequence,
            sent_at: 0,
            phase,
            sender_role: SenderRole::Participant,
            size: 100,
        }
    }

    #[test]
    fn concurrent_sessions_at_below_above() {
        let mut r = SessionRegistry::new(&SecurityConfig::default());
        for i in 0..9 {
            r.open(sid(i), 0).unwrap();
        }
        assert_eq!(r.open(sid(9), 0), Ok(()));
        assert_eq!(
            r.open(sid(10), 0),
            Err(SessionError::TooManySessions { max: 10 })
        );
        assert_eq!(
            r.open(sid(9), 0),
            Err(SessionError::AlreadyOpen { session: sid(9) })
        );
        assert!(r.close(&sid(0)));
        assert!(!r.close(&sid(0)));
        assert_eq!(r.open(sid(10), 0), Ok(()));
        assert_eq!(r.len(), 10);
    }

    #[test]
    fn session_timeout_at_below_above() {
        let mut r = SessionRegistry::new(&SecurityConfig::default());
        let t0 = 1_000;
        r.open(sid(1), t0).unwrap();
        // Keep it progressing so that only expiry matters.
        r.record_progress(sid(1), t0 + 7_000_000).unwrap();
        assert!(r.stale_sessions(t0 + 7_200_000 - 1).is_empty());
        assert_eq!(r.stale_sessions(t0 + 7_200_000).expired, vec![sid(1)]);
        assert_eq!(r.stale_sessions(t0 + 7_200_000 + 1).expired, vec![sid(1)]);
        // Messages to an expired session are refused (without blame).
        let m = msg(
            sid(1),
            MessageKind::SessionJoin,
            1,
            SessionPhase::SigningRequest,
        );
        assert_eq!(
            r.admit(&PeerId::from("p"), &m, t0 + 7_200_000),
            Err(Violation::SessionExpired {
                session: sid(1),
                expired_at: t0 + 7_200_000
            })
        );
        // An announcement's earlier expiry wins; a later one is capped.
        r.open_until(sid(2), t0, t0 + 5).unwrap();
        r.open_until(sid(3), t0, u64::MAX).unwrap();
        assert_eq!(r.info(&sid(2)).map(|i| i.expires_at), Some(t0 + 5));
        assert_eq!(r.info(&sid(3)).map(|i| i.expires_at), Some(t0 + 7_200_000));
    }

    #[test]
    fn stuck_timeout_at_below_above() {
        let mut r = SessionRegistry::new(&SecurityConfig::default());
        r.open(sid(1), 0).unwrap();
        r.open(sid(2), 0).unwrap();
        r.record_progress(sid(2), 300_000).unwrap();
        assert!(r.stale_sessions(599_999).is_empty());
        assert_eq!(r.stale_sessions(600_000).stuck, vec![sid(1)]);
        assert_eq!(r.stale_sessions(600_001).stuck, vec![sid(1)]);
        let s = r.stale_sessions(900_000);
        assert_eq!(s.stuck, vec![sid(1), sid(2)]);
        assert_eq!(s.all().count(), 2);
        // Progress never moves backwards.
        r.record_progress(sid(2), 1).unwrap();
        assert_eq!(r.info(&sid(2)).map(|i| i.last_progress_at), Some(300_000));
        assert_eq!(
            r.record_progress(sid(9), 1),
            Err(SessionError::Unknown { session: sid(9) })
        );
    }

    #[test]
    fn admit_checks_session_sequence_phase_and_order() {
        let mut r = SessionRegistry::new(&SecurityConfig::default());
        let p = PeerId::from("p");
        let s = sid(1);
        assert_eq!(
            r.admit(
                &p,
                &msg(s, MessageKind::NonceShare, 1, SessionPhase::NonceExchange),
                0
            ),
            Err(Violation::UnknownSession { session: s })
        );
        r.open(s, 0).unwrap();
        let ok = r.admit(
            &p,
            &msg(s, MessageKind::NonceCommit, 1, SessionPhase::NonceCommit),
            0,
        );
        assert_eq!(ok, Ok(Admission::Process));
        // Early: buffered.
        assert_eq!(
            r.admit(
                &p,
                &msg(s, MessageKind::NonceShare, 2, SessionPhase::NonceCommit),
                0
            ),
            Ok(Admission::Buffer)
        );
        // Replay of sequence 2, whatever the kind.
        assert_eq!(
            r.admit(
                &p,
                &msg(
                    s,
                    MessageKind::PartialSigShare,
                    2,
                    SessionPhase::PartialSigExchange
                ),
                0
            )
            .map_err(|v| v.rule()),
            Err(Rule::Replay)
        );
        // A rejected message records nothing: sequence 3 is still free.
        assert_eq!(
            r.admit(
                &p,
                &msg(s, MessageKind::NonceCommit, 3, SessionPhase::NonceExchange),
                0
            )
            .map_err(|v| v.rule()),
            Err(Rule::WrongPhase)
        );
        assert_eq!(r.last_sequence(&s, &p), Some(2));
        // Equivocation: a second nonce.
        assert_eq!(
            r.admit(
                &p,
                &msg(s, MessageKind::NonceShare, 3, SessionPhase::NonceExchange),
                0
            ),
            Err(Violation::DuplicateMessage {
                kind: MessageKind::NonceShare
            })
        );
        assert_eq!(
            r.admit(
                &p,
                &msg(
                    s,
                    MessageKind::PartialSigShare,
                    3,
                    SessionPhase::PartialSigExchange
                ),
                0
            ),
            Ok(Admission::Process)
        );
        assert_eq!(r.info(&s).map(|i| i.senders), Some(1));
    }

    #[test]
    fn senders_per_session_at_below_above() {
        let mut r = SessionRegistry::new(&SecurityConfig {
            max_senders_per_session: 3,
            ..SecurityConfig::default()
        });
        let s = sid(1);
        r.open(s, 0).unwrap();
        for i in 0..3 {
            let p = PeerId::from(format!("p{i}"));
            assert_eq!(
                r.admit(
                    &p,
                    &msg(s, MessageKind::SessionJoin, 1, SessionPhase::SigningRequest),
                    0
                ),
                Ok(Admission::Process)
            );
        }
        assert_eq!(
            r.admit(
                &PeerId::from("p3"),
                &msg(s, MessageKind::SessionJoin, 1, SessionPhase::SigningRequest),
                0
            ),
            Err(Violation::TooManySenders { session: s, max: 3 })
        );
        // Known senders are unaffected.
        assert_eq!(
            r.admit(
                &PeerId::from("p0"),
                &msg(
                    s,
                    MessageKind::SessionAbort,
                    2,
                    SessionPhase::SigningRequest
                ),
                0
            ),
            Ok(Admission::Process)
        );
    }
}
