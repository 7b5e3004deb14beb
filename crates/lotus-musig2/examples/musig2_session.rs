//! The session state machine driven step by step through the coordinator API
//! (lotus-sdk `musig2-session-example.ts`): on a cluster of two nodes, Alice
//! announces a signing request, Bob sees it and joins, then each node is told
//! to publish its nonce commitment, reveal its nonce (round 1) and sign
//! (round 2) when the previous phase has completed everywhere. The session's
//! phase is printed at each node after each step.
//!
//! Run: `cargo run -p lotus-musig2 --example musig2_session`
//!
//! An application writes `lotus_musig2::coordinator` and `lotus_musig2::net`
//! (facade features `coordinator` and `net`); this example names those two
//! layers directly (`musig2_coordinator`, `musig2_net`), see `Cargo.toml`.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lotus_musig2::security::SigningMetadata;
use lotus_musig2::tx::sha256d;
use musig2_coordinator::cluster::{ClusterNode, LocalCluster};
use musig2_coordinator::{CoordinatorConfig, CoordinatorEvent, SessionId};

const WAIT: Duration = Duration::from_secs(60);

/// Prints each node's phase of the session.
fn print_phases(nodes: &[ClusterNode], session: SessionId, after: &str) {
    let phases: Vec<String> = nodes
        .iter()
        .map(|n| match n.coordinator.get_session(session) {
            Some(info) => format!("{:?}", info.phase),
            None => "closed".into(),
        })
        .collect();
    println!(
        "after {after:<22} alice: {:<20} bob: {}",
        phases[0], phases[1]
    );
}

/// Waits at every node for the event `pick` accepts.
async fn at_every_node(
    nodes: &mut [ClusterNode],
    pick: impl Fn(&CoordinatorEvent) -> bool,
) -> Result<()> {
    for node in nodes {
        node.wait_for(WAIT, |e| pick(e).then_some(())).await?;
    }
    Ok(())
}

fn main() -> Result<()> {
    common::run(async {
        // Joining is the application's decision here (auto_join off).
        let mut cluster = LocalCluster::start(2, CoordinatorConfig::default()).await?;
        let keys = cluster.pubkeys();
        let message = sha256d(b"session state machine");

        // Announce: Alice creates and signs the request.
        let [alice, bob] = cluster.nodes.as_mut_slice() else {
            anyhow::bail!("two nodes expected");
        };
        let request = alice
            .coordinator
            .announce_signing_request(&keys, message, &alice.keypair, SigningMetadata::default())
            .await?;
        println!("alice announced request {}", hex::encode(request));

        // Join: Bob receives the (verified) request and decides to join.
        let received = bob
            .wait_for(WAIT, |e| match e {
                CoordinatorEvent::SigningRequestReceived { announcement } => {
                    Some(announcement.request_id)
                }
                _ => None,
            })
            .await?;
        ensure!(received == request, "bob received another request");
        let session = bob
            .coordinator
            .join_signing_request(request, &bob.keypair)
            .await?;
        println!("bob joined; session {}", hex::encode(session));
        at_every_node(&mut cluster.nodes, |e| {
            matches!(e, CoordinatorEvent::SessionReady { session_id, .. } if *session_id == session)
        })
        .await?;
        print_phases(&cluster.nodes, session, "every join");

        // Phase 0: nonce commitments (the creator's request asks for them).
        let commitments = cluster.nodes[0]
            .coordinator
            .get_session(session)
            .context("alice's session")?
            .nonce_commitments;
        if commitments {
            for node in &cluster.nodes {
                node.coordinator.publish_nonce_commitments(session)?;
            }
            at_every_node(
                &mut cluster.nodes,
                |e| matches!(e, CoordinatorEvent::NonceCommitmentsComplete(id) if *id == session),
            )
            .await?;
            print_phases(&cluster.nodes, session, "nonce commitments");
        }

        // Round 1: reveal nonces.
        for node in &cluster.nodes {
            node.coordinator.start_round1(session)?;
        }
        at_every_node(
            &mut cluster.nodes,
            |e| matches!(e, CoordinatorEvent::Round1Complete(id) if *id == session),
        )
        .await?;
        print_phases(&cluster.nodes, session, "round 1 (nonces)");

        // Round 2: partial signatures; every node aggregates and verifies.
        for node in &cluster.nodes {
            node.coordinator.start_round2(session)?;
        }
        at_every_node(&mut cluster.nodes, |e| {
            matches!(e, CoordinatorEvent::SessionComplete { session_id, .. } if *session_id == session)
        })
        .await?;
        print_phases(&cluster.nodes, session, "round 2 (signatures)");

        // The elected coordinator broadcasts and tells the others.
        let coordinator = cluster
            .nodes
            .iter()
            .position(|n| n.coordinator.is_coordinator(session))
            .context("no coordinator")?;
        cluster.nodes[coordinator]
            .coordinator
            .notify_broadcast_complete(session)?;
        at_every_node(
            &mut cluster.nodes,
            |e| matches!(e, CoordinatorEvent::BroadcastConfirmed { session_id, .. } if *session_id == session),
        )
        .await?;
        print_phases(&cluster.nodes, session, "broadcast confirmed");

        // Both nodes hold the same signature, valid under the aggregate key.
        let signatures: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| n.coordinator.get_final_signature(session))
            .collect::<Result<_, _>>()?;
        ensure!(signatures[0] == signatures[1], "the nodes disagree");
        let aggregate = common::group_key(&keys, false)?;
        lotus_musig2::core::schnorr::verify(&aggregate, &message, &signatures[0].signature)?;
        println!("signature: {}", signatures[0].signature);
        println!("valid: both nodes hold the same signature under the aggregate key");
        cluster.shutdown().await;
        Ok(())
    })
}
