//! Burn identities (`[identity]`): the config table, the coordinator's
//! identity gate built from it (a Chronik client over `chronik_urls`, an
//! identity store at `<data_dir>/identities.redb`), and the API over the
//! identity manager: `GET /v1/identities/{id}`, `POST /v1/identities`
//! (register) and `POST /v1/identities/{id}/rotate` (key rotation), as the
//! reference's `identityManager.registerIdentity` / `rotateKey` /
//! `getIdentity`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use lotus_musig2::coordinator::identity::{IdentityGate, LiveIdentityManager};
use lotus_musig2::core::PublicKey;
use lotus_musig2::identity::{
    BurnPolicy, ChronikClient, ChronikConfig, Identity, IdentityError, IdentityId, IdentityStore,
    KeyRotation, OutPoint, SystemClock, TxId,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Daemon, DaemonError};

/// `[identity]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Check signer advertisements' burn identities (`enableBurnBasedIdentity`).
    #[serde(default)]
    pub enabled: bool,
    /// Chronik indexers, tried in order.
    #[serde(default)]
    pub chronik_urls: Vec<String>,
    /// This node's registration burn, `TXID:VOUT`, claimed in its advertisements.
    pub burn: Option<String>,
    /// Refuse advertisements that carry no identity (default: yes).
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// `TXID:VOUT` (the txid as displayed).
pub fn parse_outpoint(text: &str) -> Option<OutPoint> {
    let (txid, vout) = text.split_once(':')?;
    Some(OutPoint::new(
        TxId::from_str(txid).ok()?,
        vout.parse().ok()?,
    ))
}

/// The coordinator's identity gate, if `[identity] enabled`: it needs
/// `data_dir` (the store) and at least one Chronik URL.
pub fn gate(
    config: Option<&IdentityConfig>,
    data_dir: Option<&Path>,
) -> Result<Option<IdentityGate>, DaemonError> {
    let Some(config) = config.filter(|c| c.enabled) else {
        return Ok(None);
    };
    let data_dir = data_dir.ok_or_else(|| {
        DaemonError::Config("identity.enabled needs data_dir (the identity store)".into())
    })?;
    if config.chronik_urls.is_empty() {
        return Err(DaemonError::Config(
            "identity.enabled needs identity.chronik_urls".into(),
        ));
    }
    let own_burn = config
        .burn
        .as_deref()
        .map(|b| {
            parse_outpoint(b).ok_or_else(|| {
                DaemonError::Config(format!("identity.burn: {b:?} is not TXID:VOUT"))
            })
        })
        .transpose()?;
    let chronik = ChronikClient::new(ChronikConfig::with_urls(config.chronik_urls.clone()))
        .map_err(|e| DaemonError::Config(format!("identity.chronik_urls: {e}")))?;
    super::setup::create_private_dir(data_dir)?;
    let store = IdentityStore::open(data_dir.join("identities.redb"))
        .map_err(|e| DaemonError::Config(format!("identity store: {e}")))?;
    let manager = LiveIdentityManager::new(chronik, SystemClock, store, BurnPolicy::default())
        .map_err(|e| DaemonError::Config(format!("identity store: {e}")))?;
    Ok(Some(IdentityGate::new(
        Arc::new(manager),
        config.required,
        own_burn,
    )))
}

/// A parsed `POST /v1/identities` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    burn_txid: String,
    vout: u32,
    public_key: String,
    ownership_signature: String,
}

/// A parsed `POST /v1/identities/{id}/rotate` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    old_key: String,
    new_key: String,
    old_key_signature: String,
    new_key_signature: String,
    burn_txid: String,
    vout: u32,
}

fn key(what: &str, text: &str) -> Result<PublicKey, ApiError> {
    PublicKey::from_str(text)
        .map_err(|_| ApiError::BadRequest(format!("{what}: not a compressed public key")))
}

fn txid(text: &str) -> Result<TxId, ApiError> {
    TxId::from_str(text).map_err(|_| ApiError::BadRequest("burn_txid: not a txid".into()))
}

fn signature(what: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    hex::decode(text).map_err(|_| ApiError::BadRequest(format!("{what}: not hex")))
}

