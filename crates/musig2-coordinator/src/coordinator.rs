//! The coordinator: the public async API, and the task that feeds network
//! events through the security layer into the session state machines.
//!
//! Locking: one `std::sync::Mutex` for the sessions and one for the security
//! manager, never held across an `.await`. Messages to each co-signer go
//! through that co-signer's own bounded queue and task, so they leave in the
//! order they were produced (the receiver's replay protection needs strictly
//! increasing sequence numbers).

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use musig2_core::{Keypair, PublicKey, Signature};
use musig2_net::{
    Multiaddr, NetConfig, NetEvent, NetHandle, NodeKeypair, PeerEvent, PeerId, Verdict,
};
use musig2_security::{
    Admission, Clock, Delivery, DirectMessage, Millis, PeerId as SecPeer, SecurityManager,
    SenderRole, SessionAnnouncement, SessionId as SecSessionId, SessionPhase, SessionRequest,
    SignerAdvertisement, SigningMetadata, SystemClock, TransactionType,
};
use rand::RngCore;
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

use crate::CoordinatorError;
use crate::config::{CoordinatorConfig, JoinDecision};
use crate::events::{CoordinatorEvent, ErrorCode, RequestId, SessionId, SessionInfo};
use crate::session::{Action, Fault, Session, SessionOptions};
use crate::wire::{self, Body, WireMessage};

/// GossipSub topic of signing requests.
pub const REQUESTS_TOPIC: &str = "musig2:requests";
/// DHT key prefix of signed session announcements (by session id).
pub const SESSION_KEY_PREFIX: &str = "musig2-session:";
/// DHT key prefix of signed session announcements (by request id).
pub const REQUEST_KEY_PREFIX: &str = "musig2-request:";
/// DHT key prefix of signer advertisements (by hex public key).
pub const SIGNER_KEY_PREFIX: &str = "musig2-signer:";

const ORPHAN_CAPACITY: usize = 1024;
const OUTBOUND_CAPACITY: usize = 256;
const SEND_ATTEMPTS: u32 = 5;

/// The final signature with its sighash byte (`None` for non-standard uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalSignature {
    /// The 64-byte Lotus Schnorr signature.
    pub signature: Signature,
    /// The sighash type, auto-detected from the request's metadata.
    pub sighash_type: Option<u8>,
}

impl FinalSignature {
    /// The transaction encoding: 64 bytes, plus the sighash byte if set.
    pub fn to_tx_bytes(&self) -> Vec<u8> {
        let mut out = self.signature.to_bytes().to_vec();
        out.extend(self.sighash_type);
        out
    }
}

/// A running MuSig2 P2P node: network, security layer and sessions.
/// Cheap to clone; every clone drives the same node.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("peer_id", &self.inner.net.local_peer_id())
            .finish()
    }
}

