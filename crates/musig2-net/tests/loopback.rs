//! Real swarms on 127.0.0.1: DHT records, direct messages, gossip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use musig2_net::{NetConfig, NetEvent, NetHandle, NodeKeypair, PeerEvent, Verdict, start};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

async fn node(bootstrap: Option<&NetHandle>) -> (NetHandle, Receiver<NetEvent>) {
    let mut cfg = NetConfig::loopback();
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
