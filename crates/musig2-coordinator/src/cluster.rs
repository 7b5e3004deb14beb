//! N real nodes in one process, each with its own swarm on its own 127.0.0.1
//! TCP port, plus one bootstrap node that is not a signer. Nodes are told only
//! the bootstrap node's address: co-signers find each other through the DHT.
//!
//! This is what `lotus-musig2 demo` runs, and what the integration tests use.
//! [`LocalCluster::sign`] drives a session the way an application does: it
//! reacts to each node's events by calling that node's API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use musig2_core::{Keypair, PublicKey};
use musig2_net::{NetConfig, NetHandle, NodeKeypair};
use musig2_security::{Clock, SigningMetadata, SystemClock, TransactionType};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::CoordinatorError;
use crate::config::CoordinatorConfig;
use crate::coordinator::{Coordinator, FinalSignature};
use crate::events::{CoordinatorEvent, SessionId};

/// One signer of the cluster.
#[derive(Debug)]
pub struct ClusterNode {
    /// Its coordinator.
    pub coordinator: Coordinator,
    /// Its signing key.
    pub keypair: Keypair,
    /// Its events, subscribed before anything happened.
    pub events: broadcast::Receiver<CoordinatorEvent>,
    /// Events received but not yet consumed by [`ClusterNode::wait_for`].
    backlog: Vec<CoordinatorEvent>,
}

impl ClusterNode {
    /// Waits for the first event `pick` accepts, in arrival order, keeping
    /// every other event for later calls. Fails on a `SessionError` that
    /// `pick` does not accept, a closed channel or the deadline.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&CoordinatorEvent) -> Option<T>,
    ) -> Result<T, CoordinatorError> {
        if let Some((i, found)) = self
            .backlog
            .iter()
            .enumerate()
            .find_map(|(i, e)| pick(e).map(|f| (i, f)))
        {
            self.backlog.remove(i);
            return Ok(found);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = next_event(&mut self.events, deadline).await?;
            if let Some(found) = pick(&event) {
                return Ok(found);
            }
            if let CoordinatorEvent::SessionError {
                code,
                signer,
                message,
                ..
            } = &event
            {
                return Err(CoordinatorError::WrongState(format!(
                    "{}: {message} (signer {signer:?})",
                    code.as_str()
                )));
            }
            self.backlog.push(event);
        }
    }
}

/// A bootstrap node and N signers on loopback.
#[derive(Debug)]
pub struct LocalCluster {
    /// The bootstrap node (DHT server, not a signer).
    pub bootstrap: NetHandle,
    /// The signers.
    pub nodes: Vec<ClusterNode>,
    /// How long each step may take before the run fails.
    pub step_timeout: Duration,
}

/// The phases [`LocalCluster::sign`] reports, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Announce, discovery through the DHT, every join.
    Announce,
    /// Phase 0 nonce commitments.
    Commitments,
    /// Round 1: nonces.
    Round1,
    /// Round 2: partial signatures and aggregation.
    Round2,
    /// Should-broadcast, broadcast, confirmation at every node.
    Broadcast,
}

impl Step {
    /// Its name in timings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Announce => "announce_join",
            Self::Commitments => "nonce_commitments",
            Self::Round1 => "round1",
            Self::Round2 => "round2",
            Self::Broadcast => "broadcast",
        }
    }
}

/// The result of a signing run.
#[derive(Debug, Clone)]
pub struct SigningOutcome {
    /// The session.
    pub session_id: SessionId,
    /// The aggregate key the signature verifies under.
    pub aggregate_pubkey: PublicKey,
    /// The final signature and sighash byte.
    pub signature: FinalSignature,
    /// The sorted index of the node that broadcast.
    pub broadcaster: usize,
    /// Time per step.
    pub timings: Vec<(Step, Duration)>,
}

impl LocalCluster {
    /// Starts the bootstrap node and `n` signers with fresh random keys, and
    /// has each signer advertise its key in the DHT.
    pub async fn start(n: usize, config: CoordinatorConfig) -> Result<Self, CoordinatorError> {
        let mut rng = rand::rng();
        let keys = (0..n).map(|_| Keypair::random(&mut rng)).collect();
        Self::start_with_keys(keys, config).await
    }

    /// [`LocalCluster::start`] with given signing keys.
    pub async fn start_with_keys(
        keys: Vec<Keypair>,
        config: CoordinatorConfig,
    ) -> Result<Self, CoordinatorError> {
        let nodes = keys.into_iter().map(|k| (k, config.clone())).collect();
        Self::start_with_configs(nodes).await
    }

