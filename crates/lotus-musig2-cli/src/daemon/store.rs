//! The daemon's session store: public facts of every session this node took
//! part in, in a [`redb`] database at `<data_dir>/sessions.redb`, so that a
//! completed session is still served with its signature after a crash.
//!
//! Only what co-signers and observers see anyway is stored: ids, keys, the
//! message, the phase, the final signature, the error. Never a secret key or
//! a secret nonce (after a restart a session is never resumed; it is marked
//! interrupted, as LND and LDK do). One write transaction per change; redb's
//! default durability makes a committed change survive `kill -9`.
//!
//! A second table keeps the consent policy's running total of the amounts
//! signed today, so a restart does not reset `max_amount_per_day`; two more
//! (read and written in `persist`) keep the sessions this node drew a nonce
//! in and the peers it blacklisted, and one the peers' scores and
//! graylistings.

use std::path::Path;

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

use super::SessionId;

/// redb's page cache for this database. Its default ceiling is 1 GiB, and
/// every page a write touches stays cached under it, so a node's resident
/// memory grew by about 3 KiB per session written (heaptrack); the working
/// set (recent records and the tree's inner pages) fits in far less.
const CACHE_BYTES: usize = 1024 * 1024;
/// Version byte in front of every record.
const RECORD_VERSION: u8 = 1;
const SESSIONS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("sessions");
/// `spent_today` → UTC day number (high 64 bits) and amount (low 64 bits).
const CONSENT: TableDefinition<'_, &str, u128> = TableDefinition::new("consent");
const SPENT_TODAY: &str = "spent_today";
/// Session id → expiry: the sessions this node drew a nonce in (`persist`).
pub(super) const SIGNED: TableDefinition<'_, &[u8; 32], u64> = TableDefinition::new("signed");
/// Peer id → why it was blacklisted (`persist`).
pub(super) const BANS: TableDefinition<'_, &str, &str> = TableDefinition::new("bans");
/// Peer id → its saved score and graylisting (JSON of `SavedPeer`; `persist`).
pub(super) const REPUTATION: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("reputation");
/// Small facts by name (`persist`): when our advertisement was last gossiped.
pub(super) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// What went wrong with a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionErrorInfo {
    /// A stable code (`SESSION_ABORTED`, `ROUND_TIMEOUT`, …).
    pub code: String,
    /// The sorted index of the signer at fault, if known.
    pub signer: Option<usize>,
    /// Every signer at fault.
    #[serde(default)]
    pub culprits: Vec<usize>,
    /// Details.
    pub message: String,
    /// On what grounds the signer is named: `proof` (with `evidence`),
    /// `observed` (seen by this node), `reported` (a co-signer's signed
    /// abort that this node's view agrees with) or `unproven` (nobody).
    #[serde(default)]
    pub grounds: String,
    /// The proof, when `grounds` is `proof` (JSON of the coordinator's
    /// `Evidence`: signed statements anyone can check).
    #[serde(default)]
    pub evidence: Option<serde_json::Value>,
}

/// One session as the API serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Hex of the 32-byte session id.
    pub session_id: String,
    /// Hex of the 32-byte request id.
    pub request_id: String,
    /// The phase (`SIGNING_REQUEST` … `COMPLETE`, `CLOSED`).
    pub phase: String,
    /// The sorted signer keys, hex.
    pub signers: Vec<String>,
    /// Our index among them.
    pub my_index: usize,
    /// The current coordinator's sorted index.
    pub coordinator_index: Option<usize>,
    /// The aggregate key, hex.
    pub aggregate_pubkey: String,
    /// The 32-byte message, hex.
    pub message: String,
    /// The 64-byte signature, hex, once complete.
    pub signature: Option<String>,
    /// The sighash byte the signature carries in a transaction.
    pub sighash_type: Option<u8>,
    /// The error, if the session failed or was closed.
    pub error: Option<SessionErrorInfo>,
    /// Each signer's public nonce (66 bytes, hex), once known: public, and
    /// what shows that no key ever sent one nonce twice.
    #[serde(default)]
    pub nonces: Vec<Option<String>>,
    /// The signed request as announced (creator, metadata, times; the JSON
    /// of `GET /v1/requests/pending`), when the node saw it.
    #[serde(default)]
    pub request: Option<serde_json::Value>,
    /// After completion: who is to broadcast, and whether it is confirmed.
    #[serde(default)]
    pub broadcast: Option<BroadcastState>,
    /// When this node first recorded the session (ms since the epoch).
    pub created_at: u64,
    /// When the record last changed.
    pub updated_at: u64,
}

/// The broadcast of a completed session, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastState {
    /// `waiting` (the current coordinator, the record's
    /// `coordinator_index`, is to broadcast), `ours` (this node is the
    /// current coordinator: broadcast, then `POST …/broadcast`),
    /// `confirmed`, `exhausted` (every coordinator timed out) or
    /// `interrupted` (the node restarted before a confirmation).
    pub state: String,
    /// The coordinator attempt (1 = the elected one, 2 = its first backup…).
    pub attempt: usize,
    /// The broadcast transaction's id (hex, display order), if known.
    pub txid: Option<String>,
    /// What the confirmation rests on: `local` (this node broadcast),
    /// `coordinator` (the coordinator's signed word) or `chronik` (the
    /// transaction was seen through this node's Chronik client).
    pub basis: Option<String>,
}