struct Inner {
    net: NetHandle,
    peer_id: String,
    config: CoordinatorConfig,
    clock: Arc<dyn Clock + Send + Sync>,
    state: Mutex<State>,
    security: Mutex<SecurityManager>,
    events: broadcast::Sender<CoordinatorEvent>,
    /// Messages queued or being sent; `shutdown` waits for them.
    in_flight: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct State {
    sessions: HashMap<SessionId, Session>,
    requests: HashMap<RequestId, SessionId>,
    /// Verified requests naming one of our keys, not joined yet.
    pending: HashMap<RequestId, SessionAnnouncement>,
    /// Our signing keys.
    keys: Vec<Keypair>,
    /// Where each known signer key can be reached.
    directory: HashMap<PublicKey, PeerId>,
    /// Addresses learned from signed announcements and advertisements.
    peer_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    /// Messages for sessions we do not know yet (bounded, oldest dropped),
    /// each with its arrival time (its timestamp is judged as of then).
    orphans: VecDeque<(PeerId, WireMessage, usize, Millis)>,
    /// Messages admitted early, per session, replayed when the phase allows.
    buffered: HashMap<SessionId, Vec<(PeerId, usize, WireMessage)>>,
    /// One ordered outbound queue per co-signer key.
    outbound: HashMap<PublicKey, mpsc::Sender<Outgoing>>,
    /// When each peer disconnected (cleared on reconnect).
    disconnected: HashMap<PeerId, Millis>,
    /// (session, peer) pairs we already sent a `ValidationError`.
    validation_replied: std::collections::HashSet<(SessionId, PeerId)>,
    orphans_dropped: u64,
}

struct Outgoing {
    session_id: SessionId,
    bytes: Vec<u8>,
    peer_hint: Option<PeerId>,
}

/// Decodes a whole postcard value; trailing bytes are an error, as on the
/// direct-message path.
fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

fn sec_peer(peer: &PeerId) -> SecPeer {
    SecPeer::new(peer.to_string())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the data is still consistent
    // enough to keep serving (every update is a single assignment).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Coordinator {
    /// Starts the network and the coordinator task.
    pub async fn start(
        node_key: NodeKeypair,
        net_config: NetConfig,
        config: CoordinatorConfig,
    ) -> Result<Self, CoordinatorError> {
        Self::start_with_clock(node_key, net_config, config, Arc::new(SystemClock)).await
    }

    /// [`Coordinator::start`] with an injected clock.
    pub async fn start_with_clock(
        node_key: NodeKeypair,
        net_config: NetConfig,
        config: CoordinatorConfig,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Result<Self, CoordinatorError> {
        let (net, net_events) = musig2_net::start(node_key, net_config).await?;
        net.subscribe(REQUESTS_TOPIC).await?;
        for t in TransactionType::ALL {
            net.subscribe(t.topic()).await?;
        }
        let (events, _) = broadcast::channel(config.event_capacity.max(16));
        let security = SecurityManager::new(config.security.clone());
        let inner = Arc::new(Inner {
            peer_id: net.local_peer_id().to_string(),
            net,
            config,
            clock,
            state: Mutex::new(State::default()),
            security: Mutex::new(security),
            events,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        });
        tokio::spawn(run(Arc::downgrade(&inner), net_events));
        Ok(Self { inner })
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.inner.net.local_peer_id()
    }

    /// The addresses this node listens on.
    pub async fn multiaddrs(&self) -> Result<Vec<Multiaddr>, CoordinatorError> {
        Ok(self.inner.net.listen_addrs().await?)
    }

    /// Dials a peer.
    pub async fn connect_to(&self, addr: Multiaddr) -> Result<(), CoordinatorError> {
        Ok(self.inner.net.dial(addr).await?)
    }

    /// A new receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CoordinatorEvent> {
        self.inner.events.subscribe()
    }

    /// The network handle (for DHT bootstrap, peers, …).
    pub fn net(&self) -> &NetHandle {
        &self.inner.net
    }

    /// Runs `f` on the security manager (`getSecurityManager()`).
    pub fn with_security<R>(&self, f: impl FnOnce(&mut SecurityManager) -> R) -> R {
        f(&mut lock(&self.inner.security))
    }

    /// Registers a key this node signs with (needed to recognise requests for it).
    pub fn register_key(&self, keypair: &Keypair) {
        let mut state = lock(&self.inner.state);
        if !state
            .keys
            .iter()
            .any(|k| k.public_key() == keypair.public_key())
        {
            state.keys.push(keypair.clone());
        }
    }

    /// Registers `keypair` and advertises it: a signed [`SignerAdvertisement`]
    /// stored in the DHT under `musig2-signer:<key>` and published on the
    /// GossipSub topic of each transaction type.
    pub async fn advertise_signer(
        &self,
        keypair: &Keypair,
        transaction_types: Vec<TransactionType>,
        ttl: Duration,
    ) -> Result<SignerAdvertisement, CoordinatorError> {
        self.register_key(keypair);
        let now = self.inner.clock.now_ms();
        let addrs = self
            .multiaddrs()
            .await?
            .iter()
            .map(ToString::to_string)
            .collect();
        let ad = SignerAdvertisement::new_signed(
            keypair,
            self.inner.peer_id.clone(),
            addrs,
            transaction_types,
            now,
            now + ttl.as_millis() as Millis,
        );
        let bytes =
            postcard::to_allocvec(&ad).map_err(|e| CoordinatorError::Encoding(e.to_string()))?;
        let key = format!("{SIGNER_KEY_PREFIX}{}", keypair.public_key());
        self.inner
            .net
            .put_record(key.into_bytes(), bytes.clone())
            .await?;
        for topic in ad.topics() {
            // Best effort: with no subscriber yet, the DHT record still serves.
            if let Err(e) = self.inner.net.publish(topic, bytes.clone()).await {
                debug!(%topic, error = %e, "advertisement not gossiped");
            }
        }
        Ok(ad)
    }

    /// `announceSigningRequest`: creates, signs and announces a signing
    /// request for `required` keys (ours included). The announcement goes to
    /// the DHT, to GossipSub and directly to every co-signer (found through
    /// the DHT). The session starts once every key has joined.
    pub async fn announce_signing_request(
        &self,
        required: &[PublicKey],
        message: [u8; 32],
        keypair: &Keypair,
        metadata: SigningMetadata,
    ) -> Result<RequestId, CoordinatorError> {
        self.register_key(keypair);
        let now = self.inner.clock.now_ms();
        let mut request_nonce = [0u8; 32];
        rand::rng().fill_bytes(&mut request_nonce);
        let creator_addrs = self
            .multiaddrs()
            .await?
            .iter()
            .map(ToString::to_string)
            .collect();
        let request = SessionRequest {
            signers: required.to_vec(),
            message,
            creator_peer_id: self.inner.peer_id.clone(),
            creator_addrs,
            metadata,
            election_method: self.inner.config.election_method.to_string(),
            nonce_commitments: self.inner.config.enable_nonce_commitment,
            coordinator_election: self.inner.config.enable_coordinator_election,
            created_at: now,
            expires_at: now + self.inner.config.session_timeout.as_millis() as Millis,
            request_nonce,
        };
        let announcement = SessionAnnouncement::new_signed(request, keypair)
            .map_err(|v| CoordinatorError::InvalidRequest(v.to_string()))?;
        let request_id = announcement.request_id;
        let session_id = self.open(announcement.clone(), keypair, now)?;
        self.inner.emit(CoordinatorEvent::SigningRequestCreated {
            request_id,
            session_id,
        });

        let bytes = postcard::to_allocvec(&announcement)
            .map_err(|e| CoordinatorError::Encoding(e.to_string()))?;
        let net = &self.inner.net;
        for key in [
            format!("{SESSION_KEY_PREFIX}{}", hex::encode(session_id)),
            format!("{REQUEST_KEY_PREFIX}{}", hex::encode(request_id)),
        ] {
            net.put_record(key.into_bytes(), bytes.clone()).await?;
        }
        if let Err(e) = net.publish(REQUESTS_TOPIC, bytes).await {
            debug!(error = %e, "signing request not gossiped (no subscriber yet)");
        }
        let mut actions = vec![Action::SendToAll(Body::SigningRequest(Box::new(
            announcement,
        )))];
        // A one-signer request is ready at once.
        if let Some(session) = lock(&self.inner.state).sessions.get_mut(&session_id) {
            actions.extend(session.check_ready());
        }
        self.inner.apply(session_id, actions);
        Ok(request_id)
    }

    /// `createSession` (legacy): announces a request and returns its session id.
    pub async fn create_session(
        &self,
        signers: &[PublicKey],
        keypair: &Keypair,
        message: [u8; 32],
        metadata: SigningMetadata,
    ) -> Result<SessionId, CoordinatorError> {
        let request_id = self
            .announce_signing_request(signers, message, keypair, metadata)
            .await?;
        lock(&self.inner.state)
            .requests
            .get(&request_id)
            .copied()
            .ok_or(CoordinatorError::UnknownRequest)
    }

    /// `joinSigningRequest`: joins a received (or DHT-discoverable) request.
    pub async fn join_signing_request(
        &self,
        request_id: RequestId,
        keypair: &Keypair,
    ) -> Result<SessionId, CoordinatorError> {
        let known = lock(&self.inner.state).pending.get(&request_id).cloned();
        let announcement = match known {
            Some(a) => a,
            None => {
                let key = format!("{REQUEST_KEY_PREFIX}{}", hex::encode(request_id));
                self.inner.fetch_announcement(key).await?
            }
        };
        if announcement.request_id != request_id {
            return Err(CoordinatorError::UnknownRequest);
        }
        self.join(announcement, keypair)
    }

    /// `joinSession` (legacy): joins by session id, fetching the announcement
    /// from the DHT if it did not arrive otherwise.
    pub async fn join_session(
        &self,
        session_id: SessionId,
        keypair: &Keypair,
    ) -> Result<(), CoordinatorError> {
        let known = lock(&self.inner.state)
            .pending
            .values()
            .find(|a| a.session_id().to_bytes() == session_id)
            .cloned();
        let announcement = match known {
            Some(a) => a,
            None => {
                let key = format!("{SESSION_KEY_PREFIX}{}", hex::encode(session_id));
                self.inner.fetch_announcement(key).await?
            }
        };
        // The DHT does not authenticate keys: the record must be the session asked for.
        if announcement.session_id().to_bytes() != session_id {
            return Err(CoordinatorError::UnknownRequest);
        }
        self.join(announcement, keypair).map(|_| ())
    }

    fn join(
        &self,
        announcement: SessionAnnouncement,
        keypair: &Keypair,
    ) -> Result<SessionId, CoordinatorError> {
        self.register_key(keypair);
        let now = self.inner.clock.now_ms();
        let request_id = announcement.request_id;
        let session_id = self.open(announcement, keypair, now)?;
        lock(&self.inner.state).pending.remove(&request_id);
        let join = {
            let state = lock(&self.inner.state);
            state.sessions.get(&session_id).map(Session::my_join)
        };
        let mut actions: Vec<Action> = join.into_iter().map(Action::SendToAll).collect();
        if let Some(session) = lock(&self.inner.state).sessions.get_mut(&session_id) {
            actions.extend(session.check_ready());
        }
        self.inner.apply(session_id, actions);
        self.inner.replay_orphans(session_id);
        Ok(session_id)
    }

    fn open(
        &self,
        announcement: SessionAnnouncement,
        keypair: &Keypair,
        now: Millis,
    ) -> Result<SessionId, CoordinatorError> {
        let expires_at = announcement.expires_at;
        // Cheap check first: building the session aggregates every key.
        if lock(&self.inner.state)
            .sessions
            .contains_key(&announcement.session_id().to_bytes())
        {
            return Err(CoordinatorError::AlreadyJoined);
        }
        // The creator's choices bind every signer; failover is local (it has
        // no message).
        let options = SessionOptions {
            commitments: announcement.nonce_commitments,
            election: announcement.coordinator_election,
            failover: self.inner.config.enable_coordinator_failover,
        };
        let session = Session::new(
            announcement,
            keypair.clone(),
            self.inner.net.local_peer_id(),
            options,
            now,
        )
        .map_err(|m| CoordinatorError::InvalidRequest(m.0))?;
        let session_id = session.session_id;
        let mut state = lock(&self.inner.state);
        if state.sessions.contains_key(&session_id) {
            return Err(CoordinatorError::AlreadyJoined);
        }
        lock(&self.inner.security)
            .open_session_until(SecSessionId::from_bytes(session_id), now, expires_at)
            .map_err(|e| CoordinatorError::InvalidRequest(e.to_string()))?;
        // Every signer's key is a co-signer whose peer we may need.
        state.requests.insert(session.request_id, session_id);
        state.sessions.insert(session_id, session);
        Ok(session_id)
    }

    fn with_session<R>(
        &self,
        session_id: &SessionId,
        f: impl FnOnce(&mut Session, Millis) -> Result<R, crate::session::Misuse>,
    ) -> Result<R, CoordinatorError> {
        let now = self.inner.clock.now_ms();
        let mut state = lock(&self.inner.state);
        let session = state
            .sessions
            .get_mut(session_id)
            .ok_or(CoordinatorError::UnknownSession)?;
        f(session, now).map_err(|m| CoordinatorError::WrongState(m.0))
    }

    fn step(
        &self,
        session_id: SessionId,
        f: impl FnOnce(&mut Session, Millis) -> Result<Vec<Action>, crate::session::Misuse>,
    ) -> Result<(), CoordinatorError> {
        let actions = self.with_session(&session_id, f)?;
        self.inner.apply(session_id, actions);
        self.inner.drain_buffered(session_id);
        Ok(())
    }

    /// Whether the requests this node announces ask for nonce commitments
    /// (Phase 0). A session follows its announcement, whoever created it:
    /// see [`SessionInfo::nonce_commitments`].
    pub fn is_nonce_commitment_enabled(&self) -> bool {
        self.inner.config.enable_nonce_commitment
    }

    /// Phase 0: publish our nonce commitment.
    pub fn publish_nonce_commitments(&self, session_id: SessionId) -> Result<(), CoordinatorError> {
        self.step(session_id, |s, now| {
            s.publish_nonce_commitment(&mut rand::rng(), now)
        })
    }

    /// Round 1: reveal our nonce (after every commitment, if they are on).
    pub fn start_round1(&self, session_id: SessionId) -> Result<(), CoordinatorError> {
        self.step(session_id, |s, now| s.start_round1(&mut rand::rng(), now))
    }

    /// Round 2: sign and send our partial signature.
    pub fn start_round2(&self, session_id: SessionId) -> Result<(), CoordinatorError> {
        self.step(session_id, |s, now| s.start_round2(now))
    }

    /// `getFinalSignature`: the signature, with the sighash type detected from
    /// the request's metadata (participants cannot override it).
    pub fn get_final_signature(
        &self,
        session_id: SessionId,
    ) -> Result<FinalSignature, CoordinatorError> {
        self.with_session(&session_id, |s, _| match s.final_signature {
            Some(signature) => Ok(FinalSignature {
                signature,
                sighash_type: s.sighash_type(),
            }),
            None => Err(crate::session::Misuse("the session is not complete".into())),
        })
    }

    /// `getSession`.
    pub fn get_session(&self, session_id: SessionId) -> Option<SessionInfo> {
        lock(&self.inner.state)
            .sessions
            .get(&session_id)
            .map(Session::info)
    }

    /// The session a request became, if we joined it.
    pub fn get_session_by_request(&self, request_id: RequestId) -> Option<SessionId> {
        lock(&self.inner.state).requests.get(&request_id).copied()
    }

    /// `isCoordinator`: whether we are the current coordinator.
    pub fn is_coordinator(&self, session_id: SessionId) -> bool {
        lock(&self.inner.state)
            .sessions
            .get(&session_id)
            .is_some_and(|s| s.coordinator_index() == Some(s.me))
    }

    /// `notifyBroadcastComplete`: we broadcast; tell the others.
    pub fn notify_broadcast_complete(&self, session_id: SessionId) -> Result<(), CoordinatorError> {
        self.step(session_id, |s, _| s.broadcast_complete())
    }

    /// `triggerCoordinatorFailover`: the current coordinator failed; move on.
    pub fn trigger_coordinator_failover(
        &self,
        session_id: SessionId,
    ) -> Result<(), CoordinatorError> {
        self.step(session_id, |s, _| s.coordinator_failed())
    }

    /// `closeSession`: sends SESSION_ABORT to every co-signer and forgets the session.
    pub fn close_session(&self, session_id: SessionId) -> Result<(), CoordinatorError> {
        self.inner.apply(
            session_id,
            vec![Action::SendToAll(Body::SessionAbort {
                reason: "closed by the signer".into(),
            })],
        );
        if self.inner.remove(session_id) {
            Ok(())
        } else {
            Err(CoordinatorError::UnknownSession)
        }
    }

    /// `cleanupExpiredSessions`: closes expired and stuck sessions (caller-driven).
    pub fn cleanup_expired_sessions(&self) -> Vec<SessionId> {
        let now = self.inner.clock.now_ms();
        let stale = lock(&self.inner.security).stale_sessions(now);
        let ids: Vec<SessionId> = stale
            .expired
            .iter()
            .chain(stale.stuck.iter())
            .map(|s| s.to_bytes())
            .collect();
        for id in &ids {
            let done = lock(&self.inner.state)
                .sessions
                .get(id)
                .is_some_and(|s| s.phase == SessionPhase::Complete);
            if done {
                // A completed session is simply closed.
                self.inner.remove(*id);
            } else {
                self.inner.fault(
                    *id,
                    Fault {
                        code: ErrorCode::Expired,
                        signer: None,
                        message: "session expired or stuck".into(),
                    },
                );
            }
        }
        ids
    }

    /// Stops the network task.
    /// Stops the node after the messages already queued have been sent (or
    /// have failed), waiting at most 5 s: a node that leaves right after its
    /// own session completes must still deliver its partial signature to the
    /// co-signers that are waiting for it.
    pub async fn shutdown(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self
            .inner
            .in_flight
            .load(std::sync::atomic::Ordering::Acquire)
            > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.inner.net.shutdown().await;
    }
}

impl Inner {
    fn emit(&self, event: CoordinatorEvent) {
        // No receiver is fine; a slow one gets `Lagged`.
        let _ = self.events.send(event);
    }

