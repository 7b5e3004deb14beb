//! Signature hashes: SIGHASH_FORKID (BIP143 as in Bitcoin Cash) and SIGHASH_LOTUS.
//!
//! The rules, with file:line references into lotus-sdk 0.2.0 and lotusd, are in
//! the repository's `docs/TRANSACTIONS.md`. Where lotus-sdk and lotusd disagree,
//! this module follows lotusd (consensus):
//!
//! * a SIGHASH_LOTUS signature checked by `OP_CHECKSIG` in a script (P2PKH and
//!   every other non-Taproot script) commits to execution data: `spend_type = 2`,
//!   the `OP_CODESEPARATOR` position and `SHA256d(executed script)`
//!   (lotusd `interpreter.cpp:955, 2209, 1813-1816`); lotus-sdk's `sighash()`
//!   omits them. Only a Taproot key-path spend has no execution data.
//! * version 0 is hashed as 0 (lotus-sdk hashes `version || 2`).
//!
//! The digest is `SHA256d(preimage)` in natural byte order, which is exactly the
//! 32-byte message that Lotus Schnorr and ECDSA sign.

use alloc::vec::Vec;
use core::fmt;

use crate::error::SighashError;
use crate::hash::{merkle_root, sha256d};
use crate::script::{ScriptKind, write_script};
use crate::transaction::{Transaction, TxOutput, write_hex};

/// A signature hash type: the byte appended to every transaction signature.
///
/// Bits 0-1 are the base type (ALL 1, NONE 2, SINGLE 3), bit 7 is
/// ANYONECANPAY, bits 5-6 select the algorithm (`0x40` FORKID, `0x60` LOTUS).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SighashType(u8);

impl SighashType {
    /// `SIGHASH_ALL | SIGHASH_FORKID` (0x41), the usual P2PKH type.
    pub const ALL_FORKID: Self = Self(0x41);
    /// `SIGHASH_NONE | SIGHASH_FORKID` (0x42).
    pub const NONE_FORKID: Self = Self(0x42);
    /// `SIGHASH_SINGLE | SIGHASH_FORKID` (0x43).
    pub const SINGLE_FORKID: Self = Self(0x43);
    /// `SIGHASH_ALL | SIGHASH_FORKID | SIGHASH_ANYONECANPAY` (0xc1).
    pub const ALL_FORKID_ANYONECANPAY: Self = Self(0xc1);
    /// `SIGHASH_NONE | SIGHASH_FORKID | SIGHASH_ANYONECANPAY` (0xc2).
    pub const NONE_FORKID_ANYONECANPAY: Self = Self(0xc2);
    /// `SIGHASH_SINGLE | SIGHASH_FORKID | SIGHASH_ANYONECANPAY` (0xc3).
    pub const SINGLE_FORKID_ANYONECANPAY: Self = Self(0xc3);
    /// `SIGHASH_ALL | SIGHASH_LOTUS` (0x61), the usual Taproot type.
    pub const ALL_LOTUS: Self = Self(0x61);
    /// `SIGHASH_NONE | SIGHASH_LOTUS` (0x62).
    pub const NONE_LOTUS: Self = Self(0x62);
    /// `SIGHASH_SINGLE | SIGHASH_LOTUS` (0x63).
    pub const SINGLE_LOTUS: Self = Self(0x63);
    /// `SIGHASH_ALL | SIGHASH_LOTUS | SIGHASH_ANYONECANPAY` (0xe1).
    pub const ALL_LOTUS_ANYONECANPAY: Self = Self(0xe1);
    /// `SIGHASH_NONE | SIGHASH_LOTUS | SIGHASH_ANYONECANPAY` (0xe2).
    pub const NONE_LOTUS_ANYONECANPAY: Self = Self(0xe2);
    /// `SIGHASH_SINGLE | SIGHASH_LOTUS | SIGHASH_ANYONECANPAY` (0xe3).
    pub const SINGLE_LOTUS_ANYONECANPAY: Self = Self(0xe3);

    /// The ANYONECANPAY bit.
    pub const ANYONECANPAY_BIT: u8 = 0x80;

    /// Any byte; whether it is usable is checked when hashing.
    pub const fn from_u8(byte: u8) -> Self {
        Self(byte)
    }

    /// The byte.
    pub const fn to_u8(self) -> u8 {
        self.0
    }

    /// Whether ANYONECANPAY is set.
    pub const fn anyone_can_pay(self) -> bool {
        self.0 & Self::ANYONECANPAY_BIT != 0
    }