impl BroadcastState {
    /// A completed session's broadcast before anyone is told to do it.
    pub fn waiting() -> Self {
        Self {
            state: super::broadcasting::WAITING.into(),
            attempt: 1,
            txid: None,
            basis: None,
        }
    }
}

impl SessionRecord {
    /// Whether the session is over (signed, failed or closed).
    pub fn is_final(&self) -> bool {
        self.signature.is_some() || self.error.is_some()
    }
}

/// Errors of the session store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("session database: {0}")]
    Database(#[source] Box<redb::Error>),
    /// A record does not decode.
    #[error("session {id}: corrupt record: {reason}")]
    Corrupt {
        /// The session, hex.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

pub(super) fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Database(Box::new(e.into()))
}

/// The session database.
#[derive(Debug)]
pub struct SessionStore {
    pub(super) db: redb::Database,
}

impl SessionStore {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(SESSIONS).map_err(db_err)?;
        txn.open_table(CONSENT).map_err(db_err)?;
        txn.open_table(SIGNED).map_err(db_err)?;
        txn.open_table(BANS).map_err(db_err)?;
        txn.open_table(META).map_err(db_err)?;
        txn.open_table(REPUTATION).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// The consent policy's (UTC day, amount signed that day), if recorded.
    pub fn spent_today(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(CONSENT).map_err(db_err)?;
        Ok(table.get(SPENT_TODAY).map_err(db_err)?.map(|v| {
            let v = v.value();
            ((v >> 64) as u64, v as u64)
        }))
    }

    /// Records the consent policy's (UTC day, amount signed that day), durably.
    pub fn set_spent_today(&self, (day, amount): (u64, u64)) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(CONSENT).map_err(db_err)?;
            let v = (u128::from(day) << 64) | u128::from(amount);
            table.insert(SPENT_TODAY, v).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// One session.
    pub fn get(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SESSIONS).map_err(db_err)?;
        match table.get(id).map_err(db_err)? {
            Some(v) => decode(id, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Every session, newest first.
    pub fn list(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SESSIONS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            out.push(decode(key.value(), value.value())?);
        }
        out.sort_by(|a, b| (b.created_at, &b.session_id).cmp(&(a.created_at, &a.session_id)));
        Ok(out)
    }

    /// Changes one record in one write transaction: `f` gets the stored
    /// record (if any) and returns the one to store (`None`: no change).
    pub fn update(
        &self,
        id: &SessionId,
        f: impl FnOnce(Option<SessionRecord>) -> Option<SessionRecord>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let stored = {
            let mut table = txn.open_table(SESSIONS).map_err(db_err)?;
            let old = match table.get(id).map_err(db_err)? {
                Some(v) => Some(decode(id, v.value())?),
                None => None,
            };
            let Some(new) = f(old) else {
                return Ok(None);
            };
            let mut bytes = vec![RECORD_VERSION];
            serde_json::to_writer(&mut bytes, &new).map_err(|e| StoreError::Corrupt {
                id: hex::encode(id),
                reason: e.to_string(),
            })?;
            table.insert(id, bytes.as_slice()).map_err(db_err)?;
            new
        };
        txn.commit().map_err(db_err)?;
        Ok(Some(stored))
    }
}

fn decode(id: &SessionId, bytes: &[u8]) -> Result<SessionRecord, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        id: hex::encode(id),
        reason,
    };
    match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => {
            serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))
        }
        other => Err(corrupt(format!(
            "unsupported record version {:?}",
            other.map(|(v, _)| *v)
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn record(id: u8, created_at: u64) -> SessionRecord {
        SessionRecord {
            session_id: hex::encode([id; 32]),
            request_id: hex::encode([id; 32]),
            phase: "SIGNING_REQUEST".into(),
            signers: vec![],
            my_index: 0,
            coordinator_index: None,
            aggregate_pubkey: String::new(),
            message: hex::encode([0; 32]),
            signature: None,
            sighash_type: None,
            error: None,
            nonces: vec![],
            request: None,
            broadcast: None,
            created_at,
            updated_at: created_at,
        }
    }

    #[test]
    fn records_survive_reopening_and_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        {
            let store = SessionStore::open(&path).unwrap();
            store.update(&[1; 32], |_| Some(record(1, 10))).unwrap();
            store.update(&[2; 32], |_| Some(record(2, 20))).unwrap();
            store
                .update(&[1; 32], |old| {
                    let mut r = old.unwrap();
                    r.signature = Some("ab".repeat(64));
                    Some(r)
                })
                .unwrap();
            // `None`: nothing written.
            assert!(store.update(&[3; 32], |_| None).unwrap().is_none());
        }
        let store = SessionStore::open(&path).unwrap();
        assert_eq!(store.spent_today().unwrap(), None);
        store.set_spent_today((20_000, 1_500)).unwrap();
        let store = {
            drop(store);
            SessionStore::open(&path).unwrap()
        };
        assert_eq!(store.spent_today().unwrap(), Some((20_000, 1_500)));
        let all = store.list().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].session_id, hex::encode([2; 32]));
        let one = store.get(&[1; 32]).unwrap().unwrap();
        assert!(one.is_final());
        assert!(store.get(&[3; 32]).unwrap().is_none());
    }
}
