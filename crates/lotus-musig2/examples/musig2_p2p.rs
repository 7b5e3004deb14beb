//! Two nodes on loopback sign one message over libp2p (lotus-sdk
//! `musig2-p2p-example.ts`): each node has its own swarm and TCP port and
//! knows only a bootstrap node; they find each other through the DHT, Alice
//! announces a signing request, Bob joins, and both run nonce commitments,
//! round 1 and round 2. The elected coordinator "broadcasts".
//!
//! Run: `cargo run -p lotus-musig2 --example musig2_p2p`
//!
//! An application writes `lotus_musig2::coordinator` and `lotus_musig2::net`
//! (facade features `coordinator` and `net`); this example names those two
//! layers directly (`musig2_coordinator`, `musig2_net`), see `Cargo.toml`.

mod common;

use anyhow::Result;
use lotus_musig2::security::{SigningMetadata, TransactionType};
use lotus_musig2::tx::sha256d;
use musig2_coordinator::cluster::LocalCluster;

fn main() -> Result<()> {
    common::run(async {
        // Alice and Bob: two nodes with fresh keys, each advertised in the DHT.
        let mut cluster = LocalCluster::start(2, common::auto_join()).await?;
        for (name, node) in ["alice", "bob"].iter().zip(&cluster.nodes) {
            println!(
                "{name}: peer {} key {}",
                node.coordinator.local_peer_id(),
                node.keypair.public_key()
            );
        }

        // Alice asks for both keys to sign a 32-byte message (a sighash).
        let message = sha256d(b"Transaction sighash to sign");
        let metadata = SigningMetadata {
            transaction_type: Some(TransactionType::Spend),
            amount: Some(1_000_000),
            purpose: Some("2-of-2 multisig payment".into()),
            ..SigningMetadata::default()
        };
        println!("signing:");
        let outcome = cluster.sign(message, metadata, common::print_step).await?;
        println!("aggregate key: {}", outcome.aggregate_pubkey);
        println!("signature:     {}", outcome.signature.signature);
        println!("broadcast by signer #{}", outcome.broadcaster);

        // Verify against the aggregate key computed without the network.
        common::check_outcome(&cluster, &message, false, &outcome)?;
        println!("valid: the signature verifies under the 2-of-2 aggregate key");
        cluster.shutdown().await;
        Ok(())
    })
}
