//! The rules, why a message broke one ([`Violation`]), and the rejection that
//! names the peer ([`Rejection`]).

use core::fmt;

use crate::ids::{PeerId, SessionId};
use crate::phase::{MessageKind, SenderRole, SessionPhase};
use crate::time::Millis;

/// Every rule a message can break. Metrics count rejections per rule.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rule {
    /// The peer is blacklisted.
    Blacklisted,
    /// The peer is graylisted.
    Graylisted,
    /// A gossip / DHT message is larger than `max_advertisement_size`.
    AdvertisementSize,
    /// A direct message is larger than `max_message_size`.
    MessageSize,
    /// A timestamp is more than `max_timestamp_skew_ms` from now.
    TimestampSkew,
    /// `expires_at ≤ now`.
    Expired,
    /// A message that cannot be decoded or whose fields are inconsistent.
    Malformed,
    /// A wire version this build does not speak.
    UnsupportedVersion,
    /// A signature (announcement, advertisement, or a MuSig2 contribution
    /// reported by the coordinator) does not verify.
    InvalidSignature,
    /// The announcing peer is not the peer the signed object names.
    PeerMismatch,
    /// A signer advertisement sooner than `min_advertisement_interval_ms` after
    /// the previous one.
    RateLimit,
    /// A peer claims more than `max_keys_per_peer` keys.
    KeyQuota,
    /// An advertisement older than one already accepted from the same peer.
    Superseded,
    /// A direct message for a session that is not open.
    UnknownSession,
    /// A direct message for a session that has expired.
    SessionExpired,
    /// A direct message for a session that is closed (finished or aborted).
    SessionClosed,
    /// A session already tracks `max_senders_per_session` peers.
    SessionSenders,
    /// A sequence number not above the sender's last one in the session.
    Replay,
    /// A sequence number more than `max_sequence_gap` above the last one.
    SequenceGap,
    /// A message kind not allowed in the session's phase.
    WrongPhase,
    /// A message kind the sender's role may not send.
    WrongRole,
    /// A message kind that comes before one the sender already sent.
    OutOfOrder,
    /// A second message of a once-per-session kind from the same sender.
    DuplicateMessage,
    /// A protocol violation found by the coordinator (reported to the manager).
    Protocol,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 24] = [
        Self::Blacklisted,
        Self::Graylisted,
        Self::AdvertisementSize,
        Self::MessageSize,
        Self::TimestampSkew,
        Self::Expired,
        Self::Malformed,
        Self::UnsupportedVersion,
        Self::InvalidSignature,
        Self::PeerMismatch,
        Self::RateLimit,
        Self::KeyQuota,
        Self::Superseded,
        Self::UnknownSession,
        Self::SessionExpired,
        Self::SessionClosed,
        Self::SessionSenders,
        Self::Replay,
        Self::SequenceGap,
        Self::WrongPhase,
        Self::WrongRole,
        Self::OutOfOrder,
        Self::DuplicateMessage,
        Self::Protocol,
    ];

    /// The rule's name (snake case, suitable as a metrics label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Blacklisted => "blacklisted",
            Self::Graylisted => "graylisted",
            Self::AdvertisementSize => "advertisement_size",
            Self::MessageSize => "message_size",
            Self::TimestampSkew => "timestamp_skew",
            Self::Expired => "expired",
            Self::Malformed => "malformed",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidSignature => "invalid_signature",
            Self::PeerMismatch => "peer_mismatch",
            Self::RateLimit => "rate_limit",
            Self::KeyQuota => "key_quota",
            Self::Superseded => "superseded",
            Self::UnknownSession => "unknown_session",
            Self::SessionExpired => "session_expired",
            Self::SessionClosed => "session_closed",
            Self::SessionSenders => "session_senders",
            Self::Replay => "replay",
            Self::SequenceGap => "sequence_gap",
            Self::WrongPhase => "wrong_phase",
            Self::WrongRole => "wrong_role",
            Self::OutOfOrder => "out_of_order",
            Self::DuplicateMessage => "duplicate_message",
            Self::Protocol => "protocol",
        }
    }

    /// What breaking the rule costs the peer.
    pub const fn penalty(self) -> Penalty {
        match self {
            // Already excluded, or innocent explanations (stale DHT copies,
            // network retransmissions, messages that arrive after a session
            // ended, a session whose sender slots others filled): drop
            // without blame.
            Self::Blacklisted
            | Self::Graylisted
            | Self::Expired
            | Self::Superseded
            | Self::UnknownSession
            | Self::SessionExpired
            | Self::SessionClosed
            | Self::SessionSenders
            | Self::Replay => Penalty::None,
            Self::InvalidSignature => Penalty::InvalidSignature,
            Self::RateLimit => Penalty::RateLimit,
            Self::AdvertisementSize
            | Self::MessageSize
            | Self::TimestampSkew
            | Self::Malformed
            | Self::UnsupportedVersion
            | Self::PeerMismatch
            | Self::KeyQuota
            | Self::SequenceGap
            | Self::WrongPhase
            | Self::WrongRole
            | Self::OutOfOrder
            | Self::DuplicateMessage
            | Self::Protocol => Penalty::Spam,
        }
    }

    /// The number of rules.
    pub const COUNT: usize = Self::ALL.len();

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rejection costs the peer's reputation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum Penalty {
    /// Nothing: the message is dropped and counted in the metrics only.
    None,
    /// One spam violation (score −1; `max_spam_violations` blacklist).
    Spam,
    /// One rate-limit violation (score −5; `max_rate_limit_violations` graylist).
    RateLimit,
    /// One invalid signature (score −10; `max_invalid_signatures_per_peer` blacklist).
    InvalidSignature,
}

