//! The coordinator: the public async API, and the task that feeds network
//! events through the security layer into the session state machines.
//!
//! One job per module:
//!
//! * this file: the public API ([`Coordinator`]) and the task loop;
//! * `state`: the coordinator's state and the bounds on all of it;
//! * `inbound`: the pipeline decode → security → session for direct
//!   messages, and gossip;
//! * `outbound`: one ordered, bounded queue per co-signer, idle queues close;
//! * `discovery`: signer look-ups, advertisements and announcements;
//! * `lifecycle`: timeouts, expiry, completion, faults and forgetting.
//!
//! Locking: one `std::sync::Mutex` for the state and one for the security
//! manager, never held across an `.await`. **One lock order**: `state`, then
//! `security`; code that holds `security` never takes `state` (the test
//! `concurrent_announce_and_completion_never_deadlock` exercises it). Messages
//! to each co-signer go through that co-signer's own bounded queue and task,
//! so they leave in the order they were produced (the receiver's replay
//! protection needs strictly increasing sequence numbers).

mod accountability;
mod announce;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use accountability::judge_abort;
mod discovery;
mod identities;
mod inbound;
mod joining;
mod lifecycle;
mod outbound;
mod records;
mod state;
mod transactions;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use musig2_core::{Keypair, PublicKey, Signature};
use musig2_net::{Multiaddr, NetConfig, NetEvent, NetHandle, NodeKeypair, PeerEvent, PeerId};
use musig2_security::{
    Clock, Millis, PeerId as SecPeer, SecurityManager, SessionAnnouncement,
    SessionId as SecSessionId, SessionRequest, SignerAdvertisement, SigningMetadata, SystemClock,
    TransactionRequest, TransactionType,
};
use rand::RngCore;
use tokio::sync::{broadcast, mpsc};

use crate::CoordinatorError;
use crate::config::CoordinatorConfig;
use crate::events::{CoordinatorEvent, RequestId, SessionId, SessionInfo};
use crate::session::{Action, Session, SessionOptions};
use crate::wire::{AbortReport, Body};
use state::State;
pub use state::{CoordinatorCounters, StateSizes};
pub use transactions::{SignedTransaction, TransactionSigning};

/// GossipSub topic of signing requests.
pub const REQUESTS_TOPIC: &str = "musig2:requests";
/// DHT key prefix of signed session announcements (by session id).
pub const SESSION_KEY_PREFIX: &str = "musig2-session:";
/// DHT key prefix of signed session announcements (by request id).
pub const REQUEST_KEY_PREFIX: &str = "musig2-request:";
/// DHT key prefix of signer advertisements (by hex public key).
pub const SIGNER_KEY_PREFIX: &str = "musig2-signer:";

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
    /// Set while deferred joins are being resumed (never twice at once).
    resuming: std::sync::atomic::AtomicBool,
    /// Connection-limit exemptions, applied in the order they were decided.
    session_peers: mpsc::Sender<(Vec<PeerId>, bool)>,
}

