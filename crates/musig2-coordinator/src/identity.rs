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
use std::time::Duration;

use musig2_core::Keypair;
use musig2_core::hash::sha256;
use musig2_identity::identity::sign_registration;
use musig2_identity::{
    ChronikClient, Identity, IdentityError, IdentityId, KeyRotation, OutPoint, SystemClock, TxId,
};
use musig2_security::{ClaimedOutPoint, ClaimedRotation, IdentityClaim, Millis};

/// The identity manager a live coordinator uses: Chronik, the system clock.
pub type LiveIdentityManager = musig2_identity::IdentityManager<ChronikClient, SystemClock>;

/// How long a refused claim is answered from memory rather than asked of
/// Chronik again. The memory is keyed by the whole claim, so a forged claim
/// that names an honest identity's burn refuses only itself.
pub const REFUSAL_MEMORY_MS: Millis = 5 * 60 * 1000;
/// Refused claims remembered at most. A full memory drops its expired
/// entries; if none has expired it remembers nothing new (so a flood of bad
/// claims cannot flush what it holds).
pub const REFUSALS_KEPT: usize = 4096;
/// Checks that need the indexer (a new identity, or new rotations) allowed a
/// minute, whoever asks: advertisements from strangers cannot make this node
/// query Chronik without bound. Over the budget a claim is refused for now
/// and not remembered (its next advertisement is checked again).
pub const LOOKUPS_PER_MINUTE: u32 = 30;
/// One check's time limit (Chronik's own retries included).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Refusals remembered, and the indexer budget's current window.
#[derive(Debug, Default)]
struct Memory {
    refusals: HashMap<[u8; 32], (Millis, String)>,
    window: (Millis, u32),
}

/// Why a claim was refused, and whether that is the claim's own doing (a
/// missing, immature or foreign burn, a bad signature: remembered) or the
/// indexer's or the store's (not remembered).
struct Refusal {
    reason: String,
    remember: bool,
}

impl From<IdentityError> for Refusal {
    fn from(e: IdentityError) -> Self {
        let remember = match &e {
            // Only "no such transaction" is the claim's doing; an outage
            // or a garbled answer is the indexer's.
            IdentityError::Indexer(c) => {
                matches!(c, musig2_identity::ChronikError::NotFound { .. })
            }
            IdentityError::Store(_) => false,
            _ => true,
        };
        Self {
            reason: e.to_string(),
            remember,
        }
    }
}

impl Refusal {
    fn claim(reason: String) -> Self {
        Self {
            reason,
            remember: true,
        }
    }
}

/// The coordinator's `identity` setting.
#[derive(Clone)]
pub struct IdentityGate {
    manager: Arc<LiveIdentityManager>,
    required: bool,
    own_burn: Option<OutPoint>,
    memory: Arc<Mutex<Memory>>,
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
            memory: Arc::default(),
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
        match claim.validate(&keypair.public_key()) {
            Ok(()) => Some(claim),
            Err(e) => {
                // Peers would refuse it as malformed (and hold that against
                // us): advertise without it.
                tracing::warn!(error = %e, "our identity cannot be claimed in an advertisement");
                None
            }
        }
    }

    /// Checks `claim`: registers the identity through Chronik if it is new,
    /// replays the rotations it has not seen, and refuses a banned identity.
    /// A refusal the claim caused is remembered for [`REFUSAL_MEMORY_MS`];
    /// checks that need the indexer are budgeted ([`LOOKUPS_PER_MINUTE`])
    /// and time-limited ([`CHECK_TIMEOUT`]).
    pub async fn check(&self, claim: &IdentityClaim, now: Millis) -> Result<IdentityId, String> {
        let key = postcard::to_allocvec(claim).map_or([0; 32], |bytes| sha256(&bytes));
        {
            let mut memory = lock(&self.memory);
            if let Some((at, reason)) = memory.refusals.get(&key)
                && now.saturating_sub(*at) < REFUSAL_MEMORY_MS
            {
                return Err(reason.clone());
            }
            if self.needs_indexer(claim) && !memory.spend_lookup(now) {
                return Err("identity lookups over budget; checked again later".into());
            }
        }
        let result = match tokio::time::timeout(CHECK_TIMEOUT, self.verify(claim)).await {
            Ok(result) => result,
            Err(_) => Err(Refusal {
                reason: "the identity check timed out".into(),
                remember: false,
            }),
        };
        result.map_err(|refusal| {
            if refusal.remember {
                lock(&self.memory).remember(key, now, &refusal.reason);
            }
            refusal.reason
        })
    }

    /// Whether checking `claim` takes the indexer: a new identity, or a key
    /// the identity does not have yet.
    fn needs_indexer(&self, claim: &IdentityClaim) -> bool {
        let id = IdentityId::derive(&outpoint(claim.burn));
        self.manager
            .identity(&id)
            .is_none_or(|i| i.current_key() != claim.current_key())
    }

    async fn verify(&self, claim: &IdentityClaim) -> Result<IdentityId, Refusal> {
        let m = &self.manager;
        let burn = outpoint(claim.burn);
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
                Ok(_) | Err(IdentityError::AlreadyRegistered { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let identity = m
            .identity(&id)
            .ok_or_else(|| Refusal::claim(format!("identity {id} is not registered")))?;
        if identity.is_banned() {
            return Err(Refusal::claim(format!("identity {id} is banned")));
        }
        // The claim's key chain must pass through the key we know now; the
        // rotations after it are new to us.
        let chain: Vec<_> = std::iter::once(claim.registered_key)
            .chain(claim.rotations.iter().map(|r| r.new_key))
            .collect();
        let known = identity.current_key();
        let from = chain.iter().position(|k| *k == known).ok_or_else(|| {
            Refusal::claim(format!(
                "the claim does not contain identity {id}'s key {known}"
            ))
        })?;
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
            m.rotate_key(&rotation).await?;
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

impl Memory {
    /// Takes one indexer lookup from this minute's budget, if any is left.
    fn spend_lookup(&mut self, now: Millis) -> bool {
        let (start, used) = &mut self.window;
        if now.saturating_sub(*start) >= 60_000 {
            *start = now;
            *used = 0;
        }
        if *used >= LOOKUPS_PER_MINUTE {
            return false;
        }
        *used += 1;
        true
    }

    fn remember(&mut self, key: [u8; 32], now: Millis, reason: &str) {
        if self.refusals.len() >= REFUSALS_KEPT {
            self.refusals
                .retain(|_, (at, _)| now.saturating_sub(*at) < REFUSAL_MEMORY_MS);
        }
        if self.refusals.len() < REFUSALS_KEPT {
            self.refusals.insert(key, (now, reason.to_owned()));
        }
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
