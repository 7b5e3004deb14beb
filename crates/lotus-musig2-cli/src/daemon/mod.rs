//! `lotus-musig2 node` as a signer daemon: a local HTTP API (`[api]`) that
//! wallets drive, a consent policy (`approve`), a session store under
//! `data_dir`, live events (SSE) and Prometheus metrics (`[metrics]`).
//!
//! [`Daemon`] holds the logic; `api` is a thin axum layer over it (each
//! handler parses, calls one method, maps the typed [`ApiError`] to a
//! status). The round-driving loop stays in `node.rs`: the daemon decides
//! what to sign and records what happens.
//!
//! One job per module: `config` (`[api]`, `[metrics]`), `error` (the typed
//! errors), `setup` (start and shutdown), `requests` (the wallet's requests
//! and the operator's answers), `views` (read-only JSON), `records` (the
//! session records and their metrics), `follower` (the coordinator-event
//! task), `consent` (the policy), `identities` (burn identities and their
//! endpoints), `store` and `persist` (what survives a restart), `metrics`,
//! `api` (HTTP).

pub mod api;
mod broadcasting;
mod config;
pub mod consent;
mod error;
mod follower;
pub mod identities;
pub mod metrics;
pub mod persist;
mod records;
mod reputation;
mod requests;
mod setup;
pub mod store;
mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use lotus_musig2::coordinator::Coordinator;
use lotus_musig2::core::Keypair;
use lotus_musig2::security::{Clock, Millis};
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use lotus_musig2::coordinator::{RequestId, SessionId};

pub use config::{ApiConfig, MetricsConfig};
pub use error::{ApiError, DaemonError};
pub use identities::IdentityConfig;
pub use setup::{Setup, shutdown_signal};

use consent::Consent;
use metrics::Metrics;
use store::SessionStore;

/// Capacity of the API's event channel. A subscriber (an SSE client) that
/// falls further behind loses the oldest events and is told how many
/// (a `lagged` event); the daemon itself never waits for a subscriber.
pub const EVENT_CAPACITY: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
    /// Burn identities, when `[identity] enabled`.
    identities: Option<Arc<lotus_musig2::coordinator::identity::LiveIdentityManager>>,
    /// The peer scores as last saved (saved again only when they change).
    saved_reputation: Mutex<Vec<lotus_musig2::security::SavedPeer>>,
    /// The data directory's lock, held while the daemon runs.
    _lock: persist::DirLock,
}

fn parse_id(what: &str, text: &str) -> Result<[u8; 32], ApiError> {
    hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ApiError::BadRequest(format!("{what}: expected 32 bytes of hex")))
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::consent::ApproveConfig;
    use super::*;

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

        // A session of ours that ended before it could be recorded is still
        // served (`SESSION_ENDED`), and the coordinator's own error, seen
        // later, replaces that code.
        let early = [9u8; 32];
        daemon
            .track_ended(
                early,
                [8; 32],
                &[keypair.public_key(), a.public_key()],
                [1; 32],
            )
            .unwrap();
        let served = daemon.session(&hex::encode(early)).unwrap();
        assert_eq!(served["error"]["code"], "SESSION_ENDED", "{served}");
        assert_eq!(served["signers"].as_array().unwrap().len(), 2);
        daemon
            .end(
                early,
                metrics::Outcome::Failed,
                "DELIVERY_FAILED",
                records::error_info("DELIVERY_FAILED", Some(1), vec![1], "unreachable"),
            )
            .unwrap();
        let served = daemon.session(&hex::encode(early)).unwrap();
        assert_eq!(served["error"]["code"], "DELIVERY_FAILED", "{served}");
        // A record the coordinator no longer knows, not final yet: `close`
        // says it ended (409), not that it does not exist.
        let pending = [7u8; 32];
        let mut open = daemon.inner.store.get(&early).unwrap().unwrap();
        open.session_id = hex::encode(pending);
        open.error = None;
        daemon.inner.store.update(&pending, |_| Some(open)).unwrap();
        let ended = daemon.close(&hex::encode(pending)).unwrap_err();
        assert_eq!((ended.status(), ended.code()), (409, "conflict"));

        servers.shutdown().await;
        assert!(!dir.path().join("api.cookie").exists());
        coordinator.shutdown().await;
    }
}