    /// Carries out a session's actions.
    fn apply(self: &Arc<Self>, session_id: SessionId, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Emit(event) => {
                    self.on_own_event(session_id, &event);
                    self.emit(event);
                }
                Action::SendToAll(body) => self.send(session_id, None, body),
                Action::SendTo(index, body) => self.send(session_id, Some(index), body),
            }
        }
    }

    /// Queues `body` for one co-signer or all of them, in order.
    fn send(self: &Arc<Self>, session_id: SessionId, only: Option<usize>, body: Body) {
        let now = self.clock.now_ms();
        let mut state = lock(&self.state);
        let Some(session) = state.sessions.get_mut(&session_id) else {
            return;
        };
        let recipients: Vec<usize> = (0..session.len())
            .filter(|i| *i != session.me && only.is_none_or(|o| o == *i))
            .collect();
        // Each co-signer gets its own sequence numbers.
        let mut outgoing = Vec::with_capacity(recipients.len());
        for index in recipients {
            let message = WireMessage {
                session_id,
                sequence: session.next_sequence(index),
                sent_at: now,
                body: body.clone(),
            };
            let bytes = match wire::encode(&message) {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "cannot encode a message");
                    return;
                }
            };
            let key = session.keys.get(index).copied();
            let peer_hint = session.peers.get(index).copied().flatten();
            if let Some(key) = key {
                outgoing.push((
                    key,
                    Outgoing {
                        session_id,
                        bytes,
                        peer_hint,
                    },
                ));
            }
        }
        for (key, item) in outgoing {
            let queue = state
                .outbound
                .entry(key)
                .or_insert_with(|| spawn_outbound(Arc::downgrade(self), key))
                .clone();
            self.in_flight
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            if queue.try_send(item).is_err() {
                self.in_flight
                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                if matches!(body, Body::SessionAbort { .. }) {
                    // Best effort: a full queue drops the abort (never recurse into fault).
                    continue;
                }
                drop(state);
                self.fault(
                    session_id,
                    Fault {
                        code: ErrorCode::DeliveryFailed,
                        signer: None,
                        message: format!("outbound queue to {key} is full"),
                    },
                );
                return;
            }
        }
    }

    /// Bookkeeping on our own session milestones.
    fn on_own_event(&self, session_id: SessionId, event: &CoordinatorEvent) {
        let peers = || -> Vec<PeerId> {
            lock(&self.state)
                .sessions
                .get(&session_id)
                .map(|s| {
                    s.peers
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != s.me)
                        .filter_map(|(_, p)| *p)
                        .collect()
                })
                .unwrap_or_default()
        };
        match event {
            CoordinatorEvent::SessionReady { .. } => {
                // Co-signers' connections are session connections.
                let net = self.net.clone();
                let peers = peers();
                tokio::spawn(async move {
                    let _ = net.set_session_peers(peers, true).await;
                });
            }
            CoordinatorEvent::SessionComplete { .. } => {
                let now = self.clock.now_ms();
                let mut security = lock(&self.security);
                for peer in peers() {
                    security.record_session_completed(&sec_peer(&peer), now);
                }
            }
            _ => {}
        }
    }

    /// Finds the peer of a signer key: the directory, else the DHT.
    async fn resolve(self: &Arc<Self>, key: PublicKey) -> Result<PeerId, CoordinatorError> {
        let deadline = tokio::time::Instant::now() + self.config.discovery_timeout;
        let record = format!("{SIGNER_KEY_PREFIX}{key}").into_bytes();
        let mut wait = Duration::from_millis(25);
        loop {
            if let Some(peer) = lock(&self.state).directory.get(&key) {
                return Ok(*peer);
            }
            if let Ok(value) = self.net.get_record(record.clone()).await
                && let Some(peer) = self.accept_advertisement(&value, None).await
                && lock(&self.state).directory.get(&key) == Some(&peer)
            {
                return Ok(peer);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CoordinatorError::SignerNotFound(key.to_string()));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
    }

    /// Verifies a signer advertisement (from the DHT when `author` is `None`)
    /// and records where its key lives. Returns the advertised peer.
    async fn accept_advertisement(
        self: &Arc<Self>,
        bytes: &[u8],
        author: Option<PeerId>,
    ) -> Option<PeerId> {
        let ad: SignerAdvertisement = decode_exact(bytes)?;
        let peer = PeerId::from_str(&ad.peer_id).ok()?;
        let now = self.clock.now_ms();
        let (checked_peer, delivery) = match author {
            Some(a) => (a, Delivery::Gossip),
            None => (peer, Delivery::Dht),
        };
        let verdict = lock(&self.security).check_signer_advertisement(
            &sec_peer(&checked_peer),
            delivery,
            bytes.len(),
            &ad,
            now,
        );
        if let Err(rejection) = verdict {
            debug!(%rejection, "signer advertisement rejected");
            return None;
        }
        let addrs: Vec<Multiaddr> = ad
            .multiaddrs
            .iter()
            .filter_map(|a| Multiaddr::from_str(a).ok())
            .collect();
        let new = {
            let mut state = lock(&self.state);
            state.peer_addrs.insert(peer, addrs);
            state.directory.insert(ad.pubkey, peer) != Some(peer)
        };
        for addr in ad
            .multiaddrs
            .iter()
            .filter_map(|a| Multiaddr::from_str(a).ok())
        {
            let _ = self.net.add_address(peer, addr).await;
        }
        if new {
            let auto = self.config.enable_auto_connect
                && lock(&self.security).is_reputable(
                    &sec_peer(&peer),
                    self.config.min_reputation_auto_connect,
                    now,
                );
            if auto
                && peer != self.net.local_peer_id()
                && let Some(addr) = ad
                    .multiaddrs
                    .iter()
                    .find_map(|a| Multiaddr::from_str(a).ok())
            {
                let _ = self.net.dial(addr).await;
            }
            self.emit(CoordinatorEvent::SignerDiscovered(Box::new(ad)));
        }
        Some(peer)
    }

    async fn fetch_announcement(
        self: &Arc<Self>,
        key: String,
    ) -> Result<SessionAnnouncement, CoordinatorError> {
        let value = self
            .net
            .get_record(key.into_bytes())
            .await
            .map_err(|_| CoordinatorError::UnknownRequest)?;
        let now = self.clock.now_ms();
        let a: SessionAnnouncement =
            decode_exact(&value).ok_or(CoordinatorError::UnknownRequest)?;
        let peer = SecPeer::new(a.creator_peer_id.clone());
        lock(&self.security)
            .check_session_announcement(&peer, Delivery::Dht, value.len(), &a, now)
            .map_err(|r| CoordinatorError::InvalidRequest(r.to_string()))?;
        Ok(a)
    }

    /// A verified announcement that names one of our keys: remember it,
    /// tell the application, and join if the policy says so.
    fn on_announcement(self: &Arc<Self>, announcement: SessionAnnouncement) {
        let request_id = announcement.request_id;
        let ours = {
            let mut state = lock(&self.state);
            if state.requests.contains_key(&request_id) || state.pending.contains_key(&request_id) {
                return;
            }
            if let Ok(peer) = PeerId::from_str(&announcement.creator_peer_id) {
                state.directory.insert(announcement.creator_pubkey, peer);
            }
            let ours = state
                .keys
                .iter()
                .find(|k| announcement.required_pubkeys.contains(&k.public_key()))
                .cloned();
            if ours.is_some() {
                state.pending.insert(request_id, announcement.clone());
            }
            ours
        };
        let Some(keypair) = ours else { return };
        let addrs: Vec<Multiaddr> = announcement
            .creator_addrs
            .iter()
            .filter_map(|a| Multiaddr::from_str(a).ok())
            .collect();
        if let Ok(peer) = PeerId::from_str(&announcement.creator_peer_id) {
            // The outbound queue registers these before its first send.
            lock(&self.state).peer_addrs.insert(peer, addrs);
        }
        // Join first (if the policy agrees), then tell the application: the
        // event then means "received, and joined if the policy said so".
        if self.config.auto_join {
            match (self.config.join_policy)(&announcement) {
                JoinDecision::Join => {
                    let coordinator = Coordinator {
                        inner: Arc::clone(self),
                    };
                    if let Err(e) = coordinator.join(announcement.clone(), &keypair) {
                        warn!(error = %e, "automatic join failed");
                    }
                }
                JoinDecision::Refuse(reason) => {
                    info!(request = %hex::encode(request_id), %reason, "join refused by policy")
                }
            }
        }
        self.emit(CoordinatorEvent::SigningRequestReceived {
            announcement: Box::new(announcement),
        });
    }

    /// A direct message from an authenticated peer.
    fn on_direct(self: &Arc<Self>, peer: PeerId, payload: Vec<u8>) {
        let now = self.clock.now_ms();
        let size = payload.len();
        let message = match wire::decode(&payload) {
            Ok(m) => m,
            Err(e) => {
                let mut security = lock(&self.security);
                let _ = security.check_size(&sec_peer(&peer), Delivery::Direct, size, now);
                security.report_violation(
                    &sec_peer(&peer),
                    musig2_security::Violation::Malformed(
                        musig2_security::Malformation::Undecodable(e.to_string()),
                    ),
                    now,
                );
                return;
            }
        };
        if let Body::SigningRequest(announcement) = &message.body {
            let checked = lock(&self.security).check_session_announcement(
                &sec_peer(&peer),
                Delivery::Direct,
                size,
                announcement,
                now,
            );
            match checked {
                Ok(()) => self.on_announcement(*announcement.clone()),
                Err(rejection) => debug!(%rejection, "signing request rejected"),
            }
            return;
        }
        let known = lock(&self.state).sessions.contains_key(&message.session_id);
        if !known {
            // Blacklisted and oversized senders do not get to hold a slot.
            if lock(&self.security)
                .check_size(&sec_peer(&peer), Delivery::Direct, size, now)
                .is_err()
            {
                return;
            }
            let mut state = lock(&self.state);
            if state.orphans.len() >= ORPHAN_CAPACITY {
                state.orphans.pop_front();
                state.orphans_dropped += 1;
            }
            state.orphans.push_back((peer, message, size, now));
            return;
        }
        self.admit(peer, message, size);
    }

    /// Security checks, then processing or buffering.
    fn admit(self: &Arc<Self>, peer: PeerId, message: WireMessage, size: usize) {
        let now = self.clock.now_ms();
        let session_id = message.session_id;
        let (index, phase, role) = {
            let state = lock(&self.state);
            let Some(session) = state.sessions.get(&session_id) else {
                return;
            };
            let by_peer = session.peers.iter().position(|p| *p == Some(peer));
            let index = match (&message.body, by_peer) {
                (Body::SessionJoin { signer_index, .. }, _) => Some(*signer_index as usize),
                (_, found) => found,
            };
            let role = if index.is_some() && index == session.coordinator_index() {
                SenderRole::Coordinator
            } else {
                SenderRole::Participant
            };
            (index, session.phase, role)
        };
        let Some(index) = index else {
            lock(&self.security).report_violation(
                &sec_peer(&peer),
                musig2_security::Violation::Malformed(musig2_security::Malformation::Undecodable(
                    "sender is not a participant of the session".into(),
                )),
                now,
            );
            return;
        };
        let direct = DirectMessage {
            session_id: SecSessionId::from_bytes(session_id),
            kind: message.body.kind(),
            sequence: message.sequence,
            sent_at: message.sent_at,
            phase,
            sender_role: role,
            size,
        };
        let admission = lock(&self.security).check_direct_message(&sec_peer(&peer), &direct, now);
        if admission.is_ok() && message.body.claimed_index().is_some_and(|c| c != index) {
            // An authenticated participant that claims another signer's index.
            self.fault(
                session_id,
                Fault {
                    code: ErrorCode::InvalidContribution,
                    signer: Some(index),
                    message: "message claims another signer's index".into(),
                },
            );
            return;
        }
        match admission {
            Ok(Admission::Process) => self.process(peer, index, message),
            Ok(Admission::Buffer) => {
                lock(&self.state)
                    .buffered
                    .entry(session_id)
                    .or_default()
                    .push((peer, index, message));
            }
            Err(rejection) => {
                debug!(%rejection, "direct message rejected");
                // Tell the sender once per session, and never answer a
                // rejected error or abort (no ping-pong between two peers).
                let kind = message.body.kind();
                // Never answer an error or an abort (no ping-pong), nor a join:
                // its claimed index is not authenticated, so the reply could
                // go to an honest signer instead of the sender.
                let answerable = !matches!(
                    message.body,
                    Body::ValidationError { .. }
                        | Body::SessionAbort { .. }
                        | Body::SessionJoin { .. }
                );
                let first = answerable
                    && lock(&self.state)
                        .validation_replied
                        .insert((session_id, peer));
                if first {
                    let body = Body::ValidationError {
                        code: rejection.rule.to_string(),
                        detail: format!("{kind:?}: {rejection}"),
                    };
                    self.apply(session_id, vec![Action::SendTo(index, body)]);
                }
            }
        }
    }

    /// Hands an admitted message to its session.
    fn process(self: &Arc<Self>, peer: PeerId, index: usize, message: WireMessage) {
        let now = self.clock.now_ms();
        let session_id = message.session_id;
        let is_join = matches!(message.body, Body::SessionJoin { .. });
        let result = {
            let mut state = lock(&self.state);
            let Some(session) = state.sessions.get_mut(&session_id) else {
                return;
            };
            match message.body {
                Body::SessionJoin {
                    pubkey,
                    peer_id,
                    signature,
                    ..
                } => {
                    let r = session.on_join(index, &pubkey, &peer_id, &signature, &peer, now);
                    if r.is_ok() {
                        state.directory.insert(pubkey, peer);
                    }
                    r
                }
                Body::NonceCommit { commitment, .. } => {
                    session.on_commitment(index, commitment, now)
                }
                Body::NonceShare { nonce, .. } => session.on_nonce(index, nonce, now),
                Body::PartialSigShare { partial_sig, .. } => {
                    session.on_partial_sig(index, partial_sig, now)
                }
                Body::SignatureFinalized { signature } => session.on_finalized(index, &signature),
                Body::SessionAbort { reason } => Err(Fault {
                    code: ErrorCode::Aborted,
                    signer: Some(index),
                    message: format!("signer {index} aborted: {reason}"),
                }),
                Body::ValidationError { code, detail } => {
                    warn!(signer = index, %code, %detail, "a co-signer rejected one of our messages");
                    Ok(Vec::new())
                }
                Body::SigningRequest(_) => Ok(Vec::new()),
            }
        };
        match result {
            Ok(actions) => {
                let _ = lock(&self.security)
                    .record_session_progress(SecSessionId::from_bytes(session_id), now);
                self.apply(session_id, actions);
                self.drain_buffered(session_id);
            }
            Err(fault) if is_join => {
                // A join is not yet authenticated as coming from the signer
                // it names: a bad one is the sender's fault, not that
                // signer's, and must not end the session.
                lock(&self.security).report_violation(
                    &sec_peer(&peer),
                    musig2_security::Violation::Malformed(
                        musig2_security::Malformation::Undecodable(format!(
                            "invalid join: {}",
                            fault.message
                        )),
                    ),
                    now,
                );
            }
            Err(fault) => {
                let object = match fault.code {
                    ErrorCode::InvalidPartialSignature => {
                        Some(musig2_security::SignedObject::PartialSignature)
                    }
                    ErrorCode::NonceCommitmentMismatch => {
                        Some(musig2_security::SignedObject::NonceCommitment)
                    }
                    _ => None,
                };
                if let Some(object) = object {
                    lock(&self.security).record_invalid_signature(&sec_peer(&peer), object, now);
                }
                self.fault(session_id, fault);
            }
        }
    }

    /// Replays buffered messages whose phase has come.
    fn drain_buffered(self: &Arc<Self>, session_id: SessionId) {
        loop {
            let ready = {
                let mut state = lock(&self.state);
                let Some(phase) = state.sessions.get(&session_id).map(|s| s.phase) else {
                    return;
                };
                let Some(list) = state.buffered.get_mut(&session_id) else {
                    return;
                };
                let position = list.iter().position(|(_, _, m)| {
                    musig2_security::phase::check_phase(
                        m.body.kind(),
                        phase,
                        SenderRole::Coordinator,
                    ) == Ok(Admission::Process)
                });
                match position {
                    Some(p) => list.remove(p),
                    None => return,
                }
            };
            let (peer, index, message) = ready;
            self.process(peer, index, message);
        }
    }

    fn replay_orphans(self: &Arc<Self>, session_id: SessionId) {
        let now = self.clock.now_ms();
        let mine: Vec<(PeerId, WireMessage, usize, Millis)> = {
            let mut state = lock(&self.state);
            let (mine, rest): (VecDeque<_>, VecDeque<_>) = state
                .orphans
                .drain(..)
                .partition(|(_, m, _, _)| m.session_id == session_id);
            state.orphans = rest;
            mine.into_iter().collect()
        };
        for (peer, mut message, size, arrived) in mine {
            // The message was timely when it arrived; judge its timestamp as of then.
            message.sent_at = message.sent_at.saturating_add(now.saturating_sub(arrived));
            self.admit(peer, message, size);
        }
    }

    /// Reports a failure and closes the session: the state is gone before the
    /// application hears `SessionError`, then `SessionClosed`.
    fn fault(self: &Arc<Self>, session_id: SessionId, fault: Fault) {
        warn!(session = %hex::encode(session_id), code = fault.code.as_str(), signer = ?fault.signer, message = %fault.message, "session failed");
        if fault.code != ErrorCode::Aborted {
            // Tell every co-signer, so nobody waits for us (best effort).
            let reason = format!("{}: {}", fault.code.as_str(), fault.message);
            self.apply(
                session_id,
                vec![Action::SendToAll(Body::SessionAbort { reason })],
            );
        }
        let removed = self.forget(session_id);
        self.emit(CoordinatorEvent::SessionError {
            session_id,
            code: fault.code,
            signer: fault.signer,
            message: fault.message,
        });
        if removed {
            self.emit(CoordinatorEvent::SessionClosed(session_id));
        }
    }

    /// Forgets a session and emits `SessionClosed`.
    fn remove(&self, session_id: SessionId) -> bool {
        let removed = self.forget(session_id);
        if removed {
            self.emit(CoordinatorEvent::SessionClosed(session_id));
        }
        removed
    }

    /// Forgets a session (its secret nonce is dropped, hence zeroized, here).
    fn forget(&self, session_id: SessionId) -> bool {
        let removed = {
            let mut state = lock(&self.state);
            state.buffered.remove(&session_id);
            state.validation_replied.retain(|(id, _)| *id != session_id);
            let removed = state.sessions.remove(&session_id);
            if let Some(s) = &removed {
                state.requests.remove(&s.request_id);
                // Its co-signers count against the general limit again,
                // unless another live session still uses them.
                let in_use: std::collections::HashSet<&PeerId> = state
                    .sessions
                    .values()
                    .flat_map(|o| o.peers.iter().flatten())
                    .collect();
                let peers: Vec<PeerId> = s
                    .peers
                    .iter()
                    .flatten()
                    .filter(|p| !in_use.contains(p))
                    .copied()
                    .collect();
                let net = self.net.clone();
                tokio::spawn(async move {
                    let _ = net.set_session_peers(peers, false).await;
                });
            }
            removed.is_some()
        };
        lock(&self.security).close_session(&SecSessionId::from_bytes(session_id));
        removed
    }

    /// Timeouts: participants gone too long, rounds waiting too long.
    fn sweep(self: &Arc<Self>) {
        let now = self.clock.now_ms();
        let grace = self.config.disconnect_grace.as_millis() as Millis;
        let round = self.config.round_timeout.as_millis() as Millis;
        let mut faults = Vec::new();
        {
            let state = lock(&self.state);
            for (id, session) in state.sessions.iter().filter(|(_, s)| !s.is_done()) {
                let gone = session.peers.iter().enumerate().find(|(i, p)| {
                    *i != session.me
                        && p.and_then(|p| state.disconnected.get(&p))
                            // Only a disconnection during this session counts.
                            .is_some_and(|since| {
                                *since >= session.started_at && now.saturating_sub(*since) >= grace
                            })
                });
                if let Some((i, _)) = gone {
                    faults.push((
                        *id,
                        Fault {
                            code: ErrorCode::ParticipantDisconnected,
                            signer: Some(i),
                            message: format!("signer {i} disconnected"),
                        },
                    ));
                } else if session.phase != SessionPhase::SigningRequest
                    && now.saturating_sub(session.progressed_at) >= round
                {
                    // Joining may take until the request expires (that is
                    // `cleanup_expired_sessions`' job); the rounds may not.
                    let missing = session.missing();
                    faults.push((
                        *id,
                        Fault {
                            code: ErrorCode::RoundTimeout,
                            signer: missing.first().copied(),
                            message: format!(
                                "phase {} timed out waiting for signers {missing:?}",
                                session.phase
                            ),
                        },
                    ));
                }
            }
        }
        for (id, fault) in faults {
            self.fault(id, fault);
        }
        let events = {
            let mut security = lock(&self.security);
            security.prune(now);
            security.drain_events()
        };
        for e in events {
            self.emit(CoordinatorEvent::Security(e));
        }
    }

    /// A gossip message; returns the verdict, or `None` when a task reports it.
    fn on_gossip(
        self: &Arc<Self>,
        message_id: musig2_net::MessageId,
        source: PeerId,
        author: Option<PeerId>,
        topic: String,
        data: Vec<u8>,
    ) -> Option<Verdict> {
        let now = self.clock.now_ms();
        let Some(author) = author else {
            return Some(Verdict::Reject);
        };
        if topic == REQUESTS_TOPIC {
            let Some(a) = decode_exact::<SessionAnnouncement>(&data) else {
                return Some(Verdict::Reject);
            };
            let checked = lock(&self.security).check_session_announcement(
                &sec_peer(&author),
                Delivery::Gossip,
                data.len(),
                &a,
                now,
            );
            return Some(match checked {
                Ok(()) => {
                    self.on_announcement(a);
                    Verdict::Accept
                }
                Err(_) => Verdict::Reject,
            });
        }
        if TransactionType::from_topic(&topic).is_some() {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let verdict = match this.accept_advertisement(&data, Some(author)).await {
                    Some(_) => Verdict::Accept,
                    None => Verdict::Reject,
                };
                let _ = this.net.report_verdict(message_id, source, verdict).await;
            });
            return None;
        }
        Some(Verdict::Ignore)
    }
}

