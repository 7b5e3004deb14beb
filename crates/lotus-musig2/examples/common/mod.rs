//! Helpers shared by the P2P examples (not an example itself).
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lotus_musig2::core::{KeyAggContext, Lotus, PublicKey, schnorr};
use lotus_musig2::tx::{KEY_PATH_ONLY, TaprootKey};
use musig2_coordinator::CoordinatorConfig;
use musig2_coordinator::cluster::{LocalCluster, SigningOutcome, Step};

/// The whole example must finish within this time, or it fails.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// A node configuration for examples: every node joins the requests that
/// name its key (the default join policy) as soon as they arrive.
pub fn auto_join() -> CoordinatorConfig {
    CoordinatorConfig {
        auto_join: true,
        ..CoordinatorConfig::default()
    }
}

/// Prints one step of [`LocalCluster::sign`].
pub fn print_step(step: Step, took: Duration) {
    println!("  {:<18} {:>6.1} ms", step.name(), took.as_secs_f64() * 1e3);
}

/// The group's key computed without the network: the MuSig2 aggregate of
/// the signers' keys (sorted, Lotus flavor), or its key-path Taproot
/// commitment.
pub fn group_key(keys: &[PublicKey], taproot: bool) -> Result<PublicKey> {
    let aggregate = KeyAggContext::<Lotus>::new_sorted(keys)?.aggregate_pubkey();
    if taproot {
        return Ok(TaprootKey::new(&aggregate, &KEY_PATH_ONLY)?.commitment());
    }
    Ok(aggregate)
}

/// Checks a signing outcome against the key computed independently of the
/// nodes: same aggregate key, and the signature verifies over `message`.
pub fn check_outcome(
    cluster: &LocalCluster,
    message: &[u8; 32],
    taproot: bool,
    outcome: &SigningOutcome,
) -> Result<()> {
    let expected = group_key(&cluster.pubkeys(), taproot)?;
    ensure!(
        outcome.aggregate_pubkey == expected,
        "the nodes' aggregate key {} is not {expected}",
        outcome.aggregate_pubkey
    );
    schnorr::verify(&expected, message, &outcome.signature.signature)
        .context("the final signature does not verify")?;
    Ok(())
}

/// Runs `body` on a multi-threaded runtime with the example deadline.
pub fn run<F>(body: F) -> Result<()>
where
    F: std::future::Future<Output = Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(DEADLINE, body)
            .await
            .context("the example did not finish in time")?
    })
}
