//! 2-of-2 MuSig2 without any network (lotus-sdk `musig2-example.ts`): Alice
//! and Bob aggregate their keys, exchange nonces, sign partially, and anyone
//! combines the partial signatures into one Lotus Schnorr signature that
//! verifies under the aggregate key.
//!
//! Run: `cargo run -p lotus-musig2 --example musig2_basic`

use anyhow::{Result, ensure};
use lotus_musig2::core::{
    KeyAggContext, Keypair, Lotus, NonceGenInputs, SessionContext, key_sort, nonce_agg, nonce_gen,
    partial_sig_verify, schnorr, sign, verify_all_and_aggregate,
};
use lotus_musig2::tx::sha256d;

fn main() -> Result<()> {
    let mut rng = rand::rng();
    let alice = Keypair::random(&mut rng);
    let bob = Keypair::random(&mut rng);

    // 1. Key aggregation: sort the keys (as lotus-sdk does) and aggregate.
    //    A signer's index is its key's position in the sorted list.
    let keys = key_sort(&[alice.public_key(), bob.public_key()]);
    let ctx = KeyAggContext::<Lotus>::new(&keys)?;
    let aggregate = ctx.aggregate_pubkey();
    let signers: Vec<(&str, &Keypair)> = keys
        .iter()
        .map(|k| {
            if *k == alice.public_key() {
                ("alice", &alice)
            } else {
                ("bob", &bob)
            }
        })
        .collect();
    println!("aggregate key: {aggregate}");

    // 2. The message: in a wallet, a transaction's sighash (32 bytes).
    let message = sha256d(b"Transaction sighash to sign");

    // 3. Round 1: every signer makes a fresh secret nonce and publishes its
    //    public nonce.
    let agg_pk = ctx.nonce_gen_agg_pk();
    let (secnonces, pubnonces): (Vec<_>, Vec<_>) = signers
        .iter()
        .map(|(_, kp)| {
            nonce_gen(
                &mut rng,
                kp.public_key(),
                NonceGenInputs {
                    secret_key: Some(kp.secret_key()),
                    aggregate_pubkey: Some(&agg_pk),
                    message: Some(&message),
                    extra_input: None,
                },
            )
        })
        .unzip();

    // 4. Round 2: every signer signs; its secret nonce is consumed.
    let session = SessionContext::new(&ctx, &nonce_agg(&pubnonces), &message)?;
    let mut psigs = Vec::new();
    for (index, ((name, kp), secnonce)) in signers.iter().zip(secnonces).enumerate() {
        let psig = sign(secnonce, kp, index, &session)?;
        println!(
            "{name}'s partial signature: {}",
            hex::encode(psig.to_bytes())
        );
        psigs.push(psig);
    }

    // 5. Anyone checks each partial signature (a bad one names its signer),
    //    then aggregates.
    for (index, (psig, pubnonce)) in psigs.iter().zip(&pubnonces).enumerate() {
        partial_sig_verify(&session, psig, pubnonce, index)?;
    }
    let signature = verify_all_and_aggregate(&session, &psigs, &pubnonces)?;
    println!("signature: {signature}");

    // 6. It is an ordinary Lotus Schnorr signature under the aggregate key.
    schnorr::verify(&aggregate, &message, &signature)?;
    ensure!(
        schnorr::verify(&alice.public_key(), &message, &signature).is_err(),
        "the signature must not verify under one signer's key"
    );
    println!("valid: the 2-of-2 signature verifies under the aggregate key");
    Ok(())
}
