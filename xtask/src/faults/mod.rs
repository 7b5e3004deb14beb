//! `cargo xtask faults [SCENARIO…]`: the multi-host fault suite. It builds
//! the release binary, runs one `lotus-musig2 node` per network namespace
//! (`testbed.rs`), drives signing sessions through each scenario, and prints
//! one JSON object per scenario:
//!
//! `{"scenario", "hosts", "attempted", "completed", "failed_named", "lost",
//! "p50_ms", "p99_ms"}` (plus `completed_on_some_hosts`,
//! `backup_broadcasts` and `notes` when they apply). Hosts cut off or
//! killed by the scenario are not judged. `completed`: a signature exists,
//! no two hosts hold different ones, and any host without it failed naming
//! only faulted hosts (`completed_on_some_hosts` counts those split
//! outcomes); when every judged host holds it, the suite plays the wallet:
//! the host told to broadcast (the elected coordinator, or a backup when
//! it was killed) says it did, and every other host must record the
//! confirmation, or the session counts as lost (`backup_broadcasts` counts
//! broadcasts by a backup). `failed_named`:
//! every judged host failed naming only faulted hosts. `lost`: hung, ended
//! naming nobody, named an innocent host, or hosts hold different
//! signatures. The goal: `lost = 0` everywhere.
//!
//! The hosts' data directories and logs are deleted after a run without a
//! lost session, kept otherwise or with `LOTUS_MUSIG2_FAULTS_KEEP=1`.
//!
//! Needs root (namespaces); says so and skips otherwise. Loss and delay
//! need nftables, installed with apt-get when missing; without it those
//! scenarios are skipped, with a message.

mod proxy;
mod testbed;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

pub use proxy::run as proxy;
use testbed::Testbed;

/// Every node's config tail: the suite's creator asks often, and short
/// timeouts make a fault end a session within seconds.
const EXTRA: &str = "[security]\nmax_requests_per_minute = 6000\nrequest_burst = 1000\n\n\
                     [timeouts]\njoin_secs = 20\nround_secs = 15\ndisconnect_grace_secs = 3\nbroadcast_secs = 5\n";
/// `broadcast_secs` above.
const BROADCAST_TIMEOUT: Duration = Duration::from_secs(5);
/// A session not over by then has hung.
const DEADLINE: Duration = Duration::from_secs(90);
/// The phases in order, as session records name them.
const PHASES: [&str; 6] = [
    "SIGNING_REQUEST",
    "SESSION_READY",
    "NONCE_COMMIT",
    "NONCE_EXCHANGE",
    "PARTIAL_SIG_EXCHANGE",
    "COMPLETE",
];

