//! Identity ids, the signed messages, and the identity record.
//!
//! # Identity id
//!
//! ```text
//! identity_id = SHA256(txid_display_bytes || index)
//! index       = u8(vout)           if vout < 256   (lotus-sdk's encoding)
//!             = u32_le(vout)       if vout ≥ 256   (ours)
//! ```
//!
//! `txid_display_bytes` are the 32 bytes of the txid **as displayed** (the
//! hex-decoded display string, i.e. the reverse of the hash output), as
//! lotus-sdk's `Buffer.from(txId, 'hex')`. lotus-sdk writes the index as one
//! byte (`Buffer.from([outputIndex])`), so for `vout ≥ 256` it silently uses
//! `vout mod 256` and outputs 0 and 256 of the same burn transaction collide.
//! We keep lotus-sdk's bytes for `vout < 256` (every id lotus-sdk computes
//! correctly is the same here) and use four little-endian bytes above, which
//! makes the preimage 36 bytes instead of 33: the two forms cannot collide with
//! each other, and each is injective, so distinct outpoints give distinct ids.
//!
//! # Signed messages
//!
//! Both proofs are Lotus Schnorr signatures over the SHA-256 of a message, as
//! lotus-sdk's `IdentityManager.verifySignature` does
//! (`Schnorr.verify(SHA256(message), sig, key, 'big')`):
//!
//! * registration (ownership): `message = identity_id` (32 bytes), signed by
//!   the key in the burn;
//! * key rotation: `message = identity_id || "KEY_ROTATION" || ser33(new_key)`
//!   (77 bytes), signed by the old key (authorisation) and by the new key
//!   (ownership).

use core::fmt;
use core::str::FromStr;

use musig2_core::hash::sha256;
use musig2_core::{PublicKey, SecretKey, Signature, schnorr};
use serde::{Deserialize, Serialize};

use crate::hexfmt::{self, ParseHexError};
use crate::reputation::Reputation;
use crate::tx::OutPoint;

/// The ASCII tag in the rotation message.
pub const ROTATION_TAG: &[u8; 12] = b"KEY_ROTATION";

/// An identity id: `SHA256(txid || index)` of the registration burn.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentityId([u8; 32]);

impl IdentityId {
    /// The id of the identity registered by the burn at `burn`.
    pub fn derive(burn: &OutPoint) -> Self {
        Self(sha256(&Self::preimage(burn)))
    }

    /// The hashed bytes: display-order txid, then the index (one byte below
    /// 256, four little-endian bytes from 256 on).
    pub fn preimage(burn: &OutPoint) -> Vec<u8> {
        let mut data = Vec::with_capacity(36);
        data.extend_from_slice(&burn.txid.display_bytes());
        match u8::try_from(burn.vout) {
            Ok(small) => data.push(small),
            Err(_) => data.extend_from_slice(&burn.vout.to_le_bytes()),
        }
        data
    }

    /// From the 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub const fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Display for IdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hexfmt::write(f, &self.0)
    }
}

impl fmt::Debug for IdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityId({self})")
    }
}

impl FromStr for IdentityId {
    type Err = ParseHexError;
    fn from_str(s: &str) -> Result<Self, ParseHexError> {
        Ok(Self(hexfmt::decode_array(s, "identity id")?))
    }
}

/// The 32-byte digest signed to prove ownership at registration:
/// `SHA256(identity_id)`.
pub fn registration_digest(id: &IdentityId) -> [u8; 32] {
    sha256(&id.0)
}

/// The rotation message `identity_id || "KEY_ROTATION" || ser33(new_key)`.
pub fn rotation_message(id: &IdentityId, new_key: &PublicKey) -> [u8; 77] {
    let mut out = [0u8; 77];
    let parts: [&[u8]; 3] = [&id.0, ROTATION_TAG, &new_key.to_bytes()];
    for (dst, src) in out.iter_mut().zip(parts.into_iter().flatten()) {
        *dst = *src;
    }
    out
}

/// The 32-byte digest signed for a rotation: `SHA256(rotation_message)`.
pub fn rotation_digest(id: &IdentityId, new_key: &PublicKey) -> [u8; 32] {
    sha256(&rotation_message(id, new_key))
}

