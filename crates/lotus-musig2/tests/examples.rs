//! Runs every example as a user does (`cargo run -p lotus-musig2 --example
//! NAME`) and requires it to succeed: each example ends by verifying its own
//! result and exits non-zero when that fails, so CI runs them all.
//!
//! The examples run one at a time (the P2P ones start several nodes each).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run_example(name: &str) {
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = Command::new(env!("CARGO"))
        .args(["run", "-q", "-p", "lotus-musig2", "--example", name])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("valid"),
        "example {name} did not end by reporting its verification: {last:?}"
    );
}

#[test]
fn musig2_basic() {
    run_example("musig2_basic");
}

#[test]
fn musig2_session() {
    run_example("musig2_session");
}

#[test]
fn musig2_p2p() {
    run_example("musig2_p2p");
}

#[test]
fn musig2_p2p_election() {
    run_example("musig2_p2p_election");
}

#[test]
fn musig2_p2p_taproot() {
    run_example("musig2_p2p_taproot");
}

#[test]
fn musig2_three_phase() {
    run_example("musig2_three_phase");
}

#[test]
fn musig2_taproot_transaction() {
    run_example("musig2_taproot_transaction");
}

#[test]
fn musig2_signer_discovery() {
    run_example("musig2_signer_discovery");
}

/// Every example file has a test above.
#[test]
fn every_example_is_run() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let source = include_str!("examples.rs");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                source.contains(&format!("run_example(\"{name}\")")),
                "example {name} is not run by tests/examples.rs"
            );
        }
    }
}
