//! Everything the coordinator tells the application, as one typed enum on a
//! bounded broadcast channel (a receiver that falls more than the channel's
//! capacity behind gets `Lagged` and loses the oldest events).

use musig2_core::{PublicKey, Signature};
use musig2_net::PeerEvent;
use musig2_security::{SecurityEvent, SessionAnnouncement, SignerAdvertisement};

pub use crate::evidence::Blame;

/// A session id (32 bytes).
pub type SessionId = [u8; 32];
/// A signing-request id (32 bytes).
pub type RequestId = [u8; 32];

/// Stable codes carried by [`CoordinatorEvent::SessionError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A partial signature did not verify.
    InvalidPartialSignature,
    /// A revealed nonce did not open its commitment.
    NonceCommitmentMismatch,
    /// A contribution could not be used (bad encoding, wrong index, bad join).
    InvalidContribution,
    /// A participant disconnected and did not come back in time.
    ParticipantDisconnected,
    /// A round did not complete in time; the error names who is missing.
    RoundTimeout,
    /// Not every signer joined before the join deadline; the error names
    /// every signer that did not.
    JoinTimeout,
    /// A participant aborted the session.
    Aborted,
    /// The session expired or got stuck (`cleanup_expired_sessions`).
    Expired,
    /// A message could not be delivered.
    DeliveryFailed,
    /// The aggregate signature is invalid although every partial verified.
    AggregationFailed,
    /// A signer signed two conflicting statements (nonces, commitments,
    /// partial signatures, or, for the creator, announcements); the error
    /// carries the proof.
    Equivocation,
    /// Signers saw different inputs (round-2 transcripts differ) and the
    /// views exchanged prove nobody guilty; nobody is blamed.
    ViewMismatch,
}

impl ErrorCode {
    /// The code as lotus-sdk-style text (`INVALID_PARTIAL_SIGNATURE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidPartialSignature => "INVALID_PARTIAL_SIGNATURE",
            Self::NonceCommitmentMismatch => "NONCE_COMMITMENT_MISMATCH",
            Self::InvalidContribution => "INVALID_CONTRIBUTION",
            Self::ParticipantDisconnected => "PARTICIPANT_DISCONNECTED",
            Self::RoundTimeout => "ROUND_TIMEOUT",
            Self::JoinTimeout => "JOIN_TIMEOUT",
            Self::Aborted => "SESSION_ABORTED",
            Self::Expired => "SESSION_EXPIRED",
            Self::DeliveryFailed => "DELIVERY_FAILED",
            Self::AggregationFailed => "AGGREGATION_FAILED",
            Self::Equivocation => "EQUIVOCATION",
            Self::ViewMismatch => "VIEW_MISMATCH",
        }
    }

    /// Every code.
    pub const ALL: [ErrorCode; 12] = [
        Self::InvalidPartialSignature,
        Self::NonceCommitmentMismatch,
        Self::InvalidContribution,
        Self::ParticipantDisconnected,
        Self::RoundTimeout,
        Self::JoinTimeout,
        Self::Aborted,
        Self::Expired,
        Self::DeliveryFailed,
        Self::AggregationFailed,
        Self::Equivocation,
        Self::ViewMismatch,
    ];

    /// Parses [`ErrorCode::as_str`]'s text.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// What a broadcast confirmation rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfirmationBasis {
    /// This node broadcast (`notify_broadcast_complete`).
    Local {
        /// The transaction id, if the application gave it.
        txid: Option<[u8; 32]>,
    },
    /// The current coordinator's signed word (its `SignatureFinalized`),
    /// naming the transaction id where it knows it (a node without a
    /// Chronik client cannot check it).
    CoordinatorWord {
        /// The coordinator's sorted index.
        coordinator_index: usize,
        /// The transaction id it reported.
        txid: Option<[u8; 32]>,
    },
    /// The transaction the current coordinator reported was found through
    /// this node's Chronik client (`CoordinatorConfig::broadcast_check`).
    ChronikSeen {
        /// The coordinator's sorted index.
        coordinator_index: usize,
        /// The transaction id (internal byte order).
        txid: [u8; 32],
    },
}

