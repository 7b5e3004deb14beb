#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod burn;
pub mod chronik;
pub mod clock;
mod hexfmt;
pub mod identity;
pub mod indexer;
pub mod manager;
pub mod reputation;
pub mod store;
pub mod tx;

pub use burn::{
    BurnError, BurnPayload, BurnPolicy, BurnPurpose, VerifiedBurn, parse_burn_script, verify_burn,
};
pub use chronik::{ChronikClient, ChronikConfig, ChronikError, Network};
pub use clock::{Clock, ManualClock, SystemClock};
pub use hexfmt::ParseHexError;
pub use identity::{
    Ban, BanReason, BurnProof, Identity, IdentityId, KeyRecord, RotationProof, SignatureRole,
};
pub use indexer::{IndexedTx, Indexer};
pub use manager::{IdentityError, IdentityManager, KeyRotation};
pub use reputation::Reputation;
pub use store::{IdentityStore, StoreError};
pub use tx::{OutPoint, Transaction, TxError, TxId, TxInput, TxOutput};
