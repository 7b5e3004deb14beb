#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod announcement;
pub mod content;
mod encoding;
mod events;
pub mod identity_claim;
mod ids;
pub mod limits;
mod manager;
mod metrics;
mod peer_map;
pub mod phase;
pub mod rate_limit;
pub mod replay;
pub mod reputation;
mod rule;
pub mod sessions;
pub mod sighash;
pub mod time;

pub use announcement::{
    InputScriptType, SessionAnnouncement, SessionRequest, Signed, SignerAdvertisement,
    SigningMetadata, SpentOutput, TransactionRequest, TransactionType, lotus_sdk_session_id,
    request_id, session_id,
};
pub use content::Delivery;
pub use events::SecurityEvent;
pub use identity_claim::{ClaimedOutPoint, ClaimedRotation, IdentityClaim};
pub use ids::{ParseSessionIdError, PeerId, SessionId};
pub use limits::SecurityConfig;
pub use manager::SecurityManager;
pub use metrics::MetricsSnapshot;
pub use phase::{Admission, MessageKind, SenderRole, SessionPhase};
pub use reputation::{BlacklistEntry, BlacklistReason, PeerScore, SavedPeer};
pub use rule::{Malformation, Penalty, Rejection, Rule, SignedObject, Violation};
pub use sessions::{DirectMessage, SessionError, SessionInfo, StaleSessions};
pub use time::{Clock, ManualClock, Millis, SystemClock};
