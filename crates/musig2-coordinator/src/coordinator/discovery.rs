//! Discovery: finding a co-signer's peer (directory, then DHT), verifying
//! signer advertisements and announcements, and handling a verified request
//! that names one of our keys.
//!
//! A DHT record is not its author speaking: anyone can store any value under
//! any key. Records are therefore verified without blaming anyone
//! (`verify_dht_*`), while gossip is judged against its authenticated author.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use musig2_core::{Keypair, PublicKey};
use musig2_net::{Multiaddr, PeerId, Verdict};
use musig2_security::{Delivery, Millis, SessionAnnouncement, SignerAdvertisement};
use tracing::{debug, info, warn};

use super::inbound::refusal_verdict;
use super::{Coordinator, Inner, SIGNER_KEY_PREFIX, decode_exact, lock, sec_peer};
use crate::CoordinatorError;
use crate::config::{JoinDecision, JoinRequest};
use crate::events::CoordinatorEvent;
use crate::txrequest::RequestRefusal;

/// Auto-connect dials at most this many advertised addresses a minute, so
/// a flood of advertisements cannot turn the node into a dialling reflector.
const AUTO_DIALS_PER_MINUTE: u32 = 10;
/// Sessions still waiting for joins that one creator key may hold here
/// through automatic joins, at least: a creator that names signers who never
/// join can tie up at most this many of our session slots until the join
/// timeout. A node allowed more concurrent sessions gives a creator a
/// quarter of them ([`Inner::auto_joining_per_creator`]): a limit below a
/// creator's honest burst makes co-signers that joined different sessions
/// of it wait for each other until the join timeout.
const AUTO_JOINING_PER_CREATOR: usize = 2;
/// Requests deferred at most (their announcements stay in the bounded
/// pending set; beyond this a request is not joined automatically).
const MAX_DEFERRED_JOINS: usize = 1024;

