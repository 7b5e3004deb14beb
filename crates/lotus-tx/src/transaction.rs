//! Lotus transactions: the wire format, a strict parser, the txid and the hash.
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
//! The Lotus txid is not `SHA256d(raw tx)`: it hashes Merkle trees over the
//! inputs (without their scriptSigs) and the outputs, so signing does not change
//! it (`transaction.ts:213-240, 298-318`; lotusd `primitives/transaction.cpp:51-63`):
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
//! The tree is [`crate::merkle_root`]. The transaction
//! [`hash`](Transaction::hash) is `SHA256d` of the whole serialization.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use crate::encode::{Reader, write_compact_size, write_var_bytes};
use crate::error::{DecodeError, ParseHexError};
use crate::hash::{merkle_root, sha256d};

/// The largest output value accepted: 2.1 × 10^15 satoshis (`MAX_MONEY` as
/// lotus-sdk states it). A sanity bound on parsed outputs.
pub const MAX_MONEY_SATS: u64 = 2_100_000_000_000_000;

/// Smallest serialized input: 32 + 4 + 1 (empty script) + 4 bytes.
const MIN_INPUT_LEN: usize = 41;
/// Smallest serialized output: 8 + 1 (empty script) bytes.
const MIN_OUTPUT_LEN: usize = 9;

pub(crate) fn decode_hex_array<const N: usize>(
    s: &str,
    what: &'static str,
) -> Result<[u8; N], ParseHexError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| ParseHexError {
        what,
        expected: N,
        got: s.chars().take(80).collect::<String>(),
    })?;
    Ok(out)
}

pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A 32-byte hash kept in internal order and shown byte-reversed, as Lotus
/// shows txids.
macro_rules! reversed_hash {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name([u8; 32]);

        impl $name {
            /// From the 32 bytes in internal order (as hashed and serialized).
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

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.display_bytes())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = ParseHexError;
            /// Parses the 64-hex-digit display form.
            fn from_str(s: &str) -> Result<Self, ParseHexError> {
                Ok(Self::from_display_bytes(decode_hex_array(s, $what)?))
            }
        }
    };
}

reversed_hash!(
    /// A Lotus transaction id (see the module documentation), kept in internal
    /// byte order (the order SHA-256 outputs it and outpoints serialize it);
    /// displayed byte-reversed.
    TxId,
    "txid"
);

reversed_hash!(
    /// `SHA256d` of a whole serialized transaction (lotus-sdk's `tx.hash`),
    /// kept in internal order and displayed byte-reversed. Unlike the
    /// [`TxId`], it changes when the transaction is signed.
    TxHash,
    "transaction hash"
);

/// A transaction output reference: txid and output index (`vout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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

    /// The 36-byte serialization: txid (internal order) ‖ `u32_le` vout.
    pub fn to_bytes(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        let (txid, vout) = out.split_at_mut(32);
        txid.copy_from_slice(&self.txid.internal_bytes());
        vout.copy_from_slice(&self.vout.to_le_bytes());
        out
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

impl TxInput {
    /// The txid leaf of this input: `SHA256d(outpoint ‖ u32_le sequence)`.
    pub fn leaf_hash(&self) -> [u8; 32] {
        let mut data = [0u8; 40];
        let (outpoint, sequence) = data.split_at_mut(36);
        outpoint.copy_from_slice(&self.prev_out.to_bytes());
        sequence.copy_from_slice(&self.sequence.to_le_bytes());
        sha256d(&data)
    }
}

/// A transaction output; also what an input spends (a "spent output").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutput {
    /// The value in satoshis (1 XPI = 1 000 000 sats).
    pub value: u64,
    /// The locking script (scriptPubKey).
    pub script: Vec<u8>,
}

impl TxOutput {
    /// An output of `value` satoshis locked by `script`.
    pub fn new(value: u64, script: Vec<u8>) -> Self {
        Self { value, script }
    }

    /// The serialization `u64_le value ‖ CompactSize(len) ‖ script`.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.script.len());
        self.write(&mut out);
        out
    }

    /// `SHA256d` of the serialization (the Merkle leaf of this output).
    pub fn leaf_hash(&self) -> [u8; 32] {
        sha256d(&self.serialize())
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.value.to_le_bytes());
        write_var_bytes(out, &self.script);
    }
}

/// A Lotus transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The version (`nVersion`, signed).
    pub version: i32,
    /// The inputs.
    pub inputs: Vec<TxInput>,
    /// The outputs.
    pub outputs: Vec<TxOutput>,
    /// The lock time (`nLockTime`).
    pub lock_time: u32,
}

impl Transaction {
    /// Parses a serialized transaction, rejecting truncation, non-canonical or
    /// oversized CompactSizes, impossible counts, empty input or output lists,
    /// out-of-range values and trailing bytes. Never panics, never allocates
    /// more than the input can hold.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = i32::from_le_bytes(r.array("version")?);

