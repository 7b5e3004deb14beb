//! MuSig2 for a Taproot key-path spend over P2P (lotus-sdk
//! `musig2-p2p-taproot-example.ts`): three nodes sign with
//! `input_script_type: Taproot` in the request's metadata, so every node
//! signs under the Taproot commitment key `Q = P + H_TapTweak(P ‖ 0³²)·G` of
//! the aggregate key `P`, and the signature carries SIGHASH_ALL|SIGHASH_LOTUS
//! (0x61). Prints the group's P2TR address (XAddress).
//!
//! Run: `cargo run -p lotus-musig2 --example musig2_p2p_taproot`
//!
//! An application writes `lotus_musig2::coordinator` and `lotus_musig2::net`
//! (facade features `coordinator` and `net`); this example names those two
//! layers directly (`musig2_coordinator`, `musig2_net`), see `Cargo.toml`.

mod common;

use anyhow::{Result, ensure};
use lotus_musig2::core::{KeyAggContext, Lotus};
use lotus_musig2::security::{InputScriptType, SigningMetadata};
use lotus_musig2::tx::{
    Address, Destination, KEY_PATH_ONLY, Network, SighashType, TaprootKey, sha256d,
};
use musig2_coordinator::cluster::LocalCluster;

fn main() -> Result<()> {
    common::run(async {
        let mut cluster = LocalCluster::start(3, common::auto_join()).await?;

        // The group's Taproot output, computed by anyone from the three keys.
        let internal = KeyAggContext::<Lotus>::new_sorted(&cluster.pubkeys())?.aggregate_pubkey();
        let taproot = TaprootKey::new(&internal, &KEY_PATH_ONLY)?;
        let address = Address::new(Network::Livenet, Destination::P2tr(taproot.commitment()));
        println!("internal (aggregate) key: {internal}");
        println!("Taproot commitment key:   {}", taproot.commitment());
        println!("P2TR address:             {address}");
        println!(
            "script:                   {}",
            hex::encode(taproot.script_pubkey(None))
        );

        // Sign a (here made-up) key-path sighash as a Taproot input.
        let message = sha256d(b"taproot key-path sighash");
        let metadata = SigningMetadata {
            input_script_type: Some(InputScriptType::Taproot),
            ..SigningMetadata::default()
        };
        println!("signing:");
        let outcome = cluster.sign(message, metadata, common::print_step).await?;

        // The nodes signed under Q, with the LOTUS sighash type.
        ensure!(
            outcome.aggregate_pubkey == taproot.commitment(),
            "the nodes signed under {}, not the commitment key",
            outcome.aggregate_pubkey
        );
        ensure!(
            outcome.signature.sighash_type == Some(SighashType::ALL_LOTUS.to_u8()),
            "sighash type {:?}, expected 0x61",
            outcome.signature.sighash_type
        );
        common::check_outcome(&cluster, &message, true, &outcome)?;
        ensure!(
            lotus_musig2::core::schnorr::verify(&internal, &message, &outcome.signature.signature)
                .is_err(),
            "a key-path signature must not verify under the untweaked key"
        );
        println!(
            "signature (65 bytes, as in a scriptSig): {}",
            hex::encode(outcome.signature.to_tx_bytes())
        );
        println!("valid: the signature verifies under the Taproot commitment of {address}");
        cluster.shutdown().await;
        Ok(())
    })
}
