//! Lotus transactions: the wire format, a careful parser and the Lotus txid.
//!
//! # Serialization
//!
//! Lotus keeps Bitcoin's transaction serialization:
//!
//! ```text
//! version    i32 LE
//! n_inputs   CompactSize
//!   prev txid   32 bytes (internal order)
//!   prev index  u32 LE
//!   script_sig  CompactSize length + bytes
//!   sequence    u32 LE
//! n_outputs  CompactSize
//!   value       u64 LE (satoshis; 1 XPI = 1 000 000 sats)
//!   script      CompactSize length + bytes
//! lock_time  u32 LE
//! ```
//!
//! # The Lotus txid is not `SHA256d(raw tx)`
//!
//! Lotus (lotusd, lotus-sdk's `Transaction._getTxid`, Chronik's `lotus_txid`)
//! computes the id from Merkle trees over the inputs and the outputs, so that
//! the id does not depend on the signatures (`script_sig`):
//!
//! ```text
//! input leaf  = SHA256d(prev txid || prev index u32 LE || sequence u32 LE)
//! output leaf = SHA256d(value u64 LE || CompactSize(script len) || script)
//! txid        = SHA256d(version i32 LE
//!                       || input_root  || u8(input_height)
//!                       || output_root || u8(output_height)
//!                       || lock_time u32 LE)
//! ```
//!
//! Each tree pairs leaves with `SHA256d(left || right)`; a level with an odd
//! number of nodes is padded with 32 zero bytes (not by repeating the last
//! node, as Bitcoin does). The height of a single leaf is 1 and grows by one
//! per level. [`Transaction::parse`] rejects transactions without inputs or
//! outputs, so the empty-tree case never arises for a parsed transaction.
//!
//! The txid is displayed, as in Bitcoin, as the hex of its bytes in reverse
//! order; [`TxId`] keeps the internal (hash output) order and its `Display` /
//! `FromStr` use the reversed display order. The Lotus genesis coinbase is the
//! test vector (`tests/data/`).

use core::fmt;
use core::str::FromStr;

use musig2_core::hash::sha256;
use serde::{Deserialize, Serialize};

use crate::hexfmt::{self, ParseHexError};

/// The largest CompactSize value accepted (Bitcoin's `MAX_SIZE`, 32 MiB).
pub const MAX_COMPACT_SIZE: u64 = 0x0200_0000;

/// The largest output value accepted: 2.1 × 10^15 satoshis (lotusd's `MAX_MONEY`
/// as lotus-sdk states it). Used as a sanity bound, not a consensus check.
pub const MAX_MONEY_SATS: u64 = 2_100_000_000_000_000;

/// Smallest serialized input: 32 + 4 + 1 (empty script) + 4 bytes.
const MIN_INPUT_LEN: usize = 41;
/// Smallest serialized output: 8 + 1 (empty script) bytes.
const MIN_OUTPUT_LEN: usize = 9;

/// Why bytes are not a Lotus transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The bytes end inside a field.
    #[error("truncated {what} at byte {offset}: need {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Its offset in the transaction.
        offset: usize,
        /// The bytes it needs.
        needed: usize,
        /// The bytes left.
        available: usize,
    },
    /// A CompactSize that is not in its shortest form.
    #[error("non-canonical CompactSize at byte {offset}")]
    NonCanonicalCompactSize {
        /// Offset of its first byte.
        offset: usize,
    },
    /// A CompactSize above [`MAX_COMPACT_SIZE`].
    #[error("oversized CompactSize {value} at byte {offset}")]
    OversizedCompactSize {
        /// Offset of its first byte.
        offset: usize,
        /// The value decoded.
        value: u64,
    },
    /// An item count that the remaining bytes cannot possibly hold.
    #[error("{count} {what} announced at byte {offset}, but only {available} bytes follow")]
    TooManyItems {
        /// Inputs or outputs.
        what: &'static str,
        /// The count announced.
        count: u64,
        /// Offset of the count.
        offset: usize,
        /// The bytes left after the count.
        available: usize,
    },
    /// A transaction without inputs.
    #[error("transaction has no inputs")]
    NoInputs,
    /// A transaction without outputs.
    #[error("transaction has no outputs")]
    NoOutputs,
    /// An output value above [`MAX_MONEY_SATS`].
    #[error("output {index}: value {value} sats is above the money supply")]
    ValueOutOfRange {
        /// The output index.
        index: usize,
        /// The value.
        value: u64,
    },
    /// Bytes left after the lock time.
    #[error("{count} trailing bytes after the transaction")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

