//! Signing sessions over real libp2p swarms on 127.0.0.1. Nodes know only a
//! bootstrap node; co-signers are found through the DHT. Every test waits for
//! events with a deadline and never sleeps to wait.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use musig2_coordinator::cluster::{ClusterNode, LocalCluster};
use musig2_coordinator::{CoordinatorConfig, CoordinatorEvent, ErrorCode};
use musig2_core::{KeyAggContext, Lotus, schnorr};
use musig2_election::ElectionMethod;
use musig2_security::{InputScriptType, SigningMetadata};

/// Logs go to the test output when `RUST_LOG` is set.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn config(method: ElectionMethod) -> CoordinatorConfig {
    init_logs();
    CoordinatorConfig {
        auto_join: true,
        election_method: method,
        ..CoordinatorConfig::default()
    }
}

async fn sign_and_check(n: usize, method: ElectionMethod, metadata: SigningMetadata) {
    let mut cluster = LocalCluster::start(n, config(method)).await.unwrap();
    let message = [0x5a; 32];
    let outcome = cluster
        .sign(message, metadata.clone(), |_, _| {})
        .await
        .unwrap();
    // The signature verifies under the aggregate key computed independently.
    let mut ctx = KeyAggContext::<Lotus>::new_sorted(&cluster.pubkeys()).unwrap();
    if metadata.input_script_type == Some(InputScriptType::Taproot) {
        ctx = ctx.with_taproot_tweak(&[0u8; 32]).unwrap();
    }
    assert_eq!(outcome.aggregate_pubkey, ctx.aggregate_pubkey());
    schnorr::verify(
        &ctx.aggregate_pubkey(),
        &message,
        &outcome.signature.signature,
    )
    .unwrap();
    // The broadcaster is the elected coordinator.
    let election = musig2_election::elect_coordinator(&cluster.pubkeys(), method).unwrap();
    assert_eq!(outcome.broadcaster, election.coordinator_index);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_two() {
    sign_and_check(2, ElectionMethod::Lexicographic, SigningMetadata::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_of_three_with_each_election_method() {
    for method in [
        ElectionMethod::Lexicographic,
        ElectionMethod::HashBased,
        ElectionMethod::FirstSigner,
        ElectionMethod::LastSigner,
    ] {
        sign_and_check(3, method, SigningMetadata::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_of_ten_taproot() {
    let metadata = SigningMetadata {
        input_script_type: Some(InputScriptType::Taproot),
        ..SigningMetadata::default()
    };
    let mut cluster = LocalCluster::start(10, config(ElectionMethod::Lexicographic))
        .await
        .unwrap();
    let outcome = cluster.sign([7u8; 32], metadata, |_, _| {}).await.unwrap();
    assert_eq!(outcome.signature.sighash_type, Some(0x61));
    let ctx = KeyAggContext::<Lotus>::new_sorted(&cluster.pubkeys())
        .unwrap()
        .with_taproot_tweak(&[0u8; 32])
        .unwrap();
    schnorr::verify(
        &ctx.aggregate_pubkey(),
        &[7u8; 32],
        &outcome.signature.signature,
    )
    .unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighash_is_detected_from_metadata() {
    let metadata = SigningMetadata {
        input_script_type: Some(InputScriptType::PubKeyHash),
        ..SigningMetadata::default()
    };
    let mut cluster = LocalCluster::start(2, config(ElectionMethod::Lexicographic))
        .await
        .unwrap();
    let outcome = cluster.sign([1u8; 32], metadata, |_, _| {}).await.unwrap();
    assert_eq!(outcome.signature.sighash_type, Some(0x41));
    assert_eq!(outcome.signature.to_tx_bytes().len(), 65);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_session_aborts_everyone() {
    let mut cluster = LocalCluster::start(3, config(ElectionMethod::Lexicographic))
        .await
        .unwrap();
    let keys = cluster.pubkeys();
    let creator = &cluster.nodes[0];
    creator
        .coordinator
        .announce_signing_request(
            &keys,
            [2u8; 32],
            &creator.keypair,
            SigningMetadata::default(),
        )
        .await
        .unwrap();
    let mut session = None;
    for node in cluster.nodes.iter_mut() {
        session = Some(
            node.wait_for(Duration::from_secs(30), |e| match e {
                CoordinatorEvent::SessionReady { session_id, .. } => Some(*session_id),
                _ => None,
            })
            .await
            .unwrap(),
        );
    }
    let session = session.unwrap();
    let closer = cluster.nodes[1]
        .coordinator
        .get_session(session)
        .unwrap()
        .my_index;
    cluster.nodes[1].coordinator.close_session(session).unwrap();
    assert!(cluster.nodes[1].coordinator.get_session(session).is_none());
    for i in [0, 2] {
        let node = &mut cluster.nodes[i];
        let (code, signer) = session_error(node).await;
        assert_eq!((code, signer), (ErrorCode::Aborted, Some(closer)));
        assert!(node.coordinator.get_session(session).is_none());
    }
    cluster.shutdown().await;
}

async fn session_error(node: &mut ClusterNode) -> (ErrorCode, Option<usize>) {
    node.wait_for(Duration::from_secs(30), |e| match e {
        CoordinatorEvent::SessionError { code, signer, .. } => Some((*code, *signer)),
        _ => None,
    })
    .await
    .unwrap()
}
