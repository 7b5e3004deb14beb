//! Protocol phase enforcement: which message kind is allowed in which session
//! phase, from whom, and in which order.
//!
//! # The table
//!
//! A message is checked against the phase the receiving node's session is in.
//! *Home* phases are where the message is normally received; *early* phases
//! are where an honest but faster peer can legitimately send it before this
//! node has moved on. An early message is admitted with
//! [`Admission::Buffer`]: the coordinator keeps it and processes it when its
//! session reaches a home phase. Anything else is rejected.
//!
//! Why the early windows are what they are: a peer can only run ahead of us as
//! far as it can go without our own contribution. Phase changes triggered by a
//! *third* peer's message (the creator's `SESSION_READY`) can be overtaken by a
//! fast signer's next message, so `NONCE_COMMIT` and `NONCE_SHARE` may arrive
//! before we saw `SESSION_READY`; `NONCE_SHARE` may also arrive during
//! `NONCE_COMMIT` (its sender has every commitment, we still wait for one) and,
//! in sessions without Phase 0 commitments, during `SESSION_READY`. A partial
//! signature needs our nonce and the final signature needs our partial
//! signature, so those can be at most one phase early.
//!
//! | message | home phases | early (buffer) | from |
//! | --- | --- | --- | --- |
//! | `SIGNING_REQUEST` | INIT | — | any signer |
//! | `SESSION_JOIN` | SIGNING_REQUEST | INIT | any signer |
//! | `SESSION_READY` | SIGNING_REQUEST, SESSION_READY | — | any signer |
//! | `NONCE_COMMIT` | SESSION_READY, NONCE_COMMIT | SIGNING_REQUEST | any signer |
//! | `NONCE_SHARE` | NONCE_EXCHANGE | SIGNING_REQUEST, SESSION_READY, NONCE_COMMIT | any signer |
//! | `PARTIAL_SIG_SHARE` | PARTIAL_SIG_EXCHANGE | NONCE_EXCHANGE | any signer |
//! | `SESSION_ABORT` | every phase but CLOSED | — | any signer |
//! | `SIGNATURE_FINALIZED` | COMPLETE | PARTIAL_SIG_EXCHANGE | coordinator |
//! | `VALIDATION_ERROR` | every phase but CLOSED | — | any signer |
//! | `TRANSCRIPT_VIEW` | PARTIAL_SIG_EXCHANGE | NONCE_EXCHANGE | any signer |
//! | `ROUND_BATCH` | SESSION_READY, NONCE_COMMIT, NONCE_EXCHANGE, PARTIAL_SIG_EXCHANGE | SIGNING_REQUEST | any signer |
//!
//! In CLOSED nothing is accepted ([`Violation::SessionClosed`], not blamed: a
//! message racing the end of a session is no misbehaviour). The coordinator passes
//! [`SessionPhase::Init`] for a session it knows of but has not announced or
//! joined.
//!
//! # Order per sender
//!
//! Within a session each sender's staged messages must not go backwards:
//! `SIGNING_REQUEST`/`SESSION_JOIN` (stage 1) → `SESSION_READY` (2) →
//! `NONCE_COMMIT` (3) → `NONCE_SHARE` (4) → `PARTIAL_SIG_SHARE` (5) →
//! `SIGNATURE_FINALIZED` (6). Stages may be skipped (Phase 0 is optional, a
//! creator does not join its own request), but each staged kind is sent at most
//! once per sender and session: a second `NONCE_SHARE` is equivocation.
//! `SESSION_ABORT`, `VALIDATION_ERROR`, `TRANSCRIPT_VIEW` and `ROUND_BATCH`
//! are unstaged.

use core::fmt;

use crate::rule::Violation;

/// A direct session message's kind.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum MessageKind {
    /// The signing request (session announcement) itself, sent directly.
    SigningRequest,
    /// A signer joins the request.
    SessionJoin,
    /// Every signer has joined; the session is fixed.
    SessionReady,
    /// Phase 0: a nonce commitment.
    NonceCommit,
    /// Round 1: a public nonce.
    NonceShare,
    /// Round 2: a partial signature.
    PartialSigShare,
    /// A signer aborts the session.
    SessionAbort,
    /// The coordinator reports the final signature / broadcast.
    SignatureFinalized,
    /// A signer reports that a message it received was invalid.
    ValidationError,
    /// A signer's signed view of the session (every commitment and nonce it
    /// received), sent to a co-signer whose round-2 transcript differs, so
    /// that an equivocator can be proven.
    TranscriptView,
    /// Signed contributions of other signers carried together (and, once
    /// known, the final signature): the relay's round, or a signer's
    /// holdings when it stops waiting for the relay. Each contribution is
    /// checked under its own signer's key, so any signer may carry them.
    RoundBatch,
}

