//! Strangers on the gossip and discovery paths (M6, M7, L5): GossipSub's own
//! peer scoring against a peer that gossips invalid requests, the request
//! rate limits on the gossip path, the auto-connect dial budget, and the
//! redial that keeps a closed connection from being blamed. Real swarms on
//! loopback; the strangers are raw `musig2-net` handles.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use musig2_coordinator::cluster::{ClusterNode, LocalCluster};
use musig2_coordinator::{CoordinatorConfig, CoordinatorEvent, REQUESTS_TOPIC};
use musig2_core::{Keypair, Signature};
use musig2_net::gossip_score::GRAYLIST_THRESHOLD;
use musig2_net::{NetConfig, PeerEvent};
use musig2_security::{Clock, ManualClock, Rule, SigningMetadata, TransactionType};

use super::byzantine::Byzantine;
use super::{
    WAIT, announce, assert_no_honest_peer_penalised, config, now_ms, open_sessions, wait_ready,
    wait_until, wait_until_async,
};

// --- M6: GossipSub scores the peers whose messages we reject ----------------------

/// A peer that gossips badly signed signing requests falls below GossipSub's
/// graylist threshold at the receiver (GossipSub then ignores everything it
/// sends and prunes it from the mesh), while a stranger that gossips a valid
/// request is heard, a session still completes and no honest peer loses
/// GossipSub score or reputation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_gossiper_is_graylisted_by_gossipsub_and_honest_gossip_flows() {
    let cfg = CoordinatorConfig {
        auto_join: false,
        ..config()
    };
    let mut cluster = LocalCluster::start(2, cfg).await.unwrap();
    let victim = cluster.nodes[0].coordinator.clone();
    let victim_key = cluster.nodes[0].keypair.public_key();

    let liar = Byzantine::near(&cluster.nodes[0]).await;
    liar.connect(&cluster.nodes[0]).await;
    let forger = Keypair::random(&mut rand::rng());
    for i in 0..4 {
        let mut a = liar.request_by(&forger, vec![victim_key, forger.public_key()], i);
        a.signature = Signature::from_bytes(&[1; 64]);
        liar.gossip(REQUESTS_TOPIC, postcard::to_allocvec(&a).unwrap())
            .await;
    }
    // The coordinator judged them (invalid signatures, blamed on the
    // author) and reported `Reject`; GossipSub graylists the liar itself
    // after three, so a fourth that arrives after the third's verdict is
    // dropped by GossipSub before the coordinator sees it.
    liar.wait_until_penalised(&cluster.nodes[0], |s| s.invalid_signatures >= 3)
        .await;
    let liar_peer = liar.peer_id();
    wait_until_async(|| {
        let victim = victim.clone();
        async move {
            let score = victim.net().gossip_score(liar_peer).await.unwrap();
            score.is_some_and(|s| s < GRAYLIST_THRESHOLD)
        }
    })
    .await;
    let me = musig2_security::PeerId::new(liar_peer.to_string());
    assert!(victim.with_security(|s| s.peer_score(&me).invalid_signatures) <= 4);

    // A stranger that plays by the rules is heard over gossip alone.
    let stranger = Byzantine::near(&cluster.nodes[0]).await;
    stranger.connect(&cluster.nodes[0]).await;
    let author = Keypair::random(&mut rand::rng());
    let honest = stranger.request_by(&author, vec![victim_key, author.public_key()], 0);
    stranger
        .gossip(REQUESTS_TOPIC, postcard::to_allocvec(&honest).unwrap())
        .await;
    cluster.nodes[0]
        .wait_for(WAIT, |e| {
            matches!(e, CoordinatorEvent::SigningRequestReceived { announcement }
                if announcement.request_id == honest.request_id)
            .then_some(())
        })
        .await
        .unwrap();
    for peer in [
        stranger.peer_id(),
        cluster.nodes[1].coordinator.local_peer_id(),
    ] {
        let score = victim.net().gossip_score(peer).await.unwrap().unwrap();
        assert!(score >= 0.0, "an honest peer lost GossipSub score: {score}");
    }
    cluster
        .sign([61; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

// --- M6/H4: the request rate limits hold on the gossip path -----------------------

/// Two strangers flood validly signed requests naming the victim's key over
/// GossipSub, with the clock held still (no refill, so the numbers are
/// exact). Per author key: `p1` sends 15 requests signed by `S`, then `p2`
/// 15 more by `S`; only 5 of `p2`'s get through (`S`'s burst of 20 is spent,
/// though `p2`'s own bucket is full). Per peer: `p1` then sends 15 by a
/// fresh key `T`; only 5 get through (`p1`'s burst is spent, though `T`'s is
/// full). Every refusal is a rate-limit violation until the peer is
/// graylisted (after 10), then `graylisted`; the victim holds no more
/// pending requests than it accepted, and an honest session completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_request_flood_is_rate_limited_per_author_and_per_peer() {
    let clock = Arc::new(ManualClock::new(now_ms()));
    let cfg = CoordinatorConfig {
        auto_join: false,
        ..config()
    };
    assert_eq!(cfg.security.request_burst, 20);
    let mut cluster = LocalCluster::start_with_clock(2, cfg, clock.clone())
        .await
        .unwrap();
    let victim_key = cluster.nodes[0].keypair.public_key();
    let (p1, p2) = (
        Byzantine::near(&cluster.nodes[0]).await,
        Byzantine::near(&cluster.nodes[0]).await,
    );
    p1.connect(&cluster.nodes[0]).await;
    p2.connect(&cluster.nodes[0]).await;
    let (s, t) = (
        Keypair::random(&mut rand::rng()),
        Keypair::random(&mut rand::rng()),
    );
    let victim = cluster.nodes[0].coordinator.clone();
    // Messages the victim's security layer has judged (and how).
    let judged = || {
        victim.with_security(|sec| {
            let m = sec.metrics(clock.now_ms());
            m.accepted_announcements
                + m.rejections[&Rule::RateLimit]
                + m.rejections[&Rule::Graylisted]
        })
    };
    let mut sent = judged();
    // One phase at a time, each judged before the next (two connections
    // give no order between them).
    for (peer, key, first_nonce) in [(&p1, &s, 0), (&p2, &s, 100), (&p1, &t, 200)] {
        for nonce in first_nonce..first_nonce + 15 {
            let a = peer.request_by(key, vec![victim_key, key.public_key()], nonce);
            peer.gossip(REQUESTS_TOPIC, postcard::to_allocvec(&a).unwrap())
                .await;
        }
        sent += 15;
        wait_until(|| judged() >= sent).await;
    }

    // What the victim accepted, by (author key, peer).
    let mut accepted = HashMap::new();
    while let Ok(event) = cluster.nodes[0].events.try_recv() {
        if let CoordinatorEvent::SigningRequestReceived { announcement } = event {
            *accepted
                .entry((
                    announcement.creator_pubkey,
                    announcement.creator_peer_id.clone(),
                ))
                .or_insert(0usize) += 1;
        }
    }
    let got = |key: &Keypair, peer: &Byzantine| {
        accepted
            .get(&(key.public_key(), peer.peer_id().to_string()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(
        (got(&s, &p1), got(&s, &p2), got(&t, &p1), got(&t, &p2)),
        (15, 5, 5, 0),
        "{accepted:?}"
    );
    let metrics = victim.with_security(|sec| sec.metrics(clock.now_ms()));
    // Ten refusals each (the tenth graylists the peer), nothing else.
    assert_eq!(metrics.rejections[&Rule::RateLimit], 20);
    assert_eq!(metrics.rejections[&Rule::Graylisted], 0);
    assert_eq!(metrics.graylistings_total, 2);
    // Bounded: nothing beyond what was accepted is held.
    let sizes = victim.state_sizes();
    assert!(sizes.pending <= 25, "{sizes:?}");
    assert_eq!(open_sessions(&cluster.nodes[0]), 0);

    cluster
        .sign([62; 32], SigningMetadata::default(), |_, _| {})
        .await
        .unwrap();
    assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}

// --- M7: the auto-connect dial budget ----------------------------------------------

/// Two strangers gossip 16 valid signer advertisements (distinct keys, each
/// at its own address, pre-dated a minute apart so the per-peer
/// advertisement rate lets them through) within one minute of the injected
/// clock. The victim accepts all 16 but dials only 10 of the addresses
/// (TCP listeners count the dials that reach them); a minute later the
/// budget is back and the next new advertisement is dialled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_advertisements_is_dialled_within_the_budget() {
    let clock = Arc::new(ManualClock::new(now_ms()));
    let mut cluster = LocalCluster::start_with_clock(1, config(), clock.clone())
        .await
        .unwrap();
    // The attacker-chosen addresses: listeners that report each connection.
    let (hits_tx, mut hits) = tokio::sync::mpsc::channel(64);
    let mut ports = Vec::new();
    for i in 0..17usize {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(listener.local_addr().unwrap().port());
        let tx = hits_tx.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                drop(socket);
                let _ = tx.send(i).await;
            }
        });
    }
    let sybils = [
        Byzantine::near(&cluster.nodes[0]).await,
        Byzantine::near(&cluster.nodes[0]).await,
    ];
    for sybil in &sybils {
        sybil.connect(&cluster.nodes[0]).await;
    }
    let start = clock.now_ms();
    let victim = &mut cluster.nodes[0];
    for (n, sybil) in sybils.iter().enumerate() {
        for i in 0..8u64 {
            let created_at = start - 299_000 + i * 61_000;
            advertise(victim, sybil, ports[n * 8 + i as usize], created_at).await;
        }
    }
    let counters = victim.coordinator.counters();
    assert_eq!(
        (counters.auto_dials, counters.auto_dials_over_budget),
        (10, 6)
    );
    let mut dialled = HashSet::new();
    tokio::time::timeout(WAIT, async {
        while dialled.len() < 10 {
            dialled.insert(hits.recv().await.unwrap());
        }
    })
    .await
    .expect("the budgeted dials never arrived");

    // A minute later the budget is back.
    clock.advance(60_000);
    advertise(victim, &sybils[0], ports[16], start + 190_000).await;
    assert_eq!(victim.coordinator.counters().auto_dials, 11);
    tokio::time::timeout(WAIT, async {
        loop {
            let i = hits.recv().await.unwrap();
            if i == 16 {
                break;
            }
            dialled.insert(i);
        }
    })
    .await
    .expect("the dial after the budget renewed never arrived");
    assert_eq!(dialled.len(), 10, "an address over the budget was dialled");
    cluster.shutdown().await;
}

