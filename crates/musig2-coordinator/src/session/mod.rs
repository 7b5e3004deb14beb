//! One signer's view of one signing session: a synchronous state machine with
//! no I/O. Every input returns the actions to carry out (messages to send,
//! events to emit) or a [`Fault`] that names the culprit.

mod accountability;
mod broadcast;
mod relay;
mod rounds;

pub use relay::RELAY_MIN_SIGNERS;
pub(crate) use relay::Round;

use musig2_core::{
    EquivocationProof, KeyAggContext, Keypair, Lotus, NonceCommitment, NonceGenInputs,
    PartialSignature, PublicKey, PublicNonce, SecretNonce, SessionContext, Signature,
    SignedContribution, Statement, nonce_agg, nonce_gen, partial_sig_agg, partial_sig_verify,
    schnorr, sign,
};
use musig2_election::{
    ElectionMethod, Failover, FailoverStep, coordinator_priority_list, elect_coordinator,
};
use musig2_net::PeerId;
use musig2_security::{
    InputScriptType, MessageKind, Millis, SessionAnnouncement, SessionPhase, Signed,
};
use rand::CryptoRng;
use std::str::FromStr;
use tracing::info;

use crate::events::{
    ConfirmationBasis, CoordinatorEvent, ErrorCode, RequestId, SessionId, SessionInfo,
};
use crate::evidence::{Blame, Evidence, SessionFacts};
use crate::wire::{AbortReport, Body, RelayedAbort, finalized_digest, join_digest};

/// What the shell must do after an input.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Send to every other signer.
    SendToAll(Body),
    /// Send to one signer.
    SendTo(usize, Body),
    /// Emit an event.
    Emit(CoordinatorEvent),
}

/// A failed input: the session cannot go on; `signer` is to blame if set,
/// on the grounds in `blame`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub code: ErrorCode,
    pub signer: Option<usize>,
    pub message: String,
    pub blame: Blame,
    /// Learnt from a co-signer's abort (which every co-signer got): not
    /// announced again.
    pub from_abort: bool,
    /// Every signer named (`signer` is the first); empty means `signer` alone.
    pub culprits: Vec<usize>,
    /// The co-signer's signed abort this failure was learnt from, relayed to
    /// the others (an aborter that told only some signers cannot make the
    /// others blame the ones it told).
    pub relay: Option<Box<RelayedAbort>>,
}

impl Fault {
    /// Names several culprits.
    pub fn with_culprits(mut self, culprits: Vec<usize>) -> Self {
        self.culprits = culprits;
        self
    }

    /// `signer` is at fault, as seen here (its own authenticated message).
    fn blame(code: ErrorCode, signer: usize, message: impl Into<String>) -> Self {
        Self {
            code,
            signer: Some(signer),
            message: message.into(),
            blame: Blame::Observed,
            from_abort: false,
            culprits: Vec::new(),
            relay: None,
        }
    }

    /// `signer` is at fault, and `evidence` proves it.
    fn proven(
        code: ErrorCode,
        signer: usize,
        message: impl Into<String>,
        evidence: Evidence,
    ) -> Self {
        Self {
            code,
            signer: Some(signer),
            message: message.into(),
            blame: Blame::Proof(Box::new(evidence)),
            from_abort: false,
            culprits: Vec::new(),
            relay: None,
        }
    }

    /// Nobody is named.
    pub fn nobody(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            signer: None,
            message: message.into(),
            blame: Blame::Unproven,
            from_abort: false,
            culprits: Vec::new(),
            relay: None,
        }
    }
}

/// How a join relates to our announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinCheck {
    /// Signed by the signer it names, for the announcement we hold.
    Valid,
    /// Signed by the signer it names, for another announcement under the
    /// same session id: the creator showed two announcements.
    OtherAnnouncement,
}