impl MessageKind {
    /// Every kind.
    pub const ALL: [MessageKind; 11] = [
        Self::SigningRequest,
        Self::SessionJoin,
        Self::SessionReady,
        Self::NonceCommit,
        Self::NonceShare,
        Self::PartialSigShare,
        Self::SessionAbort,
        Self::SignatureFinalized,
        Self::ValidationError,
        Self::TranscriptView,
        Self::RoundBatch,
    ];

    /// The kind's protocol name (`SESSION_JOIN`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SigningRequest => "SIGNING_REQUEST",
            Self::SessionJoin => "SESSION_JOIN",
            Self::SessionReady => "SESSION_READY",
            Self::NonceCommit => "NONCE_COMMIT",
            Self::NonceShare => "NONCE_SHARE",
            Self::PartialSigShare => "PARTIAL_SIG_SHARE",
            Self::SessionAbort => "SESSION_ABORT",
            Self::SignatureFinalized => "SIGNATURE_FINALIZED",
            Self::ValidationError => "VALIDATION_ERROR",
            Self::TranscriptView => "TRANSCRIPT_VIEW",
            Self::RoundBatch => "ROUND_BATCH",
        }
    }

    /// The kind's stage in a sender's order (see the module docs); `None` for
    /// unstaged kinds, which may repeat.
    pub const fn stage(self) -> Option<u8> {
        match self {
            Self::SigningRequest | Self::SessionJoin => Some(1),
            Self::SessionReady => Some(2),
            Self::NonceCommit => Some(3),
            Self::NonceShare => Some(4),
            Self::PartialSigShare => Some(5),
            Self::SignatureFinalized => Some(6),
            Self::SessionAbort
            | Self::ValidationError
            | Self::TranscriptView
            | Self::RoundBatch => None,
        }
    }

    /// The phase table row of this kind.
    pub const fn rule(self) -> PhaseRule {
        use SessionPhase::*;
        const BEFORE_CLOSED: &[SessionPhase] = &[
            Init,
            SigningRequest,
            SessionReady,
            NonceCommit,
            NonceExchange,
            PartialSigExchange,
            Complete,
        ];
        let (home, early, coordinator_only): (&[SessionPhase], &[SessionPhase], bool) = match self {
            Self::SigningRequest => (&[Init], &[], false),
            Self::SessionJoin => (&[SigningRequest], &[Init], false),
            Self::SessionReady => (&[SigningRequest, SessionReady], &[], false),
            Self::NonceCommit => (&[SessionReady, NonceCommit], &[SigningRequest], false),
            Self::NonceShare => (
                &[NonceExchange],
                &[SigningRequest, SessionReady, NonceCommit],
                false,
            ),
            Self::PartialSigShare => (&[PartialSigExchange], &[NonceExchange], false),
            Self::SignatureFinalized => (&[Complete], &[PartialSigExchange], true),
            Self::SessionAbort | Self::ValidationError => (BEFORE_CLOSED, &[], false),
            Self::TranscriptView => (&[PartialSigExchange], &[NonceExchange], false),
            Self::RoundBatch => (
                &[SessionReady, NonceCommit, NonceExchange, PartialSigExchange],
                &[SigningRequest],
                false,
            ),
        };
        PhaseRule {
            kind: self,
            home,
            early,
            coordinator_only,
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session's phase on the receiving node, in protocol order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum SessionPhase {
    /// Known locally, not yet announced (creator) or joined (participant).
    Init,
    /// Announced; signers are joining.
    SigningRequest,
    /// Every signer has joined; the key set is fixed.
    SessionReady,
    /// Phase 0: collecting nonce commitments (optional).
    NonceCommit,
    /// Round 1: collecting public nonces.
    NonceExchange,
    /// Round 2: collecting partial signatures.
    PartialSigExchange,
    /// The final signature exists; the coordinator broadcasts.
    Complete,
    /// Finished or aborted.
    Closed,
}

impl SessionPhase {
    /// Every phase, in protocol order.
    pub const ALL: [SessionPhase; 8] = [
        Self::Init,
        Self::SigningRequest,
        Self::SessionReady,
        Self::NonceCommit,
        Self::NonceExchange,
        Self::PartialSigExchange,
        Self::Complete,
        Self::Closed,
    ];

    /// The phase's protocol name (`NONCE_COMMIT`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Init => "INIT",
            Self::SigningRequest => "SIGNING_REQUEST",
            Self::SessionReady => "SESSION_READY",
            Self::NonceCommit => "NONCE_COMMIT",
            Self::NonceExchange => "NONCE_EXCHANGE",
            Self::PartialSigExchange => "PARTIAL_SIG_EXCHANGE",
            Self::Complete => "COMPLETE",
            Self::Closed => "CLOSED",
        }
    }
}

