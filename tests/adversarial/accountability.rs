//! Accountability on the live path (H5, M8–M10): who is named when a
//! session fails, on what grounds, and what completion and failover rest on.
//! Real swarms on loopback; the misbehaving signer is a real cluster node
//! whose messages the test writes itself (signed with its real key, sent
//! over its real peer), so every receiver authenticates them as its own.

use std::sync::Arc;
use std::time::Duration;

use musig2_coordinator::cluster::{ClusterNode, LocalCluster};
use musig2_coordinator::evidence::{Blame, Evidence};
use musig2_coordinator::wire::{AbortReport, Body};
use musig2_coordinator::{CoordinatorConfig, CoordinatorEvent, ErrorCode};
use musig2_core::{NonceCommitment, NonceGenInputs, PublicNonce, nonce_gen};
use musig2_security::{
    InputScriptType, ManualClock, SessionAnnouncement, SessionRequest, SigningMetadata,
};

use super::byzantine::{self, Byzantine};
use super::{WAIT, config, index_of, now_ms, open_sessions, score, tick, wait_ready, wait_until};

/// A failure as a node reports it.
struct Failure {
    code: ErrorCode,
    signer: Option<usize>,
    culprits: Vec<usize>,
    message: String,
    blame: Blame,
}

/// The first `SessionError` of `session` at `node`.
async fn failure(node: &mut ClusterNode, session: [u8; 32]) -> Failure {
    node.wait_for(WAIT, |e| match e {
        CoordinatorEvent::SessionError {
            session_id,
            code,
            signer,
            culprits,
            message,
            blame,
            ..
        } if *session_id == session => Some(Failure {
            code: *code,
            signer: *signer,
            culprits: culprits.clone(),
            message: message.clone(),
            blame: blame.clone(),
        }),
        _ => None,
    })
    .await
    .unwrap()
}

/// What `node`'s `BroadcastConfirmed` for `session` rests on.
async fn confirmation(
    node: &mut ClusterNode,
    session: [u8; 32],
) -> musig2_coordinator::ConfirmationBasis {
    node.wait_for(WAIT, |e| match e {
        CoordinatorEvent::BroadcastConfirmed { session_id, basis } if *session_id == session => {
            Some(*basis)
        }
        _ => None,
    })
    .await
    .unwrap()
}

/// Neither of `honest` holds anything against the other.
fn honest_pair_is_clean(cluster: &LocalCluster, honest: [usize; 2]) {
    for (a, b) in [(honest[0], honest[1]), (honest[1], honest[0])] {
        let s = score(&cluster.nodes[a], &cluster.nodes[b]);
        assert_eq!(
            (s.invalid_signatures, s.spam_count, s.rate_limit_violations),
            (0, 0, 0),
            "honest node {a} penalised honest node {b}: {s:?}"
        );
    }
}

async fn wait_event(node: &mut ClusterNode, pick: impl Fn(&CoordinatorEvent) -> bool) {
    node.wait_for(WAIT, |e| pick(e).then_some(()))
        .await
        .unwrap();
}

/// A fresh nonce for `node`'s key (what an equivocator shows a second signer).
fn fresh_nonce(node: &ClusterNode) -> PublicNonce {
    nonce_gen(
        &mut rand::rng(),
        node.keypair.public_key(),
        NonceGenInputs::default(),
    )
    .1
}

