//! The sighash type a session's final signature carries, decided by the
//! signing request's metadata (feature row 12 of the reference:
//! "sighash auto-detect").

use crate::announcement::{InputScriptType, SigningMetadata};

/// `SIGHASH_ALL | SIGHASH_LOTUS`: the default of a Lotus Taproot key-path spend.
pub const SIGHASH_ALL_LOTUS: u8 = 0x61;
/// `SIGHASH_ALL | SIGHASH_FORKID`: the default of a pay-to-public-key-hash spend.
pub const SIGHASH_ALL_FORKID: u8 = 0x41;

impl SigningMetadata {
    /// The sighash type byte of the final signature (appended to the 64-byte
    /// signature in a transaction), or `None` when the request does not say
    /// what is spent:
    ///
    /// 1. an explicit [`sighash_type`](Self::sighash_type) wins;
    /// 2. otherwise a Taproot input gets [`SIGHASH_ALL_LOTUS`] (as lotus-sdk's
    ///    `MuSigSessionManager.getFinalSignature`, `session.ts:696-710`);
    /// 3. otherwise a pay-to-public-key-hash input gets [`SIGHASH_ALL_FORKID`]
    ///    (**ours**: lotus-sdk leaves it unset);
    /// 4. otherwise none.
    ///
    /// lotus-sdk also treats an explicit `0` as unset (JavaScript
    /// truthiness); here an explicit value is always kept. The coordinator's
    /// sessions apply this same rule.
    pub fn final_sighash_type(&self) -> Option<u8> {
        match (self.sighash_type, self.input_script_type) {
            (Some(explicit), _) => Some(explicit),
            (None, Some(InputScriptType::Taproot)) => Some(SIGHASH_ALL_LOTUS),
            (None, Some(InputScriptType::PubKeyHash)) => Some(SIGHASH_ALL_FORKID),
            (None, Some(InputScriptType::ScriptHash) | None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(sighash: Option<u8>, script: Option<InputScriptType>) -> SigningMetadata {
        SigningMetadata {
            input_script_type: script,
            sighash_type: sighash,
            ..SigningMetadata::default()
        }
    }

    #[test]
    fn explicit_then_taproot_then_pubkeyhash_then_none() {
        use InputScriptType::{PubKeyHash, ScriptHash, Taproot};
        for script in [None, Some(Taproot), Some(PubKeyHash), Some(ScriptHash)] {
            assert_eq!(
                metadata(Some(0x01), script).final_sighash_type(),
                Some(0x01)
            );
            assert_eq!(metadata(Some(0), script).final_sighash_type(), Some(0));
        }
        assert_eq!(
            metadata(None, Some(Taproot)).final_sighash_type(),
            Some(0x61)
        );
        assert_eq!(
            metadata(None, Some(PubKeyHash)).final_sighash_type(),
            Some(0x41)
        );
        assert_eq!(metadata(None, Some(ScriptHash)).final_sighash_type(), None);
        assert_eq!(SigningMetadata::default().final_sighash_type(), None);
    }
}