/// The outbound queue of one co-signer: resolves its peer once, then sends
/// in order, retrying transient failures.
fn spawn_outbound(inner: std::sync::Weak<Inner>, key: PublicKey) -> mpsc::Sender<Outgoing> {
    let (tx, mut rx) = mpsc::channel::<Outgoing>(OUTBOUND_CAPACITY);
    tokio::spawn(async move {
        let mut registered: Option<PeerId> = None;
        while let Some(item) = rx.recv().await {
            let Some(inner) = inner.upgrade() else { return };
            let peer = match item.peer_hint {
                Some(p) => Ok(p),
                None => inner.resolve(key).await,
            };
            let result = match peer {
                Ok(peer) => {
                    // Tell the swarm where the peer is before the first send
                    // (in this task, so it cannot race the send).
                    if registered != Some(peer) {
                        let addrs = lock(&inner.state)
                            .peer_addrs
                            .get(&peer)
                            .cloned()
                            .unwrap_or_default();
                        for addr in addrs {
                            let _ = inner.net.add_address(peer, addr).await;
                        }
                        registered = Some(peer);
                    }
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        match inner.net.send(peer, item.bytes.clone()).await {
                            Ok(()) => break Ok(()),
                            Err(e) if attempt >= SEND_ATTEMPTS => break Err(e.to_string()),
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt)))
                                    .await
                            }
                        }
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            inner
                .in_flight
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            if let Err(detail) = result {
                // Only a live session fails (an abort that cannot be delivered
                // after the session ended is not a second error).
                let live = lock(&inner.state)
                    .sessions
                    .get(&item.session_id)
                    .map(|s| s.keys.iter().position(|k| *k == key));
                if let Some(index) = live {
                    inner.fault(
                        item.session_id,
                        Fault {
                            code: ErrorCode::DeliveryFailed,
                            signer: index,
                            message: match index {
                                Some(i) => format!("cannot reach signer {i} ({key}): {detail}"),
                                None => format!("cannot reach signer {key}: {detail}"),
                            },
                        },
                    );
                }
            }
        }
    });
    tx
}

