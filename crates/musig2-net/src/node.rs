//! The composed behaviour, the swarm's event loop (its own task), and the
//! cloneable [`NetHandle`] the rest of the program uses to talk to it.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::kad::store::MemoryStore;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, dcutr, gossipsub, identify, identity, kad,
    noise, ping, relay, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::NetError;
use crate::codec::{DIRECT_PROTOCOL, FrameCodec};
use crate::config::NetConfig;
use crate::direct::{self, Direct};
use crate::refill::Refill;

/// How often the event loop checks its connection count.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);
/// The longest wait between two fruitless bootstraps.
const MAX_BOOTSTRAP_BACKOFF: Duration = Duration::from_secs(300);

/// One `NetworkBehaviour` per concern, composed.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    kad: kad::Behaviour<MemoryStore>,
    gossipsub: gossipsub::Behaviour,
    direct: direct::StreamBehaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    relay: Toggle<relay::client::Behaviour>,
    dcutr: Toggle<dcutr::Behaviour>,
    autonat: Toggle<autonat::v1::Behaviour>,
}

/// The verdict on a gossip message, reported back to GossipSub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: propagate it.
    Accept,
    /// Invalid: drop it and penalise the peer that sent it.
    Reject,
    /// Not interesting (e.g. a duplicate): drop it without penalty.
    Ignore,
}

/// Peer and connection events (the reference's `peer:*` and `relay:*`
/// events). The coordinator passes them on unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// `peer:discovered`: a peer's addresses became known.
    Discovered {
        /// The peer.
        peer: PeerId,
        /// Its addresses.
        addrs: Vec<Multiaddr>,
    },
    /// `peer:connected`.
    Connected(PeerId),
    /// `peer:disconnected`.
    Disconnected(PeerId),
    /// `peer:updated`: a known peer's addresses changed.
    Updated {
        /// The peer.
        peer: PeerId,
        /// Its new addresses.
        addrs: Vec<Multiaddr>,
    },
    /// `relay:addresses-available`: a relay reservation was accepted.
    RelayAddressesAvailable {
        /// The relay peer.
        relay: PeerId,
    },
}

/// What the network tells the application.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NetEvent {
    /// A peer or connection event.
    Peer(PeerEvent),
    /// A GossipSub message, awaiting [`NetHandle::report_verdict`].
    Gossip {
        /// GossipSub's message id.
        message_id: gossipsub::MessageId,
        /// The peer that forwarded it to us.
        propagation_source: PeerId,
        /// The peer that signed it (GossipSub signed mode).
        author: Option<PeerId>,
        /// The topic.
        topic: String,
        /// The payload.
        data: Vec<u8>,
    },
    /// A direct message from an authenticated peer.
    Direct {
        /// The sender (authenticated by Noise).
        peer: PeerId,
        /// The payload (wire version already checked).
        payload: Vec<u8>,
    },
}

type Reply<T> = oneshot::Sender<Result<T, NetError>>;

enum Command {
    ListenAddrs(Reply<Vec<Multiaddr>>),
    Dial(Multiaddr, Reply<()>),
    AddAddress(PeerId, Multiaddr, Reply<()>),
    PutRecord(Vec<u8>, Vec<u8>, Reply<()>),
    GetRecord(Vec<u8>, Reply<Vec<u8>>),
    Subscribe(String, Reply<()>),
    Publish(String, Vec<u8>, Reply<()>),
    Verdict(gossipsub::MessageId, PeerId, Verdict),
    ConnectedPeers(Reply<Vec<PeerId>>),
    Metrics(Reply<NetMetrics>),
    Disconnect(PeerId),
    SessionPeers(Vec<PeerId>, bool),
    Bootstrap,
    Shutdown(oneshot::Sender<()>),
}

