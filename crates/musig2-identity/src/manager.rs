//! The identity manager: registration, key rotation, reputation and bans, with
//! every change written to the [`IdentityStore`] before it is visible.
//!
//! Rules beyond lotus-sdk's (each rejects something lotus-sdk accepted):
//!
//! * **A burn is used once.** An outpoint that registered an identity or paid
//!   for a rotation can never pay for another registration or rotation.
//! * **A rotation burn commits to the new key.** Its payload key must be the
//!   new key, as a registration burn's is the registered key; otherwise anyone
//!   watching the chain could spend someone else's matured rotation burn on
//!   their own rotation first.
//! * **A key belongs to one identity, for ever.** A key in any identity's
//!   history (current or revoked) cannot be registered or rotated to again, so
//!   a compromised, revoked key cannot come back.
//! * **Bans are permanent** and kept on disk. A banned identity cannot rotate,
//!   and its signings are not recorded.
//! * **Registering twice is an error** ([`IdentityError::AlreadyRegistered`]),
//!   where lotus-sdk returned the existing id.
//!
//! Checks that need no network run first (signature encoding, local conflicts,
//! signatures), then the burn is fetched from the indexer; local conflicts are
//! checked again under the lock before the change is committed, so two
//! concurrent calls cannot both use one burn or one key.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use musig2_core::{PublicKey, SecretKey, Signature, schnorr};

use crate::burn::{BurnError, BurnPolicy, BurnPurpose, VerifiedBurn, verify_burn};
use crate::chronik::ChronikError;
use crate::clock::Clock;
use crate::identity::{
    Ban, BanReason, BurnProof, Identity, IdentityId, KeyRecord, RotationProof, SignatureRole,
    registration_digest, rotation_digest, sign_rotation,
};
use crate::indexer::Indexer;
use crate::reputation::Reputation;
use crate::store::{IdentityStore, StoreError};
use crate::tx::{OutPoint, TxId};

/// Errors of the identity manager; each names the identity, key, outpoint or
/// signature at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// No identity with this id.
    #[error("unknown identity {id}")]
    UnknownIdentity {
        /// The id.
        id: IdentityId,
    },
    /// The burn already registered this identity.
    #[error("identity {id} is already registered")]
    AlreadyRegistered {
        /// The id.
        id: IdentityId,
    },
    /// The identity is banned.
    #[error("identity {id} is banned")]
    Banned {
        /// The id.
        id: IdentityId,
    },
    /// The burn already paid for a registration or a rotation.
    #[error("burn {outpoint} was already used by identity {by}")]
    BurnAlreadyUsed {
        /// The burn.
        outpoint: OutPoint,
        /// The identity that used it.
        by: IdentityId,
    },
    /// The key is, or was, the key of an identity.
    #[error("key {key} already belongs to identity {identity}")]
    KeyAlreadyBound {
        /// The key.
        key: PublicKey,
        /// Its identity.
        identity: IdentityId,
    },
    /// The rotation names an old key that is not the identity's current key.
    #[error("key {presented} is not the current key of identity {id}")]
    NotCurrentKey {
        /// The identity.
        id: IdentityId,
        /// The key presented as the old key.
        presented: PublicKey,
    },
    /// The rotation's new key equals the old key.
    #[error("rotation of identity {id} to the key it already has")]
    SameKey {
        /// The identity.
        id: IdentityId,
    },
    /// A required signature is absent (zero bytes).
    #[error("{role} is missing")]
    SignatureMissing {
        /// Which one.
        role: SignatureRole,
    },
    /// A signature is not 64 bytes.
    #[error("{role} has {got} bytes, expected 64")]
    SignatureLength {
        /// Which one.
        role: SignatureRole,
        /// Its length.
        got: usize,
    },
    /// A signature does not verify.
    #[error("{role} does not verify")]
    InvalidSignature {
        /// Which one.
        role: SignatureRole,
    },
    /// The burn is not acceptable.
    #[error("burn {outpoint}: {source}")]
    Burn {
        /// The burn.
        outpoint: OutPoint,
        /// Why.
        #[source]
        source: BurnError,
    },
    /// The indexer failed or lied.
    #[error(transparent)]
    Indexer(#[from] ChronikError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key-rotation request, with the signatures as received (raw bytes, so a
/// missing or malformed one is reported as such).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    /// The identity.
    pub identity_id: IdentityId,
    /// Its current key.
    pub old_key: PublicKey,
    /// The key to install.
    pub new_key: PublicKey,
    /// The old key's Lotus Schnorr signature over the rotation digest.
    pub old_key_signature: Vec<u8>,
    /// The new key's Lotus Schnorr signature over the rotation digest.
    pub new_key_signature: Vec<u8>,
    /// The rotation burn (its payload key must be `new_key`).
    pub burn: OutPoint,
}

