//! Verification of a transaction's signatures against the outputs it spends.
//!
//! Supported spends, checked as lotusd's interpreter checks them:
//!
//! * **P2PKH**: scriptSig `<sig> <pubkey>` (pushes only); `HASH160(pubkey)` must
//!   match; the public key is 33-byte compressed or 65-byte uncompressed; a
//!   65-byte signature (64 + hash type) is Lotus Schnorr, anything else ECDSA
//!   in strict DER (BIP66) with a low `s`; the hash type must be FORKID or LOTUS
//!   and LOTUS commits to the execution data (see [`crate::sighash`]).
//! * **P2TR key path**: scriptSig is one push of a 65-byte Lotus Schnorr
//!   signature over the SIGHASH_LOTUS digest without execution data, valid for
//!   the commitment key; any other hash type is refused
//!   (lotusd `sigencoding.cpp:224-227`).
//!
//! Everything else (P2SH, bare scripts, P2TR script paths) is reported as
//! unsupported, never as valid.

use musig2_core::{PublicKey, Signature, schnorr};

use crate::error::{InputError, SighashError, VerifyError};
use crate::hash::hash160;
use crate::script::{ScriptKind, pushes};
use crate::sighash::{ScriptExecution, SighashAlgorithm, SighashType};
use crate::transaction::{Transaction, TxOutput};

impl Transaction {
    /// Verifies every input's signature; `spent_outputs` are the outputs the
    /// inputs spend, in input order. The error names the first failing input.
    pub fn verify(&self, spent_outputs: &[TxOutput]) -> Result<(), VerifyError> {
        if spent_outputs.len() != self.inputs.len() {
            return Err(VerifyError::SpentOutputCount {
                spent: spent_outputs.len(),
                inputs: self.inputs.len(),
            });
        }
        for index in 0..self.inputs.len() {
            self.verify_input(index, spent_outputs)
                .map_err(|reason| VerifyError::Input { index, reason })?;
        }
        Ok(())
    }

    /// Verifies the signature of input `index`.
    pub fn verify_input(&self, index: usize, spent_outputs: &[TxOutput]) -> Result<(), InputError> {
        let inputs = self.inputs.len();
        if spent_outputs.len() != inputs {
            return Err(SighashError::SpentOutputCount {
                spent: spent_outputs.len(),
                inputs,
            }
            .into());
        }
        let (Some(input), Some(spent)) = (self.inputs.get(index), spent_outputs.get(index)) else {
            return Err(SighashError::InputOutOfRange { index, inputs }.into());
        };
        match ScriptKind::of(&spent.script) {
            ScriptKind::P2pkh { hash } => {
                let [sig, key] = pushes(&input.script_sig)
                    .ok_or(InputError::MalformedScriptSig("not push-only"))?[..]
                else {
                    return Err(InputError::MalformedScriptSig(
                        "P2PKH needs exactly <sig> <pubkey>",
                    ));
                };
                if hash160(key) != hash {
                    return Err(InputError::PublicKeyMismatch);
                }
                let key = parse_strict_pubkey(key)?;
                let (&type_byte, body) = sig.split_last().ok_or(InputError::InvalidSignature)?;
                let sighash_type = SighashType::from_u8(type_byte);
                let sighash = self.sighash(index, spent_outputs, sighash_type)?;
                if body.len() == Signature::LEN {
                    let sig =
                        Signature::from_slice(body).map_err(|_| InputError::InvalidSignature)?;
                    schnorr::verify(&key, &sighash.to_bytes(), &sig)
                        .map_err(|_| InputError::InvalidSignature)
                } else {
                    verify_ecdsa(&key, &sighash.to_bytes(), body)
                }
            }
            ScriptKind::P2tr { commitment, .. } => {
                let pushed = pushes(&input.script_sig)
                    .ok_or(InputError::MalformedScriptSig("not push-only"))?;
                let [sig] = pushed[..] else {
                    return Err(InputError::ScriptPathUnsupported);
                };
                let (&type_byte, body) = sig.split_last().ok_or(InputError::InvalidSignature)?;
                let sighash_type = SighashType::from_u8(type_byte);
                let (algorithm, _) = sighash_type.decode()?;
                if algorithm != SighashAlgorithm::Lotus {
                    return Err(InputError::TaprootKeySpendNotLotus(sighash_type));
                }
                let key = PublicKey::from_bytes(&commitment)
                    .map_err(|_| InputError::InvalidCommitment)?;
                let sig = Signature::from_slice(body).map_err(|_| InputError::InvalidSignature)?;
                let sighash = self.sighash_with(
                    index,
                    spent_outputs,
                    sighash_type,
                    ScriptExecution::KeyPath,
                )?;
                schnorr::verify(&key, &sighash.to_bytes(), &sig)
                    .map_err(|_| InputError::InvalidSignature)
            }
            _ => Err(InputError::UnsupportedScript),
        }
    }
}

