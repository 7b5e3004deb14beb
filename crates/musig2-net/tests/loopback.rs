//! Real swarms on 127.0.0.1: DHT records, direct messages, gossip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use musig2_net::{NetConfig, NetEvent, NetHandle, NodeKeypair, PeerEvent, Verdict, start};
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

    // Oversize messages are refused locally.
    assert!(c.send(b.local_peer_id(), vec![0u8; 200_000]).await.is_err());

    // Gossip: everyone subscribes, a publishes, b and c validate.
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
    for events in [&mut b_events, &mut c_events] {
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
        let _ = (message_id, propagation_source);
    }
    republish.abort();
    let _ = Verdict::Accept;
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
