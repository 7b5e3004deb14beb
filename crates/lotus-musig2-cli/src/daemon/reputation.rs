//! What the node remembers about other peers across restarts: the peers it
//! blacklisted (saved as each ban happens) and every other score and
//! graylisting (saved when a session ends, every [`SAVE_INTERVAL`] when
//! they changed, and at a clean shutdown). A crash loses at most the last
//! interval's penalties for traffic outside sessions, never a ban.

use std::time::Duration;

use lotus_musig2::security::PeerId;

use super::store::StoreError;
use super::{Daemon, lock};

/// How often changed scores are saved.
pub(super) const SAVE_INTERVAL: Duration = Duration::from_secs(10);

impl Daemon {
    /// At start: blacklists again every peer blacklisted before (a restart
    /// forgives nobody; the coordinator cuts them off at its next sweep)
    /// and restores the other peers' scores and running graylistings.
    pub(super) fn restore_reputation(&self) -> Result<(), StoreError> {
        let now = self.now();
        let bans = self.inner.store.bans()?;
        let saved = self.inner.store.reputation()?;
        self.inner.coordinator.with_security(|s| {
            for p in &saved {
                s.reputation_mut().restore(p, now);
            }
            for (peer, reason) in &bans {
                s.blacklist_peer(&PeerId::new(peer.as_str()), reason.as_str(), now);
            }
        });
        tracing::info!(
            bans = bans.len(),
            scores = saved.len(),
            "peer reputation restored"
        );
        *lock(&self.inner.saved_reputation) = saved;
        Ok(())
    }

    /// Saves the peers' scores if they changed since the last save.
    pub(super) fn save_reputation(&self) {
        let now = self.now();
        let snapshot = self
            .inner
            .coordinator
            .with_security(|s| s.reputation().snapshot(now));
        let mut last = lock(&self.inner.saved_reputation);
        if *last == snapshot {
            return;
        }
        match self.inner.store.save_reputation(&snapshot) {
            Ok(()) => *last = snapshot,
            Err(e) => tracing::warn!(error = %e, "peer scores not saved"),
        }
    }
}
