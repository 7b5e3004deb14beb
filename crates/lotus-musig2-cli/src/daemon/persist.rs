//! What the daemon keeps besides its session records, so that a crash or a
//! restart forgets nothing it must not: the data directory's lock (one
//! process per directory), the libp2p node key (a stable peer id, so
//! co-signers find the node again), the sessions it drew a nonce in (never a
//! nonce itself: only the id, so a restart never signs a second nonce for
//! one run), the peers it blacklisted (a banned attacker is not forgiven
//! by a restart) and the other peers' scores and graylistings.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::Path;

use rand::RngCore as _;
use redb::{ReadableDatabase as _, ReadableTable as _};
use zeroize::Zeroizing;

use lotus_musig2::security::SavedPeer;

use super::store::{BANS, META, REPUTATION, SIGNED, SessionStore, StoreError, db_err};
use super::{DaemonError, SessionId};

/// The lock file in the data directory.
pub const LOCK_FILE: &str = "LOCK";
/// The libp2p node key (32 bytes, hex; mode 0600).
pub const NODE_KEY_FILE: &str = "node.key";
const LAST_GOSSIPED: &str = "last_gossiped";

/// The data directory's lock, held until the process exits (the OS releases
/// it on `kill -9` too).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Takes `<dir>/LOCK`, or says which process holds it.
pub fn lock_data_dir(dir: &Path) -> Result<DirLock, DaemonError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(DaemonError::Config(format!(
                "data_dir {} is in use by another lotus-musig2 node (pid {})",
                dir.display(),
                holder.trim()
            )));
        }
        Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
    }
    file.set_len(0).map_err(io(&path))?;
    write!(file, "{}", std::process::id()).map_err(io(&path))?;
    Ok(DirLock { _file: file })
}

/// The node key in `<dir>/node.key`, made (randomly, mode 0600, synced) the
/// first time.
pub fn node_key(dir: &Path) -> Result<Zeroizing<[u8; 32]>, DaemonError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(NODE_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(text.trim(), key.as_mut_slice()).map_err(|_| {
                DaemonError::Config(format!("{}: not 32 bytes of hex", path.display()))
            })?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = Zeroizing::new([0u8; 32]);
            rand::rng().fill_bytes(key.as_mut_slice());
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(&path))?;
            file.write_all(Zeroizing::new(hex::encode(key.as_slice())).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io(&path))?;
            Ok(key)
        }
        Err(e) => Err(io(&path)(e)),
    }
}

impl SessionStore {
    /// Records, durably, that we drew a nonce in `id` (until `expires_at`).
    pub fn record_signed(&self, id: &SessionId, expires_at: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(SIGNED)
            .map_err(db_err)?
            .insert(id, expires_at)
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// The sessions we drew a nonce in that have not expired at `now`; the
    /// expired ones are deleted.
    pub fn signed_sessions(&self, now: u64) -> Result<Vec<(SessionId, u64)>, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let live = {
            let mut table = txn.open_table(SIGNED).map_err(db_err)?;
            table
                .retain(|_, expires_at| expires_at > now)
                .map_err(db_err)?;
            let mut live = Vec::new();
            for entry in table.iter().map_err(db_err)? {
                let (id, expires_at) = entry.map_err(db_err)?;
                live.push((*id.value(), expires_at.value()));
            }
            live
        };
        txn.commit().map_err(db_err)?;
        Ok(live)
    }

    /// Records a blacklisted peer and why.
    pub fn record_ban(&self, peer: &str, reason: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(BANS)
            .map_err(db_err)?
            .insert(peer, reason)
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Replaces the saved peer scores with `peers`, in one transaction.
    pub fn save_reputation(&self, peers: &[SavedPeer]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(REPUTATION).map_err(db_err)?;
            table.retain(|_, _| false).map_err(db_err)?;
            for p in peers {
                let json = serde_json::to_vec(p).map_err(|e| StoreError::Corrupt {
                    id: p.peer.to_string(),
                    reason: e.to_string(),
                })?;
                table
                    .insert(p.peer.as_str(), json.as_slice())
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// The saved peer scores (a record that does not decode is skipped
    /// with a warning: a score is advice, not a fact to fail on).
    pub fn reputation(&self) -> Result<Vec<SavedPeer>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(REPUTATION).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (peer, json) = entry.map_err(db_err)?;
            match serde_json::from_slice(json.value()) {
                Ok(saved) => out.push(saved),
                Err(e) => tracing::warn!(peer = peer.value(), error = %e, "saved score skipped"),
            }
        }
        Ok(out)
    }

    /// When our advertisement was last gossiped (ms since the epoch).
    pub fn last_gossiped(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(META).map_err(db_err)?;
        Ok(table.get(LAST_GOSSIPED).map_err(db_err)?.map(|v| v.value()))
    }

    /// Records when our advertisement was gossiped.
    pub fn set_last_gossiped(&self, at: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(META)
            .map_err(db_err)?
            .insert(LAST_GOSSIPED, at)
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Every blacklisted peer, with why.
    pub fn bans(&self) -> Result<Vec<(String, String)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(BANS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (peer, reason) = entry.map_err(db_err)?;
            out.push((peer.value().to_owned(), reason.value().to_owned()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_process_per_data_dir_and_a_stable_node_key() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_data_dir(dir.path()).unwrap();
        let second = lock_data_dir(dir.path()).unwrap_err().to_string();
        assert!(second.contains("in use by another"), "{second}");
        assert!(second.contains(&std::process::id().to_string()), "{second}");
        drop(lock);
        let _again = lock_data_dir(dir.path()).unwrap();

        let key = node_key(dir.path()).unwrap();
        assert_eq!(*node_key(dir.path()).unwrap(), *key);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(NODE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(NODE_KEY_FILE), "zz").unwrap();
        assert!(node_key(dir.path()).is_err());
    }

    #[test]
    fn signed_sessions_bans_and_scores_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        {
            let store = SessionStore::open(&path).unwrap();
            store.record_signed(&[1; 32], 100).unwrap();
            store.record_signed(&[2; 32], 300).unwrap();
            store
                .record_ban("12D3KooWBad", "invalid-signatures")
                .unwrap();
            assert_eq!(store.last_gossiped().unwrap(), None);
            store.set_last_gossiped(1234).unwrap();
        }
        let store = SessionStore::open(&path).unwrap();
        assert_eq!(store.reputation().unwrap(), vec![]);
        let saved = |peer: &str, score| SavedPeer {
            peer: lotus_musig2::security::PeerId::new(peer),
            score: lotus_musig2::security::PeerScore {
                score,
                ..Default::default()
            },
            graylisted_until: Some(9),
        };
        store
            .save_reputation(&[saved("a", 7), saved("b", 8)])
            .unwrap();
        store.save_reputation(&[saved("b", 9)]).unwrap();
        drop(store);
        let store = SessionStore::open(&path).unwrap();
        // The last save replaced the first.
        assert_eq!(store.reputation().unwrap(), vec![saved("b", 9)]);
        assert_eq!(store.signed_sessions(200).unwrap(), vec![([2; 32], 300)]);
        // The expired one is gone for good.
        assert_eq!(store.signed_sessions(0).unwrap(), vec![([2; 32], 300)]);
        assert_eq!(store.last_gossiped().unwrap(), Some(1234));
        assert_eq!(
            store.bans().unwrap(),
            vec![("12D3KooWBad".to_owned(), "invalid-signatures".to_owned())]
        );
    }
}
