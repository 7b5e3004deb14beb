//! Key rotation through the real Chronik client over HTTP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use musig2_identity::burn::{BurnError, REGISTRATION_BURN_SATS, ROTATION_BURN_SATS};
use musig2_identity::identity::{sign_registration, sign_rotation};
use musig2_identity::{IdentityError, IdentityId, KeyRotation, OutPoint, SignatureRole};

const HEIGHT: u32 = 1000;
const TIP: u32 = 2000;

async fn register(env: &HttpEnv, seed: u8, nonce: u64) -> IdentityId {
    let burn = env
        .chain
        .burn(&pubkey(seed), REGISTRATION_BURN_SATS, HEIGHT, nonce);
    let id = IdentityId::derive(&burn);
    let sig = sign_registration(&secret(seed), &id).to_bytes();
    env.manager
        .register_identity(&burn.txid, burn.vout, &pubkey(seed), &sig)
        .await
        .unwrap()
}

/// A matured 500 XPI rotation burn committing to `new_seed`'s key.
fn rotation_burn(env: &HttpEnv, new_seed: u8, nonce: u64) -> OutPoint {
    env.chain
        .burn(&pubkey(new_seed), ROTATION_BURN_SATS, HEIGHT, nonce)
}

#[tokio::test]
async fn valid_rotation_keeps_reputation_and_history() {
    let env = http_env(TIP).await;
    let id = register(&env, 1, 1).await;
    for _ in 0..3 {
        env.manager.record_success(&id, 100).unwrap();
    }
    env.manager.record_failure(&id, "timeout").unwrap();
    let before = env.manager.reputation(&id).unwrap();
    assert_eq!(before.score(), 51);

    let t1 = START_MS + 60_000;
    env.clock.set(t1);
    let burn = rotation_burn(&env, 2, 100);
    let rotation = KeyRotation::sign(id, &secret(1), &secret(2), burn);
    env.manager.rotate_key(&rotation).await.unwrap();

    let identity = env.manager.identity(&id).unwrap();
    assert_eq!(identity.id(), id);
    assert_eq!(identity.current_key(), pubkey(2));
    let history: Vec<_> = identity.key_history().copied().collect();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].public_key, pubkey(1));
    assert_eq!(history[0].activated_at_ms, START_MS);
    assert_eq!(history[0].revoked_at_ms, Some(t1));
    assert!(history[0].rotation.is_none());
    assert_eq!(history[1].public_key, pubkey(2));
    assert_eq!(history[1].activated_at_ms, t1);
    assert_eq!(history[1].revoked_at_ms, None);
    let proof = history[1].rotation.unwrap();
    assert_eq!(proof.burn.outpoint, burn);
    assert_eq!(proof.burn.amount_sats, 500 * XPI);
    assert_eq!(proof.burn.confirmations, TIP - HEIGHT + 1);

    let after = identity.reputation();
    assert_eq!(after.score(), before.score());
    assert_eq!(after.completed_signings(), 3);
    assert_eq!(after.failed_signings(), 1);
    assert_eq!(after.total_signings(), 4);
    assert_eq!(after.first_seen_ms(), START_MS);
    assert_eq!(after.total_burned_sats(), 1_500 * XPI);
    assert_eq!(after.last_updated_ms(), t1);

    assert_eq!(env.manager.identity_by_key(&pubkey(2)), Some(id));
    assert_eq!(env.manager.identity_by_key(&pubkey(1)), None);
    assert!(env.manager.verify_key_ownership(&id, &pubkey(2)));
    assert!(!env.manager.verify_key_ownership(&id, &pubkey(1)));

    // The revoked key can no longer rotate, and cannot come back.
    let again = KeyRotation::sign(id, &secret(1), &secret(3), rotation_burn(&env, 3, 101));
    assert!(matches!(
        env.manager.rotate_key(&again).await,
        Err(IdentityError::NotCurrentKey { presented, .. }) if presented == pubkey(1)
    ));
    let back = KeyRotation::sign(id, &secret(2), &secret(1), rotation_burn(&env, 1, 102));
    assert!(matches!(
        env.manager.rotate_key(&back).await,
        Err(IdentityError::KeyAlreadyBound { identity, .. }) if identity == id
    ));

    // A second rotation from the new key works.
    let next = KeyRotation::sign(id, &secret(2), &secret(4), rotation_burn(&env, 4, 103));
    env.manager.rotate_key(&next).await.unwrap();
    let identity = env.manager.identity(&id).unwrap();
    assert_eq!(identity.key_history().count(), 3);
    assert_eq!(identity.reputation().score(), 51);
    assert_eq!(identity.reputation().total_burned_sats(), 2_000 * XPI);
}

