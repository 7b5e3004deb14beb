//! What the identity manager needs from a chain indexer, as a trait, so that
//! the manager can run against the real [`ChronikClient`](crate::ChronikClient)
//! or an in-process chain in tests and simulations.

use std::future::Future;
use std::sync::Arc;

use crate::chronik::ChronikError;
use crate::tx::{Transaction, TxId};

/// A transaction as an indexer reports it, already checked against its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedTx {
    /// The Lotus txid, recomputed from the transaction's contents.
    pub txid: TxId,
    /// The transaction.
    pub tx: Transaction,
    /// The height of the block that holds it, or `None` while in the mempool.
    pub block_height: Option<u32>,
}

/// A source of confirmed transactions and of the chain tip.
pub trait Indexer: Send + Sync {
    /// The transaction `txid`; [`ChronikError::NotFound`] if the indexer does not
    /// know it.
    fn tx(&self, txid: &TxId) -> impl Future<Output = Result<IndexedTx, ChronikError>> + Send;

    /// The height of the chain tip.
    fn tip_height(&self) -> impl Future<Output = Result<u32, ChronikError>> + Send;
}

impl<T: Indexer> Indexer for Arc<T> {
    fn tx(&self, txid: &TxId) -> impl Future<Output = Result<IndexedTx, ChronikError>> + Send {
        (**self).tx(txid)
    }

    fn tip_height(&self) -> impl Future<Output = Result<u32, ChronikError>> + Send {
        (**self).tip_height()
    }
}
