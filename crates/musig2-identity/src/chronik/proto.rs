//! The Chronik protobuf messages this crate reads, written by hand with
//! `prost` derives.
//!
//! Mirrored from `proto/chronik.ts` of the npm package `chronik-client` 0.19.0
//! (the legacy `ChronikClient` API, which lotus-sdk uses and which the Lotus
//! Chronik indexer serves). Field numbers and types are identical to that
//! schema; fields this crate does not need (SLP token data, `spent_by`, …) are
//! left out, and `prost` skips them when decoding.
//!
//! | message | fields kept (number) |
//! | --- | --- |
//! | `BlockchainInfo` | `tip_hash` (1), `tip_height` (2) |
//! | `Tx` | `txid` (1), `version` (2), `inputs` (3), `outputs` (4), `lock_time` (5), `slp_error_msg` (7), `block` (8), `time_first_seen` (9), `network` (10), `size` (11), `is_coinbase` (12) |
//! | `TxInput` | `prev_out` (1), `input_script` (2), `output_script` (3), `value` (4), `sequence_no` (5) |
//! | `TxOutput` | `value` (1), `output_script` (2) |
//! | `BlockMetadata` | `height` (1), `hash` (2), `timestamp` (3) |
//! | `OutPoint` | `txid` (1), `out_idx` (2) |
//! | `Error` | `error_code` (1), `msg` (2), `is_user_error` (3) |
//! | `BroadcastTxRequest` | `raw_tx` (1), `skip_token_checks` (2; `skip_slp_check` in 0.19) |
//! | `BroadcastTxResponse` | `txid` (1) |
//! | enum `Network` | `BCH` 0, `XEC` 1, `XPI` 2, `XRG` 3 |
//!
//! Hashes (`txid`, `tip_hash`, block `hash`) are in internal byte order; the
//! JavaScript client reverses them for display.

use crate::tx::{Transaction, TxInput as LotusTxInput, TxOutput as LotusTxOutput};

/// `BlockchainInfo`: the chain tip.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockchainInfo {
    /// Tip block hash (internal byte order).
    #[prost(bytes = "vec", tag = "1")]
    pub tip_hash: Vec<u8>,
    /// Tip height.
    #[prost(int32, tag = "2")]
    pub tip_height: i32,
}

/// `Tx`: a transaction with indexer metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Tx {
    /// The txid (internal byte order).
    #[prost(bytes = "vec", tag = "1")]
    pub txid: Vec<u8>,
    /// Transaction version.
    #[prost(int32, tag = "2")]
    pub version: i32,
    /// Inputs.
    #[prost(message, repeated, tag = "3")]
    pub inputs: Vec<TxInput>,
    /// Outputs.
    #[prost(message, repeated, tag = "4")]
    pub outputs: Vec<TxOutput>,
    /// Lock time.
    #[prost(uint32, tag = "5")]
    pub lock_time: u32,
    /// SLP validation error, if any.
    #[prost(string, tag = "7")]
    pub slp_error_msg: String,
    /// The block holding the transaction; absent while in the mempool.
    #[prost(message, optional, tag = "8")]
    pub block: Option<BlockMetadata>,
    /// When the indexer first saw it (seconds).
    #[prost(int64, tag = "9")]
    pub time_first_seen: i64,
    /// The network ([`Network`] as `i32`).
    #[prost(enumeration = "Network", tag = "10")]
    pub network: i32,
    /// Serialized size in bytes.
    #[prost(uint32, tag = "11")]
    pub size: u32,
    /// Whether it is a coinbase.
    #[prost(bool, tag = "12")]
    pub is_coinbase: bool,
}

