//! Test support for the daemon tests: real `lotus-musig2 node` processes on
//! loopback, their API over raw HTTP and `lotus-musig2 rpc`, and waits that
//! fail the test on timeout.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lotus_musig2::core::{Keypair, SecretKey};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_lotus-musig2");
pub const WAIT: Duration = Duration::from_secs(90);

/// Child processes killed when the test ends, even by a panic.
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The lines a process prints (JSON ones), read on a thread.
pub fn lines_of(child: &mut Child) -> mpsc::Receiver<Value> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    rx
}

/// The next value that satisfies `want`, or a failed test.
pub fn wait_for(rx: &mpsc::Receiver<Value>, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if want(&v) => return v,
            Ok(_) => {}
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

pub struct Node {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub api: String,
    pub out: mpsc::Receiver<Value>,
    pub listening: Value,
    pub started: Value,
}

pub fn start(children: &mut Children, dir: &Path, config: &Path) -> Node {
    let mut child = Command::new(BIN)
        .args(["node", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        // Warnings (a session that failed, and why) for a failing test to show.
        .stderr(std::fs::File::create(config.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    let out = lines_of(&mut child);
    children.0.push(child);
    let listening = wait_for(&out, "listening", |v| v["event"] == "listening");
    let started = wait_for(&out, "the API", |v| v["event"] == "api");
    Node {
        dir: dir.to_path_buf(),
        config: config.to_path_buf(),
        api: started["listen"].as_str().unwrap().to_string(),
        out,
        listening,
        started,
    }
}

impl Node {
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("api.cookie")).unwrap()
    }

    /// `lotus-musig2 rpc --datadir DIR ARGS…`: (exit code, JSON).
    pub fn rpc(&self, args: &[&str]) -> (i32, Value) {
        let out = Command::new(BIN)
            .args(["rpc", "--datadir", self.dir.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let value = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
            panic!(
                "rpc {args:?}: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap(), value)
    }

    pub fn rpc_ok(&self, args: &[&str]) -> Value {
        let (code, v) = self.rpc(args);
        assert_eq!(code, 0, "rpc {args:?}: {v}");
        v
    }

    /// Polls `rpc session ID` until `done` holds: a co-signer's record
    /// changes after the creator's, never at the same moment.
    pub fn session_when(&self, session_id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (code, s) = self.rpc(&["session", session_id]);
            if code == 0 && done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "session {session_id} never got there: {s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `lotus-musig2 rpc events`, connected (its first line is `subscribed`).
    pub fn events(&self, children: &mut Children) -> mpsc::Receiver<Value> {
        let mut child = Command::new(BIN)
            .args(["rpc", "--datadir", self.dir.to_str().unwrap(), "events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rx = lines_of(&mut child);
        children.0.push(child);
        wait_for(&rx, "the event stream", |v| v["event"] == "subscribed");
        rx
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, JSON body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request += &format!("Authorization: Bearer {token}\r\n");
    }
    request += &format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `GET /metrics` parsed: every sample line is `name{labels} value`.
pub fn scrape(addr: &str) -> Vec<(String, f64)> {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(body.ends_with("# EOF\n"), "not OpenMetrics text");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample {l:?}"));
            let value = value.parse().unwrap_or_else(|_| panic!("bad value {l:?}"));
            (name.to_string(), value)
        })
        .collect()
}

pub fn sample(samples: &[(String, f64)], name: &str) -> f64 {
    samples
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0.0, |(_, v)| *v)
}

pub fn keypair(i: u8) -> Keypair {
    Keypair::new(SecretKey::from_bytes(&[0x11 * (i + 1); 32]).unwrap())
}

pub fn session_events(rx: &mpsc::Receiver<Value>, session_id: &str, until: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let v = wait_for(rx, until, |_| true);
        let mine = v["session_id"] == session_id;
        let done = mine && v["event"] == until;
        seen.push(v);
        if done {
            return seen;
        }
    }
}

/// Node `i`'s directory, key and config: `top` goes before the `[api]`
/// table, `tables` after it. Returns (data_dir, config).
pub fn write_config(
    dir: &Path,
    i: u8,
    bootstrap: &[String],
    top: &str,
    tables: &str,
) -> (PathBuf, PathBuf) {
    let d = dir.join(format!("node{i}"));
    std::fs::create_dir_all(&d).unwrap();
    let key_file = d.join("key");
    std::fs::write(&key_file, hex::encode([0x11 * (i + 1); 32])).unwrap();
    let text = format!(
        // These daemons sign bare 32-byte messages (the API's `message`
        // form), which a node joins only when its config allows it.
        "secret_key_file = {:?}\nbootstrap = {bootstrap:?}\nallow_blind_signing = true\ndata_dir = {:?}\n{top}\n[api]\nlisten = \"127.0.0.1:0\"\n\n{tables}",
        key_file.display().to_string(),
        d.join("data").display().to_string(),
    );
    let config = d.join("node.toml");
    std::fs::write(&config, text).unwrap();
    (d.join("data"), config)
}

pub fn addrs(node: &Node) -> Vec<String> {
    node.listening["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// `rpc request` on `node` for the signers with these test indices:
/// (exit code, JSON).
pub fn request(node: &Node, signers: &[u8], message: &str) -> (i32, Value) {
    let keys: Vec<String> = signers
        .iter()
        .map(|i| keypair(*i).public_key().to_string())
        .collect();
    let mut args = vec!["request"];
    for k in &keys {
        args.extend(["--signer", k]);
    }
    args.extend(["--message", message]);
    node.rpc(&args)
}