/// A cloneable handle to a running node. Every call goes through a bounded
/// queue to the swarm task; when the task has stopped, calls return
/// [`NetError::Stopped`].
#[derive(Clone, Debug)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    direct: Arc<Direct>,
    peer_id: PeerId,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl NetHandle {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    async fn tell(&self, cmd: Command) -> Result<(), NetError> {
        self.commands.send(cmd).await.map_err(|_| NetError::Stopped)
    }

    /// The addresses this node listens on, each with `/p2p/<peer id>`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call(Command::ListenAddrs).await
    }

    /// Dials an address (returns once the dial has started).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|r| Command::Dial(addr, r)).await
    }

    /// Tells the swarm and the DHT where a peer can be reached; when this
    /// returns, a [`NetHandle::send`] to the peer will use the address.
    pub async fn add_address(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|r| Command::AddAddress(peer, addr, r)).await
    }

    /// Stores a record in the DHT (locally, and on at least one peer if any is known).
    pub async fn put_record(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), NetError> {
        self.call(|r| Command::PutRecord(key, value, r)).await
    }

    /// The first value the DHT returns for `key` (the local store first). It
    /// is unverified: the DHT does not authenticate publishers, so check it
    /// before use and ask again if it does not pass.
    pub async fn get_record(&self, key: Vec<u8>) -> Result<Vec<u8>, NetError> {
        self.call(|r| Command::GetRecord(key, r)).await
    }

    /// Subscribes to a GossipSub topic.
    pub async fn subscribe(&self, topic: impl Into<String>) -> Result<(), NetError> {
        let topic = topic.into();
        self.call(|r| Command::Subscribe(topic, r)).await
    }

    /// Publishes on a GossipSub topic.
    pub async fn publish(&self, topic: impl Into<String>, data: Vec<u8>) -> Result<(), NetError> {
        let topic = topic.into();
        self.call(|r| Command::Publish(topic, data, r)).await
    }

    /// Reports the application's verdict on a gossip message.
    pub async fn report_verdict(
        &self,
        message_id: gossipsub::MessageId,
        source: PeerId,
        verdict: Verdict,
    ) -> Result<(), NetError> {
        self.tell(Command::Verdict(message_id, source, verdict))
            .await
    }

    /// Sends a direct message and waits for the receiver's acknowledgement
    /// (on this peer's long-lived stream, opening it or dialling if needed).
    pub async fn send(&self, peer: PeerId, payload: Vec<u8>) -> Result<(), NetError> {
        self.direct.send(peer, &payload).await
    }

    /// Closes every connection to a peer.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        self.tell(Command::Disconnect(peer)).await
    }

    /// The event loop's counters (rejections, drops, refusals).
    pub async fn metrics(&self) -> Result<NetMetrics, NetError> {
        self.call(Command::Metrics).await
    }

    /// The peers with an open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(Command::ConnectedPeers).await
    }

    /// Marks peers as session peers (`true`: not counted against the general
    /// connection limit) or releases them (`false`).
    pub async fn set_session_peers(
        &self,
        peers: Vec<PeerId>,
        in_session: bool,
    ) -> Result<(), NetError> {
        self.tell(Command::SessionPeers(peers, in_session)).await
    }

    /// Starts a Kademlia bootstrap (refreshes the routing table).
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        self.tell(Command::Bootstrap).await
    }

    /// Stops the swarm task and waits until it has stopped.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Counters of a node's network layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetMetrics {
    /// Events dropped because the application's queue was full.
    pub events_dropped: u64,
    /// Direct messages answered `Busy` for the same reason.
    pub direct_busy: u64,
    /// Inbound direct-message failures (bad frames).
    pub inbound_failures: u64,
    /// Inbound direct-message streams refused (too many open).
    pub direct_streams_refused: u64,
    /// Connections closed because the general limit was reached.
    pub connections_refused: u64,
    /// DHT bootstraps started because the node had too few connections.
    pub bootstraps: u64,
}

