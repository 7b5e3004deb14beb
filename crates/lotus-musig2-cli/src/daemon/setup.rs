//! Start and shutdown: [`Setup`] checks the daemon's part of the
//! configuration before the node starts, gives the coordinator its join
//! policy, then starts the event follower and the HTTP servers;
//! [`shutdown_signal`] says when to stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lotus_musig2::coordinator::config::SignedLog;
use lotus_musig2::coordinator::identity::LiveIdentityManager;
use lotus_musig2::coordinator::{Coordinator, JoinDecision, JoinPolicy};
use lotus_musig2::core::{Keypair, PublicKey};
use lotus_musig2::security::{Clock, SystemClock};
use tokio::sync::broadcast;
use zeroize::Zeroizing;

use super::config::{ApiConfig, MetricsConfig, listen_addr};
use super::consent::{ApproveConfig, Consent, Rule, Verdict};
use super::metrics::Metrics;
use super::persist::{DirLock, lock_data_dir, node_key};
use super::store::{SessionStore, StoreError};
use super::{Daemon, DaemonError, EVENT_CAPACITY, Inner, SessionId, api, lock};

/// The daemon's part of the configuration, checked before the node starts.
pub struct Setup {
    data_dir: PathBuf,
    api: SocketAddr,
    metrics: Option<SocketAddr>,
    consent: Arc<Mutex<Consent>>,
    clock: Arc<dyn Clock + Send + Sync>,
    registry: Metrics,
    store: Arc<SessionStore>,
    identities: Option<Arc<LiveIdentityManager>>,
    lock: DirLock,
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
        let lock = lock_data_dir(data_dir)?;
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
            identities: None,
            lock,
        }))
    }

    /// The libp2p node key kept in the data directory (made the first time):
    /// the node keeps its peer id across restarts.
    pub fn node_key(&self) -> Result<Zeroizing<[u8; 32]>, DaemonError> {
        node_key(&self.data_dir)
    }

    /// The sessions this node drew a nonce in before it stopped, unexpired
    /// (for `CoordinatorConfig::signed_sessions`).
    pub fn signed_sessions(&self) -> Result<Vec<(SessionId, u64)>, DaemonError> {
        Ok(self.store.signed_sessions(self.clock.now_ms())?)
    }

    /// Records, durably, each session this node draws a nonce in (for
    /// `CoordinatorConfig::signed_log`).
    pub fn signed_log(&self) -> SignedLog {
        let store = Arc::clone(&self.store);
        Arc::new(move |id, expires_at| {
            store
                .record_signed(&id, expires_at)
                .map_err(|e| e.to_string())
        })
    }

    /// Burn identities: served by the API, and the consent rule
    /// `min_identity_reputation` reads co-signers' reputation from them.
    pub fn set_identities(&mut self, manager: Arc<LiveIdentityManager>) {
        let lookup = Arc::clone(&manager);
        lock(&self.consent).set_reputation(Arc::new(move |key| {
            let id = lookup.identity_by_key(key)?;
            lookup
                .identity(&id)
                .filter(|i| !i.is_banned())
                .map(|i| i.reputation().score())
        }));
        self.identities = Some(manager);
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
                identities: self.identities,
                saved_reputation: Mutex::new(Vec::new()),
                _lock: self.lock,
            }),
        };
        daemon.restore_reputation()?;
        daemon.mark_interrupted()?;
        let pump = tokio::spawn(daemon.clone().pump());
        let servers =
            api::serve(daemon.clone(), &self.data_dir, self.api, self.metrics, pump).await?;
        Ok((daemon, servers))
    }
}

/// Stores the consent policy's day total if it changed since last stored.
pub(super) fn save_spent_today(store: &SessionStore, consent: &Consent) -> Result<(), StoreError> {
    let now = consent.spent_today();
    if store.spent_today()? == Some(now) || now == (0, 0) {
        return Ok(());
    }
    store.set_spent_today(now).inspect_err(|e| {
        tracing::error!(error = %e, "the day's signed amount could not be stored");
    })
}

pub(super) fn create_private_dir(dir: &Path) -> Result<(), DaemonError> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::consent;
    use super::*;

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
        let auto = ApproveConfig::Mode(consent::config::ApproveMode::Auto);
        assert!(Setup::from_config(None, None, None, &auto, vec![], key).is_err());
        assert!(
            Setup::from_config(Some(dir), Some(&api), None, &approve, vec![], key)
                .unwrap()
                .is_some()
        );
    }
}
