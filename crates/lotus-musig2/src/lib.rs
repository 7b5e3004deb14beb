#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

/// Lotus Schnorr and MuSig2 (`musig2-core`).
pub use musig2_core as core;

/// Lotus transactions, sighashes, Taproot and XAddresses (`lotus-tx`).
#[cfg(feature = "tx")]
pub use lotus_tx as tx;

/// Coordinator election and failover (`musig2-election`).
#[cfg(feature = "election")]
pub use musig2_election as election;

/// Message policy (`musig2-security`).
#[cfg(feature = "security")]
pub use musig2_security as security;

/// Burn-based identities (`musig2-identity`).
#[cfg(feature = "identity")]
pub use musig2_identity as identity;

/// libp2p transport (`musig2-net`).
#[cfg(feature = "net")]
pub use musig2_net as net;

/// The P2P signing coordinator (`musig2-coordinator`).
#[cfg(feature = "coordinator")]
pub use musig2_coordinator as coordinator;
