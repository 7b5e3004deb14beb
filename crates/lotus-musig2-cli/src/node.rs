//! `lotus-musig2 node --config FILE`: one long-lived node, configured by a
//! TOML file and the environment, that signs with co-signers in other
//! processes. It advertises its key, joins the requests its policy accepts,
//! runs every round as soon as the previous one completes, and prints one JSON
//! line per event worth knowing on stdout.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use lotus_musig2::coordinator::{Coordinator, CoordinatorConfig, CoordinatorEvent, JoinDecision};
use lotus_musig2::core::{Keypair, PublicKey, SecretKey};
use lotus_musig2::election::ElectionMethod;
use lotus_musig2::net::{Multiaddr, NetConfig, NodeKeypair};
use lotus_musig2::security::{InputScriptType, SigningMetadata, TransactionType};
use serde::Deserialize;
use serde_json::json;

use crate::commands::Outcome;
use crate::daemon;

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's TOML configuration (see the README).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// The configuration file (also read by `spend --config`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeConfig {
    /// Multiaddresses to listen on (default: 127.0.0.1, any port).
    #[serde(default)]
    listen: Vec<String>,
    /// Bootstrap peers, with `/p2p/<peer id>`.
    #[serde(default)]
    bootstrap: Vec<String>,
    /// File holding the signing key as 64 hex characters (or use `LOTUS_MUSIG2_SECRET_KEY`).
    pub(crate) secret_key_file: Option<PathBuf>,
    /// 32 hex bytes seeding the libp2p identity, for a stable peer id (default: random).
    node_key_seed: Option<String>,
    /// Coordinator election method.
    #[serde(default = "default_election")]
    election: String,
    /// Phase 0 nonce commitments.
    #[serde(default = "yes")]
    nonce_commitments: bool,
    /// Join every request that names our key and passes the policy.
    #[serde(default = "yes")]
    auto_join: bool,
    /// Only join requests whose signers are all in this list (hex keys); empty: any.
    #[serde(default)]
    allowed_cosigners: Vec<String>,
    /// Join requests that carry only a 32-byte message and no transaction
    /// (the node then signs a hash it cannot check). Default: no; such
    /// requests are refused and reported as `request-refused`.
    #[serde(default)]
    allow_blind_signing: bool,
    /// A Chronik indexer's URL: `spend --config` broadcasts through it.
    pub(crate) chronik_url: Option<String>,
    /// Kademlia server mode.
    #[serde(default = "yes")]
    dht_server: bool,
    /// How long a co-signer's key is looked for (directory, then DHT)
    /// before a request naming it fails (default 30).
    discovery_timeout_secs: Option<u64>,
    /// Security limits an operator may change.
    #[serde(default)]
    security: SecurityTable,
    /// Session timeouts (seconds).
    #[serde(default)]
    timeouts: TimeoutsTable,
    /// Stop after this many completed sessions (default: run until killed).
    exit_after: Option<u32>,
    /// A signing request this node announces once it starts.
    announce: Option<AnnounceConfig>,
    /// Daemon mode (with `[api]`): where `api.cookie` and the session store live.
    data_dir: Option<PathBuf>,
    /// Daemon mode: the local HTTP API (see docs/API.md).
    api: Option<daemon::ApiConfig>,
    /// Daemon mode: the Prometheus endpoint.
    metrics: Option<daemon::MetricsConfig>,
    /// Daemon mode: which requests to sign (`"manual"`, `"auto"` or rules).
    #[serde(default)]
    approve: daemon::consent::ApproveConfig,
    /// Burn identities (needs `data_dir`).
    identity: Option<daemon::IdentityConfig>,
}

/// `[timeouts]`, in seconds; each defaults to `CoordinatorConfig`'s value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutsTable {
    /// All signers must join within this (default 600).
    join_secs: Option<u64>,
    /// Each round must finish within this (default 120).
    round_secs: Option<u64>,
    /// In a relayed session (4+ signers), how long to wait for the relay's
    /// round before exchanging directly, in milliseconds (default 2000; at
    /// most half of `round_secs`).
    relay_ms: Option<u64>,
    /// A co-signer disconnected this long during a session is blamed (default 10).
    disconnect_grace_secs: Option<u64>,
    /// The coordinator must confirm its broadcast within this before the
    /// next one takes over (default 300).
    broadcast_secs: Option<u64>,
}

