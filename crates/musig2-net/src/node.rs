//! The composed behaviour, the swarm's event loop (its own task), and the
//! cloneable [`NetHandle`] the rest of the program uses to talk to it.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::allow_block_list::{self, BlockedPeers};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{DialError, ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, dcutr, gossipsub, identify, identity, kad,
    noise, ping, relay, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::NetError;
use crate::addrs::{self, AddressBook, Change};
use crate::codec::{DIRECT_PROTOCOL, FrameCodec};
use crate::config::NetConfig;
use crate::dht::{DhtStore, RecordRules, Refusal};
use crate::direct::{self, Direct};
use crate::refill::Refill;

/// How often the event loop checks its connection count.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);
/// The longest wait between two fruitless bootstraps.
const MAX_BOOTSTRAP_BACKOFF: Duration = Duration::from_secs(300);

/// One `NetworkBehaviour` per concern, composed.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// First: a blocked peer is denied before any other behaviour sees it.
    blocked: allow_block_list::Behaviour<BlockedPeers>,
    addresses: addrs::Behaviour,
    kad: kad::Behaviour<DhtStore>,
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
    DialPeer(PeerId, Reply<()>),
    AddAddress(PeerId, Multiaddr, Reply<()>),
    PutRecord(Vec<u8>, Vec<u8>, Reply<()>),
    GetRecord(Vec<u8>, Reply<Vec<u8>>),
    Subscribe(String, Reply<()>),
    Publish(String, Vec<u8>, Reply<()>),
    Verdict(gossipsub::MessageId, PeerId, Verdict),
    ConnectedPeers(Reply<Vec<PeerId>>),
    Metrics(Reply<NetMetrics>),
    Disconnect(PeerId),
    Block(PeerId, Reply<()>),
    Unblock(PeerId, Reply<()>),
    Blocked(Reply<Vec<PeerId>>),
    RoutingPeers(Reply<Vec<PeerId>>),
    SessionPeers(Vec<PeerId>, bool),
    Bootstrap,
    Shutdown(oneshot::Sender<()>),
}

/// A cloneable handle to a running node. Every call goes through a bounded
/// queue to the swarm task; when the task has stopped, calls return
/// [`NetError::Stopped`].
///
/// The queue is first in, first out: commands take effect in the order they
/// entered it. Two calls made one after the other (the second after the
/// first's `await` returned), from one task or from several, take effect in
/// that order, whichever clone of the handle they use. Calls that are not
/// ordered by the caller (e.g. made from two spawned tasks) may take effect
/// in either order.
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

    /// Dials a peer by id, at the addresses the node knows for it (returns
    /// once the dial has started; an error if none is known or the peer is
    /// blocked).
    pub async fn dial_peer(&self, peer: PeerId) -> Result<(), NetError> {
        self.call(|r| Command::DialPeer(peer, r)).await
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

    /// Blocks a peer: closes every connection to it now, refuses its future
    /// connections (both ways), drops the direct messages it has waiting
    /// for the application (counted in [`NetMetrics::direct_dropped_blocked`]),
    /// removes it from the DHT routing table and drops gossip it authored,
    /// even when relayed by others. Lasts until [`NetHandle::unblock_peer`];
    /// not persisted (the application re-applies its blacklist on start).
    pub async fn block_peer(&self, peer: PeerId) -> Result<(), NetError> {
        self.direct.block(peer);
        self.call(|r| Command::Block(peer, r)).await
    }

    /// Lifts a block: the peer may connect, and be connected to, again.
    pub async fn unblock_peer(&self, peer: PeerId) -> Result<(), NetError> {
        self.direct.unblock(&peer);
        self.call(|r| Command::Unblock(peer, r)).await
    }

    /// The peers currently blocked.
    pub async fn blocked_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(Command::Blocked).await
    }

    /// The peers in Kademlia's routing table (only peers whose identify
    /// information lists the DHT protocol, and configured bootstrap peers,
    /// are ever added).
    pub async fn dht_routing_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(Command::RoutingPeers).await
    }

    /// Marks peers as session peers (`true`: not counted against the general
    /// connection limit and never closed by it) or releases them (`false`).
    /// A peer is either marked or not (the last call wins, no counting);
    /// calls take effect in the order described on [`NetHandle`], so a
    /// `false` sent after a `true` (after its `await`) is never overtaken by it.
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

