//! The burn identity a signer advertisement may carry: enough for a peer
//! that has never seen the identity to check it against its own indexer.
//!
//! A claim is plain data here (this crate does no I/O and knows nothing of
//! Chronik): the registration burn's outpoint, the key it registered and that
//! key's ownership signature, then every key rotation in order. The identity
//! id is derived from the registration outpoint by `musig2-identity`; the
//! last key of the chain must be the advertised key.

use musig2_core::{PublicKey, Signature};

use crate::encoding::Writer;
use crate::rule::Malformation;

/// Rotations one claim may carry; a longer history is refused, so that an
/// advertisement costs a verifier a bounded number of indexer look-ups.
pub const MAX_CLAIMED_ROTATIONS: usize = 8;

/// A transaction output, as the txid's internal bytes and an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ClaimedOutPoint {
    /// The txid, in internal byte order (as hashed, not as displayed).
    pub txid: [u8; 32],
    /// The output index.
    pub vout: u32,
}

/// A key rotation within a claim: the new key, both keys' signatures over
/// the rotation digest, and the burn that paid for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ClaimedRotation {
    /// The key installed.
    pub new_key: PublicKey,
    /// The previous key's signature.
    pub old_key_signature: Signature,
    /// The new key's signature.
    pub new_key_signature: Signature,
    /// The rotation burn.
    pub burn: ClaimedOutPoint,
}

/// A burn identity claimed by a signer advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IdentityClaim {
    /// The registration burn (the identity id is derived from it).
    pub burn: ClaimedOutPoint,
    /// The key the registration burn commits to.
    pub registered_key: PublicKey,
    /// That key's signature over the registration digest.
    pub ownership_signature: Signature,
    /// Every rotation since, oldest first.
    pub rotations: Vec<ClaimedRotation>,
}

impl IdentityClaim {
    /// The key the claim ends at: the last rotation's, else the registered one.
    pub fn current_key(&self) -> PublicKey {
        self.rotations
            .last()
            .map_or(self.registered_key, |r| r.new_key)
    }

    /// Structural checks: a bounded history that ends at `advertised`.
    pub fn validate(&self, advertised: &PublicKey) -> Result<(), Malformation> {
        if self.rotations.len() > MAX_CLAIMED_ROTATIONS {
            return Err(Malformation::TooManyRotations {
                count: self.rotations.len(),
                max: MAX_CLAIMED_ROTATIONS,
            });
        }
        if self.current_key() != *advertised {
            return Err(Malformation::IdentityKeyMismatch);
        }
        Ok(())
    }

    /// Appends the canonical encoding (part of the advertisement's signed bytes).
    pub(crate) fn encode(&self, w: &mut Writer) {
        w.raw(&self.burn.txid)
            .varint(u64::from(self.burn.vout))
            .bytes(&self.registered_key.to_bytes())
            .raw(&self.ownership_signature.to_bytes());
        w.len(self.rotations.len());
        for r in &self.rotations {
            w.bytes(&r.new_key.to_bytes())
                .raw(&r.old_key_signature.to_bytes())
                .raw(&r.new_key_signature.to_bytes())
                .raw(&r.burn.txid)
                .varint(u64::from(r.burn.vout));
        }
    }
}
