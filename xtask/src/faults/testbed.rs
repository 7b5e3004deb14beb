//! The testbed: one network namespace per host, each joined by a veth pair
//! to a bridge in the root namespace (`10.77.0.1/24`), one
//! `lotus-musig2 node` daemon per namespace (p2p on `10.77.0.H:4001`, API on
//! `10.77.0.H:8080`), driven from the root namespace with `lotus-musig2 rpc`.
//!
//! Faults come from what this kind of machine has (no `netem`): `tc tbf`
//! for bandwidth, the root side of a veth pair down for a partition,
//! nftables `numgen random` for loss, and for delay an nftables redirect of
//! inbound p2p connections through the xtask's own TCP delay proxy
//! (`proxy.rs`), started inside the namespace.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

const BRIDGE: &str = "lmfbr";
const SUBNET: &str = "10.77.0";
const P2P_PORT: u16 = 4001;
const PROXY_PORT: u16 = 5001;
const API_PORT: u16 = 8080;

/// Runs a command; fails with its stderr.
pub fn sh(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("{}: could not start", args[0]))?;
    if !out.status.success() {
        bail!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs a command, ignoring failure (clean-up).
fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// One host: a namespace, its node and, with delay on, its proxy.
pub struct Host {
    ns: String,
    veth: String,
    ip: String,
    dir: PathBuf,
    node: Option<Child>,
    proxy: Option<Child>,
    /// The node's signing key (hex), from its `listening` line.
    pub pubkey: String,
}

/// The namespaces, bridge and nodes of one scenario; torn down on drop.
pub struct Testbed {
    pub hosts: Vec<Host>,
    bin: PathBuf,
    extra: String,
    bootstrap: Vec<String>,
}

impl Testbed {
    /// `n` hosts, each running a node whose config ends with `extra`.
    pub fn new(n: usize, bin: &Path, root: &Path, extra: &str) -> Result<Self> {
        teardown_leftovers();
        sh(&["ip", "link", "add", BRIDGE, "type", "bridge"])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{SUBNET}.1/24"),
            "dev",
            BRIDGE,
        ])?;
        sh(&["ip", "link", "set", BRIDGE, "up"])?;
        let mut bed = Self {
            hosts: Vec::new(),
            bin: bin.to_path_buf(),
            extra: extra.to_owned(),
            bootstrap: Vec::new(),
        };
        for i in 0..n {
            let (ns, veth, ip) = (
                format!("lmf-{i}"),
                format!("lmfv{i}"),
                format!("{SUBNET}.{}", 10 + i),
            );
            sh(&["ip", "netns", "add", &ns])?;
            sh(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            sh(&["ip", "link", "set", &veth, "master", BRIDGE, "up"])?;
            sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ])?;
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            let dir = root.join(format!("host{i}"));
            std::fs::create_dir_all(&dir)?;
            // Distinct, fixed signing keys: 0x01…01, 0x02…02, …
            std::fs::write(dir.join("key"), hex32(i as u8 + 1))?;
            bed.hosts.push(Host {
                ns,
                veth,
                ip,
                dir,
                node: None,
                proxy: None,
                pubkey: String::new(),
            });
        }
        for i in 0..n {
            bed.start(i)?;
        }
        Ok(bed)
    }

    fn config(&self, i: usize) -> String {
        let h = &self.hosts[i];
        let bootstrap: Vec<String> = if i == 0 {
            Vec::new()
        } else {
            self.bootstrap.clone()
        };
        format!(
            "secret_key_file = {:?}\nlisten = [\"/ip4/{}/tcp/{P2P_PORT}\"]\nbootstrap = {bootstrap:?}\n\
             data_dir = {:?}\nallow_blind_signing = true\napprove = \"auto\"\n\n\
             [api]\nlisten = \"{}:{API_PORT}\"\nallow_remote = true\n\n{}",
            h.dir.join("key").display().to_string(),
            h.ip,
            h.dir.join("data").display().to_string(),
            h.ip,
            self.extra
        )
    }

    /// Starts (or restarts) host `i`'s node and waits until its API serves.
    pub fn start(&mut self, i: usize) -> Result<()> {
        let config = self.hosts[i].dir.join("node.toml");
        std::fs::write(&config, self.config(i))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.hosts[i].dir.join("node.log"))?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i].ns])
            .arg(&self.bin)
            .args(["node", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting a node")?;
        let stdout = child.stdout.take().context("node stdout")?;
        let (tx, rx) = mpsc::channel::<Value>();
        // Every line the node prints is kept in `node.out`, for a report.
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.hosts[i].dir.join("node.out"))?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(out, "{line}");
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        self.hosts[i].node = Some(child);
        loop {
            let v = rx
                .recv_timeout(Duration::from_secs(30))
                .with_context(|| format!("host {i}: the node did not start"))?;
            if v["event"] == "listening" {
                self.hosts[i].pubkey = v["pubkey"].as_str().unwrap_or_default().to_owned();
                if i == 0 {
                    self.bootstrap = v["addrs"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                }
            }
            if v["event"] == "api" {
                return Ok(());
            }
        }
    }

    /// SIGKILL of host `i`'s node.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.hosts[i].node.take() {
            // `ip netns exec` execs the node: the child is the node itself.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether host `i`'s node runs.
    pub fn alive(&self, i: usize) -> bool {
        self.hosts[i].node.is_some()
    }

    /// `lotus-musig2 rpc ARGS…` against host `i`: its JSON answer.
    pub fn rpc(&self, i: usize, args: &[&str]) -> Result<Value> {
        let h = &self.hosts[i];
        let out = Command::new(&self.bin)
            .args(["rpc", "--url", &format!("http://{}:{API_PORT}", h.ip)])
            .arg("--token-file")
            .arg(h.dir.join("data").join("api.cookie"))
            .args(args)
            .output()?;
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "host {i}: rpc {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
    }

    /// Drops `percent` % of the packets host `i` receives (its API port
    /// excepted, so the suite still sees it).
    pub fn loss(&self, i: usize, percent: u32) -> Result<()> {
        let ns = &self.hosts[i].ns;
        let nft = |rule: &[&str]| {
            let mut args = vec!["ip", "netns", "exec", ns, "nft"];
            args.extend_from_slice(rule);
            sh(&args)
        };
        nft(&["add", "table", "inet", "lmfloss"])?;
        nft(&[
            "add",
            "chain",
            "inet",
            "lmfloss",
            "in",
            "{ type filter hook input priority 0; }",
        ])?;
        nft(&[
            "add", "rule", "inet", "lmfloss", "in", "iif", "eth0", "tcp", "dport", "8080", "accept",
        ])?;
        let percent = percent.to_string();
        nft(&[
            "add", "rule", "inet", "lmfloss", "in", "iif", "eth0", "numgen", "random", "mod",
            "100", "<", &percent, "drop",
        ])
    }

    /// Limits host `i`'s outgoing bandwidth with a token bucket.
    pub fn bandwidth(&self, i: usize, rate: &str) -> Result<()> {
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.hosts[i].ns,
            "tc",
            "qdisc",
            "add",
            "dev",
            "eth0",
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "32kbit",
            "latency",
            "400ms",
        ])
    }

    /// Delays every p2p connection host `i` accepts by `delay_ms` ±
    /// `jitter_ms` each way: inbound p2p connections are redirected to the
    /// delay proxy, which forwards them to the node.
    pub fn delay(&mut self, i: usize, delay_ms: u64, jitter_ms: u64) -> Result<()> {
        let (ns, ip) = (self.hosts[i].ns.clone(), self.hosts[i].ip.clone());
        let exe = std::env::current_exe()?;
        let proxy = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(exe)
            .args([
                "faults-proxy",
                &format!("{ip}:{PROXY_PORT}"),
                &format!("{ip}:{P2P_PORT}"),
                &delay_ms.to_string(),
                &jitter_ms.to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()?;
        self.hosts[i].proxy = Some(proxy);
        std::thread::sleep(Duration::from_millis(200));
        let nft = |rule: &[&str]| {
            let mut args = vec!["ip", "netns", "exec", &ns, "nft"];
            args.extend_from_slice(rule);
            sh(&args)
        };
        nft(&["add", "table", "ip", "lmfdelay"])?;
        nft(&[
            "add",
            "chain",
            "ip",
            "lmfdelay",
            "pre",
            "{ type nat hook prerouting priority dstnat; }",
        ])?;
        nft(&[
            "add",
            "rule",
            "ip",
            "lmfdelay",
            "pre",
            "iif",
            "eth0",
            "tcp",
            "dport",
            &P2P_PORT.to_string(),
            "redirect",
            "to",
            &format!(":{PROXY_PORT}"),
        ])
    }

    /// Cuts host `i` off the bridge (`up = false`) or joins it again.
    pub fn link(&self, i: usize, up: bool) -> Result<()> {
        sh(&[
            "ip",
            "link",
            "set",
            &self.hosts[i].veth,
            if up { "up" } else { "down" },
        ])
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            for child in [h.node.take(), h.proxy.take()].into_iter().flatten() {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        teardown_leftovers();
    }
}

/// Removes every namespace, veth and the bridge a previous run may have
/// left (a namespace's veth pair can outlive `ip netns del` for a moment).
pub fn teardown_leftovers() {
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(ns) = line
                .split_whitespace()
                .next()
                .filter(|n| n.starts_with("lmf-"))
            {
                sh_quiet(&["ip", "netns", "del", ns]);
            }
        }
    }
    if let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split(':').nth(1).map(str::trim).unwrap_or_default();
            let name = name.split('@').next().unwrap_or_default();
            if name.starts_with("lmfv") {
                sh_quiet(&["ip", "link", "del", name]);
            }
        }
    }
    sh_quiet(&["ip", "link", "del", BRIDGE]);
}

fn hex32(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}
