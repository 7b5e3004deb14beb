//! Signing sessions over real libp2p swarms on 127.0.0.1. Nodes know only a
//! bootstrap node; co-signers are found through the DHT. Every test waits for
//! events with a deadline and never sleeps to wait.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use musig2_coordinator::cluster::{ClusterNode, LocalCluster, SigningOutcome};
use musig2_coordinator::{CoordinatorConfig, CoordinatorEvent, ErrorCode, JoinDecision};
use musig2_core::PublicKey;
use musig2_core::{KeyAggContext, Lotus, schnorr};
use musig2_election::ElectionMethod;
use musig2_net::{NetConfig, NetHandle, NodeKeypair, PeerId};
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

/// Checks an outcome against the aggregate key computed independently of the
/// nodes (the Taproot commitment key for a Taproot request).
fn check_signature(
    cluster: &LocalCluster,
    message: [u8; 32],
    taproot: bool,
    outcome: &SigningOutcome,
) -> PublicKey {
    let mut ctx = KeyAggContext::<Lotus>::new_sorted(&cluster.pubkeys()).unwrap();
    if taproot {
        ctx = ctx.with_taproot_tweak(&[0u8; 32]).unwrap();
    }
    assert_eq!(outcome.aggregate_pubkey, ctx.aggregate_pubkey());
    schnorr::verify(
        &ctx.aggregate_pubkey(),
        &message,
        &outcome.signature.signature,
    )
    .unwrap();
    ctx.aggregate_pubkey()
}

/// A plain libp2p node (no coordinator, not a signer) that knows `node`'s addresses.
async fn rogue_near(node: &ClusterNode) -> NetHandle {
    let (rogue, events) = musig2_net::start(NodeKeypair::generate_ed25519(), NetConfig::loopback())
        .await
        .unwrap();
    // Keep its event queue drained.
    tokio::spawn(async move {
        let mut events = events;
        while events.recv().await.is_some() {}
    });
    let target = node.coordinator.local_peer_id();
    for addr in node.coordinator.multiaddrs().await.unwrap() {
        rogue.add_address(target, addr).await.unwrap();
    }
    rogue
}

/// Sends until the target's swarm accepts the frame (the first dial may race).
async fn deliver(rogue: &NetHandle, target: PeerId, bytes: Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while rogue.send(target, bytes.clone()).await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
}

