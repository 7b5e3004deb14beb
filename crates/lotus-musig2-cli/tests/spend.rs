//! `lotus-musig2 spend --local …` as a user runs it: the real binary builds,
//! signs and verifies a spend from a 3-of-3 group's Taproot address, and
//! `lotus-musig2 tx verify` accepts the result; bad input exits 2; `--chronik`
//! posts the transaction to a Chronik-format server on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Command, Output};

use serde_json::Value;

const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const K3: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const UTXO_A: &str = "abababababababababababababababababababababababababababababababab:0:1000000";
const UTXO_B: &str = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd:1:500000";
/// The generator point's P2PKH address on regtest.
const G_PUBKEY: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lotus-musig2"))
        .args(args)
        .output()
        .unwrap()
}

fn run_ok(args: &[&str]) -> String {
    let out = cli(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn run_bad(args: &[&str], expected_in_message: &str) {
    let out = cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(expected_in_message),
        "{args:?}: {stderr:?} does not mention {expected_in_message:?}"
    );
    assert!(out.stdout.is_empty());
}

fn regtest_p2pkh() -> String {
    run_ok(&["address", "--p2pkh", G_PUBKEY, "--network", "regtest"])
}

fn spend(extra: &[&str]) -> Value {
    let mut args = vec!["spend", "--local", K1, K2, K3];
    args.extend_from_slice(extra);
    serde_json::from_str(&run_ok(&args)).unwrap()
}

fn tx_verify(result: &Value) -> Output {
    let mut args = vec![
        "tx".to_string(),
        "verify".into(),
        "--tx".into(),
        result["hex"].as_str().unwrap().into(),
    ];
    for s in result["spent"].as_array().unwrap() {
        args.push("--spent".into());
        args.push(s.as_str().unwrap().into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(&args)
}

#[test]
fn a_three_of_three_group_spends_two_utxos_and_tx_verify_accepts_it() {
    let to = format!("{}:700000", regtest_p2pkh());
    let result = spend(&[
        "--utxo",
        UTXO_A,
        "--utxo",
        UTXO_B,
        "--to",
        &to,
        "--fee-rate",
        "2",
        "--network",
        "regtest",
    ]);

    // The group's address is the Taproot address of its aggregate key, and
    // its script is what every input spends.
    let aggregate = result["aggregate_pubkey"].as_str().unwrap();
    let group_address = run_ok(&["address", "--p2tr", aggregate, "--network", "regtest"]);
    assert_eq!(result["group_address"], group_address.as_str());
    let decoded: Value =
        serde_json::from_str(&run_ok(&["address", "--decode", &group_address])).unwrap();
    let group_script = decoded["script_pubkey"].as_str().unwrap().to_string();
    assert_eq!(
        result["spent"],
        serde_json::json!([
            format!("{group_script}:1000000"),
            format!("{group_script}:500000")
        ])
    );

    // The signed transaction verifies with the spent outputs, per `tx verify`.
    let verdict = tx_verify(&result);
    assert_eq!(
        String::from_utf8_lossy(&verdict.stdout).trim(),
        "valid",
        "{}",
        String::from_utf8_lossy(&verdict.stderr)
    );
    assert_eq!(verdict.status.code(), Some(0));

    // Two inputs; the payment, then the change back to the group's address.
    let hex = result["hex"].as_str().unwrap();
    let decoded: Value = serde_json::from_str(&run_ok(&["tx", "decode", hex])).unwrap();
    assert_eq!(decoded["txid"], result["txid"]);
    assert_eq!(
        run_ok(&["tx", "txid", hex]),
        result["txid"].as_str().unwrap()
    );
    let inputs = decoded["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0]["prevout_index"], 0);
    assert_eq!(inputs[1]["prevout_index"], 1);
    let outputs = decoded["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0]["amount"], 700_000);
    assert_eq!(outputs[1]["type"], "p2tr");
    assert_eq!(outputs[1]["script_pubkey_hex"], group_script);

    // fee = size × rate, and the amounts add up.
    let size = result["size"].as_u64().unwrap();
    assert_eq!(size, hex.len() as u64 / 2);
    assert_eq!(result["fee"].as_u64().unwrap(), size * 2);
    let change = outputs[1]["amount"].as_u64().unwrap();
    assert_eq!(result["change"].as_u64().unwrap(), change);
    assert_eq!(1_500_000 - 700_000 - change, size * 2);

    // A flipped bit in input 1's signature fails `tx verify` at input 1.
    let script_sig = inputs[1]["script_sig_hex"].as_str().unwrap();
    let at = hex.find(script_sig).unwrap() / 2;
    let mut bytes = hex::decode(hex).unwrap();
    bytes[at + 10] ^= 1;
    let mut tampered = result.clone();
    tampered["hex"] = hex::encode(&bytes).into();
    let verdict = tx_verify(&tampered);
    assert_eq!(verdict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verdict.stdout).starts_with("invalid: input 1"));
}

#[test]
fn change_below_the_dust_limit_goes_to_the_fee() {
    // One input, one payment: 1 000 000 − 999 200 leaves 800 sats; with a
    // change output the transaction is 196 bytes, the fee 392 sats, and the
    // change (408) would be dust.
    let to = format!("{}:999200", regtest_p2pkh());
    let result = spend(&[
        "--utxo",
        UTXO_A,
        "--to",
        &to,
        "--fee-rate",
        "2",
        "--network",
        "regtest",
    ]);
    assert!(result["change"].is_null(), "{result}");
    assert_eq!(result["fee"], 800);
    let hex = result["hex"].as_str().unwrap();
    let decoded: Value = serde_json::from_str(&run_ok(&["tx", "decode", hex])).unwrap();
    assert_eq!(decoded["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(tx_verify(&result).status.code(), Some(0));

    // At the boundary: change of exactly 546 sats is kept, 545 is not.
    for (payment, change) in [(999_062u64, Some(546u64)), (999_063, None)] {
        let to = format!("{}:{payment}", regtest_p2pkh());
        let result = spend(&[
            "--utxo",
            UTXO_A,
            "--to",
            &to,
            "--fee-rate",
            "2",
            "--network",
            "regtest",
        ]);
        assert_eq!(result["change"].as_u64(), change, "{result}");
        let fee = result["fee"].as_u64().unwrap();
        assert_eq!(1_000_000 - payment - change.unwrap_or(0), fee);
        assert_eq!(tx_verify(&result).status.code(), Some(0));
    }
}

#[test]
fn bad_input_exits_2() {
    let to = format!("{}:700000", regtest_p2pkh());
    let base = |extra: &[&str]| {
        let mut args = vec!["spend", "--local", K1, K2, K3];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            base(&[
                "--utxo",
                UTXO_A,
                "--to",
                &to,
                "--fee-rate",
                "10000",
                "--network",
                "regtest",
            ]),
            "insufficient funds",
        ),
        (
            base(&["--utxo", UTXO_A, "--to", &to, "--fee-rate", "1"]),
            "regtest address, but --network is livenet",
        ),
        (
            base(&[
                "--utxo",
                "abab:0:5",
                "--to",
                &to,
                "--fee-rate",
                "1",
                "--network",
                "regtest",
            ]),
            "--utxo #1",
        ),
        (
            base(&[
                "--utxo",
                UTXO_A,
                "--utxo",
                UTXO_A,
                "--to",
                &to,
                "--fee-rate",
                "1",
                "--network",
                "regtest",
            ]),
            "given twice",
        ),
        (
            base(&[
                "--utxo",
                UTXO_A,
                "--to",
                &format!("{}:100", regtest_p2pkh()),
                "--fee-rate",
                "1",
                "--network",
                "regtest",
            ]),
            "dust",
        ),
        (
            base(&[
                "--utxo",
                UTXO_A,
                "--to",
                "lotusRnotanaddress:1000",
                "--fee-rate",
                "1",
                "--network",
                "regtest",
            ]),
            "--to #1",
        ),
        (
            vec![
                "spend".into(),
                "--local".into(),
                "00".into(),
                "--utxo".into(),
                UTXO_A.into(),
                "--to".into(),
                to.clone(),
                "--fee-rate".into(),
                "1".into(),
            ],
            "--local #1",
        ),
        (
            base(&[
                "--utxo",
                UTXO_A,
                "--to",
                &to,
                "--fee-rate",
                "1",
                "--network",
                "mainnet",
            ]),
            "--network",
        ),
    ];
    for (args, message) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_bad(&args, message);
    }
}

/// A one-request Chronik-format server: reads one `POST /broadcast-tx`, hands
/// its body back through the join handle, and answers with
/// `BroadcastTxResponse { txid }` — the txid given, or a wrong one.
fn chronik_once(
    answer_txid: Option<[u8; 32]>,
) -> (String, std::thread::JoinHandle<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed early");
            request.extend_from_slice(&buf[..n]);
            if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&request[..end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap();
        while request.len() < end + length {
            let n = sock.read(&mut buf).unwrap();
            request.extend_from_slice(&buf[..n]);
        }
        let body = request[end..end + length].to_vec();
        // BroadcastTxRequest: field 1 (raw_tx, bytes) = tag 0x0a, varint length.
        assert_eq!(body[0], 0x0a);
        let (mut len, mut shift, mut i) = (0usize, 0, 1);
        loop {
            let b = body[i];
            len |= usize::from(b & 0x7f) << shift;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let raw = body[i..i + len].to_vec();
        // skip_token_checks (field 2) is false, so it is absent.
        assert_eq!(body.len(), i + len);
        let txid = answer_txid.unwrap_or([0x42; 32]);
        // BroadcastTxResponse: field 1 (txid, bytes) = 0x0a 0x20 ‖ 32 bytes.
        let mut response = vec![0x0a, 0x20];
        response.extend_from_slice(&txid);
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            response.len()
        );
        sock.write_all(reply.as_bytes()).unwrap();
        sock.write_all(&response).unwrap();
        (head, raw)
    });
    (url, handle)
}

#[test]
fn chronik_broadcasts_the_signed_transaction() {
    let to = format!("{}:700000", regtest_p2pkh());
    let args = [
        "--utxo",
        UTXO_A,
        "--to",
        &to,
        "--fee-rate",
        "1",
        "--network",
        "regtest",
    ];
    // Sign once without broadcasting to learn the txid (nonces are random, the
    // txid is not: it does not cover the signatures).
    let dry = spend(&args);
    let txid_display = hex::decode(dry["txid"].as_str().unwrap()).unwrap();
    let mut txid: [u8; 32] = txid_display.try_into().unwrap();
    txid.reverse();

    let (url, server) = chronik_once(Some(txid));
    let mut with_chronik = args.to_vec();
    with_chronik.extend_from_slice(&["--chronik", &url]);
    let result = spend(&with_chronik);
    let (head, raw) = server.join().unwrap();
    assert!(head.starts_with("POST /broadcast-tx HTTP/1.1"), "{head}");
    assert_eq!(result["broadcast"], true);
    assert_eq!(result["txid"], dry["txid"]);
    assert_eq!(hex::encode(&raw), result["hex"].as_str().unwrap());
    assert_eq!(tx_verify(&result).status.code(), Some(0));

    // An indexer that answers another txid is not believed.
    let (url, server) = chronik_once(None);
    let mut args = vec!["spend", "--local", K1, K2, K3];
    args.extend_from_slice(&with_chronik[..with_chronik.len() - 1]);
    args.push(&url);
    run_bad(&args, "broadcast through");
    server.join().unwrap();
}
