//! Identities, reputation, bans, used burns and key bindings survive a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use musig2_identity::burn::{REGISTRATION_BURN_SATS, ROTATION_BURN_SATS};
use musig2_identity::identity::sign_registration;
use musig2_identity::{
    BanReason, BurnPolicy, IdentityError, IdentityId, IdentityManager, IdentityStore, KeyRotation,
    ManualClock,
};

type Manager = IdentityManager<ChainHandle, Arc<ManualClock>>;

fn open(path: &std::path::Path, chain: &ChainHandle, clock: &Arc<ManualClock>) -> Manager {
    IdentityManager::new(
        chain.clone(),
        clock.clone(),
        IdentityStore::open(path).unwrap(),
        BurnPolicy::default(),
    )
    .unwrap()
}

async fn register(m: &Manager, chain: &ChainHandle, seed: u8, nonce: u64) -> IdentityId {
    let burn = chain.burn(&pubkey(seed), REGISTRATION_BURN_SATS, 100, nonce);
    let sig = sign_registration(&secret(seed), &IdentityId::derive(&burn)).to_bytes();
    m.register_identity(&burn.txid, burn.vout, &pubkey(seed), &sig)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identities.redb");
    let chain = ChainHandle::new(1_000);
    let clock = Arc::new(ManualClock::new(START_MS));

    let (a, b, c, rotation_burn, snapshot) = {
        let m = open(&path, &chain, &clock);
        let a = register(&m, &chain, 1, 1).await;
        let b = register(&m, &chain, 2, 2).await;
        let c = register(&m, &chain, 3, 3).await;
        for i in 0..5 {
            clock.advance(1_000);
            m.record_success(&a, 200 + i).unwrap();
        }
        clock.advance(1_000);
        let rotation_burn = chain.burn(&pubkey(4), ROTATION_BURN_SATS, 200, 10);
        m.rotate_key(&KeyRotation::sign(a, &secret(1), &secret(4), rotation_burn))
            .await
            .unwrap();
        // b fails until banned.
        while !m.is_banned(&b) {
            m.record_failure(&b, "no show").unwrap();
        }
        m.ban(&c, "operator says so").unwrap();
        let snapshot: Vec<_> = [a, b, c].iter().map(|id| m.identity(id).unwrap()).collect();
        (a, b, c, rotation_burn, snapshot)
    };

    let m = open(&path, &chain, &clock);
    assert_eq!(m.identity_count(), 3);
    for before in &snapshot {
        assert_eq!(m.identity(&before.id()).as_ref(), Some(before));
    }
    // Reputation and rotation survive.
    let ra = m.reputation(&a).unwrap();
    assert_eq!(ra.score(), 60);
    assert_eq!(ra.completed_signings(), 5);
    assert!((ra.average_response_time_ms() - 202.0).abs() < 1e-9);
    assert_eq!(ra.total_burned_sats(), 1_500 * XPI);
    assert_eq!(m.identity(&a).unwrap().current_key(), pubkey(4));
    assert_eq!(m.identity_by_key(&pubkey(4)), Some(a));
    // Bans survive, with their reasons.
    assert!(!m.is_allowed(&b, 0));
    assert_eq!(
        m.identity(&b).unwrap().ban().unwrap().reason,
        BanReason::ReputationExhausted
    );
    assert_eq!(m.reputation(&b).unwrap().score(), 0);
    assert!(!m.is_allowed(&c, 0));
    assert!(matches!(
        m.record_success(&c, 1),
        Err(IdentityError::Banned { .. })
    ));
    // Used burns and bound keys survive.
    let sig = sign_registration(&secret(4), &IdentityId::derive(&rotation_burn)).to_bytes();
    assert!(matches!(
        m.register_identity(&rotation_burn.txid, 0, &pubkey(4), &sig).await,
        Err(IdentityError::BurnAlreadyUsed { by, .. }) if by == a
    ));
    let burn = chain.burn(&pubkey(1), REGISTRATION_BURN_SATS, 100, 99);
    let sig = sign_registration(&secret(1), &IdentityId::derive(&burn)).to_bytes();
    assert!(matches!(
        m.register_identity(&burn.txid, 0, &pubkey(1), &sig).await,
        Err(IdentityError::KeyAlreadyBound { identity, .. }) if identity == a
    ));
    // And it keeps working after the restart.
    clock.advance(1_000);
    assert_eq!(m.record_success(&a, 10).unwrap().score(), 62);
    drop(m);
    let m = open(&path, &chain, &clock);
    assert_eq!(m.reputation(&a).unwrap().score(), 62);
}