impl Inner {
    /// Finds the peer of a signer key: the directory, else the DHT.
    pub(super) async fn resolve(
        self: &Arc<Self>,
        key: PublicKey,
    ) -> Result<PeerId, CoordinatorError> {
        let deadline = tokio::time::Instant::now() + self.config.discovery_timeout;
        let record = format!("{SIGNER_KEY_PREFIX}{key}").into_bytes();
        let mut wait = Duration::from_millis(25);
        loop {
            if let Some(peer) = lock(&self.state).directory.get(&key) {
                return Ok(*peer);
            }
            if let Ok(value) = self.net.get_record(record.clone()).await
                && let Ok(peer) = self.accept_advertisement(&value, None).await
                && lock(&self.state).directory.get(&key) == Some(&peer)
            {
                return Ok(peer);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CoordinatorError::SignerNotFound(key.to_string()));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
    }

    /// Verifies a signer advertisement and records where its key lives.
    /// `author` is the authenticated gossip author; `None` means the DHT,
    /// where a bad record is counted and blamed on nobody. Returns the
    /// advertised peer, or the verdict a gossiped copy deserves.
    pub(super) async fn accept_advertisement(
        self: &Arc<Self>,
        bytes: &[u8],
        author: Option<PeerId>,
    ) -> Result<PeerId, Verdict> {
        let ad: SignerAdvertisement = decode_exact(bytes).ok_or(Verdict::Reject)?;
        let peer = PeerId::from_str(&ad.peer_id).map_err(|_| Verdict::Reject)?;
        let now = self.clock.now_ms();
        let verdict = {
            let mut security = lock(&self.security);
            match author {
                Some(a) => security
                    .check_signer_advertisement(
                        &sec_peer(&a),
                        Delivery::Gossip,
                        bytes.len(),
                        &ad,
                        now,
                    )
                    .map_err(|r| (r.to_string(), refusal_verdict(r.rule))),
                None => security
                    .verify_dht_advertisement(bytes.len(), &ad, now)
                    .map_err(|v| (v.to_string(), Verdict::Ignore)),
            }
        };
        if let Err((rejection, verdict)) = verdict {
            debug!(%rejection, "signer advertisement rejected");
            return Err(verdict);
        }
        // A refused identity is the indexer's word, not proof against the
        // peer: the copy is ignored, nobody is penalised.
        self.check_identity(&ad, now)
            .await
            .map_err(|()| Verdict::Ignore)?;
        let addrs: Vec<Multiaddr> = ad
            .multiaddrs
            .iter()
            .filter_map(|a| Multiaddr::from_str(a).ok())
            .collect();
        let new = {
            let mut state = lock(&self.state);
            state.remember_addrs(peer, addrs.clone());
            state.directory.insert(ad.pubkey, peer) != Some(peer)
        };
        for addr in addrs.iter().take(super::state::ADDRESSES_PER_PEER) {
            let _ = self.net.add_address(peer, addr.clone()).await;
        }
        if new {
            if peer != self.net.local_peer_id()
                && let Some(addr) = addrs.first()
                && self.may_auto_dial(&peer, now)
            {
                let _ = self.net.dial(addr.clone()).await;
            }
            self.emit(CoordinatorEvent::SignerDiscovered(Box::new(ad)));
        }
        Ok(peer)
    }

    /// Auto-connect: enabled, the peer reputable enough, and within the
    /// dial budget.
    fn may_auto_dial(&self, peer: &PeerId, now: Millis) -> bool {
        if !self.config.enable_auto_connect {
            return false;
        }
        let reputable = lock(&self.security).is_reputable(
            &sec_peer(peer),
            self.config.min_reputation_auto_connect,
            now,
        );
        if !reputable {
            return false;
        }
        let mut state = lock(&self.state);
        let (window, count) = &mut state.auto_dials;
        if now.saturating_sub(*window) >= 60_000 {
            *window = now;
            *count = 0;
        }
        if *count >= AUTO_DIALS_PER_MINUTE {
            state.counters.auto_dials_over_budget += 1;
            return false;
        }
        *count += 1;
        state.counters.auto_dials += 1;
        true
    }

    /// An announcement from the DHT: verified, never blamed on anyone.
    pub(super) async fn fetch_announcement(
        self: &Arc<Self>,
        key: String,
    ) -> Result<SessionAnnouncement, CoordinatorError> {
        let value = self
            .net
            .get_record(key.into_bytes())
            .await
            .map_err(|_| CoordinatorError::UnknownRequest)?;
        let now = self.clock.now_ms();
        let a: SessionAnnouncement =
            decode_exact(&value).ok_or(CoordinatorError::UnknownRequest)?;
        lock(&self.security)
            .verify_dht_announcement(value.len(), &a, now)
            .map_err(|v| CoordinatorError::InvalidRequest(v.to_string()))?;
        Ok(a)
    }

    /// How many sessions of one creator may wait for joins here.
    fn auto_joining_per_creator(&self) -> usize {
        AUTO_JOINING_PER_CREATOR.max(self.config.security.max_concurrent_sessions / 4)
    }

    /// Sessions of `creator` here that still wait for joins.
    fn joining_from(&self, creator: &PublicKey) -> usize {
        lock(&self.state)
            .sessions
            .values()
            .filter(|s| {
                s.phase == musig2_security::SessionPhase::SigningRequest
                    && s.announcement.creator_pubkey == *creator
            })
            .count()
    }

    /// Joins a screened request if the join policy agrees. A creator that
    /// already has [`Self::auto_joining_per_creator`] sessions waiting for
    /// joins here waits its turn: the request is deferred (it stays pending) and
    /// joined by [`Self::resume_deferred_joins`] once one of them moves on.
    fn auto_join(
        self: &Arc<Self>,
        announcement: &SessionAnnouncement,
        keypair: &Keypair,
        view: Option<&crate::txrequest::TransactionView>,
    ) {
        let request_id = announcement.request_id;
        let joining = self.joining_from(&announcement.creator_pubkey);
        if joining >= self.auto_joining_per_creator() {
            let mut state = lock(&self.state);
            if state.deferred_joins.len() >= MAX_DEFERRED_JOINS {
                state.counters.deferred_joins_dropped += 1;
                drop(state);
                info!(request = %hex::encode(request_id), "not joined automatically: too many requests already wait their turn");
            } else if !state.deferred_joins.contains(&request_id) {
                state.deferred_joins.push_back(request_id);
                drop(state);
                debug!(request = %hex::encode(request_id), "automatic join deferred: the creator already has {joining} sessions waiting for joins here");
            }
            return;
        }
        let request = JoinRequest {
            announcement,
            transaction: view,
        };
        match (self.config.join_policy)(&request) {
            JoinDecision::Join => {
                let coordinator = Coordinator {
                    inner: Arc::clone(self),
                };
                if let Err(e) = coordinator.join_screened(announcement.clone(), keypair) {
                    warn!(error = %e, "automatic join failed");
                }
            }
            JoinDecision::Refuse(reason) => {
                info!(request = %hex::encode(request_id), %reason, "join refused by policy");
                self.refuse(announcement, RequestRefusal::Policy(reason));
            }
        }
    }

    /// Joins the deferred requests whose creators' turn has come (oldest
    /// first) while the node has room for another session; forgets those
    /// no longer pending (joined by hand, expired) and those older than the
    /// join timeout (their creator has given up on them). Runs once at a
    /// time: a join it makes can make a session ready, which calls it again.
    pub(super) fn resume_deferred_joins(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        // Called on every session that becomes ready: nothing to do, cheaply.
        if !self.config.auto_join || lock(&self.state).deferred_joins.is_empty() {
            return;
        }
        if self.resuming.swap(true, Ordering::AcqRel) {
            return;
        }
        let now = self.clock.now_ms();
        let limit = self.auto_joining_per_creator();
        let join_timeout = self.config.join_timeout.as_millis() as Millis;
        let max_sessions = self.config.security.max_concurrent_sessions;
        loop {
            if lock(&self.security).sessions().len() >= max_sessions {
                break;
            }
            let next = {
                let mut state = lock(&self.state);
                let mut joining: std::collections::HashMap<PublicKey, usize> =
                    std::collections::HashMap::new();
                for s in state.sessions.values() {
                    if s.phase == musig2_security::SessionPhase::SigningRequest {
                        *joining.entry(s.announcement.creator_pubkey).or_default() += 1;
                    }
                }
                let mut found = None;
                let mut i = 0;
                while i < state.deferred_joins.len() {
                    let id = state.deferred_joins[i];
                    let fresh = state.pending.get(&id).filter(|a| {
                        a.expires_at > now && a.created_at.saturating_add(join_timeout) > now
                    });
                    match fresh {
                        Some(a) if joining.get(&a.creator_pubkey).copied().unwrap_or(0) < limit => {
                            let a = a.clone();
                            state.deferred_joins.remove(i);
                            let key = state
                                .keys
                                .iter()
                                .find(|k| a.required_pubkeys.contains(&k.public_key()))
                                .cloned();
                            found = Some((a, key));
                            break;
                        }
                        Some(_) => i += 1,
                        None => {
                            state.deferred_joins.remove(i);
                        }
                    }
                }
                found
            };
            let Some((announcement, key)) = next else {
                break;
            };
            let Some(keypair) = key else { continue };
            // Screened when it arrived; its view again for the policy.
            let view = crate::txrequest::check(&announcement, self.config.allow_blind_signing)
                .ok()
                .flatten();
            self.auto_join(&announcement, &keypair, view.as_ref());
        }
        self.resuming.store(false, Ordering::Release);
    }

    /// A verified announcement that names one of our keys: remember it,
    /// tell the application, and join if the policy says so.
    pub(super) fn on_announcement(self: &Arc<Self>, announcement: SessionAnnouncement) {
        let request_id = announcement.request_id;
        let ours = {
            let mut state = lock(&self.state);
            // Known, or a session that ended here recently: a late copy
            // (gossip, the DHT) must not open a second run of it.
            if state.requests.contains_key(&request_id)
                || state.pending.contains_key(&request_id)
                || state
                    .ended
                    .contains_key(&announcement.session_id().to_bytes())
            {
                return;
            }
            let ours = state
                .keys
                .iter()
                .find(|k| announcement.required_pubkeys.contains(&k.public_key()))
                .cloned();
            if ours.is_some() {
                if let Ok(peer) = PeerId::from_str(&announcement.creator_peer_id) {
                    state.directory.insert(announcement.creator_pubkey, peer);
                    let addrs = announcement
                        .creator_addrs
                        .iter()
                        .filter_map(|a| Multiaddr::from_str(a).ok())
                        .collect();
                    // The outbound queue registers these before its first send.
                    state.remember_addrs(peer, addrs);
                }
                state.pending.insert(request_id, announcement.clone());
            }
            ours
        };
        let Some(keypair) = ours else { return };
        // Recompute the sighash of a transaction request (refuse a blind one
        // if so configured) before the policy or a join sees it.
        let view = match self.screen_request(&announcement) {
            Ok(view) => view,
            Err(_) => return,
        };
        // Join first (if the policy agrees), then tell the application: the
        // event then means "received, and joined if the policy said so".
        if self.config.auto_join {
            self.auto_join(&announcement, &keypair, view.as_ref());
        }
        self.emit(CoordinatorEvent::SigningRequestReceived {
            announcement: Box::new(announcement),
        });
    }
}
