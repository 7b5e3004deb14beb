//! Registration through the real Chronik client against a Chronik-format HTTP
//! server on 127.0.0.1 serving transactions built from raw Lotus bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use musig2_identity::burn::{BurnError, REGISTRATION_BURN_SATS, parse_burn_script, verify_burn};
use musig2_identity::identity::sign_registration;
use musig2_identity::tx::sha256d;
use musig2_identity::{
    BurnPolicy, BurnPurpose, ChronikClient, ChronikError, IdentityError, IdentityId, Network,
    OutPoint, SignatureRole, Transaction, TxId,
};

/// A burn mined at height 1000 and the tip that gives it `confirmations`.
const BURN_HEIGHT: u32 = 1000;
fn tip_for(confirmations: u32) -> u32 {
    BURN_HEIGHT + confirmations - 1
}

async fn register(env: &HttpEnv, seed: u8, burn: OutPoint) -> Result<IdentityId, IdentityError> {
    let id = IdentityId::derive(&burn);
    let sig = sign_registration(&secret(seed), &id);
    env.manager
        .register_identity(&burn.txid, burn.vout, &pubkey(seed), &sig.to_bytes())
        .await
}

fn burn_err(result: Result<IdentityId, IdentityError>) -> BurnError {
    match result {
        Err(IdentityError::Burn { source, .. }) => source,
        other => panic!("expected a burn error, got {other:?}"),
    }
}

