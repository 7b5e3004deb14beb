//! Signing single-key inputs, and placing a MuSig2 key-path signature.
//!
//! Each call computes the consensus sighash, checks that the key owns the
//! spent output (lotus-sdk lets any key "sign" any P2TR input, observation
//! `signSchnorr-wrong-key-on-taproot`), signs with Lotus Schnorr and
//! lotus-sdk's deterministic nonce (so the result is byte-identical to
//! lotus-sdk's), writes the scriptSig, and verifies the input.

use musig2_core::{SecretKey, Signature, schnorr};

use crate::error::{InputError, SighashError, SignError};
use crate::hash::hash160;
use crate::script::{self, ScriptKind};
use crate::sighash::{SighashAlgorithm, SighashType};
use crate::taproot::tweak_secret_key;
use crate::transaction::{Transaction, TxOutput};

impl Transaction {
    /// Signs P2PKH input `index` with Lotus Schnorr and writes
    /// `<sig‖type> <pubkey33>` as its scriptSig.
    pub fn sign_p2pkh_schnorr(
        &mut self,
        index: usize,
        spent_outputs: &[TxOutput],
        sighash_type: SighashType,
        secret: &SecretKey,
    ) -> Result<(), SignError> {
        let spent = self.spent_for_signing(index, spent_outputs)?;
        let ScriptKind::P2pkh { hash } = ScriptKind::of(&spent.script) else {
            return Err(SignError::WrongScript { index });
        };
        let key = secret.public_key();
        if hash160(&key.to_bytes()) != hash {
            return Err(SignError::KeyMismatch { index });
        }
        let sighash = self.sighash(index, spent_outputs, sighash_type)?;
        let signature = schnorr::sign(secret, &sighash.to_bytes());
        let script_sig =
            script::p2pkh_script_sig(&signature.to_tx_bytes(sighash_type.to_u8()), &key);
        self.finish(index, spent_outputs, script_sig)
    }

    /// Signs P2TR input `index` by its key path with the single key whose
    /// internal secret is `internal_secret`, committing to `merkle_root`
    /// ([`KEY_PATH_ONLY`](crate::KEY_PATH_ONLY) for an output without scripts).
    /// `sighash_type` must be a SIGHASH_LOTUS type.
    pub fn sign_taproot_key_path(
        &mut self,
        index: usize,
        spent_outputs: &[TxOutput],
        sighash_type: SighashType,
        internal_secret: &SecretKey,
        merkle_root: &[u8; 32],
    ) -> Result<(), SignError> {
        let tweaked = tweak_secret_key(internal_secret, merkle_root)?;
        self.check_taproot(index, spent_outputs, sighash_type, &tweaked.public_key())?;
        let sighash = self.sighash(index, spent_outputs, sighash_type)?;
        let signature = schnorr::sign(&tweaked, &sighash.to_bytes());
        self.set_taproot_key_path_signature(index, spent_outputs, sighash_type, &signature)
    }

    /// Writes a key-path signature made elsewhere (a MuSig2 aggregate over
    /// [`Transaction::sighash`] with the Taproot-tweaked key aggregation
    /// context) as the scriptSig of P2TR input `index`, and verifies it.
    pub fn set_taproot_key_path_signature(
        &mut self,
        index: usize,
        spent_outputs: &[TxOutput],
        sighash_type: SighashType,
        signature: &Signature,
    ) -> Result<(), SignError> {
        let spent = self.spent_for_signing(index, spent_outputs)?;
        if !matches!(ScriptKind::of(&spent.script), ScriptKind::P2tr { .. }) {
            return Err(SignError::WrongScript { index });
        }
        let (algorithm, _) = sighash_type.decode()?;
        if algorithm != SighashAlgorithm::Lotus {
            return Err(SignError::Input {
                index,
                reason: InputError::TaprootKeySpendNotLotus(sighash_type),
            });
        }
        let script_sig =
            script::p2tr_key_path_script_sig(&signature.to_tx_bytes(sighash_type.to_u8()));
        self.finish(index, spent_outputs, script_sig)
    }

    fn check_taproot(
        &self,
        index: usize,
        spent_outputs: &[TxOutput],
        sighash_type: SighashType,
        commitment: &musig2_core::PublicKey,
    ) -> Result<(), SignError> {
        let spent = self.spent_for_signing(index, spent_outputs)?;
        let ScriptKind::P2tr {
            commitment: expected,
            ..
        } = ScriptKind::of(&spent.script)
        else {
            return Err(SignError::WrongScript { index });
        };
        if commitment.to_bytes() != expected {
            return Err(SignError::KeyMismatch { index });
        }
        let (algorithm, _) = sighash_type.decode()?;
        if algorithm != SighashAlgorithm::Lotus {
            return Err(SignError::Input {
                index,
                reason: InputError::TaprootKeySpendNotLotus(sighash_type),
            });
        }
        Ok(())
    }

    fn spent_for_signing<'s>(
        &self,
        index: usize,
        spent_outputs: &'s [TxOutput],
    ) -> Result<&'s TxOutput, SignError> {
        let inputs = self.inputs.len();
        if spent_outputs.len() != inputs {
            return Err(SighashError::SpentOutputCount {
                spent: spent_outputs.len(),
                inputs,
            }
            .into());
        }
        spent_outputs
            .get(index)
            .ok_or_else(|| SighashError::InputOutOfRange { index, inputs }.into())
    }

    /// Writes the scriptSig, then verifies the input; on failure the
    /// previous scriptSig is put back.
    fn finish(
        &mut self,
        index: usize,
        spent_outputs: &[TxOutput],
        script_sig: alloc::vec::Vec<u8>,
    ) -> Result<(), SignError> {
        let inputs = self.inputs.len();
        let input = self
            .inputs
            .get_mut(index)
            .ok_or(SighashError::InputOutOfRange { index, inputs })?;
        let previous = core::mem::replace(&mut input.script_sig, script_sig);
        if let Err(reason) = self.verify_input(index, spent_outputs) {
            if let Some(input) = self.inputs.get_mut(index) {
                input.script_sig = previous;
            }
            return Err(SignError::Input { index, reason });
        }
        Ok(())
    }
}