impl KeyRotation {
    /// Builds and signs a rotation of `identity_id` from `old` to `new`, paid
    /// for by `burn`.
    pub fn sign(identity_id: IdentityId, old: &SecretKey, new: &SecretKey, burn: OutPoint) -> Self {
        let new_key = new.public_key();
        Self {
            identity_id,
            old_key: old.public_key(),
            new_key,
            old_key_signature: sign_rotation(old, &identity_id, &new_key)
                .to_bytes()
                .to_vec(),
            new_key_signature: sign_rotation(new, &identity_id, &new_key)
                .to_bytes()
                .to_vec(),
            burn,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    identities: HashMap<IdentityId, Identity>,
    /// Every key ever bound (current or revoked) → its identity.
    keys: HashMap<PublicKey, IdentityId>,
    /// Every burn consumed → the identity that consumed it.
    burns: HashMap<OutPoint, IdentityId>,
}

impl State {
    fn index(&mut self, identity: Identity) {
        let id = identity.id();
        for record in identity.key_history() {
            self.keys.insert(record.public_key, id);
        }
        for burn in identity.burns() {
            self.burns.insert(burn, id);
        }
        self.identities.insert(id, identity);
    }

    fn check_burn_unused(&self, burn: &OutPoint) -> Result<(), IdentityError> {
        match self.burns.get(burn) {
            Some(by) => Err(IdentityError::BurnAlreadyUsed {
                outpoint: *burn,
                by: *by,
            }),
            None => Ok(()),
        }
    }

    fn check_key_free(&self, key: &PublicKey) -> Result<(), IdentityError> {
        match self.keys.get(key) {
            Some(identity) => Err(IdentityError::KeyAlreadyBound {
                key: *key,
                identity: *identity,
            }),
            None => Ok(()),
        }
    }

    fn check_registration(
        &self,
        id: &IdentityId,
        burn: &OutPoint,
        key: &PublicKey,
    ) -> Result<(), IdentityError> {
        if self.identities.contains_key(id) {
            return Err(IdentityError::AlreadyRegistered { id: *id });
        }
        self.check_burn_unused(burn)?;
        self.check_key_free(key)
    }

    fn check_rotation(&self, rotation: &KeyRotation) -> Result<&Identity, IdentityError> {
        let id = rotation.identity_id;
        let identity = self
            .identities
            .get(&id)
            .ok_or(IdentityError::UnknownIdentity { id })?;
        if identity.is_banned() {
            return Err(IdentityError::Banned { id });
        }
        if identity.current_key() != rotation.old_key {
            return Err(IdentityError::NotCurrentKey {
                id,
                presented: rotation.old_key,
            });
        }
        if rotation.new_key == rotation.old_key {
            return Err(IdentityError::SameKey { id });
        }
        self.check_burn_unused(&rotation.burn)?;
        self.check_key_free(&rotation.new_key)?;
        Ok(identity)
    }

    fn active(&self, id: &IdentityId) -> Result<&Identity, IdentityError> {
        let identity = self
            .identities
            .get(id)
            .ok_or(IdentityError::UnknownIdentity { id: *id })?;
        if identity.is_banned() {
            return Err(IdentityError::Banned { id: *id });
        }
        Ok(identity)
    }
}

/// Manages burn-based identities against an [`Indexer`], with time from a
/// [`Clock`] and persistence in an [`IdentityStore`].
#[derive(Debug)]
pub struct IdentityManager<I, C> {
    indexer: I,
    clock: C,
    policy: BurnPolicy,
    store: IdentityStore,
    state: Mutex<State>,
}

impl<I: Indexer, C: Clock> IdentityManager<I, C> {
    /// Loads every identity from `store` and starts managing them.
    pub fn new(
        indexer: I,
        clock: C,
        store: IdentityStore,
        policy: BurnPolicy,
    ) -> Result<Self, IdentityError> {
        let mut state = State::default();
        for identity in store.load_all()? {
            let id = identity.id();
            for record in identity.key_history() {
                if let Some(other) = state.keys.get(&record.public_key) {
                    return Err(StoreError::Corrupt {
                        id,
                        reason: format!("key {} also belongs to {other}", record.public_key),
                    }
                    .into());
                }
            }
            for burn in identity.burns() {
                if let Some(other) = state.burns.get(&burn) {
                    return Err(StoreError::Corrupt {
                        id,
                        reason: format!("burn {burn} also used by {other}"),
                    }
                    .into());
                }
            }
            state.index(identity);
        }
        tracing::info!(
            identities = state.identities.len(),
            "identity manager loaded"
        );
        Ok(Self {
            indexer,
            clock,
            policy,
            store,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something ever did, the
        // state is still consistent (it changes only after the store commits).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The burn policy.
    pub fn policy(&self) -> &BurnPolicy {
        &self.policy
    }

    /// The indexer.
    pub fn indexer(&self) -> &I {
        &self.indexer
    }

    /// Registers the identity anchored at burn `burn_txid:vout`, whose payload
    /// must commit to `public_key`; `ownership_signature` is the key's Lotus
    /// Schnorr signature over `SHA256(identity_id)`. The burn must carry at
    /// least the registration amount and have matured. Returns the identity id.
    pub async fn register_identity(
        &self,
        burn_txid: &TxId,
        vout: u32,
        public_key: &PublicKey,
        ownership_signature: &[u8],
    ) -> Result<IdentityId, IdentityError> {
        let burn = OutPoint::new(*burn_txid, vout);
        let id = IdentityId::derive(&burn);
        let signature = parse_signature(ownership_signature, SignatureRole::Ownership)?;
        self.lock().check_registration(&id, &burn, public_key)?;
        verify_signature(
            public_key,
            &registration_digest(&id),
            &signature,
            SignatureRole::Ownership,
        )?;
        let verified = self
            .fetch_burn(&burn, BurnPurpose::Registration, public_key)
            .await?;

        let now = self.clock.now_ms();
        let identity = Identity {
            id,
            registration: proof(&verified),
            ownership_signature: signature,
            current: KeyRecord {
                public_key: *public_key,
                activated_at_ms: now,
                revoked_at_ms: None,
                rotation: None,
            },
            previous: Vec::new(),
            reputation: Reputation::new(verified.amount_sats, now),
            ban: None,
        };
        let mut state = self.lock();
        state.check_registration(&id, &burn, public_key)?;
        self.store.put(&identity)?;
        state.index(identity);
        tracing::info!(%id, %burn, key = %public_key, "identity registered");
        Ok(id)
    }

    /// Rotates an identity's key (see [`KeyRotation`]): both signatures over
    /// `SHA256(identity_id || "KEY_ROTATION" || new_key)`, and a matured
    /// rotation burn committing to the new key. The reputation is kept; the old
    /// key is revoked now and stays in the history.
    pub async fn rotate_key(&self, rotation: &KeyRotation) -> Result<(), IdentityError> {
        let old_signature = parse_signature(&rotation.old_key_signature, SignatureRole::OldKey)?;
        let new_signature = parse_signature(&rotation.new_key_signature, SignatureRole::NewKey)?;
        self.lock().check_rotation(rotation)?;
        let digest = rotation_digest(&rotation.identity_id, &rotation.new_key);
        verify_signature(
            &rotation.old_key,
            &digest,
            &old_signature,
            SignatureRole::OldKey,
        )?;
        verify_signature(
            &rotation.new_key,
            &digest,
            &new_signature,
            SignatureRole::NewKey,
        )?;
        let verified = self
            .fetch_burn(&rotation.burn, BurnPurpose::KeyRotation, &rotation.new_key)
            .await?;

        let now = self.clock.now_ms();
        let mut state = self.lock();
        let mut identity = state.check_rotation(rotation)?.clone();
        let now = now.max(identity.current.activated_at_ms);
        let mut old = identity.current;
        old.revoked_at_ms = Some(now);
        identity.previous.push(old);
        identity.current = KeyRecord {
            public_key: rotation.new_key,
            activated_at_ms: now,
            revoked_at_ms: None,
            rotation: Some(RotationProof {
                burn: proof(&verified),
                old_key_signature: old_signature,
                new_key_signature: new_signature,
            }),
        };
        identity.reputation.add_burn(verified.amount_sats, now);
        self.store.put(&identity)?;
        state.index(identity);
        tracing::info!(
            id = %rotation.identity_id,
            old = %rotation.old_key,
            new = %rotation.new_key,
            burn = %rotation.burn,
            "identity key rotated"
        );
        Ok(())
    }

    /// Records a completed signing (+2, at most 100). Returns the new reputation.
    pub fn record_success(
        &self,
        id: &IdentityId,
        response_time_ms: u64,
    ) -> Result<Reputation, IdentityError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let mut identity = state.active(id)?.clone();
        identity.reputation.record_success(response_time_ms, now);
        self.store.put(&identity)?;
        let reputation = identity.reputation.clone();
        state.identities.insert(*id, identity);
        Ok(reputation)
    }

    /// Records a failed signing (−5, at least 0); at 0 the identity is banned.
    /// Returns the new reputation.
    pub fn record_failure(
        &self,
        id: &IdentityId,
        reason: &str,
    ) -> Result<Reputation, IdentityError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let mut identity = state.active(id)?.clone();
        let exhausted = identity.reputation.record_failure(now);
        if exhausted {
            identity.ban = Some(Ban {
                at_ms: now,
                reason: BanReason::ReputationExhausted,
            });
        }
        self.store.put(&identity)?;
        let reputation = identity.reputation.clone();
        state.identities.insert(*id, identity);
        tracing::debug!(%id, reason, score = reputation.score(), "signing failure recorded");
        if exhausted {
            tracing::warn!(%id, "identity banned: reputation reached zero");
        }
        Ok(reputation)
    }

    /// Bans an identity permanently. Banning a banned identity keeps the first ban.
    pub fn ban(&self, id: &IdentityId, reason: &str) -> Result<(), IdentityError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let mut identity = state
            .identities
            .get(id)
            .ok_or(IdentityError::UnknownIdentity { id: *id })?
            .clone();
        if identity.is_banned() {
            return Ok(());
        }
        identity.ban = Some(Ban {
            at_ms: now,
            reason: BanReason::Manual(reason.to_owned()),
        });
        self.store.put(&identity)?;
        state.identities.insert(*id, identity);
        tracing::warn!(%id, reason, "identity banned by operator");
        Ok(())
    }

    /// Whether the identity may take part in a signing: registered, not
    /// banned, and a score of at least `min_reputation`.
    pub fn is_allowed(&self, id: &IdentityId, min_reputation: u8) -> bool {
        self.lock()
            .identities
            .get(id)
            .is_some_and(|i| !i.is_banned() && i.reputation().score() >= min_reputation)
    }

    /// Whether the identity is banned (unknown identities are not).
    pub fn is_banned(&self, id: &IdentityId) -> bool {
        self.lock()
            .identities
            .get(id)
            .is_some_and(Identity::is_banned)
    }

    /// A copy of the identity.
    pub fn identity(&self, id: &IdentityId) -> Option<Identity> {
        self.lock().identities.get(id).cloned()
    }

    /// The identity whose **current** key is `key`.
    pub fn identity_by_key(&self, key: &PublicKey) -> Option<IdentityId> {
        let state = self.lock();
        let id = state.keys.get(key)?;
        state
            .identities
            .get(id)
            .filter(|i| i.current_key() == *key)
            .map(Identity::id)
    }

    /// Whether `key` is the identity's current key.
    pub fn verify_key_ownership(&self, id: &IdentityId, key: &PublicKey) -> bool {
        self.lock()
            .identities
            .get(id)
            .is_some_and(|i| i.current_key() == *key)
    }

    /// A copy of the identity's reputation.
    pub fn reputation(&self, id: &IdentityId) -> Option<Reputation> {
        self.lock()
            .identities
            .get(id)
            .map(|i| i.reputation().clone())
    }

    /// The number of identities (banned ones included).
    pub fn identity_count(&self) -> usize {
        self.lock().identities.len()
    }

    /// Satoshis burned by all identities together.
    pub fn total_burned_sats(&self) -> u64 {
        self.lock().identities.values().fold(0u64, |sum, i| {
            sum.saturating_add(i.reputation().total_burned_sats())
        })
    }

    /// The ids of the identities allowed at `min_reputation`, sorted.
    pub fn identities_with_min_reputation(&self, min_reputation: u8) -> Vec<IdentityId> {
        let mut ids: Vec<_> = self
            .lock()
            .identities
            .values()
            .filter(|i| !i.is_banned() && i.reputation().score() >= min_reputation)
            .map(Identity::id)
            .collect();
        ids.sort();
        ids
    }

    async fn fetch_burn(
        &self,
        burn: &OutPoint,
        purpose: BurnPurpose,
        key: &PublicKey,
    ) -> Result<VerifiedBurn, IdentityError> {
        let tx = self.indexer.tx(&burn.txid).await?;
        let tip = self.indexer.tip_height().await?;
        verify_burn(&tx, burn.vout, tip, purpose, &self.policy, key).map_err(|source| {
            IdentityError::Burn {
                outpoint: *burn,
                source,
            }
        })
    }
}

fn proof(burn: &VerifiedBurn) -> BurnProof {
    BurnProof {
        outpoint: burn.outpoint,
        amount_sats: burn.amount_sats,
        block_height: burn.block_height,
        confirmations: burn.confirmations,
    }
}

fn parse_signature(bytes: &[u8], role: SignatureRole) -> Result<Signature, IdentityError> {
    if bytes.is_empty() {
        return Err(IdentityError::SignatureMissing { role });
    }
    Signature::from_slice(bytes).map_err(|_| IdentityError::SignatureLength {
        role,
        got: bytes.len(),
    })
}

fn verify_signature(
    key: &PublicKey,
    digest: &[u8; 32],
    signature: &Signature,
    role: SignatureRole,
) -> Result<(), IdentityError> {
    schnorr::verify(key, digest, signature).map_err(|_| IdentityError::InvalidSignature { role })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::identity::test_identity;
    use crate::indexer::IndexedTx;

    struct NoChain;

    impl Indexer for NoChain {
        async fn tx(&self, txid: &TxId) -> Result<IndexedTx, ChronikError> {
            Err(ChronikError::NotFound {
                path: format!("/tx/{txid}"),
                code: "tx-not-found".into(),
                message: String::new(),
            })
        }

        async fn tip_height(&self) -> Result<u32, ChronikError> {
            Ok(0)
        }
    }

    fn manager(
        store: IdentityStore,
    ) -> Result<IdentityManager<NoChain, ManualClock>, IdentityError> {
        IdentityManager::new(NoChain, ManualClock::new(0), store, BurnPolicy::default())
    }

    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn manager_futures_are_send() {
        let m = manager(IdentityStore::in_memory().unwrap()).unwrap();
        let key = SecretKey::from_bytes(&[1; 32]).unwrap();
        let burn = OutPoint::new(TxId::from_internal_bytes([2; 32]), 0);
        assert_send(m.register_identity(&burn.txid, 0, &key.public_key(), &[]));
        let rotation = KeyRotation::sign(IdentityId::derive(&burn), &key, &key, burn);
        assert_send(m.rotate_key(&rotation));
    }

    #[test]
    fn loading_rejects_a_key_shared_by_two_identities() {
        let store = IdentityStore::in_memory().unwrap();
        store.put(&test_identity(1, 9)).unwrap();
        store.put(&test_identity(2, 9)).unwrap();
        assert!(matches!(
            manager(store),
            Err(IdentityError::Store(StoreError::Corrupt { .. }))
        ));
    }

    #[test]
    fn loading_indexes_keys_and_burns() {
        let store = IdentityStore::in_memory().unwrap();
        let a = test_identity(1, 1);
        store.put(&a).unwrap();
        let m = manager(store).unwrap();
        assert_eq!(m.identity_by_key(&a.current_key()), Some(a.id()));
        assert_eq!(m.identity(&a.id()), Some(a));
        assert_eq!(m.total_burned_sats(), 1_000_000_000);
    }
}
