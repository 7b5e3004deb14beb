//! No sequence of register / rotate / success / failure / ban / tip moves
//! panics, breaks the reputation arithmetic, or lets a banned identity take
//! part.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use common::*;
use musig2_identity::burn::{REGISTRATION_BURN_SATS, ROTATION_BURN_SATS};
use musig2_identity::identity::sign_registration;
use musig2_identity::{
    BurnPolicy, IdentityError, IdentityId, IdentityManager, IdentityStore, KeyRotation,
    ManualClock, OutPoint,
};
use proptest::prelude::*;

const KEYS: u8 = 6;

#[derive(Debug, Clone)]
enum Op {
    Register {
        key: u8,
        burn: usize,
        foreign: bool,
        good_sig: bool,
    },
    Rotate {
        identity: usize,
        new_key: u8,
        burn: usize,
        foreign: bool,
        good_old: bool,
        good_new: bool,
    },
    Success {
        identity: usize,
        response_ms: u64,
    },
    Failure {
        identity: usize,
    },
    Ban {
        identity: usize,
    },
    Tip {
        blocks: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..KEYS, 0..64usize, prop::bool::weighted(0.15), prop::bool::weighted(0.9))
            .prop_map(|(key, burn, foreign, good_sig)| Op::Register { key, burn, foreign, good_sig }),
        2 => (
            0..8usize,
            0..KEYS,
            0..64usize,
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.9),
        )
            .prop_map(|(identity, new_key, burn, foreign, good_old, good_new)| Op::Rotate {
                identity, new_key, burn, foreign, good_old, good_new
            }),
        4 => (0..8usize, 0..5_000u64).prop_map(|(identity, response_ms)| Op::Success { identity, response_ms }),
        5 => (0..8usize).prop_map(|identity| Op::Failure { identity }),
        1 => (0..8usize).prop_map(|identity| Op::Ban { identity }),
        1 => (0..80u32).prop_map(|blocks| Op::Tip { blocks }),
    ]
}

/// Burns for every key: registration-sized, rotation-sized and too small, at
/// heights from mature to unmined (the tip starts at 500); `pool[key]` commit to `key`.
fn burn_pool(chain: &ChainHandle) -> Vec<Vec<OutPoint>> {
    let mut pool = Vec::new();
    let mut nonce = 0;
    for key in 0..KEYS {
        let mut burns = Vec::new();
        for (amount, height) in [
            (REGISTRATION_BURN_SATS, Some(100)),
            (REGISTRATION_BURN_SATS, Some(100)),
            (REGISTRATION_BURN_SATS, Some(200)),
            (REGISTRATION_BURN_SATS, Some(420)),
            (REGISTRATION_BURN_SATS, None),
            (ROTATION_BURN_SATS, Some(100)),
            (ROTATION_BURN_SATS, Some(420)),
            (10 * XPI, Some(100)),
        ] {
            nonce += 1;
            let raw = burn_tx(&pubkey(key + 1), amount, nonce);
            burns.push(OutPoint::new(chain.add_raw(&raw, height), 0));
        }
        pool.push(burns);
    }
    pool
}

/// A burn committing to `key`, or (if `foreign`) to the next key.
fn choose_burn(pool: &[Vec<OutPoint>], key: u8, burn: usize, foreign: bool) -> OutPoint {
    let key = if foreign { (key + 1) % KEYS } else { key };
    let burns = &pool[usize::from(key)];
    burns[burn % burns.len()]
}