/// The ownership signature a registrant presents.
pub fn sign_registration(secret: &SecretKey, id: &IdentityId) -> Signature {
    schnorr::sign(secret, &registration_digest(id))
}

/// A rotation signature (by the old key or by the new key).
pub fn sign_rotation(secret: &SecretKey, id: &IdentityId, new_key: &PublicKey) -> Signature {
    schnorr::sign(secret, &rotation_digest(id, new_key))
}

/// Which signature a check was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureRole {
    /// The registrant's proof of ownership of the burn's key.
    Ownership,
    /// The old key authorising a rotation.
    OldKey,
    /// The new key proving ownership in a rotation.
    NewKey,
}

impl fmt::Display for SignatureRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ownership => "ownership signature",
            Self::OldKey => "old-key signature",
            Self::NewKey => "new-key signature",
        })
    }
}

/// A verified burn as recorded in an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurnProof {
    /// The burn output.
    pub outpoint: OutPoint,
    /// Satoshis burned.
    pub amount_sats: u64,
    /// Height of the block that holds it.
    pub block_height: u32,
    /// Confirmations when it was verified.
    pub confirmations: u32,
}

/// What authorised a key that replaced another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationProof {
    /// The rotation burn.
    pub burn: BurnProof,
    /// The old key's signature over the rotation digest.
    pub old_key_signature: Signature,
    /// The new key's signature over the rotation digest.
    pub new_key_signature: Signature,
}

/// One key in an identity's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key.
    pub public_key: PublicKey,
    /// When it became the identity's key (ms since the epoch).
    pub activated_at_ms: u64,
    /// When it was replaced, if it has been.
    pub revoked_at_ms: Option<u64>,
    /// The rotation that installed it (`None` for the registered key).
    pub rotation: Option<RotationProof>,
}

/// Why an identity is banned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BanReason {
    /// Its reputation reached 0.
    ReputationExhausted,
    /// An operator banned it.
    Manual(String),
}

impl fmt::Display for BanReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReputationExhausted => f.write_str("reputation reached zero"),
            Self::Manual(reason) => write!(f, "banned by operator: {reason}"),
        }
    }
}

/// A ban: permanent, kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Why.
    pub reason: BanReason,
}

/// A registered identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub(crate) id: IdentityId,
    pub(crate) registration: BurnProof,
    pub(crate) ownership_signature: Signature,
    pub(crate) current: KeyRecord,
    pub(crate) previous: Vec<KeyRecord>,
    pub(crate) reputation: Reputation,
    pub(crate) ban: Option<Ban>,
}

impl Identity {
    /// The id.
    pub fn id(&self) -> IdentityId {
        self.id
    }

    /// The registration burn.
    pub fn registration_burn(&self) -> &BurnProof {
        &self.registration
    }

    /// The registration's ownership signature.
    pub fn ownership_signature(&self) -> &Signature {
        &self.ownership_signature
    }

    /// The key the identity signs with now.
    pub fn current_key(&self) -> PublicKey {
        self.current.public_key
    }

    /// When the identity was registered (ms since the epoch).
    pub fn registered_at_ms(&self) -> u64 {
        self.previous
            .first()
            .unwrap_or(&self.current)
            .activated_at_ms
    }

    /// Every key, oldest first; the last is the current key.
    pub fn key_history(&self) -> impl Iterator<Item = &KeyRecord> {
        self.previous.iter().chain(core::iter::once(&self.current))
    }

    /// The rotation burns, oldest first.
    pub fn rotation_burns(&self) -> impl Iterator<Item = &BurnProof> {
        self.key_history()
            .filter_map(|k| k.rotation.as_ref().map(|r| &r.burn))
    }

