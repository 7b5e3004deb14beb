//! Network configuration, with the reference's defaults and environment overrides.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;

/// A check the application runs on DHT records: `(key, value) -> valid`.
///
/// It is applied to every record a peer asks us to store (a record that
/// fails is not stored) and to every record a lookup finds (a record that
/// fails is skipped and the lookup goes on). It runs on the network task, so
/// it must be quick and must not block.
#[derive(Clone)]
pub struct RecordValidator(Arc<CheckFn>);

/// The check a [`RecordValidator`] wraps.
type CheckFn = dyn Fn(&[u8], &[u8]) -> bool + Send + Sync;

impl RecordValidator {
    /// Wraps a check.
    pub fn new(check: impl Fn(&[u8], &[u8]) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(check))
    }

    /// Whether the record with this key and value is valid.
    pub fn is_valid(&self, key: &[u8], value: &[u8]) -> bool {
        (self.0)(key, value)
    }
}

impl fmt::Debug for RecordValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordValidator(..)")
    }
}

/// libp2p's own metrics (connections, dials, Kademlia, GossipSub, identify,
/// ping, DCUtR), recorded by the event loop into a Prometheus registry.
#[derive(Clone)]
pub struct SwarmMetrics(pub(crate) Arc<libp2p::metrics::Metrics>);

impl SwarmMetrics {
    /// Registers libp2p's metrics in `registry` (their names start with
    /// `libp2p_` after the registry's own prefix).
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        Self(Arc::new(libp2p::metrics::Metrics::new(registry)))
    }
}

impl fmt::Debug for SwarmMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SwarmMetrics(..)")
    }
}

