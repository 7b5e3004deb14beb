//! Test support: a chain of real Lotus transactions, an in-process indexer over
//! it, and a small Chronik-format HTTP server on 127.0.0.1.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use musig2_core::hash::sha256;
use musig2_core::{PublicKey, SecretKey};
use musig2_identity::burn::burn_script;
use musig2_identity::chronik::proto;
use musig2_identity::{
    BurnPolicy, ChronikClient, ChronikConfig, ChronikError, IdentityManager, IdentityStore,
    IndexedTx, Indexer, ManualClock, Network, OutPoint, Transaction, TxId, TxInput, TxOutput,
};
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

pub const XPI: u64 = 1_000_000;
pub const START_MS: u64 = 1_700_000_000_000;

/// A secret key from a seed byte (1..=255).
pub fn secret(seed: u8) -> SecretKey {
    SecretKey::from_bytes(&[seed; 32]).unwrap()
}

pub fn pubkey(seed: u8) -> PublicKey {
    secret(seed).public_key()
}

/// A transaction with one input and two outputs: `script` burning `amount` at
/// output 0, and a P2PKH change output at 1. `nonce` makes it unique.
pub fn burn_tx_with_script(script: Vec<u8>, amount: u64, nonce: u64) -> Vec<u8> {
    let prev = TxId::from_internal_bytes(sha256(&nonce.to_le_bytes()));
    let mut p2pkh = vec![0x76, 0xa9, 0x14];
    p2pkh.extend_from_slice(&sha256(&nonce.to_be_bytes())[..20]);
    p2pkh.extend_from_slice(&[0x88, 0xac]);
    let mut script_sig = vec![0x41];
    script_sig.extend_from_slice(&[0x30; 65]);
    script_sig.push(0x21);
    script_sig.extend_from_slice(&[0x02; 33]);
    Transaction {
        version: 2,
        inputs: vec![TxInput {
            prev_out: OutPoint::new(prev, 1),
            script_sig,
            sequence: 0xffff_ffff,
        }],
        outputs: vec![
            TxOutput {
                value: amount,
                script,
            },
            TxOutput {
                value: 12 * XPI,
                script: p2pkh,
            },
        ],
        lock_time: 0,
    }
    .serialize()
}

/// The raw bytes of a canonical `MSg2` burn of `amount` for `key`.
pub fn burn_tx(key: &PublicKey, amount: u64, nonce: u64) -> Vec<u8> {
    burn_tx_with_script(burn_script(key), amount, nonce)
}

/// Known transactions and the tip.
#[derive(Debug, Default)]
pub struct Chain {
    pub txs: HashMap<TxId, (Transaction, Option<u32>)>,
    pub tip: u32,
}

/// A shared chain that is also an in-process [`Indexer`].
#[derive(Debug, Clone, Default)]
pub struct ChainHandle(pub Arc<Mutex<Chain>>);

impl ChainHandle {
    pub fn new(tip: u32) -> Self {
        let chain = Self::default();
        chain.0.lock().unwrap().tip = tip;
        chain
    }

    /// Parses raw transaction bytes and records them at `height` (`None`: mempool).
    pub fn add_raw(&self, raw: &[u8], height: Option<u32>) -> TxId {
        let tx = Transaction::parse(raw).unwrap();
        let txid = tx.txid();
        self.0.lock().unwrap().txs.insert(txid, (tx, height));
        txid
    }

    /// Mines a burn at `height` and returns its outpoint (output 0).
    pub fn burn(&self, key: &PublicKey, amount: u64, height: u32, nonce: u64) -> OutPoint {
        OutPoint::new(self.add_raw(&burn_tx(key, amount, nonce), Some(height)), 0)
    }

    pub fn set_tip(&self, tip: u32) {
        self.0.lock().unwrap().tip = tip;
    }

    pub fn tip(&self) -> u32 {
        self.0.lock().unwrap().tip
    }
}

impl Indexer for ChainHandle {
    async fn tx(&self, txid: &TxId) -> Result<IndexedTx, ChronikError> {
        let chain = self.0.lock().unwrap();
        let (tx, block_height) =
            chain
                .txs
                .get(txid)
                .cloned()
                .ok_or_else(|| ChronikError::NotFound {
                    path: format!("/tx/{txid}"),
                    code: "tx-not-found".into(),
                    message: "not in the test chain".into(),
                })?;
        Ok(IndexedTx {
            txid: *txid,
            tx,
            block_height,
        })
    }

    async fn tip_height(&self) -> Result<u32, ChronikError> {
        Ok(self.tip())
    }
}

/// How the test server behaves; shared with the test.
#[derive(Debug)]
pub struct ServerState {
    pub chain: ChainHandle,
    pub network: Mutex<Network>,
    /// Answer every request with bytes that are not protobuf.
    pub garbage: AtomicBool,
    /// Delay every answer by this many ms.
    pub delay_ms: AtomicU64,
    /// Answer this many requests with `503`.
    pub fail_next: AtomicUsize,
    /// Serve transactions with output 0's value changed (a lying indexer).
    pub tamper: AtomicBool,
    /// Requests received.
    pub hits: AtomicUsize,
    /// Bodies of `POST /broadcast-tx` requests received, decoded.
    pub broadcasts: Mutex<Vec<proto::BroadcastTxRequest>>,
}

impl ServerState {
    pub fn new(chain: ChainHandle) -> Arc<Self> {
        Arc::new(Self {
            chain,
            network: Mutex::new(Network::Xpi),
            garbage: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            fail_next: AtomicUsize::new(0),
            tamper: AtomicBool::new(false),
            hits: AtomicUsize::new(0),
            broadcasts: Mutex::new(Vec::new()),
        })
    }