fn pick<T: Copy>(items: &[T], i: usize) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        Some(items[i % items.len()])
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let chain = ChainHandle::new(500);
    let pool = burn_pool(&chain);
    let clock = Arc::new(ManualClock::new(START_MS));
    let m = IdentityManager::new(
        chain.clone(),
        clock.clone(),
        IdentityStore::in_memory().unwrap(),
        BurnPolicy::default(),
    )
    .unwrap();

    let mut ids: Vec<IdentityId> = Vec::new();
    let mut ever_banned: HashSet<IdentityId> = HashSet::new();
    let mut scores: HashMap<IdentityId, u8> = HashMap::new();
    let unknown = IdentityId::from_bytes([0xee; 32]);

    for op in ops {
        clock.advance(1_000);
        match op {
            Op::Register {
                key,
                burn,
                foreign,
                good_sig,
            } => {
                let outpoint = choose_burn(&pool, key, burn, foreign);
                let id = IdentityId::derive(&outpoint);
                let signer = if good_sig {
                    key + 1
                } else {
                    (key + 1) % KEYS + 1
                };
                let sig = sign_registration(&secret(signer), &id).to_bytes();
                let result = m
                    .register_identity(&outpoint.txid, outpoint.vout, &pubkey(key + 1), &sig)
                    .await;
                if let Ok(id) = result {
                    prop_assert!(!ids.contains(&id));
                    ids.push(id);
                    scores.insert(id, 50);
                }
            }
            Op::Rotate {
                identity,
                new_key,
                burn,
                foreign,
                good_old,
                good_new,
            } => {
                let id = pick(&ids, identity).unwrap_or(unknown);
                let outpoint = choose_burn(&pool, new_key, burn, foreign);
                let old_seed = m
                    .identity(&id)
                    .map(|i| (1..=KEYS).find(|s| pubkey(*s) == i.current_key()).unwrap())
                    .unwrap_or(1);
                let mut rotation =
                    KeyRotation::sign(id, &secret(old_seed), &secret(new_key + 1), outpoint);
                if !good_old {
                    rotation.old_key_signature = rotation.new_key_signature.clone();
                }
                if !good_new {
                    rotation.new_key_signature.truncate(10);
                }
                let score_before = m.reputation(&id).map(|r| r.score());
                let key_before = m.identity(&id).map(|i| i.current_key());
                let result = m.rotate_key(&rotation).await;
                if ever_banned.contains(&id) {
                    // Rejected (as banned, or earlier for a malformed signature).
                    prop_assert!(result.is_err());
                    prop_assert_eq!(m.identity(&id).map(|i| i.current_key()), key_before);
                    if good_old && good_new {
                        prop_assert!(
                            matches!(result, Err(IdentityError::Banned { .. })),
                            "{:?}",
                            result
                        );
                    }
                }
                prop_assert_eq!(m.reputation(&id).map(|r| r.score()), score_before);
                if result.is_ok() {
                    prop_assert!(good_old && good_new);
                    prop_assert_eq!(m.identity(&id).unwrap().current_key(), pubkey(new_key + 1));
                }
            }
            Op::Success {
                identity,
                response_ms,
            } => {
                let id = pick(&ids, identity).unwrap_or(unknown);
                let result = m.record_success(&id, response_ms);
                if ever_banned.contains(&id) {
                    prop_assert!(
                        matches!(result, Err(IdentityError::Banned { .. })),
                        "{:?}",
                        result
                    );
                }
                if let Ok(rep) = result {
                    let expected = (scores[&id] + 2).min(100);
                    prop_assert_eq!(rep.score(), expected);
                    scores.insert(id, expected);
                }
            }
            Op::Failure { identity } => {
                let id = pick(&ids, identity).unwrap_or(unknown);
                let result = m.record_failure(&id, "prop");
                if ever_banned.contains(&id) {
                    prop_assert!(
                        matches!(result, Err(IdentityError::Banned { .. })),
                        "{:?}",
                        result
                    );
                }
                if let Ok(rep) = result {
                    let expected = scores[&id].saturating_sub(5);
                    prop_assert_eq!(rep.score(), expected);
                    prop_assert_eq!(m.is_banned(&id), expected == 0);
                    scores.insert(id, expected);
                }
            }
            Op::Ban { identity } => {
                let id = pick(&ids, identity).unwrap_or(unknown);
                let result = m.ban(&id, "prop");
                prop_assert_eq!(result.is_ok(), ids.contains(&id));
            }
            Op::Tip { blocks } => chain.set_tip(chain.tip() + blocks),
        }

        // Invariants after every step.
        let mut keys = HashSet::new();
        let mut burns = HashSet::new();
        for id in &ids {
            let identity = m.identity(id).unwrap();
            let rep = identity.reputation();
            prop_assert!(rep.score() <= 100);
            prop_assert_eq!(rep.score(), scores[id]);
            prop_assert_eq!(
                rep.completed_signings() + rep.failed_signings(),
                rep.total_signings()
            );
            if rep.score() == 0 {
                prop_assert!(identity.is_banned());
            }
            if identity.is_banned() {
                ever_banned.insert(*id);
            }
            if ever_banned.contains(id) {
                prop_assert!(identity.is_banned());
                for min in [0u8, 1, 50, 100] {
                    prop_assert!(!m.is_allowed(id, min));
                }
                prop_assert!(!m.identities_with_min_reputation(0).contains(id));
            } else {
                prop_assert!(m.is_allowed(id, rep.score()));
                prop_assert!(!m.is_allowed(id, rep.score() + 1));
            }
            for record in identity.key_history() {
                prop_assert!(keys.insert(record.public_key), "key bound twice");
            }
            for burn in identity.burns() {
                prop_assert!(burns.insert(burn), "burn used twice");
            }
            prop_assert_eq!(m.identity_by_key(&identity.current_key()), Some(*id));
        }
        prop_assert!(!m.is_allowed(&unknown, 0));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_sequence_panics_or_lets_a_banned_identity_in(ops in prop::collection::vec(op(), 1..64)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops))?;
    }
}
