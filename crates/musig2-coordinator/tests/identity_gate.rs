//! The identity gate against a real Chronik-format server on loopback
//! (musig2-identity's test server over a chain of real burn transactions):
//! what a stranger's advertisement claims can and cannot do to this node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use musig2_coordinator::identity::{
    IdentityGate, LOOKUPS_PER_MINUTE, LiveIdentityManager, claim_of,
};
use musig2_core::{SecretKey, Signature};
use musig2_identity::identity::sign_registration;
use musig2_identity::{
    BurnPolicy, ChronikClient, IdentityId, IdentityStore, KeyRotation, OutPoint, SystemClock, TxId,
};
use musig2_security::{ClaimedOutPoint, ClaimedRotation, IdentityClaim};

#[path = "../../musig2-identity/tests/common/mod.rs"]
mod chain;

const NOW: u64 = 1_800_000_000_000;

struct Env {
    ledger: chain::ChainHandle,
    server: chain::TestServer,
    gate: IdentityGate,
}

async fn env() -> Env {
    let ledger = chain::ChainHandle::new(1000);
    let server = chain::TestServer::start(chain::ServerState::new(ledger.clone())).await;
    let client = ChronikClient::new(chain::test_config(vec![server.url.clone()])).unwrap();
    let manager = LiveIdentityManager::new(
        client,
        SystemClock,
        IdentityStore::in_memory().unwrap(),
        BurnPolicy::default(),
    )
    .unwrap();
    Env {
        ledger,
        server,
        gate: IdentityGate::new(Arc::new(manager), true, None),
    }
}

fn claimed(o: OutPoint) -> ClaimedOutPoint {
    ClaimedOutPoint {
        txid: o.txid.internal_bytes(),
        vout: o.vout,
    }
}

/// The registration claim of `secret`'s key on `burn`.
fn registration(secret: &SecretKey, burn: OutPoint) -> IdentityClaim {
    IdentityClaim {
        burn: claimed(burn),
        registered_key: secret.public_key(),
        ownership_signature: sign_registration(secret, &IdentityId::derive(&burn)),
        rotations: vec![],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_claim_on_an_honest_burn_refuses_only_itself() {
    let e = env().await;
    let (honest, thief) = (chain::secret(1), chain::secret(2));
    let burn = e
        .ledger
        .burn(&honest.public_key(), 1000 * chain::XPI, 800, 1);
    // The thief claims the honest burn for its own key, signed by itself.
    let forged = registration(&thief, burn);
    let refused = e.gate.check(&forged, NOW).await.unwrap_err();
    assert!(refused.contains("commits to key"), "{refused}");
    // The honest owner's claim is checked on its own, not refused from memory.
    let id = e
        .gate
        .check(&registration(&honest, burn), NOW)
        .await
        .unwrap();
    assert_eq!(id, IdentityId::derive(&burn));
    // The forgery is refused again from memory, without asking Chronik.
    let hits = e.server.hits();
    assert!(e.gate.check(&forged, NOW + 1).await.is_err());
    assert_eq!(e.server.hits(), hits);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_indexer_outage_is_not_held_against_the_claim() {
    let e = env().await;
    let honest = chain::secret(3);
    let burn = e
        .ledger
        .burn(&honest.public_key(), 1000 * chain::XPI, 800, 2);
    let claim = registration(&honest, burn);
    e.server.state.fail_next.store(100, Ordering::SeqCst);
    let refused = e.gate.check(&claim, NOW).await.unwrap_err();
    assert!(refused.contains("503"), "{refused}");
    e.server.state.fail_next.store(0, Ordering::SeqCst);
    let again = e.gate.check(&claim, NOW + 1).await;
    assert!(again.is_ok(), "{again:?} after {refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn strangers_cannot_make_the_node_query_chronik_without_bound() {
    let e = env().await;
    let honest = chain::secret(4);
    let burn = e
        .ledger
        .burn(&honest.public_key(), 1000 * chain::XPI, 800, 3);
    let known = registration(&honest, burn);
    e.gate.check(&known, NOW).await.unwrap();
    // Fresh burns nobody mined, one per claim: each costs a lookup until the
    // minute's budget is spent (the honest registration took one).
    let bogus = |n: u32| {
        let mut txid = [0x42; 32];
        txid[..4].copy_from_slice(&n.to_le_bytes());
        registration(
            &chain::secret(9),
            OutPoint::new(TxId::from_internal_bytes(txid), 0),
        )
    };
    for n in 1..LOOKUPS_PER_MINUTE {
        let refused = e.gate.check(&bogus(n), NOW).await.unwrap_err();
        assert!(refused.contains("not found"), "{refused}");
    }
    let hits = e.server.hits();
    let refused = e.gate.check(&bogus(10_000), NOW).await.unwrap_err();
    assert!(refused.contains("over budget"), "{refused}");
    assert_eq!(e.server.hits(), hits, "no lookup over the budget");
    // A known identity needs no lookup and is still accepted.
    assert!(e.gate.check(&known, NOW).await.is_ok());
    // A minute later the budget is back, and the over-budget claim was not
    // remembered as refused: it gets its lookup.
    let refused = e
        .gate
        .check(&bogus(10_000), NOW + 60_000)
        .await
        .unwrap_err();
    assert!(refused.contains("not found"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claims_rotations_are_replayed_and_the_record_claims_the_same() {
    let e = env().await;
    let (old, new) = (chain::secret(5), chain::secret(6));
    let burn = e.ledger.burn(&old.public_key(), 1000 * chain::XPI, 800, 4);
    let id = IdentityId::derive(&burn);
    let rotation_burn = e.ledger.burn(&new.public_key(), 500 * chain::XPI, 850, 5);
    let rotation = KeyRotation::sign(id, &old, &new, rotation_burn);
    let signature = |bytes: &[u8]| Signature::from_bytes(&bytes.try_into().unwrap());
    let mut claim = registration(&old, burn);
    claim.rotations.push(ClaimedRotation {
        new_key: new.public_key(),
        old_key_signature: signature(&rotation.old_key_signature),
        new_key_signature: signature(&rotation.new_key_signature),
        burn: claimed(rotation_burn),
    });
    // A peer that never saw the identity registers it and replays the rotation.
    assert_eq!(e.gate.check(&claim, NOW).await.unwrap(), id);
    let identity = e.gate.manager().identity(&id).unwrap();
    assert_eq!(identity.current_key(), new.public_key());
    assert_eq!(claim_of(&identity), claim);
    // A claim that stops at the old key no longer passes.
    let stale = registration(&old, burn);
    let refused = e.gate.check(&stale, NOW).await.unwrap_err();
    assert!(refused.contains("does not contain"), "{refused}");
}