/// A transaction id, kept in internal byte order (the order SHA-256 outputs it
/// and outpoints serialize it); displayed byte-reversed, as Lotus shows txids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TxId([u8; 32]);

impl TxId {
    /// From the 32 bytes in internal order.
    pub const fn from_internal_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// From the 32 bytes in display order (the hex-decoded display string).
    pub fn from_display_bytes(mut bytes: [u8; 32]) -> Self {
        bytes.reverse();
        Self(bytes)
    }

    /// The 32 bytes in internal order.
    pub const fn internal_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The 32 bytes in display order (what the hex string shows).
    pub fn display_bytes(&self) -> [u8; 32] {
        let mut out = self.0;
        out.reverse();
        out
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hexfmt::write(f, &self.display_bytes())
    }
}

impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxId({self})")
    }
}

impl FromStr for TxId {
    type Err = ParseHexError;
    /// Parses the 64-hex-digit display form.
    fn from_str(s: &str) -> Result<Self, ParseHexError> {
        Ok(Self::from_display_bytes(hexfmt::decode_array(s, "txid")?))
    }
}

/// A transaction output reference: txid and output index (`vout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OutPoint {
    /// The transaction.
    pub txid: TxId,
    /// The output index.
    pub vout: u32,
}

impl OutPoint {
    /// `txid:vout`.
    pub const fn new(txid: TxId, vout: u32) -> Self {
        Self { txid, vout }
    }
}

impl fmt::Display for OutPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.txid, self.vout)
    }
}

/// A transaction input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxInput {
    /// The output it spends.
    pub prev_out: OutPoint,
    /// The unlocking script.
    pub script_sig: Vec<u8>,
    /// The sequence number.
    pub sequence: u32,
}

/// A transaction output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutput {
    /// The value in satoshis (1 XPI = 1 000 000 sats).
    pub value: u64,
    /// The locking script.
    pub script: Vec<u8>,
}

/// A Lotus transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The version.
    pub version: i32,
    /// The inputs.
    pub inputs: Vec<TxInput>,
    /// The outputs.
    pub outputs: Vec<TxOutput>,
    /// The lock time.
    pub lock_time: u32,
}

impl Transaction {
    /// Parses a serialized transaction, rejecting truncation, non-canonical or
    /// oversized CompactSizes, impossible counts, empty input or output lists,
    /// out-of-range values and trailing bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, TxError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = i32::from_le_bytes(r.array("version")?);

        let n_inputs = r.count("inputs", MIN_INPUT_LEN)?;
        if n_inputs == 0 {
            return Err(TxError::NoInputs);
        }
        let mut inputs = Vec::with_capacity(n_inputs);
        for _ in 0..n_inputs {
            let txid = TxId::from_internal_bytes(r.array("prev txid")?);
            let vout = u32::from_le_bytes(r.array("prev index")?);
            let script_sig = r.var_bytes("script_sig")?.to_vec();
            let sequence = u32::from_le_bytes(r.array("sequence")?);
            inputs.push(TxInput {
                prev_out: OutPoint { txid, vout },
                script_sig,
                sequence,
            });
        }

        let n_outputs = r.count("outputs", MIN_OUTPUT_LEN)?;
        if n_outputs == 0 {
            return Err(TxError::NoOutputs);
        }
        let mut outputs = Vec::with_capacity(n_outputs);
        for index in 0..n_outputs {
            let value = u64::from_le_bytes(r.array("value")?);
            if value > MAX_MONEY_SATS {
                return Err(TxError::ValueOutOfRange { index, value });
            }
            let script = r.var_bytes("output script")?.to_vec();
            outputs.push(TxOutput { value, script });
        }