/// The extra input of every nonce this process draws:
/// `SHA256(session_id ‖ announcement digest ‖ process salt ‖ counter)`. The salt is 32 bytes from
/// the OS generator drawn once per process and the counter never repeats in
/// a process, so a cloned process or a restored VM snapshot whose random
/// generator state repeats still feeds different inputs into BIP327's
/// NonceGen (defence in depth: the random draw itself comes from the OS).
pub(crate) fn nonce_extra_input(
    session_id: &SessionId,
    announcement_digest: &[u8; 32],
) -> [u8; 32] {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SALT: OnceLock<[u8; 32]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let salt = SALT.get_or_init(|| {
        use rand::TryRngCore;
        let mut salt = [0u8; 32];
        if rand::rngs::OsRng.try_fill_bytes(&mut salt).is_err() {
            // No OS generator: the thread generator is seeded from the OS too.
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
        }
        salt
    });
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = Vec::with_capacity(104);
    bytes.extend_from_slice(session_id);
    bytes.extend_from_slice(announcement_digest);
    bytes.extend_from_slice(salt);
    bytes.extend_from_slice(&count.to_be_bytes());
    musig2_core::hash::sha256(&bytes)
}

/// A misuse of the API (wrong phase, unknown key): not a session failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Misuse(pub String);

pub(crate) struct Session {
    pub announcement: SessionAnnouncement,
    pub session_id: SessionId,
    pub request_id: RequestId,
    pub keys: Vec<PublicKey>,
    key_agg: KeyAggContext<Lotus>,
    pub me: usize,
    keypair: Keypair,
    pub phase: SessionPhase,
    /// Peer id of each signer, once known (from the announcement or its join).
    pub peers: Vec<Option<PeerId>>,
    joined: Vec<bool>,
    commitments_enabled: bool,
    commitments: Vec<Option<NonceCommitment>>,
    nonces: Vec<Option<PublicNonce>>,
    psigs: Vec<Option<PartialSignature>>,
    /// `Signed::digest` of the announcement: bound by joins and transcripts.
    pub announcement_digest: [u8; 32],
    /// What each signer signed (ours included): the evidence we can show
    /// (empty until the first one, then one slot per signer).
    signed_commitments: Vec<Option<SignedContribution>>,
    signed_nonces: Vec<Option<SignedContribution>>,
    /// Each co-signer's signed partial signature, kept (unverified until the
    /// aggregate fails) to prove which one was invalid.
    signed_psigs: Vec<Option<SignedContribution>>,
    /// Our transcript digest, once round 1 is complete.
    transcript: Option<[u8; 32]>,
    /// Co-signers whose round-2 transcript differs from ours (we sent them
    /// our view); the session cannot complete, and nobody is blamed unless
    /// the views prove an equivocation.
    pub view_mismatch: Vec<usize>,
    /// Co-signers whose view we received (one each).
    views_received: Vec<usize>,
    /// Chronik look-ups started for reported broadcasts (bounded).
    pub broadcast_checks: u8,
    /// A later backup's finalization, kept until our failover reaches it
    /// (one slot: the latest; boxed, as it is rare and large).
    pub early_finalization: Option<Box<(usize, PeerId, crate::wire::WireMessage)>>,
    /// Co-signers whose join was for another announcement under our id.
    pub other_announcement: Vec<usize>,
    secnonce: Option<SecretNonce>,
    /// Whether we drew a nonce in this session (so must never sign in it again).
    pub nonce_drawn: bool,
    /// Boxed: 500 bytes that a session waiting for joins does not need.
    context: Option<Box<SessionContext<Lotus>>>,
    pub final_signature: Option<Signature>,
    election_method: ElectionMethod,
    options: SessionOptions,
    elected: Option<usize>,
    pub failover: Option<Failover>,
    /// Our next sequence number towards each co-signer (replay protection is
    /// per sender and receiver, so each receiver sees 1, 2, 3, … from us).
    next_sequence: Vec<u64>,
    /// When the session last moved forward (for the round timeout).
    pub progressed_at: Millis,
    /// When our round timer fired and our timeout report (an abort naming
    /// the signers we miss) went out; the verdict waits a grace period for
    /// the co-signers' reports.
    pub timeout_reported_at: Option<Millis>,
    /// When the session was opened here.
    pub started_at: Millis,
    /// When it completed here.
    pub completed_at: Option<Millis>,
    /// As the relay: the rounds already relayed (bits of [`Round`]).
    relayed: u8,
    /// We stopped waiting for the relay: the rest runs directly.
    relay_off: bool,
    /// The rounds in which we stopped waiting for the relay (bits of [`Round`]).
    fell_back: u8,
    /// Per co-signer: the `want`s answered (bits of [`Round`], and 8 for
    /// the final signature).
    answered: Vec<u8>,
    /// Per co-signer: the batches taken from it.
    batches: Vec<u8>,
    /// The relay: the coordinator the announcement's election names
    /// (whatever our own election setting), in a session of
    /// [`RELAY_MIN_SIGNERS`] or more; fixed when everyone joined.
    relay_index: Option<usize>,
}

