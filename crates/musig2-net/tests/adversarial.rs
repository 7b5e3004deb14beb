//! Hostile peers against real swarms on 127.0.0.1: blocking, queue flooding,
//! connection crowd-out, DHT store abuse and routing-table admission.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use musig2_net::{
    Multiaddr, NetConfig, NetError, NetEvent, NetHandle, NetMetrics, NodeKeypair, PeerEvent,
    PeerId, RecordValidator, start,
};
use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, timeout};

const DEADLINE: Duration = Duration::from_secs(20);

async fn node_with(
    bootstrap: Option<&NetHandle>,
    mut cfg: NetConfig,
) -> (NetHandle, Receiver<NetEvent>) {
    if let Some(b) = bootstrap {
        cfg.bootstrap_peers = b.listen_addrs().await.unwrap();
    }
    let (handle, events) = start(NodeKeypair::generate_ed25519(), cfg).await.unwrap();
    timeout(DEADLINE, async {
        while handle.listen_addrs().await.unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the node never listened");
    (handle, events)
}

async fn node(bootstrap: Option<&NetHandle>) -> (NetHandle, Receiver<NetEvent>) {
    node_with(bootstrap, NetConfig::loopback()).await
}

/// Tells `who` where `target` listens.
async fn introduce(who: &NetHandle, target: &NetHandle) {
    for addr in target.listen_addrs().await.unwrap() {
        who.add_address(target.local_peer_id(), addr).await.unwrap();
    }
}

async fn next_matching<F: Fn(&NetEvent) -> bool>(
    events: &mut Receiver<NetEvent>,
    f: F,
) -> NetEvent {
    timeout(DEADLINE, async {
        loop {
            let e = events.recv().await.expect("event queue closed");
            if f(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event did not arrive in time")
}

async fn expect_direct(events: &mut Receiver<NetEvent>, from: PeerId, payload: &[u8]) {
    let e = next_matching(events, |e| matches!(e, NetEvent::Direct { .. })).await;
    let NetEvent::Direct { peer, payload: got } = e else {
        unreachable!()
    };
    assert_eq!((peer, got.as_slice()), (from, payload));
}

/// Polls `check` (with a short pause between polls) until it holds; fails
/// the test at the deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metrics(h: &NetHandle) -> NetMetrics {
    h.metrics().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_peer_is_cut_off_until_unblocked() {
    let (a, mut a_events) = node(None).await;
    let (b, mut b_events) = node(None).await;
    introduce(&b, &a).await;
    introduce(&a, &b).await;
    b.send(a.local_peer_id(), b"before".to_vec()).await.unwrap();
    expect_direct(&mut a_events, b.local_peer_id(), b"before").await;

    a.block_peer(b.local_peer_id()).await.unwrap();
    assert_eq!(a.blocked_peers().await.unwrap(), vec![b.local_peer_id()]);
    // Disconnected now.
    next_matching(
        &mut b_events,
        |e| matches!(e, NetEvent::Peer(PeerEvent::Disconnected(p)) if *p == a.local_peer_id()),
    )
    .await;
    // It cannot come back or deliver anything; a neither sends to it nor
    // dials it.
    assert!(
        b.send(a.local_peer_id(), b"blocked".to_vec())
            .await
            .is_err()
    );
    eventually("b's connection was denied", || async {
        metrics(&a).await.connections_denied_blocked >= 1
    })
    .await;
    let err = a
        .send(b.local_peer_id(), b"to b".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NetError::Send { detail, .. } if detail.contains("blocked")),
        "{err:?}"
    );
    for addr in b.listen_addrs().await.unwrap() {
        assert!(a.dial(addr).await.is_err(), "a dialled a blocked peer");
    }
    assert!(
        !a.connected_peers()
            .await
            .unwrap()
            .contains(&b.local_peer_id())
    );

    a.unblock_peer(b.local_peer_id()).await.unwrap();
    assert!(a.blocked_peers().await.unwrap().is_empty());
    // b may still be tearing down a connection a denied (its DHT redials a
    // in the background): a sender retries, as the coordinator does.
    eventually("b's message is accepted", || async {
        b.send(a.local_peer_id(), b"after".to_vec()).await.is_ok()
    })
    .await;
    // The next direct message a sees is "after": nothing got through before.
    expect_direct(&mut a_events, b.local_peer_id(), b"after").await;
    for h in [a, b] {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_drops_what_the_peer_has_queued() {
    // The application's queue holds one event, so b's messages wait in a's
    // inbound queue.
    let cfg = NetConfig {
        event_capacity: 1,
        ..NetConfig::loopback()
    };
    let (a, mut a_events) = node_with(None, cfg).await;
    let (b, _b_events) = node(None).await;
    introduce(&b, &a).await;
    for i in 0u8..5 {
        b.send(a.local_peer_id(), vec![i]).await.unwrap();
    }
    a.block_peer(b.local_peer_id()).await.unwrap();
    let dropped = metrics(&a).await.direct_dropped_blocked;
    assert!(dropped >= 4, "only {dropped} dropped");
    // At most the one message already handed over reaches the application.
    let mut delivered = 0;
    while let Ok(event) = a_events.try_recv() {
        if matches!(event, NetEvent::Direct { .. }) {
            delivered += 1;
        }
    }
    assert!(delivered <= 1, "{delivered} delivered");
    assert_eq!(dropped + delivered, 5);
    for h in [a, b] {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_gets_busy_and_another_peers_messages_all_get_through() {
    const PER_PEER: usize = 8;
    let cfg = NetConfig {
        direct_queue_per_peer: PER_PEER,
        event_capacity: 16,
        ..NetConfig::loopback()
    };
    // The application does not read a's events until the flood is over.
    let (a, mut a_events) = node_with(None, cfg).await;
    let (flooder, _f) = node(None).await;
    let (honest, _h) = node(None).await;
    introduce(&flooder, &a).await;
    introduce(&honest, &a).await;
    let mut busy = 0;
    for i in 0u32..200 {
        match flooder
            .send(a.local_peer_id(), i.to_be_bytes().to_vec())
            .await
        {
            Ok(()) => {}
            Err(NetError::PeerBusy) => busy += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(busy >= 200 - 16 - PER_PEER, "only {busy} refused");
    for i in 0..PER_PEER as u8 {
        honest.send(a.local_peer_id(), vec![i]).await.unwrap();
    }
    let m = metrics(&a).await;
    assert_eq!(m.direct_busy_peer_queue, busy as u64);
    assert_eq!(m.direct_busy_global_queue, 0);
    // Everything accepted arrives, the honest peer's messages in order.
    let mut seen = Vec::new();
    while seen.len() < PER_PEER {
        if let NetEvent::Direct { peer, payload } =
            next_matching(&mut a_events, |e| matches!(e, NetEvent::Direct { .. })).await
            && peer == honest.local_peer_id()
        {
            seen.push(payload);
        }
    }
    assert_eq!(
        seen,
        (0..PER_PEER as u8).map(|i| vec![i]).collect::<Vec<_>>()
    );
    for h in [a, flooder, honest] {
        h.shutdown().await;
    }
}

/// A cheap identity that connects to `target` and holds the connection
/// idle; returns when the connection is up (or was refused at once).
async fn idle_connection(target: Multiaddr) -> tokio::task::JoinHandle<()> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p::swarm::dummy::Behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm.dial(target).unwrap();
    let (up, is_up) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut up = Some(up);
        loop {
            if let libp2p::swarm::SwarmEvent::ConnectionEstablished { .. } =
                swarm.select_next_some().await
                && let Some(up) = up.take()
            {
                let _ = up.send(());
            }
        }
    });
    timeout(DEADLINE, is_up)
        .await
        .expect("the idle connection never opened")
        .unwrap();
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_inbound_connections_do_not_crowd_out_a_co_signer() {
    let cfg = NetConfig::loopback();
    let limit = cfg.max_connections;
    let (victim, mut victim_events) = node_with(None, cfg).await;
    let (co_signer, mut co_events) = node(None).await;
    let target = victim.listen_addrs().await.unwrap()[0].clone();
    // More cheap identities than the limit hold idle connections.
    let mut attackers = Vec::new();
    for _ in 0..limit + 5 {
        attackers.push(idle_connection(target.clone()).await);
    }
    eventually("the victim is at its limit", || async {
        metrics(&victim).await.connections_refused >= 5
    })
    .await;
    assert_eq!(victim.connected_peers().await.unwrap().len(), limit);
    // The victim dials its co-signer and they exchange messages.
    introduce(&victim, &co_signer).await;
    victim
        .send(co_signer.local_peer_id(), b"join".to_vec())
        .await
        .unwrap();
    expect_direct(&mut co_events, victim.local_peer_id(), b"join").await;
    co_signer
        .send(victim.local_peer_id(), b"welcome".to_vec())
        .await
        .unwrap();
    expect_direct(&mut victim_events, co_signer.local_peer_id(), b"welcome").await;
    let m = metrics(&victim).await;
    assert!(m.connections_evicted >= 1, "{m:?}");
    assert!(
        victim
            .connected_peers()
            .await
            .unwrap()
            .contains(&co_signer.local_peer_id())
    );
    for task in attackers {
        task.abort();
    }
    for h in [victim, co_signer] {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_peer_updates_take_effect_in_the_order_they_are_sent() {
    // No room for general connections: only session peers may connect.
    let cfg = NetConfig {
        max_connections: 0,
        ..NetConfig::loopback()
    };
    let (a, mut a_events) = node_with(None, cfg).await;
    let (b, _b_events) = node(None).await;
    introduce(&b, &a).await;
    // Alternating updates from one task; the last, `false`, wins.
    for _ in 0..50 {
        a.set_session_peers(vec![b.local_peer_id()], true)
            .await
            .unwrap();
        a.set_session_peers(vec![b.local_peer_id()], false)
            .await
            .unwrap();
    }
    assert!(
        b.send(a.local_peer_id(), b"refused".to_vec())
            .await
            .is_err()
    );
    eventually("b's connection was refused", || async {
        metrics(&a).await.connections_refused >= 1
    })
    .await;
    // From two clones of the handle, one after the other: `true` wins.
    let other = a.clone();
    a.set_session_peers(vec![b.local_peer_id()], false)
        .await
        .unwrap();
    other
        .set_session_peers(vec![b.local_peer_id()], true)
        .await
        .unwrap();
    // b may still be tearing down the refused connection: it retries.
    eventually("b's message is accepted", || async {
        b.send(a.local_peer_id(), b"welcome".to_vec()).await.is_ok()
    })
    .await;
    expect_direct(&mut a_events, b.local_peer_id(), b"welcome").await;
    for h in [a, b] {
        h.shutdown().await;
    }
}

/// Waits until `who` has `peer` in its DHT routing table.
async fn routed(who: &NetHandle, peer: PeerId) {
    eventually("the peer enters the routing table", || async {
        who.dht_routing_peers().await.unwrap().contains(&peer)
    })
    .await;
}

/// `n` records `prefix{i}` → `value`, put concurrently.
async fn put_many(h: &NetHandle, prefix: &str, n: usize, value: &[u8]) {
    let puts = (0..n).map(|i| {
        let h = h.clone();
        let (key, value) = (format!("{prefix}{i}").into_bytes(), value.to_vec());
        async move { h.put_record(key, value).await }
    });
    for result in futures::stream::iter(puts)
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
    {
        result.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_filled_by_a_peer_still_takes_and_serves_our_own_records() {
    let cfg = NetConfig {
        dht_key_prefixes: vec![b"musig2-test:".to_vec()],
        dht_max_value_size: 1000,
        // The global cap, not the per-peer quota, is what fills here.
        dht_records_per_peer: 10_000,
        ..NetConfig::loopback()
    };
    let (a, _a_events) = node_with(None, cfg).await;
    let (attacker, _b) = node(Some(&a)).await;
    routed(&attacker, a.local_peer_id()).await;
    put_many(&attacker, "musig2-test:junk", 1100, b"junk").await;
    put_many(&attacker, "other:", 10, b"junk").await;
    put_many(&attacker, "musig2-test:big", 5, &[0u8; 2000]).await;
    eventually("every PUT was judged", || async {
        let m = metrics(&a).await;
        m.dht_records_stored + m.dht_rejected_full >= 1100
            && m.dht_rejected_prefix >= 10
            && m.dht_rejected_too_large >= 5
    })
    .await;
    let m = metrics(&a).await;
    assert_eq!(m.dht_remote_records, 1024, "{m:?}");
    assert!(m.dht_rejected_full >= 76, "{m:?}");

    // Our own put still succeeds, and is served to us and to others.
    a.put_record(b"musig2-test:own".to_vec(), b"mine".to_vec())
        .await
        .unwrap();
    assert_eq!(
        a.get_record(b"musig2-test:own".to_vec()).await.unwrap(),
        b"mine"
    );
    let (reader, _c) = node(Some(&a)).await;
    routed(&reader, a.local_peer_id()).await;
    assert_eq!(
        reader
            .get_record(b"musig2-test:own".to_vec())
            .await
            .unwrap(),
        b"mine"
    );
    // The attacker cannot overwrite it in a's store.
    attacker
        .put_record(b"musig2-test:own".to_vec(), b"forged".to_vec())
        .await
        .unwrap();
    eventually("the overwrite was refused", || async {
        metrics(&a).await.dht_rejected_own_key >= 1
    })
    .await;
    assert_eq!(
        a.get_record(b"musig2-test:own".to_vec()).await.unwrap(),
        b"mine"
    );
    for h in [a, attacker, reader] {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_is_held_to_its_quota_of_records() {
    let (a, _a_events) = node(None).await;
    let (attacker, _b) = node(Some(&a)).await;
    routed(&attacker, a.local_peer_id()).await;
    let quota = NetConfig::default().dht_records_per_peer;
    put_many(&attacker, "k", quota + 36, b"v").await;
    eventually("every PUT was judged", || async {
        let m = metrics(&a).await;
        m.dht_records_stored + m.dht_rejected_quota >= (quota + 36) as u64
    })
    .await;
    let m = metrics(&a).await;
    assert_eq!(m.dht_remote_records, quota as u64, "{m:?}");
    assert!(m.dht_rejected_quota >= 36, "{m:?}");
    for h in [a, attacker] {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_keeps_invalid_records_out_of_the_store_and_out_of_lookups() {
    let cfg = NetConfig {
        dht_key_prefixes: vec![b"musig2-test:".to_vec()],
        record_validator: Some(RecordValidator::new(|_, value| value.starts_with(b"valid"))),
        ..NetConfig::loopback()
    };
    let (a, _a_events) = node_with(None, cfg).await;
    let (attacker, _b) = node(Some(&a)).await;
    routed(&attacker, a.local_peer_id()).await;
    routed(&a, attacker.local_peer_id()).await;
    attacker
        .put_record(b"musig2-test:bad".to_vec(), b"garbage".to_vec())
        .await
        .unwrap();
    attacker
        .put_record(b"musig2-test:good".to_vec(), b"valid record".to_vec())
        .await
        .unwrap();
    eventually("both PUTs were judged", || async {
        let m = metrics(&a).await;
        m.dht_rejected_invalid >= 1 && m.dht_records_stored >= 1
    })
    .await;
    let m = metrics(&a).await;
    assert_eq!(
        (m.dht_rejected_invalid, m.dht_remote_records),
        (1, 1),
        "{m:?}"
    );
    // The lookup reaches the attacker, which serves its garbage: skipped.
    let err = a.get_record(b"musig2-test:bad".to_vec()).await.unwrap_err();
    assert!(matches!(err, NetError::NotFound { .. }), "{err:?}");
    assert!(metrics(&a).await.dht_invalid_results >= 1);
    assert_eq!(
        a.get_record(b"musig2-test:good".to_vec()).await.unwrap(),
        b"valid record"
    );
    for h in [a, attacker] {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_peers_that_serve_the_dht_enter_the_routing_table() {
    let (a, mut a_events) = node(None).await;
    let client_cfg = || NetConfig {
        dht_server: false,
        ..NetConfig::loopback()
    };
    // A client that dials a, and one that a dials.
    let (inbound_client, _b) = node_with(Some(&a), client_cfg()).await;
    let (outbound_client, _d) = node_with(None, client_cfg()).await;
    let (server, _c) = node(Some(&a)).await;
    for addr in outbound_client.listen_addrs().await.unwrap() {
        a.dial(addr).await.unwrap();
    }
    routed(&a, server.local_peer_id()).await;
    // a has identified both clients (in either order).
    let mut unseen = vec![
        inbound_client.local_peer_id(),
        outbound_client.local_peer_id(),
    ];
    while !unseen.is_empty() {
        if let NetEvent::Peer(PeerEvent::Discovered { peer, .. }) =
            next_matching(&mut a_events, |e| {
                matches!(e, NetEvent::Peer(PeerEvent::Discovered { .. }))
            })
            .await
        {
            unseen.retain(|p| *p != peer);
        }
    }
    let table = a.dht_routing_peers().await.unwrap();
    assert!(table.contains(&server.local_peer_id()));
    assert!(
        !table.contains(&inbound_client.local_peer_id()),
        "{table:?}"
    );
    assert!(
        !table.contains(&outbound_client.local_peer_id()),
        "{table:?}"
    );
    for h in [a, inbound_client, outbound_client, server] {
        h.shutdown().await;
    }
}
