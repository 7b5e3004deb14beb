//! Hostile peers against real nodes: every scenario runs real libp2p swarms
//! on 127.0.0.1 (the coordinators under test and a byzantine node built from
//! a raw `musig2-net` handle that can send any frame, record or gossip
//! message), and asserts both that the honest session completes (or fails
//! naming the real culprit) and that no honest peer is penalised.
//!
//! Time that matters (timeouts, expiry) comes from an injected clock that
//! the test moves; no test sleeps to wait.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "adversarial/accountability.rs"]
mod accountability;
mod byzantine;
/// musig2-identity's loopback Chronik server (real HTTP, real protobuf).
#[path = "../crates/musig2-identity/tests/common/mod.rs"]
mod chronik_server;
#[path = "adversarial/strangers.rs"]
mod strangers;

use std::sync::Arc;
use std::time::Duration;

use byzantine::Byzantine;
use musig2_coordinator::cluster::{ClusterNode, LocalCluster};
use musig2_coordinator::wire::Body;
use musig2_coordinator::{CoordinatorConfig, CoordinatorEvent, ErrorCode};
use musig2_core::{Keypair, PublicKey};
use musig2_security::{Clock, ManualClock, PeerScore, Rule, SecurityConfig, SigningMetadata};

const WAIT: Duration = Duration::from_secs(30);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn config() -> CoordinatorConfig {
    init_logs();
    CoordinatorConfig {
        auto_join: true,
        ..CoordinatorConfig::default()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `observer`'s view of `subject`'s reputation.
fn score(observer: &ClusterNode, subject: &ClusterNode) -> PeerScore {
    let peer = musig2_security::PeerId::new(subject.coordinator.local_peer_id().to_string());
    observer.coordinator.with_security(|s| s.peer_score(&peer))
}

/// No honest node has penalised another honest node.
fn assert_no_honest_peer_penalised(cluster: &LocalCluster) {
    for a in &cluster.nodes {
        for b in &cluster.nodes {
            if a.coordinator.local_peer_id() == b.coordinator.local_peer_id() {
                continue;
            }
            let s = score(a, b);
            assert_eq!(
                (s.invalid_signatures, s.spam_count, s.rate_limit_violations),
                (0, 0, 0),
                "an honest peer was penalised: {s:?}"
            );
        }
    }
}

fn open_sessions(node: &ClusterNode) -> usize {
    node.coordinator.with_security(|s| s.sessions().len())
}

fn index_of(cluster: &LocalCluster, session: [u8; 32], node: usize) -> usize {
    cluster.nodes[node]
        .coordinator
        .get_session(session)
        .unwrap()
        .my_index
}

async fn wait_ready(node: &mut ClusterNode, session: [u8; 32]) {
    node.wait_for(WAIT, |e| {
        matches!(e, CoordinatorEvent::SessionReady { session_id, .. } if *session_id == session)
            .then_some(())
    })
    .await
    .unwrap();
}

/// The first `SessionError`: (code, signer, culprits, message).
async fn session_error(node: &mut ClusterNode) -> (ErrorCode, Option<usize>, Vec<usize>, String) {
    node.wait_for(WAIT, |e| match e {
        CoordinatorEvent::SessionError {
            code,
            signer,
            culprits,
            message,
            ..
        } => Some((*code, *signer, culprits.clone(), message.clone())),
        _ => None,
    })
    .await
    .unwrap()
}

/// Node 0 announces a request for every key; returns (request, session).
async fn announce(cluster: &LocalCluster, message: [u8; 32]) -> ([u8; 32], [u8; 32]) {
    let keys = cluster.pubkeys();
    announce_for(cluster, &keys, message).await
}

async fn announce_for(
    cluster: &LocalCluster,
    keys: &[PublicKey],
    message: [u8; 32],
) -> ([u8; 32], [u8; 32]) {
    let creator = &cluster.nodes[0];
    let request = creator
        .coordinator
        .announce_signing_request(keys, message, &creator.keypair, SigningMetadata::default())
        .await
        .unwrap();
    let session = creator.coordinator.get_session_by_request(request).unwrap();
    (request, session)
}

// --- H1: sender slots ----------------------------------------------------------

/// Forged joins (valid frames from real peers, joins their named signer
/// never signed) take no sender slot: with room for only 4 senders, 6
/// forgers cannot keep the real signers out, and only the forgers are blamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_joins_cannot_fill_a_sessions_sender_slots() {
    let cfg = CoordinatorConfig {
        auto_join: false,
        security: {
            let mut s = SecurityConfig::default();
            s.max_senders_per_session = 4;
            s
        },
        ..config()
    };
    let mut cluster = LocalCluster::start(3, cfg).await.unwrap();
    let (request, session) = announce(&cluster, [1; 32]).await;
    let target = &cluster.nodes[0];
    // The forgers claim to be node 1's signer.
    let victim_key = cluster.nodes[1].keypair.public_key();
    let victim = target
        .coordinator
        .get_session(session)
        .unwrap()
        .signers
        .iter()
        .position(|k| *k == victim_key)
        .unwrap();
    let mut forgers = Vec::new();
    for _ in 0..6 {
        let mut b = Byzantine::near(target).await;
        b.forged_join(target, session, victim, victim_key).await;
        forgers.push(b);
    }
    // The forgers' joins were judged (each is charged an invalid signature).
    for b in &forgers {
        b.wait_until_penalised(target, |s| s.invalid_signatures > 0)
            .await;
    }
    for node in &cluster.nodes[1..] {
        node.coordinator
            .join_signing_request(request, &node.keypair)
            .await
            .unwrap();
    }
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    assert!(cluster.nodes[0].coordinator.counters().forged_joins >= 6);
    assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

// --- M5: orphans --------------------------------------------------------------

/// An honest join that arrives before the receiver knows the session waits
/// as an orphan; a flood of orphans from another peer for the same session
/// cannot push it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_flood_does_not_evict_honest_joins() {
    let cfg = CoordinatorConfig {
        auto_join: false,
        ..config()
    };
    let mut cluster = LocalCluster::start(3, cfg).await.unwrap();
    let (request, session) = announce(&cluster, [2; 32]).await;
    // Node 2 joins first: its join reaches node 1 before node 1 knows the session.
    let node2 = &cluster.nodes[2];
    node2
        .coordinator
        .join_signing_request(request, &node2.keypair)
        .await
        .unwrap();
    wait_until(|| cluster.nodes[1].coordinator.state_sizes().orphans >= 1).await;
    // A flooder fills node 1 with orphans for the same session.
    let mut flooder = Byzantine::near(&cluster.nodes[1]).await;
    for i in 0..3_000u32 {
        flooder
            .send_body(
                &cluster.nodes[1],
                session,
                byzantine::unsigned_abort(&format!("{i}")),
            )
            .await;
    }
    wait_until(|| cluster.nodes[1].coordinator.counters().orphans_dropped > 0).await;
    let node1 = &cluster.nodes[1];
    node1
        .coordinator
        .join_signing_request(request, &node1.keypair)
        .await
        .unwrap();
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

// --- H2: lifecycle --------------------------------------------------------------

/// A signer that never joins: when the join deadline passes (on the injected
/// clock), the waiting signers fail the session naming it, and every
/// security slot is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_phase_times_out_naming_who_did_not_join() {
    let clock = Arc::new(ManualClock::new(now_ms()));
    let cfg = CoordinatorConfig {
        join_timeout: Duration::from_secs(60),
        ..config()
    };
    // Node 2 never joins: it does not join automatically.
    let mut rng = rand::rng();
    let configs = (0..3)
        .map(|i| {
            let cfg = CoordinatorConfig {
                auto_join: i != 2,
                ..cfg.clone()
            };
            (Keypair::random(&mut rng), cfg)
        })
        .collect();
    let mut cluster = LocalCluster::start_with_configs_and_clock(configs, clock.clone())
        .await
        .unwrap();
    let refusing_key = cluster.nodes[2].keypair.public_key();
    let (_, session) = announce(&cluster, [3; 32]).await;
    let absent = cluster.nodes[0]
        .coordinator
        .get_session(session)
        .unwrap()
        .signers
        .iter()
        .position(|k| *k == refusing_key)
        .unwrap();
    wait_until(|| cluster.nodes[1].coordinator.get_session(session).is_some()).await;
    clock.advance(61_000);
    let mut named = 0;
    for i in [0, 1] {
        let (code, signer, culprits, message) = session_error(&mut cluster.nodes[i]).await;
        match code {
            ErrorCode::JoinTimeout => {
                assert_eq!(
                    (signer, culprits),
                    (Some(absent), vec![absent]),
                    "{message}"
                );
                named += 1;
            }
            // Told by the other waiting signer first; its abort names the same signer.
            ErrorCode::Aborted => assert!(message.contains("JOIN_TIMEOUT"), "{message}"),
            other => panic!("unexpected {other:?}: {message}"),
        }
        assert_eq!(open_sessions(&cluster.nodes[i]), 0);
    }
    assert!(named >= 1);
    cluster.shutdown().await;
}

/// Completed sessions release their security slot at once: with room for 2
/// open sessions, 6 sessions complete back to back with no `close_session`,
/// and every signature stays readable from the completed cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_sessions_release_their_slots() {
    let cfg = CoordinatorConfig {
        security: {
            let mut s = SecurityConfig::default();
            s.max_concurrent_sessions = 2;
            s
        },
        ..config()
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let mut done = Vec::new();
    for i in 0..6u8 {
        let outcome = cluster
            .sign([10 + i; 32], SigningMetadata::default(), |_, _| {})
            .await
            .unwrap();
        done.push(outcome);
    }
    for node in &cluster.nodes {
        assert_eq!(open_sessions(node), 0);
        for outcome in &done {
            let kept = node
                .coordinator
                .get_final_signature(outcome.session_id)
                .unwrap();
            assert_eq!(kept, outcome.signature);
        }
        assert_eq!(node.coordinator.state_sizes().completed, 6);
    }
    assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

/// The completed cache is bounded: the oldest completed session is forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_completed_cache_is_bounded() {
    let cfg = CoordinatorConfig {
        completed_capacity: 2,
        ..config()
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3u8 {
        let o = cluster
            .sign([20 + i; 32], SigningMetadata::default(), |_, _| {})
            .await
            .unwrap();
        ids.push(o.session_id);
    }
    for node in &cluster.nodes {
        assert!(node.coordinator.get_final_signature(ids[0]).is_err());
        assert!(node.coordinator.get_final_signature(ids[2]).is_ok());
        assert_eq!(node.coordinator.state_sizes().completed, 2);
        assert_eq!(node.coordinator.counters().completed_evicted, 1);
    }
    cluster.shutdown().await;
}

// --- H6: completion is final ----------------------------------------------------

/// After completion, a participant's `SessionAbort` and the coordinator's
/// `SignatureFinalized` with a wrong signature are ignored: every node keeps
/// its signature, and failover still moves to the backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_completion_abort_or_bad_finalize_keeps_the_signature_and_failover() {
    let mut cluster = LocalCluster::start(3, config()).await.unwrap();
    let (session, _) = cluster
        .sign_until_complete([4; 32], SigningMetadata::default(), &mut |_, _| {})
        .await
        .unwrap();
    let signature = cluster.nodes[0]
        .coordinator
        .get_final_signature(session)
        .unwrap();
    let coordinator = (0..3)
        .find(|i| cluster.nodes[*i].coordinator.is_coordinator(session))
        .unwrap();
    let other = (coordinator + 1) % 3;
    // Every other node hears an abort from `other` and a wrong finalization
    // from the coordinator, each sent over their real peers.
    for target in 0..3 {
        if target != other {
            Byzantine::send_as(
                &cluster.nodes[other],
                &cluster.nodes[target],
                session,
                1_000,
                byzantine::abort_body(
                    &cluster.nodes[other].keypair,
                    session,
                    index_of(&cluster, session, other),
                    byzantine::plain_abort("x"),
                ),
            )
            .await;
        }
        if target != coordinator {
            Byzantine::send_as(
                &cluster.nodes[coordinator],
                &cluster.nodes[target],
                session,
                1_001,
                byzantine::finalized_body(
                    &cluster.nodes[coordinator].keypair,
                    session,
                    index_of(&cluster, session, coordinator),
                    musig2_core::Signature::from_bytes(&[7; 64]),
                    None,
                ),
            )
            .await;
        }
    }
    for target in 0..3 {
        let node = &cluster.nodes[target];
        let expect_abort = target != other;
        let expect_mismatch = target != coordinator;
        wait_until(|| {
            let c = node.coordinator.counters();
            (!expect_abort || c.aborts_after_completion >= 1)
                && (!expect_mismatch || c.finalize_mismatches >= 1)
        })
        .await;
        assert_eq!(
            node.coordinator.get_final_signature(session).unwrap(),
            signature
        );
    }
    // Failover still works: everyone moves to the backup, which is told to broadcast.
    for node in &cluster.nodes {
        node.coordinator
            .trigger_coordinator_failover(session)
            .unwrap();
    }
    let backup = (0..3)
        .find(|i| cluster.nodes[*i].coordinator.is_coordinator(session))
        .unwrap();
    assert_ne!(backup, coordinator);
    cluster.nodes[backup]
        .wait_for(WAIT, |e| {
            matches!(e, CoordinatorEvent::ShouldBroadcast { session_id, .. } if *session_id == session)
                .then_some(())
        })
        .await
        .unwrap();
    assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

// --- H3: DHT records ------------------------------------------------------------

/// A forged `musig2-signer:` record that names an honest peer (bad
/// signature) is never blamed on that peer: resolving it fails, nobody is
/// penalised, and the honest peer still signs with the victim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_dht_advertisement_does_not_penalise_the_peer_it_names() {
    let cfg = CoordinatorConfig {
        discovery_timeout: Duration::from_secs(2),
        ..config()
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let fake = Keypair::random(&mut rand::rng());
    let framed = cluster.nodes[1].coordinator.local_peer_id();
    let rogue = Byzantine::near(&cluster.nodes[0]).await;
    rogue
        .put_forged_advertisement(&fake.public_key(), &framed)
        .await;
    // Node 0 asks for the fake key: it is not found (the record does not verify).
    let keys = vec![cluster.nodes[0].keypair.public_key(), fake.public_key()];
    let (_, _session) = announce_for(&cluster, &keys, [5; 32]).await;
    let (code, _, _, message) = session_error(&mut cluster.nodes[0]).await;
    assert_eq!(code, ErrorCode::DeliveryFailed, "{message}");
    let s = score(&cluster.nodes[0], &cluster.nodes[1]);
    assert!(s.is_clean(), "the framed peer was penalised: {s:?}");
    // The honest pair still signs.
    cluster
        .sign([6; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

/// A forged `musig2-request:` record naming an honest creator is rejected
/// without blaming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_dht_request_does_not_penalise_the_creator_it_names() {
    let mut cluster = LocalCluster::start(2, config()).await.unwrap();
    let rogue = Byzantine::near(&cluster.nodes[1]).await;
    let request_id = rogue
        .put_forged_request(&cluster.nodes[0], &cluster.nodes[1].keypair.public_key())
        .await;
    let node1 = &cluster.nodes[1];
    let joined = node1
        .coordinator
        .join_signing_request(request_id, &node1.keypair)
        .await;
    assert!(joined.is_err());
    let s = score(&cluster.nodes[1], &cluster.nodes[0]);
    assert!(s.is_clean(), "the named creator was penalised: {s:?}");
    cluster
        .sign([7; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    cluster.shutdown().await;
}

// --- H7: a full DHT store -------------------------------------------------------

/// A peer stuffs the node's DHT store; the node still announces, nothing is
/// left open, and the session completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dht_store_fill_does_not_block_or_leak_an_announcement() {
    let mut cluster = LocalCluster::start(2, config()).await.unwrap();
    let rogue = Byzantine::near(&cluster.nodes[0]).await;
    rogue.stuff_dht(1_100).await;
    let outcome = cluster
        .sign([8; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    for node in &cluster.nodes {
        assert_eq!(open_sessions(node), 0);
        assert!(
            node.coordinator
                .get_final_signature(outcome.session_id)
                .is_ok()
        );
    }
    cluster.shutdown().await;
}

// --- H4 / M6: request floods ------------------------------------------------------

/// A creator floods a victim with valid signing requests naming the
/// victim's key and keys that never join: the victim's pending table and
/// outbound queues stay bounded, the creator can hold at most two of the
/// victim's session slots, and an honest request still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_request_flood_is_bounded_and_does_not_block_honest_requests() {
    let mut cluster = LocalCluster::start(2, config()).await.unwrap();
    let mut attacker = Byzantine::near(&cluster.nodes[0]).await;
    let victim_key = cluster.nodes[0].keypair.public_key();
    let sent = attacker
        .flood_requests(&cluster.nodes[0], victim_key, 500)
        .await;
    assert_eq!(sent, 500);
    // Judged: the attacker is rate limited.
    attacker
        .wait_until_penalised(&cluster.nodes[0], |s| s.rate_limit_violations > 0)
        .await;
    let sizes = cluster.nodes[0].coordinator.state_sizes();
    assert!(sizes.pending <= 256, "{sizes:?}");
    assert!(open_sessions(&cluster.nodes[0]) <= 2);
    // An honest request from node 1 goes through.
    let keys = cluster.pubkeys();
    let creator = &cluster.nodes[1];
    let request = creator
        .coordinator
        .announce_signing_request(&keys, [9; 32], &creator.keypair, SigningMetadata::default())
        .await
        .unwrap();
    let session = creator.coordinator.get_session_by_request(request).unwrap();
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

/// Moves the injected clock on by one second every 20 ms, as if time passed.
fn tick(clock: Arc<ManualClock>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            clock.advance(1_000);
        }
    })
}

// --- M1: one lock order ------------------------------------------------------------

/// Announcing (state → security) and completing sessions (which used to take
/// security → state) on different tasks at once never deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_announce_and_completion_never_deadlock() {
    let mut cluster = LocalCluster::start(2, config()).await.unwrap();
    let announcer = cluster.nodes[0].coordinator.clone();
    let key = cluster.nodes[0].keypair.clone();
    let keys = cluster.pubkeys();
    let background = tokio::spawn(async move {
        for i in 0..200u32 {
            let mut message = [0u8; 32];
            message[..4].copy_from_slice(&i.to_be_bytes());
            // Most are refused once the slots are full; the point is the locking.
            let _ = announcer
                .announce_signing_request(&keys, message, &key, SigningMetadata::default())
                .await;
            let _ = announcer.cleanup_expired_sessions();
        }
    });
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        for i in 0..3u8 {
            cluster
                .sign([30 + i; 32], SigningMetadata::default(), |_, _| {})
                .await
                .unwrap();
        }
    })
    .await;
    background.abort();
    assert!(result.is_ok(), "the node stopped answering (deadlock?)");
    cluster.shutdown().await;
}

// --- Q4/Q5: the live path enforces the message rules -------------------------------

/// A participant's message replayed with an old sequence number, or with a
/// timestamp 6 minutes off (injected clock), is rejected and counted; a
/// non-coordinator's `SignatureFinalized` is refused by role; the session
/// still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_path_rejects_replays_skew_and_impostor_finalization() {
    let clock = Arc::new(ManualClock::new(now_ms()));
    let mut cluster = LocalCluster::start_with_clock(3, config(), clock.clone())
        .await
        .unwrap();
    let (_, session) = announce(&cluster, [12; 32]).await;
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    let before = cluster.nodes[0]
        .coordinator
        .with_security(|s| s.metrics(clock.now_ms()).rejections_total);
    // Node 2's peer sends node 0 a validation error with sequence 1 (already
    // used by its join): a replay.
    Byzantine::send_as(
        &cluster.nodes[2],
        &cluster.nodes[0],
        session,
        1,
        Body::ValidationError {
            code: "x".into(),
            detail: "replayed".into(),
        },
    )
    .await;
    // A message stamped 6 minutes in the future.
    Byzantine::send_stamped(
        &cluster.nodes[2],
        &cluster.nodes[0],
        session,
        500,
        clock.now_ms() + 6 * 60 * 1000,
        Body::ValidationError {
            code: "x".into(),
            detail: "future".into(),
        },
    )
    .await;
    wait_until(|| {
        cluster.nodes[0]
            .coordinator
            .with_security(|s| s.metrics(clock.now_ms()).rejections_total)
            >= before + 2
    })
    .await;
    let rules = cluster.nodes[0]
        .coordinator
        .with_security(|s| s.metrics(clock.now_ms()).rejections);
    assert!(
        rules.get(&Rule::Replay).copied().unwrap_or(0) >= 1,
        "{rules:?}"
    );
    assert!(
        rules.get(&Rule::TimestampSkew).copied().unwrap_or(0) >= 1,
        "{rules:?}"
    );
    // The session still completes for everyone.
    for node in &cluster.nodes {
        node.coordinator.publish_nonce_commitments(session).unwrap();
    }
    drive_to_completion(&mut cluster, session).await;
    cluster.shutdown().await;
}