impl fmt::Display for SessionPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sender's role in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SenderRole {
    /// A signer that is not the current coordinator.
    Participant,
    /// The current elected coordinator (after failover: the current backup).
    /// The coordinator is also a signer and may send everything a participant may.
    Coordinator,
}

impl fmt::Display for SenderRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Participant => "participant",
            Self::Coordinator => "coordinator",
        })
    }
}

/// What to do with an admitted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Admission {
    /// The session is in a home phase of the message: process it now.
    Process,
    /// The message is early (see the module docs): keep it and process it once
    /// the session reaches a home phase. Its sequence number is already
    /// consumed, and a sender has at most one message of each staged kind per
    /// session, so a buffer holds at most six messages per sender.
    Buffer,
}

/// One row of the phase table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseRule {
    /// The message kind.
    pub kind: MessageKind,
    /// Phases in which it is processed at once.
    pub home: &'static [SessionPhase],
    /// Phases in which it is buffered.
    pub early: &'static [SessionPhase],
    /// Whether only the coordinator may send it.
    pub coordinator_only: bool,
}

/// Checks `kind` from a sender with `role` against the session `phase`: the
/// role first ([`Violation::WrongRole`]), then a closed session
/// ([`Violation::SessionClosed`]), then the table ([`Violation::WrongPhase`]).
pub fn check_phase(
    kind: MessageKind,
    phase: SessionPhase,
    role: SenderRole,
) -> Result<Admission, Violation> {
    let rule = kind.rule();
    if rule.coordinator_only && role != SenderRole::Coordinator {
        return Err(Violation::WrongRole { kind, role });
    }
    if phase == SessionPhase::Closed {
        return Err(Violation::SessionClosed { kind });
    }
    if rule.home.contains(&phase) {
        Ok(Admission::Process)
    } else if rule.early.contains(&phase) {
        Ok(Admission::Buffer)
    } else {
        Err(Violation::WrongPhase { kind, phase })
    }
}

/// One sender's progress through a session's staged messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SenderOrder {
    seen: u16,
    latest: Option<MessageKind>,
}

impl SenderOrder {
    /// Checks that `kind` may follow what the sender already sent.
    pub fn check(&self, kind: MessageKind) -> Result<(), Violation> {
        let Some(stage) = kind.stage() else {
            return Ok(());
        };
        if self.seen & kind.bit() != 0 {
            return Err(Violation::DuplicateMessage { kind });
        }
        match self.latest {
            Some(after) if after.stage().is_some_and(|s| s > stage) => {
                Err(Violation::OutOfOrder { kind, after })
            }
            _ => Ok(()),
        }
    }

    /// Records an accepted `kind`.
    pub fn record(&mut self, kind: MessageKind) {
        let Some(stage) = kind.stage() else {
            return;
        };
        self.seen |= kind.bit();
        if self
            .latest
            .and_then(MessageKind::stage)
            .is_none_or(|latest| stage >= latest)
        {
            self.latest = Some(kind);
        }
    }

    /// Whether the sender already sent `kind`.
    pub fn has_sent(&self, kind: MessageKind) -> bool {
        self.seen & kind.bit() != 0
    }
}