/// Node-level choices a session follows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionOptions {
    /// Phase 0 nonce commitments.
    pub commitments: bool,
    /// Elect a coordinator (`ShouldBroadcast`).
    pub election: bool,
    /// Run failover after the election.
    pub failover: bool,
}

impl Session {
    /// A session for the signer `keypair`, from a verified announcement.
    pub fn new(
        announcement: SessionAnnouncement,
        keypair: Keypair,
        my_peer_id: PeerId,
        options: SessionOptions,
        now: Millis,
    ) -> Result<Self, Misuse> {
        let commitments_enabled = options.commitments;
        let keys = announcement.required_pubkeys.clone();
        let me = keys
            .iter()
            .position(|k| *k == keypair.public_key())
            .ok_or_else(|| Misuse("our key is not one of the request's signers".into()))?;
        let creator = keys
            .iter()
            .position(|k| *k == announcement.creator_pubkey)
            .ok_or_else(|| Misuse("the creator is not one of the signers".into()))?;
        let mut key_agg = KeyAggContext::<Lotus>::new(&keys).map_err(|e| Misuse(e.to_string()))?;
        if announcement.metadata.input_script_type == Some(InputScriptType::Taproot) {
            // Taproot key path: sign for the commitment key Q + t·G (lotus-sdk).
            key_agg = key_agg
                .with_taproot_tweak(&[0u8; 32])
                .map_err(|e| Misuse(e.to_string()))?;
        }
        // Every signer must elect the same coordinator: an unknown method is
        // an invalid request, never silently replaced by a local default.
        let election_method: ElectionMethod =
            announcement.election_method.parse().map_err(|_| {
                Misuse(format!(
                    "unknown election method {:?}",
                    announcement.election_method
                ))
            })?;
        let creator_peer = PeerId::from_str(&announcement.creator_peer_id)
            .map_err(|_| Misuse("the creator's peer id does not parse".into()))?;
        let n = keys.len();
        let announcement_digest = announcement.digest();
        let mut peers = vec![None; n];
        let mut joined = vec![false; n];
        if let (Some(p), Some(j)) = (peers.get_mut(creator), joined.get_mut(creator)) {
            *p = Some(creator_peer);
            *j = true;
        }
        if let (Some(p), Some(j)) = (peers.get_mut(me), joined.get_mut(me)) {
            *p = Some(my_peer_id);
            *j = true;
        }
        Ok(Self {
            session_id: announcement.session_id().to_bytes(),
            request_id: announcement.request_id,
            announcement,
            keys,
            key_agg,
            me,
            keypair,
            phase: SessionPhase::SigningRequest,
            peers,
            joined,
            commitments_enabled,
            commitments: vec![None; n],
            nonces: vec![None; n],
            psigs: vec![None; n],
            announcement_digest,
            // Filled on first use (`held_slot`): a session waiting for joins
            // holds none, and three lists of n empty slots cost 720 bytes
            // at n = 3.
            signed_commitments: Vec::new(),
            signed_nonces: Vec::new(),
            signed_psigs: Vec::new(),
            transcript: None,
            view_mismatch: Vec::new(),
            views_received: Vec::new(),
            broadcast_checks: 0,
            early_finalization: None,
            other_announcement: Vec::new(),
            secnonce: None,
            nonce_drawn: false,
            context: None,
            final_signature: None,
            election_method,
            options,
            elected: None,
            failover: None,
            next_sequence: vec![0; n],
            progressed_at: now,
            timeout_reported_at: None,
            started_at: now,
            completed_at: None,
            relayed: 0,
            relay_off: false,
            fell_back: 0,
            answered: vec![0; n],
            batches: vec![0; n],
            relay_index: None,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Our transcript digest, once round 1 is complete.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn transcript_digest(&self) -> Option<[u8; 32]> {
        self.transcript
    }

    /// Whether signer `index` has joined (for this announcement).
    pub fn joined(&self, index: usize) -> bool {
        self.joined.get(index).copied().unwrap_or(false)
    }

    /// The next sequence number for messages to signer `index`.
    pub fn next_sequence(&mut self, index: usize) -> u64 {
        match self.next_sequence.get_mut(index) {
            Some(seq) => {
                *seq += 1;
                *seq
            }
            None => 0,
        }
    }

    pub fn aggregate_pubkey(&self) -> PublicKey {
        self.key_agg.aggregate_pubkey()
    }

    /// The current coordinator's index (after failover, the backup's).
    pub fn coordinator_index(&self) -> Option<usize> {
        match &self.failover {
            Some(f) => f.current(),
            None => self.elected,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, SessionPhase::Complete | SessionPhase::Closed)
    }

    /// The signers whose next contribution is missing here: before
    /// everyone joined, the joins; then the first round not complete, where
    /// our own contribution counts as missing until we sent it (a node whose
    /// application never started a round names itself).
    pub fn missing(&self) -> Vec<usize> {
        self.missing_with_kind().1
    }

    /// [`Session::missing`], with the kind of message the missing signers
    /// owe (`None` once complete).
    pub fn missing_with_kind(&self) -> (Option<MessageKind>, Vec<usize>) {
        match self.phase {
            SessionPhase::Init | SessionPhase::SigningRequest => {
                let missing = (0..self.len()).filter(|i| !self.joined(*i)).collect();
                return (Some(MessageKind::SessionJoin), missing);
            }
            SessionPhase::Complete | SessionPhase::Closed => return (None, Vec::new()),
            _ => {}
        }
        let lacking = |have: &dyn Fn(usize) -> bool, sent_from: SessionPhase| -> Vec<usize> {
            (0..self.len())
                .filter(|i| {
                    if *i == self.me {
                        self.phase < sent_from
                    } else {
                        !have(*i)
                    }
                })
                .collect()
        };
        if self.commitments_enabled {
            let m = lacking(
                &|i| self.commitments.get(i).is_some_and(Option::is_some),
                SessionPhase::NonceCommit,
            );
            if !m.is_empty() {
                return (Some(MessageKind::NonceCommit), m);
            }
        }
        let m = lacking(
            &|i| self.nonces.get(i).is_some_and(Option::is_some),
            SessionPhase::NonceExchange,
        );
        if !m.is_empty() {
            return (Some(MessageKind::NonceShare), m);
        }
        // A signer whose partial signature came over another view owes
        // nothing more: the session waits on the views (§11.3).
        let m = lacking(
            &|i| self.psigs.get(i).is_some_and(Option::is_some) || self.view_mismatch.contains(&i),
            SessionPhase::PartialSigExchange,
        );
        (Some(MessageKind::PartialSigShare), m)
    }

    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            session_id: self.session_id,
            request_id: self.request_id,
            phase: self.phase,
            signers: self.keys.clone(),
            my_index: self.me,
            aggregate_pubkey: self.aggregate_pubkey(),
            message: self.announcement.message,
            joined: self.joined.iter().filter(|j| **j).count(),
            final_signature: self.final_signature,
            coordinator_index: self.coordinator_index(),
            nonce_commitments: self.commitments_enabled,
            public_nonces: self.nonces.clone(),
        }
    }

    fn set(&mut self, slot: Slot, index: usize, value: SlotValue) {
        match (slot, value) {
            (Slot::Commitment, SlotValue::Commitment(c)) => {
                if let Some(s) = self.commitments.get_mut(index) {
                    *s = Some(c);
                }
            }
            (Slot::Nonce, SlotValue::Nonce(n)) => {
                if let Some(s) = self.nonces.get_mut(index) {
                    *s = Some(n);
                }
            }
            (Slot::Psig, SlotValue::Psig(p)) => {
                if let Some(s) = self.psigs.get_mut(index) {
                    *s = Some(p);
                }
            }
            _ => {}
        }
    }
}

/// `list`'s slot for signer `index` of `n`, the list filled with empty
/// slots on first use.
fn held_slot(
    list: &mut Vec<Option<SignedContribution>>,
    n: usize,
    index: usize,
) -> Option<&mut Option<SignedContribution>> {
    if list.is_empty() {
        list.resize(n, None);
    }
    list.get_mut(index)
}

#[derive(Clone, Copy)]
enum Slot {
    Commitment,
    Nonce,
    Psig,
}

enum SlotValue {
    Commitment(NonceCommitment),
    Nonce(PublicNonce),
    Psig(PartialSignature),
}

#[cfg(test)]
mod relay_tests;
#[cfg(test)]
mod tests;