    /// `POST /broadcast-tx`: a node's answer. A transaction that does not
    /// parse is refused with `400`; otherwise it enters the mempool (so
    /// `GET /tx/{txid}` serves it) and its txid is returned — a wrong one
    /// when `tamper` is set.
    fn broadcast(&self, body: &[u8]) -> (&'static str, Vec<u8>) {
        let Ok(request) = proto::BroadcastTxRequest::decode(body) else {
            return error("400 Bad Request", "invalid-protobuf", "bad body", true);
        };
        self.broadcasts.lock().unwrap().push(request.clone());
        let Ok(tx) = Transaction::parse(&request.raw_tx) else {
            return error(
                "400 Bad Request",
                "failed-parsing-tx",
                "Invalid tx encoding",
                true,
            );
        };
        let mut txid = self.chain.add_raw(&request.raw_tx, None).internal_bytes();
        assert_eq!(tx.txid().internal_bytes(), txid);
        if self.tamper.load(Ordering::SeqCst) {
            txid[0] ^= 1;
        }
        let response = proto::BroadcastTxResponse {
            txid: txid.to_vec(),
        };
        ("200 OK", response.encode_to_vec())
    }

    fn respond(&self, method: &str, path: &str, body: &[u8]) -> (&'static str, Vec<u8>) {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return error("503 Service Unavailable", "unavailable", "try later", false);
        }
        if self.garbage.load(Ordering::SeqCst) {
            return (
                "200 OK",
                b"<html>\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff</html>".to_vec(),
            );
        }
        if path == "/broadcast-tx" {
            if method != "POST" {
                return error("405 Method Not Allowed", "method", "POST only", true);
            }
            return self.broadcast(body);
        }
        if path == "/blockchain-info" {
            let info = proto::BlockchainInfo {
                tip_hash: vec![0x11; 32],
                tip_height: i32::try_from(self.chain.tip()).unwrap(),
            };
            return ("200 OK", info.encode_to_vec());
        }
        let Some(hex) = path.strip_prefix("/tx/") else {
            return error("404 Not Found", "not-found", "no such endpoint", true);
        };
        let Ok(txid) = hex.parse::<TxId>() else {
            return error("400 Bad Request", "invalid-hash", "bad txid", true);
        };
        let entry = self.chain.0.lock().unwrap().txs.get(&txid).cloned();
        let Some((tx, height)) = entry else {
            return error(
                "404 Not Found",
                "tx-not-found",
                &format!("Txid not found: {txid}"),
                true,
            );
        };
        let block = height.map(|h| proto::BlockMetadata {
            height: i32::try_from(h).unwrap(),
            hash: vec![0x22; 32],
            timestamp: 1_700_000_000,
        });
        let mut msg = proto::Tx::from_transaction(&tx, block, *self.network.lock().unwrap());
        if self.tamper.load(Ordering::SeqCst) {
            msg.outputs[0].value += 1_000 * XPI as i64;
        }
        ("200 OK", msg.encode_to_vec())
    }
}

fn error(status: &'static str, code: &str, msg: &str, user: bool) -> (&'static str, Vec<u8>) {
    let e = proto::Error {
        error_code: code.into(),
        msg: msg.into(),
        is_user_error: user,
    };
    (status, e.encode_to_vec())
}

/// A Chronik-format HTTP/1.1 server on 127.0.0.1 (one request per connection).
pub struct TestServer {
    pub url: String,
    pub state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start(state: Arc<ServerState>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, shared.clone()));
            }
        });
        Self { url, state, task }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

async fn serve(mut sock: TcpStream, state: Arc<ServerState>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > 16 * 1024 {
            return;
        }
    }
    let end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&request[..end]).into_owned();
    let method = head.split_whitespace().next().unwrap_or("").to_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    if length > 1 << 20 {
        return;
    }
    let mut body = request[end..].to_vec();
    while body.len() < length {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    body.truncate(length);
    state.hits.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let (status, body) = state.respond(&method, &path, &body);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(&body).await;
    let _ = sock.shutdown().await;
}

/// A URL on 127.0.0.1 where nothing listens.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Client settings for tests: 2 s timeouts (only the slow-server test needs a
/// short one; a loaded CI machine must not time out ordinary requests), one
/// retry after 10 ms.
pub fn test_config(urls: Vec<String>) -> ChronikConfig {
    let mut config = ChronikConfig::with_urls(urls);
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(2);
    config.retries = 1;
    config.backoff_initial = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(20);
    config.proxy_from_env = false;
    config
}

pub type HttpManager = IdentityManager<ChronikClient, Arc<ManualClock>>;

/// A server over a fresh chain, and a manager talking to it over HTTP.
pub struct HttpEnv {
    pub chain: ChainHandle,
    pub server: TestServer,
    pub clock: Arc<ManualClock>,
    pub manager: HttpManager,
}

pub async fn http_env(tip: u32) -> HttpEnv {
    http_env_with_timeout(tip, Duration::from_secs(2)).await
}

pub async fn http_env_with_timeout(tip: u32, request_timeout: Duration) -> HttpEnv {
    let chain = ChainHandle::new(tip);
    let server = TestServer::start(ServerState::new(chain.clone())).await;
    let mut config = test_config(vec![server.url.clone()]);
    config.request_timeout = request_timeout;
    let client = ChronikClient::new(config).unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let manager = IdentityManager::new(
        client,
        clock.clone(),
        IdentityStore::in_memory().unwrap(),
        BurnPolicy::default(),
    )
    .unwrap();
    HttpEnv {
        chain,
        server,
        clock,
        manager,
    }
}