/// A 33-byte compressed (`02`/`03`) or 65-byte uncompressed (`04`) key
/// (STRICTENC), as the compressed [`PublicKey`] the Schnorr challenge uses.
fn parse_strict_pubkey(bytes: &[u8]) -> Result<PublicKey, InputError> {
    let point = match (bytes.len(), bytes.first()) {
        (33, Some(0x02 | 0x03)) | (65, Some(0x04)) => {
            secp256k1::PublicKey::from_slice(bytes).map_err(|_| InputError::InvalidPublicKey)?
        }
        _ => return Err(InputError::InvalidPublicKey),
    };
    PublicKey::from_bytes(&point.serialize()).map_err(|_| InputError::InvalidPublicKey)
}

fn verify_ecdsa(key: &PublicKey, msg: &[u8; 32], der: &[u8]) -> Result<(), InputError> {
    if !is_strict_der(der) {
        return Err(InputError::NonStrictDer);
    }
    let sig = secp256k1::ecdsa::Signature::from_der(der).map_err(|_| InputError::NonStrictDer)?;
    let key = secp256k1::PublicKey::from_byte_array_compressed(key.to_bytes())
        .map_err(|_| InputError::InvalidPublicKey)?;
    // libsecp256k1 refuses a high `s` (LOW_S).
    secp256k1::ecdsa::verify(&sig, secp256k1::Message::from_digest(*msg), &key)
        .map_err(|_| InputError::InvalidSignature)
}

/// BIP66 strict DER, for a signature without its hash-type byte.
fn is_strict_der(sig: &[u8]) -> bool {
    let at = |i: usize| sig.get(i).copied();
    let len = sig.len();
    if !(8..=72).contains(&len) {
        return false;
    }
    let (Some(0x30), Some(total), Some(0x02), Some(len_r)) = (at(0), at(1), at(2), at(3)) else {
        return false;
    };
    let len_r = usize::from(len_r);
    if usize::from(total) != len - 2 || 5 + len_r >= len {
        return false;
    }
    let Some(len_s) = at(5 + len_r).map(usize::from) else {
        return false;
    };
    if len_r + len_s + 6 != len || len_r == 0 || len_s == 0 {
        return false;
    }
    let integer_ok = |start: usize, n: usize| match (at(start), at(start + 1)) {
        (Some(first), _) if first & 0x80 != 0 => false,
        (Some(0), Some(second)) if n > 1 && second & 0x80 == 0 => false,
        (Some(_), _) => true,
        (None, _) => false,
    };
    at(4 + len_r) == Some(0x02) && integer_ok(4, len_r) && integer_ok(6 + len_r, len_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::{OutPoint, TxId, TxInput};
    use alloc::vec;

    #[test]
    fn counts_and_unsupported_scripts() {
        let tx = Transaction {
            version: 2,
            inputs: vec![TxInput {
                prev_out: OutPoint::new(TxId::from_internal_bytes([1; 32]), 0),
                script_sig: vec![0x51],
                sequence: 0,
            }],
            outputs: vec![TxOutput::new(1, vec![0x6a])],
            lock_time: 0,
        };
        assert_eq!(
            tx.verify(&[]),
            Err(VerifyError::SpentOutputCount {
                spent: 0,
                inputs: 1
            })
        );
        let spent = [TxOutput::new(5, vec![0x51])];
        assert_eq!(
            tx.verify_input(1, &spent),
            Err(InputError::Sighash(SighashError::InputOutOfRange {
                index: 1,
                inputs: 1
            }))
        );
        assert_eq!(
            tx.verify(&spent),
            Err(VerifyError::Input {
                index: 0,
                reason: InputError::UnsupportedScript
            })
        );
        let p2pkh = [TxOutput::new(5, crate::script::p2pkh(&[0; 20]))];
        assert_eq!(
            tx.verify_input(0, &p2pkh),
            Err(InputError::MalformedScriptSig("not push-only"))
        );
    }

    #[test]
    fn strict_der() {
        // r = 1, s = 1.
        assert!(is_strict_der(&[0x30, 6, 2, 1, 1, 2, 1, 1]));
        // Negative r.
        assert!(!is_strict_der(&[0x30, 6, 2, 1, 0x81, 2, 1, 1]));
        // Padded r.
        assert!(!is_strict_der(&[0x30, 7, 2, 2, 0, 1, 2, 1, 1]));
        // Padding needed for a high bit is fine.
        assert!(is_strict_der(&[0x30, 7, 2, 2, 0, 0x81, 2, 1, 1]));
        // Wrong total length, wrong tags, truncation.
        assert!(!is_strict_der(&[0x30, 7, 2, 1, 1, 2, 1, 1]));
        assert!(!is_strict_der(&[0x31, 6, 2, 1, 1, 2, 1, 1]));
        assert!(!is_strict_der(&[0x30, 6, 2, 1, 1, 3, 1, 1]));
        assert!(!is_strict_der(&[0x30, 6, 2, 1, 1, 2, 1]));
        assert!(!is_strict_der(&[0x30, 6, 2, 0, 1, 2, 1, 1]));
    }
}