/// Coordinator events (the reference's event names in the comments).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CoordinatorEvent {
    /// A signing request we created is announced.
    SigningRequestCreated {
        /// Its id.
        request_id: RequestId,
        /// The session it will become.
        session_id: SessionId,
    },
    /// A signing request that names one of our keys arrived and passed the
    /// security checks; join it with `join_signing_request` (or it was joined
    /// automatically by the join policy).
    SigningRequestReceived {
        /// The verified announcement.
        announcement: Box<SessionAnnouncement>,
    },
    /// `session:created`: every required key has joined.
    SessionCreated(SessionId),
    /// `session:ready`: carries both ids.
    SessionReady {
        /// The request.
        request_id: RequestId,
        /// The session.
        session_id: SessionId,
    },
    /// `session:nonce-commitments-complete`.
    NonceCommitmentsComplete(SessionId),
    /// `round1:complete`: every nonce is in.
    Round1Complete(SessionId),
    /// `session:complete`: every partial signature is in and the aggregate verifies.
    SessionComplete {
        /// The session.
        session_id: SessionId,
        /// The final signature.
        signature: Signature,
    },
    /// `session:closed`.
    SessionClosed(SessionId),
    /// `session:error`. `signer` names the culprit where one is known, and
    /// `blame` says on what grounds (proof, observation, a co-signer's
    /// report); only proof is held against a peer's reputation.
    SessionError {
        /// The session.
        session_id: SessionId,
        /// A stable code.
        code: ErrorCode,
        /// The sorted index of the signer at fault, if any (the first of
        /// `culprits`).
        signer: Option<usize>,
        /// Every signer at fault: for a timeout, every signer whose join or
        /// contribution is missing; for a disconnection, every signer gone.
        culprits: Vec<usize>,
        /// Details.
        message: String,
        /// The grounds, with the evidence where the node holds proof.
        blame: Blame,
    },
    /// `session:should-broadcast`: this node is the (current) coordinator.
    ShouldBroadcast {
        /// The session.
        session_id: SessionId,
        /// Our sorted index.
        coordinator_index: usize,
    },
    /// `session:coordinator-failed`: failover moved to the next coordinator.
    CoordinatorFailed {
        /// The session.
        session_id: SessionId,
        /// The new attempt number (2 = first backup).
        attempt: usize,
    },
    /// `session:failover-exhausted`: every coordinator failed.
    FailoverExhausted {
        /// The session.
        session_id: SessionId,
        /// How many coordinators were tried.
        attempts: usize,
    },
    /// `session:broadcast-confirmed`: failover stops.
    BroadcastConfirmed {
        /// The session.
        session_id: SessionId,
        /// What the confirmation rests on.
        basis: ConfirmationBasis,
    },
    /// `signer:discovered`.
    SignerDiscovered(Box<SignerAdvertisement>),
    /// `peer:discovered`, `peer:connected`, `peer:disconnected`,
    /// `peer:updated`, `relay:addresses-available`, as the network reports them.
    Peer(PeerEvent),
    /// `peer:blacklisted`, `peer:graylisted`, `peer:should-ban`.
    Security(SecurityEvent),
    /// A signer advertisement was refused for its burn identity (fake,
    /// immature or too small a burn, a bad signature, a banned identity, or
    /// none where one is required): its key does not enter the directory.
    IdentityRefused {
        /// The advertised key.
        pubkey: PublicKey,
        /// The advertised peer id.
        peer_id: String,
        /// Why.
        reason: String,
    },
    /// A co-signer's identity reputation changed: +2 for a completed
    /// session, −5 for a proven fault (banned at 0).
    IdentityReputation {
        /// The identity id.
        identity_id: [u8; 32],
        /// The co-signer's key.
        pubkey: PublicKey,
        /// The new score (0–100).
        score: u8,
        /// Whether the identity is now banned.
        banned: bool,
    },
    /// A verified signing request that names one of our keys was refused:
    /// its transaction does not check out (e.g. its message is not the
    /// sighash this node computed), it is blind and blind signing is off, or
    /// the join policy said no. Names the creator.
    SigningRequestRefused {
        /// The request.
        request_id: RequestId,
        /// The creator's key (it signed the request).
        creator_pubkey: PublicKey,
        /// The creator's peer id, as the signed request claims it (the
        /// announcing peer was checked to be this one when it came directly
        /// or by gossip).
        creator_peer_id: String,
        /// Why.
        reason: crate::txrequest::RequestRefusal,
    },
}

/// A snapshot of a session for `get_session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session.
    pub session_id: SessionId,
    /// The request it came from.
    pub request_id: RequestId,
    /// Its phase.
    pub phase: musig2_security::SessionPhase,
    /// The sorted signer keys.
    pub signers: Vec<PublicKey>,
    /// Our index among them.
    pub my_index: usize,
    /// The aggregate key (Taproot commitment key for Taproot requests).
    pub aggregate_pubkey: PublicKey,
    /// The message.
    pub message: [u8; 32],
    /// How many signers have joined.
    pub joined: usize,
    /// The final signature, once complete.
    pub final_signature: Option<Signature>,
    /// The current coordinator's sorted index.
    pub coordinator_index: Option<usize>,
    /// Whether the session has Phase 0 nonce commitments (the creator's
    /// choice, carried in the signed announcement).
    pub nonce_commitments: bool,
    /// Each signer's public nonce (`R1 ‖ R2`), once this node has it.
    pub public_nonces: Vec<Option<musig2_core::PublicNonce>>,
}
