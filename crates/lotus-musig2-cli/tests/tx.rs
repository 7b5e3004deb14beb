//! `lotus-musig2 tx …` and `lotus-musig2 address …` as other tools run them:
//! the real binary against every value of lotus-sdk 0.2.0's `transactions.json`.

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

/// Runs and expects exit code 0.
fn run_ok(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

fn vectors() -> Value {
    // The package directory as of this run, not of compilation (see core's vectors test).
    let package =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = PathBuf::from(package).join("../../tests/vectors/lotus/transactions.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn list(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap()
}

/// `--spent SCRIPT_HEX:AMOUNT` for every spent output.
fn spent_args(spent: &Value) -> Vec<String> {
    list(spent)
        .iter()
        .flat_map(|o| {
            [
                "--spent".to_string(),
                format!("{}:{}", s(&o["script_pubkey_hex"]), o["amount"]),
            ]
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

#[test]
fn txid_and_decode() {
    let v = vectors();
    let mut checked = 0;
    for case in list(&v["cases"]) {
        for hex in [s(&case["unsigned_tx_hex"]), s(&case["signed_tx_hex"])] {
            assert_eq!(run_ok(&strings(&["tx", "txid", &hex])), s(&case["txid"]));
        }
        let decoded: Value = serde_json::from_str(&run_ok(&strings(&[
            "tx",
            "decode",
            &s(&case["signed_tx_hex"]),
        ])))
        .unwrap();
        assert_eq!(decoded["txid"], case["txid"]);
        assert_eq!(decoded["hash"], case["hash"]);
        assert_eq!(decoded["version"], case["version"]);
        assert_eq!(decoded["locktime"], case["locktime"]);
        assert_eq!(decoded["size"], case["signed_size"]);
        for (got, want) in list(&decoded["inputs"]).iter().zip(list(&case["inputs"])) {
            for key in ["prevout_txid", "prevout_index", "sequence"] {
                assert_eq!(got[key], want[key], "{key}");
            }
            assert_eq!(got["script_sig_hex"], want["script_sig_hex"]);
        }
        assert_eq!(list(&decoded["inputs"]).len(), list(&case["inputs"]).len());
        for (got, want) in list(&decoded["outputs"]).iter().zip(list(&case["outputs"])) {
            assert_eq!(got["amount"], want["amount"]);
            assert_eq!(got["script_pubkey_hex"], want["script_pubkey_hex"]);
            if want["kind"] == "op_return" {
                assert_eq!(got["type"], "op_return");
                assert_eq!(got["data_hex"], want["data_hex"]);
            } else {
                assert_eq!(got["address"], want["keys"]["address"]["livenet"]);
            }
        }
        assert_eq!(
            list(&decoded["outputs"]).len(),
            list(&case["outputs"]).len()
        );
        checked += 1;
    }
    assert_eq!(checked, 31);
}

#[test]
fn sighash_of_every_matrix_entry() {
    let v = vectors();
    let mut answers = 0;
    let mut refusals = 0;
    for case in list(&v["cases"]) {
        let spent = spent_args(&case["spent_outputs"]);
        for (index, input) in list(&case["inputs"]).iter().enumerate() {
            for (n, entry) in list(&input["sighash_matrix"]).iter().enumerate() {
                let t = entry["sighash_type"].as_u64().unwrap();
                // Decimal and 0x hex alternate.
                let t = if n % 2 == 0 {
                    t.to_string()
                } else {
                    format!("0x{t:x}")
                };
                let mut args = strings(&["tx", "sighash", "--tx"]);
                args.push(s(&case["signed_tx_hex"]));
                args.extend(spent.iter().cloned());
                args.extend(strings(&[
                    "--input",
                    &index.to_string(),
                    "--sighash-type",
                    &t,
                ]));
                if entry.get("error").is_some() {
                    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                    let out = cli(&argv);
                    assert_eq!(out.status.code(), Some(2));
                    assert!(
                        String::from_utf8_lossy(&out.stderr).contains("no output at its index")
                    );
                    refusals += 1;
                } else {
                    assert_eq!(run_ok(&args), s(&entry["sighash"]));
                    answers += 1;
                }
            }
        }
    }
    assert_eq!(answers, 408 - 22);
    assert_eq!(refusals, 22);
}

#[test]
fn divergences_by_lotusd_rule() {
    let v = vectors();
    let mut checked = 0;
    for d in list(&v["divergences"]) {
        let spent = spent_args(&d["spent_outputs"]);
        for e in list(&d["entries"]) {
            let mut args = strings(&["tx", "sighash", "--tx", &s(&d["unsigned_tx_hex"])]);
            args.extend(spent.iter().cloned());
            args.extend(strings(&[
                "--input",
                &e["input_index"].to_string(),
                "--sighash-type",
                &e["sighash_type"].to_string(),
            ]));
            assert_eq!(run_ok(&args), s(&e["lotusd_rule_sighash"]));
            checked += 1;
        }
        if let Some(signed) = d.get("lotus_sdk_signed_tx_hex") {
            let mut args = vec!["tx".to_string(), "verify".into(), "--tx".into(), s(signed)];
            args.extend(spent.iter().cloned());
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = cli(&argv);
            assert_eq!(out.status.code(), Some(1));
            assert!(
                stdout(&out).starts_with("invalid: input 0:"),
                "{}",
                stdout(&out)
            );
        }
    }
    assert_eq!(checked, 7);
}

#[test]
fn verify_valid_and_invalid() {
    let v = vectors();
    let mut checked = 0;
    for case in list(&v["cases"]) {
        let spent = spent_args(&case["spent_outputs"]);
        let signed = s(&case["signed_tx_hex"]);
        let mut args = strings(&["tx", "verify", "--tx", &signed]);
        args.extend(spent.iter().cloned());
        assert_eq!(run_ok(&args), "valid");

        // One flipped bit in the last input's signature: invalid, naming it.
        let last = list(&case["inputs"]).len() - 1;
        let script_sig = s(&case["inputs"][last]["script_sig_hex"]);
        let pos = signed.rfind(&script_sig).unwrap() + 4;
        let mut bytes = signed.into_bytes();
        bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(bytes).unwrap();
        let mut args = strings(&["tx", "verify", "--tx", &flipped]);
        args.extend(spent.iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli(&argv);
        assert_eq!(out.status.code(), Some(1), "{}", case["name"]);
        assert!(
            stdout(&out).starts_with(&format!("invalid: input {last}:")),
            "{}",
            stdout(&out)
        );
        checked += 1;
    }
    assert_eq!(checked, 31);
}

#[test]
fn bad_input_exits_2() {
    let v = vectors();
    let case = &list(&v["cases"])[4];
    let tx = s(&case["signed_tx_hex"]);
    let spent = spent_args(&case["spent_outputs"]);
    let mut with_trailing = tx.clone();
    with_trailing.push_str("00");
    let one_spent: Vec<String> = spent[..2].to_vec();
    let mut bad: Vec<Vec<String>> = vec![
        strings(&["tx", "txid", "zz"]),
        strings(&["tx", "txid", &with_trailing]),
        strings(&["tx", "decode", &tx[..40]]),
        strings(&["address", "--p2pkh", "02aa"]),
        strings(&[
            "address",
            "--decode",
            "lotus_16PSJKjiscFM2At99LXmwhX7h6JntvJ9UZkKYfGsi",
        ]),
        strings(&["address", "--decode", "bitcoincash:qq"]),
        strings(&[
            "address",
            "--p2pkh",
            "02dcdf56df081d3045942ed4de0e07f0c4434fa26dc2753fc37acb8333f1688978",
            "--network",
            "moonnet",
        ]),
    ];
    let mut verify = strings(&["tx", "verify", "--tx", &tx]);
    verify.extend(one_spent.iter().cloned());
    bad.push(verify);
    for t in ["0x21", "0x00", "0x60", "256", "x"] {
        let mut args = strings(&["tx", "sighash", "--tx", &tx]);
        args.extend(spent.iter().cloned());
        args.extend(strings(&["--input", "0", "--sighash-type", t]));
        bad.push(args);
    }
    let mut out_of_range = strings(&["tx", "sighash", "--tx", &tx]);
    out_of_range.extend(spent.iter().cloned());
    out_of_range.extend(strings(&["--input", "9", "--sighash-type", "0x41"]));
    bad.push(out_of_range);
    let mut bad_spent = strings(&["tx", "verify", "--tx", &tx]);
    bad_spent.extend(spent[..spent.len() - 1].iter().cloned());
    bad_spent.push("76a9:notanumber".into());
    bad.push(bad_spent);
    for args in &bad {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli(&argv);
        assert_eq!(out.status.code(), Some(2), "{argv:?}");
        assert!(!out.stderr.is_empty());
    }
    assert_eq!(bad.len(), 15);
}

#[test]
fn addresses() {
    let v = vectors();
    let mut encoded = 0;
    let mut decoded = 0;
    let mut all_keys: Vec<(&str, &Value)> = Vec::new();
    for case in list(&v["cases"]) {
        for input in list(&case["inputs"]) {
            all_keys.push((input["kind"].as_str().unwrap(), &input["keys"]));
        }
        for output in list(&case["outputs"]) {
            if output["kind"] != "op_return" {
                all_keys.push((output["kind"].as_str().unwrap(), &output["keys"]));
            }
        }
    }
    for (kind, keys) in all_keys {
        for network in ["livenet", "testnet", "regtest"] {
            let mut args = if kind == "p2pkh" {
                strings(&["address", "--p2pkh", &s(&keys["pubkey"])])
            } else {
                let mut a = strings(&["address", "--p2tr", &s(&keys["internal_pubkey"])]);
                a.extend(strings(&["--merkle-root", &s(&keys["merkle_root"])]));
                if let Some(state) = keys["state"].as_str() {
                    a.extend(strings(&["--state", state]));
                }
                a
            };
            // livenet is the default.
            if network != "livenet" {
                args.extend(strings(&["--network", network]));
            }
            let address = s(&keys["address"][network]);
            assert_eq!(run_ok(&args), address);
            encoded += 1;

            let json: Value =
                serde_json::from_str(&run_ok(&strings(&["address", "--decode", &address])))
                    .unwrap();
            assert_eq!(json["network"], network);
            let script = s(&keys["script_pubkey_hex"]);
            if kind == "p2pkh" {
                assert_eq!(json["type"], "p2pkh");
                assert_eq!(json["script_pubkey"], script);
            } else {
                assert_eq!(json["type"], "p2tr");
                // The address carries no state: the script is the 36-byte key-path script.
                assert_eq!(s(&json["script_pubkey"]), script[..72]);
            }
            decoded += 1;
        }
    }
    assert_eq!(encoded, 3 * (68 + 58 - 6));
    assert_eq!(decoded, encoded);
}
