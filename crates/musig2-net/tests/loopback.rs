//! Real swarms on 127.0.0.1: DHT records, direct messages, gossip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use musig2_net::{NetConfig, NetEvent, NetHandle, NodeKeypair, PeerEvent, PeerId, Verdict, start};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

async fn node(bootstrap: Option<&NetHandle>) -> (NetHandle, Receiver<NetEvent>) {
    node_with(bootstrap, NetConfig::loopback()).await
}

async fn node_with(
    bootstrap: Option<&NetHandle>,
    mut cfg: NetConfig,
) -> (NetHandle, Receiver<NetEvent>) {
    if let Some(b) = bootstrap {
        cfg.bootstrap_peers = b.listen_addrs().await.unwrap();
    }
    let (handle, events) = start(NodeKeypair::generate_ed25519(), cfg).await.unwrap();
    // Wait until the listener is up.
    timeout(Duration::from_secs(5), async {
        while handle.listen_addrs().await.unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    (handle, events)
}

async fn next_matching<F: Fn(&NetEvent) -> bool>(
    events: &mut Receiver<NetEvent>,
    f: F,
) -> NetEvent {
    timeout(Duration::from_secs(10), async {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dht_direct_and_gossip_over_loopback() {
    let (a, _a_events) = node(None).await;
    let (b, mut b_events) = node(Some(&a)).await;
    let (c, mut c_events) = node(Some(&a)).await;
    next_matching(
        &mut b_events,
        |e| matches!(e, NetEvent::Peer(PeerEvent::Connected(p)) if *p == a.local_peer_id()),
    )
    .await;
    next_matching(
        &mut c_events,
        |e| matches!(e, NetEvent::Peer(PeerEvent::Connected(p)) if *p == a.local_peer_id()),
    )
    .await;

    // b stores a record; c (which only knows a) finds it through the DHT.
    b.put_record(b"musig2-test:key".to_vec(), b"value".to_vec())
        .await
        .unwrap();
    let found = timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(value) = c.get_record(b"musig2-test:key".to_vec()).await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(found, b"value");

    // c sends b a direct message, given b's address as a signed DHT
    // advertisement would give it (a record does not carry its publisher's address).
    for addr in b.listen_addrs().await.unwrap() {
        c.add_address(b.local_peer_id(), addr).await.unwrap();
    }
    c.send(b.local_peer_id(), b"hello b".to_vec())
        .await
        .unwrap();
    let e = next_matching(&mut b_events, |e| matches!(e, NetEvent::Direct { .. })).await;
    let NetEvent::Direct { peer, payload } = e else {
        unreachable!()
    };
    assert_eq!(
        (peer, payload.as_slice()),
        (c.local_peer_id(), &b"hello b"[..])
    );

    // Oversize messages are refused locally, before anything is sent.
    assert_eq!(
        c.send(b.local_peer_id(), vec![0u8; 200_000]).await,
        Err(musig2_net::NetError::TooLarge {
            size: 200_000,
            limit: 100_000
        })
    );

    // Gossip: everyone subscribes, a publishes, b and c receive it signed by a
    // and accept it (the verdict path itself is tested by
    // `gossip_validation_decides_what_is_forwarded`).
    for h in [&a, &b, &c] {
        h.subscribe("musig2:test").await.unwrap();
    }
    // Gossip is best effort: a publisher floods the peers whose subscription
    // it already knows, so republish until both have one.
    let publisher = a.clone();
    let republish = tokio::spawn(async move {
        for i in 0u32..100 {
            let _ = publisher
                .publish("musig2:test", format!("gossip {i}").into_bytes())
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    for (handle, events) in [(&b, &mut b_events), (&c, &mut c_events)] {
        let e = next_matching(events, |e| matches!(e, NetEvent::Gossip { .. })).await;
        let NetEvent::Gossip {
            data,
            author,
            message_id,
            propagation_source,
            ..
        } = e
        else {
            unreachable!()
        };
        assert!(data.starts_with(b"gossip"));
        assert_eq!(author, Some(a.local_peer_id()));
        handle
            .report_verdict(message_id, propagation_source, Verdict::Accept)
            .await
            .unwrap();
    }
    republish.abort();
    for h in [a, b, c] {
        h.shutdown().await;
    }
}

/// GossipSub validation decides what travels on. A line a → b → c: b's
/// application judges every message (payloads starting with `bad` are
/// rejected, the others accepted) and reports its verdict; c can only hear a
/// through b. A rejected message never reaches c, an accepted one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_validation_decides_what_is_forwarded() {
    const TOPIC: &str = "musig2:validated";
    // c and a are DHT clients, so b's routing table (identify-gated) holds
    // neither and nobody learns of the other through the DHT; a does not
    // listen, so nobody can dial it. c's only path to a is through b.
    let (b, mut b_events) = node(None).await;
    let client = NetConfig {
        dht_server: false,
        ..NetConfig::loopback()
    };
    let (c, mut c_events) = node_with(Some(&b), client.clone()).await;
    let (a, _a_events) = start(
        NodeKeypair::generate_ed25519(),
        NetConfig {
            listen: Vec::new(),
            bootstrap_peers: b.listen_addrs().await.unwrap(),
            ..client
        },
    )
    .await
    .unwrap();
    for h in [&a, &b, &c] {
        h.subscribe(TOPIC).await.unwrap();
    }

    // b's application: every gossip message is judged and the verdict reported.
    let rejected_by_b = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let judge = {
        let (b, rejected) = (b.clone(), rejected_by_b.clone());
        tokio::spawn(async move {
            while let Some(e) = b_events.recv().await {
                if let NetEvent::Gossip {
                    message_id,
                    propagation_source,
                    data,
                    ..
                } = e
                {
                    let verdict = if data.starts_with(b"bad") {
                        rejected.lock().unwrap().push(data);
                        Verdict::Reject
                    } else {
                        Verdict::Accept
                    };
                    b.report_verdict(message_id, propagation_source, verdict)
                        .await
                        .unwrap();
                }
            }
        })
    };

    // Everything c hears on the topic, until `until` arrives.
    async fn heard_until(
        events: &mut Receiver<NetEvent>,
        c: &NetHandle,
        until: impl Fn(&[u8]) -> bool,
    ) -> Vec<(Vec<u8>, PeerId, Option<PeerId>)> {
        let mut heard = Vec::new();
        timeout(Duration::from_secs(20), async {
            loop {
                let e = events.recv().await.expect("event queue closed");
                if let NetEvent::Gossip {
                    message_id,
                    propagation_source,
                    author,
                    data,
                    ..
                } = e
                {
                    c.report_verdict(message_id, propagation_source, Verdict::Accept)
                        .await
                        .unwrap();
                    let done = until(&data);
                    heard.push((data, propagation_source, author));
                    if done {
                        return;
                    }
                }
            }
        })
        .await
        .expect("c never heard an accepted message");
        heard
    }

    // Until the mesh a → b → c has formed: pairs of a bad and a good message.
    let publisher = a.clone();
    let warm_up = tokio::spawn(async move {
        for i in 0u32..150 {
            for kind in ["bad", "good"] {
                let _ = publisher
                    .publish(TOPIC, format!("{kind} {i}").into_bytes())
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut heard = heard_until(&mut c_events, &c, |d| d.starts_with(b"good")).await;
    warm_up.abort();
    // Now a pair on the formed path: b sees the bad one first (one stream
    // from a, one judge), so had b let it through, c would hear it before
    // the good one.
    a.publish(TOPIC, b"bad final".to_vec()).await.unwrap();
    a.publish(TOPIC, b"good final".to_vec()).await.unwrap();
    heard.extend(heard_until(&mut c_events, &c, |d| d == b"good final").await);

    for (data, source, author) in &heard {
        assert!(
            !data.starts_with(b"bad"),
            "c heard a message b rejected: {}",
            String::from_utf8_lossy(data)
        );
        assert_eq!(
            (*source, *author),
            (b.local_peer_id(), Some(a.local_peer_id()))
        );
    }
    assert!(
        rejected_by_b
            .lock()
            .unwrap()
            .iter()
            .any(|d| d == b"bad final"),
        "b never judged the bad message"
    );
    // The topology the test relies on held: c and a never met.
    assert!(
        !c.connected_peers()
            .await
            .unwrap()
            .contains(&a.local_peer_id())
    );
    assert_eq!(a.connected_peers().await.unwrap(), vec![b.local_peer_id()]);
    judge.abort();
    for h in [a, b, c] {
        h.shutdown().await;
    }
}

/// Two nodes, the second told where the first is.
async fn pair(
    cfg: NetConfig,
) -> (
    (NetHandle, Receiver<NetEvent>),
    (NetHandle, Receiver<NetEvent>),
) {
    let a = node_with(None, cfg.clone()).await;
    let b = node_with(None, cfg).await;
    for addr in a.0.listen_addrs().await.unwrap() {
        b.0.add_address(a.0.local_peer_id(), addr).await.unwrap();
    }
    (a, b)
}

async fn expect_direct(events: &mut Receiver<NetEvent>, from: &NetHandle, payload: &[u8]) {
    let e = next_matching(events, |e| matches!(e, NetEvent::Direct { .. })).await;
    let NetEvent::Direct { peer, payload: got } = e else {
        unreachable!()
    };
    assert_eq!((peer, got.as_slice()), (from.local_peer_id(), payload));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_arrive_in_order_in_both_directions() {
    let ((a, mut a_events), (b, mut b_events)) = pair(NetConfig::loopback()).await;
    // b dials a by sending; a answers on a stream of its own.
    for i in 0u32..100 {
        b.send(a.local_peer_id(), i.to_be_bytes().to_vec())
            .await
            .unwrap();
    }
    for i in 0u32..100 {
        expect_direct(&mut a_events, &b, &i.to_be_bytes()).await;
    }
    // Concurrent sends to one peer are serialised on its stream, none lost.
    let sends: Vec<_> = (0u32..50)
        .map(|i| {
            let a = a.clone();
            let to = b.local_peer_id();
            tokio::spawn(async move { a.send(to, i.to_be_bytes().to_vec()).await })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..50 {
        let e = next_matching(&mut b_events, |e| matches!(e, NetEvent::Direct { .. })).await;
        let NetEvent::Direct { payload, .. } = e else {
            unreachable!()
        };
        seen.push(u32::from_be_bytes(payload.try_into().unwrap()));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0u32..50).collect::<Vec<_>>());
    let metrics = a.metrics().await.unwrap();
    assert_eq!((metrics.inbound_failures, metrics.direct_busy), (0, 0));
    for h in [a, b] {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_after_the_connection_closed_reconnects() {
    let ((a, mut a_events), (b, mut b_events)) = pair(NetConfig::loopback()).await;
    b.send(a.local_peer_id(), b"one".to_vec()).await.unwrap();
    expect_direct(&mut a_events, &b, b"one").await;
    a.disconnect(b.local_peer_id()).await.unwrap();
    next_matching(
        &mut b_events,
        |e| matches!(e, NetEvent::Peer(PeerEvent::Disconnected(p)) if *p == a.local_peer_id()),
    )
    .await;
    // b's stream died with the connection: the send redials and succeeds.
    b.send(a.local_peer_id(), b"two".to_vec()).await.unwrap();
    expect_direct(&mut a_events, &b, b"two").await;
    for h in [a, b] {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_to_an_unreachable_peer_fails_with_an_error() {
    let (a, _a_events) = node(None).await;
    let stranger = NodeKeypair::generate_ed25519().public().to_peer_id();
    let err = a.send(stranger, b"hello?".to_vec()).await.unwrap_err();
    assert!(
        matches!(err, musig2_net::NetError::Send { .. }),
        "unexpected {err:?}"
    );
    a.shutdown().await;
}
