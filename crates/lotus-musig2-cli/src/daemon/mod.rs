//! `lotus-musig2 node` as a signer daemon: a local HTTP API (`[api]`) that
//! wallets drive, a consent policy (`approve`), a session store under
//! `data_dir`, live events (SSE) and Prometheus metrics (`[metrics]`).
//!
//! [`Daemon`] holds the logic; `api` is a thin axum layer over it (each
//! handler parses, calls one method, maps the typed [`ApiError`] to a
//! status). The round-driving loop stays in `node.rs`: the daemon decides
//! what to sign and records what happens.

pub mod api;
pub mod consent;
pub mod metrics;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lotus_musig2::coordinator::{
    Blame, Coordinator, CoordinatorError, CoordinatorEvent, JoinDecision, JoinPolicy,
};
use lotus_musig2::core::{Keypair, PublicKey};
use lotus_musig2::net::PeerEvent;
use lotus_musig2::security::{
    Clock, InputScriptType, Millis, PeerId as SecPeer, SessionAnnouncement, SigningMetadata,
    SystemClock, TransactionType,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use lotus_musig2::coordinator::{RequestId, SessionId};

use consent::{ApproveConfig, Consent, ConsentError, Rule, Verdict};
use metrics::{Metrics, Outcome, Phase};
use store::{SessionErrorInfo, SessionRecord, SessionStore, StoreError};

/// Capacity of the API's event channel. A subscriber (an SSE client) that
/// falls further behind loses the oldest events and is told how many
/// (a `lagged` event); the daemon itself never waits for a subscriber.
pub const EVENT_CAPACITY: usize = 1024;
/// Sessions whose phase timings are tracked at once (beyond it a new
/// session is not timed; its other metrics are kept).
const MAX_TIMED_SESSIONS: usize = 4096;
/// How often unanswered requests are checked for expiry.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// `IP:PORT` to listen on (port 0: any free port).
    pub listen: String,
    /// Allow a non-loopback address.
    #[serde(default)]
    pub allow_remote: bool,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:PORT` of the Prometheus endpoint.
    pub listen: String,
    /// Allow a non-loopback address.
    #[serde(default)]
    pub allow_remote: bool,
}

/// Errors of the daemon's set-up.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is inconsistent.
    #[error("config: {0}")]
    Config(String),
    /// A consent rule is invalid.
    #[error(transparent)]
    Consent(#[from] consent::ConfigError),
    /// A file in the data directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The session store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An API error: a stable code, a message and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or a wrong bearer token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No such request or session.
    #[error("{0}")]
    NotFound(String),
    /// The request or session is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// The request expired before the answer.
    #[error("the request expired")]
    Expired,
    /// The coordinator refused.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// The session store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::Expired => 410,
            Self::Coordinator(e) => match e {
                CoordinatorError::InvalidRequest(_) => 400,
                CoordinatorError::UnknownRequest | CoordinatorError::UnknownSession => 404,
                CoordinatorError::AlreadyJoined | CoordinatorError::WrongState(_) => 409,
                CoordinatorError::SignerNotFound(_) | CoordinatorError::Net(_) => 502,
                _ => 500,
            },
            Self::Store(_) => 500,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::BadRequest(_) => "bad_request",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Expired => "request_expired",
            Self::Coordinator(e) => match e {
                CoordinatorError::InvalidRequest(_) => "invalid_request",
                CoordinatorError::UnknownRequest => "unknown_request",
                CoordinatorError::UnknownSession => "unknown_session",
                CoordinatorError::AlreadyJoined => "already_joined",
                CoordinatorError::WrongState(_) => "wrong_state",
                CoordinatorError::SignerNotFound(_) => "signer_not_found",
                CoordinatorError::Net(_) => "network",
                _ => "internal",
            },
            Self::Store(_) => "store",
        }
    }

    /// `{"error": {"code", "message"}}`.
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code(), "message": self.to_string()}})
    }
}

impl From<ConsentError> for ApiError {
    fn from(e: ConsentError) -> Self {
        match e {
            ConsentError::Unknown => Self::NotFound(e.to_string()),
            ConsentError::Expired => Self::Expired,
        }
    }
}

/// Checks an `IP:PORT` listen address: loopback unless `allow_remote`.
pub fn listen_addr(what: &str, text: &str, allow_remote: bool) -> Result<SocketAddr, DaemonError> {
    let addr = SocketAddr::from_str(text)
        .map_err(|_| DaemonError::Config(format!("{what}.listen: {text:?} is not IP:PORT")))?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(DaemonError::Config(format!(
            "{what}.listen: refusing {addr}, not a loopback address (set {what}.allow_remote = true)"
        )));
    }
    Ok(addr)
}

/// The daemon's part of the configuration, checked before the node starts.
pub struct Setup {
    data_dir: PathBuf,
    api: SocketAddr,
    metrics: Option<SocketAddr>,
    consent: Arc<Mutex<Consent>>,
    clock: Arc<dyn Clock + Send + Sync>,
    registry: Metrics,
    store: Arc<SessionStore>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Setup {
    /// `None` without `data_dir` and `[api]` (the one-shot node); an error
    /// if only one of them is set or an address is refused.
    pub fn from_config(
        data_dir: Option<&Path>,
        api: Option<&ApiConfig>,
        metrics: Option<&MetricsConfig>,
        approve: &ApproveConfig,
        allowed_cosigners: Vec<PublicKey>,
        ours: PublicKey,
    ) -> Result<Option<Self>, DaemonError> {
        let (data_dir, api) = match (data_dir, api) {
            (None, None) => {
                if metrics.is_some() {
                    return Err(DaemonError::Config(
                        "[metrics] needs the daemon (data_dir and [api])".into(),
                    ));
                }
                if *approve != ApproveConfig::default() {
                    return Err(DaemonError::Config(
                        "approve needs the daemon (data_dir and [api]); the one-shot node uses auto_join and allowed_cosigners".into(),
                    ));
                }
                return Ok(None);
            }
            (Some(d), Some(a)) => (d, a),
            _ => {
                return Err(DaemonError::Config(
                    "the daemon needs both data_dir and [api]".into(),
                ));
            }
        };
        let api = listen_addr("api", &api.listen, api.allow_remote)?;
        let metrics = metrics
            .map(|m| listen_addr("metrics", &m.listen, m.allow_remote))
            .transpose()?;
        let mut consent = Consent::new(approve, allowed_cosigners, vec![ours])?;
        create_private_dir(data_dir)?;
        let store = Arc::new(SessionStore::open(&data_dir.join("sessions.redb"))?);
        if let Some(day) = store.spent_today()? {
            consent.restore_spent_today(day);
        }
        Ok(Some(Self {
            store,
            data_dir: data_dir.to_path_buf(),
            api,
            metrics,
            consent: Arc::new(Mutex::new(consent)),
            clock: Arc::new(SystemClock),
            registry: Metrics::new(),
        }))
    }

    /// The coordinator's join policy: the consent policy decides; a request
    /// held for an operator is not joined now. The day's total is stored
    /// before a join is allowed (a request is refused if it cannot be).
    pub fn join_policy(&self) -> JoinPolicy {
        let (consent, clock) = (Arc::clone(&self.consent), Arc::clone(&self.clock));
        let store = Arc::clone(&self.store);
        Arc::new(move |request| {
            let verdict = {
                let mut consent = lock(&consent);
                let verdict = consent.decide(request.announcement, clock.now_ms());
                match save_spent_today(&store, &consent) {
                    Ok(()) => verdict,
                    Err(_) => Verdict::Refuse(Rule::DailyLimit),
                }
            };
            match verdict {
                Verdict::Join => JoinDecision::Join,
                Verdict::Hold => JoinDecision::Refuse("waiting for an operator's approval".into()),
                Verdict::Refuse(rule) => {
                    JoinDecision::Refuse(format!("consent rule {}", rule.as_str()))
                }
            }
        })
    }

    /// Where the network records libp2p's own metrics.
    pub fn swarm_metrics(&self) -> lotus_musig2::net::SwarmMetrics {
        self.registry.swarm()
    }

    /// Opens the store, starts the event task and the HTTP servers.
    pub async fn start(
        self,
        coordinator: Coordinator,
        keypair: Keypair,
    ) -> Result<(Daemon, api::Servers), DaemonError> {
        let store = self.store;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let daemon = Daemon {
            inner: Arc::new(Inner {
                coordinator,
                keypair,
                consent: self.consent,
                store,
                metrics: self.registry,
                events,
                seq: Mutex::new(0),
                clock: self.clock,
                marks: Mutex::new(HashMap::new()),
            }),
        };
        daemon.mark_interrupted()?;
        let pump = tokio::spawn(daemon.clone().pump());
        let servers =
            api::serve(daemon.clone(), &self.data_dir, self.api, self.metrics, pump).await?;
        Ok((daemon, servers))
    }
}

/// Stores the consent policy's day total if it changed since last stored.
fn save_spent_today(store: &SessionStore, consent: &Consent) -> Result<(), StoreError> {
    let now = consent.spent_today();
    if store.spent_today()? == Some(now) || now == (0, 0) {
        return Ok(());
    }
    store.set_spent_today(now).inspect_err(|e| {
        tracing::error!(error = %e, "the day's signed amount could not be stored");
    })
}

fn create_private_dir(dir: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| DaemonError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// The daemon's state; cheap to clone.
#[derive(Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

struct Inner {
    coordinator: Coordinator,
    keypair: Keypair,
    consent: Arc<Mutex<Consent>>,
    store: Arc<SessionStore>,
    metrics: Metrics,
    events: broadcast::Sender<Value>,
    /// The last event id; held while an event is sent, so ids and channel
    /// order agree.
    seq: Mutex<u64>,
    clock: Arc<dyn Clock + Send + Sync>,
    /// When each timed session's current phase started.
    marks: Mutex<HashMap<SessionId, Instant>>,
}

/// A parsed `POST /v1/requests` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// Every signer's key (ours included), hex.
    pub signers: Vec<String>,
    /// The 32-byte message, hex.
    pub message: String,
    /// What is being signed.
    #[serde(default)]
    pub metadata: Option<NewMetadata>,
}

/// `metadata` of a new request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMetadata {
    /// `taproot`, `pubkeyhash` or `scripthash`.
    pub input_script_type: Option<String>,
    /// `spend`, `swap`, `coinjoin`, `custody`, `escrow`, `channel`.
    pub transaction_type: Option<String>,
    /// Satoshis.
    pub amount: Option<u64>,
    /// Free text.
    pub purpose: Option<String>,
}

fn parse_id(what: &str, text: &str) -> Result<[u8; 32], ApiError> {
    hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ApiError::BadRequest(format!("{what}: expected 32 bytes of hex")))
}

fn metadata_json(m: &SigningMetadata) -> Value {
    json!({
        "input_script_type": m.input_script_type.map(|t| match t {
            InputScriptType::Taproot => "taproot",
            InputScriptType::PubKeyHash => "pubkeyhash",
            InputScriptType::ScriptHash => "scripthash",
        }),
        "transaction_type": m.transaction_type.map(TransactionType::as_str),
        "amount": m.amount,
        "purpose": m.purpose,
        "sighash_type": m.sighash_type,
    })
}

fn request_json(a: &SessionAnnouncement) -> Value {
    json!({
        "request_id": hex::encode(a.request_id),
        "session_id": hex::encode(a.session_id().to_bytes()),
        "signers": a.required_pubkeys.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "creator": {"pubkey": a.creator_pubkey.to_string(), "peer_id": a.creator_peer_id},
        "message": hex::encode(a.message),
        "metadata": metadata_json(&a.metadata),
        "created_at": a.created_at,
        "expires_at": a.expires_at,
    })
}

fn error_info(
    code: &'static str,
    signer: Option<usize>,
    culprits: Vec<usize>,
    message: &str,
) -> SessionErrorInfo {
    SessionErrorInfo {
        code: code.to_string(),
        signer,
        culprits,
        message: message.to_string(),
        grounds: "unproven".into(),
        evidence: None,
    }
}

/// [`error_info`] with the coordinator's grounds and evidence.
fn error_info_with_blame(
    code: &'static str,
    signer: Option<usize>,
    culprits: Vec<usize>,
    message: &str,
    blame: &Blame,
) -> SessionErrorInfo {
    let mut info = error_info(code, signer, culprits, message);
    info.grounds = match blame {
        Blame::Proof(_) => "proof",
        Blame::Observed => "observed",
        Blame::Reported { .. } => "reported",
        _ => "unproven",
    }
    .into();
    info.evidence = blame.evidence().and_then(|e| serde_json::to_value(e).ok());
    info
}

impl Daemon {
    fn now(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    /// A new receiver of the API's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Value> {
        self.inner.events.subscribe()
    }

    /// Sends an event to the API's subscribers, with the next id.
    fn publish(&self, event: &str, mut fields: Value) {
        let mut seq = lock(&self.inner.seq);
        *seq += 1;
        if let Some(map) = fields.as_object_mut() {
            map.insert("id".into(), json!(*seq));
            map.insert("event".into(), json!(event));
            map.insert("time".into(), json!(self.now()));
        }
        // No subscriber is fine.
        let _ = self.inner.events.send(fields);
    }

    // --- the API's operations ------------------------------------------------

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Value, ApiError> {
        let c = &self.inner.coordinator;
        let listen_addrs: Vec<String> = c
            .multiaddrs()
            .await?
            .iter()
            .map(ToString::to_string)
            .collect();
        let peers = c
            .net()
            .connected_peers()
            .await
            .map_err(CoordinatorError::from)?;
        Ok(json!({
            "peer_id": c.local_peer_id().to_string(),
            "pubkey": self.inner.keypair.public_key().to_string(),
            "listen_addrs": listen_addrs,
            "connected_peers": peers.len(),
            "sessions_active": self.sessions_active()?,
            "version": env!("CARGO_PKG_VERSION"),
        }))
    }

    fn sessions_active(&self) -> Result<usize, ApiError> {
        Ok(self
            .inner
            .store
            .list()?
            .iter()
            .filter(|r| !r.is_final())
            .count())
    }

    /// `POST /v1/requests`.
    pub async fn create_request(&self, body: &[u8]) -> Result<Value, ApiError> {
        let req: NewRequest =
            serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
        let signers = req
            .signers
            .iter()
            .map(|k| {
                PublicKey::from_str(k).map_err(|_| {
                    ApiError::BadRequest(format!("signers: {k:?} is not a public key"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let message = parse_id("message", &req.message)?;
        let m = req.metadata.unwrap_or_default();
        let metadata = SigningMetadata {
            input_script_type: match m.input_script_type.as_deref() {
                None => None,
                Some("taproot") => Some(InputScriptType::Taproot),
                Some("pubkeyhash") => Some(InputScriptType::PubKeyHash),
                Some("scripthash") => Some(InputScriptType::ScriptHash),
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                        "metadata.input_script_type: unknown {other:?}"
                    )));
                }
            },
            transaction_type: m
                .transaction_type
                .as_deref()
                .map(|t| {
                    TransactionType::from_str(t).map_err(|_| {
                        ApiError::BadRequest(format!("metadata.transaction_type: unknown {t:?}"))
                    })
                })
                .transpose()?,
            amount: m.amount,
            purpose: m.purpose,
            ..SigningMetadata::default()
        };
        let c = &self.inner.coordinator;
        let request_id = c
            .announce_signing_request(&signers, message, &self.inner.keypair, metadata)
            .await?;
        let session_id = c
            .get_session_by_request(request_id)
            .ok_or(CoordinatorError::UnknownRequest)?;
        self.track(session_id)?;
        Ok(json!({"request_id": hex::encode(request_id), "session_id": hex::encode(session_id)}))
    }

    /// `GET /v1/requests/pending`.
    pub fn pending(&self) -> Value {
        let now = self.now();
        let pending = lock(&self.inner.consent).pending(now);
        Value::Array(
            pending
                .iter()
                .map(|p| {
                    let mut v = request_json(&p.announcement);
                    if let Some(map) = v.as_object_mut() {
                        map.insert("received_at".into(), json!(p.received_at));
                    }
                    v
                })
                .collect(),
        )
    }

    /// `POST /v1/requests/{id}/approve`: joins the request.
    pub async fn approve(&self, request_id: &str) -> Result<Value, ApiError> {
        let request_id = parse_id("request_id", request_id)?;
        let announcement = {
            let mut consent = lock(&self.inner.consent);
            let announcement = consent.approve(&request_id, self.now())?;
            if let Err(e) = save_spent_today(&self.inner.store, &consent) {
                consent.restore(announcement, self.now());
                return Err(e.into());
            }
            announcement
        };
        let joined = self
            .inner
            .coordinator
            .join_signing_request(request_id, &self.inner.keypair)
            .await;
        let session_id = match joined {
            Ok(id) => id,
            Err(e) => {
                // Joined already (twice-approved through a race): nothing to restore.
                if !matches!(e, CoordinatorError::AlreadyJoined) {
                    let mut consent = lock(&self.inner.consent);
                    consent.restore(announcement, self.now());
                    let _ = save_spent_today(&self.inner.store, &consent);
                }
                return Err(e.into());
            }
        };
        self.track(session_id)?;
        let out =
            json!({"request_id": hex::encode(request_id), "session_id": hex::encode(session_id)});
        self.publish("request-approved", out.clone());
        Ok(out)
    }

    /// `POST /v1/requests/{id}/reject`.
    pub fn reject(&self, request_id: &str) -> Result<Value, ApiError> {
        let request_id = parse_id("request_id", request_id)?;
        lock(&self.inner.consent).reject(&request_id, self.now())?;
        self.inner.metrics.consent_rejection(Rule::Operator);
        let out = json!({"request_id": hex::encode(request_id), "rejected": true});
        self.publish("request-rejected", out.clone());
        Ok(out)
    }

    /// `GET /v1/sessions`.
    pub fn sessions(&self) -> Result<Value, ApiError> {
        let records: Vec<SessionRecord> = self
            .inner
            .store
            .list()?
            .into_iter()
            .map(|r| self.live(r))
            .collect();
        Ok(serde_json::to_value(records).unwrap_or(Value::Null))
    }

    /// `GET /v1/sessions/{id}`.
    pub fn session(&self, session_id: &str) -> Result<Value, ApiError> {
        let id = parse_id("session_id", session_id)?;
        let record = self
            .inner
            .store
            .get(&id)?
            .ok_or_else(|| ApiError::NotFound("no session with that id".into()))?;
        Ok(serde_json::to_value(self.live(record)).unwrap_or(Value::Null))
    }

    /// A stored record with the live phase of a session still running.
    fn live(&self, mut record: SessionRecord) -> SessionRecord {
        if record.is_final() {
            return record;
        }
        let id = hex::decode(&record.session_id)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        if let Some(info) = id.and_then(|id| self.inner.coordinator.get_session(id)) {
            record.phase = info.phase.as_str().to_string();
            record.coordinator_index = info.coordinator_index;
        }
        record
    }

    /// `DELETE /v1/sessions/{id}`: aborts the session with every co-signer.
    pub fn close(&self, session_id: &str) -> Result<Value, ApiError> {
        let id = parse_id("session_id", session_id)?;
        match self.inner.coordinator.close_session(id) {
            Ok(()) => {}
            Err(CoordinatorError::UnknownSession) => {
                return Err(match self.inner.store.get(&id)? {
                    Some(r) if r.is_final() => {
                        ApiError::Conflict("the session has already ended".into())
                    }
                    _ => ApiError::NotFound("no open session with that id".into()),
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.end(
            id,
            Outcome::Closed,
            "SESSION_ABORTED",
            error_info("SESSION_ABORTED", None, vec![], "closed through the API"),
        )?;
        let record = self.inner.store.get(&id)?;
        Ok(serde_json::to_value(record).unwrap_or(Value::Null))
    }

    /// `GET /v1/peers`.
    pub async fn peers(&self) -> Result<Value, ApiError> {
        let c = &self.inner.coordinator;
        let peers = c
            .net()
            .connected_peers()
            .await
            .map_err(CoordinatorError::from)?;
        let out: Vec<Value> = peers
            .iter()
            .map(|p| {
                let score = c.with_security(|s| s.peer_score(&SecPeer::new(p.to_string())));
                json!({
                    "peer_id": p.to_string(),
                    "reputation": {
                        "score": score.score,
                        "completed_sessions": score.completed_sessions,
                        "invalid_signatures": score.invalid_signatures,
                        "spam_count": score.spam_count,
                        "rate_limit_violations": score.rate_limit_violations,
                    },
                })
            })
            .collect();
        Ok(Value::Array(out))
    }

    /// `GET /metrics`: copies the outside counters in, then encodes.
    pub async fn metrics_text(&self) -> String {
        let c = &self.inner.coordinator;
        let security = c.with_security(|s| s.metrics(self.now()));
        let net = c.net().metrics().await.ok();
        let peers = c
            .net()
            .connected_peers()
            .await
            .map(|p| p.len())
            .unwrap_or(0);
        let active = self.sessions_active().unwrap_or(0);
        self.inner.metrics.refresh(
            &security,
            c.counters().late_messages,
            net.as_ref(),
            peers,
            active,
        );
        self.inner.metrics.encode()
    }

    // --- the session records ------------------------------------------------------

    /// Records a session this node takes part in (from the coordinator's
    /// snapshot), if it is not recorded yet, and starts timing it.
    fn track(&self, session_id: SessionId) -> Result<(), StoreError> {
        let Some(info) = self.inner.coordinator.get_session(session_id) else {
            return Ok(());
        };
        let now = self.now();
        let created = self.inner.store.update(&session_id, |old| {
            if old.is_some() {
                return None;
            }
            Some(SessionRecord {
                session_id: hex::encode(session_id),
                request_id: hex::encode(info.request_id),
                phase: info.phase.as_str().to_string(),
                signers: info.signers.iter().map(ToString::to_string).collect(),
                my_index: info.my_index,
                coordinator_index: info.coordinator_index,
                aggregate_pubkey: info.aggregate_pubkey.to_string(),
                message: hex::encode(info.message),
                signature: None,
                sighash_type: None,
                error: None,
                created_at: now,
                updated_at: now,
            })
        })?;
        if created.is_some() {
            let mut marks = lock(&self.inner.marks);
            if marks.len() < MAX_TIMED_SESSIONS {
                marks.insert(session_id, Instant::now());
            }
        }
        Ok(())
    }

    /// A phase of a timed session ended: observes its duration, starts the next.
    fn phase_done(&self, session_id: SessionId, phase: Phase) {
        let mut marks = lock(&self.inner.marks);
        if let Some(start) = marks.get_mut(&session_id) {
            self.inner
                .metrics
                .phase(phase, start.elapsed().as_secs_f64());
            *start = Instant::now();
        }
    }

    /// Updates a running session's phase in the store.
    fn set_phase(&self, session_id: SessionId) -> Result<(), StoreError> {
        let Some(info) = self.inner.coordinator.get_session(session_id) else {
            return Ok(());
        };
        let now = self.now();
        self.inner.store.update(&session_id, |old| {
            let mut r = old?;
            if r.is_final() {
                return None;
            }
            r.phase = info.phase.as_str().to_string();
            r.coordinator_index = info.coordinator_index;
            r.updated_at = now;
            Some(r)
        })?;
        Ok(())
    }

    /// Ends a session with an error (once: a session that already ended
    /// keeps its outcome; a closure here overrides the coordinator's own
    /// `SESSION_CLOSED`).
    fn end(
        &self,
        session_id: SessionId,
        outcome: Outcome,
        code: &'static str,
        error: SessionErrorInfo,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut ended = false;
        self.inner.store.update(&session_id, |old| {
            let mut r = old?;
            let overridable = outcome == Outcome::Closed
                && r.error.as_ref().is_some_and(|e| e.code == "SESSION_CLOSED");
            if r.signature.is_some() || (r.error.is_some() && !overridable) {
                return None;
            }
            ended = r.error.is_none();
            r.phase = "CLOSED".into();
            r.error = Some(error);
            r.updated_at = now;
            Some(r)
        })?;
        if ended {
            lock(&self.inner.marks).remove(&session_id);
            let code = (outcome == Outcome::Failed).then_some(code);
            self.inner.metrics.session_ended(outcome, code);
        }
        Ok(())
    }

    /// Records the signature of a completed session.
    fn complete(&self, session_id: SessionId) -> Result<(), StoreError> {
        let Ok(fin) = self.inner.coordinator.get_final_signature(session_id) else {
            return Ok(());
        };
        let info = self.inner.coordinator.get_session(session_id);
        let now = self.now();
        let mut completed = false;
        self.inner.store.update(&session_id, |old| {
            let mut r = old?;
            if r.signature.is_some() {
                return None;
            }
            completed = true;
            r.phase = "COMPLETE".into();
            r.signature = Some(fin.signature.to_string());
            r.sighash_type = fin.sighash_type;
            r.error = None;
            if let Some(info) = info {
                r.coordinator_index = info.coordinator_index;
            }
            r.updated_at = now;
            Some(r)
        })?;
        if completed {
            self.phase_done(session_id, Phase::Round2);
            lock(&self.inner.marks).remove(&session_id);
            self.inner.metrics.session_ended(Outcome::Completed, None);
        }
        Ok(())
    }

    /// At start: a session that was running when the node stopped is over
    /// (it is never resumed: its secret nonce is gone).
    fn mark_interrupted(&self) -> Result<(), StoreError> {
        let now = self.now();
        for r in self.inner.store.list()? {
            if r.is_final() {
                continue;
            }
            let Ok(id) = parse_id("session_id", &r.session_id) else {
                continue;
            };
            self.inner.store.update(&id, |old| {
                let mut r = old?;
                r.phase = "CLOSED".into();
                r.error = Some(error_info(
                    "NODE_RESTARTED",
                    None,
                    vec![],
                    "the node stopped before the session ended; sessions are never resumed",
                ));
                r.updated_at = now;
                Some(r)
            })?;
        }
        Ok(())
    }

    /// Clean shutdown: every open session is closed with an abort to its
    /// co-signers.
    pub fn close_open_sessions(&self) {
        let Ok(records) = self.inner.store.list() else {
            return;
        };
        for r in records.into_iter().filter(|r| !r.is_final()) {
            let Ok(id) = parse_id("session_id", &r.session_id) else {
                continue;
            };
            if self.inner.coordinator.close_session(id).is_ok()
                && let Err(e) = self.end(
                    id,
                    Outcome::Closed,
                    "SESSION_ABORTED",
                    error_info("SESSION_ABORTED", None, vec![], "the node shut down"),
                )
            {
                tracing::warn!(error = %e, "session not recorded as closed");
            }
        }
    }

    // --- the event task -----------------------------------------------------------

    /// Records every coordinator event and forwards it to the API's
    /// subscribers; drops unanswered requests at their expiry.
    async fn pump(self) {
        let mut events = self.inner.coordinator.subscribe();
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        if let Err(e) = self.on_event(&event) {
                            tracing::warn!(error = %e, "session store");
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "the daemon missed coordinator events");
                        self.publish("lagged", json!({"missed": n}));
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = sweep.tick() => {
                    let expired = lock(&self.inner.consent).sweep(self.now());
                    for id in expired {
                        self.inner.metrics.consent_rejection(Rule::Expired);
                        self.publish("request-expired", json!({"request_id": hex::encode(id)}));
                    }
                }
            }
        }
    }

    fn on_event(&self, event: &CoordinatorEvent) -> Result<(), StoreError> {
        let hexid = |id: &[u8; 32]| hex::encode(id);
        match event {
            CoordinatorEvent::SigningRequestCreated {
                request_id,
                session_id,
            } => {
                self.inner.metrics.request("created");
                self.track(*session_id)?;
                self.publish(
                    "request-created",
                    json!({"request_id": hexid(request_id), "session_id": hexid(session_id)}),
                );
            }
            CoordinatorEvent::SigningRequestReceived { announcement } => {
                self.inner.metrics.request("received");
                let mut v = request_json(announcement);
                let joined = self
                    .inner
                    .coordinator
                    .get_session_by_request(announcement.request_id);
                let consent = match joined {
                    Some(session_id) => {
                        self.track(session_id)?;
                        json!("approved")
                    }
                    None => {
                        let verdict = {
                            let mut c = lock(&self.inner.consent);
                            match c.verdict(&announcement.request_id) {
                                Some(v) => v,
                                None => c.observe(announcement, self.now()),
                            }
                        };
                        match verdict {
                            Verdict::Hold => json!("pending"),
                            Verdict::Join => json!("approved"),
                            Verdict::Refuse(rule) => {
                                self.inner.metrics.consent_rejection(rule);
                                json!({"refused": rule.as_str()})
                            }
                        }
                    }
                };
                if let Some(map) = v.as_object_mut() {
                    map.insert("consent".into(), consent);
                }
                self.publish("request-received", v);
            }
            CoordinatorEvent::SessionCreated(id) => {
                self.publish("session-created", json!({"session_id": hexid(id)}));
            }
            CoordinatorEvent::SessionReady {
                request_id,
                session_id,
            } => {
                self.track(*session_id)?;
                self.phase_done(*session_id, Phase::Join);
                self.set_phase(*session_id)?;
                self.publish(
                    "session-ready",
                    json!({"request_id": hexid(request_id), "session_id": hexid(session_id)}),
                );
            }
            CoordinatorEvent::NonceCommitmentsComplete(id) => {
                self.phase_done(*id, Phase::NonceCommitments);
                self.set_phase(*id)?;
                self.publish(
                    "nonce-commitments-complete",
                    json!({"session_id": hexid(id)}),
                );
            }
            CoordinatorEvent::Round1Complete(id) => {
                self.phase_done(*id, Phase::Round1);
                self.set_phase(*id)?;
                self.publish("round1-complete", json!({"session_id": hexid(id)}));
            }
            CoordinatorEvent::SessionComplete {
                session_id,
                signature,
            } => {
                self.complete(*session_id)?;
                self.publish(
                    "session-complete",
                    json!({"session_id": hexid(session_id), "signature": signature.to_string()}),
                );
            }
            CoordinatorEvent::SessionClosed(id) => {
                self.end(
                    *id,
                    Outcome::Closed,
                    "SESSION_CLOSED",
                    error_info("SESSION_CLOSED", None, vec![], "the session was closed"),
                )?;
                self.publish("session-closed", json!({"session_id": hexid(id)}));
            }
            CoordinatorEvent::SessionError {
                session_id,
                code,
                signer,
                culprits,
                message,
                blame,
                ..
            } => {
                self.end(
                    *session_id,
                    Outcome::Failed,
                    code.as_str(),
                    error_info_with_blame(code.as_str(), *signer, culprits.clone(), message, blame),
                )?;
                self.publish(
                    "session-error",
                    json!({
                        "session_id": hexid(session_id),
                        "code": code.as_str(),
                        "signer": signer,
                        "culprits": culprits,
                        "message": message,
                    }),
                );
            }
            CoordinatorEvent::ShouldBroadcast {
                session_id,
                coordinator_index,
            } => {
                self.publish(
                    "should-broadcast",
                    json!({"session_id": hexid(session_id), "coordinator_index": coordinator_index}),
                );
            }
            CoordinatorEvent::CoordinatorFailed {
                session_id,
                attempt,
            } => {
                self.set_phase(*session_id)?;
                self.publish(
                    "coordinator-failed",
                    json!({"session_id": hexid(session_id), "attempt": attempt}),
                );
            }
            CoordinatorEvent::FailoverExhausted {
                session_id,
                attempts,
            } => {
                self.publish(
                    "failover-exhausted",
                    json!({"session_id": hexid(session_id), "attempts": attempts}),
                );
            }
            CoordinatorEvent::SignerDiscovered(ad) => {
                self.publish(
                    "signer-discovered",
                    json!({"pubkey": ad.pubkey.to_string(), "peer_id": ad.peer_id}),
                );
            }
            CoordinatorEvent::Peer(p) => {
                let (name, peer) = match p {
                    PeerEvent::Discovered { peer, .. } => ("peer-discovered", peer),
                    PeerEvent::Connected(peer) => ("peer-connected", peer),
                    PeerEvent::Disconnected(peer) => ("peer-disconnected", peer),
                    PeerEvent::Updated { peer, .. } => ("peer-updated", peer),
                    PeerEvent::RelayAddressesAvailable { relay } => {
                        ("relay-addresses-available", relay)
                    }
                    _ => return Ok(()),
                };
                self.publish(name, json!({"peer_id": peer.to_string()}));
            }
            CoordinatorEvent::Security(s) => {
                self.publish(
                    "security",
                    json!({"kind": s.name(), "peer_id": s.peer().to_string()}),
                );
            }
            other => {
                // Events this daemon does not interpret (e.g. broadcast
                // confirmations) are still forwarded, by name.
                let debug = format!("{other:?}");
                let name: String = debug
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                let session_id = match other {
                    CoordinatorEvent::BroadcastConfirmed { session_id: id, .. } => Some(hexid(id)),
                    _ => None,
                };
                self.publish(&kebab(&name), json!({"session_id": session_id}));
            }
        }
        Ok(())
    }
}

/// Resolves at SIGINT or SIGTERM (or never, if neither can be watched).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIGTERM not watched");
                std::future::pending::<()>().await;
            }
        }
    };
    let int = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "SIGINT not watched");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = int => {}
        () = term => {}
    }
}

/// `BroadcastConfirmed` → `broadcast-confirmed`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_loopback_unless_allowed() {
        assert!(listen_addr("api", "127.0.0.1:0", false).is_ok());
        assert!(listen_addr("api", "[::1]:8080", false).is_ok());
        assert!(listen_addr("api", "0.0.0.0:8080", false).is_err());
        assert!(listen_addr("api", "192.168.1.2:8080", false).is_err());
        assert!(listen_addr("api", "0.0.0.0:8080", true).is_ok());
        assert!(listen_addr("api", "localhost", false).is_err());
    }

    #[test]
    fn errors_have_a_code_a_status_and_the_documented_shape() {
        let e = ApiError::from(ConsentError::Unknown);
        assert_eq!((e.status(), e.code()), (404, "not_found"));
        assert_eq!(ApiError::Expired.status(), 410);
        let e = ApiError::from(CoordinatorError::AlreadyJoined);
        assert_eq!((e.status(), e.code()), (409, "already_joined"));
        let body = ApiError::Unauthorized.body();
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(body["error"]["message"].is_string());
    }

    #[test]
    fn event_names_are_kebab_case() {
        assert_eq!(kebab("BroadcastConfirmed"), "broadcast-confirmed");
        assert_eq!(kebab("Round1Complete"), "round1-complete");
    }

    /// The daemon's logic over a real coordinator on loopback, without HTTP.
    #[tokio::test(flavor = "multi_thread")]
    async fn close_records_one_outcome_and_answers_typed_errors() {
        use lotus_musig2::coordinator::CoordinatorConfig;
        use lotus_musig2::net::{NetConfig, NodeKeypair};

        let dir = tempfile::tempdir().unwrap();
        let keypair = Keypair::new(lotus_musig2::core::SecretKey::from_bytes(&[7; 32]).unwrap());
        let (a, b) = (
            Keypair::new(lotus_musig2::core::SecretKey::from_bytes(&[8; 32]).unwrap()),
            Keypair::new(lotus_musig2::core::SecretKey::from_bytes(&[9; 32]).unwrap()),
        );
        let api = ApiConfig {
            listen: "127.0.0.1:0".into(),
            allow_remote: false,
        };
        let setup = Setup::from_config(
            Some(dir.path()),
            Some(&api),
            None,
            &ApproveConfig::default(),
            vec![],
            keypair.public_key(),
        )
        .unwrap()
        .unwrap();
        let config = CoordinatorConfig {
            join_policy: setup.join_policy(),
            // The co-signers do not exist: do not look for them for long.
            discovery_timeout: Duration::from_millis(200),
            ..CoordinatorConfig::default()
        };
        let coordinator = Coordinator::start(
            NodeKeypair::generate_ed25519(),
            NetConfig::loopback(),
            config,
        )
        .await
        .unwrap();
        let (daemon, servers) = setup
            .start(coordinator.clone(), keypair.clone())
            .await
            .unwrap();
        let mut events = daemon.subscribe();

        let body = json!({
            "signers": [keypair.public_key().to_string(), a.public_key().to_string(), b.public_key().to_string()],
            "message": "11".repeat(32),
        });
        let created = daemon
            .create_request(body.to_string().as_bytes())
            .await
            .unwrap();
        let session_id = created["session_id"].as_str().unwrap().to_string();
        let record = daemon.session(&session_id).unwrap();
        assert_eq!(record["phase"], "SIGNING_REQUEST");
        assert_eq!(daemon.status().await.unwrap()["sessions_active"], 1);

        let closed = daemon.close(&session_id).unwrap();
        assert_eq!(closed["error"]["code"], "SESSION_ABORTED");
        // The coordinator's own SESSION_CLOSED neither overrides the reason
        // nor counts the session twice.
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let v = events.recv().await.unwrap();
                if v["event"] == "session-closed" && v["session_id"] == session_id.as_str() {
                    break;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(
            daemon.session(&session_id).unwrap()["error"]["code"],
            "SESSION_ABORTED"
        );
        let text = daemon.metrics_text().await;
        assert!(
            text.contains("lotus_musig2_sessions_total{outcome=\"closed\"} 1\n"),
            "{text}"
        );
        assert_eq!(daemon.status().await.unwrap()["sessions_active"], 0);

        let again = daemon.close(&session_id).unwrap_err();
        assert_eq!((again.status(), again.code()), (409, "conflict"));
        let bad = daemon.session("zz").unwrap_err();
        assert_eq!((bad.status(), bad.code()), (400, "bad_request"));
        let unknown = daemon.approve(&"00".repeat(32)).await.unwrap_err();
        assert_eq!((unknown.status(), unknown.code()), (404, "not_found"));
        let bad = daemon.create_request(b"{}").await.unwrap_err();
        assert_eq!(bad.status(), 400);
        let not_ours = json!({"signers": [a.public_key().to_string()], "message": "11".repeat(32)});
        let refused = daemon
            .create_request(not_ours.to_string().as_bytes())
            .await
            .unwrap_err();
        assert_eq!(refused.status(), 400, "{refused}");

        servers.shutdown().await;
        assert!(!dir.path().join("api.cookie").exists());
        coordinator.shutdown().await;
    }

    #[test]
    fn daemon_mode_needs_data_dir_and_api_together() {
        let key = lotus_musig2::core::Keypair::new(
            lotus_musig2::core::SecretKey::from_bytes(&[1; 32]).unwrap(),
        )
        .public_key();
        let api = ApiConfig {
            listen: "127.0.0.1:0".into(),
            allow_remote: false,
        };
        let approve = ApproveConfig::default();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert!(
            Setup::from_config(None, None, None, &approve, vec![], key)
                .unwrap()
                .is_none()
        );
        assert!(Setup::from_config(Some(dir), None, None, &approve, vec![], key).is_err());
        assert!(Setup::from_config(None, Some(&api), None, &approve, vec![], key).is_err());
        let auto = ApproveConfig::Mode(consent::ApproveMode::Auto);
        assert!(Setup::from_config(None, None, None, &auto, vec![], key).is_err());
        assert!(
            Setup::from_config(Some(dir), Some(&api), None, &approve, vec![], key)
                .unwrap()
                .is_some()
        );
    }
}