        let lock_time = u32::from_le_bytes(r.array("lock_time")?);
        let rest = r.remaining();
        if rest != 0 {
            return Err(TxError::TrailingBytes { count: rest });
        }
        Ok(Self {
            version,
            inputs,
            outputs,
            lock_time,
        })
    }

    /// The serialized transaction.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.version.to_le_bytes());
        write_compact_size(&mut out, self.inputs.len() as u64);
        for input in &self.inputs {
            out.extend_from_slice(&input.prev_out.txid.internal_bytes());
            out.extend_from_slice(&input.prev_out.vout.to_le_bytes());
            write_var_bytes(&mut out, &input.script_sig);
            out.extend_from_slice(&input.sequence.to_le_bytes());
        }
        write_compact_size(&mut out, self.outputs.len() as u64);
        for output in &self.outputs {
            write_output(&mut out, output);
        }
        out.extend_from_slice(&self.lock_time.to_le_bytes());
        out
    }

    /// The Lotus txid (see the module documentation).
    pub fn txid(&self) -> TxId {
        let input_leaves = self
            .inputs
            .iter()
            .map(|input| {
                let mut data = Vec::with_capacity(40);
                data.extend_from_slice(&input.prev_out.txid.internal_bytes());
                data.extend_from_slice(&input.prev_out.vout.to_le_bytes());
                data.extend_from_slice(&input.sequence.to_le_bytes());
                sha256d(&data)
            })
            .collect();
        let output_leaves = self
            .outputs
            .iter()
            .map(|output| {
                let mut data = Vec::new();
                write_output(&mut data, output);
                sha256d(&data)
            })
            .collect();
        let (input_root, input_height) = lotus_merkle_root(input_leaves);
        let (output_root, output_height) = lotus_merkle_root(output_leaves);

        let mut data = Vec::with_capacity(4 + 33 + 33 + 4);
        data.extend_from_slice(&self.version.to_le_bytes());
        data.extend_from_slice(&input_root);
        data.push(input_height);
        data.extend_from_slice(&output_root);
        data.push(output_height);
        data.extend_from_slice(&self.lock_time.to_le_bytes());
        TxId::from_internal_bytes(sha256d(&data))
    }
}

/// `SHA256(SHA256(data))`.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    sha256(&sha256(data))
}

/// Lotus Merkle root and height: zero padding of odd levels; one leaf has
/// height 1; no leaves give the zero hash with height 0. Heights saturate at 255
/// (a tree that tall would need 2^254 leaves).
fn lotus_merkle_root(mut level: Vec<[u8; 32]>) -> ([u8; 32], u8) {
    if level.is_empty() {
        return ([0u8; 32], 0);
    }
    let mut height: u8 = 1;
    while level.len() > 1 {
        height = height.saturating_add(1);
        if level.len() % 2 == 1 {
            level.push([0u8; 32]);
        }
        level = level
            .chunks_exact(2)
            .map(|pair| {
                let mut data = [0u8; 64];
                for (dst, src) in data.iter_mut().zip(pair.iter().flatten()) {
                    *dst = *src;
                }
                sha256d(&data)
            })
            .collect();
    }
    let root = level.first().copied().unwrap_or([0u8; 32]);
    (root, height)
}

fn write_output(out: &mut Vec<u8>, output: &TxOutput) {
    out.extend_from_slice(&output.value.to_le_bytes());
    write_var_bytes(out, &output.script);
}

fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_compact_size(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Writes a CompactSize in its canonical (shortest) form.
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TxError> {
        let truncated = TxError::Truncated {
            what,
            offset: self.pos,
            needed: n,
            available: self.remaining(),
        };
        let end = self.pos.checked_add(n).ok_or(truncated.clone())?;
        let slice = self.bytes.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], TxError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn compact_size(&mut self, what: &'static str) -> Result<u64, TxError> {
        let offset = self.pos;
        let [first] = self.array::<1>(what)?;
        let (value, min) = match first {
            0xfd => (u64::from(u16::from_le_bytes(self.array(what)?)), 0xfd),
            0xfe => (u64::from(u32::from_le_bytes(self.array(what)?)), 0x1_0000),
            0xff => (u64::from_le_bytes(self.array(what)?), 0x1_0000_0000),
            n => (u64::from(n), 0),
        };
        if value < min {
            return Err(TxError::NonCanonicalCompactSize { offset });
        }
        if value > MAX_COMPACT_SIZE {
            return Err(TxError::OversizedCompactSize { offset, value });
        }
        Ok(value)
    }

    /// A count of items each at least `min_len` bytes long, checked against the
    /// bytes left so that a hostile count cannot make us allocate.
    fn count(&mut self, what: &'static str, min_len: usize) -> Result<usize, TxError> {
        let offset = self.pos;
        let count = self.compact_size(what)?;
        let available = self.remaining();
        let fits = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(min_len))
            .is_some_and(|need| need <= available);
        if !fits {
            return Err(TxError::TooManyItems {
                what,
                count,
                offset,
                available,
            });
        }
        usize::try_from(count).map_err(|_| TxError::TooManyItems {
            what,
            count,
            offset,
            available,
        })
    }

    fn var_bytes(&mut self, what: &'static str) -> Result<&'a [u8], TxError> {
        let offset = self.pos;
        let len = self.compact_size(what)?;
        let len = usize::try_from(len).map_err(|_| TxError::Truncated {
            what,
            offset,
            needed: usize::MAX,
            available: self.remaining(),
        })?;
        self.take(len, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Transaction {
        Transaction {
            version: 2,
            inputs: vec![TxInput {
                prev_out: OutPoint::new(TxId::from_internal_bytes([7; 32]), 1),
                script_sig: vec![0x51; 3],
                sequence: 0xffff_fffe,
            }],
            outputs: vec![
                TxOutput {
                    value: 5,
                    script: vec![0x6a],
                },
                TxOutput {
                    value: 1_000,
                    script: vec![0x76, 0xa9],
                },
            ],
            lock_time: 9,
        }
    }

    #[test]
    fn round_trip() {
        let tx = sample();
        let raw = tx.serialize();
        assert_eq!(Transaction::parse(&raw), Ok(tx));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let raw = sample().serialize();
        for len in 0..raw.len() {
            let err = Transaction::parse(&raw[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    TxError::Truncated { .. } | TxError::TooManyItems { .. }
                ),
                "len {len}: {err:?}"
            );
        }
    }

    #[test]
    fn trailing_bytes() {
        let mut raw = sample().serialize();
        raw.push(0);
        assert_eq!(
            Transaction::parse(&raw),
            Err(TxError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn non_canonical_and_oversized_compact_size() {
        let mut raw = 1i32.to_le_bytes().to_vec();
        raw.extend_from_slice(&[0xfd, 0x01, 0x00]);
        assert_eq!(
            Transaction::parse(&raw),
            Err(TxError::NonCanonicalCompactSize { offset: 4 })
        );
        let mut raw = 1i32.to_le_bytes().to_vec();
        raw.push(0xff);
        raw.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Transaction::parse(&raw),
            Err(TxError::OversizedCompactSize {
                offset: 4,
                value: u64::MAX
            })
        );
    }

    #[test]
    fn impossible_counts_do_not_allocate() {
        let mut raw = 1i32.to_le_bytes().to_vec();
        raw.extend_from_slice(&[0xfe, 0x00, 0x00, 0x00, 0x02]);
        assert!(matches!(
            Transaction::parse(&raw),
            Err(TxError::TooManyItems {
                count: 0x0200_0000,
                ..
            })
        ));
    }

    #[test]
    fn empty_lists_and_huge_values() {
        let mut tx = sample();
        tx.inputs.clear();
        assert_eq!(Transaction::parse(&tx.serialize()), Err(TxError::NoInputs));
        let mut tx = sample();
        tx.outputs.clear();
        assert_eq!(Transaction::parse(&tx.serialize()), Err(TxError::NoOutputs));
        let mut tx = sample();
        tx.outputs[1].value = MAX_MONEY_SATS + 1;
        assert_eq!(
            Transaction::parse(&tx.serialize()),
            Err(TxError::ValueOutOfRange {
                index: 1,
                value: MAX_MONEY_SATS + 1
            })
        );
    }

    #[test]
    fn compact_size_boundaries_round_trip() {
        for n in [0u64, 0xfc, 0xfd, 0xffff, 0x1_0000, MAX_COMPACT_SIZE] {
            let mut out = Vec::new();
            write_compact_size(&mut out, n);
            let mut r = Reader {
                bytes: &out,
                pos: 0,
            };
            assert_eq!(r.compact_size("n"), Ok(n));
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn txid_ignores_signatures_but_not_outputs() {
        let tx = sample();
        let mut signed = tx.clone();
        signed.inputs[0].script_sig = vec![1, 2, 3, 4];
        assert_eq!(tx.txid(), signed.txid());
        let mut other = tx.clone();
        other.outputs[0].value += 1;
        assert_ne!(tx.txid(), other.txid());
        // Not the Bitcoin txid.
        assert_ne!(tx.txid().internal_bytes(), sha256d(&tx.serialize()));
    }

    #[test]
    fn merkle_padding_is_zero_not_duplicate() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let c = [3u8; 32];
        let mut ab = a.to_vec();
        ab.extend_from_slice(&b);
        let mut c0 = c.to_vec();
        c0.extend_from_slice(&[0u8; 32]);
        let mut top = sha256d(&ab).to_vec();
        top.extend_from_slice(&sha256d(&c0));
        assert_eq!(lotus_merkle_root(vec![a, b, c]), (sha256d(&top), 3));
        assert_eq!(lotus_merkle_root(vec![a]), (a, 1));
        assert_eq!(lotus_merkle_root(vec![]), ([0u8; 32], 0));
    }

    #[test]
    fn txid_display_is_reversed() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        let id = TxId::from_internal_bytes(bytes);
        let s = id.to_string();
        assert!(s.ends_with("ab"));
        assert_eq!(s.parse::<TxId>(), Ok(id));
        assert!("zz".parse::<TxId>().is_err());
    }
}