/// Which signed object failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum SignedObject {
    /// A [`SessionAnnouncement`](crate::announcement::SessionAnnouncement).
    SessionAnnouncement,
    /// A [`SignerAdvertisement`](crate::announcement::SignerAdvertisement).
    SignerAdvertisement,
    /// A public nonce that does not open its Phase 0 commitment.
    NonceCommitment,
    /// A MuSig2 partial signature.
    PartialSignature,
    /// A signer's session join.
    SessionJoin,
    /// Any other signature.
    Other,
}

impl fmt::Display for SignedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SessionAnnouncement => "session announcement",
            Self::SignerAdvertisement => "signer advertisement",
            Self::NonceCommitment => "nonce commitment",
            Self::PartialSignature => "partial signature",
            Self::SessionJoin => "session join",
            Self::Other => "signature",
        })
    }
}

/// Why a message's fields are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformation {
    /// The bytes do not decode (reported by the layer that decodes them).
    #[error("undecodable: {0}")]
    Undecodable(String),
    /// A session announcement with no signers.
    #[error("no signers")]
    NoSigners,
    /// Signer keys not in bytewise order.
    #[error("signer keys are not sorted")]
    UnsortedSigners,
    /// The creator's key is not one of the signers.
    #[error("the creator is not a signer")]
    CreatorNotSigner,
    /// `request_id` is not the hash of the announcement's fields.
    #[error("request id does not match the announcement")]
    RequestIdMismatch,
    /// `expires_at ≤ created_at`.
    #[error("expires_at {expires_at} is not after created_at {created_at}")]
    ExpiryNotAfterCreation {
        /// The creation time.
        created_at: Millis,
        /// The expiry time.
        expires_at: Millis,
    },
    /// A signer advertisement with no transaction types.
    #[error("no transaction types")]
    NoTransactionTypes,
    /// An identity claim with more rotations than
    /// [`MAX_CLAIMED_ROTATIONS`](crate::identity_claim::MAX_CLAIMED_ROTATIONS).
    #[error("identity claim with {count} rotations, more than the limit of {max}")]
    TooManyRotations {
        /// The claim's rotation count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An identity claim whose key chain does not end at the advertised key.
    #[error("the identity claim does not end at the advertised key")]
    IdentityKeyMismatch,
    /// A signing request with more signers than `max_signers_per_request`.
    #[error("{count} signers, more than the limit of {max}")]
    TooManySigners {
        /// The request's signer count.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// The typed reason a message was rejected (without the peer; see [`Rejection`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// The peer is blacklisted.
    #[error("peer is blacklisted ({reason})")]
    Blacklisted {
        /// Why it was blacklisted.
        reason: String,
    },
    /// The peer is graylisted.
    #[error("peer is graylisted until {until}")]
    Graylisted {
        /// When the graylisting ends.
        until: Millis,
    },
    /// A gossip / DHT message over `max_advertisement_size`.
    #[error("advertisement of {size} bytes exceeds {max}")]
    AdvertisementTooLarge {
        /// The message size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A direct message over `max_message_size`.
    #[error("message of {size} bytes exceeds {max}")]
    MessageTooLarge {
        /// The message size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A timestamp more than `max_skew_ms` after now.
    #[error("timestamp {timestamp} is more than {max_skew_ms} ms after now ({now})")]
    TimestampInFuture {
        /// The message's timestamp.
        timestamp: Millis,
        /// The time of the check.
        now: Millis,
        /// The limit.
        max_skew_ms: Millis,
    },
    /// A live message's timestamp more than `max_skew_ms` before now.
    #[error("timestamp {timestamp} is more than {max_skew_ms} ms before now ({now})")]
    TimestampTooOld {
        /// The message's timestamp.
        timestamp: Millis,
        /// The time of the check.
        now: Millis,
        /// The limit.
        max_skew_ms: Millis,
    },
    /// `expires_at ≤ now`.
    #[error("expired at {expires_at} (now {now})")]
    Expired {
        /// The expiry time.
        expires_at: Millis,
        /// The time of the check.
        now: Millis,
    },
    /// Unusable fields.
    #[error("malformed: {0}")]
    Malformed(Malformation),
    /// An unknown wire version.
    #[error("{what} version {got} is not supported (this build speaks {supported})")]
    UnsupportedVersion {
        /// The versioned object.
        what: &'static str,
        /// The version received.
        got: u8,
        /// The version this build speaks.
        supported: u8,
    },
    /// A signature that does not verify.
    #[error("invalid {object} signature")]
    InvalidSignature {
        /// What was signed.
        object: SignedObject,
    },
    /// The announcing peer is not the one the signed object names.
    #[error("announced by a peer other than the claimed {claimed}")]
    PeerMismatch {
        /// The peer id inside the signed object.
        claimed: String,
    },
    /// A signer advertisement too soon after the previous one.
    #[error(
        "advertisement created at {created_at}, less than {min_interval_ms} ms after the previous one ({previous})"
    )]
    RateLimited {
        /// The new advertisement's `created_at`.
        created_at: Millis,
        /// The previous accepted advertisement's `created_at`.
        previous: Millis,
        /// The limit.
        min_interval_ms: Millis,
    },
    /// Signing requests faster than `per_minute` (after the burst) from one
    /// author key or through one peer.
    #[error("signing requests limited per {limited}: at most {per_minute} a minute")]
    RequestRateLimited {
        /// `"author key"` or `"peer"`.
        limited: &'static str,
        /// The limit.
        per_minute: u32,
    },
    /// A peer claims a key beyond its quota.
    #[error("peer already claims {max} keys")]
    TooManyKeys {
        /// The limit.
        max: usize,
    },
    /// An advertisement older than the peer's latest accepted one.
    #[error("advertisement created at {created_at} is older than the accepted one ({latest})")]
    Superseded {
        /// This advertisement's `created_at`.
        created_at: Millis,
        /// The accepted advertisement's `created_at`.
        latest: Millis,
    },
    /// A session that is not open.
    #[error("unknown session {session}")]
    UnknownSession {
        /// The session id.
        session: SessionId,
    },
    /// A session past its expiry.
    #[error("session {session} expired at {expired_at}")]
    SessionExpired {
        /// The session id.
        session: SessionId,
        /// When it expired.
        expired_at: Millis,
    },
    /// A message for a closed session (a race with its end: not blamed).
    #[error("{kind} for a closed session")]
    SessionClosed {
        /// The message kind.
        kind: MessageKind,
    },
    /// A session already tracking its maximum number of senders.
    #[error("session {session} already tracks {max} senders")]
    TooManySenders {
        /// The session id.
        session: SessionId,
        /// The limit.
        max: usize,
    },
    /// A sequence number not above the last accepted one.
    #[error("sequence {sequence} is not above the last accepted {last}")]
    Replay {
        /// The message's sequence number.
        sequence: u64,
        /// The sender's last accepted sequence number in the session.
        last: u64,
    },
    /// A sequence number jumping more than `max_gap`.
    #[error("sequence {sequence} jumps more than {max_gap} past {last}")]
    SequenceGap {
        /// The message's sequence number.
        sequence: u64,
        /// The sender's last accepted sequence number in the session.
        last: u64,
        /// The limit.
        max_gap: u64,
    },
    /// A kind not allowed in the phase.
    #[error("{kind} is not allowed in phase {phase}")]
    WrongPhase {
        /// The message kind.
        kind: MessageKind,
        /// The session's phase.
        phase: SessionPhase,
    },
    /// A kind the sender's role may not send.
    #[error("{kind} may not be sent by a {role}")]
    WrongRole {
        /// The message kind.
        kind: MessageKind,
        /// The sender's role.
        role: SenderRole,
    },
    /// A kind that belongs before one the sender already sent.
    #[error("{kind} after {after}")]
    OutOfOrder {
        /// The message kind.
        kind: MessageKind,
        /// The later kind the sender already sent.
        after: MessageKind,
    },
    /// A second once-per-session message.
    #[error("second {kind} from the same sender")]
    DuplicateMessage {
        /// The message kind.
        kind: MessageKind,
    },
    /// A protocol violation found by the coordinator.
    #[error("protocol violation: {reason}")]
    Protocol {
        /// What happened.
        reason: String,
    },
}

impl Violation {
    /// The rule this violation breaks.
    pub const fn rule(&self) -> Rule {
        match self {
            Self::Blacklisted { .. } => Rule::Blacklisted,
            Self::Graylisted { .. } => Rule::Graylisted,
            Self::AdvertisementTooLarge { .. } => Rule::AdvertisementSize,
            Self::MessageTooLarge { .. } => Rule::MessageSize,
            Self::TimestampInFuture { .. } | Self::TimestampTooOld { .. } => Rule::TimestampSkew,
            Self::Expired { .. } => Rule::Expired,
            Self::Malformed(_) => Rule::Malformed,
            Self::UnsupportedVersion { .. } => Rule::UnsupportedVersion,
            Self::InvalidSignature { .. } => Rule::InvalidSignature,
            Self::PeerMismatch { .. } => Rule::PeerMismatch,
            Self::RateLimited { .. } | Self::RequestRateLimited { .. } => Rule::RateLimit,
            Self::TooManyKeys { .. } => Rule::KeyQuota,
            Self::Superseded { .. } => Rule::Superseded,
            Self::UnknownSession { .. } => Rule::UnknownSession,
            Self::SessionExpired { .. } => Rule::SessionExpired,
            Self::SessionClosed { .. } => Rule::SessionClosed,
            Self::TooManySenders { .. } => Rule::SessionSenders,
            Self::Replay { .. } => Rule::Replay,
            Self::SequenceGap { .. } => Rule::SequenceGap,
            Self::WrongPhase { .. } => Rule::WrongPhase,
            Self::WrongRole { .. } => Rule::WrongRole,
            Self::OutOfOrder { .. } => Rule::OutOfOrder,
            Self::DuplicateMessage { .. } => Rule::DuplicateMessage,
            Self::Protocol { .. } => Rule::Protocol,
        }
    }

    /// Attaches the peer.
    pub fn by(self, peer: PeerId) -> Rejection {
        Rejection::new(peer, self)
    }
}

impl From<Malformation> for Violation {
    fn from(m: Malformation) -> Self {
        Self::Malformed(m)
    }
}

/// A rejected message: who sent it, which rule it broke, and the details.
///
/// Built only by [`Rejection::new`] (or [`Violation::by`]), so `rule` always
/// equals `detail.rule()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rejected message from {peer}: {rule}: {detail}")]
#[non_exhaustive]
pub struct Rejection {
    /// The peer the message came from.
    pub peer: PeerId,
    /// The rule it broke.
    pub rule: Rule,
    /// The details.
    pub detail: Violation,
}

impl Rejection {
    /// A rejection of `peer`'s message for `detail`.
    pub fn new(peer: PeerId, detail: Violation) -> Self {
        Self {
            peer,
            rule: detail.rule(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_indexes_follow_all() {
        for (i, rule) in Rule::ALL.iter().enumerate() {
            assert_eq!(rule.index(), i);
            assert_eq!(
                serde_json::to_string(rule).unwrap(),
                format!("\"{}\"", rule.as_str())
            );
        }
    }

    #[test]
    fn rejection_names_peer_and_rule() {
        let r = Violation::Replay {
            sequence: 3,
            last: 5,
        }
        .by(PeerId::from("12D3KooWx"));
        assert_eq!(r.rule, Rule::Replay);
        assert_eq!(
            r.to_string(),
            "rejected message from 12D3KooWx: replay: sequence 3 is not above the last accepted 5"
        );
    }
}