/// The API's view of an identity.
pub fn identity_json(identity: &Identity) -> Value {
    let r = identity.reputation();
    json!({
        "identity_id": identity.id().to_string(),
        "current_key": identity.current_key().to_string(),
        "registration_burn": identity.registration_burn().outpoint.to_string(),
        "burned_sats": r.total_burned_sats(),
        "key_history": identity.key_history().map(|k| json!({
            "public_key": k.public_key.to_string(),
            "activated_at": k.activated_at_ms,
            "revoked_at": k.revoked_at_ms,
            "rotation_burn": k.rotation.map(|p| p.burn.outpoint.to_string()),
        })).collect::<Vec<_>>(),
        "reputation": {
            "score": r.score(),
            "completed_signings": r.completed_signings(),
            "failed_signings": r.failed_signings(),
            "average_response_time_ms": r.average_response_time_ms(),
        },
        "banned": identity.ban().map(|b| json!({"at": b.at_ms, "reason": b.reason.to_string()})),
    })
}

impl Daemon {
    fn identities(&self) -> Result<&Arc<LiveIdentityManager>, ApiError> {
        self.inner.identities.as_ref().ok_or_else(|| {
            ApiError::Conflict("burn identities are off ([identity] enabled = false)".into())
        })
    }

    /// `GET /v1/identities/{id}`.
    pub fn identity(&self, id: &str) -> Result<Value, ApiError> {
        let m = self.identities()?;
        let id = IdentityId::from_str(id)
            .map_err(|_| ApiError::BadRequest("identity_id: expected 32 bytes of hex".into()))?;
        m.identity(&id)
            .map(|i| identity_json(&i))
            .ok_or_else(|| ApiError::NotFound(format!("no identity {id}")))
    }

    /// `POST /v1/identities`: registers an identity whose burn Chronik shows.
    pub async fn register_identity(&self, body: &[u8]) -> Result<Value, ApiError> {
        let m = self.identities()?;
        let r: Registration =
            serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
        let id = m
            .register_identity(
                &txid(&r.burn_txid)?,
                r.vout,
                &key("public_key", &r.public_key)?,
                &signature("ownership_signature", &r.ownership_signature)?,
            )
            .await?;
        self.identity(&id.to_string())
    }

    /// `POST /v1/identities/{id}/rotate`: installs a new key, both keys
    /// signing and a matured rotation burn paying for it.
    pub async fn rotate_identity(&self, id: &str, body: &[u8]) -> Result<Value, ApiError> {
        let m = self.identities()?;
        let identity_id = IdentityId::from_str(id)
            .map_err(|_| ApiError::BadRequest("identity_id: expected 32 bytes of hex".into()))?;
        let r: Rotation =
            serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
        let rotation = KeyRotation {
            identity_id,
            old_key: key("old_key", &r.old_key)?,
            new_key: key("new_key", &r.new_key)?,
            old_key_signature: signature("old_key_signature", &r.old_key_signature)?,
            new_key_signature: signature("new_key_signature", &r.new_key_signature)?,
            burn: OutPoint::new(txid(&r.burn_txid)?, r.vout),
        };
        m.rotate_key(&rotation).await?;
        self.identity(id)
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::UnknownIdentity { .. } => Self::NotFound(e.to_string()),
            IdentityError::AlreadyRegistered { .. }
            | IdentityError::BurnAlreadyUsed { .. }
            | IdentityError::KeyAlreadyBound { .. }
            | IdentityError::NotCurrentKey { .. }
            | IdentityError::Banned { .. } => Self::Conflict(e.to_string()),
            IdentityError::Indexer(_) => Self::Upstream(e.to_string()),
            IdentityError::Store(_) => Self::Internal(e.to_string()),
            _ => Self::BadRequest(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn outpoints_and_the_config_are_checked() {
        let txid = "11".repeat(32);
        let o = parse_outpoint(&format!("{txid}:3")).unwrap();
        assert_eq!(o.vout, 3);
        assert_eq!(o.to_string(), format!("{txid}:3"));
        for bad in ["", "zz:1", &txid, &format!("{txid}:x")] {
            assert!(parse_outpoint(bad).is_none(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let on = IdentityConfig {
            enabled: true,
            chronik_urls: vec![],
            burn: None,
            required: true,
        };
        assert!(gate(Some(&on), Some(dir.path())).is_err(), "no URL");
        let on = IdentityConfig {
            chronik_urls: vec!["http://127.0.0.1:1".into()],
            ..on
        };
        assert!(gate(Some(&on), None).is_err(), "no data_dir");
        let bad_burn = IdentityConfig {
            burn: Some("nope".into()),
            ..on.clone()
        };
        assert!(gate(Some(&bad_burn), Some(dir.path())).is_err());
        assert!(gate(Some(&on), Some(dir.path())).unwrap().is_some());
        let off = IdentityConfig {
            enabled: false,
            ..on
        };
        assert!(gate(Some(&off), Some(dir.path())).unwrap().is_none());
    }
}