/// `[security]`: the limits an operator may need to change (the others keep
/// the reference's values).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityTable {
    /// Signing requests accepted live per author key and per peer, a minute
    /// (default 30): a creator that signs more often needs its co-signers to
    /// raise this.
    max_requests_per_minute: Option<u32>,
    /// Burst above that rate (default 20).
    request_burst: Option<u32>,
    /// Sessions open at once (default 10); a node that signs many at once
    /// raises it (each live session costs it a few KiB: docs/PERFORMANCE.md).
    max_concurrent_sessions: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnnounceConfig {
    /// Every signer's key, ours included.
    signers: Vec<String>,
    /// The 32-byte message (sighash), hex.
    message: String,
    /// `taproot`, `pubkeyhash` or `scripthash`.
    input_script_type: Option<String>,
    /// Free text.
    purpose: Option<String>,
}

fn needs_identities(approve: &daemon::consent::ApproveConfig) -> bool {
    matches!(approve, daemon::consent::ApproveConfig::Rules(r) if r.min_identity_reputation.is_some())
}

fn default_election() -> String {
    "lexicographic".into()
}

fn yes() -> bool {
    true
}

pub(crate) fn read_secret(path: Option<&Path>) -> Result<Keypair> {
    let text = match (std::env::var("LOTUS_MUSIG2_SECRET_KEY"), path) {
        (Ok(v), _) => zeroize::Zeroizing::new(v),
        (Err(_), Some(p)) => zeroize::Zeroizing::new(
            std::fs::read_to_string(p)
                .with_context(|| format!("secret key file {}", p.display()))?,
        ),
        (Err(_), None) => bail!("no signing key: set secret_key_file or LOTUS_MUSIG2_SECRET_KEY"),
    };
    let bytes = zeroize::Zeroizing::new(hex::decode(text.trim()).context("secret key: not hex")?);
    Ok(Keypair::new(
        SecretKey::from_slice(&bytes).context("secret key")?,
    ))
}

pub(crate) fn parse_keys(keys: &[String]) -> Result<Vec<PublicKey>> {
    keys.iter()
        .map(|k| PublicKey::from_str(k).with_context(|| format!("public key {k:?}")))
        .collect()
}

fn emit(value: serde_json::Value) {
    println!("{value}");
}

/// Reads a node configuration file.
pub(crate) fn load_config(path: &Path) -> Result<NodeConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("config {}", path.display()))?;
    toml::from_str(&text).context("config")
}

