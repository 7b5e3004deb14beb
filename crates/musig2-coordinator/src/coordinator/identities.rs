//! Burn identities on the live path: an advertisement's identity claim is
//! checked before its key enters the directory, and co-signers' identity
//! reputation follows what this node saw (+2 for a completed session, −5
//! for a fault proven by signed evidence; the manager bans at 0). A fault
//! nobody proved moves no identity's reputation.

use musig2_core::PublicKey;
use musig2_security::{Millis, SignerAdvertisement};
use tracing::{debug, warn};

use super::{Inner, lock};
use crate::events::CoordinatorEvent;
use crate::events::SessionId;

impl Inner {
    /// `Ok` if identities are off, or the advertisement's claim checks out
    /// (or it has none and identities are not required). A refusal is
    /// counted and reported as `IdentityRefused`; nobody is penalised
    /// (the indexer, not the peer, may be wrong).
    pub(super) async fn check_identity(
        &self,
        ad: &SignerAdvertisement,
        now: Millis,
    ) -> Result<(), ()> {
        let Some(gate) = &self.config.identity else {
            return Ok(());
        };
        let verdict = match &ad.identity {
            Some(claim) => gate.check(claim, now).await.map(|_| ()),
            None if gate.required() => Err("no burn identity".to_owned()),
            None => Ok(()),
        };
        let Err(reason) = verdict else {
            return Ok(());
        };
        debug!(key = %ad.pubkey, %reason, "signer advertisement: identity refused");
        lock(&self.state).counters.identities_refused += 1;
        self.emit(CoordinatorEvent::IdentityRefused {
            pubkey: ad.pubkey,
            peer_id: ad.peer_id.clone(),
            reason,
        });
        Err(())
    }

    /// +2 to the identity of every co-signer of a completed session.
    pub(super) fn identities_completed(&self, session_id: SessionId, now: Millis) {
        let Some(gate) = &self.config.identity else {
            return;
        };
        let (keys, started_at) = {
            let state = lock(&self.state);
            let Some(s) = state.sessions.get(&session_id) else {
                return;
            };
            let keys: Vec<PublicKey> = s
                .keys
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != s.me)
                .map(|(_, k)| *k)
                .collect();
            (keys, s.started_at)
        };
        for key in keys {
            let Some(id) = gate.manager().identity_by_key(&key) else {
                continue;
            };
            match gate
                .manager()
                .record_success(&id, now.saturating_sub(started_at))
            {
                Ok(r) => self.emit(CoordinatorEvent::IdentityReputation {
                    identity_id: id.to_bytes(),
                    pubkey: key,
                    score: r.score(),
                    banned: false,
                }),
                Err(e) => warn!(%id, error = %e, "identity reputation not recorded"),
            }
        }
    }

    /// −5 to the identity of a co-signer whose fault is proven.
    pub(super) fn identity_proven_fault(&self, key: PublicKey, reason: &str) {
        let Some(gate) = &self.config.identity else {
            return;
        };
        let Some(id) = gate.manager().identity_by_key(&key) else {
            return;
        };
        match gate.manager().record_failure(&id, reason) {
            Ok(r) => self.emit(CoordinatorEvent::IdentityReputation {
                identity_id: id.to_bytes(),
                pubkey: key,
                score: r.score(),
                banned: gate.manager().is_banned(&id),
            }),
            Err(e) => warn!(%id, error = %e, "identity reputation not recorded"),
        }
    }
}
