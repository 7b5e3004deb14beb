//! The Lotus Taproot commitment (`taproot.ts:138-244, 509-517`):
//!
//! ```text
//! t  = H_TapTweak(ser33(P) ‖ merkle_root)     merkle_root = 0^32 for key-path-only outputs
//! Q  = P + t·G                                 33-byte compressed, parity kept (not x-only)
//! d' = (d + t) mod n                           the key-path signing key
//! ```
//!
//! `P` is the internal key: a single key, or a MuSig2 aggregate key from
//! [`musig2_core::KeyAggContext::aggregate_pubkey`]. For MuSig2 key-path
//! signing, [`musig2_core::KeyAggContext::with_taproot_tweak`] gives a context
//! whose aggregate key is the same `Q`. A state in the script does not enter
//! the tweak.

use musig2_core::hash::tagged_hash;
use musig2_core::{PublicKey, SecretKey};

use crate::error::TaprootError;
use crate::script;

/// The merkle root of a key-path-only output.
pub const KEY_PATH_ONLY: [u8; 32] = [0u8; 32];

/// `H_TapTweak(ser33(P) ‖ merkle_root)`.
pub fn taproot_tweak(internal_key: &PublicKey, merkle_root: &[u8; 32]) -> [u8; 32] {
    let mut data = [0u8; 65];
    let (key, root) = data.split_at_mut(33);
    key.copy_from_slice(&internal_key.to_bytes());
    root.copy_from_slice(merkle_root);
    tagged_hash("TapTweak", &data)
}

/// A Taproot output key: the internal key, the merkle root, the tweak and the
/// commitment key `Q` that goes into the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaprootKey {
    internal_key: PublicKey,
    merkle_root: [u8; 32],
    tweak: [u8; 32],
    commitment: PublicKey,
}

impl TaprootKey {
    /// Commits to `internal_key` and `merkle_root` (use [`KEY_PATH_ONLY`] for
    /// an output without scripts).
    pub fn new(internal_key: &PublicKey, merkle_root: &[u8; 32]) -> Result<Self, TaprootError> {
        let tweak = taproot_tweak(internal_key, merkle_root);
        let scalar =
            secp256k1::Scalar::from_be_bytes(tweak).map_err(|_| TaprootError::TweakOutOfRange)?;
        let point = secp256k1::PublicKey::from_byte_array_compressed(internal_key.to_bytes())
            .map_err(|_| TaprootError::TweakInfinity)?
            .add_exp_tweak(&scalar)
            .map_err(|_| TaprootError::TweakInfinity)?;
        let commitment =
            PublicKey::from_bytes(&point.serialize()).map_err(|_| TaprootError::TweakInfinity)?;
        Ok(Self {
            internal_key: *internal_key,
            merkle_root: *merkle_root,
            tweak,
            commitment,
        })
    }

    /// The internal key `P`.
    pub fn internal_key(&self) -> PublicKey {
        self.internal_key
    }

    /// The merkle root committed to.
    pub fn merkle_root(&self) -> [u8; 32] {
        self.merkle_root
    }

    /// The tweak `t`.
    pub fn tweak(&self) -> [u8; 32] {
        self.tweak
    }

    /// The commitment key `Q = P + t·G`.
    pub fn commitment(&self) -> PublicKey {
        self.commitment
    }

    /// The P2TR scriptPubKey, with an optional 32-byte state.
    pub fn script_pubkey(&self, state: Option<&[u8; 32]>) -> alloc::vec::Vec<u8> {
        script::p2tr(&self.commitment, state)
    }
}

/// The key-path signing key `d' = (d + t) mod n` of a single-key output whose
/// internal key is `d·G`.
pub fn tweak_secret_key(
    internal_secret: &SecretKey,
    merkle_root: &[u8; 32],
) -> Result<SecretKey, TaprootError> {
    let tweak = taproot_tweak(&internal_secret.public_key(), merkle_root);
    let scalar =
        secp256k1::Scalar::from_be_bytes(tweak).map_err(|_| TaprootError::TweakOutOfRange)?;
    let secret = secp256k1::SecretKey::from_secret_bytes(*internal_secret.to_secret_bytes())
        .map_err(|_| TaprootError::TweakInfinity)?
        .add_tweak(&scalar)
        .map_err(|_| TaprootError::TweakInfinity)?;
    SecretKey::from_bytes(&secret.to_secret_bytes()).map_err(|_| TaprootError::TweakInfinity)
}
