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
    // The package directory as of this run, not of compilation (see core's vectors test).
    let package =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = PathBuf::from(package)
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
        "spend",
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

/// Three `lotus-musig2 node` processes: A is started first; B and C know only
/// A's address; C announces a request for all three keys. Each process signs
/// and exits after one session. The request is a bare 32-byte message, so
/// every node's configuration allows blind signing.
#[test]
fn three_node_processes_sign_together() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    use lotus_musig2::core::{KeyAggContext, Keypair, Lotus, SecretKey, schnorr};

    let dir = std::env::temp_dir().join(format!("lotus-musig2-node-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secrets = [[0x11u8; 32], [0x22u8; 32], [0x33u8; 32]];
    let keys: Vec<String> = secrets
        .iter()
        .map(|s| {
            Keypair::new(SecretKey::from_bytes(s).unwrap())
                .public_key()
                .to_string()
        })
        .collect();
    for (i, s) in secrets.iter().enumerate() {
        std::fs::write(dir.join(format!("key{i}")), hex::encode(s)).unwrap();
    }
    let message = "ab".repeat(32);
    let write_config = |i: usize, bootstrap: &[String], announce: bool| {
        let mut text = format!(
            "secret_key_file = {:?}\nexit_after = 1\nallow_blind_signing = true\nbootstrap = {:?}\n",
            dir.join(format!("key{i}")).display().to_string(),
            bootstrap
        );
        if announce {
            text += &format!(
                "[announce]\nsigners = {keys:?}\nmessage = {message:?}\ninput_script_type = \"taproot\"\n"
            );
        }
        let path = dir.join(format!("node{i}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let (tx, rx) = mpsc::channel::<(usize, Value)>();
    let mut children = Children(Vec::new());
    let mut spawn = |i: usize, config: std::path::PathBuf| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lotus-musig2"))
            .args(["node", "--config", config.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send((i, v));
                }
            }
        });
        children.0.push(child);
    };
    let next = |want: &dyn Fn(&(usize, Value)) -> bool| -> (usize, Value) {
        loop {
            let item = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("node output in time");
            if want(&item) {
                return item;
            }
        }
    };

    spawn(0, write_config(0, &[], false));
    let (_, listening) = next(&|(i, v)| *i == 0 && v["event"] == "listening");
    let bootstrap: Vec<String> = strings(&listening["addrs"]);
    spawn(1, write_config(1, &bootstrap, false));
    spawn(2, write_config(2, &bootstrap, true));

    let mut signatures = std::collections::BTreeMap::new();
    while signatures.len() < 3 {
        let (i, v) = next(&|(_, v)| v["event"] == "signature" || v["event"] == "session-error");
        assert_eq!(v["event"], "signature", "node {i}: {v}");
        signatures.insert(i, v);
    }
    let sigs: Vec<&Value> = signatures.values().collect();
    assert!(
        sigs.windows(2)
            .all(|w| w[0]["signature"] == w[1]["signature"])
    );
    assert_eq!(sigs[0]["sighash_type"], 0x61);
    let pubkeys: Vec<_> = keys.iter().map(|k| k.parse().unwrap()).collect();
    let ctx = KeyAggContext::<Lotus>::new_sorted(&pubkeys)
        .unwrap()
        .with_taproot_tweak(&[0u8; 32])
        .unwrap();
    assert_eq!(
        sigs[0]["aggregate_pubkey"],
        ctx.aggregate_pubkey().to_string()
    );
    let sig = sigs[0]["signature"].as_str().unwrap().parse().unwrap();
    schnorr::verify(
        &ctx.aggregate_pubkey(),
        &hex::decode(&message).unwrap(),
        &sig,
    )
    .unwrap();

    for child in children.0.iter_mut() {
        let status = child.wait_timeout_or_kill();
        assert!(status, "a node did not exit after its session");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Child processes that are killed when the test ends, even by a panic.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

trait WaitOrKill {
    fn wait_timeout_or_kill(&mut self) -> bool;
}

impl WaitOrKill for std::process::Child {
    /// Waits up to 30 s for the process to exit by itself; kills it otherwise.
    fn wait_timeout_or_kill(&mut self) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.try_wait() {
                return status.success();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.kill();
        false
    }
}
