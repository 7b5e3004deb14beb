//! Five parties, coordinator election and failover (lotus-sdk
//! `musig2-p2p-election-example.ts`): five nodes sign one message; the
//! election (lexicographic here) picks the coordinator that should broadcast
//! and a priority list of backups. The coordinator never broadcasts, so every
//! node's application triggers failover once: the first backup hears that it
//! should broadcast, does so, and its confirmation reaches everyone.
//!
//! Run: `cargo run -p lotus-musig2 --example musig2_p2p_election`
//!
//! An application writes `lotus_musig2::coordinator` and `lotus_musig2::net`
//! (facade features `coordinator` and `net`); this example names those two
//! layers directly (`musig2_coordinator`, `musig2_net`), see `Cargo.toml`.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lotus_musig2::core::key_sort;
use lotus_musig2::election::{ElectionMethod, coordinator_priority_list, elect_coordinator};
use lotus_musig2::security::SigningMetadata;
use lotus_musig2::tx::sha256d;
use musig2_coordinator::cluster::LocalCluster;
use musig2_coordinator::{CoordinatorConfig, CoordinatorEvent};

const WAIT: Duration = Duration::from_secs(60);

fn main() -> Result<()> {
    common::run(async {
        let method = ElectionMethod::Lexicographic;
        let config = CoordinatorConfig {
            election_method: method,
            enable_coordinator_election: true,
            enable_coordinator_failover: true,
            ..common::auto_join()
        };
        let mut cluster = LocalCluster::start(5, config).await?;

        // Everyone can compute the election from the keys alone.
        let sorted = key_sort(&cluster.pubkeys());
        let election = elect_coordinator(&sorted, method)?;
        let priority = coordinator_priority_list(&sorted, method);
        println!(
            "election ({method}): coordinator is signer #{}",
            election.coordinator_index
        );
        println!("priority list (sorted indexes): {priority:?}");
        let node_of = |sorted_index: usize| {
            let key = sorted.get(sorted_index)?;
            cluster
                .nodes
                .iter()
                .position(|n| n.keypair.public_key() == *key)
        };
        let backup_index = *priority.get(1).context("no backup")?;
        let (coordinator, backup) = (
            node_of(election.coordinator_index).context("coordinator node")?,
            node_of(backup_index).context("backup node")?,
        );

        // Sign: announce, join, commitments, round 1, round 2.
        let message = sha256d(b"5-party payment");
        println!("signing:");
        let (session, _) = cluster
            .sign_until_complete(message, SigningMetadata::default(), &mut common::print_step)
            .await?;

        // The elected coordinator hears it should broadcast ...
        cluster.nodes[coordinator]
            .wait_for(WAIT, |e| match e {
                CoordinatorEvent::ShouldBroadcast {
                    session_id,
                    coordinator_index,
                } if *session_id == session => Some(*coordinator_index),
                _ => None,
            })
            .await?;
        println!(
            "signer #{} should broadcast ... and does not",
            election.coordinator_index
        );

        // ... but stays silent: every node's application times out once.
        for node in &cluster.nodes {
            node.coordinator.trigger_coordinator_failover(session)?;
        }
        for node in cluster.nodes.iter_mut() {
            let attempt = node
                .wait_for(WAIT, |e| match e {
                    CoordinatorEvent::CoordinatorFailed {
                        session_id,
                        attempt,
                    } if *session_id == session => Some(*attempt),
                    _ => None,
                })
                .await?;
            ensure!(attempt == 2, "expected attempt 2, got {attempt}");
        }
        ensure!(
            cluster.nodes[backup].coordinator.is_coordinator(session),
            "the first backup is not the coordinator"
        );

        // The backup hears it should broadcast, broadcasts and confirms.
        let index = cluster.nodes[backup]
            .wait_for(WAIT, |e| match e {
                CoordinatorEvent::ShouldBroadcast {
                    session_id,
                    coordinator_index,
                } if *session_id == session => Some(*coordinator_index),
                _ => None,
            })
            .await?;
        ensure!(
            index == backup_index,
            "signer #{index} took over, not #{backup_index}"
        );
        println!("failover: backup signer #{index} broadcasts");
        let signature = cluster.nodes[backup]
            .coordinator
            .get_final_signature(session)?;
        cluster.nodes[backup]
            .coordinator
            .notify_broadcast_complete(session)?;
        for node in cluster.nodes.iter_mut() {
            node.wait_for(WAIT, |e| {
                matches!(e, CoordinatorEvent::BroadcastConfirmed { session_id, .. } if *session_id == session)
                    .then_some(())
            })
            .await?;
        }
        println!("broadcast confirmed at all 5 nodes");

        let aggregate = common::group_key(&cluster.pubkeys(), false)?;
        lotus_musig2::core::schnorr::verify(&aggregate, &message, &signature.signature)?;
        println!("signature: {}", signature.signature);
        println!("valid: the 5-of-5 signature verifies; the backup broadcast it");
        cluster.shutdown().await;
        Ok(())
    })
}
