//! An async HTTP client for the Chronik indexer that Lotus uses: protobuf over
//! HTTP, the API of the npm package `chronik-client` 0.19.0's `ChronikClient`.
//!
//! Endpoints used (paths appended to a base URL such as
//! `https://chronik.lotusia.org`):
//!
//! | call | request | success body | errors |
//! | --- | --- | --- | --- |
//! | [`ChronikClient::tx`] | `GET /tx/{txid}` (display hex) | [`proto::Tx`] | `404` + [`proto::Error`] `tx-not-found` |
//! | [`ChronikClient::blockchain_info`] | `GET /blockchain-info` | [`proto::BlockchainInfo`] | |
//! | [`ChronikClient::broadcast_tx`] | `POST /broadcast-tx` with [`proto::BroadcastTxRequest`] | [`proto::BroadcastTxResponse`] | `400` + [`proto::Error`] (e.g. the node refused the transaction) |
//!
//! Every non-200 response carries a [`proto::Error`] body, as in chronik-client's
//! `ensureResponseErrorThrown`.
//!
//! Retries: the client walks its list of base URLs starting from the last one
//! that answered; connection failures, timeouts and `5xx`/`429` answers move on
//! to the next URL, and after each full pass it waits (exponential back-off,
//! capped) before the next pass, up to [`ChronikConfig::retries`] extra passes.
//! A `4xx` answer (such as `404`) and an undecodable body are final: they come
//! from a server that answered, so asking again would not change them.
//! Broadcasting follows the same rules: sending the same transaction twice is
//! harmless (the node already has it), so a lost answer may be asked again.
//!
//! A transaction is never taken on trust: the client checks that the server
//! reports the configured [`Network`] (XPI for Lotus), that the `txid` field is
//! the one asked for, and recomputes the Lotus txid from the returned version,
//! inputs, outputs and lock time (see [`crate::tx`]), so a server cannot
//! substitute an output without finding a SHA-256 collision.

pub mod proto;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prost::Message as _;

pub use proto::Network;

use crate::indexer::{IndexedTx, Indexer};
use crate::tx::{OutPoint, Transaction, TxId, TxInput, TxOutput};