/// `TxInput`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxInput {
    /// The output spent.
    #[prost(message, optional, tag = "1")]
    pub prev_out: Option<OutPoint>,
    /// The unlocking script.
    #[prost(bytes = "vec", tag = "2")]
    pub input_script: Vec<u8>,
    /// The spent output's script.
    #[prost(bytes = "vec", tag = "3")]
    pub output_script: Vec<u8>,
    /// The spent output's value (sats).
    #[prost(int64, tag = "4")]
    pub value: i64,
    /// Sequence number.
    #[prost(uint32, tag = "5")]
    pub sequence_no: u32,
}

/// `TxOutput`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxOutput {
    /// Value in sats.
    #[prost(int64, tag = "1")]
    pub value: i64,
    /// Locking script.
    #[prost(bytes = "vec", tag = "2")]
    pub output_script: Vec<u8>,
}

/// `BlockMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockMetadata {
    /// Block height.
    #[prost(int32, tag = "1")]
    pub height: i32,
    /// Block hash (internal byte order).
    #[prost(bytes = "vec", tag = "2")]
    pub hash: Vec<u8>,
    /// Block timestamp (seconds).
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `OutPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutPoint {
    /// The txid (internal byte order).
    #[prost(bytes = "vec", tag = "1")]
    pub txid: Vec<u8>,
    /// The output index.
    #[prost(uint32, tag = "2")]
    pub out_idx: u32,
}

/// `Error`: the body of every non-200 Chronik response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    /// A short machine-readable code, e.g. `tx-not-found`.
    #[prost(string, tag = "1")]
    pub error_code: String,
    /// A human-readable message.
    #[prost(string, tag = "2")]
    pub msg: String,
    /// Whether the request was at fault (4xx) rather than the server.
    #[prost(bool, tag = "3")]
    pub is_user_error: bool,
}

/// `BroadcastTxRequest`: the body of `POST /broadcast-tx`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BroadcastTxRequest {
    /// The serialized transaction.
    #[prost(bytes = "vec", tag = "1")]
    pub raw_tx: Vec<u8>,
    /// Broadcast even if the indexer's token checks would refuse it (token
    /// burns). Always `false` from this crate.
    #[prost(bool, tag = "2")]
    pub skip_token_checks: bool,
}

/// `BroadcastTxResponse`: the answer to `POST /broadcast-tx`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BroadcastTxResponse {
    /// The txid of the broadcast transaction (internal byte order).
    #[prost(bytes = "vec", tag = "1")]
    pub txid: Vec<u8>,
}

/// `Network`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Network {
    /// Bitcoin Cash.
    Bch = 0,
    /// eCash.
    Xec = 1,
    /// Lotus.
    Xpi = 2,
    /// Ergon.
    Xrg = 3,
}

impl Tx {
    /// The message a Chronik server sends for `tx` (used by test servers and
    /// simulations): txid recomputed, `size` from the serialization.
    pub fn from_transaction(
        tx: &Transaction,
        block: Option<BlockMetadata>,
        network: Network,
    ) -> Self {
        Self {
            txid: tx.txid().internal_bytes().to_vec(),
            version: tx.version,
            inputs: tx.inputs.iter().map(TxInput::from_lotus).collect(),
            outputs: tx.outputs.iter().map(TxOutput::from_lotus).collect(),
            lock_time: tx.lock_time,
            slp_error_msg: String::new(),
            block,
            time_first_seen: 0,
            network: network as i32,
            size: u32::try_from(tx.serialize().len()).unwrap_or(u32::MAX),
            is_coinbase: false,
        }
    }
}

impl TxInput {
    fn from_lotus(input: &LotusTxInput) -> Self {
        Self {
            prev_out: Some(OutPoint {
                txid: input.prev_out.txid.internal_bytes().to_vec(),
                out_idx: input.prev_out.vout,
            }),
            input_script: input.script_sig.clone(),
            output_script: Vec::new(),
            value: 0,
            sequence_no: input.sequence,
        }
    }
}

impl TxOutput {
    fn from_lotus(output: &LotusTxOutput) -> Self {
        Self {
            value: i64::try_from(output.value).unwrap_or(i64::MAX),
            output_script: output.script.clone(),
        }
    }
}