/// Three nodes, node 0 announces with or without Phase 0; node 2 is the
/// equivocator: its coordinator joins (honestly), then the test speaks for
/// it, showing node 0 one nonce (and commitment) and node 1 another, each
/// pair consistent and signed. Nodes 0 and 1 run every round.
async fn equivocation(commitments: bool) {
    let cfg = CoordinatorConfig {
        enable_nonce_commitment: commitments,
        ..config()
    };
    let mut cluster = LocalCluster::start(3, cfg).await.unwrap();
    let (_, session) = super::announce(&cluster, [60 + u8::from(commitments); 32]).await;
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    let liar = index_of(&cluster, session, 2);
    let nonces = [
        fresh_nonce(&cluster.nodes[2]),
        fresh_nonce(&cluster.nodes[2]),
    ];
    let key = cluster.nodes[2].keypair.public_key();
    for (target, nonce) in [(0usize, nonces[0]), (1, nonces[1])] {
        let liar_node = &cluster.nodes[2];
        if commitments {
            let c = NonceCommitment::commit(&session, &key, &nonce);
            let body = byzantine::commit_body(&liar_node.keypair, session, liar, c);
            Byzantine::send_as(liar_node, &cluster.nodes[target], session, 100, body).await;
        }
    }
    if commitments {
        for i in [0, 1] {
            cluster.nodes[i]
                .coordinator
                .publish_nonce_commitments(session)
                .unwrap();
        }
        for i in [0, 1] {
            wait_event(
                &mut cluster.nodes[i],
                |e| matches!(e, CoordinatorEvent::NonceCommitmentsComplete(id) if *id == session),
            )
            .await;
        }
    }
    for (target, nonce) in [(0usize, nonces[0]), (1, nonces[1])] {
        let liar_node = &cluster.nodes[2];
        let body = byzantine::nonce_body(&liar_node.keypair, session, liar, nonce);
        Byzantine::send_as(liar_node, &cluster.nodes[target], session, 101, body).await;
    }
    for i in [0, 1] {
        cluster.nodes[i].coordinator.start_round1(session).unwrap();
    }
    for i in [0, 1] {
        wait_event(
            &mut cluster.nodes[i],
            |e| matches!(e, CoordinatorEvent::Round1Complete(id) if *id == session),
        )
        .await;
        cluster.nodes[i].coordinator.start_round2(session).unwrap();
    }
    for i in [0, 1] {
        let f = failure(&mut cluster.nodes[i], session).await;
        // Node i proves it itself, or checks the other's proof: either way
        // the equivocator is named with evidence that holds.
        assert_eq!(
            (f.code, f.signer),
            (ErrorCode::Equivocation, Some(liar)),
            "{}",
            f.message
        );
        assert_eq!(f.culprits, vec![liar]);
        let Some(Evidence::Equivocation(proof)) = f.blame.evidence() else {
            panic!("no equivocation proof: {:?}", f.blame);
        };
        assert_eq!(proof.verify(), Ok(()));
        assert_eq!(proof.signer, key);
        assert_eq!(open_sessions(&cluster.nodes[i]), 0);
    }
    honest_pair_is_clean(&cluster, [0, 1]);
    // The equivocator's peer is held to account (proof only).
    for i in [0, 1] {
        assert!(score(&cluster.nodes[i], &cluster.nodes[2]).invalid_signatures >= 1);
    }
    cluster.shutdown().await;
}

/// H5: a participant shows two signers different nonces. Their round-2
/// transcripts differ, so neither blames the other for an "invalid" partial
/// signature; their views prove the equivocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonce_equivocation_is_blamed_on_the_equivocator_with_proof() {
    equivocation(false).await;
}

/// H5 with Phase 0: different commitments (each opened correctly) to
/// different signers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commitment_equivocation_is_blamed_on_the_equivocator_with_proof() {
    equivocation(true).await;
}

