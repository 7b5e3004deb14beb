//! The worked examples in `docs/ANNOUNCEMENTS.md` are what this crate
//! computes, and every test named in `docs/SECURITY.md` exists.

use anyhow::{Result, anyhow, ensure};
use musig2_core::{Keypair, SecretKey};
use musig2_security::Signed;
use musig2_security::announcement::unsigned;
use musig2_security::phase::phase_table_markdown;
use musig2_security::{
    InputScriptType, SessionAnnouncement, SessionRequest, SignerAdvertisement, SigningMetadata,
    TransactionType, lotus_sdk_session_id,
};

const ANNOUNCEMENTS_MD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/ANNOUNCEMENTS.md"
));
const SECURITY_MD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/SECURITY.md"
));

fn keypair(byte: u8) -> Result<Keypair> {
    Ok(Keypair::new(SecretKey::from_bytes(&[byte; 32])?))
}

/// The session announcement of the worked example.
fn example_announcement() -> Result<SessionAnnouncement> {
    let creator = keypair(0x01)?;
    let other = keypair(0x02)?;
    SessionAnnouncement::new_signed(
        SessionRequest {
            signers: vec![other.public_key(), creator.public_key()],
            message: [0x5a; 32],
            creator_peer_id: "12D3KooWCreator".into(),
            creator_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            metadata: SigningMetadata {
                input_script_type: Some(InputScriptType::Taproot),
                sighash_type: Some(0x61),
                transaction_type: Some(TransactionType::Spend),
                amount: Some(150_000),
                purpose: Some("rent".into()),
            },
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: 1_764_000_000_000,
            expires_at: 1_764_000_600_000,
            request_nonce: [0x07; 32],
        },
        &creator,
    )
    .map_err(|v| anyhow!("{v}"))
}

/// The signer advertisement of the worked example.
fn example_advertisement() -> Result<SignerAdvertisement> {
    Ok(SignerAdvertisement::new_signed(
        &keypair(0x03)?,
        "12D3KooWSigner",
        vec!["/ip4/10.0.0.1/tcp/4001".into()],
        vec![TransactionType::Spend, TransactionType::Swap],
        1_764_000_000_000,
        1_764_003_600_000,
    ))
}

/// `name = value` lines that the document must contain, in a fenced block.
fn documented(name: &str, value: &str) -> Result<()> {
    let line = format!("{name} = {value}");
    ensure!(
        ANNOUNCEMENTS_MD.contains(&line),
        "docs/ANNOUNCEMENTS.md is missing or disagrees on:\n{line}"
    );
    Ok(())
}

/// Hex split into 64-character lines, as the document prints long values.
fn wrapped(bytes: &[u8]) -> String {
    let hex = hex::encode(bytes);
    hex.as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn announcement_example_matches_the_document() -> Result<()> {
    let a = example_announcement()?;
    documented("creator_pubkey", &a.creator_pubkey.to_string())?;
    documented("request_id", &hex::encode(a.request_id))?;
    documented("session_id", &a.session_id().to_string())?;
    documented("digest", &hex::encode(a.digest()))?;
    documented("signature", &a.signature.to_string())?;
    documented(
        "lotus_sdk_session_id",
        &lotus_sdk_session_id(&a.required_pubkeys, &a.message),
    )?;
    let block = format!("```text\n{}\n```", wrapped(&a.signing_bytes()));
    ensure!(
        ANNOUNCEMENTS_MD.contains(&block),
        "signing bytes of the announcement example:\n{block}"
    );
    ensure!(a.verify_signature().is_ok());
    Ok(())
}

#[test]
fn advertisement_example_matches_the_document() -> Result<()> {
    let ad = example_advertisement()?;
    documented("pubkey", &ad.pubkey.to_string())?;
    documented("advertisement_digest", &hex::encode(ad.digest()))?;
    documented("advertisement_signature", &ad.signature.to_string())?;
    let block = format!("```text\n{}\n```", wrapped(&ad.signing_bytes()));
    ensure!(
        ANNOUNCEMENTS_MD.contains(&block),
        "signing bytes of the advertisement example:\n{block}"
    );
    ensure!(ad.verify_signature().is_ok());
    ensure!(unsigned().to_bytes() == [0u8; 64]);
    Ok(())
}

#[test]
fn security_doc_shows_the_phase_table() -> Result<()> {
    let table = phase_table_markdown();
    ensure!(
        SECURITY_MD.contains(&table),
        "docs/SECURITY.md must contain the phase table:\n{table}"
    );
    Ok(())
}

/// Whether `sources` define `name` as a test function: a `fn name(` whose
/// attributes (the lines just above it, past doc comments and other
/// attributes) include `#[test]` or `#[tokio::test…]`. A `proptest!` case is
/// written with `#[test]` too; a helper `fn` of the same name does not count.
fn is_test_fn(sources: &str, name: &str) -> bool {
    let lines: Vec<&str> = sources.lines().collect();
    let needle = format!("fn {name}(");
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.contains(&needle))
        .any(|(at, _)| {
            for line in lines[..at].iter().rev().map(|l| l.trim()) {
                if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                    return true;
                }
                if !(line.starts_with("#[") || line.starts_with("//") || line.is_empty()) {
                    return false;
                }
            }
            false
        })
}