pub fn node(args: &NodeArgs) -> Result<Outcome> {
    let config = load_config(&args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(run(config))
}

/// What [`start`] starts: the coordinator, its signing key and, in daemon
/// mode, the daemon's setup.
pub(crate) type Started = (Coordinator, Keypair, Option<daemon::Setup>);

/// Starts the coordinator a configuration describes, with its signing key.
/// `spend --config` starts one too, with `auto_join` off (it only creates).
/// With a `chronik_url`, a co-signer's report of its broadcast is checked
/// there before it stops failover.
pub(crate) async fn start(config: &NodeConfig, auto_join: bool) -> Result<Started> {
    let keypair = read_secret(config.secret_key_file.as_deref())?;
    let method: ElectionMethod = config
        .election
        .parse()
        .map_err(|e| anyhow::anyhow!("election: {e}"))?;
    let allowed = parse_keys(&config.allowed_cosigners)?;
    let mut daemon_setup = daemon::Setup::from_config(
        config.data_dir.as_deref(),
        config.api.as_ref(),
        config.metrics.as_ref(),
        &config.approve,
        allowed.clone(),
        keypair.public_key(),
    )?;
    let policy: lotus_musig2::coordinator::JoinPolicy = match &daemon_setup {
        // The daemon's consent policy decides (it applies allowed_cosigners too).
        Some(setup) => setup.join_policy(),
        None => std::sync::Arc::new(move |request| {
            let a = request.announcement;
            if allowed.is_empty() || a.required_pubkeys.iter().all(|k| allowed.contains(k)) {
                JoinDecision::Join
            } else {
                JoinDecision::Refuse("a co-signer is not in allowed_cosigners".into())
            }
        }),
    };
    let broadcast_check = match &config.chronik_url {
        Some(url) => Some(std::sync::Arc::new(
            lotus_musig2::identity::ChronikClient::new(lotus_musig2::identity::ChronikConfig::new(
                url.clone(),
            ))
            .context("chronik_url")?,
        )),
        None => None,
    };
    let identity = daemon::identities::gate(config.identity.as_ref(), config.data_dir.as_deref())?;
    match (&mut daemon_setup, &identity) {
        (Some(setup), Some(gate)) => setup.set_identities(gate.manager().clone()),
        (_, None) if needs_identities(&config.approve) => {
            bail!("approve.min_identity_reputation needs [identity] enabled = true")
        }
        _ => {}
    }
    if let Some(claim) = identity
        .as_ref()
        .and_then(|g| Some((g.clone(), g.own_claim(&keypair)?)))
    {
        // Our own burn, checked as a peer will check it: a warning now
        // beats silently refused advertisements later.
        let (gate, claim) = claim;
        tokio::spawn(async move {
            let now = lotus_musig2::security::Clock::now_ms(&lotus_musig2::security::SystemClock);
            match gate.check(&claim, now).await {
                Ok(id) => tracing::info!(%id, "our burn identity is registered"),
                Err(reason) => {
                    tracing::warn!(%reason, "our burn identity does not check out: peers will refuse our advertisements")
                }
            }
        });
    }
    let (signed_sessions, signed_log) = match &daemon_setup {
        Some(setup) => (setup.signed_sessions()?, Some(setup.signed_log())),
        None => (Vec::new(), None),
    };
    let defaults = CoordinatorConfig::default();
    let secs = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_secs);
    let coordinator_config = CoordinatorConfig {
        election_method: method,
        enable_nonce_commitment: config.nonce_commitments,
        auto_join,
        join_policy: policy,
        allow_blind_signing: config.allow_blind_signing,
        broadcast_check,
        identity,
        signed_sessions,
        signed_log,
        discovery_timeout: config.discovery_timeout_secs.map_or(
            CoordinatorConfig::default().discovery_timeout,
            Duration::from_secs,
        ),
        join_timeout: secs(config.timeouts.join_secs, defaults.join_timeout),
        round_timeout: secs(config.timeouts.round_secs, defaults.round_timeout),
        relay_timeout: config
            .timeouts
            .relay_ms
            .map_or(defaults.relay_timeout, Duration::from_millis),
        disconnect_grace: secs(
            config.timeouts.disconnect_grace_secs,
            defaults.disconnect_grace,
        ),
        broadcast_timeout: secs(config.timeouts.broadcast_secs, defaults.broadcast_timeout),
        security: {
            let mut s = lotus_musig2::security::SecurityConfig::default();
            if let Some(n) = config.security.max_requests_per_minute {
                s.max_requests_per_minute = n;
            }
            if let Some(n) = config.security.request_burst {
                s.request_burst = n;
            }
            if let Some(n) = config.security.max_concurrent_sessions {
                s.max_concurrent_sessions = n;
            }
            s
        },
        ..CoordinatorConfig::default()
    }
    .with_env_overrides()?;
    let mut net = NetConfig::default().with_env_overrides()?;
    net.listen = if config.listen.is_empty() {
        vec!["/ip4/127.0.0.1/tcp/0".parse()?]
    } else {
        config
            .listen
            .iter()
            .map(|a| Multiaddr::from_str(a))
            .collect::<Result<_, _>>()?
    };
    net.bootstrap_peers = config
        .bootstrap
        .iter()
        .map(|a| Multiaddr::from_str(a))
        .collect::<Result<_, _>>()?;
    net.dht_server = config.dht_server;
    net.swarm_metrics = daemon_setup.as_ref().map(daemon::Setup::swarm_metrics);
    let node_key = match (&config.node_key_seed, &daemon_setup) {
        (Some(seed), _) => {
            let mut bytes = hex::decode(seed).context("node_key_seed: not hex")?;
            NodeKeypair::ed25519_from_bytes(&mut bytes).context("node_key_seed")?
        }
        // A daemon keeps its peer id across restarts.
        (None, Some(setup)) => {
            let mut bytes = setup.node_key()?;
            NodeKeypair::ed25519_from_bytes(bytes.as_mut_slice()).context("node.key")?
        }
        (None, None) => NodeKeypair::generate_ed25519(),
    };

    let coordinator = Coordinator::start(node_key, net, coordinator_config).await?;
    Ok((coordinator, keypair, daemon_setup))
}

