//! The broadcast of a completed session: who is to broadcast it (the
//! elected coordinator, then each backup in turn as the failover clock
//! runs), the application's word that it did
//! (`POST /v1/sessions/{id}/broadcast`), and the confirmation, all kept in
//! the session's record so that a restart still serves them.

use lotus_musig2::coordinator::{ConfirmationBasis, CoordinatorError};
use lotus_musig2::tx::TxId;
use serde_json::Value;

use super::store::{BroadcastState, StoreError};
use super::{ApiError, Daemon, SessionId, parse_id};

/// `waiting`: the current coordinator is to broadcast.
pub(super) const WAITING: &str = "waiting";
/// `ours`: this node is the current coordinator.
pub(super) const OURS: &str = "ours";
const CONFIRMED: &str = "confirmed";
const EXHAUSTED: &str = "exhausted";
/// The node restarted before any confirmation: its failover clock is gone
/// (co-signers still up carry on).
pub(super) const INTERRUPTED: &str = "interrupted";

fn display_txid(internal: [u8; 32]) -> String {
    TxId::from_internal_bytes(internal).to_string()
}

/// `(txid, basis)` of a confirmation.
fn basis_fields(basis: &ConfirmationBasis) -> (Option<String>, &'static str) {
    match basis {
        ConfirmationBasis::Local { txid } => (txid.map(display_txid), "local"),
        ConfirmationBasis::CoordinatorWord { txid, .. } => (txid.map(display_txid), "coordinator"),
        ConfirmationBasis::ChronikSeen { txid, .. } => (Some(display_txid(*txid)), "chronik"),
        _ => (None, "unknown"),
    }
}

impl Daemon {
    /// `POST /v1/sessions/{id}/broadcast` (`{"txid": …}` optional, display
    /// hex): this node broadcast the signed transaction; its co-signers are
    /// told (signed) and stop their failover clocks.
    pub fn broadcast(&self, session_id: &str, body: &[u8]) -> Result<Value, ApiError> {
        #[derive(serde::Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Body {
            txid: Option<String>,
        }
        let id = parse_id("session_id", session_id)?;
        let body: Body = if body.iter().all(u8::is_ascii_whitespace) {
            Body::default()
        } else {
            serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
        };
        if let Some(b) = self.inner.store.get(&id)?.and_then(|r| r.broadcast)
            && b.state != WAITING
            && b.state != OURS
        {
            return Err(ApiError::Conflict(format!(
                "the broadcast is already {}",
                b.state
            )));
        }
        let txid = body
            .txid
            .map(|t| {
                t.parse::<TxId>()
                    .map_err(|e| ApiError::BadRequest(format!("txid: {e}")))
            })
            .transpose()?;
        match self
            .inner
            .coordinator
            .notify_broadcast(id, txid.map(|t| t.internal_bytes()))
        {
            Ok(()) => {}
            Err(CoordinatorError::UnknownSession) => {
                return Err(match self.inner.store.get(&id)? {
                    Some(r) if r.signature.is_some() => ApiError::Conflict(
                        "the session is no longer live on this node (it restarted or released it); nothing to tell co-signers".into(),
                    ),
                    Some(_) => ApiError::Conflict("the session has no signature".into()),
                    None => ApiError::NotFound("no session with that id".into()),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let basis = ConfirmationBasis::Local {
            txid: txid.map(|t| t.internal_bytes()),
        };
        self.broadcast_confirmed(id, &basis)?;
        Ok(serde_json::to_value(self.inner.store.get(&id)?).unwrap_or(Value::Null))
    }

    fn set_broadcast(
        &self,
        id: SessionId,
        f: impl FnOnce(&mut BroadcastState),
    ) -> Result<(), StoreError> {
        let coordinator_index = self
            .inner
            .coordinator
            .get_session(id)
            .and_then(|s| s.coordinator_index);
        let now = self.now();
        self.inner.store.update(&id, |old| {
            let mut r = old?;
            let mut b = r.broadcast.clone().unwrap_or_else(BroadcastState::waiting);
            // A confirmation is final.
            if b.state == CONFIRMED {
                return None;
            }
            if coordinator_index.is_some() {
                r.coordinator_index = coordinator_index;
            }
            f(&mut b);
            r.broadcast = Some(b);
            r.updated_at = now;
            Some(r)
        })?;
        Ok(())
    }

    /// `should-broadcast`: we are the current coordinator.
    pub(super) fn should_broadcast(&self, id: SessionId) -> Result<(), StoreError> {
        self.set_broadcast(id, |b| b.state = OURS.into())
    }

    /// `coordinator-failed`: failover moved on to attempt `attempt`.
    pub(super) fn coordinator_failed(
        &self,
        id: SessionId,
        attempt: usize,
    ) -> Result<(), StoreError> {
        self.set_broadcast(id, |b| {
            b.state = WAITING.into();
            b.attempt = attempt;
        })
    }

    /// `failover-exhausted`: no coordinator confirmed in time.
    pub(super) fn failover_exhausted(&self, id: SessionId) -> Result<(), StoreError> {
        self.set_broadcast(id, |b| b.state = EXHAUSTED.into())
    }

    /// `broadcast-confirmed`.
    pub(super) fn broadcast_confirmed(
        &self,
        id: SessionId,
        basis: &ConfirmationBasis,
    ) -> Result<(), StoreError> {
        let (txid, basis) = basis_fields(basis);
        self.set_broadcast(id, |b| {
            b.state = CONFIRMED.into();
            b.txid = txid;
            b.basis = Some(basis.into());
        })
    }
}
