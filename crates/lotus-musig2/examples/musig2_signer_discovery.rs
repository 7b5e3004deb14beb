//! Signer advertisements and discovery through the DHT (lotus-sdk
//! `musig2-signer-example.ts`): Bob and Charlie each publish a signed
//! advertisement of their signing key (DHT record `musig2-signer:<key>` and
//! GossipSub). Alice's wallet joins the network later, knowing only the
//! bootstrap node and the keys she wants to co-sign with, finds each key's
//! advertisement in the DHT, checks its signature, and learns the peer and
//! addresses to dial. A key that was never advertised is not found.
//!
//! Run: `cargo run -p lotus-musig2 --example musig2_signer_discovery`
//!
//! An application writes `lotus_musig2::coordinator` and `lotus_musig2::net`
//! (facade features `coordinator` and `net`); this example names those two
//! layers directly (`musig2_coordinator`, `musig2_net`), see `Cargo.toml`.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lotus_musig2::core::{Keypair, PublicKey};
use lotus_musig2::security::{Clock, SignerAdvertisement, SystemClock, TransactionType};
use musig2_coordinator::cluster::LocalCluster;
use musig2_coordinator::{Coordinator, CoordinatorConfig, SIGNER_KEY_PREFIX};
use musig2_net::{NetConfig, NodeKeypair};

/// Looks `key` up in the DHT, retrying for up to `patience` (records take a
/// moment to reach the nodes closest to the key), and checks what is found:
/// a well-formed advertisement for this key, signed by it, not expired.
async fn discover(
    alice: &Coordinator,
    key: &PublicKey,
    patience: Duration,
) -> Result<SignerAdvertisement> {
    let record = format!("{SIGNER_KEY_PREFIX}{key}").into_bytes();
    let deadline = Instant::now() + patience;
    let bytes = loop {
        match alice.net().get_record(record.clone()).await {
            Ok(bytes) => break bytes,
            Err(e) if Instant::now() >= deadline => bail!("{key}: not found ({e})"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let ad: SignerAdvertisement = postcard::from_bytes(&bytes).context("not an advertisement")?;
    ensure!(ad.pubkey == *key, "the record advertises another key");
    let now = SystemClock.now_ms();
    alice
        .with_security(|s| s.verify_dht_advertisement(bytes.len(), &ad, now))
        .context("the advertisement does not verify")?;
    Ok(ad)
}

fn main() -> Result<()> {
    common::run(async {
        // Bob and Charlie start, and each advertises its key (for `spend`).
        let cluster = LocalCluster::start(2, CoordinatorConfig::default()).await?;
        for (name, node) in ["bob", "charlie"].iter().zip(&cluster.nodes) {
            println!(
                "{name} advertised {} from peer {}",
                node.keypair.public_key(),
                node.coordinator.local_peer_id()
            );
        }

        // Alice's wallet starts later and knows only the bootstrap node.
        let mut net = NetConfig::loopback();
        net.bootstrap_peers = cluster.bootstrap.listen_addrs().await?;
        let alice = Coordinator::start(
            NodeKeypair::generate_ed25519(),
            net,
            CoordinatorConfig::default(),
        )
        .await?;

        // She looks up each co-signer's key in the DHT.
        for (name, node) in ["bob", "charlie"].iter().zip(&cluster.nodes) {
            let key = node.keypair.public_key();
            let ad = discover(&alice, &key, Duration::from_secs(30)).await?;
            println!("discovered {name}:");
            println!("  key      {}", ad.pubkey);
            println!("  peer     {}", ad.peer_id);
            println!(
                "  address  {}",
                ad.multiaddrs.first().map_or("-", String::as_str)
            );
            let types: Vec<&str> = ad.transaction_types.iter().map(|t| t.as_str()).collect();
            println!("  signs    {}", types.join(", "));
            ensure!(
                ad.peer_id == node.coordinator.local_peer_id().to_string(),
                "{name}'s advertisement names another peer"
            );
            ensure!(
                ad.transaction_types.contains(&TransactionType::Spend),
                "{name} does not sign spends"
            );
        }

        // A key nobody advertised is not found.
        let stranger = Keypair::random(&mut rand::rng()).public_key();
        ensure!(
            discover(&alice, &stranger, Duration::from_secs(2))
                .await
                .is_err(),
            "an unadvertised key was found"
        );
        println!("a key that was never advertised is not found");
        println!("valid: both advertisements found in the DHT, signed by their keys");
        alice.shutdown().await;
        cluster.shutdown().await;
        Ok(())
    })
}