/// `sybil` gossips a valid advertisement of a new key at `port`, made at
/// `created_at`; returns once `victim` has accepted it (one at a time, so
/// each is judged after the one before).
async fn advertise(victim: &mut ClusterNode, sybil: &Byzantine, port: u16, created_at: u64) {
    let key = Keypair::random(&mut rand::rng());
    let ad = sybil.advertisement(&key, format!("/ip4/127.0.0.1/tcp/{port}"), created_at);
    sybil.gossip(TransactionType::Spend.topic(), ad).await;
    victim
        .wait_for(WAIT, |e| {
            matches!(e, CoordinatorEvent::SignerDiscovered(ad) if ad.pubkey == key.public_key())
                .then_some(())
        })
        .await
        .unwrap();
}

// --- L5: a connection that closes while waiting is not a departure --------------

/// During a long join phase the connection to a joined co-signer closes
/// (idle, or dropped by the network) although the co-signer is online: the
/// node dials it straight back, so the grace period passes (injected clock)
/// without blaming it, and the session goes on when the last signer joins.
/// The signers are DHT clients (so no DHT query of one dials another: only
/// the bootstrap node serves the DHT) and their connection refill is off,
/// so the coordinator's redial is the only thing that can bring the
/// connection back: without it this test fails waiting for the reconnection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_to_an_online_co_signer_is_not_blamed() {
    let clock = Arc::new(ManualClock::new(now_ms()));
    let cfg = CoordinatorConfig {
        auto_join: false,
        disconnect_grace: Duration::from_secs(1),
        ..config()
    };
    let net = NetConfig {
        min_connections: 0,
        dht_server: false,
        ..NetConfig::loopback()
    };
    let nodes = (0..3)
        .map(|_| (Keypair::random(&mut rand::rng()), cfg.clone()))
        .collect();
    let mut cluster = LocalCluster::start_with_net(nodes, clock.clone(), net)
        .await
        .unwrap();
    let (request, session) = announce(&cluster, [48; 32]).await;
    let node1 = &cluster.nodes[1];
    node1
        .coordinator
        .join_signing_request(request, &node1.keypair)
        .await
        .unwrap();
    wait_until(|| {
        cluster.nodes[0]
            .coordinator
            .get_session(session)
            .is_some_and(|s| s.joined == 2)
    })
    .await;
    let peer0 = cluster.nodes[0].coordinator.local_peer_id();
    let peer1 = cluster.nodes[1].coordinator.local_peer_id();
    // Only what happens from now on counts (the first connection's events
    // are still queued).
    for node in &mut cluster.nodes[..2] {
        while node.events.try_recv().is_ok() {}
    }
    cluster.nodes[0]
        .coordinator
        .net()
        .disconnect(peer1)
        .await
        .unwrap();
    // The connection closes, and the redial brings it back: on both ends
    // (either would blame the other if it still counted it as gone).
    for (node, other) in [(0, peer1), (1, peer0)] {
        for closed in [true, false] {
            cluster.nodes[node]
                .wait_for(WAIT, |e| match e {
                    CoordinatorEvent::Peer(PeerEvent::Disconnected(p)) if closed && *p == other => {
                        Some(())
                    }
                    CoordinatorEvent::Peer(PeerEvent::Connected(p)) if !closed && *p == other => {
                        Some(())
                    }
                    _ => None,
                })
                .await
                .unwrap();
        }
    }
    // Past the grace period: a peer still counted as gone would be blamed now.
    clock.advance(2_000);
    let node2 = &cluster.nodes[2];
    node2
        .coordinator
        .join_signing_request(request, &node2.keypair)
        .await
        .unwrap();
    for node in cluster.nodes.iter_mut() {
        wait_ready(node, session).await;
    }
    assert_no_honest_peer_penalised(&cluster);
    cluster.shutdown().await;
}