/// Starts a node: builds the swarm, listens, dials the bootstrap peers and
/// spawns the event loop. Returns the handle and the application's event queue.
pub async fn start(
    keypair: identity::Keypair,
    config: NetConfig,
) -> Result<(NetHandle, mpsc::Receiver<NetEvent>), NetError> {
    let counters = Arc::new(direct::DirectCounters::default());
    let (stream_behaviour, opener, incoming) = direct::StreamBehaviour::new(
        DIRECT_PROTOCOL,
        direct::MAX_INBOUND_STREAMS,
        counters.clone(),
    );
    let mut swarm = build_swarm(keypair, &config, stream_behaviour).await?;
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Transport {
                detail: format!("listen on {addr}: {e}"),
            })?;
    }
    for addr in &config.bootstrap_peers {
        if let Some(peer) = peer_of(addr) {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            warn!(%addr, error = %e, "bootstrap dial failed");
        }
    }
    let peer_id = *swarm.local_peer_id();
    let (cmd_tx, cmd_rx) = mpsc::channel(config.command_capacity.max(1));
    let (event_tx, event_rx) = mpsc::channel(config.event_capacity.max(1));
    let codec = FrameCodec::new(config.max_message_size);
    let direct = Arc::new(Direct::new(
        opener,
        codec.clone(),
        config.request_timeout,
        config.idle_timeout,
        counters.clone(),
    ));
    tokio::spawn(direct::serve(
        incoming,
        codec,
        config.idle_timeout,
        event_tx.clone(),
        counters,
    ));
    let event_loop = EventLoop {
        swarm,
        config,
        commands: cmd_rx,
        events: event_tx,
        pending_gets: HashMap::new(),
        pending_puts: HashMap::new(),
        direct: direct.clone(),
        listen_addrs: Vec::new(),
        known_addrs: HashMap::new(),
        connected: HashSet::new(),
        session_peers: HashSet::new(),
        metrics: NetMetrics::default(),
        refill: Refill::new(MAINTENANCE_INTERVAL, MAX_BOOTSTRAP_BACKOFF, Instant::now()),
    };
    tokio::spawn(event_loop.run());
    Ok((
        NetHandle {
            commands: cmd_tx,
            direct,
            peer_id,
        },
        event_rx,
    ))
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

async fn build_swarm(
    keypair: identity::Keypair,
    config: &NetConfig,
    direct: direct::StreamBehaviour,
) -> Result<Swarm<Behaviour>, NetError> {
    let transport = |e: &dyn std::fmt::Display| NetError::Transport {
        detail: e.to_string(),
    };
    let kad_protocol =
        StreamProtocol::try_from_owned(config.dht_protocol.clone()).map_err(|e| {
            NetError::Config {
                detail: format!("dht protocol: {e}"),
            }
        })?;
    let replication =
        NonZeroUsize::new(config.replication_factor).ok_or_else(|| NetError::Config {
            detail: "replication factor 0".into(),
        })?;
    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(config.gossip_heartbeat)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(config.max_gossip_size + 1024)
        // Small sets (a handful of co-signers) must still form a mesh.
        .mesh_n_low(1)
        .mesh_n(4)
        .mesh_n_high(8)
        .mesh_outbound_min(0)
        .flood_publish(true)
        .build()
        .map_err(|e| NetError::Config {
            detail: format!("gossipsub: {e}"),
        })?;
    let (relay_on, dcutr_on, autonat_on) = (
        config.enable_relay,
        config.enable_dcutr,
        config.enable_autonat,
    );
    let dht_server = config.dht_server;

    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport(&e))?
        .with_dns()
        .map_err(|e| transport(&e))?
        .with_websocket(noise::Config::new, yamux::Config::default)
        .await
        .map_err(|e| transport(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| transport(&e))?
        .with_behaviour(|key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let mut kad_config = kad::Config::new(kad_protocol);
            kad_config.set_replication_factor(replication);
            kad_config.set_query_timeout(Duration::from_secs(10));
            let mut kad =
                kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
            kad.set_mode(dht_server.then_some(kad::Mode::Server));
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            Ok(Behaviour {
                kad,
                gossipsub,
                direct,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/lotus-musig2/1.0.0".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                relay: Toggle::from(relay_on.then_some(relay_client)),
                dcutr: Toggle::from(dcutr_on.then(|| dcutr::Behaviour::new(peer_id))),
                autonat: Toggle::from(
                    autonat_on.then(|| {
                        autonat::v1::Behaviour::new(peer_id, autonat::v1::Config::default())
                    }),
                ),
            })
        })
        .map_err(|e| transport(&e))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(config.idle_timeout)
                // Send the protocol name and the first frame together: no
                // negotiation round trip per stream when one protocol is
                // proposed (every direct message opens a stream).
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();
    Ok(swarm)
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    config: NetConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    pending_gets: HashMap<kad::QueryId, Reply<Vec<u8>>>,
    pending_puts: HashMap<kad::QueryId, Reply<()>>,
    direct: Arc<Direct>,
    listen_addrs: Vec<Multiaddr>,
    known_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    connected: HashSet<PeerId>,
    session_peers: HashSet<PeerId>,
    metrics: NetMetrics,
    refill: Refill,
}

