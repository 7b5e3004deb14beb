//! `lotus-musig2 demo`: N real nodes on loopback sign one message together.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use lotus_musig2::coordinator::CoordinatorConfig;
use lotus_musig2::coordinator::cluster::{LocalCluster, Step};
use lotus_musig2::core::{KeyAggContext, Lotus, schnorr};
use lotus_musig2::election::ElectionMethod;
use lotus_musig2::security::{InputScriptType, SigningMetadata};
use serde_json::json;

use crate::commands::Outcome;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of signers (each a node with its own swarm and TCP port).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=200))]
    signers: u16,
    /// Coordinator election method: lexicographic, hash-based (hash), first-signer (first), last-signer (last).
    #[arg(long, default_value = "lexicographic")]
    election: String,
    /// The 32-byte message to sign, hex (default: SHA-256 of "lotus-musig2 demo").
    #[arg(long, value_name = "HEX32")]
    message: Option<String>,
    /// Sign for the Taproot key path (sighash 0x61) instead of P2PKH (0x41).
    #[arg(long)]
    taproot: bool,
    /// Skip Phase 0 nonce commitments.
    #[arg(long)]
    no_commitments: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn demo(args: &DemoArgs) -> Result<Outcome> {
    let method: ElectionMethod = args
        .election
        .parse()
        .map_err(|e| anyhow::anyhow!("--election: {e}"))?;
    let message: [u8; 32] = match &args.message {
        Some(m) => hex::decode(m)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("--message: expected 32 bytes of hex")?,
        None => lotus_musig2::core::hash::sha256(b"lotus-musig2 demo"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(run(args, method, message))
}

async fn run(args: &DemoArgs, method: ElectionMethod, message: [u8; 32]) -> Result<Outcome> {
    let n = usize::from(args.signers);
    let config = CoordinatorConfig {
        auto_join: true,
        election_method: method,
        enable_nonce_commitment: !args.no_commitments,
        ..CoordinatorConfig::default()
    };
    let started = Instant::now();
    eprintln!("starting a bootstrap node and {n} signer nodes on 127.0.0.1 …");
    let mut cluster = LocalCluster::start(n, config).await?;
    let startup = started.elapsed();
    eprintln!(
        "  {:<18} {:>9.1} ms  (each node knows only the bootstrap node)",
        "nodes up",
        ms(startup)
    );
    // Nodes started together fill their DHT routing tables together, and
    // every new entry makes libp2p-kad bootstrap: wait until that is over,
    // as it is on nodes that have run for a while.
    let settling = Instant::now();
    let settled = cluster.settle().await;
    let settle = settling.elapsed();
    eprintln!(
        "  {:<18} {:>9.1} ms  ({})",
        "dht settled",
        ms(settle),
        if settled {
            "no routing-table change for 1 s"
        } else {
            "gave up waiting"
        }
    );
    let metadata = SigningMetadata {
        input_script_type: Some(if args.taproot {
            InputScriptType::Taproot
        } else {
            InputScriptType::PubKeyHash
        }),
        purpose: Some("lotus-musig2 demo".into()),
        ..SigningMetadata::default()
    };
    let outcome = cluster
        .sign(message, metadata, |step, took| {
            eprintln!("  {:<18} {:>9.1} ms", step.name(), ms(took));
            let _ = std::io::stderr().flush();
        })
        .await?;

    // Check the result independently of the nodes.
    let mut ctx = KeyAggContext::<Lotus>::new_sorted(&cluster.pubkeys())?;
    if args.taproot {
        ctx = ctx.with_taproot_tweak(&[0u8; 32])?;
    }
    if ctx.aggregate_pubkey() != outcome.aggregate_pubkey {
        bail!("the nodes' aggregate key differs from the independently computed one");
    }
    schnorr::verify(
        &ctx.aggregate_pubkey(),
        &message,
        &outcome.signature.signature,
    )
    .context("the final signature does not verify")?;
    eprintln!(
        "signature verified under the aggregate key; coordinator was signer {}",
        outcome.broadcaster
    );
    // Baseline beside it: the same signers' session in one process (crypto only).
    let keypairs: Vec<_> = cluster.nodes.iter().map(|n| n.keypair.clone()).collect();
    let in_process = Instant::now();
    crate::commands::sign_in_process(&keypairs, &message)?;
    let in_process = in_process.elapsed();
    cluster.shutdown().await;

    let mut timings = serde_json::Map::new();
    timings.insert("startup".into(), json!(round(ms(startup))));
    timings.insert("dht_settle".into(), json!(round(ms(settle))));
    for (step, took) in &outcome.timings {
        timings.insert(step.name().into(), json!(round(ms(*took))));
    }
    let session_ms: f64 = outcome.timings.iter().map(|(_, d)| ms(*d)).sum();
    timings.insert("session_total".into(), json!(round(session_ms)));
    let after_discovery: f64 = outcome
        .timings
        .iter()
        .filter(|(s, _)| *s != Step::Announce)
        .map(|(_, d)| ms(*d))
        .sum();
    timings.insert("after_discovery".into(), json!(round(after_discovery)));
    timings.insert("in_process_session".into(), json!(round(ms(in_process))));
    let sighash = outcome.signature.sighash_type.map(|b| format!("{b:02x}"));
    let output = if args.json {
        json!({
            "aggregate_pubkey": outcome.aggregate_pubkey.to_string(),
            "message": hex::encode(message),
            "signature": outcome.signature.signature.to_string(),
            "sighash_type": sighash,
            "signers": n,
            "election": method.to_string(),
            "coordinator_index": outcome.broadcaster,
            "session_id": hex::encode(outcome.session_id),
            "timings_ms": timings,
        })
        .to_string()
    } else {
        let step_lines: Vec<String> = outcome
            .timings
            .iter()
            .map(|(s, d)| format!("  {:<18} {:>9.1} ms", s.name(), ms(*d)))
            .collect();
        format!(
            "aggregate_pubkey  {}\nmessage           {}\nsignature         {}\nsighash_type      {}\ncoordinator       signer {}\nsession timings (after discovery):\n{}\n  {:<18} {:>9.1} ms",
            outcome.aggregate_pubkey,
            hex::encode(message),
            outcome.signature.signature,
            sighash.unwrap_or_else(|| "none".into()),
            outcome.broadcaster,
            step_lines.join("\n"),
            "total",
            session_ms,
        )
    };
    Ok(Outcome { output, code: 0 })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