/// Errors of the Chronik client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChronikError {
    /// The configuration lists no URL.
    #[error("no Chronik URL configured")]
    NoUrls,
    /// A configured URL is not an `http://` or `https://` base URL.
    #[error("invalid Chronik URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The server did not answer within the request timeout.
    #[error("{url}: timed out")]
    Timeout {
        /// The URL requested.
        url: String,
    },
    /// Connection or protocol failure.
    #[error("{url}: {source}")]
    Transport {
        /// The URL requested.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The response body exceeds [`ChronikConfig::max_response_bytes`].
    #[error("{url}: response larger than {limit} bytes")]
    ResponseTooLarge {
        /// The URL requested.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// `404`: the indexer does not know the object (e.g. `tx-not-found`).
    #[error("{path}: not found ({code}): {message}")]
    NotFound {
        /// The path requested.
        path: String,
        /// Chronik's error code.
        code: String,
        /// Chronik's message.
        message: String,
    },
    /// Any other non-200 status.
    #[error("{url}: HTTP {status} ({code}): {message}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Chronik's error code (empty if the body was not a Chronik error).
        code: String,
        /// Chronik's message.
        message: String,
    },
    /// A 200 body that is not the expected protobuf message.
    #[error("{path}: body is not a valid {message} protobuf: {source}")]
    BadProtobuf {
        /// The path requested.
        path: String,
        /// The message expected.
        message: &'static str,
        /// The decoder's error.
        #[source]
        source: prost::DecodeError,
    },
    /// The transaction belongs to another network.
    #[error("tx {txid}: indexer reports network {found}, expected {expected:?}")]
    WrongNetwork {
        /// The transaction.
        txid: TxId,
        /// The configured network.
        expected: Network,
        /// The network field as sent.
        found: i32,
    },
    /// The transaction returned is not the one asked for.
    #[error("asked for tx {requested}, got one whose id is {found}")]
    TxIdMismatch {
        /// The txid asked for.
        requested: TxId,
        /// The txid of what came back.
        found: TxId,
    },
    /// The bytes to broadcast are not a Lotus transaction (nothing was sent).
    #[error("not a transaction: {0}")]
    InvalidTransaction(#[source] crate::tx::TxError),
    /// A well-formed protobuf whose contents make no sense.
    #[error("{path}: malformed response: {reason}")]
    MalformedResponse {
        /// The path requested.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Every attempt on every URL failed with a retryable error.
    #[error("{path}: Chronik unavailable after {attempts} attempts; last error: {last}")]
    Unavailable {
        /// The path requested.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<ChronikError>,
    },
}

impl ChronikError {
    /// Whether another attempt (on this or another URL) might succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Configuration of a [`ChronikClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChronikConfig {
    /// Base URLs (`chronik_url`), tried in order; no trailing slash needed.
    pub urls: Vec<String>,
    /// Timeout for one request, body included.
    pub request_timeout: Duration,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// Extra passes over the URL list after the first one fails.
    pub retries: u32,
    /// Wait before the first extra pass; doubled for each further pass.
    pub backoff_initial: Duration,
    /// Cap on the wait between passes.
    pub backoff_max: Duration,
    /// The network every transaction must belong to.
    pub network: Network,
    /// Largest response body accepted.
    pub max_response_bytes: usize,
    /// Whether to honour `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`.
    pub proxy_from_env: bool,
}

impl ChronikConfig {
    /// Defaults for one base URL: 10 s requests, 5 s connect, 2 retries with
    /// 250 ms → 4 s back-off, network XPI, 4 MiB bodies.
    pub fn new(chronik_url: impl Into<String>) -> Self {
        Self::with_urls(vec![chronik_url.into()])
    }

    /// Defaults for several base URLs, tried in order.
    pub fn with_urls(urls: Vec<String>) -> Self {
        Self {
            urls,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retries: 2,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(4),
            network: Network::Xpi,
            max_response_bytes: 4 << 20,
            proxy_from_env: true,
        }
    }
}

/// The chain tip as Chronik reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    /// Tip block hash, internal byte order.
    pub hash: [u8; 32],
    /// Tip height.
    pub height: u32,
}

/// The Chronik HTTP client.
#[derive(Debug)]
pub struct ChronikClient {
    http: reqwest::Client,
    urls: Vec<String>,
    config: ChronikConfig,
    working: AtomicUsize,
}

impl ChronikClient {
    /// Validates the configuration and builds the client (rustls, no native TLS).
    pub fn new(config: ChronikConfig) -> Result<Self, ChronikError> {
        if config.urls.is_empty() {
            return Err(ChronikError::NoUrls);
        }
        let urls = config
            .urls
            .iter()
            .map(|u| normalize_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("lotus-musig2/", env!("CARGO_PKG_VERSION")));
        if !config.proxy_from_env {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(ChronikError::Client)?;
        Ok(Self {
            http,
            urls,
            config,
            working: AtomicUsize::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ChronikConfig {
        &self.config
    }

    /// `GET /blockchain-info`: the chain tip.
    pub async fn blockchain_info(&self) -> Result<ChainTip, ChronikError> {
        let body = self.get(BLOCKCHAIN_INFO_PATH).await?;
        decode_blockchain_info(&body)
    }

    /// `GET /tx/{txid}`: the transaction, checked against `txid` and the
    /// configured network.
    pub async fn tx(&self, txid: &TxId) -> Result<IndexedTx, ChronikError> {
        let body = self.get(&tx_path(txid)).await?;
        decode_tx_response(&body, txid, self.config.network)
    }

    /// `POST /broadcast-tx`: hands `raw_tx` to the indexer's node and returns
    /// its txid. The bytes must parse as a Lotus transaction (checked before
    /// anything is sent), and the txid the indexer answers must be the one
    /// computed here from those bytes ([`ChronikError::TxIdMismatch`]
    /// otherwise). Token checks are never skipped. A refusal by the node
    /// comes back as [`ChronikError::Status`] with Chronik's error code.
    pub async fn broadcast_tx(&self, raw_tx: &[u8]) -> Result<TxId, ChronikError> {
        let expected = Transaction::parse(raw_tx)
            .map_err(ChronikError::InvalidTransaction)?
            .txid();
        let request = proto::BroadcastTxRequest {
            raw_tx: raw_tx.to_vec(),
            skip_token_checks: false,
        };
        let body = self
            .request(BROADCAST_TX_PATH, Some(&request.encode_to_vec()))
            .await?;
        decode_broadcast_response(&body, &expected)
    }

    /// GET with failover and back-off (see the module documentation).
    async fn get(&self, path: &str) -> Result<Vec<u8>, ChronikError> {
        self.request(path, None).await
    }

    /// GET (no body) or POST (a protobuf body) with failover and back-off.
    async fn request(&self, path: &str, body: Option<&[u8]>) -> Result<Vec<u8>, ChronikError> {
        let n = self.urls.len();
        if n == 0 {
            return Err(ChronikError::NoUrls);
        }
        let start = self.working.load(Ordering::Relaxed) % n;
        let mut backoff = self.config.backoff_initial;
        let mut attempts = 0u32;
        let mut last = None;
        for pass in 0..=self.config.retries {
            if pass > 0 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(self.config.backoff_max);
            }
            for i in 0..n {
                let index = (start + i) % n;
                let Some(base) = self.urls.get(index) else {
                    continue;
                };
                attempts = attempts.saturating_add(1);
                match self.request_once(base, path, body).await {
                    Ok(body) => {
                        self.working.store(index, Ordering::Relaxed);
                        return Ok(body);
                    }
                    Err(err) if err.is_retryable() => {
                        tracing::debug!(%err, attempt = attempts, "chronik request failed, will retry");
                        last = Some(err);
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        Err(ChronikError::Unavailable {
            path: path.to_owned(),
            attempts,
            last: Box::new(last.unwrap_or(ChronikError::NoUrls)),
        })
    }

    async fn request_once(
        &self,
        base: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, ChronikError> {
        let url = format!("{base}{path}");
        let request = match body {
            None => self.http.get(&url),
            Some(body) => self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                .body(body.to_vec()),
        };
        let mut response = request
            .header(reqwest::header::ACCEPT, "application/x-protobuf")
            .send()
            .await
            .map_err(|e| classify(e, &url))?;
        let status = response.status();
        let limit = self.config.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(ChronikError::ResponseTooLarge { url, limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(e, &url))? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(ChronikError::ResponseTooLarge { url, limit });
            }
            body.extend_from_slice(&chunk);
        }
        if status == reqwest::StatusCode::OK {
            return Ok(body);
        }
        let (code, message) = decode_error_body(&body);
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ChronikError::NotFound {
                path: path.to_owned(),
                code,
                message,
            });
        }
        Err(ChronikError::Status {
            url,
            status: status.as_u16(),
            code,
            message,
        })
    }
}

impl Indexer for ChronikClient {
    async fn tx(&self, txid: &TxId) -> Result<IndexedTx, ChronikError> {
        ChronikClient::tx(self, txid).await
    }

    async fn tip_height(&self) -> Result<u32, ChronikError> {
        Ok(self.blockchain_info().await?.height)
    }
}

const BLOCKCHAIN_INFO_PATH: &str = "/blockchain-info";
const BROADCAST_TX_PATH: &str = "/broadcast-tx";

fn tx_path(txid: &TxId) -> String {
    format!("/tx/{txid}")
}

/// Decodes the body of a `GET /blockchain-info` answer (a
/// [`proto::BlockchainInfo`]) into the chain tip, exactly as
/// [`ChronikClient::blockchain_info`] does: a negative height or a hash that is
/// not 32 bytes is a [`ChronikError::MalformedResponse`], undecodable bytes a
/// [`ChronikError::BadProtobuf`]. Public so that the decoder can be tested and
/// fuzzed without a server.
pub fn decode_blockchain_info(body: &[u8]) -> Result<ChainTip, ChronikError> {
    let path = BLOCKCHAIN_INFO_PATH;
    let info = proto::BlockchainInfo::decode(body).map_err(|source| ChronikError::BadProtobuf {
        path: path.to_owned(),
        message: "BlockchainInfo",
        source,
    })?;
    let height = u32::try_from(info.tip_height).map_err(|_| ChronikError::MalformedResponse {
        path: path.to_owned(),
        reason: format!("negative tip height {}", info.tip_height),
    })?;
    let hash: [u8; 32] =
        info.tip_hash
            .as_slice()
            .try_into()
            .map_err(|_| ChronikError::MalformedResponse {
                path: path.to_owned(),
                reason: format!("tip hash has {} bytes", info.tip_hash.len()),
            })?;
    Ok(ChainTip { hash, height })
}

/// Decodes the body of a `GET /tx/{requested}` answer (a [`proto::Tx`]) and
/// checks it, exactly as [`ChronikClient::tx`] does: the message must report
/// `network`, name `requested` as its txid, and rebuild into a transaction
/// whose recomputed txid is `requested`. Public so that the decoder can be
/// tested and fuzzed without a server.
pub fn decode_tx_response(
    body: &[u8],
    requested: &TxId,
    network: Network,
) -> Result<IndexedTx, ChronikError> {
    let path = tx_path(requested);
    let msg = proto::Tx::decode(body).map_err(|source| ChronikError::BadProtobuf {
        path: path.clone(),
        message: "Tx",
        source,
    })?;
    check_tx(&path, requested, &msg, network)
}

/// Decodes the body of a `POST /broadcast-tx` answer (a
/// [`proto::BroadcastTxResponse`]) and checks that it names `expected`, the
/// txid of the bytes that were sent, exactly as [`ChronikClient::broadcast_tx`]
/// does. Public so that the decoder can be tested and fuzzed without a server.
pub fn decode_broadcast_response(body: &[u8], expected: &TxId) -> Result<TxId, ChronikError> {
    let path = BROADCAST_TX_PATH;
    let msg =
        proto::BroadcastTxResponse::decode(body).map_err(|source| ChronikError::BadProtobuf {
            path: path.to_owned(),
            message: "BroadcastTxResponse",
            source,
        })?;
    let txid: [u8; 32] =
        msg.txid
            .as_slice()
            .try_into()
            .map_err(|_| ChronikError::MalformedResponse {
                path: path.to_owned(),
                reason: format!("txid has {} bytes", msg.txid.len()),
            })?;
    let txid = TxId::from_internal_bytes(txid);
    if txid != *expected {
        return Err(ChronikError::TxIdMismatch {
            requested: *expected,
            found: txid,
        });
    }
    Ok(txid)
}

/// Decodes the [`proto::Error`] body of a non-200 answer into its error code
/// and message; an undecodable body gives an empty code and a message saying
/// so (the HTTP status still reports the failure).
pub fn decode_error_body(body: &[u8]) -> (String, String) {
    match proto::Error::decode(body) {
        Ok(e) => (e.error_code, e.msg),
        Err(_) => (
            String::new(),
            format!("undecodable error body of {} bytes", body.len()),
        ),
    }
}

fn classify(err: reqwest::Error, url: &str) -> ChronikError {
    if err.is_timeout() {
        ChronikError::Timeout {
            url: url.to_owned(),
        }
    } else {
        ChronikError::Transport {
            url: url.to_owned(),
            source: err,
        }
    }
}

fn normalize_url(url: &str) -> Result<String, ChronikError> {
    let invalid = |reason| ChronikError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid("not a URL"))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(invalid("scheme must be http or https"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    if parsed.host_str().is_none() {
        return Err(invalid("no host"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Checks a `Tx` message against the txid asked for and the network, and
/// converts it.
fn check_tx(
    path: &str,
    requested: &TxId,
    msg: &proto::Tx,
    network: Network,
) -> Result<IndexedTx, ChronikError> {
    let malformed = |reason: String| ChronikError::MalformedResponse {
        path: path.to_owned(),
        reason,
    };
    if msg.network != network as i32 {
        return Err(ChronikError::WrongNetwork {
            txid: *requested,
            expected: network,
            found: msg.network,
        });
    }
    let returned: [u8; 32] = msg
        .txid
        .as_slice()
        .try_into()
        .map_err(|_| malformed(format!("txid has {} bytes", msg.txid.len())))?;
    let returned = TxId::from_internal_bytes(returned);
    if returned != *requested {
        return Err(ChronikError::TxIdMismatch {
            requested: *requested,
            found: returned,
        });
    }
    let tx = transaction_from_proto(msg).map_err(malformed)?;
    let computed = tx.txid();
    if computed != *requested {
        return Err(ChronikError::TxIdMismatch {
            requested: *requested,
            found: computed,
        });
    }
    let block_height = match &msg.block {
        None => None,
        Some(block) => Some(
            u32::try_from(block.height)
                .map_err(|_| malformed(format!("negative block height {}", block.height)))?,
        ),
    };
    Ok(IndexedTx {
        txid: computed,
        tx,
        block_height,
    })
}

/// Rebuilds the transaction from the fields of a `Tx` message.
pub fn transaction_from_proto(msg: &proto::Tx) -> Result<Transaction, String> {
    if msg.inputs.is_empty() {
        return Err("no inputs".to_owned());
    }
    if msg.outputs.is_empty() {
        return Err("no outputs".to_owned());
    }
    let inputs =
        msg.inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let prev = input
                    .prev_out
                    .as_ref()
                    .ok_or_else(|| format!("input {i} has no prev_out"))?;
                let txid: [u8; 32] =
                    prev.txid.as_slice().try_into().map_err(|_| {
                        format!("input {i}: prev txid has {} bytes", prev.txid.len())
                    })?;
                Ok(TxInput {
                    prev_out: OutPoint::new(TxId::from_internal_bytes(txid), prev.out_idx),
                    script_sig: input.input_script.clone(),
                    sequence: input.sequence_no,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
    let outputs = msg
        .outputs
        .iter()
        .enumerate()
        .map(|(i, output)| {
            let value = u64::try_from(output.value)
                .map_err(|_| format!("output {i} has negative value {}", output.value))?;
            Ok(TxOutput {
                value,
                script: output.output_script.clone(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Transaction {
        version: msg.version,
        inputs,
        outputs,
        lock_time: msg.lock_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![TxInput {
                prev_out: OutPoint::new(TxId::from_internal_bytes([9; 32]), 0),
                script_sig: vec![1, 2],
                sequence: u32::MAX,
            }],
            outputs: vec![TxOutput {
                value: 77,
                script: vec![0x6a],
            }],
            lock_time: 0,
        }
    }

    #[test]
    fn proto_round_trip_and_checks() {
        let tx = sample();
        let txid = tx.txid();
        let block = Some(proto::BlockMetadata {
            height: 10,
            hash: vec![0; 32],
            timestamp: 0,
        });
        let msg = proto::Tx::from_transaction(&tx, block, Network::Xpi);
        let bytes = msg.encode_to_vec();
        let decoded = proto::Tx::decode(bytes.as_slice()).unwrap();
        let indexed = check_tx("/tx", &txid, &decoded, Network::Xpi).unwrap();
        assert_eq!(indexed.tx, tx);
        assert_eq!(indexed.block_height, Some(10));

        assert!(matches!(
            check_tx("/tx", &txid, &decoded, Network::Xec),
            Err(ChronikError::WrongNetwork { found: 2, .. })
        ));

        let mut lying = decoded.clone();
        lying.outputs[0].value = 78;
        assert!(matches!(
            check_tx("/tx", &txid, &lying, Network::Xpi),
            Err(ChronikError::TxIdMismatch { .. })
        ));

        let mut negative = decoded.clone();
        negative.outputs[0].value = -1;
        assert!(matches!(
            check_tx("/tx", &txid, &negative, Network::Xpi),
            Err(ChronikError::MalformedResponse { .. })
        ));

        let mut no_prev = decoded;
        no_prev.inputs[0].prev_out = None;
        assert!(matches!(
            check_tx("/tx", &txid, &no_prev, Network::Xpi),
            Err(ChronikError::MalformedResponse { .. })
        ));
    }

    #[test]
    fn public_decoders_match_the_client() {
        let tx = sample();
        let txid = tx.txid();
        let body = proto::Tx::from_transaction(&tx, None, Network::Xpi).encode_to_vec();
        let indexed = decode_tx_response(&body, &txid, Network::Xpi).unwrap();
        assert_eq!((indexed.tx, indexed.block_height), (tx, None));
        assert!(matches!(
            decode_tx_response(&[0xff], &txid, Network::Xpi),
            Err(ChronikError::BadProtobuf { message: "Tx", .. })
        ));

        let info = proto::BlockchainInfo {
            tip_hash: vec![7; 32],
            tip_height: 144,
        };
        assert_eq!(
            decode_blockchain_info(&info.encode_to_vec()).unwrap(),
            ChainTip {
                hash: [7; 32],
                height: 144
            }
        );
        let short = proto::BlockchainInfo {
            tip_hash: vec![7; 31],
            tip_height: 1,
        };
        assert!(matches!(
            decode_blockchain_info(&short.encode_to_vec()),
            Err(ChronikError::MalformedResponse { .. })
        ));

        let error = proto::Error {
            error_code: "tx-not-found".into(),
            msg: "no such tx".into(),
            is_user_error: true,
        };
        assert_eq!(
            decode_error_body(&error.encode_to_vec()),
            ("tx-not-found".to_owned(), "no such tx".to_owned())
        );
        assert_eq!(
            decode_error_body(&[0xff, 0xff]),
            (
                String::new(),
                "undecodable error body of 2 bytes".to_owned()
            )
        );
    }

    #[test]
    fn urls_are_validated() {
        assert!(matches!(
            ChronikClient::new(ChronikConfig::with_urls(vec![])),
            Err(ChronikError::NoUrls)
        ));
        for bad in ["chronik.lotusia.org", "ftp://x", "http://x/?a=1"] {
            assert!(
                matches!(
                    ChronikClient::new(ChronikConfig::new(bad)),
                    Err(ChronikError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
        let client =
            ChronikClient::new(ChronikConfig::new("https://chronik.lotusia.org/")).unwrap();
        assert_eq!(client.urls, vec!["https://chronik.lotusia.org".to_owned()]);
    }
}