    /// [`LocalCluster::start`] with every node on the injected `clock`
    /// (timeouts and expiry then move only when the test moves the clock).
    pub async fn start_with_clock(
        n: usize,
        config: CoordinatorConfig,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Result<Self, CoordinatorError> {
        let mut rng = rand::rng();
        let nodes = (0..n)
            .map(|_| (Keypair::random(&mut rng), config.clone()))
            .collect();
        Self::start_with_configs_and_clock(nodes, clock).await
    }

    /// [`LocalCluster::start`] with a signing key and a configuration per node.
    pub async fn start_with_configs(
        nodes_keys: Vec<(Keypair, CoordinatorConfig)>,
    ) -> Result<Self, CoordinatorError> {
        Self::start_with_configs_and_clock(nodes_keys, Arc::new(SystemClock)).await
    }

    /// [`LocalCluster::start_with_configs`] with every node on `clock`.
    pub async fn start_with_configs_and_clock(
        nodes_keys: Vec<(Keypair, CoordinatorConfig)>,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Result<Self, CoordinatorError> {
        Self::start_with_net(nodes_keys, clock, NetConfig::loopback()).await
    }

    /// [`LocalCluster::start_with_configs_and_clock`] with every signer's
    /// network configured from `net` (its bootstrap peers are replaced by
    /// the cluster's bootstrap node).
    pub async fn start_with_net(
        nodes_keys: Vec<(Keypair, CoordinatorConfig)>,
        clock: Arc<dyn Clock + Send + Sync>,
        net: NetConfig,
    ) -> Result<Self, CoordinatorError> {
        let template = net;
        let (bootstrap, mut bootstrap_events) =
            musig2_net::start(NodeKeypair::generate_ed25519(), NetConfig::loopback()).await?;
        // Keep the bootstrap node's queue drained: it serves the DHT only.
        tokio::spawn(async move { while bootstrap_events.recv().await.is_some() {} });
        let bootstrap_addrs = wait_for_addrs(&bootstrap).await?;
        let mut nodes = Vec::with_capacity(nodes_keys.len());
        for (keypair, config) in nodes_keys {
            let mut net = template.clone();
            net.bootstrap_peers = bootstrap_addrs.clone();
            let coordinator = Coordinator::start_with_clock(
                NodeKeypair::generate_ed25519(),
                net,
                config,
                Arc::clone(&clock),
            )
            .await?;
            let events = coordinator.subscribe();
            wait_for_addrs(coordinator.net()).await?;
            nodes.push(ClusterNode {
                coordinator,
                keypair,
                events,
                backlog: Vec::new(),
            });
        }
        // Every signer advertises its key (DHT record + gossip), concurrently.
        let adverts: Vec<_> = nodes
            .iter()
            .map(|node| {
                let (coordinator, keypair) = (node.coordinator.clone(), node.keypair.clone());
                tokio::spawn(async move {
                    coordinator
                        .advertise_signer(
                            &keypair,
                            vec![TransactionType::Spend],
                            Duration::from_secs(3600),
                        )
                        .await
                })
            })
            .collect();
        for advert in adverts {
            advert
                .await
                .map_err(|e| CoordinatorError::Config(format!("advertising task: {e}")))??;
        }
        Ok(Self {
            bootstrap,
            nodes,
            step_timeout: Duration::from_secs(60),
        })
    }

    /// Waits until every node's DHT is still (see [`settle`]): what the
    /// cluster's measurements should describe. Returns whether it settled.
    pub async fn settle(&self) -> bool {
        settle(&self.nodes).await
    }

    /// The signers' public keys, in node order.
    pub fn pubkeys(&self) -> Vec<PublicKey> {
        self.nodes.iter().map(|n| n.keypair.public_key()).collect()
    }

    /// Runs one complete signing: node 0 announces a request for every key,
    /// the others join (automatically, if the configuration says so; otherwise
    /// when they see the request), then commitments, round 1, round 2, and the
    /// elected coordinator broadcasts and confirms. `progress` is called after
    /// each step.
    pub async fn sign(
        &mut self,
        message: [u8; 32],
        metadata: SigningMetadata,
        mut progress: impl FnMut(Step, Duration),
    ) -> Result<SigningOutcome, CoordinatorError> {
        let (session_id, mut timings) = self
            .sign_until_complete(message, metadata, &mut progress)
            .await?;
        let timeout = self.step_timeout;
        let clock = Instant::now();
        // Exactly one node hears that it should broadcast.
        let mut broadcaster = None;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if node.coordinator.is_coordinator(session_id) {
                node.wait_for(timeout, |e| {
                    matches!(e, CoordinatorEvent::ShouldBroadcast { session_id: id, .. } if *id == session_id).then_some(())
                })
                .await?;
                node.coordinator.notify_broadcast_complete(session_id)?;
                broadcaster = Some(i);
            }
        }
        let broadcaster =
            broadcaster.ok_or(CoordinatorError::WrongState("no coordinator".into()))?;
        for node in self.nodes.iter_mut() {
            node.wait_for(timeout, |e| {
                matches!(e, CoordinatorEvent::BroadcastConfirmed { session_id: id, .. } if *id == session_id)
                    .then_some(())
            })
            .await?;
        }
        let took = clock.elapsed();
        progress(Step::Broadcast, took);
        timings.push((Step::Broadcast, took));

        let node = self
            .nodes
            .get(broadcaster)
            .ok_or(CoordinatorError::UnknownSession)?;
        let info = node
            .coordinator
            .get_session(session_id)
            .ok_or(CoordinatorError::UnknownSession)?;
        let signature = node.coordinator.get_final_signature(session_id)?;
        let broadcaster = info.my_index;
        Ok(SigningOutcome {
            session_id,
            aggregate_pubkey: info.aggregate_pubkey,
            signature,
            broadcaster,
            timings,
        })
    }

    /// [`LocalCluster::sign`] up to `SessionComplete` at every node: the
    /// elected coordinator has been told to broadcast but has not confirmed.
    pub async fn sign_until_complete(
        &mut self,
        message: [u8; 32],
        metadata: SigningMetadata,
        progress: &mut impl FnMut(Step, Duration),
    ) -> Result<(SessionId, Vec<(Step, Duration)>), CoordinatorError> {
        let keys = self.pubkeys();
        let timeout = self.step_timeout;
        let mut timings = Vec::new();
        let mut clock = Instant::now();
        let mut lap = |step: Step, timings: &mut Vec<(Step, Duration)>, clock: &mut Instant| {
            let elapsed = clock.elapsed();
            *clock = Instant::now();
            progress(step, elapsed);
            timings.push((step, elapsed));
        };

        let (first, rest) = self
            .nodes
            .split_first_mut()
            .ok_or(CoordinatorError::InvalidRequest("no signers".into()))?;
        first
            .coordinator
            .announce_signing_request(&keys, message, &first.keypair, metadata)
            .await?;
        for node in rest.iter_mut() {
            let request = node
                .wait_for(timeout, |e| match e {
                    CoordinatorEvent::SigningRequestReceived { announcement } => {
                        Some(announcement.request_id)
                    }
                    _ => None,
                })
                .await?;
            // With auto-join on, the node has joined already.
            match node
                .coordinator
                .join_signing_request(request, &node.keypair)
                .await
            {
                Ok(_) | Err(CoordinatorError::AlreadyJoined) => {}
                Err(e) => return Err(e),
            }
        }
        let mut session_id = None;
        for node in self.nodes.iter_mut() {
            let id = node
                .wait_for(timeout, |e| match e {
                    CoordinatorEvent::SessionReady { session_id, .. } => Some(*session_id),
                    _ => None,
                })
                .await?;
            session_id = Some(id);
        }
        let session_id = session_id.ok_or(CoordinatorError::UnknownSession)?;
        lap(Step::Announce, &mut timings, &mut clock);

        let commitments = self
            .nodes
            .first()
            .and_then(|n| n.coordinator.get_session(session_id))
            .is_some_and(|info| info.nonce_commitments);
        if commitments {
            for node in &self.nodes {
                node.coordinator.publish_nonce_commitments(session_id)?;
            }
            for node in self.nodes.iter_mut() {
                node.wait_for(timeout, |e| {
                    matches!(e, CoordinatorEvent::NonceCommitmentsComplete(id) if *id == session_id)
                        .then_some(())
                })
                .await?;
            }
            lap(Step::Commitments, &mut timings, &mut clock);
        }

        for node in &self.nodes {
            node.coordinator.start_round1(session_id)?;
        }
        for node in self.nodes.iter_mut() {
            node.wait_for(timeout, |e| {
                matches!(e, CoordinatorEvent::Round1Complete(id) if *id == session_id).then_some(())
            })
            .await?;
        }
        lap(Step::Round1, &mut timings, &mut clock);

        for node in &self.nodes {
            node.coordinator.start_round2(session_id)?;
        }
        let mut signatures = Vec::new();
        for node in self.nodes.iter_mut() {
            let sig = node
                .wait_for(timeout, |e| match e {
                    CoordinatorEvent::SessionComplete {
                        session_id: id,
                        signature,
                    } if *id == session_id => Some(*signature),
                    _ => None,
                })
                .await?;
            signatures.push(sig);
        }
        if signatures.windows(2).any(|w| w.first() != w.last()) {
            return Err(CoordinatorError::WrongState(
                "signers computed different signatures".into(),
            ));
        }
        lap(Step::Round2, &mut timings, &mut clock);
        Ok((session_id, timings))
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for node in &self.nodes {
            node.coordinator.shutdown().await;
        }
        self.bootstrap.shutdown().await;
    }
}

/// Spawns a task that runs `coordinator`'s side of every session as soon as
/// it can, as the CLI node does: the first round when the session is ready,
/// round 1 after the commitments, round 2 after round 1, and a broadcast
/// confirmation when told to broadcast. For co-signers of
/// [`Coordinator::sign_transaction`] in tests and examples; do not run it on
/// the node that calls `sign_transaction` (that call drives its own
/// sessions). Ends when the node's event channel closes; abort the handle to
/// stop it earlier.
pub fn drive_rounds(coordinator: Coordinator) -> tokio::task::JoinHandle<()> {
    let mut events = coordinator.subscribe();
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "round driver missed events");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let step = match event {
                CoordinatorEvent::SessionReady { session_id, .. } => {
                    let commitments = coordinator
                        .get_session(session_id)
                        .is_some_and(|info| info.nonce_commitments);
                    if commitments {
                        coordinator.publish_nonce_commitments(session_id)
                    } else {
                        coordinator.start_round1(session_id)
                    }
                }
                CoordinatorEvent::NonceCommitmentsComplete(id) => coordinator.start_round1(id),
                CoordinatorEvent::Round1Complete(id) => coordinator.start_round2(id),
                CoordinatorEvent::ShouldBroadcast { session_id, .. } => {
                    coordinator.notify_broadcast_complete(session_id)
                }
                _ => Ok(()),
            };
            if let Err(e) = step {
                tracing::debug!(error = %e, "round driver: step not taken");
            }
        }
    })
}