/// The phase table as a Markdown table (the one in `docs/SECURITY.md` and in
/// this module's docs).
pub fn phase_table_markdown() -> String {
    let names = |phases: &[SessionPhase]| -> String {
        if phases.is_empty() {
            "—".to_owned()
        } else if phases.len() == 7 && !phases.contains(&SessionPhase::Closed) {
            "every phase but CLOSED".to_owned()
        } else {
            phases
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut out = String::from(
        "| message | home phases | early (buffer) | from |\n| --- | --- | --- | --- |\n",
    );
    for kind in MessageKind::ALL {
        let rule = kind.rule();
        let from = if rule.coordinator_only {
            "coordinator"
        } else {
            "any signer"
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            kind,
            names(rule.home),
            names(rule.early),
            from
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageKind as K;
    use SessionPhase as P;

    #[test]
    fn every_cell_of_the_table() {
        // (kind, phase) → expected for a coordinator sender; a participant
        // gets the same except WrongRole for coordinator-only kinds.
        for kind in MessageKind::ALL {
            let rule = kind.rule();
            for phase in SessionPhase::ALL {
                let expected = if phase == P::Closed {
                    Err(Violation::SessionClosed { kind })
                } else if rule.home.contains(&phase) {
                    Ok(Admission::Process)
                } else if rule.early.contains(&phase) {
                    Ok(Admission::Buffer)
                } else {
                    Err(Violation::WrongPhase { kind, phase })
                };
                assert_eq!(check_phase(kind, phase, SenderRole::Coordinator), expected);
                let as_participant = check_phase(kind, phase, SenderRole::Participant);
                if rule.coordinator_only {
                    assert_eq!(
                        as_participant,
                        Err(Violation::WrongRole {
                            kind,
                            role: SenderRole::Participant
                        })
                    );
                } else {
                    assert_eq!(as_participant, expected);
                }
                // Home and early never overlap, and CLOSED accepts nothing.
                assert!(!(rule.home.contains(&phase) && rule.early.contains(&phase)));
                if phase == P::Closed {
                    assert!(expected.is_err());
                }
            }
        }
    }

    #[test]
    fn early_messages_are_buffered() {
        let c = SenderRole::Participant;
        assert_eq!(
            check_phase(K::NonceShare, P::NonceCommit, c),
            Ok(Admission::Buffer)
        );
        assert_eq!(
            check_phase(K::NonceShare, P::NonceExchange, c),
            Ok(Admission::Process)
        );
        assert_eq!(
            check_phase(K::PartialSigShare, P::NonceExchange, c),
            Ok(Admission::Buffer)
        );
        // Two phases early is not something an honest peer can do.
        assert_eq!(
            check_phase(K::PartialSigShare, P::NonceCommit, c),
            Err(Violation::WrongPhase {
                kind: K::PartialSigShare,
                phase: P::NonceCommit
            })
        );
        // Late is never allowed: we only move on once everybody's message is in.
        assert!(check_phase(K::NonceCommit, P::NonceExchange, c).is_err());
        assert!(check_phase(K::SessionAbort, P::Closed, c).is_err());
        assert_eq!(
            check_phase(K::SessionAbort, P::Complete, c),
            Ok(Admission::Process)
        );
    }

    #[test]
    fn sender_order() {
        let mut o = SenderOrder::default();
        for kind in [
            K::SessionJoin,
            K::NonceCommit,
            K::SessionAbort,
            K::NonceShare,
        ] {
            assert_eq!(o.check(kind), Ok(()));
            o.record(kind);
        }
        assert!(o.has_sent(K::NonceShare) && !o.has_sent(K::SessionReady));
        assert_eq!(
            o.check(K::NonceShare),
            Err(Violation::DuplicateMessage {
                kind: K::NonceShare
            })
        );
        assert_eq!(
            o.check(K::SessionReady),
            Err(Violation::OutOfOrder {
                kind: K::SessionReady,
                after: K::NonceShare
            })
        );
        assert_eq!(o.check(K::ValidationError), Ok(()));
        o.record(K::ValidationError);
        assert_eq!(o.check(K::ValidationError), Ok(()));
        assert_eq!(o.check(K::PartialSigShare), Ok(()));
        // Same stage, different kind: a creator may both request and join.
        let mut o = SenderOrder::default();
        o.record(K::SigningRequest);
        assert_eq!(o.check(K::SessionJoin), Ok(()));
    }

    #[test]
    fn module_docs_show_the_table() {
        let docs = include_str!("phase.rs");
        let table: String = phase_table_markdown()
            .lines()
            .map(|l| format!("//! {l}\n"))
            .collect();
        assert!(docs.contains(&table), "update the module docs:\n{table}");
    }
}
