//! The coordinator's configuration (the reference's `MuSig2P2PConfig`).

use std::sync::Arc;
use std::time::Duration;

use musig2_election::ElectionMethod;
use musig2_security::{SecurityConfig, SessionAnnouncement};

use crate::txrequest::TransactionView;

/// An application's decision on a signing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinDecision {
    /// Join and sign.
    Join,
    /// Refuse, with the reason (logged).
    Refuse(String),
}

/// What the join policy sees: the verified announcement and, for a
/// transaction request, the transaction this node decoded and checked
/// (outputs with addresses and amounts, the fee, which inputs spend the
/// group's key; its sighash already recomputed and equal to the message).
#[derive(Debug, Clone, Copy)]
pub struct JoinRequest<'a> {
    /// The signed request.
    pub announcement: &'a SessionAnnouncement,
    /// The decoded transaction; `None` for a bare-message (blind) request.
    pub transaction: Option<&'a TransactionView>,
}

/// Sees every verified signing request that names one of our keys before this
/// node joins it automatically.
pub type JoinPolicy = Arc<dyn Fn(&JoinRequest<'_>) -> JoinDecision + Send + Sync>;

/// Records a session id this node drew a nonce in, with the session's expiry.
pub type SignedLog = Arc<
    dyn Fn(crate::events::SessionId, musig2_security::Millis) -> Result<(), String> + Send + Sync,
>;

/// Configuration of a [`crate::Coordinator`].
#[derive(Clone)]
pub struct CoordinatorConfig {
    /// Signing requests expire this long after creation (reference: 2 h).
    pub session_timeout: Duration,
    /// Phase 0 nonce commitments (reference default: on).
    pub enable_nonce_commitment: bool,
    /// Coordinator election method.
    pub election_method: ElectionMethod,
    /// Emit `ShouldBroadcast` and run failover.
    pub enable_coordinator_election: bool,
    /// Run the failover state machine.
    pub enable_coordinator_failover: bool,
    /// Dial signers discovered through advertisements.
    pub enable_auto_connect: bool,
    /// Minimum peer score for auto-connect.
    pub min_reputation_auto_connect: i32,
    /// Join verified requests automatically when the policy agrees.
    pub auto_join: bool,
    /// The join policy (default: join every request that names our key).
    pub join_policy: JoinPolicy,
    /// Join requests that carry only a 32-byte message and no transaction
    /// (default: yes, for library users who compute their own messages). With
    /// `false`, such a request is refused like a transaction whose sighash
    /// does not match (`RequestRefusal::BlindSigning`); the CLI node turns it
    /// off unless its configuration says `allow_blind_signing = true`.
    pub allow_blind_signing: bool,
    /// How long to look for a co-signer through the DHT.
    pub discovery_timeout: Duration,
    /// A participant that disconnects and stays away this long fails the session.
    pub disconnect_grace: Duration,
    /// A round that waits longer than this for contributions fails, naming who is missing.
    pub round_timeout: Duration,
    /// In a relayed session (`docs/PROTOCOL.md` §7.5), how long a signer
    /// waits for the relay's round after its own contribution went out
    /// before it exchanges directly (at most half the round timeout).
    pub relay_timeout: Duration,
    /// A session whose signers have not all joined this long after it was
    /// opened here (or by the request's expiry, if sooner) fails with
    /// `JOIN_TIMEOUT`, naming every signer that did not join.
    pub join_timeout: Duration,
    /// Deterministic failover: after completion, the coordinator of attempt
    /// `k` has until `k · broadcast_timeout` to confirm its broadcast; then
    /// every node moves to the next backup by itself (reference: 5 min).
    /// Zero turns the automatic move off (`trigger_coordinator_failover`
    /// still works, locally).
    pub broadcast_timeout: Duration,
    /// Where a coordinator's reported broadcast is checked before it stops
    /// failover: with a Chronik client, a `SignatureFinalized` confirms only
    /// once the transaction id it names is found there (one without a txid
    /// confirms nothing); without one, the coordinator's signed word does.
    pub broadcast_check: Option<Arc<musig2_identity::chronik::ChronikClient>>,
    /// Burn identities (`enableBurnBasedIdentity`): advertisements' identity
    /// claims are checked through Chronik, co-signers' identity reputation
    /// follows session outcomes, and ours is claimed. `None`: off.
    pub identity: Option<crate::identity::IdentityGate>,
    /// Sessions this node drew a nonce in before it restarted (with their
    /// expiry), as `signed_log` recorded them: a request under one of these
    /// ids is refused, so a restart never signs a second nonce for one run.
    pub signed_sessions: Vec<(crate::events::SessionId, musig2_security::Millis)>,
    /// Called when this node draws its nonce in a session, before anything
    /// derived from it is sent; an error fails the session unsent. A daemon
    /// records the id durably here (see `signed_sessions`).
    pub signed_log: Option<SignedLog>,
    /// Completed sessions kept (signature, failover) after their security
    /// slot is released; beyond it the oldest is forgotten.
    pub completed_capacity: usize,
    /// How often the coordinator checks the two timeouts above.
    pub sweep_interval: Duration,
    /// The security layer's limits.
    pub security: SecurityConfig,
    /// Capacity of the event channel.
    pub event_capacity: usize,
}

impl std::fmt::Debug for CoordinatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorConfig")
            .field("election_method", &self.election_method)
            .field("enable_nonce_commitment", &self.enable_nonce_commitment)
            .field("auto_join", &self.auto_join)
            .field("allow_blind_signing", &self.allow_blind_signing)
            .finish_non_exhaustive()
    }
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_secs(2 * 60 * 60),
            enable_nonce_commitment: true,
            election_method: ElectionMethod::Lexicographic,
            enable_coordinator_election: true,
            enable_coordinator_failover: true,
            enable_auto_connect: true,
            min_reputation_auto_connect: 0,
            auto_join: false,
            join_policy: Arc::new(|_| JoinDecision::Join),
            allow_blind_signing: true,
            discovery_timeout: Duration::from_secs(30),
            disconnect_grace: Duration::from_secs(10),
            round_timeout: Duration::from_secs(120),
            relay_timeout: Duration::from_secs(2),
            broadcast_timeout: Duration::from_secs(300),
            broadcast_check: None,
            identity: None,
            signed_sessions: Vec::new(),
            signed_log: None,
            join_timeout: Duration::from_secs(10 * 60),
            completed_capacity: 1024,
            sweep_interval: Duration::from_millis(250),
            security: SecurityConfig::default(),
            event_capacity: 4096,
        }
    }
}

impl CoordinatorConfig {
    /// Applies `MUSIG2_ENABLE_AUTO_CONNECT` and `MUSIG2_MIN_REPUTATION_AUTO_CONNECT`.
    pub fn with_env_overrides(mut self) -> Result<Self, crate::CoordinatorError> {
        if let Ok(v) = std::env::var("MUSIG2_ENABLE_AUTO_CONNECT") {
            self.enable_auto_connect = match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(crate::CoordinatorError::Config(format!(
                        "MUSIG2_ENABLE_AUTO_CONNECT={other:?} is not a boolean"
                    )));
                }
            };
        }
        if let Ok(v) = std::env::var("MUSIG2_MIN_REPUTATION_AUTO_CONNECT") {
            self.min_reputation_auto_connect = v.trim().parse().map_err(|_| {
                crate::CoordinatorError::Config(format!(
                    "MUSIG2_MIN_REPUTATION_AUTO_CONNECT={v:?} is not a number"
                ))
            })?;
        }
        Ok(self)
    }
}
