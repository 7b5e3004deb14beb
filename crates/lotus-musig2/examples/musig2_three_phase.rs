//! Advertisement, matchmaking, signing (lotus-sdk
//! `musig2-three-phase-example.ts`). Alice wants two co-signers for a 5 XPI
//! spend but does not know anyone's key:
//!
//! * Phase 0, advertisement: Bob and Charlie publish signed advertisements
//!   of their keys on the `spend` GossipSub topic (and in the DHT).
//! * Phase 1, matchmaking: Alice listens to the `spend` topic and takes the
//!   signers she discovers.
//! * Phase 2, signing: Alice announces a request for her key and the
//!   discovered keys; Bob and Charlie receive it, join, and all three sign.
//!
//! Run: `cargo run -p lotus-musig2 --example musig2_three_phase`
//!
//! An application writes `lotus_musig2::coordinator` and `lotus_musig2::net`
//! (facade features `coordinator` and `net`); this example names those two
//! layers directly (`musig2_coordinator`, `musig2_net`), see `Cargo.toml`.

mod common;

use std::time::Duration;

use anyhow::{Result, ensure};
use lotus_musig2::core::{PublicKey, key_sort};
use lotus_musig2::security::{SecurityConfig, SigningMetadata, TransactionType};
use lotus_musig2::tx::sha256d;
use musig2_coordinator::cluster::LocalCluster;
use musig2_coordinator::{CoordinatorConfig, CoordinatorEvent};

const XPI: u64 = 1_000_000;

fn main() -> Result<()> {
    common::run(async {
        // Demo setting (as lotus-sdk's example disables rate limiting): let a
        // signer re-advertise more often than once a minute.
        let mut security = SecurityConfig::default();
        security.min_advertisement_interval_ms = 0;
        let config = CoordinatorConfig {
            security,
            ..CoordinatorConfig::default()
        };
        // Node 0 is Alice; Bob and Charlie are nodes 1 and 2. Alice dials them
        // (in a wallet: peers found through the bootstrap node).
        let mut cluster = LocalCluster::start(3, config).await?;
        for node in &cluster.nodes[1..] {
            if let Some(addr) = node.coordinator.multiaddrs().await?.into_iter().next() {
                cluster.nodes[0].coordinator.connect_to(addr).await?;
            }
        }

        // Phase 0 and 1: Bob and Charlie advertise (again every 250 ms, until
        // Alice has heard them: gossip reaches her once her subscription is
        // known to them); Alice collects the `spend` signers she discovers.
        println!("--- phase 0: advertisement / phase 1: matchmaking ---");
        let mut found: Vec<PublicKey> = Vec::new();
        for _ in 0..120 {
            if found.len() == 2 {
                break;
            }
            for node in &cluster.nodes[1..] {
                let key = node.keypair.public_key();
                if !found.contains(&key) {
                    node.coordinator
                        .advertise_signer(
                            &node.keypair,
                            vec![TransactionType::Spend],
                            Duration::from_secs(3600),
                        )
                        .await?;
                }
            }
            let discovered = cluster.nodes[0]
                .wait_for(Duration::from_millis(250), |e| match e {
                    CoordinatorEvent::SignerDiscovered(ad)
                        if ad.transaction_types.contains(&TransactionType::Spend) =>
                    {
                        Some(ad.clone())
                    }
                    _ => None,
                })
                .await;
            if let Ok(ad) = discovered {
                println!(
                    "alice discovered {} (peer {}), signs: spend",
                    ad.pubkey, ad.peer_id
                );
                if !found.contains(&ad.pubkey) {
                    found.push(ad.pubkey);
                }
            }
        }
        let others: Vec<PublicKey> = cluster.nodes[1..]
            .iter()
            .map(|n| n.keypair.public_key())
            .collect();
        ensure!(
            key_sort(&found) == key_sort(&others),
            "alice discovered {} of the 2 co-signers",
            found.len()
        );

        // Phase 2: Alice asks for her key and the two discovered keys (the
        // cluster's three keys); Bob and Charlie receive the verified request
        // and join; all three run the MuSig2 rounds.
        println!("--- phase 2: signing request, joins, MuSig2 rounds ---");
        let message = sha256d(b"Transaction: send 5 XPI to recipient");
        let metadata = SigningMetadata {
            transaction_type: Some(TransactionType::Spend),
            amount: Some(5 * XPI),
            purpose: Some("Send funds to recipient".into()),
            ..SigningMetadata::default()
        };
        let outcome = cluster.sign(message, metadata, common::print_step).await?;
        common::check_outcome(&cluster, &message, false, &outcome)?;
        println!("signature: {}", outcome.signature.signature);
        println!("valid: 3-of-3 signature with co-signers found by matchmaking");
        cluster.shutdown().await;
        Ok(())
    })
}
