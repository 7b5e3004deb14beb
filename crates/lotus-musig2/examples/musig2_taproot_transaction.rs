//! A complete transaction from a MuSig2 Taproot address (lotus-sdk
//! `musig2-taproot-transaction.ts`): three parties hold two coins at their
//! group's P2TR address; the creator builds a transaction that pays a
//! recipient and returns change to the group, and `sign_transaction` signs
//! it over P2P with one MuSig2 session per input. Each request carries the
//! unsigned transaction and its spent outputs: every co-signer decodes it,
//! recomputes the SIGHASH_LOTUS digest itself and checks that the input
//! spends the group's key before it signs (these nodes refuse bare hashes).
//! The result is the fully signed transaction, verified against the outputs
//! it spends.
//!
//! Run: `cargo run -p lotus-musig2 --example musig2_taproot_transaction`
//!
//! An application writes `lotus_musig2::coordinator` and `lotus_musig2::net`
//! (facade features `coordinator` and `net`); this example names those two
//! layers directly (`musig2_coordinator`, `musig2_net`), see `Cargo.toml`.

mod common;

use anyhow::{Result, ensure};
use lotus_musig2::core::{KeyAggContext, Keypair, Lotus};
use lotus_musig2::tx::{
    Address, Destination, KEY_PATH_ONLY, Network, OutPoint, TaprootKey, Transaction, TxId, TxInput,
    TxOutput, script,
};
use musig2_coordinator::cluster::{LocalCluster, drive_rounds};
use musig2_coordinator::{CoordinatorConfig, TransactionSigning};

const XPI: u64 = 1_000_000;

fn main() -> Result<()> {
    common::run(async {
        let config = CoordinatorConfig {
            allow_blind_signing: false,
            ..common::auto_join()
        };
        let cluster = LocalCluster::start(3, config).await?;
        let keys = cluster.pubkeys();

        // 1. The group's Taproot output: internal key = MuSig2 aggregate key.
        let internal = KeyAggContext::<Lotus>::new_sorted(&keys)?.aggregate_pubkey();
        let taproot = TaprootKey::new(&internal, &KEY_PATH_ONLY)?;
        let group_script = taproot.script_pubkey(None);
        let group = Address::new(Network::Livenet, Destination::P2tr(taproot.commitment()));
        println!("group address: {group}");

        // 2. Two coins at that address (in a wallet: UTXOs reported by Chronik).
        let utxos = [
            (
                OutPoint::new(TxId::from_internal_bytes([7; 32]), 0),
                6 * XPI,
            ),
            (
                OutPoint::new(TxId::from_internal_bytes([8; 32]), 1),
                4 * XPI,
            ),
        ];
        let spent: Vec<TxOutput> = utxos
            .iter()
            .map(|(_, amount)| TxOutput::new(*amount, group_script.clone()))
            .collect();
        for (utxo, amount) in &utxos {
            println!("spending {utxo} ({} XPI)", amount / XPI);
        }

        // 3. Pay 8 XPI to a recipient, change back to the group, 1 000 sats fee.
        let recipient = Keypair::random(&mut rand::rng()).public_key();
        let to = Address::p2pkh(Network::Livenet, &recipient);
        let fee = 1_000;
        let tx = Transaction {
            version: 2,
            inputs: utxos
                .iter()
                .map(|(prev_out, _)| TxInput {
                    prev_out: *prev_out,
                    script_sig: Vec::new(),
                    sequence: 0xffff_ffff,
                })
                .collect(),
            outputs: vec![
                TxOutput::new(8 * XPI, script::p2pkh_for_key(&recipient)),
                TxOutput::new(2 * XPI - fee, group_script.clone()),
            ],
            lock_time: 0,
        };
        println!(
            "paying 8 XPI to {to}, {} sats change to the group",
            2 * XPI - fee
        );

        // 4. The co-signers run their rounds as their sessions progress; the
        //    creator (node 0) signs the whole transaction: one transaction
        //    request and one MuSig2 session per input.
        let drivers: Vec<_> = cluster.nodes[1..]
            .iter()
            .map(|n| drive_rounds(n.coordinator.clone()))
            .collect();
        let creator = &cluster.nodes[0];
        let options = TransactionSigning {
            purpose: Some("pay 8 XPI from the group".into()),
            ..TransactionSigning::default()
        };
        println!("signing over P2P, one session per input:");
        let signed = creator
            .coordinator
            .sign_transaction(&tx, &spent, &keys, &creator.keypair, &options)
            .await?;
        for (input, session) in &signed.sessions {
            println!("  input {input}: session {}", hex::encode(session));
        }
        for node in &cluster.nodes[1..] {
            let checked = node.coordinator.counters().transaction_requests_verified;
            println!(
                "  co-signer {}: recomputed {checked} sighashes",
                node.keypair.public_key()
            );
            ensure!(checked == 2, "a co-signer did not check both inputs");
        }

        // 5. Verify the whole transaction (sign_transaction did too).
        let tx = signed.transaction;
        tx.verify(&spent)?;
        let raw = tx.serialize();
        ensure!(
            Transaction::parse(&raw)? == tx,
            "the encoding does not round-trip"
        );
        println!("txid: {}", tx.txid());
        println!(
            "signed transaction ({} bytes): {}",
            raw.len(),
            hex::encode(&raw)
        );
        println!("valid: every input of the transaction verifies; ready to broadcast");
        for d in drivers {
            d.abort();
        }
        cluster.shutdown().await;
        Ok(())
    })
}
