//! A complete transaction from a MuSig2 Taproot output (lotus-sdk
//! `musig2-taproot-transaction.ts`): three parties hold coins at their
//! group's P2TR address; they build a transaction that pays a recipient and
//! returns change to the group, compute its SIGHASH_LOTUS digest, sign that
//! digest over P2P, place the signature in the input, and verify the whole
//! transaction against the output it spends.
//!
//! Run: `cargo run -p lotus-musig2 --example musig2_taproot_transaction`
//!
//! An application writes `lotus_musig2::coordinator` and `lotus_musig2::net`
//! (facade features `coordinator` and `net`); this example names those two
//! layers directly (`musig2_coordinator`, `musig2_net`), see `Cargo.toml`.

mod common;

use anyhow::{Context, Result, ensure};
use lotus_musig2::core::{KeyAggContext, Keypair, Lotus};
use lotus_musig2::security::{InputScriptType, SigningMetadata, TransactionType};
use lotus_musig2::tx::{
    Address, Destination, KEY_PATH_ONLY, Network, OutPoint, SighashType, TaprootKey, Transaction,
    TxInput, TxOutput, script,
};
use musig2_coordinator::cluster::LocalCluster;

const XPI: u64 = 1_000_000;

fn main() -> Result<()> {
    common::run(async {
        let mut cluster = LocalCluster::start(3, common::auto_join()).await?;

        // 1. The group's Taproot output: internal key = MuSig2 aggregate key.
        let internal = KeyAggContext::<Lotus>::new_sorted(&cluster.pubkeys())?.aggregate_pubkey();
        let taproot = TaprootKey::new(&internal, &KEY_PATH_ONLY)?;
        let group_script = taproot.script_pubkey(None);
        let group = Address::new(Network::Livenet, Destination::P2tr(taproot.commitment()));
        println!("group address: {group}");

        // 2. A transaction that funded the group with 10 XPI (in a wallet: a
        //    UTXO reported by Chronik). Its output 0 is what we spend.
        let funding = Transaction {
            version: 2,
            inputs: vec![TxInput {
                prev_out: OutPoint::new(lotus_musig2::tx::TxId::from_internal_bytes([7; 32]), 0),
                script_sig: Vec::new(),
                sequence: 0xffff_ffff,
            }],
            outputs: vec![TxOutput::new(10 * XPI, group_script.clone())],
            lock_time: 0,
        };
        let utxo = OutPoint::new(funding.txid(), 0);
        let spent = vec![TxOutput::new(10 * XPI, group_script.clone())];
        println!("spending {utxo} (10 XPI)");

        // 3. Pay 3 XPI to a recipient, change back to the group, 1 000 sats fee.
        let recipient = Keypair::random(&mut rand::rng()).public_key();
        let to = Address::p2pkh(Network::Livenet, &recipient);
        let fee = 1_000;
        let mut tx = Transaction {
            version: 2,
            inputs: vec![TxInput {
                prev_out: utxo,
                script_sig: Vec::new(),
                sequence: 0xffff_ffff,
            }],
            outputs: vec![
                TxOutput::new(3 * XPI, script::p2pkh_for_key(&recipient)),
                TxOutput::new(7 * XPI - fee, group_script.clone()),
            ],
            lock_time: 0,
        };
        println!(
            "paying 3 XPI to {to}, {} sats change to the group",
            7 * XPI - fee
        );

        // 4. The message: input 0's SIGHASH_ALL|SIGHASH_LOTUS digest.
        let sighash_type = SighashType::ALL_LOTUS;
        let sighash = tx.sighash(0, &spent, sighash_type)?;
        println!("sighash: {sighash}");

        // 5. Sign it over P2P as a Taproot input.
        let metadata = SigningMetadata {
            input_script_type: Some(InputScriptType::Taproot),
            transaction_type: Some(TransactionType::Spend),
            amount: Some(3 * XPI),
            purpose: Some("pay 3 XPI from the group".into()),
            ..SigningMetadata::default()
        };
        println!("signing over P2P:");
        let outcome = cluster
            .sign(sighash.to_bytes(), metadata, common::print_step)
            .await?;
        ensure!(
            outcome.aggregate_pubkey == taproot.commitment(),
            "signed under the wrong key"
        );
        let sighash_byte = outcome.signature.sighash_type.context("no sighash type")?;
        ensure!(
            sighash_byte == sighash_type.to_u8(),
            "sighash type {sighash_byte:#x}"
        );

        // 6. Place the signature (lotus-tx checks the output is ours and
        //    verifies the input), then verify the whole transaction.
        tx.set_taproot_key_path_signature(0, &spent, sighash_type, &outcome.signature.signature)?;
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
        cluster.shutdown().await;
        Ok(())
    })
}