fn indexer_err(result: Result<IdentityId, IdentityError>) -> ChronikError {
    match result {
        Err(IdentityError::Indexer(e)) => e,
        other => panic!("expected an indexer error, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_burn_registers_at_exactly_144_confirmations() {
    let env = http_env(tip_for(144)).await;
    let burn = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    let id = register(&env, 1, burn).await.unwrap();
    assert_eq!(id, IdentityId::derive(&burn));

    let identity = env.manager.identity(&id).unwrap();
    assert_eq!(identity.current_key(), pubkey(1));
    assert_eq!(identity.registration_burn().outpoint, burn);
    assert_eq!(identity.registration_burn().amount_sats, 1_000 * XPI);
    assert_eq!(identity.registration_burn().block_height, BURN_HEIGHT);
    assert_eq!(identity.registration_burn().confirmations, 144);
    assert_eq!(identity.registered_at_ms(), START_MS);
    let rep = identity.reputation();
    assert_eq!(rep.score(), 50);
    assert_eq!(rep.total_burned_sats(), 1_000 * XPI);
    assert_eq!(rep.first_seen_ms(), START_MS);
    assert!(env.manager.is_allowed(&id, 50));
    assert!(!env.manager.is_allowed(&id, 51));
    assert_eq!(env.manager.identity_by_key(&pubkey(1)), Some(id));
    assert_eq!(env.manager.identity_count(), 1);
    // Two requests: the transaction, then the tip.
    assert_eq!(env.server.hits(), 2);
}

#[tokio::test]
async fn too_small_burn_is_rejected() {
    let env = http_env(tip_for(500)).await;
    let burn = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS - 1, BURN_HEIGHT, 1);
    assert_eq!(
        burn_err(register(&env, 1, burn).await),
        BurnError::TooSmall {
            amount_sats: 999_999_999,
            required_sats: 1_000_000_000
        }
    );
    assert_eq!(env.manager.identity_count(), 0);
}

#[tokio::test]
async fn wrong_lokad_is_rejected() {
    let env = http_env(tip_for(500)).await;
    let mut script = musig2_identity::burn::burn_script(&pubkey(1));
    script[2..6].copy_from_slice(b"SLP\0");
    let txid = env.chain.add_raw(
        &burn_tx_with_script(script, REGISTRATION_BURN_SATS, 1),
        Some(BURN_HEIGHT),
    );
    assert_eq!(
        burn_err(register(&env, 1, OutPoint::new(txid, 0)).await),
        BurnError::WrongLokad { found: *b"SLP\0" }
    );
}

#[tokio::test]
async fn wrong_version_is_rejected() {
    let env = http_env(tip_for(500)).await;
    let mut script = musig2_identity::burn::burn_script(&pubkey(1));
    script[7] = 2;
    let txid = env.chain.add_raw(
        &burn_tx_with_script(script, REGISTRATION_BURN_SATS, 1),
        Some(BURN_HEIGHT),
    );
    assert_eq!(
        burn_err(register(&env, 1, OutPoint::new(txid, 0)).await),
        BurnError::UnsupportedVersion { found: 2 }
    );
}

#[tokio::test]
async fn immature_burn_is_rejected_until_the_tip_moves() {
    let env = http_env(tip_for(143)).await;
    let burn = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    assert_eq!(
        burn_err(register(&env, 1, burn).await),
        BurnError::Immature {
            confirmations: 143,
            required: 144
        }
    );
    env.chain.set_tip(tip_for(144));
    register(&env, 1, burn).await.unwrap();
}

#[tokio::test]
async fn unmined_burn_is_rejected() {
    let env = http_env(tip_for(500)).await;
    let txid = env
        .chain
        .add_raw(&burn_tx(&pubkey(1), REGISTRATION_BURN_SATS, 1), None);
    assert_eq!(
        burn_err(register(&env, 1, OutPoint::new(txid, 0)).await),
        BurnError::NotMined
    );
}

#[tokio::test]
async fn wrong_output_wrong_key_and_non_op_return() {
    let env = http_env(tip_for(500)).await;
    let burn = env
        .chain
        .burn(&pubkey(2), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    // The burn commits to key 2; key 1 presents it.
    assert_eq!(
        burn_err(register(&env, 1, burn).await),
        BurnError::KeyMismatch { found: pubkey(2) }
    );
    // Output 1 is the P2PKH change.
    assert_eq!(
        burn_err(register(&env, 2, OutPoint::new(burn.txid, 1)).await),
        BurnError::NotOpReturn {
            first_byte: Some(0x76)
        }
    );
    assert_eq!(
        burn_err(register(&env, 2, OutPoint::new(burn.txid, 2)).await),
        BurnError::NoSuchOutput {
            vout: 2,
            outputs: 2
        }
    );
}

#[tokio::test]
async fn ownership_signature_must_be_present_well_formed_and_valid() {
    let env = http_env(tip_for(500)).await;
    let burn = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    let id = IdentityId::derive(&burn);
    let key = pubkey(1);
    let m = &env.manager;
    assert!(matches!(
        m.register_identity(&burn.txid, 0, &key, &[]).await,
        Err(IdentityError::SignatureMissing {
            role: SignatureRole::Ownership
        })
    ));
    assert!(matches!(
        m.register_identity(&burn.txid, 0, &key, &[1; 63]).await,
        Err(IdentityError::SignatureLength {
            role: SignatureRole::Ownership,
            got: 63
        })
    ));
    // Signed by another key.
    let other = sign_registration(&secret(2), &id).to_bytes();
    assert!(matches!(
        m.register_identity(&burn.txid, 0, &key, &other).await,
        Err(IdentityError::InvalidSignature {
            role: SignatureRole::Ownership
        })
    ));
    // Signed over the raw id rather than SHA256(id).
    let raw = musig2_core::schnorr::sign(&secret(1), &id.to_bytes()).to_bytes();
    assert!(matches!(
        m.register_identity(&burn.txid, 0, &key, &raw).await,
        Err(IdentityError::InvalidSignature {
            role: SignatureRole::Ownership
        })
    ));
    // Signature checks come before the network.
    assert_eq!(env.server.hits(), 0);
    register(&env, 1, burn).await.unwrap();
    assert!(matches!(
        register(&env, 1, burn).await,
        Err(IdentityError::AlreadyRegistered { id: dup }) if dup == id
    ));
}

#[tokio::test]
async fn one_key_cannot_anchor_two_identities() {
    let env = http_env(tip_for(500)).await;
    let first = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    let second = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 2);
    let id = register(&env, 1, first).await.unwrap();
    assert!(matches!(
        register(&env, 1, second).await,
        Err(IdentityError::KeyAlreadyBound { identity, .. }) if identity == id
    ));
}

#[tokio::test]
async fn unknown_txid_is_a_404_not_found() {
    let env = http_env(tip_for(500)).await;
    let unknown = OutPoint::new(TxId::from_internal_bytes([0x42; 32]), 0);
    match indexer_err(register(&env, 1, unknown).await) {
        ChronikError::NotFound { path, code, .. } => {
            assert_eq!(code, "tx-not-found");
            assert_eq!(path, format!("/tx/{}", unknown.txid));
        }
        other => panic!("{other:?}"),
    }
    // A 404 is final: no retry.
    assert_eq!(env.server.hits(), 1);
}

#[tokio::test]
async fn garbage_body_is_a_protobuf_error() {
    let env = http_env(tip_for(500)).await;
    let burn = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    env.server.state.garbage.store(true, Ordering::SeqCst);
    assert!(matches!(
        indexer_err(register(&env, 1, burn).await),
        ChronikError::BadProtobuf { message: "Tx", .. }
    ));
    assert_eq!(env.server.hits(), 1);
}

#[tokio::test]
async fn slow_server_times_out_after_the_retries() {
    let env = http_env_with_timeout(tip_for(500), Duration::from_millis(200)).await;
    let burn = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    env.server.state.delay_ms.store(900, Ordering::SeqCst);
    let started = Instant::now();
    match indexer_err(register(&env, 1, burn).await) {
        ChronikError::Unavailable { attempts, last, .. } => {
            assert_eq!(attempts, 2);
            assert!(matches!(*last, ChronikError::Timeout { .. }), "{last:?}");
        }
        other => panic!("{other:?}"),
    }
    // Two 200 ms attempts and a 10 ms back-off: the client gave up on its own
    // (a late answer would have succeeded); generous bound for loaded machines.
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(env.manager.identity_count(), 0);
}

#[tokio::test]
async fn wrong_network_is_rejected() {
    let env = http_env(tip_for(500)).await;
    let burn = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    *env.server.state.network.lock().unwrap() = Network::Xec;
    assert!(matches!(
        indexer_err(register(&env, 1, burn).await),
        ChronikError::WrongNetwork {
            expected: Network::Xpi,
            found: 1,
            ..
        }
    ));
}

#[tokio::test]
async fn a_lying_indexer_cannot_inflate_a_burn() {
    let env = http_env(tip_for(500)).await;
    let burn = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS - 1, BURN_HEIGHT, 1);
    env.server.state.tamper.store(true, Ordering::SeqCst);
    assert!(matches!(
        indexer_err(register(&env, 1, burn).await),
        ChronikError::TxIdMismatch { requested, .. } if requested == burn.txid
    ));
}