/// H5: the creator signs two announcements with one session id that differ
/// only in metadata (the Taproot tweak) and shows one to each co-signer.
/// The joins carry the announcement digest: each co-signer finds the other
/// joined another announcement, shows it its own, and both then hold the
/// creator's two signatures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creator_metadata_equivocation_is_blamed_on_the_creator() {
    let mut cluster = LocalCluster::start(3, config()).await.unwrap();
    let creator = &cluster.nodes[0];
    let request = |metadata: SigningMetadata| SessionRequest {
        signers: cluster.pubkeys(),
        message: [62; 32],
        creator_peer_id: creator.coordinator.local_peer_id().to_string(),
        creator_addrs: vec![],
        metadata,
        election_method: "lexicographic".into(),
        nonce_commitments: true,
        coordinator_election: true,
        created_at: now_ms(),
        expires_at: now_ms() + 3_600_000,
        request_nonce: [62; 32],
    };
    let plain =
        SessionAnnouncement::new_signed(request(SigningMetadata::default()), &creator.keypair)
            .unwrap();
    let taproot = SessionAnnouncement::new_signed(
        request(SigningMetadata {
            input_script_type: Some(InputScriptType::Taproot),
            ..SigningMetadata::default()
        }),
        &creator.keypair,
    )
    .unwrap();
    let session = plain.session_id().to_bytes();
    assert_eq!(session, taproot.session_id().to_bytes());
    for (target, a) in [(1usize, plain), (2, taproot)] {
        let body = Body::SigningRequest(Box::new(a));
        Byzantine::send_as(&cluster.nodes[0], &cluster.nodes[target], session, 1, body).await;
    }
    let creator_index = {
        let mut keys = cluster.pubkeys();
        keys.sort();
        keys.iter()
            .position(|k| *k == cluster.nodes[0].keypair.public_key())
            .unwrap()
    };
    for i in [1, 2] {
        let f = failure(&mut cluster.nodes[i], session).await;
        assert_eq!(
            (f.code, f.signer),
            (ErrorCode::Equivocation, Some(creator_index)),
            "{}",
            f.message
        );
        assert!(
            matches!(
                f.blame.evidence(),
                Some(Evidence::AnnouncementEquivocation { .. })
            ),
            "{:?}",
            f.blame
        );
    }
    honest_pair_is_clean(&cluster, [1, 2]);
    cluster.shutdown().await;
}

/// M8: a co-signer copies the creator's keys, message and request nonce and
/// signs the copy as itself. The session id commits to the creator's key,
/// so the copy is another session, not a twin: the real session completes
/// everywhere and nobody honest is blamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_twin_is_another_session_and_cannot_jam_the_original() {
    let mut cluster = LocalCluster::start(3, config()).await.unwrap();
    let (_, session) = super::announce(&cluster, [63; 32]).await;
    // Node 2 builds a twin from what it was sent: same keys, message and
    // request nonce, signed by itself, and shows it to node 1.
    let announcement = cluster.nodes[1]
        .wait_for(WAIT, |e| match e {
            CoordinatorEvent::SigningRequestReceived { announcement } => {
                Some((**announcement).clone())
            }
            _ => None,
        })
        .await
        .unwrap();
    let twin = SessionAnnouncement::new_signed(
        SessionRequest {
            signers: announcement.required_pubkeys.clone(),
            message: announcement.message,
            creator_peer_id: cluster.nodes[2].coordinator.local_peer_id().to_string(),
            creator_addrs: vec![],
            metadata: announcement.metadata.clone(),
            election_method: announcement.election_method.clone(),
            nonce_commitments: announcement.nonce_commitments,
            coordinator_election: announcement.coordinator_election,
            created_at: now_ms(),
            expires_at: announcement.expires_at,
            request_nonce: announcement.request_nonce,
        },
        &cluster.nodes[2].keypair,
    )
    .unwrap();
    assert_ne!(twin.session_id().to_bytes(), session);
    let twin_id = twin.session_id().to_bytes();
    Byzantine::send_as(
        &cluster.nodes[2],
        &cluster.nodes[1],
        twin_id,
        1,
        Body::SigningRequest(Box::new(twin)),
    )
    .await;
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    for node in &cluster.nodes {
        node.coordinator.publish_nonce_commitments(session).unwrap();
    }
    super::drive_to_completion(&mut cluster, session).await;
    let signature = cluster.nodes[0]
        .coordinator
        .get_final_signature(session)
        .unwrap()
        .signature;
    for node in &cluster.nodes {
        assert_eq!(
            node.coordinator
                .get_final_signature(session)
                .unwrap()
                .signature,
            signature
        );
    }
    super::assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