/// The coordinator task: network events in, sweeps on a timer.
async fn run(inner: std::sync::Weak<Inner>, mut events: mpsc::Receiver<NetEvent>) {
    let interval = match inner.upgrade() {
        Some(i) => i.config.sweep_interval,
        None => return,
    };
    let mut sweep = tokio::time::interval(interval);
    loop {
        tokio::select! {
            event = events.recv() => {
                let (Some(event), Some(inner)) = (event, inner.upgrade()) else { return };
                handle_net_event(&inner, event).await;
            }
            _ = sweep.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                inner.sweep();
            }
        }
    }
}

async fn handle_net_event(inner: &Arc<Inner>, event: NetEvent) {
    let now = inner.clock.now_ms();
    match event {
        NetEvent::Direct { peer, payload } => inner.on_direct(peer, payload),
        NetEvent::Gossip {
            message_id,
            propagation_source,
            author,
            topic,
            data,
        } => {
            if let Some(verdict) =
                inner.on_gossip(message_id.clone(), propagation_source, author, topic, data)
            {
                let _ = inner
                    .net
                    .report_verdict(message_id, propagation_source, verdict)
                    .await;
            }
        }
        NetEvent::Peer(event) => {
            match &event {
                PeerEvent::Connected(peer) => {
                    lock(&inner.state).disconnected.remove(peer);
                }
                PeerEvent::Disconnected(peer) => {
                    lock(&inner.state).disconnected.insert(*peer, now);
                }
                _ => {}
            }
            inner.emit(CoordinatorEvent::Peer(event));
        }
        _ => {}
    }
}