/// Decodes a whole postcard value; trailing bytes are an error, as on the
/// direct-message path.
fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// The OS random generator, for every secret nonce (I1: never a userspace
/// generator whose state a cloned process or restored snapshot repeats).
fn os_rng() -> rand::rand_core::UnwrapErr<rand::rngs::OsRng> {
    use rand::TryRngCore;
    rand::rngs::OsRng.unwrap_err()
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
        // The DHT store takes only our records, each valid under its own key.
        let mut net_config = net_config;
        net_config.dht_key_prefixes = records::prefixes();
        net_config.dht_max_value_size = config.security.max_advertisement_size;
        // GossipSub scores peers on our topics: a peer whose messages we
        // `Reject` is graylisted and pruned by GossipSub itself.
        net_config.scored_topics = std::iter::once(REQUESTS_TOPIC.to_owned())
            .chain(TransactionType::ALL.iter().map(|t| t.topic().to_owned()))
            .collect();
        let record_clock = Arc::clone(&clock);
        net_config.record_validator = Some(musig2_net::RecordValidator::new(move |key, value| {
            records::is_valid(key, value, record_clock.now_ms())
        }));
        let (net, net_events) = musig2_net::start(node_key, net_config).await?;
        net.subscribe(REQUESTS_TOPIC).await?;
        for t in TransactionType::ALL {
            net.subscribe(t.topic()).await?;
        }
        let (events, _) = broadcast::channel(config.event_capacity.max(16));
        let security = SecurityManager::new(config.security.clone());
        let session_peers = outbound::spawn_session_peer_updates(net.clone());
        let mut state = State::with_capacity(config.security.max_concurrent_sessions);
        let now = clock.now_ms();
        for (id, expires_at) in &config.signed_sessions {
            if *expires_at > now {
                state.remember_signed(*id, *expires_at);
            }
        }
        let inner = Arc::new(Inner {
            peer_id: net.local_peer_id().to_string(),
            net,
            config,
            clock,
            state: Mutex::new(state),
            security: Mutex::new(security),
            events,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            resuming: std::sync::atomic::AtomicBool::new(false),
            session_peers,
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
        // A step that draws our nonce is recorded (durably, with
        // `signed_log`) before anything derived from the nonce leaves.
        let (actions, drawn) = self.with_session(&session_id, |s, now| {
            let before = s.nonce_drawn;
            let actions = f(s, now)?;
            Ok((
                actions,
                (!before && s.nonce_drawn).then_some(s.announcement.expires_at),
            ))
        })?;
        if let Some(expires_at) = drawn {
            lock(&self.inner.state).remember_signed(session_id, expires_at);
            if let Some(log) = &self.inner.config.signed_log
                && let Err(e) = log(session_id, expires_at)
            {
                self.inner.fault(
                    session_id,
                    crate::session::Fault::nobody(
                        crate::ErrorCode::Aborted,
                        format!("our nonce could not be recorded: {e}"),
                    ),
                );
                return Err(CoordinatorError::WrongState(format!(
                    "our nonce could not be recorded: {e}"
                )));
            }
        }
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
            s.publish_nonce_commitment(&mut os_rng(), now)
        })
    }

    /// Round 1: reveal our nonce (after every commitment, if they are on).
    pub fn start_round1(&self, session_id: SessionId) -> Result<(), CoordinatorError> {
        self.step(session_id, |s, now| s.start_round1(&mut os_rng(), now))
    }

    /// Round 2: sign and send our partial signature.
    pub fn start_round2(&self, session_id: SessionId) -> Result<(), CoordinatorError> {
        self.step(session_id, |s, now| s.start_round2(now))
    }

    /// `getFinalSignature`: the signature, with the sighash type detected from
    /// the request's metadata (participants cannot override it). Completed
    /// sessions stay in a bounded cache (`completed_capacity`) after their
    /// security slot is released, so this keeps working after completion.
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

    /// The coordinator's own drop counters (the security layer counts its
    /// rejections in [`SecurityManager::metrics`]).
    pub fn counters(&self) -> CoordinatorCounters {
        lock(&self.inner.state).counters()
    }

    /// How full each bounded collection is.
    pub fn state_sizes(&self) -> StateSizes {
        lock(&self.inner.state).sizes()
    }

    /// `getSession`.
    pub fn get_session(&self, session_id: SessionId) -> Option<SessionInfo> {
        lock(&self.inner.state)
            .sessions
            .get(&session_id)
            .map(|s| s.info())
    }

    /// The signed announcement a live session was opened from.
    pub fn get_announcement(&self, session_id: SessionId) -> Option<SessionAnnouncement> {
        lock(&self.inner.state)
            .sessions
            .get(&session_id)
            .map(|s| s.announcement.clone())
    }

    /// Whether a received request waits for its creator's turn to be
    /// joined automatically (its creator already has two sessions waiting
    /// for joins here): the join policy will be asked when its turn comes.
    pub fn is_join_deferred(&self, request_id: RequestId) -> bool {
        lock(&self.inner.state).deferred_joins.contains(&request_id)
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
        self.notify_broadcast(session_id, None)
    }

    /// `notifyBroadcastComplete` with the broadcast transaction's id, which
    /// the co-signers receive in the signed `SignatureFinalized` (and a node
    /// with a Chronik client can check).
    pub fn notify_broadcast(
        &self,
        session_id: SessionId,
        txid: Option<[u8; 32]>,
    ) -> Result<(), CoordinatorError> {
        self.step(session_id, |s, _| s.broadcast_complete(txid))
    }

    /// `triggerCoordinatorFailover`: the current coordinator failed; move on.
    pub fn trigger_coordinator_failover(
        &self,
        session_id: SessionId,
    ) -> Result<(), CoordinatorError> {
        self.step(session_id, |s, _| s.coordinator_failed())?;
        self.inner.replay_early_finalization(session_id);
        Ok(())
    }

    /// `closeSession`: sends SESSION_ABORT to every co-signer and forgets the session.
    pub fn close_session(&self, session_id: SessionId) -> Result<(), CoordinatorError> {
        let abort = lock(&self.inner.state).sessions.get(&session_id).map(|s| {
            s.abort_body(AbortReport {
                code: crate::ErrorCode::Aborted.as_str().to_owned(),
                culprits: Vec::new(),
                evidence: None,
                reason: "closed by the signer".into(),
                relayed: None,
            })
        });
        if let Some(body) = abort {
            self.inner.apply(session_id, vec![Action::SendToAll(body)]);
        }
        if self.inner.remove(session_id) {
            Ok(())
        } else {
            Err(CoordinatorError::UnknownSession)
        }
    }

    /// `cleanupExpiredSessions`: closes expired and stuck sessions now. The
    /// node also does this on every sweep, so calling it is optional.
    pub fn cleanup_expired_sessions(&self) -> Vec<SessionId> {
        self.inner.cleanup_expired()
    }

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
                    let complete = matches!(event, CoordinatorEvent::SessionComplete { .. });
                    let ready = matches!(event, CoordinatorEvent::SessionReady { .. });
                    self.emit(event);
                    if ready {
                        // A creator's session stopped waiting for joins:
                        // its next deferred request may be joined.
                        self.resume_deferred_joins();
                    }
                    if complete {
                        let late = std::mem::take(&mut lock(&self.state).late_finalizations);
                        for (peer, message) in late {
                            self.on_late(peer, message);
                        }
                    }
                }
                Action::SendToAll(body) => self.send(session_id, None, body),
                Action::SendTo(index, body) => self.send(session_id, Some(index), body),
            }
        }
    }
}

/// How long announcing a request waits for each DHT put.
const DHT_PUT_WAIT: Duration = Duration::from_secs(2);

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
                    let in_session = {
                        let mut state = lock(&inner.state);
                        state.disconnected.insert(*peer, now);
                        state
                            .sessions
                            .values()
                            .any(|s| !s.is_done() && s.peers.contains(&Some(*peer)))
                    };
                    // An idle connection closes on its own during a long join
                    // phase (L5): dial a live session's peer straight back,
                    // so that only a peer that is really gone is blamed after
                    // the grace period.
                    if in_session {
                        let net = inner.net.clone();
                        let peer = *peer;
                        tokio::spawn(async move {
                            let _ = net.dial_peer(peer).await;
                        });
                    }
                }
                _ => {}
            }
            inner.emit(CoordinatorEvent::Peer(event));
        }
        _ => {}
    }
}
