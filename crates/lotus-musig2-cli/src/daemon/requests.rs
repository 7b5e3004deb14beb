//! The wallet's requests: `POST /v1/requests` announces one, and an
//! operator answers the requests the consent policy held
//! (`GET /v1/requests/pending`, `approve`, `reject`).

use std::str::FromStr;

use lotus_musig2::coordinator::CoordinatorError;

use lotus_musig2::core::PublicKey;
use lotus_musig2::security::{InputScriptType, SigningMetadata, TransactionType};
use serde::Deserialize;
use serde_json::{Value, json};

use super::consent::Rule;
use super::setup::save_spent_today;
use super::views::request_json;
use super::{ApiError, Daemon, lock, parse_id};

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

impl Daemon {
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
        let (request_id, session_id) = self
            .inner
            .coordinator
            .announce_signing_request_session(&signers, message, &self.inner.keypair, metadata)
            .await?;
        if !self.track(session_id)? {
            // It ended before we could record it (a co-signer unreachable):
            // recorded anyway, so the API never answers "unknown" for it.
            self.track_ended(session_id, request_id, &signers, message)?;
        }
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
}