impl EventLoop {
    async fn run(mut self) {
        // The first check waits one interval: Kademlia bootstraps by itself when
        // the bootstrap peers enter its routing table.
        let mut maintenance = tokio::time::interval_at(
            tokio::time::Instant::now() + MAINTENANCE_INTERVAL,
            MAINTENANCE_INTERVAL,
        );
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        let _ = done.send(());
                        break;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = maintenance.tick() => self.maintain(),
            }
        }
        debug!(metrics = ?self.snapshot(), "network event loop stopped");
    }

    /// The event loop's counters with the direct-message layer's.
    fn snapshot(&self) -> NetMetrics {
        let counters = &self.direct.counters;
        NetMetrics {
            direct_busy: counters.busy.load(Ordering::Relaxed),
            inbound_failures: counters.inbound_failures.load(Ordering::Relaxed),
            direct_streams_refused: counters.streams_refused.load(Ordering::Relaxed),
            ..self.metrics
        }
    }

    /// Queues an event for the application; on overflow the event is dropped
    /// and counted (the application is too slow, the network must not stall).
    fn emit(&mut self, event: NetEvent) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(_) => {
                self.metrics.events_dropped += 1;
                false
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        let local = *self.swarm.local_peer_id();
        match cmd {
            Command::ListenAddrs(reply) => {
                let addrs = self
                    .listen_addrs
                    .iter()
                    .map(|a| a.clone().with(Protocol::P2p(local)))
                    .collect();
                let _ = reply.send(Ok(addrs));
            }
            Command::Dial(addr, reply) => {
                if let Some(peer) = peer_of(&addr) {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                }
                let result = self.swarm.dial(addr).map_err(|e| NetError::Dial {
                    detail: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::AddAddress(peer, addr, reply) => {
                self.swarm.add_peer_address(peer, addr.clone());
                self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                let _ = reply.send(Ok(()));
            }
            Command::PutRecord(key, value, reply) => {
                let record = kad::Record::new(key, value);
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .put_record(record, kad::Quorum::One)
                {
                    Ok(id) => {
                        self.pending_puts.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht {
                            detail: e.to_string(),
                        }));
                    }
                }
            }
            Command::GetRecord(key, reply) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_record(kad::RecordKey::new(&key));
                self.pending_gets.insert(id, reply);
            }
            Command::Subscribe(topic, reply) => {
                let topic = gossipsub::IdentTopic::new(topic);
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .subscribe(&topic)
                    .map(|_| ())
                    .map_err(|e| NetError::Gossip {
                        detail: e.to_string(),
                    });
                let _ = reply.send(result);
            }
            Command::Publish(topic, data, reply) => {
                let topic = gossipsub::IdentTopic::new(topic);
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic, data)
                    .map(|_| ())
                    .map_err(|e| NetError::Gossip {
                        detail: e.to_string(),
                    });
                let _ = reply.send(result);
            }
            Command::Verdict(id, source, verdict) => {
                let acceptance = match verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Reject => gossipsub::MessageAcceptance::Reject,
                    Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Metrics(reply) => {
                let _ = reply.send(Ok(self.snapshot()));
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(Ok(self.connected.iter().copied().collect()));
            }
            Command::SessionPeers(peers, in_session) => {
                for peer in peers {
                    if in_session {
                        self.session_peers.insert(peer);
                    } else {
                        self.session_peers.remove(&peer);
                    }
                }
            }
            Command::Bootstrap => {
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
            Command::Shutdown(_) => {}
        }
    }

    fn general_connections(&self) -> usize {
        self.connected
            .iter()
            .filter(|p| !self.session_peers.contains(p))
            .count()
    }

    fn maintain(&mut self) {
        self.direct.close_idle();
        // Too few peers: look for more (fails harmlessly with no known peers).
        // Every connection counts here; only the maximum exempts session peers.
        if self.refill.due(
            self.connected.len(),
            self.config.min_connections,
            Instant::now(),
        ) {
            self.metrics.bootstraps += 1;
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }

    fn learn_addrs(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id() || addrs.is_empty() {
            return;
        }
        match self.known_addrs.get(&peer) {
            None => {
                self.known_addrs.insert(peer, addrs.clone());
                self.emit(NetEvent::Peer(PeerEvent::Discovered { peer, addrs }));
            }
            Some(old) if *old != addrs => {
                self.known_addrs.insert(peer, addrs.clone());
                self.emit(NetEvent::Peer(PeerEvent::Updated { peer, addrs }));
            }
            Some(_) => {}
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } if num_established.get() == 1 => {
                self.connected.insert(peer_id);
                if endpoint.is_dialer() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                if !self.session_peers.contains(&peer_id)
                    && self.general_connections() > self.config.max_connections
                {
                    self.metrics.connections_refused += 1;
                    self.connected.remove(&peer_id);
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                self.emit(NetEvent::Peer(PeerEvent::Connected(peer_id)));
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if self.connected.remove(&peer_id) => {
                self.refill.on_disconnect(Instant::now());
                self.direct.forget(&peer_id);
                self.emit(NetEvent::Peer(PeerEvent::Disconnected(peer_id)));
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in &info.listen_addrs {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, addr.clone());
                }
                self.learn_addrs(peer_id, info.listen_addrs);
            }
            BehaviourEvent::Kad(event) => self.on_kad_event(event),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let event = NetEvent::Gossip {
                    message_id: message_id.clone(),
                    propagation_source,
                    author: message.source,
                    topic: message.topic.into_string(),
                    data: message.data,
                };
                if !self.emit(event) {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            gossipsub::MessageAcceptance::Ignore,
                        );
                }
            }
            BehaviourEvent::Relay(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                ..
            }) => {
                self.emit(NetEvent::Peer(PeerEvent::RelayAddressesAvailable {
                    relay: relay_peer_id,
                }));
            }
            _ => {}
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated {
                peer, addresses, ..
            } => {
                self.learn_addrs(peer, addresses.into_vec());
            }
            kad::Event::OutboundQueryProgressed { id, result, .. } => match result {
                kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                    // The first record answers; stop asking further peers.
                    self.finish_get(id, Ok(found.record.value));
                }
                kad::QueryResult::GetRecord(Ok(_)) => {
                    self.finish_get(
                        id,
                        Err(NetError::NotFound {
                            detail: "no record".into(),
                        }),
                    );
                }
                kad::QueryResult::GetRecord(Err(e)) => {
                    self.finish_get(
                        id,
                        Err(NetError::NotFound {
                            detail: e.to_string(),
                        }),
                    );
                }
                kad::QueryResult::PutRecord(result) => {
                    if let Some(reply) = self.pending_puts.remove(&id) {
                        if let Err(e) = &result {
                            // The record is in our own store; peers that ask us
                            // will find it. Report success, log the shortfall.
                            debug!(error = %e, "DHT put reached no other peer");
                        }
                        let _ = reply.send(Ok(()));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn finish_get(&mut self, id: kad::QueryId, result: Result<Vec<u8>, NetError>) {
        if let Some(reply) = self.pending_gets.remove(&id) {
            let _ = reply.send(result);
        }
        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            query.finish();
        }
    }
}
