//! Three `lotus-musig2 node` daemons on loopback (release build, each its
//! own process, data directory and API): the idle RSS of a node, then 500
//! 3-of-3 sessions created at once on the first node, every node in every
//! session (`approve = "auto"` on all three), until each is over on all
//! three.
//!
//! Memory per live session: while the sessions run, a sampler reads every
//! node's RSS (`/proc/PID/status`) and its number of live sessions
//! (`GET /v1/status`, `sessions_active`); per node, (peak RSS − idle RSS) /
//! peak live sessions, and the worst node is reported. A peak RSS includes
//! the transient buffers of the busiest moment, so this overstates the
//! steady cost of a session.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::http::call;

const NODES: usize = 3;
const SESSIONS: usize = 500;
/// Requests in flight at once from the load driver.
const CLIENTS: usize = 8;
/// Every session over by then, or it counts as an error.
const DEADLINE: Duration = Duration::from_secs(300);
const CONFIG_TAIL: &str = "approve = \"auto\"\nallow_blind_signing = true\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n[security]\nmax_requests_per_minute = 100000\nrequest_burst = 1000\nmax_concurrent_sessions = 2048\n";

struct Daemon {
    child: Child,
    api: String,
    token: String,
    pubkey: String,
}

impl Daemon {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        call(&self.api, &self.token, method, path, body)
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

/// Kills the daemons even when the bench fails.
struct Daemons(Vec<Daemon>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for d in &mut self.0 {
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn start(
    binary: &Path,
    dir: &Path,
    i: usize,
    bootstrap: &[String],
) -> Result<(Daemon, Vec<String>)> {
    let home = dir.join(format!("node{i}"));
    std::fs::create_dir_all(&home)?;
    let key = home.join("key");
    std::fs::write(&key, format!("{:02x}", 0x11 * (i + 1)).repeat(32))?;
    let config = home.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "secret_key_file = {:?}\nbootstrap = {bootstrap:?}\ndata_dir = {:?}\n{CONFIG_TAIL}",
            key.display().to_string(),
            home.join("data").display().to_string()
        ),
    )?;
    let mut child = Command::new(binary)
        .args(["node", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(home.join("node.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let (mut addrs, mut api) = (None, None);
    while addrs.is_none() || api.is_none() {
        let v = rx
            .recv_timeout(Duration::from_secs(30))
            .with_context(|| format!("node {i} did not start (see {})", home.display()))?;
        match v["event"].as_str() {
            Some("listening") => addrs = v["addrs"].as_array().cloned(),
            Some("api") => api = v["listen"].as_str().map(str::to_owned),
            _ => {}
        }
    }
    let token = std::fs::read_to_string(home.join("data/api.cookie"))?;
    let mut daemon = Daemon {
        child,
        api: api.unwrap_or_default(),
        token: token.trim().to_owned(),
        pubkey: String::new(),
    };
    let (_, status) = daemon.call("GET", "/v1/status", None)?;
    daemon.pubkey = status["pubkey"]
        .as_str()
        .context("status: pubkey")?
        .to_owned();
    let addrs = addrs
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    Ok((daemon, addrs))
}

fn request(creator: &Daemon, keys: &[String], n: usize) -> Result<String> {
    let body =
        json!({"signers": keys, "message": format!("{:064x}", 0x0005_ca1e_0000_u64 + n as u64)});
    let (status, out) = creator.call("POST", "/v1/requests", Some(&body))?;
    if status != 201 {
        bail!("request {n}: {status} {out}");
    }
    out["session_id"]
        .as_str()
        .map(str::to_owned)
        .context("session_id")
}

/// (signed on every node, ended with an error on some node).
fn outcomes(nodes: &[Daemon], ids: &[String]) -> Result<(usize, usize)> {
    let mut records = Vec::new();
    for d in nodes {
        let (_, list) = d.call("GET", "/v1/sessions", None)?;
        let by_id: std::collections::HashMap<String, Value> = list
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| Some((r["session_id"].as_str()?.to_owned(), r)))
            .collect();
        records.push(by_id);
    }
    let (mut signed, mut failed) = (0, 0);
    for id in ids {
        let views: Vec<Option<&Value>> = records.iter().map(|r| r.get(id)).collect();
        if views
            .iter()
            .all(|v| v.is_some_and(|r| r["signature"].is_string()))
        {
            signed += 1;
        } else if views
            .iter()
            .any(|v| v.is_some_and(|r| !r["error"].is_null()))
        {
            failed += 1;
        }
    }
    Ok((signed, failed))
}

/// `concurrent_sessions` and `idle_rss`.
pub fn run(binary: &Path) -> Result<Vec<Value>> {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("lotus-musig2-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut nodes = Daemons(Vec::new());
    let (first, bootstrap) = start(binary, &dir, 0, &[])?;
    nodes.0.push(first);
    for i in 1..NODES {
        nodes.0.push(start(binary, &dir, i, &bootstrap)?.0);
    }
    let keys: Vec<String> = nodes.0.iter().map(|d| d.pubkey.clone()).collect();

    // Warm up: the first session that completes shows the directory is full.
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 0.. {
        if Instant::now() > deadline {
            bail!(
                "no warm-up session completed in 60 s (logs in {})",
                dir.display()
            );
        }
        if let Ok(id) = request(&nodes.0[0], &keys, 1_000_000 + n) {
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until && outcomes(&nodes.0, std::slice::from_ref(&id))?.0 == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            if outcomes(&nodes.0, &[id])?.0 == 1 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    let idle: Vec<u64> = nodes.0.iter().map(Daemon::rss_kib).collect();
    let idle_mib = *idle.iter().max().unwrap_or(&0) as f64 / 1024.0;

    // The sampler: per node, peak RSS and peak live sessions.
    let nodes = Arc::new(nodes);
    let stop = Arc::new(AtomicBool::new(false));
    let peaks = Arc::new(Mutex::new(vec![(0u64, 0u64); NODES]));
    let sampler = {
        let (nodes, stop, peaks) = (Arc::clone(&nodes), Arc::clone(&stop), Arc::clone(&peaks));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (i, d) in nodes.0.iter().enumerate() {
                    let rss = d.rss_kib();
                    let live = d
                        .call("GET", "/v1/status", None)
                        .ok()
                        .and_then(|(_, s)| s["sessions_active"].as_u64())
                        .unwrap_or(0);
                    let mut p = peaks
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    p[i] = (p[i].0.max(rss), p[i].1.max(live));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let started = Instant::now();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let (nodes, keys, ids, refused) = (&nodes, &keys, &ids, &refused);
            scope.spawn(move || {
                for n in (c..SESSIONS).step_by(CLIENTS) {
                    match request(&nodes.0[0], keys, n) {
                        Ok(id) => ids
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(id),
                        Err(e) => refused
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(e.to_string()),
                    }
                }
            });
        }
    });
    let ids = ids
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let (mut signed, mut failed);
    loop {
        (signed, failed) = outcomes(&nodes.0, &ids)?;
        if signed + failed == ids.len() || started.elapsed() > DEADLINE {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let peaks = peaks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let per_session = peaks
        .iter()
        .zip(&idle)
        .map(|((rss, live), idle)| (rss.saturating_sub(*idle) * 1024) / (*live).max(1))
        .max()
        .unwrap_or(0);
    // The worst node's own peak of live sessions, the one divided by.
    let peak_live = peaks
        .iter()
        .zip(&idle)
        .max_by_key(|((rss, live), idle)| (rss.saturating_sub(**idle) * 1024) / (*live).max(1))
        .map_or(0, |((_, live), _)| *live);
    let refused = refused
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let errors = SESSIONS - signed;
    let mut concurrent = json!({
        "op": "concurrent_sessions", "nodes": NODES, "sessions": SESSIONS,
        "completed": signed, "errors": errors, "ms": ms.round(),
        "sessions_per_second": ((signed as f64 / (ms / 1000.0)) * 10.0).round() / 10.0,
        "bytes_per_session": per_session, "peak_live": peak_live,
    });
    if !refused.is_empty() {
        concurrent["refused"] = json!(refused.len());
        concurrent["first_refusal"] = json!(refused[0]);
    }
    if failed > 0 || errors > 0 {
        concurrent["logs"] = json!(dir.display().to_string());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(vec![
        concurrent,
        json!({"op": "idle_rss", "mib": (idle_mib * 10.0).round() / 10.0}),
    ])
}