/// Whom a scenario hits, when.
#[derive(Clone, Copy)]
enum Fault {
    /// Nothing beyond the link shaping.
    None,
    /// Host 2 leaves the bridge once it reaches the phase; it comes back
    /// after that session, and one more session must complete.
    Partition(&'static str),
    /// SIGKILL of a co-signer (not the coordinator) at the phase; restarted
    /// after the session (`restart`: at once, and then a new run).
    KillCosigner(&'static str, bool),
    /// SIGKILL of the elected coordinator at the phase.
    KillCoordinator(&'static str),
}

#[derive(Clone, Copy)]
enum Shape {
    Clean,
    Loss(u32),
    Delay(u64, u64),
    Bandwidth(&'static str),
}

struct Scenario {
    name: &'static str,
    hosts: usize,
    sessions: usize,
    shape: Shape,
    fault: Fault,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "none-3",
        hosts: 3,
        sessions: 5,
        shape: Shape::Clean,
        fault: Fault::None,
    },
    Scenario {
        name: "none-10",
        hosts: 10,
        sessions: 3,
        shape: Shape::Clean,
        fault: Fault::None,
    },
    Scenario {
        name: "loss-5pct",
        hosts: 3,
        sessions: 5,
        shape: Shape::Loss(5),
        fault: Fault::None,
    },
    Scenario {
        name: "loss-20pct",
        hosts: 3,
        sessions: 5,
        shape: Shape::Loss(20),
        fault: Fault::None,
    },
    Scenario {
        name: "delay-100ms-50ms",
        hosts: 3,
        sessions: 5,
        shape: Shape::Delay(100, 50),
        fault: Fault::None,
    },
    Scenario {
        name: "bandwidth-1mbit",
        hosts: 3,
        sessions: 5,
        shape: Shape::Bandwidth("1mbit"),
        fault: Fault::None,
    },
    Scenario {
        name: "partition-round1-heal",
        hosts: 3,
        sessions: 1,
        shape: Shape::Delay(50, 0),
        fault: Fault::Partition("NONCE_EXCHANGE"),
    },
    Scenario {
        name: "kill-cosigner-round0",
        hosts: 3,
        sessions: 2,
        shape: Shape::Delay(50, 0),
        fault: Fault::KillCosigner("NONCE_COMMIT", false),
    },
    Scenario {
        name: "kill-cosigner-round1",
        hosts: 3,
        sessions: 2,
        shape: Shape::Delay(50, 0),
        fault: Fault::KillCosigner("NONCE_EXCHANGE", false),
    },
    Scenario {
        name: "kill-cosigner-round2",
        hosts: 3,
        sessions: 2,
        shape: Shape::Delay(50, 0),
        fault: Fault::KillCosigner("PARTIAL_SIG_EXCHANGE", false),
    },
    Scenario {
        name: "kill-coordinator-before-round2",
        hosts: 3,
        sessions: 2,
        shape: Shape::Delay(50, 0),
        fault: Fault::KillCoordinator("NONCE_EXCHANGE"),
    },
    Scenario {
        name: "kill-coordinator-after-round2",
        hosts: 3,
        sessions: 2,
        shape: Shape::Delay(50, 0),
        fault: Fault::KillCoordinator("COMPLETE"),
    },
    // Sessions of 4 or more run their rounds through the elected
    // coordinator (PROTOCOL.md §7.5): the same faults on 5 hosts.
    Scenario {
        name: "relay-loss-20pct-5",
        hosts: 5,
        sessions: 3,
        shape: Shape::Loss(20),
        fault: Fault::None,
    },
    Scenario {
        name: "relay-partition-round1-heal-5",
        hosts: 5,
        sessions: 1,
        shape: Shape::Delay(50, 0),
        fault: Fault::Partition("NONCE_EXCHANGE"),
    },
    Scenario {
        name: "relay-kill-cosigner-round1-5",
        hosts: 5,
        sessions: 2,
        shape: Shape::Delay(50, 0),
        fault: Fault::KillCosigner("NONCE_EXCHANGE", false),
    },
    Scenario {
        name: "relay-kill-relay-round1-5",
        hosts: 5,
        sessions: 2,
        shape: Shape::Delay(50, 0),
        fault: Fault::KillCoordinator("NONCE_EXCHANGE"),
    },
    Scenario {
        name: "relay-kill-relay-after-round2-5",
        hosts: 5,
        sessions: 2,
        shape: Shape::Delay(50, 0),
        fault: Fault::KillCoordinator("COMPLETE"),
    },
    Scenario {
        name: "kill-restart-then-new-run",
        hosts: 3,
        sessions: 1,
        shape: Shape::Delay(50, 0),
        fault: Fault::KillCosigner("NONCE_EXCHANGE", true),
    },
];

/// What became of one session.
enum Class {
    /// The signature, and whether only some hosts hold it (the others
    /// failed, naming a faulted host, before it reached them).
    Completed(u64, bool),
    /// Completed on every judged host, and broadcast by the coordinator of
    /// this attempt (1: the elected one; more: a backup), every host told.
    Broadcast(u64, usize),
    FailedNamed,
    Lost(String),
}

#[derive(Default)]
struct Tally {
    attempted: usize,
    completed: usize,
    failed_named: usize,
    lost: usize,
    split: usize,
    backup_broadcasts: usize,
    times: Vec<u64>,
    notes: Vec<String>,
}

impl Tally {
    fn add(&mut self, class: Class) {
        self.attempted += 1;
        match class {
            Class::Completed(ms, split) => {
                self.completed += 1;
                self.split += usize::from(split);
                self.times.push(ms);
            }
            Class::Broadcast(ms, attempt) => {
                self.completed += 1;
                self.backup_broadcasts += usize::from(attempt > 1);
                self.times.push(ms);
            }
            Class::FailedNamed => self.failed_named += 1,
            Class::Lost(why) => {
                self.lost += 1;
                self.notes.push(why);
            }
        }
    }

    fn json(&mut self, s: &Scenario) -> Value {
        self.times.sort_unstable();
        let pick = |q: f64| {
            (!self.times.is_empty()).then(|| {
                let i = ((self.times.len() as f64 - 1.0) * q).round() as usize;
                self.times[i.min(self.times.len() - 1)]
            })
        };
        let mut v = json!({
            "scenario": s.name, "hosts": s.hosts, "attempted": self.attempted,
            "completed": self.completed, "failed_named": self.failed_named, "lost": self.lost,
            "p50_ms": pick(0.5), "p99_ms": pick(0.99),
        });
        if self.split > 0 {
            v["completed_on_some_hosts"] = json!(self.split);
        }
        if self.backup_broadcasts > 0 {
            v["backup_broadcasts"] = json!(self.backup_broadcasts);
        }
        if !self.notes.is_empty() {
            v["notes"] = json!(self.notes);
        }
        v
    }
}

/// `cargo xtask faults [SCENARIO…]`.
pub fn faults(only: &[&str]) -> Result<()> {
    let uid = Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("==> faults: network namespaces need root; skipped");
        return Ok(());
    }
    let bin = build()?;
    let nft = ensure_nftables();
    let root = std::env::temp_dir().join(format!("lotus-musig2-faults-{}", std::process::id()));
    let mut rows = Vec::new();
    for s in SCENARIOS
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
    {
        if !nft && matches!(s.shape, Shape::Loss(_) | Shape::Delay(..)) {
            eprintln!(
                "==> faults: {}: needs nftables, which could not be installed; skipped",
                s.name
            );
            continue;
        }
        let dir = root.join(s.name);
        std::fs::create_dir_all(&dir)?;
        let row = run(s, &bin, &dir).with_context(|| format!("scenario {}", s.name))?;
        println!("{row}");
        rows.push(row);
    }
    let keep = std::env::var_os("LOTUS_MUSIG2_FAULTS_KEEP").is_some();
    if !keep && rows.iter().all(|r| r["lost"] == 0) {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        eprintln!("==> faults: the hosts' logs are kept in {}", root.display());
    }
    if only.is_empty() {
        write_table(&rows)?;
    }
    Ok(())
}

fn build() -> Result<PathBuf> {
    super::run(
        "build the release node",
        super::cargo().args([
            "build",
            "--release",
            "-p",
            "lotus-musig2-cli",
            "--bin",
            "lotus-musig2",
        ]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| super::root().join("target"), PathBuf::from);
    Ok(target.join("release").join("lotus-musig2"))
}

fn ensure_nftables() -> bool {
    let have = || {
        Command::new("nft")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have() {
        return true;
    }
    eprintln!("==> faults: installing nftables (apt-get)");
    let _ = Command::new("apt-get")
        .args(["install", "-y", "nftables"])
        .output();
    have()
}

fn run(s: &Scenario, bin: &std::path::Path, dir: &std::path::Path) -> Result<Value> {
    let mut bed = Testbed::new(s.hosts, bin, dir, EXTRA)?;
    for i in 0..s.hosts {
        match s.shape {
            Shape::Clean => {}
            Shape::Loss(p) => bed.loss(i, p)?,
            Shape::Delay(d, j) => bed.delay(i, d, j)?,
            Shape::Bandwidth(rate) => bed.bandwidth(i, rate)?,
        }
    }
    // Let the mesh form (advertisements, connections) before timing anything.
    warm_up(&bed)?;
    let mut tally = Tally::default();
    for n in 0..s.sessions {
        let class = session(&mut bed, s.fault, n)?;
        tally.add(class);
        match s.fault {
            Fault::Partition(_) => {
                bed.link(2, true)?;
                // TCP retransmits on the old connections back off while the
                // link is down: give them time to come back.
                std::thread::sleep(Duration::from_secs(30));
                // After the partition heals, a new session completes.
                let class = session(&mut bed, Fault::None, n + 100)?;
                tally.add(class);
            }
            Fault::KillCosigner(_, restart) => {
                restart_dead(&mut bed)?;
                if restart {
                    // The restarted node signs a new run at once.
                    let class = session(&mut bed, Fault::None, n + 100)?;
                    tally.add(class);
                }
            }
            Fault::KillCoordinator(_) => restart_dead(&mut bed)?,
            Fault::None => {}
        }
    }
    Ok(tally.json(s))
}

fn restart_dead(bed: &mut Testbed) -> Result<()> {
    for i in 0..bed.hosts.len() {
        if !bed.alive(i) {
            bed.start(i)?;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    Ok(())
}

/// Waits until every host sees every other one as a peer (or 20 s).
fn warm_up(bed: &Testbed) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let all = (0..bed.hosts.len()).all(|i| {
            bed.rpc(i, &["peers"])
                .ok()
                .and_then(|v| v.as_array().map(Vec::len))
                .is_some_and(|n| n + 1 >= bed.hosts.len())
        });
        if all {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// One session on every host, created by host 0, with `fault` applied.
fn session(bed: &mut Testbed, fault: Fault, n: usize) -> Result<Class> {
    let keys: Vec<String> = bed.hosts.iter().map(|h| h.pubkey.clone()).collect();
    let message = format!("{:064x}", 0x5eed_0000 + n);
    let mut args = vec!["request"];
    for k in &keys {
        args.extend(["--signer", k.as_str()]);
    }
    args.extend(["--message", message.as_str()]);
    let started = Instant::now();
    let out = bed.rpc(0, &args)?;
    let Some(session) = out["session_id"].as_str().map(str::to_owned) else {
        return Ok(Class::Lost(format!("request refused: {out}")));
    };
    // Hosts whose view is judged (not the one cut off or killed), and the
    // keys a failure may rightly name.
    let mut excluded: Vec<usize> = Vec::new();
    let mut culprits: Vec<String> = Vec::new();
    let mut fired = false;
    loop {
        if started.elapsed() > DEADLINE {
            return Ok(Class::Lost(format!("{session}: hung")));
        }
        let records: Vec<(usize, Value)> = (0..bed.hosts.len())
            .filter(|i| bed.alive(*i))
            .filter_map(|i| {
                let r = bed.rpc(i, &["session", &session]).ok()?;
                r["session_id"].is_string().then_some((i, r))
            })
            .collect();
        if !fired
            && let Some(target) = trigger(fault)
            && let Some(victim) = victim(bed, fault, &records)
            && phase_reached(&records, victim, target)
        {
            culprits.push(bed.hosts[victim].pubkey.clone());
            excluded.push(victim);
            match fault {
                Fault::Partition(_) => bed.link(victim, false)?,
                Fault::KillCosigner(_, restart) => {
                    bed.kill(victim);
                    if restart {
                        bed.start(victim)?;
                    }
                }
                Fault::KillCoordinator(_) => bed.kill(victim),
                Fault::None => {}
            }
            fired = true;
            continue;
        }
        let judged: Vec<&Value> = records
            .iter()
            .filter(|(i, _)| !excluded.contains(i))
            .map(|(_, r)| r)
            .collect();
        let expected = (0..bed.hosts.len())
            .filter(|i| bed.alive(*i) && !excluded.contains(i))
            .count();
        let over = |r: &&Value| r["signature"].is_string() || !r["error"].is_null();
        if judged.len() == expected && judged.iter().all(over) {
            let class = classify(&session, &judged, &culprits, started.elapsed());
            if let Class::Completed(ms, false) = class {
                // The wallet's part: whoever is to broadcast does, and says so.
                let judged: Vec<usize> = records
                    .iter()
                    .map(|(i, _)| *i)
                    .filter(|i| !excluded.contains(i))
                    .collect();
                return Ok(match broadcast(bed, &session, &judged)? {
                    Ok(attempt) => Class::Broadcast(ms, attempt),
                    Err(why) => Class::Lost(format!("{session}: {why}")),
                });
            }
            return Ok(class);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until one of `hosts` is told to broadcast the completed
/// `session` (the elected coordinator, or a backup once its clock moved on),
/// has it say it did, and checks every other host took the coordinator's
/// word. The attempt that broadcast (1: the elected coordinator), or what
/// went wrong.
fn broadcast(bed: &Testbed, session: &str, hosts: &[usize]) -> Result<Result<usize, String>> {
    // Every backup in turn, plus slack.
    let deadline = Instant::now() + BROADCAST_TIMEOUT * (bed.hosts.len() as u32 + 1);
    let record = |i: usize| bed.rpc(i, &["session", session]).ok();
    let (broadcaster, attempt) = loop {
        let ours = hosts.iter().find_map(|&i| {
            let r = record(i)?;
            (r["broadcast"]["state"] == "ours").then(|| (i, r["broadcast"]["attempt"].as_u64()))
        });
        if let Some((i, attempt)) = ours {
            break (i, attempt.unwrap_or(0) as usize);
        }
        if Instant::now() > deadline {
            return Ok(Err("no host was told to broadcast".into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let done = bed.rpc(broadcaster, &["broadcast", session])?;
    if done["broadcast"]["state"] != "confirmed" {
        return Ok(Err(format!("broadcast not recorded: {done}")));
    }
    let deadline = Instant::now() + BROADCAST_TIMEOUT;
    for &i in hosts.iter().filter(|i| **i != broadcaster) {
        loop {
            if record(i).is_some_and(|r| r["broadcast"]["state"] == "confirmed") {
                break;
            }
            if Instant::now() > deadline {
                return Ok(Err(format!("host {i} never heard of the broadcast")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(Ok(attempt))
}

fn trigger(fault: Fault) -> Option<&'static str> {
    match fault {
        Fault::None => None,
        Fault::Partition(p) | Fault::KillCosigner(p, _) | Fault::KillCoordinator(p) => Some(p),
    }
}

/// The host the fault hits, once the records say which one it is.
fn victim(bed: &Testbed, fault: Fault, records: &[(usize, Value)]) -> Option<usize> {
    let coordinator = records.iter().find_map(|(_, r)| {
        let index = r["coordinator_index"].as_u64()? as usize;
        let key = r["signers"].get(index)?.as_str()?;
        bed.hosts.iter().position(|h| h.pubkey == key)
    });
    match fault {
        Fault::None => None,
        Fault::Partition(_) => Some(2),
        Fault::KillCoordinator(_) => coordinator,
        // The last host that is neither the creator nor the coordinator.
        Fault::KillCosigner(..) => {
            let coordinator = coordinator?;
            (1..bed.hosts.len()).rev().find(|i| *i != coordinator)
        }
    }
}

fn phase_reached(records: &[(usize, Value)], host: usize, target: &str) -> bool {
    let rank = |p: &str| PHASES.iter().position(|x| *x == p);
    records
        .iter()
        .find(|(i, _)| *i == host)
        .and_then(|(_, r)| Some((rank(r["phase"].as_str()?)?, rank(target)?)))
        .is_some_and(|(now, want)| now >= want)
}

fn classify(session: &str, judged: &[&Value], culprits: &[String], took: Duration) -> Class {
    let signatures: Vec<&str> = judged
        .iter()
        .filter_map(|r| r["signature"].as_str())
        .collect();
    if signatures.iter().any(|s| *s != signatures[0]) {
        return Class::Lost(format!("{session}: hosts hold different signatures"));
    }
    // Every host without the signature must have failed naming only hosts
    // the scenario faulted.
    for r in judged.iter().filter(|r| !r["signature"].is_string()) {
        let signers = r["signers"].as_array().cloned().unwrap_or_default();
        let e = &r["error"];
        let mut named: Vec<usize> = e["culprits"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(Value::as_u64)
                    .map(|i| i as usize)
                    .collect()
            })
            .unwrap_or_default();
        if named.is_empty()
            && let Some(i) = e["signer"].as_u64()
        {
            named.push(i as usize);
        }
        let keys: Vec<&str> = named
            .iter()
            .filter_map(|i| signers.get(*i)?.as_str())
            .collect();
        if keys.is_empty() {
            return Class::Lost(format!("{session}: {} names nobody", e["code"]));
        }
        if keys.iter().any(|k| !culprits.iter().any(|c| c == k)) {
            return Class::Lost(format!(
                "{session}: {} ({}) names an innocent signer",
                e["code"], e["grounds"]
            ));
        }
    }
    match signatures.len() {
        0 => Class::FailedNamed,
        n if n == judged.len() => Class::Completed(took.as_millis() as u64, false),
        // The signature exists (and is served) on some hosts; the others
        // failed naming the faulted host before it reached them.
        _ => Class::Completed(took.as_millis() as u64, true),
    }
}

/// Rewrites the figures in docs/OPERATIONS.md.
fn write_table(rows: &[Value]) -> Result<()> {
    let path = super::root().join("docs/OPERATIONS.md");
    let text = std::fs::read_to_string(&path)?;
    let (Some(a), Some(b)) = (
        text.find("<!-- faults:begin -->"),
        text.find("<!-- faults:end -->"),
    ) else {
        bail!("docs/OPERATIONS.md has no faults markers");
    };
    let mut table = String::from(
        "<!-- faults:begin -->\n| scenario | hosts | attempted | completed | of which on some hosts | broadcast by a backup | failed, named | lost | p50 ms | p99 ms |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r["scenario"].as_str().unwrap_or_default(),
            r["hosts"],
            r["attempted"],
            r["completed"],
            r["completed_on_some_hosts"].as_u64().unwrap_or(0),
            r["backup_broadcasts"].as_u64().unwrap_or(0),
            r["failed_named"],
            r["lost"],
            r["p50_ms"],
            r["p99_ms"]
        ));
    }
    let updated = format!("{}{}{}", &text[..a], table, &text[b..]);
    std::fs::write(&path, updated)?;
    Ok(())
}