    /// The algorithm and base type, or why the type is not usable on Lotus.
    ///
    /// FORKID: the base type is `type & 0x1f` and must be 1, 2 or 3 (as
    /// Bitcoin Cash's `IsDefinedHashtypeSignature`). LOTUS: the base type
    /// (`type & 3`) must not be 0 and bits `0x1c` must be clear
    /// (`sighash.ts:157-162`). Algorithm bits `0x00` (legacy) and `0x20`
    /// (reserved) are refused.
    pub fn decode(self) -> Result<(SighashAlgorithm, BaseType), SighashError> {
        let algorithm = match self.0 & 0x60 {
            0x40 => SighashAlgorithm::ForkId,
            0x60 => SighashAlgorithm::Lotus,
            _ => return Err(SighashError::UnsupportedAlgorithm(self)),
        };
        let base = match algorithm {
            SighashAlgorithm::ForkId => self.0 & 0x1f,
            SighashAlgorithm::Lotus if self.0 & 0x1c != 0 => {
                return Err(SighashError::UndefinedType(self));
            }
            SighashAlgorithm::Lotus => self.0 & 0x03,
        };
        let base = match base {
            1 => BaseType::All,
            2 => BaseType::None,
            3 => BaseType::Single,
            _ => return Err(SighashError::UndefinedType(self)),
        };
        Ok((algorithm, base))
    }
}

impl fmt::Display for SighashType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02x}", self.0)
    }
}

impl fmt::Debug for SighashType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SighashType(0x{:02x})", self.0)
    }
}

/// The digest algorithm a [`SighashType`] selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SighashAlgorithm {
    /// BIP143 as in Bitcoin Cash (`0x40`).
    ForkId,
    /// Lotus' Merkle-tree digest (`0x60`).
    Lotus,
}

/// Which outputs a signature commits to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaseType {
    /// All outputs.
    All,
    /// No output.
    None,
    /// The output at the input's index.
    Single,
}

/// A 32-byte signature hash, in the byte order that is signed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sighash([u8; 32]);

impl Sighash {
    /// From 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes (the message of the signature).
    pub const fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Display for Sighash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Sighash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sighash({self})")
    }
}

/// How the spent output is being executed, which decides what SIGHASH_LOTUS
/// commits to and what SIGHASH_FORKID uses as `scriptCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptExecution<'a> {
    /// A Taproot key-path spend: no execution data (`spend_type = 0`); FORKID
    /// uses the spent scriptPubKey as `scriptCode`. This is also what
    /// lotus-sdk's `sighash()` does for every input.
    KeyPath,
    /// `OP_CHECKSIG` run inside `executed_script` (`spend_type = 2`): LOTUS
    /// commits to `codeseparator_pos` and `SHA256d(executed_script)`; FORKID
    /// uses `executed_script` as `scriptCode`.
    Script {
        /// The script being run (for P2PKH, the spent scriptPubKey).
        executed_script: &'a [u8],
        /// The position of the last executed `OP_CODESEPARATOR`, `0xffffffff` if none.
        codeseparator_pos: u32,
    },
}

impl<'a> ScriptExecution<'a> {
    /// What lotusd's interpreter uses for a spend of `spent_script` with a
    /// signature in the scriptSig: a Taproot key path for P2TR, otherwise the
    /// scriptPubKey itself with no `OP_CODESEPARATOR` — right for P2PKH and
    /// bare scripts. A P2SH spend executes its redeem script, which the spent
    /// output does not contain: build [`ScriptExecution::Script`] with it.
    pub fn consensus(spent_script: &'a [u8]) -> Self {
        match ScriptKind::of(spent_script) {
            ScriptKind::P2tr { .. } => Self::KeyPath,
            _ => Self::Script {
                executed_script: spent_script,
                codeseparator_pos: u32::MAX,
            },
        }
    }
}

impl Transaction {
    /// The consensus signature hash of input `index` for `sighash_type`, with
    /// `spent_outputs` the outputs the inputs spend, in input order (see
    /// [`ScriptExecution::consensus`]).
    pub fn sighash(
        &self,
        index: usize,
        spent_outputs: &[TxOutput],
        sighash_type: SighashType,
    ) -> Result<Sighash, SighashError> {
        let spent = self.spent_output(index, spent_outputs)?;
        self.sighash_with(
            index,
            spent_outputs,
            sighash_type,
            ScriptExecution::consensus(&spent.script),
        )
    }