#[tokio::test]
async fn old_key_signature_missing_or_wrong() {
    let env = http_env(TIP).await;
    let id = register(&env, 1, 1).await;
    let burn = rotation_burn(&env, 2, 100);
    let good = KeyRotation::sign(id, &secret(1), &secret(2), burn);

    let mut missing = good.clone();
    missing.old_key_signature.clear();
    assert!(matches!(
        env.manager.rotate_key(&missing).await,
        Err(IdentityError::SignatureMissing {
            role: SignatureRole::OldKey
        })
    ));

    let mut short = good.clone();
    short.old_key_signature.truncate(32);
    assert!(matches!(
        env.manager.rotate_key(&short).await,
        Err(IdentityError::SignatureLength {
            role: SignatureRole::OldKey,
            got: 32
        })
    ));

    // The new key signing in the old key's place: no authorisation.
    let mut by_new = good.clone();
    by_new.old_key_signature = good.new_key_signature.clone();
    assert!(matches!(
        env.manager.rotate_key(&by_new).await,
        Err(IdentityError::InvalidSignature {
            role: SignatureRole::OldKey
        })
    ));

    // The old key's signature for a rotation to another key.
    let mut other_target = good.clone();
    other_target.old_key_signature = sign_rotation(&secret(1), &id, &pubkey(9))
        .to_bytes()
        .to_vec();
    assert!(matches!(
        env.manager.rotate_key(&other_target).await,
        Err(IdentityError::InvalidSignature {
            role: SignatureRole::OldKey
        })
    ));

    // Nothing changed; the good request still works.
    assert_eq!(env.manager.identity(&id).unwrap().current_key(), pubkey(1));
    env.manager.rotate_key(&good).await.unwrap();
}

#[tokio::test]
async fn new_key_signature_wrong() {
    let env = http_env(TIP).await;
    let id = register(&env, 1, 1).await;
    let burn = rotation_burn(&env, 2, 100);
    let good = KeyRotation::sign(id, &secret(1), &secret(2), burn);

    let mut by_old = good.clone();
    by_old.new_key_signature = good.old_key_signature.clone();
    assert!(matches!(
        env.manager.rotate_key(&by_old).await,
        Err(IdentityError::InvalidSignature {
            role: SignatureRole::NewKey
        })
    ));

    let mut flipped = good.clone();
    flipped.new_key_signature[40] ^= 1;
    assert!(matches!(
        env.manager.rotate_key(&flipped).await,
        Err(IdentityError::InvalidSignature {
            role: SignatureRole::NewKey
        })
    ));

    let mut missing = good.clone();
    missing.new_key_signature.clear();
    assert!(matches!(
        env.manager.rotate_key(&missing).await,
        Err(IdentityError::SignatureMissing {
            role: SignatureRole::NewKey
        })
    ));
    assert_eq!(env.manager.identity(&id).unwrap().current_key(), pubkey(1));
}

#[tokio::test]
async fn rotation_burn_must_be_matured_large_enough_and_bound_to_the_new_key() {
    let env = http_env(TIP).await;
    let id = register(&env, 1, 1).await;

    // 99 confirmations.
    let young = env
        .chain
        .burn(&pubkey(2), ROTATION_BURN_SATS, TIP - 98, 100);
    let rotation = KeyRotation::sign(id, &secret(1), &secret(2), young);
    assert!(matches!(
        env.manager.rotate_key(&rotation).await,
        Err(IdentityError::Burn {
            source: BurnError::Immature {
                confirmations: 99,
                required: 100
            },
            ..
        })
    ));
    // One block later it is mature.
    env.chain.set_tip(TIP + 1);

    let small = env
        .chain
        .burn(&pubkey(2), ROTATION_BURN_SATS - 1, HEIGHT, 101);
    let rotation_small = KeyRotation::sign(id, &secret(1), &secret(2), small);
    assert!(matches!(
        env.manager.rotate_key(&rotation_small).await,
        Err(IdentityError::Burn {
            source: BurnError::TooSmall { .. },
            ..
        })
    ));

    // A burn committing to some other key cannot pay for this rotation.
    let foreign = rotation_burn(&env, 7, 102);
    let rotation_foreign = KeyRotation::sign(id, &secret(1), &secret(2), foreign);
    assert!(matches!(
        env.manager.rotate_key(&rotation_foreign).await,
        Err(IdentityError::Burn {
            source: BurnError::KeyMismatch { .. },
            ..
        })
    ));

    env.manager.rotate_key(&rotation).await.unwrap();
    assert_eq!(env.manager.identity(&id).unwrap().current_key(), pubkey(2));
}