#[tokio::test]
async fn server_errors_are_retried_and_then_succeed() {
    let env = http_env(tip_for(500)).await;
    let burn = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    env.server.state.fail_next.store(1, Ordering::SeqCst);
    register(&env, 1, burn).await.unwrap();
    // 503, then the tx, then the tip.
    assert_eq!(env.server.hits(), 3);
}

#[tokio::test]
async fn persistent_server_errors_give_unavailable() {
    let env = http_env(tip_for(500)).await;
    let burn = env
        .chain
        .burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    env.server.state.fail_next.store(100, Ordering::SeqCst);
    match indexer_err(register(&env, 1, burn).await) {
        ChronikError::Unavailable { attempts, last, .. } => {
            assert_eq!(attempts, 2);
            assert!(matches!(
                *last,
                ChronikError::Status { status: 503, ref code, .. } if code == "unavailable"
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn fails_over_from_a_dead_url_to_a_live_one() {
    let chain = ChainHandle::new(tip_for(144));
    let burn = chain.burn(&pubkey(1), REGISTRATION_BURN_SATS, BURN_HEIGHT, 1);
    let server = TestServer::start(ServerState::new(chain.clone())).await;
    let client = ChronikClient::new(test_config(vec![dead_url(), server.url.clone()])).unwrap();
    let indexed = client.tx(&burn.txid).await.unwrap();
    assert_eq!(indexed.txid, burn.txid);
    assert_eq!(indexed.block_height, Some(BURN_HEIGHT));
    let tip = client.blockchain_info().await.unwrap();
    assert_eq!(tip.height, tip_for(144));
    assert_eq!(tip.hash, [0x11; 32]);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn lotus_genesis_vector() {
    let data: serde_json::Value =
        serde_json::from_str(include_str!("data/lotus_genesis.json")).unwrap();
    let raw = hex::decode(data["raw_hex"].as_str().unwrap()).unwrap();
    let expected: TxId = data["txid"].as_str().unwrap().parse().unwrap();

    let tx = Transaction::parse(&raw).unwrap();
    assert_eq!(tx.serialize(), raw);
    assert_eq!(tx.txid(), expected);
    assert_ne!(tx.txid().internal_bytes(), sha256d(&raw));

    // Served over HTTP, fetched and re-verified by the client.
    let chain = ChainHandle::new(200);
    chain.add_raw(&raw, Some(0));
    let server = TestServer::start(ServerState::new(chain)).await;
    let client = ChronikClient::new(test_config(vec![server.url.clone()])).unwrap();
    let indexed = client.tx(&expected).await.unwrap();
    assert_eq!(indexed.tx, tx);

    // Its OP_RETURN ("logos") is a real Lotus OP_RETURN, but not an MSg2 burn.
    assert_eq!(
        parse_burn_script(&tx.outputs[0].script),
        Err(BurnError::LokadLength { len: 5 })
    );
    assert_eq!(
        verify_burn(
            &indexed,
            1,
            200,
            BurnPurpose::Registration,
            &BurnPolicy::default(),
            &pubkey(1)
        ),
        Err(BurnError::NotOpReturn {
            first_byte: Some(0x41)
        })
    );
}