    /// The signature hash with explicit execution data.
    pub fn sighash_with(
        &self,
        index: usize,
        spent_outputs: &[TxOutput],
        sighash_type: SighashType,
        execution: ScriptExecution<'_>,
    ) -> Result<Sighash, SighashError> {
        let preimage = self.sighash_preimage(index, spent_outputs, sighash_type, execution)?;
        Ok(Sighash(sha256d(&preimage)))
    }

    /// The bytes whose `SHA256d` is the signature hash.
    pub fn sighash_preimage(
        &self,
        index: usize,
        spent_outputs: &[TxOutput],
        sighash_type: SighashType,
        execution: ScriptExecution<'_>,
    ) -> Result<Vec<u8>, SighashError> {
        self.spent_output(index, spent_outputs)?;
        let (algorithm, base) = sighash_type.decode()?;
        match algorithm {
            SighashAlgorithm::ForkId => {
                self.forkid_preimage(index, spent_outputs, sighash_type, base, execution)
            }
            SighashAlgorithm::Lotus => {
                self.lotus_preimage(index, spent_outputs, sighash_type, base, execution)
            }
        }
    }

    fn spent_output<'s>(
        &self,
        index: usize,
        spent_outputs: &'s [TxOutput],
    ) -> Result<&'s TxOutput, SighashError> {
        if spent_outputs.len() != self.inputs.len() {
            return Err(SighashError::SpentOutputCount {
                spent: spent_outputs.len(),
                inputs: self.inputs.len(),
            });
        }
        spent_outputs
            .get(index)
            .ok_or(SighashError::InputOutOfRange {
                index,
                inputs: self.inputs.len(),
            })
    }

    /// BIP143 with FORKID (`sighash.ts:283-355`; lotusd `interpreter.cpp:1726-1779`).
    fn forkid_preimage(
        &self,
        index: usize,
        spent_outputs: &[TxOutput],
        sighash_type: SighashType,
        base: BaseType,
        execution: ScriptExecution<'_>,
    ) -> Result<Vec<u8>, SighashError> {
        let inputs = self.inputs.len();
        let input = self
            .inputs
            .get(index)
            .ok_or(SighashError::InputOutOfRange { index, inputs })?;
        let spent = spent_outputs
            .get(index)
            .ok_or(SighashError::InputOutOfRange { index, inputs })?;
        let acp = sighash_type.anyone_can_pay();

        let hash_prevouts = if acp {
            [0u8; 32]
        } else {
            let mut data = Vec::with_capacity(36 * inputs);
            for i in &self.inputs {
                data.extend_from_slice(&i.prev_out.to_bytes());
            }
            sha256d(&data)
        };
        let hash_sequence = if acp || base != BaseType::All {
            [0u8; 32]
        } else {
            let mut data = Vec::with_capacity(4 * inputs);
            for i in &self.inputs {
                data.extend_from_slice(&i.sequence.to_le_bytes());
            }
            sha256d(&data)
        };
        let hash_outputs = match base {
            BaseType::All => {
                let mut data = Vec::new();
                for o in &self.outputs {
                    o.write(&mut data);
                }
                sha256d(&data)
            }
            // BIP143: SINGLE without an output at the input's index hashes zeros.
            BaseType::Single => self
                .outputs
                .get(index)
                .map_or([0u8; 32], TxOutput::leaf_hash),
            BaseType::None => [0u8; 32],
        };
        let script_code: &[u8] = match execution {
            ScriptExecution::KeyPath => &spent.script,
            ScriptExecution::Script {
                executed_script, ..
            } => executed_script,
        };

        let mut out = Vec::with_capacity(4 + 32 + 32 + 36 + 9 + script_code.len() + 8 + 4 + 32 + 8);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&hash_prevouts);
        out.extend_from_slice(&hash_sequence);
        out.extend_from_slice(&input.prev_out.to_bytes());
        write_script(&mut out, script_code);
        out.extend_from_slice(&spent.value.to_le_bytes());
        out.extend_from_slice(&input.sequence.to_le_bytes());
        out.extend_from_slice(&hash_outputs);
        out.extend_from_slice(&self.lock_time.to_le_bytes());
        out.extend_from_slice(&u32::from(sighash_type.to_u8()).to_le_bytes());
        Ok(out)
    }

    /// SIGHASH_LOTUS (`sighash.ts:139-278`; lotusd `interpreter.cpp:1782-1846`).
    fn lotus_preimage(
        &self,
        index: usize,
        spent_outputs: &[TxOutput],
        sighash_type: SighashType,
        base: BaseType,
        execution: ScriptExecution<'_>,
    ) -> Result<Vec<u8>, SighashError> {
        let inputs = self.inputs.len();
        let input = self
            .inputs
            .get(index)
            .ok_or(SighashError::InputOutOfRange { index, inputs })?;
        let spent = spent_outputs
            .get(index)
            .ok_or(SighashError::InputOutOfRange { index, inputs })?;
        let acp = sighash_type.anyone_can_pay();
        let single_output = match base {
            BaseType::Single => Some(self.outputs.get(index).ok_or(
                SighashError::SingleWithoutOutput {
                    sighash_type,
                    index,
                    outputs: self.outputs.len(),
                },
            )?),
            _ => None,
        };

        let mut out = Vec::with_capacity(256);
        // 1. The hash type.
        out.extend_from_slice(&u32::from(sighash_type.to_u8()).to_le_bytes());
        // 2. The input and the output it spends.
        let spend_type: u8 = match execution {
            ScriptExecution::KeyPath => 0,
            ScriptExecution::Script { .. } => 2,
        };
        let mut input_data = Vec::with_capacity(1 + 36 + 4 + 8 + 9 + spent.script.len());
        input_data.push(spend_type);
        input_data.extend_from_slice(&input.prev_out.to_bytes());
        input_data.extend_from_slice(&input.sequence.to_le_bytes());
        input_data.extend_from_slice(&spent.value.to_le_bytes());
        write_script(&mut input_data, &spent.script);
        out.extend_from_slice(&sha256d(&input_data));
        // 3. Execution data.
        if let ScriptExecution::Script {
            executed_script,
            codeseparator_pos,
        } = execution
        {
            out.extend_from_slice(&codeseparator_pos.to_le_bytes());
            out.extend_from_slice(&sha256d(executed_script));
        }
        // 4. The input index, every spent output and their total.
        if !acp {
            let index32 = u32::try_from(index)
                .map_err(|_| SighashError::InputOutOfRange { index, inputs })?;
            out.extend_from_slice(&index32.to_le_bytes());
            let leaves: Vec<[u8; 32]> = spent_outputs.iter().map(TxOutput::leaf_hash).collect();
            out.extend_from_slice(&merkle_root(&leaves).0);
            let total = spent_outputs
                .iter()
                .try_fold(0u64, |sum, o| sum.checked_add(o.value))
                .ok_or(SighashError::AmountOverflow { what: "spent" })?;
            out.extend_from_slice(&total.to_le_bytes());
        }
        // 5. The total output amount.
        if base == BaseType::All {
            let total = self
                .total_output_value()
                .ok_or(SighashError::AmountOverflow { what: "output" })?;
            out.extend_from_slice(&total.to_le_bytes());
        }
        // 6. The version, as is (lotus-sdk: `version || 2`).
        out.extend_from_slice(&self.version.to_le_bytes());
        // 7. Every input.
        if !acp {
            let (root, height) = self.inputs_merkle_root();
            out.extend_from_slice(&root);
            out.push(height);
        }
        // 8. The output at the input's index.
        if let Some(output) = single_output {
            out.extend_from_slice(&output.leaf_hash());
        }
        // 9. Every output.
        if base == BaseType::All {
            let (root, height) = self.outputs_merkle_root();
            out.extend_from_slice(&root);
            out.push(height);
        }
        // 10. The lock time.
        out.extend_from_slice(&self.lock_time.to_le_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_decoding() {
        use BaseType::*;
        use SighashAlgorithm::*;
        assert_eq!(SighashType::ALL_FORKID.decode(), Ok((ForkId, All)));
        assert_eq!(SighashType::from_u8(0xc2).decode(), Ok((ForkId, None)));
        assert_eq!(SighashType::SINGLE_LOTUS.decode(), Ok((Lotus, Single)));
        assert_eq!(SighashType::from_u8(0xe2).decode(), Ok((Lotus, None)));
        for bad in [0x00u8, 0x01, 0x21, 0x81, 0xa1] {
            assert_eq!(
                SighashType::from_u8(bad).decode(),
                Err(SighashError::UnsupportedAlgorithm(SighashType::from_u8(
                    bad
                )))
            );
        }
        for bad in [0x40u8, 0x44, 0x60, 0x64, 0x70, 0x68, 0xe0, 0x5f] {
            assert_eq!(
                SighashType::from_u8(bad).decode(),
                Err(SighashError::UndefinedType(SighashType::from_u8(bad))),
                "{bad:#x}"
            );
        }
    }
}