/// Counters of a node's network layer (and a few gauges, marked as such).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetMetrics {
    /// Events dropped because the application's queue was full.
    pub events_dropped: u64,
    /// Direct messages answered `Busy` (the sum of the two below).
    pub direct_busy: u64,
    /// ... because the sender already had `direct_queue_per_peer` waiting.
    pub direct_busy_peer_queue: u64,
    /// ... because all peers had `direct_queue_capacity` waiting.
    pub direct_busy_global_queue: u64,
    /// Direct messages of blocked peers dropped from the queue or refused.
    pub direct_dropped_blocked: u64,
    /// Inbound direct-message failures (bad frames).
    pub inbound_failures: u64,
    /// Inbound direct-message streams refused (too many open).
    pub direct_streams_refused: u64,
    /// New inbound connections closed because the general limit was reached.
    pub connections_refused: u64,
    /// Idle inbound connections closed to make room for one of ours (a dial,
    /// or a peer we send to) over the general limit.
    pub connections_evicted: u64,
    /// Connections refused because the peer is blocked (either direction).
    pub connections_denied_blocked: u64,
    /// DHT bootstraps started because the node had too few connections.
    pub bootstraps: u64,
    /// DHT records from peers stored.
    pub dht_records_stored: u64,
    /// DHT records from peers evicted to make room for a lighter sender's.
    pub dht_records_evicted: u64,
    /// DHT records from peers refused: value over `dht_max_value_size`.
    pub dht_rejected_too_large: u64,
    /// ... key without any of `dht_key_prefixes`.
    pub dht_rejected_prefix: u64,
    /// ... refused by the record validator.
    pub dht_rejected_invalid: u64,
    /// ... the sender holds `dht_records_per_peer` records already.
    pub dht_rejected_quota: u64,
    /// ... the store is full and the sender holds the most.
    pub dht_rejected_full: u64,
    /// ... a key this node publishes itself (or a record claiming to be ours).
    pub dht_rejected_own_key: u64,
    /// DHT lookup results skipped because the record validator refused them.
    pub dht_invalid_results: u64,
    /// Own DHT records dropped from the local store (over `dht_max_own_records`).
    pub dht_own_evicted: u64,
    /// Gauge: DHT records stored for peers.
    pub dht_remote_records: u64,
    /// Gauge: peers whose addresses are known.
    pub known_peers: u64,
    /// Peers forgotten from the address books to make room.
    pub known_peers_evicted: u64,
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
    let kad_protocol =
        StreamProtocol::try_from_owned(config.dht_protocol.clone()).map_err(|e| {
            NetError::Config {
                detail: format!("dht protocol: {e}"),
            }
        })?;
    let mut swarm = build_swarm(keypair, &config, kad_protocol.clone(), stream_behaviour).await?;
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
    let inbox = Arc::new(direct::Inbox::new(
        config.direct_queue_per_peer,
        config.direct_queue_capacity,
    ));
    let direct = Arc::new(Direct::new(
        opener,
        codec.clone(),
        config.request_timeout,
        config.idle_timeout,
        counters.clone(),
        inbox.clone(),
    ));
    tokio::spawn(direct::serve(
        incoming,
        codec,
        config.idle_timeout,
        inbox.clone(),
        counters,
    ));
    tokio::spawn(direct::forward(inbox, event_tx.clone()));
    let event_loop = EventLoop {
        swarm,
        rules: RecordRules::new(&config),
        known_addrs: AddressBook::new(
            config.max_addrs_per_peer,
            config.max_known_peers,
            config.known_peer_ttl,
        ),
        kad_protocol,
        config,
        commands: cmd_rx,
        events: event_tx,
        pending_gets: HashMap::new(),
        pending_puts: HashMap::new(),
        direct: direct.clone(),
        listen_addrs: Vec::new(),
        connected: HashMap::new(),
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
    kad_protocol: StreamProtocol,
    direct: direct::StreamBehaviour,
) -> Result<Swarm<Behaviour>, NetError> {
    let transport = |e: &dyn std::fmt::Display| NetError::Transport {
        detail: e.to_string(),
    };
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
    let book = || {
        AddressBook::new(
            config.max_addrs_per_peer,
            config.max_known_peers,
            config.known_peer_ttl,
        )
    };
    let store_config = config.clone();

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
            // Peers' records reach the store only through the event loop's
            // checks; peers enter the routing table only when identify shows
            // they serve the DHT (or they are configured bootstrap peers).
            kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
            kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
            let store = DhtStore::new(peer_id, &store_config);
            let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
            kad.set_mode(dht_server.then_some(kad::Mode::Server));
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            Ok(Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                addresses: addrs::Behaviour::new(book()),
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

/// What the event loop knows of one connected peer.
#[derive(Debug, Clone, Copy)]
struct PeerConns {
    /// Open connections this node dialled.
    dialed: usize,
    /// Open connections the peer dialled.
    inbound: usize,
    /// When it connected, or last relayed gossip the application accepted
    /// (anything cheaper to fake would let a flooder look busy).
    last_active: Instant,
    /// Being closed by the connection limit: no longer counted or chosen.
    closing: bool,
    /// `PeerEvent::Connected` was reported (so `Disconnected` will be).
    announced: bool,
}

/// The peer the connection limit closes to make room for `keep`: connected
/// inbound, not protected, not already closing, and least recently active.
fn least_active_unprotected_inbound(
    connected: &HashMap<PeerId, PeerConns>,
    keep: PeerId,
    is_protected: impl Fn(&PeerId, &PeerConns) -> bool,
) -> Option<PeerId> {
    connected
        .iter()
        .filter(|(p, c)| **p != keep && !c.closing && c.inbound > 0 && !is_protected(p, c))
        .min_by_key(|(_, c)| c.last_active)
        .map(|(p, _)| *p)
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    config: NetConfig,
    kad_protocol: StreamProtocol,
    rules: RecordRules,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    pending_gets: HashMap<kad::QueryId, Reply<Vec<u8>>>,
    pending_puts: HashMap<kad::QueryId, Reply<()>>,
    direct: Arc<Direct>,
    listen_addrs: Vec<Multiaddr>,
    /// Addresses reported to the application (bounded, pruned).
    known_addrs: AddressBook,
    connected: HashMap<PeerId, PeerConns>,
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
    fn snapshot(&mut self) -> NetMetrics {
        let counters = &self.direct.counters;
        let behaviour = self.swarm.behaviour_mut();
        let store = behaviour.kad.store_mut();
        let (remote_records, own_evicted) = (store.remote_len(), store.own_evicted);
        let book_evicted = behaviour.addresses.book.evicted();
        NetMetrics {
            direct_busy: counters.busy.load(Ordering::Relaxed),
            direct_busy_peer_queue: counters.busy_peer.load(Ordering::Relaxed),
            direct_busy_global_queue: counters.busy_global.load(Ordering::Relaxed),
            direct_dropped_blocked: counters.dropped_blocked.load(Ordering::Relaxed),
            inbound_failures: counters.inbound_failures.load(Ordering::Relaxed),
            direct_streams_refused: counters.streams_refused.load(Ordering::Relaxed),
            dht_remote_records: remote_records as u64,
            dht_own_evicted: own_evicted,
            known_peers: self.known_addrs.len() as u64,
            known_peers_evicted: self.known_addrs.evicted() + book_evicted,
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
                    self.swarm.behaviour_mut().addresses.book.add(
                        peer,
                        addr.clone(),
                        Instant::now(),
                    );
                }
                let result = self.swarm.dial(addr).map_err(|e| NetError::Dial {
                    detail: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::DialPeer(peer, reply) => {
                let result = self.swarm.dial(peer).map_err(|e| NetError::Dial {
                    detail: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::AddAddress(peer, addr, reply) => {
                // Into the dial address book (and any behaviour that listens);
                // Kademlia's routing table waits for identify.
                self.swarm.add_peer_address(peer, addr);
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
                if verdict == Verdict::Accept {
                    // It relayed something the application found valid.
                    self.touch(&source);
                }
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
            Command::Block(peer, reply) => {
                let behaviour = self.swarm.behaviour_mut();
                // Closes its connections and denies new ones.
                behaviour.blocked.block_peer(peer);
                behaviour.kad.remove_peer(&peer);
                // Gossip it authored is dropped even when others relay it.
                behaviour.gossipsub.blacklist_peer(&peer);
                let _ = reply.send(Ok(()));
            }
            Command::Unblock(peer, reply) => {
                let behaviour = self.swarm.behaviour_mut();
                behaviour.blocked.unblock_peer(peer);
                behaviour.gossipsub.remove_blacklisted_peer(&peer);
                let _ = reply.send(Ok(()));
            }
            Command::Blocked(reply) => {
                let peers = self
                    .swarm
                    .behaviour()
                    .blocked
                    .blocked_peers()
                    .iter()
                    .copied()
                    .collect();
                let _ = reply.send(Ok(peers));
            }
            Command::RoutingPeers(reply) => {
                let mut peers = Vec::new();
                for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
                    peers.extend(bucket.iter().map(|e| *e.node.key.preimage()));
                }
                let _ = reply.send(Ok(peers));
            }
            Command::Metrics(reply) => {
                let _ = reply.send(Ok(self.snapshot()));
            }
            Command::ConnectedPeers(reply) => {
                let peers = self
                    .connected
                    .iter()
                    .filter(|(_, c)| !c.closing)
                    .map(|(p, _)| *p)
                    .collect();
                let _ = reply.send(Ok(peers));
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

    /// Connections (peers) counted against `max_connections`: all but session
    /// peers' and those being closed.
    fn general_connections(&self) -> usize {
        self.connected
            .iter()
            .filter(|(p, c)| !c.closing && !self.session_peers.contains(p))
            .count()
    }

    /// A peer the connection limit never closes: a session peer, a peer we
    /// dialled, or one we are sending direct messages to.
    fn is_protected(&self, peer: &PeerId, conns: &PeerConns) -> bool {
        conns.dialed > 0 || self.session_peers.contains(peer) || self.direct.is_sending(peer)
    }

    /// Over the limit after `peer` connected: keep `peer` if it is ours and
    /// close the least active unprotected inbound peer instead; refuse
    /// `peer` if it is an unprotected inbound peer. Returns whether `peer`
    /// stays.
    fn enforce_limit(&mut self, peer: PeerId) -> bool {
        if self.general_connections() <= self.config.max_connections {
            return true;
        }
        let Some(conns) = self.connected.get(&peer).copied() else {
            return true;
        };
        if !self.is_protected(&peer, &conns) {
            self.metrics.connections_refused += 1;
            self.close_for_limit(peer);
            return false;
        }
        let victim =
            least_active_unprotected_inbound(&self.connected, peer, |p, c| self.is_protected(p, c));
        match victim {
            Some(victim) => {
                self.metrics.connections_evicted += 1;
                debug!(%victim, for_peer = %peer, "closing an idle inbound connection: over the limit");
                self.close_for_limit(victim);
            }
            None => debug!(%peer, "over the connection limit, but nothing can be closed"),
        }
        true
    }

    fn close_for_limit(&mut self, peer: PeerId) {
        if let Some(conns) = self.connected.get_mut(&peer) {
            conns.closing = true;
        }
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn touch(&mut self, peer: &PeerId) {
        if let Some(conns) = self.connected.get_mut(peer) {
            conns.last_active = Instant::now();
        }
    }

    fn maintain(&mut self) {
        self.direct.close_idle();
        let now = Instant::now();
        let pruned =
            self.known_addrs.prune(now) + self.swarm.behaviour_mut().addresses.book.prune(now);
        if pruned > 0 {
            debug!(pruned, "forgot the addresses of peers gone for long");
        }
        // Too few peers: look for more (fails harmlessly with no known peers).
        // Every connection counts here; only the maximum exempts session peers.
        if self
            .refill
            .due(self.connected.len(), self.config.min_connections, now)
        {
            self.metrics.bootstraps += 1;
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }

    fn learn_addrs(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id() || addrs.is_empty() {
            return;
        }
        match self.known_addrs.set(peer, addrs, Instant::now()) {
            Some(Change::New(addrs)) => {
                self.emit(NetEvent::Peer(PeerEvent::Discovered { peer, addrs }));
            }
            Some(Change::Updated(addrs)) => {
                self.emit(NetEvent::Peer(PeerEvent::Updated { peer, addrs }));
            }
            None => {}
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let now = Instant::now();
                self.known_addrs.connected(&peer_id, now);
                let first = !self.connected.contains_key(&peer_id);
                let conns = self.connected.entry(peer_id).or_insert(PeerConns {
                    dialed: 0,
                    inbound: 0,
                    last_active: now,
                    closing: false,
                    announced: false,
                });
                if endpoint.is_dialer() {
                    conns.dialed += 1;
                } else {
                    conns.inbound += 1;
                }
                // A new peer, or a new connection from a peer the limit is
                // closing (it raced the close): judged now. Without the
                // second case, a reconnect would hold a slot nobody counts.
                let judge = first || conns.closing;
                conns.closing = false;
                if judge
                    && self.enforce_limit(peer_id)
                    && let Some(conns) = self.connected.get_mut(&peer_id)
                    && !conns.announced
                {
                    conns.announced = true;
                    self.emit(NetEvent::Peer(PeerEvent::Connected(peer_id)));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                self.known_addrs.disconnected(&peer_id, Instant::now());
                if let Some(conns) = self.connected.get_mut(&peer_id) {
                    if endpoint.is_dialer() {
                        conns.dialed = conns.dialed.saturating_sub(1);
                    } else {
                        conns.inbound = conns.inbound.saturating_sub(1);
                    }
                }
                if num_established == 0
                    && let Some(conns) = self.connected.remove(&peer_id)
                {
                    self.refill.on_disconnect(Instant::now());
                    self.direct.forget(&peer_id);
                    if conns.announced {
                        self.emit(NetEvent::Peer(PeerEvent::Disconnected(peer_id)));
                    }
                }
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                ..
            } if cause.downcast_ref::<allow_block_list::Blocked>().is_some() => {
                self.metrics.connections_denied_blocked += 1;
            }
            SwarmEvent::OutgoingConnectionError {
                error: DialError::Denied { cause },
                ..
            } if cause.downcast_ref::<allow_block_list::Blocked>().is_some() => {
                self.metrics.connections_denied_blocked += 1;
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let mut addrs = info.listen_addrs;
                addrs.truncate(self.config.max_addrs_per_peer.max(1));
                let kad = &mut self.swarm.behaviour_mut().kad;
                // Kademlia keeps every address it is given: replace the
                // peer's list rather than add to it, so repeated identify
                // pushes cannot grow it past `max_addrs_per_peer`.
                kad.remove_peer(&peer_id);
                if info.protocols.contains(&self.kad_protocol) {
                    for addr in &addrs {
                        kad.add_address(&peer_id, addr.clone());
                    }
                }
                self.learn_addrs(peer_id, addrs);
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

    /// A record a peer asked us to store (`FilterBoth`): checked, then
    /// stored within the quotas, or dropped and counted.
    fn on_inbound_record(&mut self, source: PeerId, record: kad::Record) {
        let local = *self.swarm.local_peer_id();
        let outcome = if record.publisher == Some(local) {
            Err(Refusal::OwnKey)
        } else {
            self.rules
                .check(record.key.as_ref(), &record.value)
                .and_then(|()| {
                    self.swarm.behaviour_mut().kad.store_mut().put_remote(
                        record,
                        source,
                        Instant::now(),
                    )
                })
        };
        let m = &mut self.metrics;
        match outcome {
            Ok(stored) => {
                m.dht_records_stored += 1;
                if stored.evicted {
                    m.dht_records_evicted += 1;
                }
            }
            Err(refusal) => {
                debug!(%source, ?refusal, "DHT record from a peer not stored");
                match refusal {
                    Refusal::TooLarge => m.dht_rejected_too_large += 1,
                    Refusal::Prefix => m.dht_rejected_prefix += 1,
                    Refusal::Invalid => m.dht_rejected_invalid += 1,
                    Refusal::Quota => m.dht_rejected_quota += 1,
                    Refusal::Full => m.dht_rejected_full += 1,
                    Refusal::OwnKey => m.dht_rejected_own_key += 1,
                }
            }
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_inbound_record(source, record),
            kad::Event::RoutingUpdated {
                peer, addresses, ..
            } => {
                self.learn_addrs(peer, addresses.into_vec());
            }
            kad::Event::OutboundQueryProgressed { id, result, .. } => match result {
                kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                    let record = found.record;
                    if !self.rules.is_valid(record.key.as_ref(), &record.value) {
                        // Skip it and let the lookup go on; a copy in our
                        // store (a peer put it there before the rules
                        // changed) is dropped.
                        self.metrics.dht_invalid_results += 1;
                        if found.peer.is_none() {
                            self.swarm
                                .behaviour_mut()
                                .kad
                                .store_mut()
                                .drop_remote(&record.key);
                        }
                        return;
                    }
                    // The first valid record answers; stop asking further peers.
                    self.finish_get(id, Ok(record.value));
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn conns(dialed: usize, inbound: usize, active_secs_ago: u64, now: Instant) -> PeerConns {
        PeerConns {
            dialed,
            inbound,
            last_active: now - Duration::from_secs(active_secs_ago),
            closing: false,
            announced: true,
        }
    }

    #[test]
    fn the_limit_closes_the_least_active_unprotected_inbound_peer_only() {
        let now = Instant::now();
        let ids: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        let mut connected = HashMap::new();
        connected.insert(ids[0], conns(1, 0, 900, now)); // we dialled it
        connected.insert(ids[1], conns(0, 1, 800, now)); // session peer (protected below)
        connected.insert(ids[2], conns(1, 1, 700, now)); // both ways: ours
        connected.insert(ids[3], conns(0, 1, 100, now)); // inbound, active lately
        connected.insert(ids[4], conns(0, 1, 500, now)); // inbound, idle longest
        connected.insert(ids[5], conns(0, 1, 0, now)); // the newcomer to keep
        let protected = |p: &PeerId, c: &PeerConns| c.dialed > 0 || *p == ids[1];
        assert_eq!(
            least_active_unprotected_inbound(&connected, ids[5], protected),
            Some(ids[4])
        );
        // One already being closed is not chosen twice.
        connected.get_mut(&ids[4]).unwrap().closing = true;
        assert_eq!(
            least_active_unprotected_inbound(&connected, ids[5], protected),
            Some(ids[3])
        );
        // Nothing closable: none.
        connected.get_mut(&ids[3]).unwrap().closing = true;
        assert_eq!(
            least_active_unprotected_inbound(&connected, ids[5], protected),
            None
        );
    }
}