#[tokio::test]
async fn one_burn_cannot_serve_two_identities() {
    let env = http_env(TIP).await;
    let a = register(&env, 1, 1).await;
    let b = register(&env, 2, 2).await;

    let burn = rotation_burn(&env, 3, 100);
    env.manager
        .rotate_key(&KeyRotation::sign(a, &secret(1), &secret(3), burn))
        .await
        .unwrap();

    // B presents the same rotation burn.
    let reuse = KeyRotation::sign(b, &secret(2), &secret(3), burn);
    assert!(matches!(
        env.manager.rotate_key(&reuse).await,
        Err(IdentityError::BurnAlreadyUsed { outpoint, by }) if outpoint == burn && by == a
    ));

    // B presents A's registration burn as a rotation burn.
    let a_registration = env
        .manager
        .identity(&a)
        .unwrap()
        .registration_burn()
        .outpoint;
    let reuse_registration = KeyRotation::sign(b, &secret(2), &secret(5), a_registration);
    assert!(matches!(
        env.manager.rotate_key(&reuse_registration).await,
        Err(IdentityError::BurnAlreadyUsed { by, .. }) if by == a
    ));

    // A new registration over the rotation burn.
    let id = IdentityId::derive(&burn);
    let sig = sign_registration(&secret(3), &id).to_bytes();
    assert!(matches!(
        env.manager
            .register_identity(&burn.txid, burn.vout, &pubkey(3), &sig)
            .await,
        Err(IdentityError::BurnAlreadyUsed { by, .. }) if by == a
    ));

    assert_eq!(env.manager.identity(&b).unwrap().current_key(), pubkey(2));
    assert_eq!(env.manager.identity_count(), 2);
}

#[tokio::test]
async fn concurrent_rotations_cannot_share_a_burn() {
    let env = http_env(TIP).await;
    let a = register(&env, 1, 1).await;
    let burn = rotation_burn(&env, 3, 100);
    let first = KeyRotation::sign(a, &secret(1), &secret(3), burn);
    let (r1, r2) = tokio::join!(
        env.manager.rotate_key(&first),
        env.manager.rotate_key(&first)
    );
    assert!(r1.is_ok() != r2.is_ok(), "{r1:?} {r2:?}");
    assert_eq!(env.manager.identity(&a).unwrap().key_history().count(), 2);
}

#[tokio::test]
async fn banned_and_unknown_identities_cannot_rotate() {
    let env = http_env(TIP).await;
    let a = register(&env, 1, 1).await;
    env.manager.ban(&a, "test").unwrap();
    let rotation = KeyRotation::sign(a, &secret(1), &secret(2), rotation_burn(&env, 2, 100));
    assert!(matches!(
        env.manager.rotate_key(&rotation).await,
        Err(IdentityError::Banned { id }) if id == a
    ));
    let unknown = IdentityId::from_bytes([9; 32]);
    let rotation = KeyRotation::sign(unknown, &secret(1), &secret(2), rotation_burn(&env, 2, 101));
    assert!(matches!(
        env.manager.rotate_key(&rotation).await,
        Err(IdentityError::UnknownIdentity { id }) if id == unknown
    ));
    // Same key.
    let b = register(&env, 5, 2).await;
    let same = KeyRotation::sign(b, &secret(5), &secret(5), rotation_burn(&env, 5, 102));
    assert!(matches!(
        env.manager.rotate_key(&same).await,
        Err(IdentityError::SameKey { .. })
    ));
}