        let n_inputs = r.count("inputs", MIN_INPUT_LEN)?;
        if n_inputs == 0 {
            return Err(DecodeError::NoInputs);
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
            return Err(DecodeError::NoOutputs);
        }
        let mut outputs = Vec::with_capacity(n_outputs);
        for index in 0..n_outputs {
            let value = u64::from_le_bytes(r.array("value")?);
            if value > MAX_MONEY_SATS {
                return Err(DecodeError::ValueOutOfRange { index, value });
            }
            let script = r.var_bytes("output script")?.to_vec();
            outputs.push(TxOutput { value, script });
        }

        let lock_time = u32::from_le_bytes(r.array("lock_time")?);
        let rest = r.remaining();
        if rest != 0 {
            return Err(DecodeError::TrailingBytes { count: rest });
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
            out.extend_from_slice(&input.prev_out.to_bytes());
            write_var_bytes(&mut out, &input.script_sig);
            out.extend_from_slice(&input.sequence.to_le_bytes());
        }
        write_compact_size(&mut out, self.outputs.len() as u64);
        for output in &self.outputs {
            output.write(&mut out);
        }
        out.extend_from_slice(&self.lock_time.to_le_bytes());
        out
    }

    /// Merkle root and height of the input leaves (no scriptSigs).
    pub fn inputs_merkle_root(&self) -> ([u8; 32], u8) {
        let leaves: Vec<[u8; 32]> = self.inputs.iter().map(TxInput::leaf_hash).collect();
        merkle_root(&leaves)
    }

    /// Merkle root and height of the output leaves.
    pub fn outputs_merkle_root(&self) -> ([u8; 32], u8) {
        let leaves: Vec<[u8; 32]> = self.outputs.iter().map(TxOutput::leaf_hash).collect();
        merkle_root(&leaves)
    }

    /// The Lotus txid (see the module documentation).
    pub fn txid(&self) -> TxId {
        let (input_root, input_height) = self.inputs_merkle_root();
        let (output_root, output_height) = self.outputs_merkle_root();
        let mut data = Vec::with_capacity(4 + 33 + 33 + 4);
        data.extend_from_slice(&self.version.to_le_bytes());
        data.extend_from_slice(&input_root);
        data.push(input_height);
        data.extend_from_slice(&output_root);
        data.push(output_height);
        data.extend_from_slice(&self.lock_time.to_le_bytes());
        TxId::from_internal_bytes(sha256d(&data))
    }

    /// `SHA256d` of the serialization (changes with the signatures).
    pub fn hash(&self) -> TxHash {
        TxHash::from_internal_bytes(sha256d(&self.serialize()))
    }

    /// The sum of the output values, or `None` on overflow.
    pub fn total_output_value(&self) -> Option<u64> {
        self.outputs
            .iter()
            .try_fold(0u64, |sum, o| sum.checked_add(o.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

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
                    DecodeError::Truncated { .. } | DecodeError::TooManyItems { .. }
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
            Err(DecodeError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn non_canonical_and_oversized_compact_size() {
        let mut raw = 1i32.to_le_bytes().to_vec();
        raw.extend_from_slice(&[0xfd, 0x01, 0x00]);
        assert_eq!(
            Transaction::parse(&raw),
            Err(DecodeError::NonCanonicalCompactSize {
                what: "inputs",
                offset: 4
            })
        );
        let mut raw = 1i32.to_le_bytes().to_vec();
        raw.push(0xff);
        raw.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Transaction::parse(&raw),
            Err(DecodeError::OversizedCompactSize {
                what: "inputs",
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
            Err(DecodeError::TooManyItems {
                count: 0x0200_0000,
                ..
            })
        ));
    }

    #[test]
    fn empty_lists_and_huge_values() {
        let mut tx = sample();
        tx.inputs.clear();
        assert_eq!(
            Transaction::parse(&tx.serialize()),
            Err(DecodeError::NoInputs)
        );
        let mut tx = sample();
        tx.outputs.clear();
        assert_eq!(
            Transaction::parse(&tx.serialize()),
            Err(DecodeError::NoOutputs)
        );
        let mut tx = sample();
        tx.outputs[1].value = MAX_MONEY_SATS + 1;
        assert_eq!(
            Transaction::parse(&tx.serialize()),
            Err(DecodeError::ValueOutOfRange {
                index: 1,
                value: MAX_MONEY_SATS + 1
            })
        );
    }

    #[test]
    fn txid_ignores_signatures_but_not_outputs() {
        let tx = sample();
        let mut signed = tx.clone();
        signed.inputs[0].script_sig = vec![1, 2, 3, 4];
        assert_eq!(tx.txid(), signed.txid());
        assert_ne!(tx.hash(), signed.hash());
        let mut other = tx.clone();
        other.outputs[0].value += 1;
        assert_ne!(tx.txid(), other.txid());
        // Not the Bitcoin txid.
        assert_ne!(tx.txid().internal_bytes(), tx.hash().internal_bytes());
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