/// M9 and the failover rule: the elected coordinator completes, lies
/// (finalizes another signature) and never broadcasts. Nothing confirms the
/// broadcast; as the injected clock passes each broadcast timeout, every
/// node moves to the same backup by itself, with no message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_lying_coordinator_is_replaced_by_the_same_backup_everywhere() {
    let clock = Arc::new(ManualClock::new(now_ms()));
    let cfg = CoordinatorConfig {
        broadcast_timeout: Duration::from_secs(60),
        ..config()
    };
    let mut cluster = LocalCluster::start_with_clock(3, cfg, clock.clone())
        .await
        .unwrap();
    let (session, _) = cluster
        .sign_until_complete([64; 32], SigningMetadata::default(), &mut |_, _| {})
        .await
        .unwrap();
    let coordinator = (0..3)
        .find(|i| cluster.nodes[*i].coordinator.is_coordinator(session))
        .unwrap();
    let lie = musig2_core::Signature::from_bytes(&[7; 64]);
    for target in (0..3).filter(|t| *t != coordinator) {
        let from = &cluster.nodes[coordinator];
        let index = index_of(&cluster, session, coordinator);
        let body = byzantine::finalized_body(&from.keypair, session, index, lie, Some([9; 32]));
        Byzantine::send_as(from, &cluster.nodes[target], session, 1_000, body).await;
    }
    for target in (0..3).filter(|t| *t != coordinator) {
        let node = &cluster.nodes[target];
        wait_until(|| node.coordinator.counters().finalize_mismatches >= 1).await;
    }
    // Attempt 1 is the elected coordinator's; each timeout moves everyone on.
    for attempt in [2usize, 3] {
        clock.advance(60_000);
        for node in cluster.nodes.iter_mut() {
            let got = node
                .wait_for(WAIT, |e| match e {
                    CoordinatorEvent::CoordinatorFailed {
                        session_id,
                        attempt,
                    } if *session_id == session => Some(*attempt),
                    CoordinatorEvent::BroadcastConfirmed { session_id, .. }
                        if *session_id == session =>
                    {
                        Some(0)
                    }
                    _ => None,
                })
                .await
                .unwrap();
            assert_eq!(got, attempt, "a node confirmed or skipped an attempt");
        }
        let current: Vec<Option<usize>> = cluster
            .nodes
            .iter()
            .map(|n| {
                n.coordinator
                    .get_session(session)
                    .unwrap()
                    .coordinator_index
            })
            .collect();
        assert!(
            current.iter().all(|c| *c == current[0]),
            "nodes disagree on the coordinator: {current:?}"
        );
        assert_ne!(current[0], Some(index_of(&cluster, session, coordinator)));
    }
    // The signature was never touched.
    let signature = cluster.nodes[0]
        .coordinator
        .get_final_signature(session)
        .unwrap();
    for node in &cluster.nodes {
        assert_eq!(
            node.coordinator.get_final_signature(session).unwrap(),
            signature
        );
    }
    cluster.shutdown().await;
}

/// The backup that does broadcast confirms with the txid, signed: every
/// node records what the confirmation rests on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_confirmation_says_what_it_rests_on() {
    let mut cluster = LocalCluster::start(3, config()).await.unwrap();
    let (session, _) = cluster
        .sign_until_complete([65; 32], SigningMetadata::default(), &mut |_, _| {})
        .await
        .unwrap();
    let coordinator = (0..3)
        .find(|i| cluster.nodes[*i].coordinator.is_coordinator(session))
        .unwrap();
    let txid = [0xab; 32];
    cluster.nodes[coordinator]
        .coordinator
        .notify_broadcast(session, Some(txid))
        .unwrap();
    let index = index_of(&cluster, session, coordinator);
    for (i, node) in cluster.nodes.iter_mut().enumerate() {
        let basis = confirmation(node, session).await;
        let expected = if i == coordinator {
            musig2_coordinator::ConfirmationBasis::Local { txid: Some(txid) }
        } else {
            musig2_coordinator::ConfirmationBasis::CoordinatorWord {
                coordinator_index: index,
                txid: Some(txid),
            }
        };
        assert_eq!(basis, expected);
    }
    cluster.shutdown().await;
}

