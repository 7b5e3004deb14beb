//! Crash safety: a daemon killed with SIGKILL at random points across many
//! sessions, and restarted on the same data directory, every time. After each
//! restart: the database opens, every signature it had completed is still
//! served, and it signs again at once (a new run). Across all runs, its key
//! never sent one public nonce (`R1` or `R2`) in two sessions.
//!
//! `LOTUS_MUSIG2_KILLS` sets the number of kills (default 200).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

mod support;

use support::*;

/// A small deterministic generator (the seed is printed, so a failure can be
/// replayed with `LOTUS_MUSIG2_KILL_SEED`).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A request for all three signers; its session id.
fn request_all(node: &Node, message: &str) -> String {
    let (code, out) = request(node, &[0, 1, 2], message);
    assert_eq!(code, 0, "{out}");
    out["session_id"].as_str().unwrap().to_string()
}

/// Every record a node lists, by session id.
fn records(node: &Node) -> HashMap<String, Value> {
    node.rpc_ok(&["sessions"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["session_id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

#[test]
fn sigkill_at_random_points_loses_no_signature_and_reuses_no_nonce() {
    let kills: usize = std::env::var("LOTUS_MUSIG2_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("LOTUS_MUSIG2_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("LOTUS_MUSIG2_KILL_SEED={seed}");
    let mut rng = XorShift(seed);

    let dir = tempfile::tempdir().unwrap();
    let mut children = Children(Vec::new());
    // A asks for a signature every few hundred ms: its co-signers allow it.
    let auto = "approve = \"auto\"";
    let fast = "[security]\nmax_requests_per_minute = 6000\nrequest_burst = 1000\n";
    let (dir_a, config_a) = write_config(dir.path(), 0, &[], auto, fast);
    let a = start(&mut children, &dir_a, &config_a);
    let bootstrap = addrs(&a);
    let (dir_b, config_b) = write_config(dir.path(), 1, &bootstrap, auto, fast);
    let (dir_c, config_c) = write_config(dir.path(), 2, &bootstrap, auto, fast);
    let mut b = start(&mut children, &dir_b, &config_b);
    let mut b_child = children.0.len() - 1;
    let c = start(&mut children, &dir_c, &config_c);
    let peer_b = b.listening["peer_id"].clone();

    // What B had completed, as B served it: session id → signature.
    let mut completed: HashMap<String, String> = HashMap::new();
    let mut interrupted = 0usize;
    for k in 0..kills {
        let session = request_all(&a, &format!("{:064x}", k + 1));
        // A random point: before B joins, in any round, or after completion.
        std::thread::sleep(Duration::from_millis(rng.next() % 250));
        children.0[b_child].kill().unwrap();
        children.0[b_child].wait().unwrap();

        // The database opens (the daemon serves its API again) ...
        b = start(&mut children, &dir_b, &config_b);
        b_child = children.0.len() - 1;
        assert_eq!(b.listening["peer_id"], peer_b, "the peer id survives");
        // ... and every signature it completed is still there.
        let served = records(&b);
        for (id, signature) in &completed {
            assert_eq!(
                served[id]["signature"].as_str(),
                Some(signature.as_str()),
                "kill {k}: lost the signature of {id}"
            );
        }
        for (id, r) in &served {
            if let Some(signature) = r["signature"].as_str() {
                completed.insert(id.clone(), signature.to_string());
            } else if r["error"]["code"] == "NODE_RESTARTED" {
                assert!(r["signature"].is_null());
            }
        }
        if served
            .get(&session)
            .is_some_and(|r| r["error"]["code"] == "NODE_RESTARTED")
        {
            interrupted += 1;
        }
        // The creator ends the run B may have left (its co-signers stop
        // waiting); a run that ended already answers `conflict`.
        let _ = a.rpc(&["close", &session]);
    }
    println!(
        "{kills} kills: {} sessions completed on B, {interrupted} interrupted",
        completed.len()
    );
    // A new run right after the last restart completes on all three.
    let session = request_all(&a, &"ff".repeat(32));
    for node in [&a, &b, &c] {
        let s = node.session_when(&session, |s| s["signature"].is_string());
        assert!(s["signature"].is_string());
    }

    assert!(
        interrupted > 0 && !completed.is_empty(),
        "the kills hit no session in flight, or none completed"
    );

    // Every public nonce B's key sent, as A and C recorded it: one per
    // session, and no R1 or R2 ever twice.
    let key_b = keypair(1).public_key().to_string();
    let mut by_session: HashMap<String, String> = HashMap::new();
    for node in [&a, &c] {
        for (id, r) in records(node) {
            let signers = r["signers"].as_array().unwrap();
            let Some(index) = signers.iter().position(|s| s == &key_b) else {
                continue;
            };
            if let Some(nonce) = r["nonces"].get(index).and_then(Value::as_str) {
                let seen = by_session
                    .entry(id.clone())
                    .or_insert_with(|| nonce.to_string());
                assert_eq!(seen, nonce, "two nonces from B in one session {id}");
            }
        }
    }
    let (mut r1, mut r2) = (HashSet::new(), HashSet::new());
    for nonce in by_session.values() {
        assert_eq!(nonce.len(), 132, "{nonce}");
        assert!(r1.insert(nonce[..66].to_string()), "R1 reused: {nonce}");
        assert!(r2.insert(nonce[66..].to_string()), "R2 reused: {nonce}");
    }
    println!("{} nonces of B checked", by_session.len());
    assert!(by_session.len() >= completed.len());
}
