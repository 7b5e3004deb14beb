//! The CLI as a user runs it: the real binary, real arguments, exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lotus-musig2"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_string()
}

fn vectors(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/lotus")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn key_agg_matches_lotus_sdk() {
    let v = vectors("musig2_lotus.json");
    for case in v["cases"].as_array().unwrap() {
        let keys = strings(&case["input_pubkeys"]);
        let mut args = vec!["key-agg"];
        args.extend(keys.iter().map(String::as_str));
        let out = cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout(&out), case["aggregated_pubkey"].as_str().unwrap());
    }
    let tap = &v["taproot_keypath_cases"][0];
    let keys = strings(&tap["input_pubkeys"]);
    let mut args = vec!["key-agg", "--taproot"];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(
        stdout(&cli(&args)),
        tap["commitment_pubkey"].as_str().unwrap()
    );
    let root = tap["merkle_root"].as_str().unwrap();
    let mut args = vec!["key-agg", "--taproot", "--merkle-root", root];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(
        stdout(&cli(&args)),
        tap["commitment_pubkey"].as_str().unwrap()
    );
}

#[test]
fn sign_local_then_verify() {
    let msg = "5176380c6b8a2c304f29232353dee8048cee5eb4140f6320c984e430b12576d0";
    let keys = [
        "03bfa67191d7a9f1c893b44f8828e3b18901925ec89f0dba30fddf0cbd877023",
        "7c0b29eba0a7985efb755d8143fd840cbeff2f1f0f4109cdc183eb71b528e0b4",
        "1c0b29eba0a7985efb755d8143fd840cbeff2f1f0f4109cdc183eb71b528e0b4",
    ];
    let out = cli(&["sign-local", "--message", msg, keys[0], keys[1], keys[2]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["message"], msg);
    let (pk, sig) = (
        json["aggregate_pubkey"].as_str().unwrap(),
        json["signature"].as_str().unwrap(),
    );
    assert_eq!(sig.len(), 128);

    let verify = cli(&[
        "verify",
        "--pubkey",
        pk,
        "--message",
        msg,
        "--signature",
        sig,
    ]);
    assert_eq!(stdout(&verify), "valid");
    assert_eq!(verify.status.code(), Some(0));

    let other = "6176380c6b8a2c304f29232353dee8048cee5eb4140f6320c984e430b12576d0";
    let verify = cli(&[
        "verify",
        "--pubkey",
        pk,
        "--message",
        other,
        "--signature",
        sig,
    ]);
    assert_eq!(stdout(&verify), "invalid");
    assert_eq!(verify.status.code(), Some(1));

    // Random nonces: two runs give two different valid signatures.
    let again: Value = serde_json::from_str(&stdout(&cli(&[
        "sign-local",
        "--message",
        msg,
        keys[0],
        keys[1],
        keys[2],
    ])))
    .unwrap();
    assert_eq!(again["aggregate_pubkey"], json["aggregate_pubkey"]);
    assert_ne!(again["signature"], json["signature"]);
}

#[test]
fn schnorr_sign_matches_lotus_sdk() {
    let v = vectors("lotus_schnorr.json");
    for case in v["valid"].as_array().unwrap() {
        let out = cli(&[
            "schnorr-sign",
            "--message",
            case["msg32"].as_str().unwrap(),
            case["privkey"].as_str().unwrap(),
        ]);
        assert_eq!(stdout(&out), case["sig64"].as_str().unwrap());
    }
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let good_key = "030931926a9c84b47474d914340557b2fdc01fd07eaeb307eee1f9a1d378de9128";
    let cases: &[&[&str]] = &[
        &["key-agg", "zz"],
        &["key-agg", "0309"],
        &[
            "key-agg",
            good_key,
            "040931926a9c84b47474d914340557b2fdc01fd07eaeb307eee1f9a1d378de9128",
        ],
        &["sign-local", "--message", "00", "01"],
        &[
            "sign-local",
            "--message",
            &"00".repeat(32),
            &"00".repeat(32),
        ],
        &[
            "verify",
            "--pubkey",
            good_key,
            "--message",
            &"00".repeat(32),
            "--signature",
            "00",
        ],
        &[
            "schnorr-sign",
            "--message",
            &"00".repeat(31),
            &"01".repeat(32),
        ],
        &["key-agg"],
        &["no-such-command"],
    ];
    for args in cases {
        let out = cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_is_available_for_every_command() {
    for cmd in [
        "key-agg",
        "sign-local",
        "verify",
        "schnorr-sign",
        "demo",
        "elect",
    ] {
        let out = cli(&[cmd, "--help"]);
        assert!(out.status.success());
        assert!(stdout(&out).contains("Usage"));
    }
}

#[test]
fn demo_signs_over_the_network_and_the_signature_verifies() {
    let out = cli(&["demo", "--signers", "3", "--election", "hash", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    for key in ["aggregate_pubkey", "message", "signature", "timings_ms"] {
        assert!(!json[key].is_null(), "missing {key}");
    }
    assert_eq!(json["sighash_type"], "41");
    let (pk, msg, sig) = (
        json["aggregate_pubkey"].as_str().unwrap(),
        json["message"].as_str().unwrap(),
        json["signature"].as_str().unwrap(),
    );
    let verify = cli(&[
        "verify",
        "--pubkey",
        pk,
        "--message",
        msg,
        "--signature",
        sig,
    ]);
    assert_eq!(stdout(&verify), "valid");
    // Progress goes to stderr, one line per phase.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for phase in [
        "announce_join",
        "nonce_commitments",
        "round1",
        "round2",
        "broadcast",
    ] {
        assert!(stderr.contains(phase), "no progress line for {phase}");
    }
}

#[test]
fn elect_matches_lotus_sdk_vectors() {
    let v = vectors("election.json");
    let mut checked = 0;
    for case in v["sets"].as_array().unwrap() {
        let keys = strings(&case["input_pubkeys"]);
        for (name, expected) in case["methods"].as_object().unwrap() {
            let mut args = vec!["elect", "--method", name.as_str()];
            args.extend(keys.iter().map(String::as_str));
            let out = cli(&args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
            assert_eq!(
                json["coordinator_index"], expected["coordinatorIndex"],
                "{name}"
            );
            assert_eq!(
                json["coordinator_pubkey"], expected["coordinatorPublicKey"],
                "{name}"
            );
            assert_eq!(json["election_proof"], expected["electionProof"], "{name}");
            assert_eq!(json["sorted_signers"], expected["sortedSigners"], "{name}");
            assert_eq!(json["priority_list"].as_array().unwrap().len(), keys.len());
            checked += 1;
        }
    }
    assert!(checked >= 28, "only {checked} election cases");
}
