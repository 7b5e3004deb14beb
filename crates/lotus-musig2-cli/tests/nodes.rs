//! Transactions through running `lotus-musig2 node` processes: `spend
//! --config` signs a two-input spend with two co-signer processes (each
//! recomputing every sighash from the transaction) and `tx verify` accepts
//! the result; a node refuses a bare-hash request unless its configuration
//! says `allow_blind_signing = true`. Real processes on 127.0.0.1; every wait
//! is for a line of output, with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use lotus_musig2::core::{Keypair, SecretKey};
use serde_json::Value;

const UTXO_A: &str = "abababababababababababababababababababababababababababababababab:0:1000000";
const UTXO_B: &str = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd:1:500000";
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

fn pubkey(secret: [u8; 32]) -> String {
    Keypair::new(SecretKey::from_bytes(&secret).unwrap())
        .public_key()
        .to_string()
}

/// Node processes and their JSON output lines, `(node, line)`, in one channel.
struct Nodes {
    dir: PathBuf,
    children: Vec<Child>,
    tx: mpsc::Sender<(usize, Value)>,
    rx: mpsc::Receiver<(usize, Value)>,
}

impl Nodes {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lotus-musig2-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (tx, rx) = mpsc::channel();
        Self {
            dir,
            children: Vec::new(),
            tx,
            rx,
        }
    }

    /// Writes key `i` and a configuration made of `extra` lines.
    fn config(&self, i: usize, secret: [u8; 32], extra: &str) -> PathBuf {
        let key = self.dir.join(format!("key{i}"));
        std::fs::write(&key, hex::encode(secret)).unwrap();
        let path = self.dir.join(format!("node{i}.toml"));
        std::fs::write(
            &path,
            format!("secret_key_file = {:?}\n{extra}", key.display().to_string()),
        )
        .unwrap();
        path
    }

    fn spawn(&mut self, i: usize, config: &Path) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lotus-musig2"))
            .args(["node", "--config", config.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send((i, v));
                }
            }
        });
        self.children.push(child);
    }

    /// The next output line `want` accepts (others are dropped).
    fn next(&self, want: impl Fn(usize, &Value) -> bool) -> (usize, Value) {
        loop {
            let (i, v) = self
                .rx
                .recv_timeout(Duration::from_secs(90))
                .expect("node output in time");
            if want(i, &v) {
                return (i, v);
            }
        }
    }

    /// Waits for node `i`'s `listening` line; returns its addresses as TOML.
    fn listening(&self, i: usize) -> String {
        let (_, v) = self.next(|n, v| n == i && v["event"] == "listening");
        format!(
            "{:?}",
            v["addrs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        )
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A one-request Chronik-format server: reads one `POST /broadcast-tx` and
/// answers `BroadcastTxResponse { txid }` with the txid of the transaction it
/// got; the join handle returns the request line and the raw transaction.
fn chronik_echo() -> (String, std::thread::JoinHandle<(String, Vec<u8>)>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
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
        // BroadcastTxRequest { raw_tx (field 1) }: 0x0a, varint length, bytes.
        let body = &request[end..end + length];
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
        let txid = lotus_musig2::tx::Transaction::parse(&raw)
            .unwrap()
            .txid()
            .internal_bytes();
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
fn spend_signs_through_running_nodes_and_tx_verify_accepts_it() {
    let (a, b, me) = ([0x44u8; 32], [0x55u8; 32], [0x66u8; 32]);
    let mut nodes = Nodes::new("spend-nodes");
    // Two co-signers that refuse blind requests (the default) and stop after
    // two sessions: one per input.
    let config_a = nodes.config(0, a, "exit_after = 2\n");
    nodes.spawn(0, &config_a);
    let bootstrap = nodes.listening(0);
    let config_b = nodes.config(1, b, &format!("exit_after = 2\nbootstrap = {bootstrap}\n"));
    nodes.spawn(1, &config_b);
    nodes.listening(1);
    // Our node broadcasts through the Chronik indexer its configuration names.
    let (chronik, server) = chronik_echo();
    let mine = nodes.config(
        2,
        me,
        &format!("bootstrap = {bootstrap}\nchronik_url = {chronik:?}\n"),
    );

    let payee = run_ok(&["address", "--p2pkh", G_PUBKEY, "--network", "regtest"]);
    let to = format!("{payee}:700000");
    let out = run_ok(&[
        "spend",
        "--config",
        mine.to_str().unwrap(),
        "--cosigner",
        &pubkey(a),
        "--cosigner",
        &pubkey(b),
        "--utxo",
        UTXO_A,
        "--utxo",
        UTXO_B,
        "--to",
        &to,
        "--fee-rate",
        "1",
        "--network",
        "regtest",
    ]);
    let result: Value = serde_json::from_str(&out).unwrap();

    // The group is the three keys; the same group spent with `--local`
    // has the same address.
    let local: Value = serde_json::from_str(&run_ok(&[
        "spend",
        "--local",
        &hex::encode(a),
        &hex::encode(b),
        &hex::encode(me),
        "--utxo",
        UTXO_A,
        "--to",
        &to,
        "--fee-rate",
        "1",
        "--network",
        "regtest",
    ]))
    .unwrap();
    assert_eq!(result["group_address"], local["group_address"]);

    // Broadcast: the indexer got exactly the signed bytes, and its txid is ours.
    let (head, raw) = server.join().unwrap();
    assert!(head.starts_with("POST /broadcast-tx HTTP/1.1"), "{head}");
    assert_eq!(result["broadcast"], true);
    assert_eq!(hex::encode(&raw), result["hex"].as_str().unwrap());
    assert_eq!(
        run_ok(&["tx", "txid", result["hex"].as_str().unwrap()]),
        result["txid"].as_str().unwrap()
    );

    // `tx verify` accepts the transaction the nodes signed.
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
    assert_eq!(run_ok(&args), "valid");

    // Each co-signer signed both inputs' sessions and stopped.
    let mut signatures = [0, 0];
    while signatures != [2, 2] {
        let (i, v) = nodes.next(|_, v| {
            v["event"] == "signature"
                || v["event"] == "session-error"
                || v["event"] == "request-refused"
        });
        assert_eq!(v["event"], "signature", "node {i}: {v}");
        signatures[i] += 1;
    }
}

#[test]
fn a_node_refuses_a_bare_hash_unless_configured() {
    let (a, b) = ([0x77u8; 32], [0x78u8; 32]);
    let mut nodes = Nodes::new("blind");
    let config_a = nodes.config(0, a, "");
    nodes.spawn(0, &config_a);
    let bootstrap = nodes.listening(0);
    let keys = [pubkey(a), pubkey(b)];
    let config_b = nodes.config(
        1,
        b,
        &format!(
            "bootstrap = {bootstrap}\n[announce]\nsigners = {keys:?}\nmessage = {:?}\ninput_script_type = \"taproot\"\n",
            "cd".repeat(32)
        ),
    );
    nodes.spawn(1, &config_b);
    let (_, refused) = nodes.next(|i, v| i == 0 && v["event"] == "request-refused");
    assert_eq!(refused["creator_pubkey"], pubkey(b).as_str());
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("blind signing is off"),
        "{refused}"
    );
    assert!(
        refused["creator_peer_id"]
            .as_str()
            .unwrap()
            .starts_with("12D3KooW")
    );
}
