//! `lotus-musig2 rpc`: a client of the signer daemon's HTTP API that prints
//! the daemon's JSON answers (one line each; `events` prints one line per event).
//!
//! Exit codes: 0 success, 1 the daemon answered with an error (its
//! `{"error": …}` is printed), 2 the daemon could not be reached.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::commands::Outcome;
use crate::daemon::api::{ADDR_FILE, COOKIE_FILE};

#[derive(Debug, Args)]
pub struct RpcArgs {
    /// The daemon's data directory (reads `api.cookie` and `api.addr`).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["url", "token_file"])]
    datadir: Option<PathBuf>,
    /// The API's base URL (`http://127.0.0.1:PORT`).
    #[arg(long, requires = "token_file")]
    url: Option<String>,
    /// A file holding the bearer token (the daemon's `api.cookie`).
    #[arg(long, value_name = "FILE", requires = "url")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    call: RpcCall,
}

#[derive(Debug, Subcommand)]
enum RpcCall {
    /// `GET /v1/status`.
    Status,
    /// `POST /v1/requests`: announce a signing request.
    Request {
        /// A signer's key (repeat for each, ours included).
        #[arg(long = "signer", required = true)]
        signers: Vec<String>,
        /// The 32-byte message, hex.
        #[arg(long)]
        message: String,
        /// `taproot`, `pubkeyhash` or `scripthash`.
        #[arg(long)]
        input_script_type: Option<String>,
        /// `spend`, `swap`, `coinjoin`, `custody`, `escrow` or `channel`.
        #[arg(long)]
        transaction_type: Option<String>,
        /// Amount in satoshis.
        #[arg(long)]
        amount: Option<u64>,
        /// Free text.
        #[arg(long)]
        purpose: Option<String>,
    },
    /// `GET /v1/requests/pending`.
    Pending,
    /// `POST /v1/requests/{ID}/approve`.
    Approve {
        /// The request id.
        request_id: String,
    },
    /// `POST /v1/requests/{ID}/reject`.
    Reject {
        /// The request id.
        request_id: String,
    },
    /// `GET /v1/sessions`.
    Sessions,
    /// `GET /v1/sessions/{ID}`.
    Session {
        /// The session id.
        session_id: String,
    },
    /// `DELETE /v1/sessions/{ID}`: abort a session.
    Close {
        /// The session id.
        session_id: String,
    },
    /// `POST /v1/sessions/{ID}/broadcast`: this node broadcast the signed
    /// transaction; co-signers stop their failover.
    Broadcast {
        /// The session id.
        session_id: String,
        /// The broadcast transaction's id (display hex).
        #[arg(long)]
        txid: Option<String>,
    },
    /// `GET /v1/events`: print every event, one JSON line each, until stopped.
    Events,
    /// `GET /v1/peers`.
    Peers,
    /// `GET /v1/peers/{ID}`: one peer's reputation, blacklisting and
    /// graylisting, connected or not.
    Peer {
        /// The libp2p peer id.
        peer_id: String,
    },
    /// `GET /v1/identities/{ID}`: a burn identity, its keys and reputation.
    Identity {
        /// The identity id.
        identity_id: String,
    },
}

fn endpoint(args: &RpcArgs) -> Result<(String, String)> {
    let (url, token_file) = match (&args.datadir, &args.url, &args.token_file) {
        (Some(dir), _, _) => {
            let addr = std::fs::read_to_string(dir.join(ADDR_FILE)).with_context(|| {
                format!("{} (is the daemon running?)", dir.join(ADDR_FILE).display())
            })?;
            (format!("http://{}", addr.trim()), dir.join(COOKIE_FILE))
        }
        (None, Some(url), Some(file)) => (url.trim_end_matches('/').to_string(), file.clone()),
        _ => bail!("give --datadir, or --url and --token-file"),
    };
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("token file {}", token_file.display()))?;
    Ok((url, token.trim().to_string()))
}

pub fn rpc(args: &RpcArgs) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(call(args))
}

async fn call(args: &RpcArgs) -> Result<Outcome> {
    let (url, token) = endpoint(args)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("HTTP client")?;
    let (method, path, body) = match &args.call {
        RpcCall::Status => ("GET", "/v1/status".to_string(), None),
        RpcCall::Request {
            signers,
            message,
            input_script_type,
            transaction_type,
            amount,
            purpose,
        } => (
            "POST",
            "/v1/requests".to_string(),
            Some(json!({
                "signers": signers,
                "message": message,
                "metadata": {
                    "input_script_type": input_script_type,
                    "transaction_type": transaction_type,
                    "amount": amount,
                    "purpose": purpose,
                },
            })),
        ),
        RpcCall::Pending => ("GET", "/v1/requests/pending".to_string(), None),
        RpcCall::Approve { request_id } => {
            ("POST", format!("/v1/requests/{request_id}/approve"), None)
        }
        RpcCall::Reject { request_id } => {
            ("POST", format!("/v1/requests/{request_id}/reject"), None)
        }
        RpcCall::Sessions => ("GET", "/v1/sessions".to_string(), None),
        RpcCall::Session { session_id } => ("GET", format!("/v1/sessions/{session_id}"), None),
        RpcCall::Close { session_id } => ("DELETE", format!("/v1/sessions/{session_id}"), None),
        RpcCall::Broadcast { session_id, txid } => (
            "POST",
            format!("/v1/sessions/{session_id}/broadcast"),
            Some(json!({ "txid": txid })),
        ),
        RpcCall::Events => return events(&client, &url, &token).await,
        RpcCall::Peers => ("GET", "/v1/peers".to_string(), None),
        RpcCall::Peer { peer_id } => ("GET", format!("/v1/peers/{peer_id}"), None),
        RpcCall::Identity { identity_id } => ("GET", format!("/v1/identities/{identity_id}"), None),
    };
    let method = reqwest::Method::from_bytes(method.as_bytes()).context("method")?;
    let mut request = client
        .request(method, format!("{url}{path}"))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(120));
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{url}{path}"))?;
    let ok = response.status().is_success();
    let text = response.text().await.context("reading the answer")?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Outcome {
        output: value.to_string(),
        code: if ok { 0 } else { 1 },
    })
}

/// Prints the `data` of every server-sent event as one line.
async fn events(client: &reqwest::Client, url: &str, token: &str) -> Result<Outcome> {
    let mut response = client
        .get(format!("{url}/v1/events"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("{url}/v1/events"))?;
    if !response.status().is_success() {
        let text = response.text().await.unwrap_or_default();
        return Ok(Outcome {
            output: text,
            code: 1,
        });
    }
    let mut buffer = Vec::new();
    let stdout = std::io::stdout();
    while let Some(chunk) = response.chunk().await.context("event stream")? {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                let mut out = stdout.lock();
                writeln!(out, "{}", data.trim_start()).context("stdout")?;
                out.flush().context("stdout")?;
            }
        }
    }
    Ok(Outcome {
        output: json!({"event": "stream-ended"}).to_string(),
        code: 0,
    })
}
