//! Persistence of identities in an embedded [`redb`] database.
//!
//! One table, `identities`, maps the 32-byte identity id to a record:
//! one version byte ([`RECORD_VERSION`]) followed by the `postcard` encoding of
//! [`Identity`]. A `meta` table holds the schema version. Every mutation of an
//! identity rewrites its whole record in one ACID write transaction (redb's
//! default durability: committed means fsynced), before the in-memory state
//! changes, so a crash or restart loses nothing that was acknowledged. Used
//! burns and the key index are rebuilt from the records when the store opens.

use std::path::Path;

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use crate::identity::{Identity, IdentityId};

/// Version byte in front of every record.
pub const RECORD_VERSION: u8 = 1;
/// Schema version in the `meta` table.
pub const SCHEMA_VERSION: u64 = 1;

const IDENTITIES: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("identities");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const SCHEMA_KEY: &str = "schema_version";

/// Errors of the identity store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("identity database: {0}")]
    Database(#[source] Box<redb::Error>),
    /// The database was written by an incompatible version.
    #[error("identity database has schema version {found}, this build reads {SCHEMA_VERSION}")]
    SchemaVersion {
        /// The version found.
        found: u64,
    },
    /// A record has an unknown version byte.
    #[error("identity {id}: unsupported record version {found:?}")]
    RecordVersion {
        /// The identity.
        id: IdentityId,
        /// The version byte (`None` for an empty record).
        found: Option<u8>,
    },
    /// A record does not decode or breaks an invariant.
    #[error("identity {id}: corrupt record: {reason}")]
    Corrupt {
        /// The identity.
        id: IdentityId,
        /// What is wrong.
        reason: String,
    },
    /// A record could not be encoded.
    #[error("identity {id}: cannot encode record: {source}")]
    Encode {
        /// The identity.
        id: IdentityId,
        /// The encoder's error.
        #[source]
        source: postcard::Error,
    },
}

fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Database(Box::new(e.into()))
}

/// The identity database.
#[derive(Debug)]
pub struct IdentityStore {
    db: redb::Database,
}

impl IdentityStore {
    /// Opens (or creates) the database file at `path`, checking its integrity.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = redb::Database::builder()
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(db_err)?;
        Self::init(db)
    }

    /// A database in memory (tests, simulations; lost on drop).
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(db_err)?;
        Self::init(db)
    }

    fn init(db: redb::Database) -> Result<Self, StoreError> {
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let found = meta.get(SCHEMA_KEY).map_err(db_err)?.map(|v| v.value());
            match found {
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(db_err)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(found) => return Err(StoreError::SchemaVersion { found }),
            }
            txn.open_table(IDENTITIES).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// Every stored identity, each checked.
    pub fn load_all(&self) -> Result<Vec<Identity>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(IDENTITIES).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            let id = IdentityId::from_bytes(*key.value());
            out.push(decode(id, value.value())?);
        }
        Ok(out)
    }

    /// Writes (inserts or replaces) one identity, durably.
    pub fn put(&self, identity: &Identity) -> Result<(), StoreError> {
        let id = identity.id();
        let record = encode(identity)?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(IDENTITIES).map_err(db_err)?;
            table
                .insert(&id.to_bytes(), record.as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Writes raw record bytes (for tests of corruption handling).
    #[cfg(test)]
    pub(crate) fn put_raw(&self, id: &IdentityId, record: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(IDENTITIES).map_err(db_err)?;
            table.insert(&id.to_bytes(), record).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }
}

fn encode(identity: &Identity) -> Result<Vec<u8>, StoreError> {
    let mut record = vec![RECORD_VERSION];
    let body = postcard::to_allocvec(identity).map_err(|source| StoreError::Encode {
        id: identity.id(),
        source,
    })?;
    record.extend_from_slice(&body);
    Ok(record)
}

fn decode(id: IdentityId, record: &[u8]) -> Result<Identity, StoreError> {
    let body = match record.split_first() {
        Some((&RECORD_VERSION, body)) => body,
        other => {
            return Err(StoreError::RecordVersion {
                id,
                found: other.map(|(v, _)| *v),
            });
        }
    };
    let (identity, rest): (Identity, _) =
        postcard::take_from_bytes(body).map_err(|e| StoreError::Corrupt {
            id,
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(StoreError::Corrupt {
            id,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    if identity.id() != id {
        return Err(StoreError::Corrupt {
            id,
            reason: format!("record is for identity {}", identity.id()),
        });
    }
    identity.check().map_err(|reason| StoreError::Corrupt {
        id,
        reason: reason.to_owned(),
    })?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Ban, BanReason};

    fn identity(seed: u8) -> Identity {
        crate::identity::test_identity(seed, seed)
    }

    #[test]
    fn records_round_trip() {
        let store = IdentityStore::in_memory().unwrap();
        let mut a = identity(1);
        let mut b = identity(2);
        b.ban = Some(Ban {
            at_ms: 9,
            reason: BanReason::Manual("x".into()),
        });
        store.put(&a).unwrap();
        store.put(&b).unwrap();
        a.reputation.record_success(3, 6);
        store.put(&a).unwrap();
        let mut loaded = store.load_all().unwrap();
        loaded.sort_by_key(Identity::id);
        let mut want = vec![a, b];
        want.sort_by_key(Identity::id);
        assert_eq!(loaded, want);
    }

    #[test]
    fn bad_records_are_typed_errors() {
        let good = identity(1);
        let id = good.id();
        let encoded = encode(&good).unwrap();
        let mut wrong_version = encoded.clone();
        wrong_version[0] = 2;
        let mut trailing = encoded.clone();
        trailing.push(0);
        let mut exhausted = identity(1);
        for _ in 0..10 {
            exhausted.reputation.record_failure(6);
        }
        type Check = fn(&StoreError) -> bool;
        let cases: Vec<(Vec<u8>, Check)> = vec![
            (vec![], |e| {
                matches!(e, StoreError::RecordVersion { found: None, .. })
            }),
            (wrong_version, |e| {
                matches!(e, StoreError::RecordVersion { found: Some(2), .. })
            }),
            (vec![RECORD_VERSION, 0xff, 0xff], |e| {
                matches!(e, StoreError::Corrupt { .. })
            }),
            (trailing, |e| matches!(e, StoreError::Corrupt { .. })),
            (encode(&identity(3)).unwrap(), |e| {
                matches!(e, StoreError::Corrupt { .. })
            }),
            (
                encode(&exhausted).unwrap(),
                |e| matches!(e, StoreError::Corrupt { reason, .. } if reason.contains("without a ban")),
            ),
        ];
        for (record, check) in cases {
            let store = IdentityStore::in_memory().unwrap();
            store.put_raw(&id, &record).unwrap();
            let err = store.load_all().unwrap_err();
            assert!(check(&err), "{record:02x?}: {err}");
        }
    }

    #[test]
    fn schema_version_is_checked_and_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.redb");
        {
            let store = IdentityStore::open(&path).unwrap();
            store.put(&identity(1)).unwrap();
        }
        {
            let store = IdentityStore::open(&path).unwrap();
            assert_eq!(store.load_all().unwrap(), vec![identity(1)]);
            let txn = store.db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(SCHEMA_KEY, SCHEMA_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        assert!(matches!(
            IdentityStore::open(&path),
            Err(StoreError::SchemaVersion { found: 2 })
        ));
    }
}
