//! One signer's view of one signing session: a synchronous state machine with
//! no I/O. Every input returns the actions to carry out (messages to send,
//! events to emit) or a [`Fault`] that names the culprit.

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
    /// What each signer signed (ours included): the evidence we can show.
    signed_commitments: Vec<Option<SignedContribution>>,
    signed_nonces: Vec<Option<SignedContribution>>,
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
    /// (one slot: the latest).
    pub early_finalization: Option<(usize, PeerId, crate::wire::WireMessage)>,
    /// Co-signers whose join was for another announcement under our id.
    pub other_announcement: Vec<usize>,
    secnonce: Option<SecretNonce>,
    /// Whether we drew a nonce in this session (so must never sign in it again).
    pub nonce_drawn: bool,
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
            signed_commitments: vec![None; n],
            signed_nonces: vec![None; n],
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
            started_at: now,
            completed_at: None,
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
        let (kind, missing) = self.missing_inner();
        (kind, missing)
    }

    fn missing_inner(&self) -> (Option<MessageKind>, Vec<usize>) {
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
        let digest = join_digest(
            &self.request_id,
            &self.announcement_digest,
            &pubkey,
            &peer_id,
        );
        Body::SessionJoin {
            signer_index: self.me as u32,
            pubkey,
            peer_id,
            announcement_digest: self.announcement_digest,
            signature: schnorr::sign(self.keypair.secret_key(), &digest),
        }
    }

    /// Signs one of our statements in this session.
    fn sign_statement(&self, statement: Statement) -> SignedContribution {
        SignedContribution::sign(
            self.session_id,
            self.me as u32,
            statement,
            self.keypair.secret_key(),
        )
    }

    /// A co-signer's statement, with its signature checked under its key; a
    /// bad signature on an authenticated co-signer's own message is its fault.
    fn signed_by(
        &self,
        index: usize,
        statement: Statement,
        signature: Signature,
    ) -> Result<SignedContribution, Fault> {
        let contribution = SignedContribution {
            session_id: self.session_id,
            signer_index: index as u32,
            statement,
            signature,
        };
        let key = self
            .keys
            .get(index)
            .ok_or_else(|| Fault::blame(ErrorCode::InvalidContribution, index, "no such signer"))?;
        contribution.verify(key).map_err(|_| {
            Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "a contribution whose signature does not verify",
            )
        })?;
        Ok(contribution)
    }

    /// What evidence about this session is checked against.
    pub fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            announcement: &self.announcement,
            session_id: self.session_id,
            keys: &self.keys,
            key_agg: &self.key_agg,
            commitments: self.commitments_enabled,
        }
    }

    /// Our signed abort carrying `report`.
    pub fn abort_body(&self, report: AbortReport) -> Body {
        let signature = self
            .sign_statement(Statement::Abort(report.digest()))
            .signature;
        Body::SessionAbort {
            report: Box::new(report),
            signature,
        }
    }

    /// Checks a co-signer's signed abort; the signed contribution it is.
    pub fn verify_abort(
        &self,
        index: usize,
        report: &AbortReport,
        signature: Signature,
    ) -> Result<SignedContribution, Fault> {
        self.signed_by(index, Statement::Abort(report.digest()), signature)
    }

    fn progress(&mut self, now: Millis) {
        self.progressed_at = now;
    }

    /// Checks a signer's join without recording anything: the key is the
    /// one at `index`, the join names the authenticated sender `from_peer`,
    /// and the signature under that key verifies. A join that fails here was
    /// not sent by the signer it names, so it must not take any slot.
    #[allow(clippy::too_many_arguments)]
    pub fn verify_join(
        &self,
        index: usize,
        pubkey: &PublicKey,
        peer_id: &str,
        announcement_digest: &[u8; 32],
        signature: &Signature,
        from_peer: &PeerId,
    ) -> Result<JoinCheck, Fault> {
        let bad = |m: &str| Fault::blame(ErrorCode::InvalidContribution, index, m.to_string());
        if self.keys.get(index) != Some(pubkey) {
            return Err(bad("join names a key that is not at its index"));
        }
        if PeerId::from_str(peer_id).ok().as_ref() != Some(from_peer) {
            return Err(bad("join sent by another peer than the one it names"));
        }
        schnorr::verify(
            pubkey,
            &join_digest(&self.request_id, announcement_digest, pubkey, peer_id),
            signature,
        )
        .map_err(|_| bad("join signature is invalid"))?;
        Ok(if *announcement_digest == self.announcement_digest {
            JoinCheck::Valid
        } else {
            JoinCheck::OtherAnnouncement
        })
    }

    /// A signer's join. `from_peer` is the authenticated sender.
    #[allow(clippy::too_many_arguments)]
    pub fn on_join(
        &mut self,
        index: usize,
        pubkey: &PublicKey,
        peer_id: &str,
        announcement_digest: &[u8; 32],
        signature: &Signature,
        from_peer: &PeerId,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        if self.verify_join(
            index,
            pubkey,
            peer_id,
            announcement_digest,
            signature,
            from_peer,
        )? == JoinCheck::OtherAnnouncement
        {
            // The joiner is who it says, but saw another announcement: show
            // it ours (it then holds the creator's two signatures) and wait
            // for the creator's proof; the joiner is not admitted.
            if !self.other_announcement.contains(&index) {
                self.other_announcement.push(index);
            }
            self.peers.get_mut(index).map(|p| p.replace(*from_peer));
            return Ok(vec![Action::SendTo(
                index,
                Body::SigningRequest(Box::new(self.announcement.clone())),
            )]);
        }
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
                extra_input: Some(&nonce_extra_input(
                    &self.session_id,
                    &self.announcement_digest,
                )),
            },
        );
        self.secnonce = Some(secnonce);
        self.nonce_drawn = true;
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
        let signed = self.sign_statement(Statement::NonceCommitment(commitment));
        self.store_signed(&signed);
        self.phase = SessionPhase::NonceCommit;
        self.progress(now);
        let mut actions = vec![Action::SendToAll(Body::NonceCommit {
            signer_index: self.me as u32,
            commitment,
            signature: signed.signature,
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
        signature: Signature,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        if self.commitments.get(index).is_some_and(Option::is_some) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "second nonce commitment",
            ));
        }
        let signed = self.signed_by(index, Statement::NonceCommitment(commitment), signature)?;
        self.store_signed(&signed);
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
        let signed = self.sign_statement(Statement::PublicNonce(pubnonce));
        self.store_signed(&signed);
        self.phase = SessionPhase::NonceExchange;
        self.progress(now);
        let mut actions = vec![Action::SendToAll(Body::NonceShare {
            signer_index: self.me as u32,
            nonce: pubnonce,
            signature: signed.signature,
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
        signature: Signature,
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
        let signed = self.signed_by(index, Statement::PublicNonce(nonce), signature)?;
        if self.commitments_enabled {
            let signer = self.keys.get(index).copied();
            let commitment = self.commitments.get(index).copied().flatten();
            let signed_commitment = self.signed_commitments.get(index).copied().flatten();
            match (signer, commitment, signed_commitment) {
                (Some(key), Some(c), Some(sc)) => c
                    .verify(&self.session_id, &key, index, &nonce)
                    .map_err(|_| {
                    Fault::proven(
                        ErrorCode::NonceCommitmentMismatch,
                        index,
                        "nonce does not open its commitment",
                        Evidence::CommitmentMismatch {
                            commitment: sc,
                            nonce: signed,
                        },
                    )
                })?,
                _ => {
                    return Err(Fault::blame(
                        ErrorCode::InvalidContribution,
                        index,
                        "nonce before its commitment",
                    ));
                }
            }
        }
        self.store_signed(&signed);
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
        .map_err(|e| Fault::nobody(ErrorCode::AggregationFailed, e.to_string()))?;
        let commitments: Option<Vec<NonceCommitment>> = if self.commitments_enabled {
            self.commitments.iter().copied().collect()
        } else {
            None
        };
        self.transcript = Some(musig2_core::evidence::transcript(
            &self.session_id,
            &self.announcement_digest,
            commitments.as_deref(),
            &nonces,
        ));
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
        let transcript = self
            .transcript
            .ok_or_else(|| Misuse("round 1 is not complete".into()))?;
        let psig =
            sign(secnonce, &self.keypair, self.me, context).map_err(|e| Misuse(e.to_string()))?;
        self.set(Slot::Psig, self.me, SlotValue::Psig(psig));
        let signed = self.sign_statement(Statement::PartialSignature {
            partial_sig: psig,
            transcript,
        });
        self.phase = SessionPhase::PartialSigExchange;
        self.progress(now);
        let mut actions = vec![Action::SendToAll(Body::PartialSigShare {
            signer_index: self.me as u32,
            partial_sig: psig,
            transcript,
            signature: signed.signature,
        })];
        actions.extend(self.check_complete().map_err(|f| Misuse(f.message))?);
        Ok(actions)
    }

    /// A partial signature, verified on arrival against our transcript. A
    /// partial signature over another view is not verified (its signer may
    /// be honest and shown other nonces): we send that signer our view, so
    /// that an equivocation shows, and the session waits for the proof.
    pub fn on_partial_sig(
        &mut self,
        index: usize,
        psig: PartialSignature,
        transcript: [u8; 32],
        signature: Signature,
        now: Millis,
    ) -> Result<Vec<Action>, Fault> {
        if index == self.me || self.psigs.get(index).is_some_and(Option::is_some) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "second partial signature",
            ));
        }
        let share = self.signed_by(
            index,
            Statement::PartialSignature {
                partial_sig: psig,
                transcript,
            },
            signature,
        )?;
        let (Some(context), Some(Some(nonce)), Some(ours)) =
            (&self.context, self.nonces.get(index), self.transcript)
        else {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "partial signature before round 1",
            ));
        };
        if transcript != ours {
            self.progress(now);
            if self.view_mismatch.contains(&index) {
                return Ok(Vec::new());
            }
            self.view_mismatch.push(index);
            info!(session = %hex::encode(self.session_id), signer = index, "round-2 transcripts differ; views exchanged");
            return Ok(vec![Action::SendTo(index, self.view_body())]);
        }
        if partial_sig_verify(context, &psig, nonce, index).is_err() {
            let evidence = Evidence::InvalidPartialSignature {
                share,
                commitments: self.signed_commitments.iter().flatten().copied().collect(),
                nonces: self.signed_nonces.iter().flatten().copied().collect(),
            };
            return Err(Fault::proven(
                ErrorCode::InvalidPartialSignature,
                index,
                format!("signer {index}: invalid partial signature"),
                evidence,
            ));
        }
        self.set(Slot::Psig, index, SlotValue::Psig(psig));
        self.progress(now);
        self.check_complete()
    }

    /// Our view: every signed commitment and nonce we hold, in signer order.
    fn view_body(&self) -> Body {
        Body::TranscriptView {
            contributions: self
                .signed_commitments
                .iter()
                .chain(self.signed_nonces.iter())
                .flatten()
                .copied()
                .collect(),
        }
    }

    /// A co-signer's view. A statement in it that conflicts with the one
    /// its signer sent us, both signed, proves that signer equivocated.
    /// Only a co-signer whose transcript differed from ours may send one,
    /// once, with at most one commitment and one nonce per signer; a
    /// statement equal to ours costs nothing, one that does not verify is
    /// ignored (it proves nothing about its claimed signer), and a view that
    /// shows no conflict changes nothing.
    pub fn on_view(
        &mut self,
        from: usize,
        contributions: &[SignedContribution],
    ) -> Result<Vec<Action>, Fault> {
        if !self.view_mismatch.contains(&from)
            || self.views_received.contains(&from)
            || contributions.len() > 2 * self.len()
        {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                from,
                "an unsolicited, repeated or oversized view",
            ));
        }
        self.views_received.push(from);
        for theirs in contributions {
            let index = theirs.signer_index as usize;
            let Some(key) = self.keys.get(index).copied() else {
                continue;
            };
            let ours = match theirs.statement {
                Statement::NonceCommitment(_) => self.signed_commitments.get(index),
                Statement::PublicNonce(_) => self.signed_nonces.get(index),
                _ => None,
            };
            let Some(Some(ours)) = ours.copied() else {
                continue;
            };
            if ours == *theirs {
                continue;
            }
            if let Some(proof) = EquivocationProof::new(key, ours, *theirs) {
                return Err(Fault::proven(
                    ErrorCode::Equivocation,
                    index,
                    format!(
                        "signer {index} sent different {} to different signers (shown by signer {from})",
                        match theirs.statement {
                            Statement::NonceCommitment(_) => "nonce commitments",
                            _ => "nonces",
                        }
                    ),
                    Evidence::Equivocation(proof),
                ));
            }
        }
        Ok(Vec::new())
    }

    /// Whether signer `index` is a backup after the current coordinator in
    /// the priority order: a node whose failover clock runs ahead of ours
    /// may already be that backup and report its broadcast.
    pub fn is_later_backup(&self, index: usize) -> bool {
        let (Some(current), Some(f)) = (self.coordinator_index(), self.failover.as_ref()) else {
            return false;
        };
        matches!(
            (f.priority_of(current), f.priority_of(index)),
            (Some(c), Some(i)) if i > c
        )
    }

    /// Another announcement under our session id arrived: if its creator
    /// signed it, the creator equivocated.
    pub fn on_other_announcement(&self, other: &SessionAnnouncement) -> Result<(), Fault> {
        let evidence = Evidence::AnnouncementEquivocation {
            first: Box::new(self.announcement.clone()),
            second: Box::new(other.clone()),
        };
        match evidence.verify(&self.facts()) {
            Ok(creator) => Err(Fault::proven(
                ErrorCode::Equivocation,
                creator,
                format!("the creator (signer {creator}) signed two announcements for this session"),
                evidence,
            )),
            Err(_) => Ok(()),
        }
    }

    fn store_signed(&mut self, signed: &SignedContribution) {
        let list = match signed.statement {
            Statement::NonceCommitment(_) => &mut self.signed_commitments,
            Statement::PublicNonce(_) => &mut self.signed_nonces,
            _ => return,
        };
        if let Some(slot) = list.get_mut(signed.signer_index as usize) {
            *slot = Some(*signed);
        }
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
        musig2_core::verify(context, &signature).map_err(|_| {
            Fault::nobody(
                ErrorCode::AggregationFailed,
                "the aggregate signature does not verify",
            )
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

    /// Deterministic failover: the coordinator of attempt `k` (1-based, in
    /// the election's priority order) has `timeout` from completion + (k−1)·
    /// `timeout` to confirm its broadcast; after that every node moves on to
    /// the next, with no message, so honest nodes agree on the current
    /// coordinator up to the spread of their completion times.
    pub fn failover_due(&mut self, now: Millis, timeout: Millis) -> Vec<Action> {
        let (Some(completed), Some(f)) = (self.completed_at, self.failover.as_ref()) else {
            return Vec::new();
        };
        if !f.is_active() || timeout == 0 {
            return Vec::new();
        }
        let due = 1 + (now.saturating_sub(completed) / timeout) as usize;
        let mut actions = Vec::new();
        while self
            .failover
            .as_ref()
            .is_some_and(|f| f.is_active() && f.attempt() < due)
        {
            match self.coordinator_failed() {
                Ok(more) => actions.extend(more),
                Err(_) => break,
            }
        }
        actions
    }

    /// We broadcast (`txid` if we know it): tell everyone, signed, and stop
    /// failover.
    pub fn broadcast_complete(&mut self, txid: Option<[u8; 32]>) -> Result<Vec<Action>, Misuse> {
        let signature = self
            .final_signature
            .ok_or_else(|| Misuse("the session is not complete".into()))?;
        if let Some(f) = self.failover.as_mut() {
            f.broadcast_confirmed();
        }
        let attestation = self
            .sign_statement(Statement::Finalized(finalized_digest(
                &signature,
                txid.as_ref(),
            )))
            .signature;
        Ok(vec![
            Action::SendToAll(Body::SignatureFinalized {
                signature,
                txid,
                attestation,
            }),
            Action::Emit(CoordinatorEvent::BroadcastConfirmed {
                session_id: self.session_id,
                basis: ConfirmationBasis::Local { txid },
            }),
        ])
    }

    /// Checks the coordinator's signed report of its broadcast: its
    /// attestation verifies under its key and it names our signature. A
    /// finalization of another signature, or one its coordinator did not
    /// sign, confirms nothing.
    pub fn verify_finalized(
        &self,
        index: usize,
        signature: &Signature,
        txid: Option<[u8; 32]>,
        attestation: Signature,
    ) -> Result<(), Fault> {
        self.signed_by(
            index,
            Statement::Finalized(finalized_digest(signature, txid.as_ref())),
            attestation,
        )?;
        if self.final_signature.is_some_and(|s| s != *signature) {
            return Err(Fault::blame(
                ErrorCode::InvalidContribution,
                index,
                "finalized a different signature",
            ));
        }
        Ok(())
    }

    /// The broadcast is confirmed on `basis`: failover stops, and
    /// `BroadcastConfirmed` is emitted once.
    pub fn confirm_broadcast(&mut self, basis: ConfirmationBasis) -> Vec<Action> {
        let already = self.failover.as_ref().is_some_and(Failover::is_confirmed);
        if let Some(f) = self.failover.as_mut() {
            f.broadcast_confirmed();
        }
        if already {
            Vec::new()
        } else {
            vec![Action::Emit(CoordinatorEvent::BroadcastConfirmed {
                session_id: self.session_id,
                basis,
            })]
        }
    }

    /// The coordinator reports its broadcast, signed, and its word is the
    /// basis (a node with a Chronik client checks the txid first instead).
    pub fn on_finalized(
        &mut self,
        index: usize,
        signature: &Signature,
        txid: Option<[u8; 32]>,
        attestation: Signature,
    ) -> Result<Vec<Action>, Fault> {
        self.verify_finalized(index, signature, txid, attestation)?;
        Ok(self.confirm_broadcast(ConfirmationBasis::CoordinatorWord {
            coordinator_index: index,
            txid,
        }))
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
        assert_ne!(
            nonce_extra_input(&id, &[1; 32]),
            nonce_extra_input(&id, &[1; 32])
        );
    }

    fn request(peer: &PeerId, keys: &[PublicKey]) -> SessionRequest {
        SessionRequest {
            signers: keys.to_vec(),
            message: [9u8; 32],
            creator_peer_id: peer.to_string(),
            creator_addrs: vec![],
            metadata: SigningMetadata::default(),
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: 0,
            expires_at: 1_000_000,
            request_nonce: [1u8; 32],
        }
    }

    /// Three sessions, one per signer (in sorted key order), wired together
    /// by hand; their keypairs and peers in the same order.
    fn sessions(commitments: bool) -> (Vec<Session>, Vec<Keypair>) {
        let (s, k, _) = sessions_with_peers(commitments);
        (s, k)
    }

    fn sessions_with_peers(commitments: bool) -> (Vec<Session>, Vec<Keypair>, Vec<PeerId>) {
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut keypairs: Vec<Keypair> = (0..3).map(|_| Keypair::random(&mut rng)).collect();
        keypairs.sort_by_key(Keypair::public_key);
        let keys: Vec<PublicKey> = keypairs.iter().map(Keypair::public_key).collect();
        let announcement =
            SessionAnnouncement::new_signed(request(&peers[0], &keys), &keypairs[0]).unwrap();
        let options = SessionOptions {
            commitments,
            election: true,
            failover: true,
        };
        let mut out: Vec<Session> = keypairs
            .iter()
            .zip(&peers)
            .map(|(kp, peer)| {
                Session::new(announcement.clone(), kp.clone(), *peer, options, 0).unwrap()
            })
            .collect();
        // Everyone joins everyone.
        for i in 0..3 {
            let join = out[i].my_join();
            for (j, s) in out.iter_mut().enumerate() {
                if i != j {
                    feed(s, i, &join, &peers[i]).unwrap();
                }
            }
        }
        for s in &mut out {
            s.check_ready();
            assert_eq!(s.phase, SessionPhase::SessionReady);
        }
        (out, keypairs, peers)
    }

    /// `body` from signer `from` (peer `peer`) reaches `s`.
    fn feed(
        s: &mut Session,
        from: usize,
        body: &Body,
        peer: &PeerId,
    ) -> Result<Vec<Action>, Fault> {
        match body.clone() {
            Body::SessionJoin {
                pubkey,
                peer_id,
                announcement_digest,
                signature,
                ..
            } => s.on_join(
                from,
                &pubkey,
                &peer_id,
                &announcement_digest,
                &signature,
                peer,
                1,
            ),
            Body::NonceCommit {
                commitment,
                signature,
                ..
            } => s.on_commitment(from, commitment, signature, 3),
            Body::NonceShare {
                nonce, signature, ..
            } => s.on_nonce(from, nonce, signature, 5),
            Body::PartialSigShare {
                partial_sig,
                transcript,
                signature,
                ..
            } => s.on_partial_sig(from, partial_sig, transcript, signature, 7),
            Body::TranscriptView { contributions } => s.on_view(from, &contributions),
            other => panic!("not fed in these tests: {other:?}"),
        }
    }

    fn sent(actions: &[Action]) -> Body {
        actions
            .iter()
            .find_map(|a| match a {
                Action::SendToAll(b) | Action::SendTo(_, b) => Some(b.clone()),
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
        exchange(s, &commits);
    }

    /// Every signer gets every other signer's `bodies[i]`.
    fn exchange(s: &mut [Session], bodies: &[Body]) {
        let peer = PeerId::random();
        for (i, b) in bodies.iter().enumerate() {
            for (j, x) in s.iter_mut().enumerate() {
                if i != j {
                    feed(x, i, b, &peer).unwrap();
                }
            }
        }
    }

    fn round1(s: &mut [Session], rng: &mut rand::rngs::ThreadRng) -> Vec<Body> {
        let nonces: Vec<Body> = s
            .iter_mut()
            .map(|x| sent(&x.start_round1(rng, 4).unwrap()))
            .collect();
        exchange(s, &nonces);
        nonces
    }

    #[test]
    fn a_forged_partial_signature_is_blamed_on_its_signer_with_proof() {
        let (mut s, kps) = sessions(true);
        let mut rng = rand::rng();
        exchange_commitments(&mut s, &mut rng);
        round1(&mut s, &mut rng);
        let psigs: Vec<Body> = s
            .iter_mut()
            .map(|x| sent(&x.start_round2(6).unwrap()))
            .collect();
        let Body::PartialSigShare {
            partial_sig,
            transcript,
            ..
        } = &psigs[2]
        else {
            panic!()
        };
        let mut bytes = partial_sig.to_bytes();
        bytes[31] ^= 1;
        let forged = PartialSignature::from_bytes(&bytes).unwrap();
        let statement = Statement::PartialSignature {
            partial_sig: forged,
            transcript: *transcript,
        };
        let signature =
            SignedContribution::sign(s[0].session_id, 2, statement, kps[2].secret_key()).signature;
        let fault = s[0]
            .on_partial_sig(2, forged, *transcript, signature, 7)
            .unwrap_err();
        assert_eq!(
            (fault.code, fault.signer),
            (ErrorCode::InvalidPartialSignature, Some(2))
        );
        // The proof checks out at another signer, and names signer 2.
        let evidence = fault.blame.evidence().unwrap();
        assert_eq!(evidence.verify(&s[1].facts()), Ok(2));
        // The same psig signed by someone else proves nothing.
        let mut forged_evidence = evidence.clone();
        if let Evidence::InvalidPartialSignature { share, .. } = &mut forged_evidence {
            share.signature =
                SignedContribution::sign(s[0].session_id, 2, statement, kps[1].secret_key())
                    .signature;
        }
        assert!(forged_evidence.verify(&s[1].facts()).is_err());
        // The honest one completes signer 1's view once all are in.
        let peer = PeerId::random();
        feed(&mut s[1], 0, &psigs[0], &peer).unwrap();
        let actions = feed(&mut s[1], 2, &psigs[2], &peer).unwrap();
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Emit(CoordinatorEvent::SessionComplete { .. })))
        );
        let sig = s[1].final_signature.unwrap();
        schnorr::verify(&s[1].aggregate_pubkey(), &[9u8; 32], &sig).unwrap();
    }

    #[test]
    fn a_nonce_that_breaks_its_commitment_is_blamed_on_its_signer_with_proof() {
        let (mut s, kps) = sessions(true);
        let mut rng = rand::rng();
        exchange_commitments(&mut s, &mut rng);
        // Signer 1 reveals, signed, a different nonce than it committed to.
        let (_, other) = nonce_gen(&mut rng, kps[1].public_key(), NonceGenInputs::default());
        let signature = SignedContribution::sign(
            s[2].session_id,
            1,
            Statement::PublicNonce(other),
            kps[1].secret_key(),
        )
        .signature;
        let fault = s[2].on_nonce(1, other, signature, 5).unwrap_err();
        assert_eq!(
            (fault.code, fault.signer),
            (ErrorCode::NonceCommitmentMismatch, Some(1))
        );
        assert_eq!(fault.blame.evidence().unwrap().verify(&s[0].facts()), Ok(1));
    }

    #[test]
    fn an_unsigned_contribution_is_refused_without_proof() {
        let (mut s, _) = sessions(false);
        let Body::NonceShare { nonce, .. } = sent(&s[1].start_round1(&mut rand::rng(), 2).unwrap())
        else {
            panic!()
        };
        let fault = s[0]
            .on_nonce(1, nonce, Signature::from_bytes(&[1; 64]), 3)
            .unwrap_err();
        assert_eq!(fault.signer, Some(1));
        assert!(!fault.blame.is_proof());
    }

    /// H5: signer 2 shows signers 0 and 1 different nonces. Their round-2
    /// transcripts differ, so neither verifies (nor blames) the other's
    /// partial signature; they exchange views, and each then holds signer
    /// 2's two signed nonces: a proof anyone can check.
    #[test]
    fn nonce_equivocation_is_proven_from_the_exchanged_views() {
        let (mut s, kps) = sessions(false);
        let mut rng = rand::rng();
        let n0 = sent(&s[0].start_round1(&mut rng, 4).unwrap());
        let n1 = sent(&s[1].start_round1(&mut rng, 4).unwrap());
        let honest2 = sent(&s[2].start_round1(&mut rng, 4).unwrap());
        let (_, twin) = nonce_gen(&mut rng, kps[2].public_key(), NonceGenInputs::default());
        let signature = SignedContribution::sign(
            s[0].session_id,
            2,
            Statement::PublicNonce(twin),
            kps[2].secret_key(),
        )
        .signature;
        let equivocal2 = Body::NonceShare {
            signer_index: 2,
            nonce: twin,
            signature,
        };
        let peer = PeerId::random();
        feed(&mut s[0], 1, &n1, &peer).unwrap();
        feed(&mut s[0], 2, &honest2, &peer).unwrap();
        feed(&mut s[1], 0, &n0, &peer).unwrap();
        feed(&mut s[1], 2, &equivocal2, &peer).unwrap();
        let p0 = sent(&s[0].start_round2(6).unwrap());
        let p1 = sent(&s[1].start_round2(6).unwrap());
        let view0 = sent(&feed(&mut s[0], 1, &p1, &peer).unwrap());
        let view1 = sent(&feed(&mut s[1], 0, &p0, &peer).unwrap());
        assert_eq!(s[0].view_mismatch, vec![1]);
        assert!(matches!(view0, Body::TranscriptView { .. }));
        for (me, theirs, from) in [(0usize, &view1, 1usize), (1, &view0, 0)] {
            let fault = feed(&mut s[me], from, theirs, &peer).unwrap_err();
            assert_eq!(
                (fault.code, fault.signer),
                (ErrorCode::Equivocation, Some(2))
            );
            let Some(Evidence::Equivocation(proof)) = fault.blame.evidence() else {
                panic!("no proof: {fault:?}")
            };
            // A third party checks it with musig2-core alone.
            assert_eq!(proof.verify(), Ok(()));
            assert_eq!(proof.signer, kps[2].public_key());
        }
    }

    #[test]
    fn a_join_for_another_announcement_is_answered_with_ours() {
        let (mut s, kps, peers) = sessions_with_peers(false);
        let mut other = s[0].announcement.clone();
        other.metadata.input_script_type = Some(InputScriptType::Taproot);
        let other = other.sign(&kps[0]);
        assert_eq!(other.session_id(), s[0].announcement.session_id());
        let theirs = Session::new(
            other.clone(),
            kps[1].clone(),
            peers[1],
            SessionOptions {
                commitments: false,
                election: true,
                failover: true,
            },
            0,
        )
        .unwrap();
        let join = theirs.my_join();
        let answer = feed(&mut s[2], 1, &join, &peers[1]).unwrap();
        assert!(matches!(
            answer.as_slice(),
            [Action::SendTo(1, Body::SigningRequest(a))] if **a == s[2].announcement
        ));
        assert_eq!(s[2].other_announcement, vec![1]);
        // The joiner, holding both, proves the creator equivocated.
        let fault = theirs
            .on_other_announcement(&s[2].announcement)
            .unwrap_err();
        assert_eq!(
            (fault.code, fault.signer),
            (ErrorCode::Equivocation, Some(0))
        );
        assert_eq!(fault.blame.evidence().unwrap().verify(&s[2].facts()), Ok(0));
        // The same announcement again proves nothing.
        assert!(
            s[2].on_other_announcement(&s[2].announcement.clone())
                .is_ok()
        );
    }

    #[test]
    fn failover_follows_the_clock_alone() {
        let (mut s, _) = sessions(false);
        let mut rng = rand::rng();
        round1(&mut s, &mut rng);
        let psigs: Vec<Body> = s
            .iter_mut()
            .map(|x| sent(&x.start_round2(6).unwrap()))
            .collect();
        exchange(&mut s, &psigs);
        for x in &mut s {
            x.completed_at = Some(1_000);
        }
        let first = s[0].coordinator_index();
        // Before the timeout nothing moves; after k timeouts every node is
        // at attempt k + 1, whenever and however often it looks.
        assert!(s[0].failover_due(1_000 + 299, 300).is_empty());
        s[0].failover_due(1_000 + 300, 300);
        s[1].failover_due(1_000 + 450, 300);
        s[2].failover_due(1_000 + 599, 300);
        let backups: Vec<Option<usize>> = s.iter().map(Session::coordinator_index).collect();
        assert!(backups.iter().all(|b| *b == backups[0]));
        assert_ne!(backups[0], first);
        assert_eq!(s[0].failover.as_ref().unwrap().attempt(), 2);
        s[0].failover_due(1_000 + 900, 300);
        assert_eq!(s[0].failover.as_ref().unwrap().attempt(), 3);
        // A confirmation stops it.
        s[1].broadcast_complete(None).unwrap();
        assert!(s[1].failover_due(1_000 + 10_000, 300).is_empty());
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
            s[0].broadcast_complete(None).is_err(),
            "broadcast before completion"
        );
        // A second nonce from the same signer is refused.
        let n = sent(&s[1].start_round1(&mut rand::rng(), 2).unwrap());
        let peer = PeerId::random();
        feed(&mut s[0], 1, &n, &peer).unwrap();
        assert_eq!(feed(&mut s[0], 1, &n, &peer).unwrap_err().signer, Some(1));
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
