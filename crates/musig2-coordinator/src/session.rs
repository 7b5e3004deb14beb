//! One signer's view of one signing session: a synchronous state machine with
//! no I/O. Every input returns the actions to carry out (messages to send,
//! events to emit) or a [`Fault`] that names the culprit.

use musig2_core::{
    KeyAggContext, Keypair, Lotus, NonceCommitment, NonceGenInputs, PartialSignature, PublicKey,
    PublicNonce, SecretNonce, SessionContext, Signature, nonce_agg, nonce_gen, partial_sig_agg,
    partial_sig_verify, schnorr, sign,
};
use musig2_election::{
    ElectionMethod, Failover, FailoverStep, coordinator_priority_list, elect_coordinator,
};
use musig2_net::PeerId;
use musig2_security::{InputScriptType, Millis, SessionAnnouncement, SessionPhase};
use rand::CryptoRng;
use std::str::FromStr;
use tracing::info;

use crate::events::{CoordinatorEvent, ErrorCode, RequestId, SessionId, SessionInfo};
use crate::wire::{Body, join_digest};

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

/// A failed input: the session cannot go on, and `signer` is to blame if set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub code: ErrorCode,
    pub signer: Option<usize>,
    pub message: String,
}

impl Fault {
    fn blame(code: ErrorCode, signer: usize, message: impl Into<String>) -> Self {
        Self {
            code,
            signer: Some(signer),
            message: message.into(),
        }
    }
}

