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

mod commands;
mod dht_events;
mod event_loop;
mod handle;
mod limits;
mod swarm;

use swarm::build_swarm;

/// How often the event loop checks its connection count.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);
/// New routing-table entries wait until no direct message moved for this long.
const KAD_QUIET: Duration = Duration::from_secs(2);
/// … or this long at most (a node that signs without pause still keeps its
/// routing table current).
const KAD_WAIT_MAX: Duration = Duration::from_secs(60);
/// Peers waiting to enter the routing table, at most (more wait for their
/// next identify).
const KAD_WAITING_MAX: usize = 4096;
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
    GossipScore(PeerId, Reply<Option<f64>>),
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
    /// Gauge: ms since the DHT routing table last gained a peer or a DHT
    /// bootstrap last made progress (each new peer in the table schedules a
    /// bootstrap: hundreds of requests on a network of 50).
    pub dht_quiet_ms: u64,
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
        kad_waiting: HashMap::new(),
        kad_waiting_since: None,
        dht_changed_at: Instant::now(),
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
    /// Identified DHT servers waiting to enter the routing table (see
    /// `EventLoop::route`), and since when the oldest waits.
    kad_waiting: HashMap<PeerId, Vec<Multiaddr>>,
    kad_waiting_since: Option<Instant>,
    /// When the routing table last gained a peer or a bootstrap progressed.
    dht_changed_at: Instant,
}