/// How long every node's DHT must have been still before the cluster counts
/// as up, and how long to wait for that at most.
const DHT_QUIET: Duration = Duration::from_millis(1000);
const SETTLE_MAX: Duration = Duration::from_secs(20);

/// Waits until no node's DHT routing table has gained a peer, nor a DHT
/// bootstrap progressed, for [`DHT_QUIET`] ([`SETTLE_MAX`] at most). Nodes
/// started together fill their routing tables together, and each new entry
/// schedules a bootstrap (libp2p-kad): measured on 50 nodes, signing during
/// that storm took 1.5 s instead of 0.25 s. A node that has run for a while
/// is quiet; this is the state the cluster's measurements describe.
async fn settle(nodes: &[ClusterNode]) -> bool {
    let deadline = Instant::now() + SETTLE_MAX;
    while Instant::now() < deadline {
        let mut quiet = true;
        for node in nodes {
            let still = node
                .coordinator
                .net()
                .metrics()
                .await
                .map_or(true, |m| m.dht_quiet_ms >= DHT_QUIET.as_millis() as u64);
            quiet &= still;
        }
        if quiet {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!("the cluster's DHT did not settle; measurements include its upkeep");
    false
}

async fn wait_for_addrs(net: &NetHandle) -> Result<Vec<musig2_net::Multiaddr>, CoordinatorError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let addrs = net.listen_addrs().await?;
        if !addrs.is_empty() {
            return Ok(addrs);
        }
        if Instant::now() > deadline {
            return Err(CoordinatorError::Config(
                "node did not start listening".into(),
            ));
        }
        tokio::task::yield_now().await;
    }
}

async fn next_event(
    events: &mut broadcast::Receiver<CoordinatorEvent>,
    deadline: tokio::time::Instant,
) -> Result<CoordinatorEvent, CoordinatorError> {
    match tokio::time::timeout_at(deadline, events.recv()).await {
        Err(_) => Err(CoordinatorError::WrongState(
            "timed out waiting for an event".into(),
        )),
        Ok(Err(RecvError::Closed)) => {
            Err(CoordinatorError::WrongState("event channel closed".into()))
        }
        Ok(Err(RecvError::Lagged(missed))) => Err(CoordinatorError::WrongState(format!(
            "missed {missed} events (receiver too slow)"
        ))),
        Ok(Ok(event)) => Ok(event),
    }
}