/// The extra input of every nonce this process draws:
/// `SHA256(session_id ‖ process salt ‖ counter)`. The salt is 32 bytes from
/// the OS generator drawn once per process and the counter never repeats in
/// a process, so a cloned process or a restored VM snapshot whose random
/// generator state repeats still feeds different inputs into BIP327's
/// NonceGen (defence in depth: the random draw itself comes from the OS).
pub(crate) fn nonce_extra_input(session_id: &SessionId) -> [u8; 32] {
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
    let mut bytes = [0u8; 72];
    bytes[..32].copy_from_slice(session_id);
    bytes[32..64].copy_from_slice(salt);
    bytes[64..].copy_from_slice(&count.to_be_bytes());
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
    secnonce: Option<SecretNonce>,
    context: Option<SessionContext<Lotus>>,
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
    /// When the session was opened here.
    pub started_at: Millis,
    /// When it completed here.
    pub completed_at: Option<Millis>,
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
            secnonce: None,
            context: None,
            final_signature: None,
            election_method,
            options,
            elected: None,
            failover: None,
            next_sequence: vec![0; n],
            progressed_at: now,
            started_at: now,
            completed_at: None,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
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

    /// The signers whose contribution to the current phase is missing.
    pub fn missing(&self) -> Vec<usize> {
        let have: Vec<bool> = match self.phase {
            SessionPhase::Init | SessionPhase::SigningRequest => self.joined.clone(),
            SessionPhase::SessionReady | SessionPhase::NonceCommit if self.commitments_enabled => {
                self.commitments.iter().map(Option::is_some).collect()
            }
            SessionPhase::SessionReady
            | SessionPhase::NonceCommit
            | SessionPhase::NonceExchange => self.nonces.iter().map(Option::is_some).collect(),
            SessionPhase::PartialSigExchange => self.psigs.iter().map(Option::is_some).collect(),
            SessionPhase::Complete | SessionPhase::Closed => vec![true; self.len()],
        };
        have.iter()
            .enumerate()
            .filter(|(_, h)| !**h)
            .map(|(i, _)| i)
            .collect()
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
        }
    }

    /// Our own join, to send to every other signer.
    pub fn my_join(&self) -> Body {
        let peer_id = self
            .peers
            .get(self.me)
            .copied()
            .flatten()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let pubkey = self.keypair.public_key();
        let digest = join_digest(&self.request_id, &pubkey, &peer_id);
        Body::SessionJoin {
            signer_index: self.me as u32,
            pubkey,
            peer_id,
            signature: schnorr::sign(self.keypair.secret_key(), &digest),
        }
    }

    fn progress(&mut self, now: Millis) {
        self.progressed_at = now;
    }

    /// Checks a signer's join without recording anything: the key is the
    /// one at `index`, the join names the authenticated sender `from_peer`,
    /// and the signature under that key verifies. A join that fails here was
    /// not sent by the signer it names, so it must not take any slot.
    pub fn verify_join(
        &self,
        index: usize,
        pubkey: &PublicKey,
        peer_id: &str,
        signature: &Signature,
        from_peer: &PeerId,
    ) -> Result<(), Fault> {
        let bad = |m: &str| Fault::blame(ErrorCode::InvalidContribution, index, m.to_string());
        if self.keys.get(index) != Some(pubkey) {
            return Err(bad("join names a key that is not at its index"));
        }
        if PeerId::from_str(peer_id).ok().as_ref() != Some(from_peer) {
            return Err(bad("join sent by another peer than the one it names"));
        }
        schnorr::verify(
            pubkey,
            &join_digest(&self.request_id, pubkey, peer_id),
            signature,
        )
        .map_err(|_| bad("join signature is invalid"))
    }

    /// A signer's join. `from_peer` is the authenticated sender.
    pub fn on_join(
        &mut self,
        index: usize,
        pubkey: &PublicKey,
        peer_id: &str,
        signature: &Signature,
        from_peer: &PeerId,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        self.verify_join(index, pubkey, peer_id, signature, from_peer)?;
        if let (Some(p), Some(j)) = (self.peers.get_mut(index), self.joined.get_mut(index)) {
            *p = Some(*from_peer);
            *j = true;
        }
        self.progress(now);
        Ok(self.check_ready())
    }

    /// Called after our own join too: the session is ready once everyone joined.
    pub fn check_ready(&mut self) -> Vec<Action> {
        if self.phase != SessionPhase::SigningRequest || self.joined.iter().any(|j| !j) {
            return Vec::new();
        }
        self.phase = SessionPhase::SessionReady;
        self.elected = if self.options.election {
            elect_coordinator(&self.keys, self.election_method)
                .ok()
                .map(|e| e.coordinator_index)
        } else {
            None
        };
        vec![
            Action::Emit(CoordinatorEvent::SessionCreated(self.session_id)),
            Action::Emit(CoordinatorEvent::SessionReady {
                request_id: self.request_id,
                session_id: self.session_id,
            }),
        ]
    }

    fn generate_nonce<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> PublicNonce {
        let agg_pk = self.key_agg.nonce_gen_agg_pk();
        let (secnonce, pubnonce) = nonce_gen(
            rng,
            self.keypair.public_key(),
            NonceGenInputs {
                secret_key: Some(self.keypair.secret_key()),
                aggregate_pubkey: Some(&agg_pk),
                message: Some(&self.announcement.message),
                extra_input: Some(&nonce_extra_input(&self.session_id)),
            },
        );
        self.secnonce = Some(secnonce);
        pubnonce
    }

    /// Phase 0: generate our nonce and publish only its commitment.
    pub fn publish_nonce_commitment<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now: Millis,
    ) -> Result<Vec<Action>, Misuse> {
        if !self.commitments_enabled {
            return Err(Misuse("nonce commitments are disabled".into()));
        }
        if self.phase != SessionPhase::SessionReady {
            return Err(Misuse(format!(
                "cannot commit to a nonce in phase {}",
                self.phase
            )));
        }
        let pubnonce = self.generate_nonce(rng);
        let commitment =
            NonceCommitment::commit(&self.session_id, &self.keypair.public_key(), &pubnonce);
        self.set(Slot::Nonce, self.me, SlotValue::Nonce(pubnonce));
        self.set(Slot::Commitment, self.me, SlotValue::Commitment(commitment));
        self.phase = SessionPhase::NonceCommit;
        self.progress(now);
        let mut actions = vec![Action::SendToAll(Body::NonceCommit {
            signer_index: self.me as u32,
            commitment,
        })];
        actions.extend(self.check_commitments_complete());
        Ok(actions)
    }

    fn check_commitments_complete(&mut self) -> Vec<Action> {
        if self.phase == SessionPhase::NonceCommit && self.commitments.iter().all(Option::is_some) {
            vec![Action::Emit(CoordinatorEvent::NonceCommitmentsComplete(
                self.session_id,
            ))]
        } else {
            Vec::new()
        }
    }

    pub fn on_commitment(
        &mut self,
        index: usize,
        commitment: NonceCommitment,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        if self.commitments.get(index).is_some_and(Option::is_some) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "second nonce commitment",
            ));
        }
        self.set(Slot::Commitment, index, SlotValue::Commitment(commitment));
        self.progress(now);
        Ok(self.check_commitments_complete())
    }

    /// Round 1: reveal our nonce.
    pub fn start_round1<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now: Millis,
    ) -> Result<Vec<Action>, Misuse> {
        let pubnonce = if self.commitments_enabled {
            if self.phase != SessionPhase::NonceCommit
                || !self.commitments.iter().all(Option::is_some)
            {
                return Err(Misuse("round 1 needs every nonce commitment first".into()));
            }
            self.nonces
                .get(self.me)
                .copied()
                .flatten()
                .ok_or_else(|| Misuse("our nonce is missing".into()))?
        } else {
            if self.phase != SessionPhase::SessionReady {
                return Err(Misuse(format!(
                    "cannot start round 1 in phase {}",
                    self.phase
                )));
            }
            let nonce = self.generate_nonce(rng);
            self.set(Slot::Nonce, self.me, SlotValue::Nonce(nonce));
            nonce
        };
        self.phase = SessionPhase::NonceExchange;
        self.progress(now);
        let mut actions = vec![Action::SendToAll(Body::NonceShare {
            signer_index: self.me as u32,
            nonce: pubnonce,
        })];
        actions.extend(
            self.check_round1_complete()
                .map_err(|f| Misuse(f.message))?,
        );
        Ok(actions)
    }

    pub fn on_nonce(
        &mut self,
        index: usize,
        nonce: PublicNonce,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        if index == self.me {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "a peer sent our own nonce",
            ));
        }
        if self.context.is_some() || self.nonces.get(index).is_some_and(Option::is_some) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "second nonce",
            ));
        }
        if self.commitments_enabled {
            let signer = self.keys.get(index).copied();
            let commitment = self.commitments.get(index).copied().flatten();
            match (signer, commitment) {
                (Some(key), Some(c)) => {
                    c.verify(&self.session_id, &key, index, &nonce)
                        .map_err(|_| {
                            Fault::blame(
                                ErrorCode::NonceCommitmentMismatch,
                                index,
                                "nonce does not open its commitment",
                            )
                        })?
                }
                _ => {
                    return Err(Fault::blame(
                        ErrorCode::InvalidContribution,
                        index,
                        "nonce before its commitment",
                    ));
                }
            }
        }
        self.set(Slot::Nonce, index, SlotValue::Nonce(nonce));
        self.progress(now);
        self.check_round1_complete()
    }

    fn check_round1_complete(&mut self) -> Result<Vec<Action>, Fault> {
        if self.phase != SessionPhase::NonceExchange || self.context.is_some() {
            return Ok(Vec::new());
        }
        let Some(nonces) = self
            .nonces
            .iter()
            .copied()
            .collect::<Option<Vec<PublicNonce>>>()
        else {
            return Ok(Vec::new());
        };
        let context = SessionContext::new(
            &self.key_agg,
            &nonce_agg(&nonces),
            &self.announcement.message,
        )
        .map_err(|e| Fault {
            code: ErrorCode::AggregationFailed,
            signer: None,
            message: e.to_string(),
        })?;
        self.context = Some(context);
        Ok(vec![Action::Emit(CoordinatorEvent::Round1Complete(
            self.session_id,
        ))])
    }

    /// Round 2: sign (consuming our secret nonce) and send the partial signature.
    pub fn start_round2(&mut self, now: Millis) -> Result<Vec<Action>, Misuse> {
        if self.phase != SessionPhase::NonceExchange {
            return Err(Misuse(format!(
                "cannot start round 2 in phase {}",
                self.phase
            )));
        }
        let context = self
            .context
            .as_ref()
            .ok_or_else(|| Misuse("round 1 is not complete".into()))?;
        let secnonce = self
            .secnonce
            .take()
            .ok_or_else(|| Misuse("our secret nonce is gone".into()))?;
        let psig =
            sign(secnonce, &self.keypair, self.me, context).map_err(|e| Misuse(e.to_string()))?;
        self.set(Slot::Psig, self.me, SlotValue::Psig(psig));
        self.phase = SessionPhase::PartialSigExchange;
        self.progress(now);
        let mut actions = vec![Action::SendToAll(Body::PartialSigShare {
            signer_index: self.me as u32,
            partial_sig: psig,
        })];
        actions.extend(self.check_complete().map_err(|f| Misuse(f.message))?);
        Ok(actions)
    }

    /// A partial signature, verified on arrival.
    pub fn on_partial_sig(
        &mut self,
        index: usize,
        psig: PartialSignature,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        if index == self.me || self.psigs.get(index).is_some_and(Option::is_some) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "second partial signature",
            ));
        }
        let (Some(context), Some(Some(nonce))) = (&self.context, self.nonces.get(index)) else {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "partial signature before round 1",
            ));
        };
        partial_sig_verify(context, &psig, nonce, index).map_err(|_| {
            Fault::blame(
                ErrorCode::InvalidPartialSignature,
                index,
                format!("signer {index}: invalid partial signature"),
            )
        })?;
        self.set(Slot::Psig, index, SlotValue::Psig(psig));
        self.progress(now);
        self.check_complete()
    }

    fn check_complete(&mut self) -> Result<Vec<Action>, Fault> {
        if self.phase != SessionPhase::PartialSigExchange {
            return Ok(Vec::new());
        }
        let (Some(context), Some(psigs)) = (
            &self.context,
            self.psigs
                .iter()
                .copied()
                .collect::<Option<Vec<PartialSignature>>>(),
        ) else {
            return Ok(Vec::new());
        };
        let signature = partial_sig_agg(context, &psigs);
        musig2_core::verify(context, &signature).map_err(|_| Fault {
            code: ErrorCode::AggregationFailed,
            signer: None,
            message: "the aggregate signature does not verify".into(),
        })?;
        self.final_signature = Some(signature);
        self.phase = SessionPhase::Complete;
        let mut actions = vec![Action::Emit(CoordinatorEvent::SessionComplete {
            session_id: self.session_id,
            signature,
        })];
        if self.elected.is_some() {
            if self.options.failover {
                let priority = coordinator_priority_list(&self.keys, self.election_method);
                self.failover = Some(Failover::new(priority));
            }
            actions.extend(self.should_broadcast());
        }
        Ok(actions)
    }

    fn should_broadcast(&self) -> Vec<Action> {
        match self.coordinator_index() {
            Some(c) if c == self.me => vec![Action::Emit(CoordinatorEvent::ShouldBroadcast {
                session_id: self.session_id,
                coordinator_index: c,
            })],
            _ => Vec::new(),
        }
    }

    /// The application decided the current coordinator failed.
    pub fn coordinator_failed(&mut self) -> Result<Vec<Action>, Misuse> {
        let failover = self.failover.as_mut().ok_or_else(|| {
            Misuse("no failover: the session is not complete, or failover is disabled".into())
        })?;
        Ok(match failover.coordinator_failed() {
            FailoverStep::Next {
                attempt,
                coordinator,
            } => {
                info!(session = %hex::encode(self.session_id), attempt, coordinator, "coordinator failover");
                let mut actions = vec![Action::Emit(CoordinatorEvent::CoordinatorFailed {
                    session_id: self.session_id,
                    attempt,
                })];
                actions.extend(self.should_broadcast());
                actions
            }
            FailoverStep::Exhausted { attempts } => {
                vec![Action::Emit(CoordinatorEvent::FailoverExhausted {
                    session_id: self.session_id,
                    attempts,
                })]
            }
            _ => Vec::new(),
        })
    }

    /// We broadcast: tell everyone and stop failover.
    pub fn broadcast_complete(&mut self) -> Result<Vec<Action>, Misuse> {
        let signature = self
            .final_signature
            .ok_or_else(|| Misuse("the session is not complete".into()))?;
        if let Some(f) = self.failover.as_mut() {
            f.broadcast_confirmed();
        }
        Ok(vec![
            Action::SendToAll(Body::SignatureFinalized { signature }),
            Action::Emit(CoordinatorEvent::BroadcastConfirmed(self.session_id)),
        ])
    }

    /// The coordinator reports its broadcast.
    pub fn on_finalized(
        &mut self,
        index: usize,
        signature: &Signature,
    ) -> Result<Vec<Action>, Fault> {
        if self.final_signature.is_some_and(|s| s != *signature) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "finalized a different signature",
            ));
        }
        let already = self.failover.as_ref().is_some_and(Failover::is_confirmed);
        if let Some(f) = self.failover.as_mut() {
            f.broadcast_confirmed();
        }
        Ok(if already {
            Vec::new()
        } else {
            vec![Action::Emit(CoordinatorEvent::BroadcastConfirmed(
                self.session_id,
            ))]
        })
    }

    /// The sighash type of the final signature: explicit metadata wins,
    /// then Taproot → 0x61, P2PKH → 0x41, else none. Logged every time.
    pub fn sighash_type(&self) -> Option<u8> {
        let meta = &self.announcement.metadata;
        let (value, rule) = match (meta.sighash_type, meta.input_script_type) {
            (Some(explicit), _) => (Some(explicit), "explicit metadata.sighash_type"),
            (None, Some(InputScriptType::Taproot)) => {
                (Some(0x61), "taproot: SIGHASH_ALL|SIGHASH_LOTUS")
            }
            (None, Some(InputScriptType::PubKeyHash)) => {
                (Some(0x41), "pubkeyhash: SIGHASH_ALL|SIGHASH_FORKID")
            }
            (None, _) => (None, "no script type: none"),
        };
        info!(session = %hex::encode(self.session_id), sighash = ?value, rule, "sighash type assigned");
        value
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
#[allow(clippy::panic)]
mod tests {
    use super::*;
    use musig2_security::{SessionRequest, SigningMetadata};
    use rand::SeedableRng;

    /// I1: the same session driven twice with a generator that repeats its
    /// stream (a cloned process, a restored snapshot) still draws different
    /// nonces, because the extra input carries a per-process salt and a
    /// counter.
    #[test]
    fn a_repeated_random_stream_still_gives_fresh_nonces() {
        let (mut first, _) = sessions(false);
        let (mut second, _) = sessions(false);
        let (Some(a), Some(b)) = (first.get_mut(0), second.get_mut(0)) else {
            panic!("no session");
        };
        let n1 = a.generate_nonce(&mut rand::rngs::StdRng::seed_from_u64(5));
        let n2 = b.generate_nonce(&mut rand::rngs::StdRng::seed_from_u64(5));
        assert_ne!(n1, n2);
        let id = [7u8; 32];
        assert_ne!(nonce_extra_input(&id), nonce_extra_input(&id));
    }

    /// Three sessions, one per signer, wired together by hand.
    fn sessions(commitments: bool) -> (Vec<Session>, Vec<Keypair>) {
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let keypairs: Vec<Keypair> = (0..3).map(|_| Keypair::random(&mut rng)).collect();
        let mut keys: Vec<PublicKey> = keypairs.iter().map(Keypair::public_key).collect();
        keys.sort();
        let request = SessionRequest {
            signers: keys.clone(),
            message: [9u8; 32],
            creator_peer_id: peers[0].to_string(),
            creator_addrs: vec![],
            metadata: SigningMetadata::default(),
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: 0,
            expires_at: 1_000_000,
            request_nonce: [1u8; 32],
        };
        let creator = keypairs.iter().find(|k| k.public_key() == keys[0]).unwrap();
        let announcement = SessionAnnouncement::new_signed(request, creator).unwrap();
        let options = SessionOptions {
            commitments,
            election: true,
            failover: true,
        };
        let mut ordered = Vec::new();
        let mut out = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let kp = keypairs
                .iter()
                .find(|k| k.public_key() == *key)
                .unwrap()
                .clone();
            out.push(Session::new(announcement.clone(), kp.clone(), peers[i], options, 0).unwrap());
            ordered.push(kp);
        }
        // Everyone joins everyone.
        for i in 0..3 {
            let join = out[i].my_join();
            let Body::SessionJoin {
                pubkey,
                peer_id,
                signature,
                ..
            } = &join
            else {
                panic!("my_join is a SessionJoin")
            };
            for (j, s) in out.iter_mut().enumerate() {
                if i != j {
                    s.on_join(i, pubkey, peer_id, signature, &peers[i], 1)
                        .unwrap();
                }
            }
        }
        for s in &mut out {
            s.check_ready();
            assert_eq!(s.phase, SessionPhase::SessionReady);
        }
        (out, ordered)
    }

    fn sent(actions: &[Action]) -> Body {
        actions
            .iter()
            .find_map(|a| match a {
                Action::SendToAll(b) => Some(b.clone()),
                _ => None,
            })
            .unwrap()
    }

    /// Every signer publishes its nonce commitment and receives the others'.
    fn exchange_commitments(s: &mut [Session], rng: &mut rand::rngs::ThreadRng) {
        let commits: Vec<Body> = s
            .iter_mut()
            .map(|x| sent(&x.publish_nonce_commitment(rng, 2).unwrap()))
            .collect();
        for (i, c) in commits.iter().enumerate() {
            let Body::NonceCommit { commitment, .. } = c else {
                panic!("a commitment")
            };
            for (j, x) in s.iter_mut().enumerate() {
                if i != j {
                    x.on_commitment(i, *commitment, 3).unwrap();
                }
            }
        }
    }

    #[test]
    fn a_forged_partial_signature_is_blamed_on_its_signer() {
        let (mut s, _) = sessions(true);
        let mut rng = rand::rng();
        exchange_commitments(&mut s, &mut rng);
        let nonces: Vec<Body> = s
            .iter_mut()
            .map(|x| sent(&x.start_round1(&mut rng, 4).unwrap()))
            .collect();
        for (i, n) in nonces.iter().enumerate() {
            let Body::NonceShare { nonce, .. } = n else {
                panic!()
            };
            for (j, x) in s.iter_mut().enumerate() {
                if i != j {
                    x.on_nonce(i, *nonce, 5).unwrap();
                }
            }
        }
        let psigs: Vec<Body> = s
            .iter_mut()
            .map(|x| sent(&x.start_round2(6).unwrap()))
            .collect();
        let Body::PartialSigShare { partial_sig, .. } = &psigs[2] else {
            panic!()
        };
        let mut bytes = partial_sig.to_bytes();
        bytes[31] ^= 1;
        let forged = PartialSignature::from_bytes(&bytes).unwrap();
        let fault = s[0].on_partial_sig(2, forged, 7).unwrap_err();
        assert_eq!(
            (fault.code, fault.signer),
            (ErrorCode::InvalidPartialSignature, Some(2))
        );
        // The honest one completes signer 1's view once all are in.
        let Body::PartialSigShare {
            partial_sig: p0, ..
        } = &psigs[0]
        else {
            panic!()
        };
        let Body::PartialSigShare {
            partial_sig: p2, ..
        } = &psigs[2]
        else {
            panic!()
        };
        s[1].on_partial_sig(0, *p0, 8).unwrap();
        let actions = s[1].on_partial_sig(2, *p2, 8).unwrap();
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Emit(CoordinatorEvent::SessionComplete { .. })))
        );
        let sig = s[1].final_signature.unwrap();
        schnorr::verify(&s[1].aggregate_pubkey(), &[9u8; 32], &sig).unwrap();
    }

    #[test]
    fn a_nonce_that_breaks_its_commitment_is_blamed_on_its_signer() {
        let (mut s, _) = sessions(true);
        let mut rng = rand::rng();
        exchange_commitments(&mut s, &mut rng);
        // Signer 1 reveals a different nonce than it committed to.
        let Body::NonceShare { nonce: honest, .. } = sent(&s[0].start_round1(&mut rng, 4).unwrap())
        else {
            panic!()
        };
        let fault = s[2].on_nonce(1, honest, 5).unwrap_err();
        assert_eq!(
            (fault.code, fault.signer),
            (ErrorCode::NonceCommitmentMismatch, Some(1))
        );
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        let (mut s, _) = sessions(false);
        assert!(s[0].start_round2(1).is_err(), "round 2 before round 1");
        assert!(
            s[0].publish_nonce_commitment(&mut rand::rng(), 1).is_err(),
            "commitments are off"
        );
        assert!(
            s[0].coordinator_failed().is_err(),
            "failover before completion"
        );
        assert!(
            s[0].broadcast_complete().is_err(),
            "broadcast before completion"
        );
        // A second nonce from the same signer is refused.
        let Body::NonceShare { nonce, .. } = sent(&s[1].start_round1(&mut rand::rng(), 2).unwrap())
        else {
            panic!()
        };
        s[0].on_nonce(1, nonce, 3).unwrap();
        assert_eq!(s[0].on_nonce(1, nonce, 3).unwrap_err().signer, Some(1));
    }

    #[test]
    fn an_unknown_election_method_is_refused() {
        let (s, kps) = sessions(false);
        let mut announcement = s[0].announcement.clone();
        announcement.election_method = "random".into();
        let options = SessionOptions {
            commitments: false,
            election: true,
            failover: true,
        };
        assert!(Session::new(announcement, kps[0].clone(), PeerId::random(), options, 0).is_err());
    }
}