#[test]
fn test_functions_are_told_from_helpers() {
    let source = "#[test]\n/// Doc.\nfn a_test() {}\n\nfn helper() {}\n\n#[tokio::test(flavor = \"multi_thread\")]\n#[allow(unused)]\nasync fn a_tokio_test() {}\n\nproptest! {\n    #[test]\n    fn a_property(x in 0u8..) {}\n}\n#[cfg(test)]\nfn test_only_helper() {}\n";
    for name in ["a_test", "a_tokio_test", "a_property"] {
        assert!(is_test_fn(source, name), "{name}");
    }
    for name in ["helper", "test_only_helper", "missing"] {
        assert!(!is_test_fn(source, name), "{name}");
    }
}

/// The tests that run real nodes: the workspace's adversarial suite and
/// signing scenarios, and musig2-net's loopback attacks.
const LIVE_PATH_TESTS: &str = concat!(
    include_str!("../../../tests/adversarial.rs"),
    include_str!("../../../tests/adversarial/accountability.rs"),
    include_str!("../../../tests/adversarial/strangers.rs"),
    include_str!("../../../tests/p2p_signing.rs"),
    include_str!("../../musig2-net/tests/adversarial.rs"),
    include_str!("../../lotus-musig2-cli/tests/identities.rs"),
);

/// Every attack in the threat table of docs/SECURITY.md that names a proof
/// names at least one test that runs real nodes.
#[test]
fn every_threat_is_proven_on_the_live_path() -> Result<()> {
    let section = SECURITY_MD
        .split("## Threats on the live path")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .ok_or_else(|| anyhow!("docs/SECURITY.md has no threat table"))?;
    let mut rows = 0;
    for line in section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ---"))
    {
        let Some(proof) = line.trim_end_matches('|').rsplit('|').next() else {
            continue;
        };
        let names: Vec<&str> = proof
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|n| {
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        if names.is_empty() || proof.trim_start().starts_with("unit") {
            continue;
        }
        rows += 1;
        ensure!(
            names.iter().any(|n| is_test_fn(LIVE_PATH_TESTS, n)),
            "threat row proven by no live-path test: {line}"
        );
    }
    ensure!(rows >= 14, "only {rows} threats proven in docs/SECURITY.md");
    Ok(())
}

/// Every `test_name` in backticks in the "Proof" column of docs/SECURITY.md is
/// a test function (`#[test]`, `#[tokio::test]` or a proptest case, not
/// merely a `fn` of that name) in this crate or in musig2-election.
#[test]
fn security_doc_names_real_tests() -> Result<()> {
    let sources = [
        include_str!("../src/announcement.rs"),
        include_str!("../src/content.rs"),
        include_str!("../src/phase.rs"),
        include_str!("../src/rate_limit.rs"),
        include_str!("../src/replay.rs"),
        include_str!("../src/reputation.rs"),
        include_str!("../src/sessions.rs"),
        include_str!("../src/events.rs"),
        include_str!("../src/peer_map.rs"),
        include_str!("../src/limits.rs"),
        include_str!("../src/manager/tests.rs"),
        include_str!("properties.rs"),
        include_str!("vectors.rs"),
        include_str!("docs.rs"),
        include_str!("../../musig2-election/tests/vectors.rs"),
        include_str!("../../musig2-election/tests/properties.rs"),
        include_str!("../../musig2-election/src/failover.rs"),
        include_str!("../../musig2-coordinator/src/session/tests.rs"),
        include_str!("../../musig2-core/src/evidence.rs"),
        include_str!("../../musig2-identity/tests/persistence.rs"),
        include_str!("../../musig2-coordinator/tests/identity_gate.rs"),
        include_str!("../../musig2-identity/tests/rotation.rs"),
        LIVE_PATH_TESTS,
    ]
    .concat();
    let mut named = 0;
    for line in SECURITY_MD.lines().filter(|l| l.starts_with('|')) {
        let Some(proof) = line.trim_end_matches('|').rsplit('|').next() else {
            continue;
        };
        for name in proof.split('`').skip(1).step_by(2) {
            if !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                continue;
            }
            ensure!(
                is_test_fn(&sources, name),
                "docs/SECURITY.md names a test that does not exist (or is not a test): {name}"
            );
            named += 1;
        }
    }
    ensure!(named >= 30, "only {named} tests named in docs/SECURITY.md");
    Ok(())
}
