#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod addrs;
pub mod codec;
pub mod config;
mod dht;
mod direct;
pub mod gossip_score;
pub mod node;
mod refill;

pub use codec::{Ack, DIRECT_PROTOCOL, WIRE_VERSION};
pub use config::{NetConfig, RecordValidator, SwarmMetrics};
pub use direct::{MAX_INBOUND_STREAMS, MAX_STREAMS_PER_PEER};
pub use libp2p::{Multiaddr, PeerId, gossipsub::MessageId, identity::Keypair as NodeKeypair};
pub use node::{NetEvent, NetHandle, NetMetrics, PeerEvent, Verdict, start};

/// Errors of the network layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The swarm task has stopped.
    #[error("the network task has stopped")]
    Stopped,
    /// A configuration value is invalid.
    #[error("invalid network configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// Building the transport or listening failed.
    #[error("transport: {detail}")]
    Transport {
        /// What failed.
        detail: String,
    },
    /// A dial could not start.
    #[error("dial: {detail}")]
    Dial {
        /// Why.
        detail: String,
    },
    /// A DHT operation failed.
    #[error("dht: {detail}")]
    Dht {
        /// Why.
        detail: String,
    },
    /// A DHT record was not found.
    #[error("dht record not found: {detail}")]
    NotFound {
        /// Kademlia's reason.
        detail: String,
    },
    /// A GossipSub operation failed.
    #[error("gossipsub: {detail}")]
    Gossip {
        /// Why.
        detail: String,
    },
    /// A direct message could not be delivered.
    #[error("send to {peer}: {detail}")]
    Send {
        /// The peer.
        peer: String,
        /// Why.
        detail: String,
    },
    /// A direct message was written but not acknowledged within the
    /// request timeout: the connection may be dead (a TCP connection that
    /// lived through an outage recovers only at its next retransmission).
    /// The caller may close it (`NetHandle::disconnect`) so that a retry
    /// dials afresh.
    #[error("send to {peer}: no acknowledgement in time")]
    Unacknowledged {
        /// The peer.
        peer: String,
    },
    /// The receiver's queue was full.
    #[error("the peer is busy")]
    PeerBusy,
    /// A message exceeds the size limit.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}