    /// Every burn outpoint this identity has consumed.
    pub fn burns(&self) -> impl Iterator<Item = OutPoint> + '_ {
        core::iter::once(self.registration.outpoint)
            .chain(self.rotation_burns().map(|b| b.outpoint))
    }

    /// The reputation.
    pub fn reputation(&self) -> &Reputation {
        &self.reputation
    }

    /// The ban, if banned.
    pub fn ban(&self) -> Option<&Ban> {
        self.ban.as_ref()
    }

    /// Whether banned.
    pub fn is_banned(&self) -> bool {
        self.ban.is_some()
    }

    /// Checks the record's invariants (used when loading from disk): id matches
    /// the registration burn, reputation consistent, a banned-at-zero rule,
    /// keys revoked in order.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        if IdentityId::derive(&self.registration.outpoint) != self.id {
            return Err("id does not match the registration burn");
        }
        self.reputation.check()?;
        if self.reputation.score() == 0 && self.ban.is_none() {
            return Err("score 0 without a ban");
        }
        if self.current.revoked_at_ms.is_some() {
            return Err("current key is revoked");
        }
        if self.current.rotation.is_none() && !self.previous.is_empty() {
            return Err("rotated key without a rotation proof");
        }
        if self.previous.iter().any(|k| k.revoked_at_ms.is_none()) {
            return Err("previous key not revoked");
        }
        Ok(())
    }
}

/// A registered identity for unit tests: burn `[seed; 32]:0`, key `[seed; 32]`.
#[cfg(test)]
pub(crate) fn test_identity(seed: u8, key_seed: u8) -> Identity {
    let outpoint = OutPoint::new(crate::tx::TxId::from_internal_bytes([seed; 32]), 0);
    let id = IdentityId::derive(&outpoint);
    let key = SecretKey::from_bytes(&[key_seed; 32]).unwrap().public_key();
    Identity {
        id,
        registration: BurnProof {
            outpoint,
            amount_sats: 1_000_000_000,
            block_height: 10,
            confirmations: 144,
        },
        ownership_signature: Signature::from_bytes(&[seed; 64]),
        current: KeyRecord {
            public_key: key,
            activated_at_ms: 5,
            revoked_at_ms: None,
            rotation: None,
        },
        previous: Vec::new(),
        reputation: Reputation::new(1_000_000_000, 5),
        ban: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::TxId;

    fn txid() -> TxId {
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
            .parse()
            .unwrap()
    }

    #[test]
    fn id_uses_display_order_and_one_byte_index_below_256() {
        let burn = OutPoint::new(txid(), 7);
        let pre = IdentityId::preimage(&burn);
        assert_eq!(pre.len(), 33);
        assert_eq!(pre[0], 0x00);
        assert_eq!(pre[1], 0x11);
        assert_eq!(pre[32], 7);
        assert_eq!(IdentityId::derive(&burn).to_bytes(), sha256(&pre));
    }

    #[test]
    fn indexes_from_256_use_four_bytes_and_do_not_collide() {
        let t = txid();
        let pre = IdentityId::preimage(&OutPoint::new(t, 256));
        assert_eq!(&pre[32..], &[0, 1, 0, 0]);
        let ids: std::collections::HashSet<_> = [0u32, 1, 255, 256, 257, 511, 512, 65_536]
            .iter()
            .map(|&v| IdentityId::derive(&OutPoint::new(t, v)))
            .collect();
        assert_eq!(ids.len(), 8);
    }

    #[test]
    fn rotation_message_layout() {
        let key = SecretKey::from_bytes(&[5; 32]).unwrap().public_key();
        let id = IdentityId::from_bytes([0xaa; 32]);
        let m = rotation_message(&id, &key);
        assert_eq!(&m[..32], &[0xaa; 32]);
        assert_eq!(&m[32..44], b"KEY_ROTATION");
        assert_eq!(&m[44..], &key.to_bytes());
    }

    #[test]
    fn signatures_verify_over_the_digests() {
        let sk = SecretKey::from_bytes(&[6; 32]).unwrap();
        let new = SecretKey::from_bytes(&[8; 32]).unwrap().public_key();
        let id = IdentityId::from_bytes([1; 32]);
        let sig = sign_registration(&sk, &id);
        assert!(schnorr::verify(&sk.public_key(), &registration_digest(&id), &sig).is_ok());
        assert!(schnorr::verify(&sk.public_key(), &id.to_bytes(), &sig).is_err());
        let rot = sign_rotation(&sk, &id, &new);
        assert!(schnorr::verify(&sk.public_key(), &rotation_digest(&id, &new), &rot).is_ok());
    }

    #[test]
    fn id_hex_round_trip() {
        let id = IdentityId::from_bytes([0x5a; 32]);
        assert_eq!(id.to_string().parse::<IdentityId>(), Ok(id));
        assert!("5a".parse::<IdentityId>().is_err());
    }
}
