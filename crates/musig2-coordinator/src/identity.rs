//! Burn identities on the live path (the reference's
//! `enableBurnBasedIdentity`): what a coordinator needs to check the identity
//! a signer advertisement claims, to keep identity reputation, and to claim
//! its own identity in its advertisements.
//!
//! The checks themselves (burn found through Chronik, matured, large enough,
//! committing to the key; signatures; key history) are
//! [`musig2_identity::IdentityManager`]'s, whose redb store is also the cache:
//! an identity verified once is not fetched again, and its reputation
//! survives a restart. This module turns an advertisement's
//! [`IdentityClaim`] into the manager's registration and rotation calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use musig2_core::Keypair;
use musig2_identity::identity::sign_registration;
use musig2_identity::{
    ChronikClient, Identity, IdentityId, KeyRotation, OutPoint, SystemClock, TxId,
};
use musig2_security::{ClaimedOutPoint, ClaimedRotation, IdentityClaim, Millis};

/// The identity manager a live coordinator uses: Chronik, the system clock.
pub type LiveIdentityManager = musig2_identity::IdentityManager<ChronikClient, SystemClock>;

/// How long a refused claim is answered from memory rather than asked of
/// Chronik again: a peer cannot make us query the indexer for one bad burn
/// more than once per period.
pub const REFUSAL_MEMORY_MS: Millis = 5 * 60 * 1000;
/// Refused claims remembered at most (beyond it the memory starts afresh).
pub const REFUSALS_KEPT: usize = 4096;

/// The coordinator's `identity` setting.
#[derive(Clone)]
pub struct IdentityGate {
    manager: Arc<LiveIdentityManager>,
    required: bool,
    own_burn: Option<OutPoint>,
    refusals: Arc<Mutex<HashMap<OutPoint, (Millis, String)>>>,
}

impl std::fmt::Debug for IdentityGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityGate")
            .field("required", &self.required)
            .field("own_burn", &self.own_burn)
            .finish_non_exhaustive()
    }
}

impl IdentityGate {
    /// Checks advertisements against `manager`. With `required`, an
    /// advertisement without a claim is refused too. `own_burn` is the burn
    /// that registered this node's identity, claimed in its advertisements.
    pub fn new(
        manager: Arc<LiveIdentityManager>,
        required: bool,
        own_burn: Option<OutPoint>,
    ) -> Self {
        Self {
            manager,
            required,
            own_burn,
            refusals: Arc::default(),
        }
    }

    /// Whether an advertisement must carry a claim.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The manager.
    pub fn manager(&self) -> &Arc<LiveIdentityManager> {
        &self.manager
    }

    /// This node's claim for `keypair`'s key: the manager's record of our
    /// identity if it has one (with its rotations), else a registration
    /// claim signed now. `None` without an own burn, or when our identity's
    /// current key is another key.
    pub fn own_claim(&self, keypair: &Keypair) -> Option<IdentityClaim> {
        let burn = self.own_burn?;
        let id = IdentityId::derive(&burn);
        let claim = match self.manager.identity(&id) {
            Some(identity) => claim_of(&identity),
            None => IdentityClaim {
                burn: claimed(burn),
                registered_key: keypair.public_key(),
                ownership_signature: sign_registration(keypair.secret_key(), &id),
                rotations: Vec::new(),
            },
        };
        (claim.current_key() == keypair.public_key()).then_some(claim)
    }

    /// Checks `claim` (made for `advertised`): registers the identity through
    /// Chronik if it is new, replays the rotations it has not seen, and
    /// refuses a banned identity. A refusal is remembered for
    /// [`REFUSAL_MEMORY_MS`].
    pub async fn check(&self, claim: &IdentityClaim, now: Millis) -> Result<IdentityId, String> {
        let burn = outpoint(claim.burn);
        if let Some((at, reason)) = lock(&self.refusals).get(&burn)
            && now.saturating_sub(*at) < REFUSAL_MEMORY_MS
        {
            return Err(reason.clone());
        }
        let result = self.verify(claim, burn).await;
        if let Err(reason) = &result {
            let mut refusals = lock(&self.refusals);
            if refusals.len() >= REFUSALS_KEPT {
                refusals.clear();
            }
            refusals.insert(burn, (now, reason.clone()));
        }
        result
    }

    async fn verify(&self, claim: &IdentityClaim, burn: OutPoint) -> Result<IdentityId, String> {
        let m = &self.manager;
        let id = IdentityId::derive(&burn);
        if m.identity(&id).is_none() {
            let registered = m
                .register_identity(
                    &burn.txid,
                    burn.vout,
                    &claim.registered_key,
                    &claim.ownership_signature.to_bytes(),
                )
                .await;
            match registered {
                Ok(_) | Err(musig2_identity::IdentityError::AlreadyRegistered { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let identity = m
            .identity(&id)
            .ok_or_else(|| format!("identity {id} is not registered"))?;
        if identity.is_banned() {
            return Err(format!("identity {id} is banned"));
        }
        // The claim's key chain must pass through the key we know now; the
        // rotations after it are new to us.
        let chain: Vec<_> = std::iter::once(claim.registered_key)
            .chain(claim.rotations.iter().map(|r| r.new_key))
            .collect();
        let known = identity.current_key();
        let from = chain
            .iter()
            .position(|k| *k == known)
            .ok_or_else(|| format!("the claim does not contain identity {id}'s key {known}"))?;
        let mut old_key = known;
        for r in claim.rotations.iter().skip(from) {
            let rotation = KeyRotation {
                identity_id: id,
                old_key,
                new_key: r.new_key,
                old_key_signature: r.old_key_signature.to_bytes().to_vec(),
                new_key_signature: r.new_key_signature.to_bytes().to_vec(),
                burn: outpoint(r.burn),
            };
            m.rotate_key(&rotation).await.map_err(|e| e.to_string())?;
            old_key = r.new_key;
        }
        Ok(id)
    }
}

/// The claim that presents `identity` as it is recorded.
pub fn claim_of(identity: &Identity) -> IdentityClaim {
    let mut keys = identity.key_history();
    let registered_key = keys.next().map_or(identity.current_key(), |k| k.public_key);
    let rotations = keys
        .filter_map(|k| {
            let proof = k.rotation?;
            Some(ClaimedRotation {
                new_key: k.public_key,
                old_key_signature: proof.old_key_signature,
                new_key_signature: proof.new_key_signature,
                burn: claimed(proof.burn.outpoint),
            })
        })
        .collect();
    IdentityClaim {
        burn: claimed(identity.registration_burn().outpoint),
        registered_key,
        ownership_signature: *identity.ownership_signature(),
        rotations,
    }
}

fn claimed(o: OutPoint) -> ClaimedOutPoint {
    ClaimedOutPoint {
        txid: o.txid.internal_bytes(),
        vout: o.vout,
    }
}

fn outpoint(o: ClaimedOutPoint) -> OutPoint {
    OutPoint::new(TxId::from_internal_bytes(o.txid), o.vout)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
