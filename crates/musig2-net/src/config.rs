//! Network configuration, with the reference's defaults and environment overrides.

use std::time::Duration;

use libp2p::Multiaddr;

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
