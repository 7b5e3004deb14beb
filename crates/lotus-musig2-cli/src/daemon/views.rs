//! Read-only views as JSON: the node's status, its sessions (the stored
//! record with the live phase), its peers, the Prometheus text, and the
//! JSON form of a signing request.

use lotus_musig2::coordinator::CoordinatorError;
use lotus_musig2::security::{
    InputScriptType, PeerId as SecPeer, PeerScore, SessionAnnouncement, SigningMetadata,
    TransactionType,
};
use serde_json::{Value, json};

use super::store::SessionRecord;
use super::{ApiError, Daemon, parse_id};

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

fn reputation_json(score: &PeerScore) -> Value {
    json!({
        "score": score.score,
        "completed_sessions": score.completed_sessions,
        "invalid_signatures": score.invalid_signatures,
        "spam_count": score.spam_count,
        "rate_limit_violations": score.rate_limit_violations,
    })
}

pub(super) fn request_json(a: &SessionAnnouncement) -> Value {
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

impl Daemon {
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

    /// Sessions open in the coordinator and not complete (from its state,
    /// not the store: a status poll must not read every record).
    fn sessions_active(&self) -> Result<usize, ApiError> {
        let sizes = self.inner.coordinator.state_sizes();
        Ok(sizes.sessions.saturating_sub(sizes.completed))
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
        let Some(id) = id else {
            return record;
        };
        if let Some(info) = self.inner.coordinator.get_session(id) {
            record.phase = info.phase.as_str().to_string();
            record.coordinator_index = info.coordinator_index;
        }
        // Complete in the coordinator before the follower wrote it down:
        // never `COMPLETE` without its signature.
        if let Ok(fin) = self.inner.coordinator.get_final_signature(id) {
            record.phase = "COMPLETE".into();
            record.signature = Some(fin.signature.to_string());
            record.sighash_type = fin.sighash_type;
        }
        record
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
                json!({"peer_id": p.to_string(), "reputation": reputation_json(&score)})
            })
            .collect();
        Ok(Value::Array(out))
    }

    /// `GET /v1/peers/{peer_id}`: what this node holds against (or for) one
    /// peer, connected or not: its reputation, blacklisting and graylisting.
    pub async fn peer(&self, peer_id: &str) -> Result<Value, ApiError> {
        let parsed: lotus_musig2::net::PeerId = peer_id
            .parse()
            .map_err(|_| ApiError::BadRequest("peer_id: not a libp2p peer id".into()))?;
        let c = &self.inner.coordinator;
        let connected = c
            .net()
            .connected_peers()
            .await
            .map_err(CoordinatorError::from)?
            .contains(&parsed);
        let peer = SecPeer::new(parsed.to_string());
        let now = self.now();
        let (score, blacklisted, graylisted_until) = c.with_security(|s| {
            let blacklisted = s.reputation().blacklist_entry(&peer).map(|e| {
                json!({"reason": e.reason.to_string(), "since": e.since, "manual": e.is_manual()})
            });
            let until = s
                .graylisted_peers(now)
                .into_iter()
                .find(|(p, _)| *p == peer)
                .map(|(_, until)| until);
            (s.peer_score(&peer), blacklisted, until)
        });
        Ok(json!({
            "peer_id": parsed.to_string(),
            "connected": connected,
            "reputation": reputation_json(&score),
            "blacklisted": blacklisted,
            "graylisted_until": graylisted_until,
        }))
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
}