/// What a withholder withholds.
#[derive(Clone, Copy, Debug)]
enum Withheld {
    Commitment,
    Nonce,
    PartialSignature,
}

/// M10: node 2 stays connected and withholds one contribution. Whichever
/// node times out first, every node names node 2 with `ROUND_TIMEOUT` (the
/// withholder's own honest code names itself too), never the node whose
/// abort arrived first, and nobody is penalised for a timeout.
async fn withheld(step: Withheld) {
    let clock = Arc::new(ManualClock::new(now_ms()));
    let cfg = CoordinatorConfig {
        round_timeout: Duration::from_secs(5),
        ..config()
    };
    let mut cluster = LocalCluster::start_with_clock(3, cfg, clock.clone())
        .await
        .unwrap();
    let (_, session) = super::announce(&cluster, [66 + step as u8; 32]).await;
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    let withholder = index_of(&cluster, session, 2);
    let everyone_until = |s: Withheld| match (step, s) {
        (Withheld::Commitment, _) => vec![0, 1],
        (Withheld::Nonce, Withheld::Commitment) => vec![0, 1, 2],
        (Withheld::Nonce, _) => vec![0, 1],
        (Withheld::PartialSignature, Withheld::PartialSignature) => vec![0, 1],
        (Withheld::PartialSignature, _) => vec![0, 1, 2],
    };
    for i in everyone_until(Withheld::Commitment) {
        cluster.nodes[i]
            .coordinator
            .publish_nonce_commitments(session)
            .unwrap();
    }
    if !matches!(step, Withheld::Commitment) {
        for i in 0..3 {
            wait_event(
                &mut cluster.nodes[i],
                |e| matches!(e, CoordinatorEvent::NonceCommitmentsComplete(id) if *id == session),
            )
            .await;
        }
        for i in everyone_until(Withheld::Nonce) {
            cluster.nodes[i].coordinator.start_round1(session).unwrap();
        }
    }
    if matches!(step, Withheld::PartialSignature) {
        for i in 0..3 {
            wait_event(
                &mut cluster.nodes[i],
                |e| matches!(e, CoordinatorEvent::Round1Complete(id) if *id == session),
            )
            .await;
        }
        for i in everyone_until(Withheld::PartialSignature) {
            cluster.nodes[i].coordinator.start_round2(session).unwrap();
        }
    }
    let ticking = tick(clock.clone());
    for i in 0..3 {
        let f = failure(&mut cluster.nodes[i], session).await;
        assert_eq!(
            f.code,
            ErrorCode::RoundTimeout,
            "{step:?} at {i}: {}",
            f.message
        );
        if i == 2 {
            // The withholder's own node: it knows it did not contribute.
            assert!(f.culprits.contains(&withholder), "{step:?}: {}", f.message);
        } else {
            assert_eq!(f.signer, Some(withholder), "{step:?} at {i}: {}", f.message);
            assert_eq!(
                f.culprits,
                vec![withholder],
                "{step:?} at {i}: {}",
                f.message
            );
        }
        assert!(
            matches!(f.blame, Blame::Observed | Blame::Reported { .. }),
            "a timeout is never proof: {:?}",
            f.blame
        );
        assert_eq!(open_sessions(&cluster.nodes[i]), 0);
    }
    ticking.abort();
    super::assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_commitment_is_named_by_every_node() {
    withheld(Withheld::Commitment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_nonce_is_named_by_every_node() {
    withheld(Withheld::Nonce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_partial_signature_is_named_by_every_node() {
    withheld(Withheld::PartialSignature).await;
}

/// An abort that accuses an honest signer without proof is recorded as the
/// accuser's abort: the accused is not named and nobody is penalised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unproven_accusation_names_the_accuser_not_the_accused() {
    let mut cluster = LocalCluster::start(3, config()).await.unwrap();
    let (_, session) = super::announce(&cluster, [70; 32]).await;
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    let accuser = index_of(&cluster, session, 2);
    let accused = index_of(&cluster, session, 1);
    let report = AbortReport {
        code: ErrorCode::InvalidPartialSignature.as_str().into(),
        culprits: vec![accused as u32],
        evidence: None,
        reason: "trust me".into(),
        relayed: None,
    };
    let body = byzantine::abort_body(&cluster.nodes[2].keypair, session, accuser, report);
    Byzantine::send_as(&cluster.nodes[2], &cluster.nodes[0], session, 100, body).await;
    let f = failure(&mut cluster.nodes[0], session).await;
    assert_eq!(
        (f.code, f.signer),
        (ErrorCode::Aborted, Some(accuser)),
        "{}",
        f.message
    );
    assert!(!f.culprits.contains(&accused));
    assert!(!f.blame.is_proof());
    let s = score(&cluster.nodes[0], &cluster.nodes[1]);
    assert!(s.is_clean(), "the accused was penalised: {s:?}");
    cluster.shutdown().await;
}

/// With a Chronik client (`broadcast_check`), a coordinator's word is not
/// enough: a reported txid that the indexer does not know confirms nothing
/// and failover goes on; the real transaction, once the indexer has it,
/// confirms on that basis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_broadcast_is_checked_through_chronik() {
    use super::chronik_server::{ChainHandle, ServerState, TestServer, burn_tx};
    use musig2_identity::{ChronikClient, ChronikConfig};

    let chain = ChainHandle::new(100);
    let server = TestServer::start(ServerState::new(chain.clone())).await;
    let chronik = Arc::new(ChronikClient::new(ChronikConfig::new(server.url.clone())).unwrap());
    let cfg = CoordinatorConfig {
        broadcast_check: Some(chronik),
        ..config()
    };
    let mut cluster = LocalCluster::start(3, cfg).await.unwrap();
    let (session, _) = cluster
        .sign_until_complete([71; 32], SigningMetadata::default(), &mut |_, _| {})
        .await
        .unwrap();
    let coordinator = (0..3)
        .find(|i| cluster.nodes[*i].coordinator.is_coordinator(session))
        .unwrap();
    let others: Vec<usize> = (0..3).filter(|i| *i != coordinator).collect();
    // A txid nobody has seen, then a real transaction that does not carry
    // the session's signature: nothing is confirmed.
    let from = &cluster.nodes[coordinator];
    let index = index_of(&cluster, session, coordinator);
    let signature = from
        .coordinator
        .get_final_signature(session)
        .unwrap()
        .signature;
    let unrelated = chain
        .add_raw(
            &burn_tx(&cluster.nodes[0].keypair.public_key(), 1_000_000, 71),
            None,
        )
        .internal_bytes();
    for (n, txid) in [[0x5a; 32], unrelated].into_iter().enumerate() {
        for t in &others {
            let body =
                byzantine::finalized_body(&from.keypair, session, index, signature, Some(txid));
            let seq = 1_000 + n as u64;
            Byzantine::send_as(from, &cluster.nodes[*t], session, seq, body).await;
        }
        for t in &others {
            let node = &cluster.nodes[*t];
            wait_until(|| node.coordinator.counters().broadcasts_unconfirmed > n as u64).await;
        }
    }
    // The spend that carries the signature, known to the indexer: confirmed
    // on that basis.
    let mut script_sig = vec![0x41];
    script_sig.extend_from_slice(&signature.to_bytes());
    script_sig.push(0x61);
    let spend = musig2_identity::Transaction {
        version: 2,
        inputs: vec![musig2_identity::TxInput {
            prev_out: musig2_identity::OutPoint::new(
                musig2_identity::TxId::from_internal_bytes([0x33; 32]),
                0,
            ),
            script_sig,
            sequence: 0xffff_ffff,
        }],
        outputs: vec![musig2_identity::TxOutput {
            value: 5_000,
            script: vec![0x6a],
        }],
        lock_time: 0,
    };
    let txid = chain.add_raw(&spend.serialize(), None).internal_bytes();
    cluster.nodes[coordinator]
        .coordinator
        .notify_broadcast(session, Some(txid))
        .unwrap();
    for t in others {
        let basis = confirmation(&mut cluster.nodes[t], session).await;
        assert_eq!(
            basis,
            musig2_coordinator::ConfirmationBasis::ChronikSeen {
                coordinator_index: index,
                txid
            }
        );
    }
    assert!(server.hits() >= 6);
    cluster.shutdown().await;
}

/// A node never signs twice under one session id: after it drew a nonce in
/// a session that then ended, a second run of the same request is refused
/// (a second commitment or nonce for the same session and index would be a
/// valid equivocation proof against it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_of_a_session_we_signed_in_is_refused() {
    let cfg = CoordinatorConfig {
        auto_join: false,
        ..config()
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let (request, session) = super::announce(&cluster, [72; 32]).await;
    let node1 = &mut cluster.nodes[1];
    node1
        .wait_for(WAIT, |e| {
            matches!(e, CoordinatorEvent::SigningRequestReceived { .. }).then_some(())
        })
        .await
        .unwrap();
    node1
        .coordinator
        .join_signing_request(request, &node1.keypair)
        .await
        .unwrap();
    wait_ready(node1, session).await;
    node1
        .coordinator
        .publish_nonce_commitments(session)
        .unwrap();
    // The creator ends the session; node 1 ends it too.
    cluster.nodes[0].coordinator.close_session(session).unwrap();
    let node1 = &mut cluster.nodes[1];
    failure(node1, session).await;
    let again = node1
        .coordinator
        .join_signing_request(request, &node1.keypair)
        .await;
    assert!(
        matches!(
            again,
            Err(musig2_coordinator::CoordinatorError::WrongState(_))
        ),
        "{again:?}"
    );
    assert_eq!(node1.coordinator.counters().reruns_refused, 1);
    cluster.shutdown().await;
}

/// The same across a restart: the session a node drew its nonce in is handed
/// to `signed_log` (a daemon stores it durably) once, and a coordinator
/// started again with that record (`signed_sessions`) refuses a second run
/// of the request, fetched again from the DHT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_refuses_a_session_it_signed_in_before() {
    use std::sync::Mutex;

    use musig2_coordinator::Coordinator;
    use musig2_net::{NetConfig, NodeKeypair};

    type Recorded = Vec<([u8; 32], u64)>;
    let log: Arc<Mutex<Recorded>> = Arc::default();
    let recorded = Arc::clone(&log);
    let cfg = CoordinatorConfig {
        auto_join: false,
        signed_log: Some(Arc::new(move |id, expires_at| {
            recorded.lock().unwrap().push((id, expires_at));
            Ok(())
        })),
        ..config()
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let (request, session) = super::announce(&cluster, [73; 32]).await;
    let node1 = &mut cluster.nodes[1];
    node1
        .wait_for(WAIT, |e| {
            matches!(e, CoordinatorEvent::SigningRequestReceived { .. }).then_some(())
        })
        .await
        .unwrap();
    node1
        .coordinator
        .join_signing_request(request, &node1.keypair)
        .await
        .unwrap();
    wait_ready(node1, session).await;
    node1
        .coordinator
        .publish_nonce_commitments(session)
        .unwrap();
    let signed = log.lock().unwrap().clone();
    assert_eq!(signed.len(), 1, "{signed:?}");
    assert_eq!(signed[0].0, session);

    // Node 1 "restarts": a new coordinator, with what it recorded.
    let bootstrap = cluster.nodes[0].coordinator.multiaddrs().await.unwrap();
    let restarted = Coordinator::start(
        NodeKeypair::generate_ed25519(),
        NetConfig {
            bootstrap_peers: bootstrap,
            ..NetConfig::loopback()
        },
        CoordinatorConfig {
            auto_join: false,
            signed_sessions: signed,
            ..config()
        },
    )
    .await
    .unwrap();
    let keypair = cluster.nodes[1].keypair.clone();
    let again = restarted.join_signing_request(request, &keypair).await;
    assert!(
        matches!(
            again,
            Err(musig2_coordinator::CoordinatorError::WrongState(_))
        ),
        "{again:?}"
    );
    assert_eq!(restarted.counters().reruns_refused, 1);
    restarted.shutdown().await;
    cluster.shutdown().await;
}

/// A byzantine signer that sends its abort to one co-signer only cannot make
/// the others blame that co-signer for going silent: the one it told relays
/// the signed abort, and everyone names its author.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selective_abort_is_relayed_and_names_its_author() {
    let mut cluster = LocalCluster::start(3, config()).await.unwrap();
    let (_, session) = super::announce(&cluster, [73; 32]).await;
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    let author = index_of(&cluster, session, 2);
    let body = byzantine::abort_body(
        &cluster.nodes[2].keypair,
        session,
        author,
        byzantine::plain_abort("only you"),
    );
    Byzantine::send_as(&cluster.nodes[2], &cluster.nodes[1], session, 100, body).await;
    for i in [1, 0] {
        let f = failure(&mut cluster.nodes[i], session).await;
        assert_eq!(
            (f.code, f.signer),
            (ErrorCode::Aborted, Some(author)),
            "node {i}: {}",
            f.message
        );
    }
    honest_pair_is_clean(&cluster, [0, 1]);
    cluster.shutdown().await;
}

/// A backup whose failover clock runs ahead reports its broadcast before
/// the others have moved to it: the report confirms nothing at once, and is
/// judged when each node's own failover reaches that backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backups_early_finalization_counts_once_failover_reaches_it() {
    let clock = Arc::new(ManualClock::new(now_ms()));
    let cfg = CoordinatorConfig {
        broadcast_timeout: Duration::from_secs(60),
        ..config()
    };
    let mut cluster = LocalCluster::start_with_clock(3, cfg, clock.clone())
        .await
        .unwrap();
    let (session, _) = cluster
        .sign_until_complete([74; 32], SigningMetadata::default(), &mut |_, _| {})
        .await
        .unwrap();
    let coordinator = (0..3)
        .find(|i| cluster.nodes[*i].coordinator.is_coordinator(session))
        .unwrap();
    // The first backup, by the election's priority order.
    let info = cluster.nodes[0].coordinator.get_session(session).unwrap();
    let priority = musig2_election::coordinator_priority_list(
        &info.signers,
        musig2_election::ElectionMethod::Lexicographic,
    );
    let backup_index = priority[1];
    let backup = (0..3)
        .find(|t| index_of(&cluster, session, *t) == backup_index)
        .unwrap();
    assert_ne!(backup, coordinator);
    let signature = info.final_signature.unwrap();
    let from = &cluster.nodes[backup];
    for t in (0..3).filter(|t| *t != backup) {
        let body = byzantine::finalized_body(&from.keypair, session, backup_index, signature, None);
        Byzantine::send_as(from, &cluster.nodes[t], session, 1_000, body).await;
    }
    // Nothing confirmed yet: the report waits at both receivers.
    for t in (0..3).filter(|t| *t != backup) {
        let node = &cluster.nodes[t];
        wait_until(|| node.coordinator.counters().late_messages >= 1).await;
        let f = node.coordinator.get_session(session).unwrap();
        assert_ne!(f.coordinator_index, Some(backup_index));
    }
    clock.advance(60_000);
    for t in 0..3 {
        let backup = cluster.nodes[t]
            .wait_for(WAIT, |e| match e {
                CoordinatorEvent::CoordinatorFailed { session_id, .. }
                    if *session_id == session =>
                {
                    Some(())
                }
                _ => None,
            })
            .await;
        assert!(backup.is_ok());
    }
    for t in (0..3).filter(|t| *t != backup) {
        let basis = confirmation(&mut cluster.nodes[t], session).await;
        assert_eq!(
            basis,
            musig2_coordinator::ConfirmationBasis::CoordinatorWord {
                coordinator_index: backup_index,
                txid: None
            }
        );
    }
    cluster.shutdown().await;
}
