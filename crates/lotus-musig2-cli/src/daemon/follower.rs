//! The coordinator-event follower: records every coordinator event in the
//! session store and publishes it to the API's subscribers (SSE); drops
//! unanswered requests at their expiry.

use std::time::Duration;

use lotus_musig2::coordinator::CoordinatorEvent;
use lotus_musig2::net::PeerEvent;
use serde_json::json;
use tokio::sync::broadcast;

use super::consent::{Rule, Verdict};
use super::metrics::{Outcome, Phase};
use super::records::{error_info, error_info_with_blame};
use super::store::StoreError;
use super::views::request_json;
use super::{Daemon, lock};

/// How often unanswered requests are checked for expiry.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl Daemon {
    /// Records every coordinator event and forwards it to the API's
    /// subscribers; drops unanswered requests at their expiry.
    pub(super) async fn pump(self) {
        let mut events = self.inner.coordinator.subscribe();
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        let mut save = tokio::time::interval(super::reputation::SAVE_INTERVAL);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        if let Err(e) = self.on_event(&event) {
                            tracing::warn!(error = %e, "session store");
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "the daemon missed coordinator events");
                        self.publish("lagged", json!({"missed": n}));
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = save.tick() => self.save_reputation(),
                _ = sweep.tick() => {
                    let expired = lock(&self.inner.consent).sweep(self.now());
                    for id in expired {
                        self.inner.metrics.consent_rejection(Rule::Expired);
                        self.publish("request-expired", json!({"request_id": hex::encode(id)}));
                    }
                }
            }
        }
    }

    fn on_event(&self, event: &CoordinatorEvent) -> Result<(), StoreError> {
        let hexid = |id: &[u8; 32]| hex::encode(id);
        match event {
            CoordinatorEvent::SigningRequestCreated {
                request_id,
                session_id,
            } => {
                self.inner.metrics.request("created");
                self.track(*session_id)?;
                self.publish(
                    "request-created",
                    json!({"request_id": hexid(request_id), "session_id": hexid(session_id)}),
                );
            }
            CoordinatorEvent::SigningRequestReceived { announcement } => {
                self.inner.metrics.request("received");
                let mut v = request_json(announcement);
                let joined = self
                    .inner
                    .coordinator
                    .get_session_by_request(announcement.request_id);
                let deferred = self
                    .inner
                    .coordinator
                    .is_join_deferred(announcement.request_id);
                let consent = match joined {
                    Some(session_id) => {
                        self.track(session_id)?;
                        json!("approved")
                    }
                    // The consent policy decides when the coordinator
                    // offers it (its creator's turn).
                    None if deferred => json!("deferred"),
                    None => {
                        let verdict = {
                            let mut c = lock(&self.inner.consent);
                            match c.verdict(&announcement.request_id) {
                                Some(v) => v,
                                None => c.observe(announcement, self.now()),
                            }
                        };
                        match verdict {
                            Verdict::Hold => json!("pending"),
                            Verdict::Join => json!("approved"),
                            Verdict::Refuse(rule) => {
                                self.inner.metrics.consent_rejection(rule);
                                json!({"refused": rule.as_str()})
                            }
                        }
                    }
                };
                if let Some(map) = v.as_object_mut() {
                    map.insert("consent".into(), consent);
                }
                self.publish("request-received", v);
            }
            CoordinatorEvent::SessionCreated(id) => {
                self.track(*id)?;
                self.publish("session-created", json!({"session_id": hexid(id)}));
            }
            CoordinatorEvent::SessionReady {
                request_id,
                session_id,
            } => {
                self.track(*session_id)?;
                self.phase_done(*session_id, Phase::Join);
                self.set_phase(*session_id)?;
                self.publish(
                    "session-ready",
                    json!({"request_id": hexid(request_id), "session_id": hexid(session_id)}),
                );
            }
            CoordinatorEvent::NonceCommitmentsComplete(id) => {
                self.phase_done(*id, Phase::NonceCommitments);
                self.set_phase(*id)?;
                self.publish(
                    "nonce-commitments-complete",
                    json!({"session_id": hexid(id)}),
                );
            }
            CoordinatorEvent::Round1Complete(id) => {
                self.phase_done(*id, Phase::Round1);
                self.set_phase(*id)?;
                self.publish("round1-complete", json!({"session_id": hexid(id)}));
            }
            CoordinatorEvent::SessionComplete {
                session_id,
                signature,
            } => {
                self.complete(*session_id)?;
                self.save_reputation();
                self.publish(
                    "session-complete",
                    json!({"session_id": hexid(session_id), "signature": signature.to_string()}),
                );
            }
            CoordinatorEvent::SessionClosed(id) => {
                self.end(
                    *id,
                    Outcome::Closed,
                    "SESSION_CLOSED",
                    error_info("SESSION_CLOSED", None, vec![], "the session was closed"),
                )?;
                self.publish("session-closed", json!({"session_id": hexid(id)}));
            }
            CoordinatorEvent::SessionError {
                session_id,
                code,
                signer,
                culprits,
                message,
                blame,
                ..
            } => {
                self.end(
                    *session_id,
                    Outcome::Failed,
                    code.as_str(),
                    error_info_with_blame(code.as_str(), *signer, culprits.clone(), message, blame),
                )?;
                // A proven fault moved a score.
                self.save_reputation();
                self.publish(
                    "session-error",
                    json!({
                        "session_id": hexid(session_id),
                        "code": code.as_str(),
                        "signer": signer,
                        "culprits": culprits,
                        "message": message,
                    }),
                );
            }
            CoordinatorEvent::ShouldBroadcast {
                session_id,
                coordinator_index,
            } => {
                self.should_broadcast(*session_id)?;
                self.publish(
                    "should-broadcast",
                    json!({"session_id": hexid(session_id), "coordinator_index": coordinator_index}),
                );
            }
            CoordinatorEvent::CoordinatorFailed {
                session_id,
                attempt,
            } => {
                self.set_phase(*session_id)?;
                self.coordinator_failed(*session_id, *attempt)?;
                self.publish(
                    "coordinator-failed",
                    json!({"session_id": hexid(session_id), "attempt": attempt}),
                );
            }
            CoordinatorEvent::FailoverExhausted {
                session_id,
                attempts,
            } => {
                self.failover_exhausted(*session_id)?;
                self.publish(
                    "failover-exhausted",
                    json!({"session_id": hexid(session_id), "attempts": attempts}),
                );
            }
            CoordinatorEvent::SignerDiscovered(ad) => {
                self.publish(
                    "signer-discovered",
                    json!({"pubkey": ad.pubkey.to_string(), "peer_id": ad.peer_id}),
                );
            }
            CoordinatorEvent::Peer(p) => {
                let (name, peer) = match p {
                    PeerEvent::Discovered { peer, .. } => ("peer-discovered", peer),
                    PeerEvent::Connected(peer) => ("peer-connected", peer),
                    PeerEvent::Disconnected(peer) => ("peer-disconnected", peer),
                    PeerEvent::Updated { peer, .. } => ("peer-updated", peer),
                    PeerEvent::RelayAddressesAvailable { relay } => {
                        ("relay-addresses-available", relay)
                    }
                    _ => return Ok(()),
                };
                self.publish(name, json!({"peer_id": peer.to_string()}));
            }
            CoordinatorEvent::IdentityRefused {
                pubkey,
                peer_id,
                reason,
            } => {
                self.publish(
                    "identity-refused",
                    json!({"pubkey": pubkey.to_string(), "peer_id": peer_id, "reason": reason}),
                );
            }
            CoordinatorEvent::IdentityReputation {
                identity_id,
                pubkey,
                score,
                banned,
            } => {
                self.publish(
                    "identity-reputation",
                    json!({"identity_id": hex::encode(identity_id), "pubkey": pubkey.to_string(), "score": score, "banned": banned}),
                );
            }
            CoordinatorEvent::Security(s) => {
                if let lotus_musig2::security::SecurityEvent::PeerBlacklisted { peer, reason } = s {
                    self.inner
                        .store
                        .record_ban(peer.as_str(), &reason.to_string())?;
                }
                self.publish(
                    "security",
                    json!({"kind": s.name(), "peer_id": s.peer().to_string()}),
                );
            }
            CoordinatorEvent::BroadcastConfirmed { session_id, basis } => {
                self.broadcast_confirmed(*session_id, basis)?;
                let record = self.inner.store.get(session_id)?;
                let b = record.and_then(|r| r.broadcast);
                self.publish(
                    "broadcast-confirmed",
                    json!({
                        "session_id": hexid(session_id),
                        "txid": b.as_ref().and_then(|b| b.txid.clone()),
                        "basis": b.as_ref().and_then(|b| b.basis.clone()),
                    }),
                );
            }
            other => {
                // Events this daemon does not interpret are still
                // forwarded, by name.
                let debug = format!("{other:?}");
                let name: String = debug
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                self.publish(&kebab(&name), json!({}));
            }
        }
        Ok(())
    }
}

/// `BroadcastConfirmed` → `broadcast-confirmed`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn event_names_are_kebab_case() {
        assert_eq!(kebab("BroadcastConfirmed"), "broadcast-confirmed");
        assert_eq!(kebab("Round1Complete"), "round1-complete");
    }
}