/// Configuration of one node's network stack.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Addresses to listen on (TCP, and WebSocket as `/tcp/N/ws`).
    pub listen: Vec<Multiaddr>,
    /// Bootstrap peers (with `/p2p/<peer id>`).
    pub bootstrap_peers: Vec<Multiaddr>,
    /// The Kademlia protocol name (lotus-sdk: `/lotus/kad/1.0.0`).
    pub dht_protocol: String,
    /// Kademlia replication factor k.
    pub replication_factor: usize,
    /// Kademlia server mode (needed on small and local networks); when off,
    /// libp2p picks client or server from confirmed external addresses.
    pub dht_server: bool,
    /// Fewer open connections than this (session connections included) trigger
    /// a DHT bootstrap, backing off while bootstraps find nobody new (env
    /// `P2P_MIN_CONNECTIONS`).
    pub min_connections: usize,
    /// General (non-session) connections above this are closed (env `P2P_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Largest direct message, in bytes (the security layer's `MAX_MESSAGE_SIZE`).
    pub max_message_size: usize,
    /// Largest gossip message, in bytes (the security layer's `MAX_ADVERTISEMENT_SIZE`).
    pub max_gossip_size: usize,
    /// Timeout of a direct request.
    pub request_timeout: Duration,
    /// Idle connections are kept this long.
    pub idle_timeout: Duration,
    /// GossipSub heartbeat.
    pub gossip_heartbeat: Duration,
    /// Circuit-relay client (NAT traversal). Off by default.
    pub enable_relay: bool,
    /// Direct connection upgrade through relay. Off by default.
    pub enable_dcutr: bool,
    /// AutoNAT reachability probing. Off by default.
    pub enable_autonat: bool,
    /// Capacity of the event queue to the application.
    pub event_capacity: usize,
    /// Capacity of the command queue from handles.
    pub command_capacity: usize,
    /// Direct messages from one peer waiting for the application; one more is
    /// answered `Busy` (the other peers are still served).
    pub direct_queue_per_peer: usize,
    /// Direct messages from all peers waiting for the application; one more
    /// is answered `Busy`.
    pub direct_queue_capacity: usize,
    /// Key prefixes of the DHT records peers may store on this node. Empty
    /// (the default): any key. The network layer does not know the
    /// application's keys; the application sets them.
    pub dht_key_prefixes: Vec<Vec<u8>>,
    /// Largest DHT record value a peer may store on this node, in bytes (the
    /// security layer's `MAX_ADVERTISEMENT_SIZE`).
    pub dht_max_value_size: usize,
    /// DHT records stored for other peers, in all. When full, a record from
    /// a peer holding fewer records than the peer holding the most evicts the
    /// oldest record of the latter; otherwise it is refused.
    pub dht_max_records: usize,
    /// DHT records stored for one peer (the peer that sent the `PUT_VALUE`).
    pub dht_records_per_peer: usize,
    /// This node's own DHT records (kept apart from other peers' records, so
    /// other peers can never fill them out); when full, the oldest own record
    /// is dropped from the local store.
    pub dht_max_own_records: usize,
    /// Optional check of DHT records, applied to inbound `PUT_VALUE`s and to
    /// lookup results (see [`RecordValidator`]). `None`: every record passes.
    pub record_validator: Option<RecordValidator>,
    /// Addresses kept per peer (the first ones win).
    pub max_addrs_per_peer: usize,
    /// Peers whose addresses are kept; when full, the peer seen longest ago
    /// is forgotten.
    pub max_known_peers: usize,
    /// Addresses of a peer not connected for this long are forgotten.
    pub known_peer_ttl: Duration,
    /// Where libp2p's own metrics go (`None`: not recorded).
    pub swarm_metrics: Option<SwarmMetrics>,
    /// GossipSub topics on which peers are scored (see
    /// [`crate::gossip_score`]): on these, every message the application
    /// `Reject`s costs its forwarder score, and a peer below
    /// [`crate::gossip_score::GRAYLIST_THRESHOLD`] is ignored and pruned by
    /// GossipSub itself. Empty (the default): no topic is scored; the
    /// application names its own topics.
    pub scored_topics: Vec<String>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            bootstrap_peers: Vec::new(),
            dht_protocol: "/lotus/kad/1.0.0".into(),
            replication_factor: 20,
            dht_server: true,
            min_connections: 10,
            max_connections: 50,
            max_message_size: 100_000,
            max_gossip_size: 10_000,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            gossip_heartbeat: Duration::from_millis(500),
            enable_relay: false,
            enable_dcutr: false,
            enable_autonat: false,
            event_capacity: 4096,
            command_capacity: 1024,
            direct_queue_per_peer: 64,
            direct_queue_capacity: 1024,
            dht_key_prefixes: Vec::new(),
            dht_max_value_size: 10_000,
            dht_max_records: 1024,
            dht_records_per_peer: 64,
            dht_max_own_records: 1024,
            record_validator: None,
            max_addrs_per_peer: 8,
            max_known_peers: 1024,
            known_peer_ttl: Duration::from_secs(3600),
            swarm_metrics: None,
            scored_topics: Vec::new(),
        }
    }
}

impl NetConfig {
    /// A configuration for one node on 127.0.0.1 with an OS-chosen TCP port.
    pub fn loopback() -> Self {
        Self {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ],
            gossip_heartbeat: Duration::from_secs(1),
            ..Self::default()
        }
    }

    /// Applies `P2P_MIN_CONNECTIONS` and `P2P_MAX_CONNECTIONS` from the
    /// environment; a value that does not parse is reported, not ignored.
    pub fn with_env_overrides(mut self) -> Result<Self, crate::NetError> {
        for (name, slot) in [
            ("P2P_MIN_CONNECTIONS", &mut self.min_connections),
            ("P2P_MAX_CONNECTIONS", &mut self.max_connections),
        ] {
            if let Ok(value) = std::env::var(name) {
                *slot = value.trim().parse().map_err(|_| crate::NetError::Config {
                    detail: format!("{name}={value:?} is not a number"),
                })?;
            }
        }
        Ok(self)
    }
}