// --- M2: blacklists reach the transport ----------------------------------------

/// A peer that earns a blacklisting (ten forged joins) is blocked at the
/// transport: its connection closes and it can no longer deliver anything,
/// while the honest signers still sign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_peer_is_cut_off_at_the_transport() {
    let cfg = CoordinatorConfig {
        auto_join: false,
        ..config()
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let (_, session) = announce(&cluster, [40; 32]).await;
    let target = &cluster.nodes[0];
    let victim_key = cluster.nodes[1].keypair.public_key();
    let victim = target
        .coordinator
        .get_session(session)
        .unwrap()
        .signers
        .iter()
        .position(|k| *k == victim_key)
        .unwrap();
    let mut rogue = Byzantine::near(target).await;
    for _ in 0..10 {
        rogue.forged_join(target, session, victim, victim_key).await;
    }
    let me = rogue.peer_id();
    let net = target.coordinator.net().clone();
    tokio::time::timeout(WAIT, async {
        while !net.blocked_peers().await.unwrap().contains(&me) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the blacklisted peer was never blocked");
    // Blocking closes its connections; the close is reported a moment later.
    tokio::time::timeout(WAIT, async {
        while net.connected_peers().await.unwrap().contains(&me) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the blacklisted peer stayed connected");
    // It cannot get another frame in.
    let bytes = musig2_coordinator::wire::encode(&musig2_coordinator::wire::WireMessage {
        session_id: session,
        sequence: 99,
        sent_at: now_ms(),
        body: byzantine::unsigned_abort("x"),
    })
    .unwrap();
    assert!(
        rogue
            .net
            .send(target.coordinator.local_peer_id(), bytes)
            .await
            .is_err()
    );
    // The honest pair still signs (a new request).
    cluster
        .sign([41; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

// --- M3: connection crowd-out --------------------------------------------------

/// 55 cheap identities hold idle connections to the announcer (over its
/// limit of 50): its dials to and messages with the co-signers still go
/// through, and the session completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_general_connection_flood_does_not_block_co_signers() {
    let mut cluster = LocalCluster::start(3, config()).await.unwrap();
    let addr = cluster.nodes[0].coordinator.multiaddrs().await.unwrap()[0].clone();
    let target = cluster.nodes[0].coordinator.local_peer_id();
    let mut idle = Vec::new();
    for _ in 0..55 {
        let b = Byzantine::near(&cluster.nodes[0]).await;
        b.net.dial(addr.clone()).await.unwrap();
        idle.push(b);
    }
    // The flooders hold most of its 50 general slots before the session starts.
    wait_until_async(|| async {
        let mut connected = 0;
        for b in &idle {
            if b.net.connected_peers().await.unwrap().contains(&target) {
                connected += 1;
            }
        }
        connected >= 40
    })
    .await;
    let outcome = cluster
        .sign([47; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    for node in &cluster.nodes {
        assert!(
            node.coordinator
                .get_final_signature(outcome.session_id)
                .is_ok()
        );
    }
    assert_no_honest_peer_penalised(&cluster);
    for b in idle {
        b.net.shutdown().await;
    }
    cluster.shutdown().await;
}

// --- M4: a flooder does not fail honest sessions ---------------------------------

/// A peer floods a signer with frames while a session runs: the flooder
/// alone pays (Busy, penalties), the session completes, and no honest peer
/// is blamed with `DELIVERY_FAILED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_flood_does_not_fail_honest_sessions() {
    let mut cluster = LocalCluster::start(3, config()).await.unwrap();
    let rogue = Byzantine::near(&cluster.nodes[0]).await;
    let target = cluster.nodes[0].coordinator.local_peer_id();
    let flood = {
        let net = rogue.net.clone();
        tokio::spawn(async move {
            for i in 0..20_000u32 {
                let _ = net.send(target, i.to_be_bytes().repeat(8)).await;
            }
        })
    };
    let outcome = cluster
        .sign([42; 32], SigningMetadata::default(), |_, _| {})
        .await;
    flood.abort();
    outcome.unwrap();
    assert_no_honest_peer_penalised(&cluster);
    rogue
        .wait_until_penalised(&cluster.nodes[0], |s| s.spam_count > 0)
        .await;
    cluster.shutdown().await;
}

// --- Q5: index spoofing and impostor finalization on the live path -------------

/// A participant that claims another signer's index in its nonce share
/// fails the session naming itself (the authenticated sender), never the
/// signer it impersonated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_claiming_another_index_is_named() {
    let mut cluster = LocalCluster::start(3, config()).await.unwrap();
    let (_, session) = announce(&cluster, [43; 32]).await;
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    let liar = index_of(&cluster, session, 2);
    let impersonated = index_of(&cluster, session, 1);
    let kp = Keypair::random(&mut rand::rng());
    let (_, nonce) = musig2_core::nonce_gen(
        &mut rand::rng(),
        kp.public_key(),
        musig2_core::NonceGenInputs::default(),
    );
    Byzantine::send_as(
        &cluster.nodes[2],
        &cluster.nodes[0],
        session,
        50,
        Body::NonceCommit {
            signer_index: impersonated as u32,
            commitment: musig2_core::NonceCommitment::commit(&session, &kp.public_key(), &nonce),
            signature: musig2_core::Signature::from_bytes(&[1; 64]),
        },
    )
    .await;
    let (code, signer, culprits, message) = session_error(&mut cluster.nodes[0]).await;
    assert_eq!(code, ErrorCode::InvalidContribution, "{message}");
    assert_eq!((signer, culprits), (Some(liar), vec![liar]));
    let s = score(&cluster.nodes[0], &cluster.nodes[1]);
    assert!(s.is_clean(), "the impersonated signer was penalised: {s:?}");
    cluster.shutdown().await;
}

/// After completion, a `SignatureFinalized` from a signer that is not the
/// coordinator (even with the right signature) confirms nothing: failover
/// still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_coordinators_finalization_confirms_nothing() {
    let mut cluster = LocalCluster::start(3, config()).await.unwrap();
    let (session, _) = cluster
        .sign_until_complete([44; 32], SigningMetadata::default(), &mut |_, _| {})
        .await
        .unwrap();
    let signature = cluster.nodes[0]
        .coordinator
        .get_final_signature(session)
        .unwrap()
        .signature;
    let coordinator = (0..3)
        .find(|i| cluster.nodes[*i].coordinator.is_coordinator(session))
        .unwrap();
    let impostor = (coordinator + 1) % 3;
    let target = (coordinator + 2) % 3;
    Byzantine::send_as(
        &cluster.nodes[impostor],
        &cluster.nodes[target],
        session,
        1_000,
        byzantine::finalized_body(
            &cluster.nodes[impostor].keypair,
            session,
            index_of(&cluster, session, impostor),
            signature,
            None,
        ),
    )
    .await;
    wait_until(|| cluster.nodes[target].coordinator.counters().late_messages >= 1).await;
    cluster.nodes[target]
        .coordinator
        .trigger_coordinator_failover(session)
        .unwrap();
    let attempt = cluster.nodes[target]
        .wait_for(WAIT, |e| match e {
            CoordinatorEvent::CoordinatorFailed {
                session_id,
                attempt,
            } if *session_id == session => Some(*attempt),
            CoordinatorEvent::BroadcastConfirmed { session_id, .. } if *session_id == session => {
                Some(0)
            }
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(
        attempt, 2,
        "the impostor's finalization was taken as a confirmation"
    );
    cluster.shutdown().await;
}

// --- L3: a bound on signers ------------------------------------------------------

/// A request naming more signers than `max_signers_per_request` is refused
/// before any key aggregation or state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_signer_list_is_refused() {
    let mut cluster = LocalCluster::start(2, config()).await.unwrap();
    let mut rogue = Byzantine::near(&cluster.nodes[0]).await;
    let victim = cluster.nodes[0].keypair.public_key();
    rogue
        .oversized_request(&cluster.nodes[0], victim, 101)
        .await;
    rogue
        .wait_until_penalised(&cluster.nodes[0], |s| s.spam_count > 0)
        .await;
    assert_eq!(cluster.nodes[0].coordinator.state_sizes().pending, 0);
    assert_eq!(open_sessions(&cluster.nodes[0]), 0);
    cluster
        .sign([45; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    cluster.shutdown().await;
}

// --- H7: the DHT store keeps only valid records under their own key ----------------

/// A peer tries to overwrite a node's session record with garbage and with a
/// validly signed record of another session: neither is stored, and a
/// co-signer that joins by session id (legacy `join_session`, DHT lookup)
/// gets the real announcement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dht_records_cannot_be_overwritten() {
    let cfg = CoordinatorConfig {
        auto_join: false,
        ..config()
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let (_, session) = announce(&cluster, [46; 32]).await;
    let rogue = Byzantine::near(&cluster.nodes[0]).await;
    rogue.overwrite_session_record(session).await;
    let node1 = &cluster.nodes[1];
    node1
        .coordinator
        .join_session(session, &node1.keypair)
        .await
        .unwrap();
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    cluster.shutdown().await;
}

/// Drives a ready session (commitments already published) to completion.
async fn drive_to_completion(cluster: &mut LocalCluster, session: [u8; 32]) {
    for node in cluster.nodes.iter_mut() {
        node.wait_for(WAIT, |e| {
            matches!(e, CoordinatorEvent::NonceCommitmentsComplete(id) if *id == session)
                .then_some(())
        })
        .await
        .unwrap();
    }
    for node in &cluster.nodes {
        node.coordinator.start_round1(session).unwrap();
    }
    for node in cluster.nodes.iter_mut() {
        node.wait_for(WAIT, |e| {
            matches!(e, CoordinatorEvent::Round1Complete(id) if *id == session).then_some(())
        })
        .await
        .unwrap();
    }
    for node in &cluster.nodes {
        node.coordinator.start_round2(session).unwrap();
    }
    for node in cluster.nodes.iter_mut() {
        node.wait_for(WAIT, |e| {
            matches!(e, CoordinatorEvent::SessionComplete { session_id, .. } if *session_id == session)
                .then_some(())
        })
        .await
        .unwrap();
    }
}

/// Polls an async condition until it holds (fails the test after 30 s).
async fn wait_until_async<F: std::future::Future<Output = bool>>(mut condition: impl FnMut() -> F) {
    tokio::time::timeout(WAIT, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("condition not met in time");
}

/// Polls a condition until it holds (fails the test after 30 s).
async fn wait_until(mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition not met in time");
}