/// The node's listening addresses, once it has some (up to 2 s).
pub(crate) async fn listen_addrs(coordinator: &Coordinator) -> Result<Vec<Multiaddr>> {
    let mut addrs = Vec::new();
    for _ in 0..200 {
        addrs = coordinator.multiaddrs().await?;
        if !addrs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(addrs)
}

async fn run(config: NodeConfig) -> Result<Outcome> {
    let (coordinator, keypair, daemon_setup) = start(&config, config.auto_join).await?;
    let mut events = coordinator.subscribe();
    let addrs = listen_addrs(&coordinator).await?;
    emit(json!({
        "event": "listening",
        "peer_id": coordinator.local_peer_id().to_string(),
        "addrs": addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "pubkey": keypair.public_key().to_string(),
    }));
    let daemon = match daemon_setup {
        Some(setup) => {
            let (daemon, servers) = setup.start(coordinator.clone(), keypair.clone()).await?;
            emit(json!({
                "event": "api",
                "listen": servers.api_addr.to_string(),
                "metrics": servers.metrics_addr.map(|a| a.to_string()),
            }));
            Some((daemon, servers))
        }
        None => None,
    };
    // Advertise until it reaches the DHT (the bootstrap node may start later).
    // A daemon that restarts within a minute of its last gossiped
    // advertisement updates its DHT record only, and gossips once the minute
    // is over (peers count a faster one against it).
    let advertiser = {
        let (coordinator, keypair) = (coordinator.clone(), keypair.clone());
        let daemon = daemon.as_ref().map(|(d, _)| d.clone());
        let not_before = daemon.as_ref().map_or(0, daemon::Daemon::gossip_not_before);
        tokio::spawn(async move {
            loop {
                let now =
                    lotus_musig2::security::Clock::now_ms(&lotus_musig2::security::SystemClock);
                let types = TransactionType::ALL.to_vec();
                let ttl = Duration::from_secs(3600);
                let gossip = now >= not_before;
                let advertised = if gossip {
                    coordinator.advertise_signer(&keypair, types, ttl).await
                } else {
                    coordinator
                        .advertise_signer_in_dht(&keypair, types, ttl)
                        .await
                };
                match advertised {
                    Ok(_) if gossip => {
                        if let Some(d) = &daemon {
                            d.gossiped(now);
                        }
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(not_before - now)).await,
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        })
    };

    if let Some(announce) = &config.announce {
        let signers = parse_keys(&announce.signers)?;
        let message: [u8; 32] = hex::decode(&announce.message)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("announce.message: expected 32 bytes of hex")?;
        let input_script_type = match announce.input_script_type.as_deref() {
            None => None,
            Some("taproot") => Some(InputScriptType::Taproot),
            Some("pubkeyhash") => Some(InputScriptType::PubKeyHash),
            Some("scripthash") => Some(InputScriptType::ScriptHash),
            Some(other) => bail!("announce.input_script_type: unknown {other:?}"),
        };
        let metadata = SigningMetadata {
            input_script_type,
            purpose: announce.purpose.clone(),
            ..SigningMetadata::default()
        };
        let request = coordinator
            .announce_signing_request(&signers, message, &keypair, metadata)
            .await?;
        emit(json!({"event": "announced", "request_id": hex::encode(request)}));
    }

    let mut completed = 0u32;
    let stop = daemon::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = &mut stop => break,
        };
        let event = match event {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                eprintln!("warning: missed {n} events");
                continue;
            }
            Err(_) => break,
        };
        let step = match &event {
            CoordinatorEvent::SessionReady { session_id, .. } => {
                emit(json!({"event": "session-ready", "session_id": hex::encode(session_id)}));
                let commitments = coordinator
                    .get_session(*session_id)
                    .is_some_and(|info| info.nonce_commitments);
                if commitments {
                    coordinator.publish_nonce_commitments(*session_id)
                } else {
                    coordinator.start_round1(*session_id)
                }
            }
            CoordinatorEvent::NonceCommitmentsComplete(id) => coordinator.start_round1(*id),
            CoordinatorEvent::Round1Complete(id) => coordinator.start_round2(*id),
            CoordinatorEvent::SessionComplete { session_id, .. } => {
                let info = coordinator.get_session(*session_id);
                let final_sig = coordinator.get_final_signature(*session_id)?;
                emit(json!({
                    "event": "signature",
                    "session_id": hex::encode(session_id),
                    "aggregate_pubkey": info.map(|i| i.aggregate_pubkey.to_string()),
                    "signature": final_sig.signature.to_string(),
                    "sighash_type": final_sig.sighash_type,
                }));
                completed += 1;
                Ok(())
            }
            CoordinatorEvent::ShouldBroadcast {
                session_id,
                coordinator_index,
            } => {
                emit(
                    json!({"event": "should-broadcast", "session_id": hex::encode(session_id), "coordinator_index": coordinator_index}),
                );
                if daemon.is_some() {
                    // The API's client broadcasts, then says so
                    // (`POST /v1/sessions/{id}/broadcast`); until then the
                    // co-signers' failover clocks run.
                    Ok(())
                } else {
                    // The one-shot node has no chain connection:
                    // "broadcasting" is printing; the co-signers are told.
                    coordinator.notify_broadcast_complete(*session_id)
                }
            }
            CoordinatorEvent::SigningRequestRefused {
                request_id,
                creator_pubkey,
                creator_peer_id,
                reason,
            } => {
                emit(json!({
                    "event": "request-refused",
                    "request_id": hex::encode(request_id),
                    "creator_pubkey": creator_pubkey.to_string(),
                    "creator_peer_id": creator_peer_id,
                    "reason": reason.to_string(),
                }));
                Ok(())
            }
            CoordinatorEvent::SessionError {
                session_id,
                code,
                signer,
                culprits,
                message,
                ..
            } => {
                emit(
                    json!({"event": "session-error", "session_id": hex::encode(session_id), "code": code.as_str(), "signer": signer, "culprits": culprits, "message": message}),
                );
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = step {
            emit(json!({"event": "error", "message": e.to_string()}));
        }
        if config.exit_after.is_some_and(|n| completed >= n) {
            break;
        }
    }
    advertiser.abort();
    if let Some((daemon, servers)) = daemon {
        daemon.shut_down();
        servers.shutdown().await;
    }
    coordinator.shutdown().await;
    Ok(Outcome {
        output: json!({"event": "stopped", "sessions_completed": completed}).to_string(),
        code: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeouts_table_takes_relay_ms_and_refuses_unknown_keys() {
        let config: NodeConfig =
            toml::from_str("[timeouts]\nround_secs = 15\nrelay_ms = 500\n").expect("parses");
        assert_eq!(config.timeouts.relay_ms, Some(500));
        assert_eq!(config.timeouts.round_secs, Some(15));
        assert!(toml::from_str::<NodeConfig>("[timeouts]\nrelay_secs = 5\n").is_err());
    }
}
