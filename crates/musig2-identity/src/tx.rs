//! Lotus transactions, from the workspace's one transaction implementation,
//! [`lotus_tx`]: the wire format with a strict parser, and the Lotus txid
//! (Merkle trees over the inputs without their scriptSigs and over the outputs,
//! so that the id does not depend on the signatures).
//!
//! This module keeps the names this crate has always exported; [`TxError`] is
//! `lotus_tx::DecodeError`. The Lotus genesis coinbase is a test vector of
//! this crate (`tests/data/`).

pub use lotus_tx::DecodeError as TxError;
pub use lotus_tx::{
    MAX_COMPACT_SIZE, MAX_MONEY_SATS, OutPoint, Transaction, TxId, TxInput, TxOutput, sha256d,
    write_compact_size,
};
