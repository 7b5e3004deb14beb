//! Reputation arithmetic at the bounds, auto-ban and `is_allowed`, through the
//! manager.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use musig2_identity::burn::REGISTRATION_BURN_SATS;
use musig2_identity::identity::sign_registration;
use musig2_identity::{
    BanReason, BurnPolicy, IdentityError, IdentityId, IdentityManager, IdentityStore, ManualClock,
};

type Manager = IdentityManager<ChainHandle, Arc<ManualClock>>;

async fn setup(seeds: &[u8]) -> (Manager, Arc<ManualClock>, Vec<IdentityId>) {
    let chain = ChainHandle::new(1_000);
    let clock = Arc::new(ManualClock::new(START_MS));
    let m = IdentityManager::new(
        chain.clone(),
        clock.clone(),
        IdentityStore::in_memory().unwrap(),
        BurnPolicy::default(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for &seed in seeds {
        let burn = chain.burn(&pubkey(seed), REGISTRATION_BURN_SATS, 100, u64::from(seed));
        let sig = sign_registration(&secret(seed), &IdentityId::derive(&burn)).to_bytes();
        ids.push(
            m.register_identity(&burn.txid, burn.vout, &pubkey(seed), &sig)
                .await
                .unwrap(),
        );
    }
    (m, clock, ids)
}

#[tokio::test]
async fn score_caps_at_100() {
    let (m, clock, ids) = setup(&[1]).await;
    let id = ids[0];
    for expected in (52..=100).step_by(2) {
        clock.advance(10);
        assert_eq!(m.record_success(&id, 30).unwrap().score(), expected);
    }
    let rep = m.record_success(&id, 60).unwrap();
    assert_eq!(rep.score(), 100);
    assert_eq!(rep.completed_signings(), 26);
    assert_eq!(rep.total_signings(), 26);
    assert!((rep.average_response_time_ms() - (25.0 * 30.0 + 60.0) / 26.0).abs() < 1e-9);
    assert_eq!(rep.last_updated_ms(), START_MS + 250);
    assert!(m.is_allowed(&id, 100));
    assert!(!m.is_allowed(&id, 101));
    // One failure from the top.
    assert_eq!(m.record_failure(&id, "late").unwrap().score(), 95);
}

#[tokio::test]
async fn failures_floor_at_zero_and_ban_exactly_then() {
    let (m, _clock, ids) = setup(&[1, 2]).await;
    let (id, other) = (ids[0], ids[1]);
    for expected in [45, 40, 35, 30, 25, 20, 15, 10, 5] {
        assert_eq!(m.record_failure(&id, "x").unwrap().score(), expected);
        assert!(!m.is_banned(&id));
        assert!(m.is_allowed(&id, expected));
        assert!(!m.is_allowed(&id, expected + 1));
    }
    let rep = m.record_failure(&id, "x").unwrap();
    assert_eq!(rep.score(), 0);
    assert_eq!(rep.failed_signings(), 10);
    assert!(m.is_banned(&id));
    let identity = m.identity(&id).unwrap();
    assert_eq!(
        identity.ban().unwrap().reason,
        BanReason::ReputationExhausted
    );
    for min in [0, 1, 50, 100] {
        assert!(!m.is_allowed(&id, min));
    }
    assert!(matches!(
        m.record_failure(&id, "x"),
        Err(IdentityError::Banned { .. })
    ));
    assert!(matches!(
        m.record_success(&id, 1),
        Err(IdentityError::Banned { .. })
    ));
    assert_eq!(m.reputation(&id).unwrap().total_signings(), 10);
    assert_eq!(m.identities_with_min_reputation(0), vec![other]);
    // The other identity is untouched.
    assert_eq!(m.reputation(&other).unwrap().score(), 50);
    assert_eq!(m.total_burned_sats(), 2 * REGISTRATION_BURN_SATS);
}

#[tokio::test]
async fn floor_from_an_odd_score() {
    let (m, _clock, ids) = setup(&[1]).await;
    let id = ids[0];
    m.record_success(&id, 1).unwrap(); // 52
    for _ in 0..10 {
        m.record_failure(&id, "x").unwrap(); // 47 … 2
    }
    assert_eq!(m.reputation(&id).unwrap().score(), 2);
    assert!(!m.is_banned(&id));
    assert_eq!(m.record_failure(&id, "x").unwrap().score(), 0);
    assert!(m.is_banned(&id));
}

#[tokio::test]
async fn manual_bans_and_unknown_identities() {
    let (m, clock, ids) = setup(&[1]).await;
    let id = ids[0];
    clock.advance(5);
    m.ban(&id, "spam").unwrap();
    clock.advance(5);
    m.ban(&id, "again").unwrap();
    let ban = m.identity(&id).unwrap().ban().cloned().unwrap();
    assert_eq!(ban.reason, BanReason::Manual("spam".into()));
    assert_eq!(ban.at_ms, START_MS + 5);
    assert!(!m.is_allowed(&id, 0));
    // Score is untouched by a manual ban.
    assert_eq!(m.reputation(&id).unwrap().score(), 50);

    let unknown = IdentityId::from_bytes([1; 32]);
    assert!(!m.is_allowed(&unknown, 0));
    assert!(!m.is_banned(&unknown));
    assert!(matches!(
        m.record_success(&unknown, 1),
        Err(IdentityError::UnknownIdentity { .. })
    ));
    assert!(matches!(
        m.ban(&unknown, "x"),
        Err(IdentityError::UnknownIdentity { .. })
    ));
}