async fn sign_and_check(n: usize, method: ElectionMethod, metadata: SigningMetadata) {
    let mut cluster = LocalCluster::start(n, config(method)).await.unwrap();
    let message = [0x5a; 32];
    let outcome = cluster
        .sign(message, metadata.clone(), |_, _| {})
        .await
        .unwrap();
    // The signature verifies under the aggregate key computed independently.
    let taproot = metadata.input_script_type == Some(InputScriptType::Taproot);
    check_signature(&cluster, message, taproot, &outcome);
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
    check_signature(&cluster, [7u8; 32], true, &outcome);
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
    let session = announce_until_ready(&mut cluster, [2u8; 32]).await;
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

/// Node 0 announces a request for every key; returns the session id once
/// every node reports it ready.
async fn announce_until_ready(cluster: &mut LocalCluster, message: [u8; 32]) -> [u8; 32] {
    let keys = cluster.pubkeys();
    let creator = &cluster.nodes[0];
    creator
        .coordinator
        .announce_signing_request(&keys, message, &creator.keypair, SigningMetadata::default())
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
    session.unwrap()
}

async fn session_error(node: &mut ClusterNode) -> (ErrorCode, Option<usize>) {
    node.wait_for(Duration::from_secs(30), |e| match e {
        CoordinatorEvent::SessionError { code, signer, .. } => Some((*code, *signer)),
        _ => None,
    })
    .await
    .unwrap()
}

/// The elected coordinator never confirms: each trigger moves
/// `ShouldBroadcast` to the next node in the priority list, a backup's
/// confirmation reaches everyone, and after N attempts failover is exhausted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_should_broadcast_down_the_priority_list() {
    let method = ElectionMethod::HashBased;
    let mut cluster = LocalCluster::start(3, config(method)).await.unwrap();
    let (session, _) = cluster
        .sign_until_complete([3u8; 32], SigningMetadata::default(), &mut |_, _| {})
        .await
        .unwrap();
    let sorted = musig2_core::key_sort(&cluster.pubkeys());
    let priority = musig2_election::coordinator_priority_list(&sorted, method);
    assert_eq!(priority.len(), 3);
    let node_of = |cluster: &LocalCluster, sorted_index: usize| {
        cluster
            .nodes
            .iter()
            .position(|n| n.keypair.public_key() == sorted[sorted_index])
            .unwrap()
    };

    for (attempt, &expected) in priority.iter().enumerate() {
        let coordinator = node_of(&cluster, expected);
        // Exactly the expected node believes it is the coordinator, and hears so.
        for (i, node) in cluster.nodes.iter().enumerate() {
            assert_eq!(
                node.coordinator.is_coordinator(session),
                i == coordinator,
                "attempt {}",
                attempt + 1
            );
        }
        let index = cluster.nodes[coordinator]
            .wait_for(Duration::from_secs(30), |e| match e {
                CoordinatorEvent::ShouldBroadcast {
                    session_id,
                    coordinator_index,
                } if *session_id == session => Some(*coordinator_index),
                _ => None,
            })
            .await
            .unwrap();
        assert_eq!(index, expected);
        // It does not broadcast: every node's application times out.
        for node in &cluster.nodes {
            node.coordinator
                .trigger_coordinator_failover(session)
                .unwrap();
        }
        for node in cluster.nodes.iter_mut() {
            let event = node
                .wait_for(Duration::from_secs(30), |e| match e {
                    CoordinatorEvent::CoordinatorFailed { attempt, .. } => Some(Ok(*attempt)),
                    CoordinatorEvent::FailoverExhausted { attempts, .. } => Some(Err(*attempts)),
                    _ => None,
                })
                .await
                .unwrap();
            if attempt + 1 < priority.len() {
                assert_eq!(event, Ok(attempt + 2));
            } else {
                assert_eq!(event, Err(3), "N attempts in all, then exhaustion");
            }
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_coordinator_confirms_for_everyone() {
    let mut cluster = LocalCluster::start(3, config(ElectionMethod::Lexicographic))
        .await
        .unwrap();
    let (session, _) = cluster
        .sign_until_complete([4u8; 32], SigningMetadata::default(), &mut |_, _| {})
        .await
        .unwrap();
    for node in &cluster.nodes {
        node.coordinator
            .trigger_coordinator_failover(session)
            .unwrap();
    }
    let backup = cluster
        .nodes
        .iter()
        .position(|n| n.coordinator.is_coordinator(session))
        .unwrap();
    cluster.nodes[backup]
        .wait_for(Duration::from_secs(30), |e| {
            matches!(e, CoordinatorEvent::ShouldBroadcast { .. }).then_some(())
        })
        .await
        .unwrap();
    cluster.nodes[backup]
        .coordinator
        .notify_broadcast_complete(session)
        .unwrap();
    for node in cluster.nodes.iter_mut() {
        node.wait_for(Duration::from_secs(30), |e| {
            matches!(e, CoordinatorEvent::BroadcastConfirmed { session_id, .. } if *session_id == session)
                .then_some(())
        })
        .await
        .unwrap();
    }
    cluster.shutdown().await;
}

/// A signer vanishes mid-round: the others report it by index within the
/// configured grace period instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_that_disconnects_mid_round_is_named() {
    let cfg = CoordinatorConfig {
        disconnect_grace: Duration::from_millis(300),
        ..config(ElectionMethod::Lexicographic)
    };
    let mut cluster = LocalCluster::start(3, cfg).await.unwrap();
    let session = announce_until_ready(&mut cluster, [5u8; 32]).await;
    // Everyone commits; node 2 then disappears before revealing its nonce.
    for node in &cluster.nodes {
        node.coordinator.publish_nonce_commitments(session).unwrap();
    }
    for node in cluster.nodes.iter_mut() {
        node.wait_for(Duration::from_secs(30), |e| {
            matches!(e, CoordinatorEvent::NonceCommitmentsComplete(id) if *id == session)
                .then_some(())
        })
        .await
        .unwrap();
    }
    let gone = cluster.nodes[2]
        .coordinator
        .get_session(session)
        .unwrap()
        .my_index;
    cluster.nodes[2].coordinator.shutdown().await;
    for i in [0, 1] {
        cluster.nodes[i].coordinator.start_round1(session).unwrap();
    }
    let started = std::time::Instant::now();
    // Whoever notices first (disconnect sweep or failed send) names the
    // signer and aborts the session for the others, whose abort reason names
    // the same signer.
    let mut named = 0;
    for i in [0, 1] {
        let (code, signer, message) = cluster.nodes[i]
            .wait_for(Duration::from_secs(30), |e| match e {
                CoordinatorEvent::SessionError {
                    code,
                    signer,
                    message,
                    ..
                } => Some((*code, *signer, message.clone())),
                _ => None,
            })
            .await
            .unwrap();
        match code {
            // Noticed directly: by the disconnect sweep, or by a send that failed.
            ErrorCode::ParticipantDisconnected | ErrorCode::DeliveryFailed => {
                assert_eq!(signer, Some(gone), "{message}");
                named += 1;
            }
            // Told by the co-signer that noticed first.
            ErrorCode::Aborted => assert!(message.contains(&format!("signer {gone}")), "{message}"),
            other => panic!("unexpected {other:?}: {message}"),
        }
        assert!(cluster.nodes[i].coordinator.get_session(session).is_none());
    }
    assert!(named >= 1);
    // Reported after the grace period, long before any round timeout.
    assert!(started.elapsed() < Duration::from_secs(20));
    cluster.shutdown().await;
}

/// Discovery uses the DHT only: every node is configured with the bootstrap
/// node's address and nothing else, and auto-connect is off, so the only way a
/// node can reach a co-signer is the address in that co-signer's DHT record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn co_signers_are_found_through_the_dht_only() {
    let cfg = CoordinatorConfig {
        enable_auto_connect: false,
        ..config(ElectionMethod::Lexicographic)
    };
    let mut cluster = LocalCluster::start(4, cfg).await.unwrap();
    let bootstrap = cluster.bootstrap.local_peer_id();
    let peers = cluster.nodes[0]
        .coordinator
        .net()
        .connected_peers()
        .await
        .unwrap();
    assert!(peers.contains(&bootstrap));
    let outcome = cluster
        .sign([6u8; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    check_signature(&cluster, [6u8; 32], false, &outcome);
    // Now it talks to every co-signer directly (full mesh).
    let peers = cluster.nodes[0]
        .coordinator
        .net()
        .connected_peers()
        .await
        .unwrap();
    for node in &cluster.nodes[1..] {
        assert!(peers.contains(&node.coordinator.local_peer_id()));
    }
    cluster.shutdown().await;
}

/// Anyone can learn a session id; a forged join naming an honest signer must
/// neither end the session nor blame that signer. The forger is penalised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_join_does_not_end_the_session() {
    use musig2_coordinator::wire::{Body, WireMessage, encode};

    let cfg = CoordinatorConfig {
        auto_join: false,
        ..config(ElectionMethod::Lexicographic)
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let keys = cluster.pubkeys();
    let creator = &cluster.nodes[0];
    let request = creator
        .coordinator
        .announce_signing_request(
            &keys,
            [8u8; 32],
            &creator.keypair,
            SigningMetadata::default(),
        )
        .await
        .unwrap();
    let session = creator.coordinator.get_session_by_request(request).unwrap();
    let victim_index = creator
        .coordinator
        .get_session(session)
        .unwrap()
        .signers
        .iter()
        .position(|k| *k == keys[1])
        .unwrap();

    // The forger: a plain libp2p node that knows the creator's address.
    let rogue = rogue_near(creator).await;
    let forged = WireMessage {
        session_id: session,
        sequence: 1,
        sent_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
        body: Body::SessionJoin {
            signer_index: victim_index as u32,
            pubkey: keys[1],
            peer_id: rogue.local_peer_id().to_string(),
            announcement_digest: [0; 32],
            signature: musig2_core::Signature::from_bytes(&[1u8; 64]),
        },
    };
    deliver(
        &rogue,
        creator.coordinator.local_peer_id(),
        encode(&forged).unwrap(),
    )
    .await;

    // The real signer joins; the session goes ahead and completes.
    let real = &cluster.nodes[1];
    real.coordinator
        .join_signing_request(request, &real.keypair)
        .await
        .unwrap();
    for node in cluster.nodes.iter_mut() {
        node.wait_for(Duration::from_secs(30), |e| {
            matches!(e, CoordinatorEvent::SessionReady { session_id, .. } if *session_id == session)
                .then_some(())
        })
        .await
        .unwrap();
    }
    let rogue_score = cluster.nodes[0].coordinator.with_security(|s| {
        s.peer_score(&musig2_security::PeerId::new(
            rogue.local_peer_id().to_string(),
        ))
    });
    assert!(
        rogue_score.invalid_signatures > 0,
        "the forger is not penalised: {rogue_score:?}"
    );
    // The signer it impersonated is not.
    let victim_score = cluster.nodes[0].coordinator.with_security(|s| {
        s.peer_score(&musig2_security::PeerId::new(
            cluster.nodes[1].coordinator.local_peer_id().to_string(),
        ))
    });
    assert!(victim_score.is_clean(), "{victim_score:?}");
    rogue.shutdown().await;
    cluster.shutdown().await;
}

/// A one-signer "session" is ready at once and signs alone (Q = a·P with
/// lotus-sdk's hashed coefficient).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_signer_is_ready_at_once() {
    let mut cluster = LocalCluster::start(1, config(ElectionMethod::Lexicographic))
        .await
        .unwrap();
    let outcome = cluster
        .sign([9u8; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    let key = check_signature(&cluster, [9u8; 32], false, &outcome);
    assert_ne!(key, cluster.pubkeys()[0]);
    cluster.shutdown().await;
}

/// Garbage from a connected peer (valid frames, undecodable payloads) is
/// counted against that peer and never stops the node from signing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_peer_is_penalised_and_harmless() {
    let mut cluster = LocalCluster::start(2, config(ElectionMethod::Lexicographic))
        .await
        .unwrap();
    let rogue = rogue_near(&cluster.nodes[0]).await;
    let target = cluster.nodes[0].coordinator.local_peer_id();
    for garbage in [
        vec![],
        vec![0xff; 7],
        vec![0x00; 300],
        b"not postcard at all".to_vec(),
    ] {
        deliver(&rogue, target, garbage).await;
    }
    let outcome = cluster
        .sign([10u8; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    check_signature(&cluster, [10u8; 32], false, &outcome);
    let score = cluster.nodes[0].coordinator.with_security(|s| {
        s.peer_score(&musig2_security::PeerId::new(
            rogue.local_peer_id().to_string(),
        ))
    });
    assert!(score.spam_count >= 4, "{score:?}");
    rogue.shutdown().await;
    cluster.shutdown().await;
}

/// The legacy API (`create_session` / `join_session`) with Phase 0 turned
/// off, and a join policy that refuses: the refusing node never joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sessions_without_commitments_and_a_refusing_policy() {
    let cfg = CoordinatorConfig {
        auto_join: false,
        enable_nonce_commitment: false,
        ..config(ElectionMethod::Lexicographic)
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let keys = cluster.pubkeys();
    let creator = &cluster.nodes[0];
    let session = creator
        .coordinator
        .create_session(
            &keys,
            &creator.keypair,
            [11u8; 32],
            SigningMetadata::default(),
        )
        .await
        .unwrap();
    // The joiner has the request (delivered directly); it joins by session id.
    cluster.nodes[1]
        .wait_for(Duration::from_secs(30), |e| {
            matches!(e, CoordinatorEvent::SigningRequestReceived { .. }).then_some(())
        })
        .await
        .unwrap();
    let joiner = &cluster.nodes[1];
    joiner
        .coordinator
        .join_session(session, &joiner.keypair)
        .await
        .unwrap();
    for node in cluster.nodes.iter_mut() {
        node.wait_for(Duration::from_secs(30), |e| {
            matches!(e, CoordinatorEvent::SessionReady { session_id, .. } if *session_id == session)
                .then_some(())
        })
        .await
        .unwrap();
        assert!(
            node.coordinator.publish_nonce_commitments(session).is_err(),
            "Phase 0 is off"
        );
    }
    for node in &cluster.nodes {
        node.coordinator.start_round1(session).unwrap();
    }
    for node in cluster.nodes.iter_mut() {
        node.wait_for(Duration::from_secs(30), |e| {
            matches!(e, CoordinatorEvent::Round1Complete(id) if *id == session).then_some(())
        })
        .await
        .unwrap();
    }
    for node in &cluster.nodes {
        node.coordinator.start_round2(session).unwrap();
    }
    let mut signature = None;
    for node in cluster.nodes.iter_mut() {
        signature = Some(
            node.wait_for(Duration::from_secs(30), |e| match e {
                CoordinatorEvent::SessionComplete {
                    session_id,
                    signature,
                } if *session_id == session => Some(*signature),
                _ => None,
            })
            .await
            .unwrap(),
        );
    }
    let ctx = KeyAggContext::<Lotus>::new_sorted(&keys).unwrap();
    schnorr::verify(&ctx.aggregate_pubkey(), &[11u8; 32], &signature.unwrap()).unwrap();
    cluster.shutdown().await;

    // A node whose policy refuses does not join, so the session never forms.
    let refuse: musig2_coordinator::JoinPolicy =
        std::sync::Arc::new(|_| JoinDecision::Refuse("not today".into()));
    let cfg = CoordinatorConfig {
        join_policy: refuse,
        ..config(ElectionMethod::Lexicographic)
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let keys = cluster.pubkeys();
    let creator = &cluster.nodes[0];
    let request = creator
        .coordinator
        .announce_signing_request(
            &keys,
            [12u8; 32],
            &creator.keypair,
            SigningMetadata::default(),
        )
        .await
        .unwrap();
    cluster.nodes[1]
        .wait_for(Duration::from_secs(30), |e| {
            matches!(e, CoordinatorEvent::SigningRequestReceived { .. }).then_some(())
        })
        .await
        .unwrap();
    assert_eq!(
        cluster.nodes[1].coordinator.get_session_by_request(request),
        None
    );
    let session = cluster.nodes[0]
        .coordinator
        .get_session_by_request(request)
        .unwrap();
    assert_eq!(
        cluster.nodes[0]
            .coordinator
            .get_session(session)
            .unwrap()
            .joined,
        1
    );
    cluster.shutdown().await;
}

/// The creator's choice of nonce commitments is in the signed request and
/// binds every signer, whatever its own configuration says (signers that
/// followed their own settings could never finish).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creators_commitment_setting_binds_every_signer() {
    for creator_commits in [false, true] {
        let mut rng = rand::rng();
        let with = |commitments: bool| CoordinatorConfig {
            enable_nonce_commitment: commitments,
            ..config(ElectionMethod::Lexicographic)
        };
        // Node 0 announces; the two joiners are configured the other way.
        let nodes = [creator_commits, !creator_commits, !creator_commits]
            .into_iter()
            .map(|c| (musig2_core::Keypair::random(&mut rng), with(c)))
            .collect();
        let mut cluster = LocalCluster::start_with_configs(nodes).await.unwrap();
        let message = [u8::from(creator_commits) + 40; 32];
        let outcome = cluster
            .sign(message, SigningMetadata::default(), |_, _| {})
            .await
            .unwrap();
        check_signature(&cluster, message, false, &outcome);
        for node in &cluster.nodes {
            let info = node.coordinator.get_session(outcome.session_id).unwrap();
            assert_eq!(info.nonce_commitments, creator_commits);
        }
        cluster.shutdown().await;
    }
}

/// A creator may keep only two sessions waiting for joins on a co-signer
/// (a flood of requests naming absent signers ties up no more); its other
/// requests wait their turn there and are joined as the first move on.
/// Node 2 joins by hand, late: until it does, node 1 holds two of the
/// creator's eight sessions and defers six; then all eight complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creators_requests_beyond_two_waiting_wait_their_turn_and_complete() {
    // Ten concurrent sessions allowed (the default): two per creator.
    let base = config(ElectionMethod::Lexicographic);
    let manual = CoordinatorConfig {
        auto_join: false,
        ..base.clone()
    };
    let nodes = vec![
        (musig2_core::Keypair::random(&mut rand::rng()), base.clone()),
        (musig2_core::Keypair::random(&mut rand::rng()), base),
        (musig2_core::Keypair::random(&mut rand::rng()), manual),
    ];
    let cluster = LocalCluster::start_with_configs(nodes).await.unwrap();
    let drivers: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| musig2_coordinator::cluster::drive_rounds(n.coordinator.clone()))
        .collect();
    let mut events = cluster.nodes[1].coordinator.subscribe();
    let keys = cluster.pubkeys();
    let creator = &cluster.nodes[0];
    let mut requests = Vec::new();
    for i in 0..8u8 {
        let request = creator
            .coordinator
            .announce_signing_request(&keys, [i; 32], &creator.keypair, SigningMetadata::default())
            .await
            .unwrap();
        requests.push(request);
    }
    // Node 1 joined two and holds the other six for later.
    let waiting = &cluster.nodes[1].coordinator;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let sizes = waiting.state_sizes();
        if sizes.sessions == 2 && sizes.pending == 6 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{sizes:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late = &cluster.nodes[2];
    for r in &requests {
        late.coordinator
            .join_signing_request(*r, &late.keypair)
            .await
            .unwrap();
    }
    let mut complete = std::collections::HashSet::new();
    while complete.len() < requests.len() {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
            Ok(Ok(CoordinatorEvent::SessionComplete { session_id, .. })) => {
                complete.insert(session_id);
            }
            Ok(Ok(CoordinatorEvent::SessionError { code, message, .. })) => {
                panic!("a session failed: {code:?} {message}")
            }
            Ok(_) => {}
            Err(_) => panic!("only {} of 8 sessions completed", complete.len()),
        }
    }
    assert_eq!(waiting.counters().deferred_joins_dropped, 0);
    assert_eq!(waiting.state_sizes().pending, 0);
    for d in drivers {
        d.abort();
    }
    cluster.shutdown().await;
}
