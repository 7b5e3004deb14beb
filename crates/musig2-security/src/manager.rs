//! [`SecurityManager`]: every policy behind one entry point per message kind.

use musig2_core::PublicKey;

use crate::announcement::{SessionAnnouncement, Signed, SignerAdvertisement};
use crate::content::{self, Delivery};
use crate::events::SecurityEvent;
use crate::ids::{PeerId, SessionId};
use crate::limits::SecurityConfig;
use crate::metrics::{Counters, MetricsSnapshot};
use crate::phase::Admission;
use crate::rate_limit::{AdvertisementRateLimiter, Freshness, KeyQuota, RequestRateLimiter};
use crate::reputation::{BlacklistEntry, PeerScore, Reputation};
use crate::rule::{Malformation, Rejection, SignedObject, Violation};
use crate::sessions::{DirectMessage, SessionError, SessionInfo, SessionRegistry, StaleSessions};
use crate::time::Millis;

/// Owns every policy (content checks, signed announcements, rate limits and
/// quotas, replay protection, phase enforcement, reputation, session limits,
/// metrics and events) and judges each incoming message in one call.
///
/// It does no I/O, starts no timer and reads no clock: every method that
/// depends on time takes `now` (milliseconds since the epoch). It is `Send`;
/// the coordinator wraps it in a mutex.
///
/// Every `check_*` method either accepts the message, or rejects it with a
/// [`Rejection`] naming the peer and the rule, counts the rejection, and
/// applies the rule's [`Penalty`](crate::Penalty) to the peer's reputation,
/// which may blacklist or graylist it and raise [`SecurityEvent`]s. Nothing is
/// recorded for a rejected message (a rejected sequence number or
/// advertisement does not use up anything). Drain the events after each call
/// with [`drain_events`](Self::drain_events).
#[derive(Debug, Clone)]
pub struct SecurityManager {
    config: SecurityConfig,
    reputation: Reputation,
    advertisements: AdvertisementRateLimiter,
    keys: KeyQuota,
    requests: RequestRateLimiter,
    sessions: SessionRegistry,
    counters: Counters,
}

impl Default for SecurityManager {
    fn default() -> Self {
        Self::new(SecurityConfig::default())
    }
}

impl SecurityManager {
    /// A manager enforcing `config`.
    pub fn new(config: SecurityConfig) -> Self {
        Self {
            reputation: Reputation::new(&config),
            advertisements: AdvertisementRateLimiter::new(
                config.min_advertisement_interval_ms,
                config.max_tracked_peers,
            ),
            keys: KeyQuota::new(config.max_keys_per_peer, config.max_tracked_peers),
            requests: RequestRateLimiter::new(
                config.max_requests_per_minute,
                config.request_burst,
                config.max_tracked_peers,
            ),
            sessions: SessionRegistry::new(&config),
            counters: Counters::default(),
            config,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &SecurityConfig {
        &self.config
    }

    fn reject(&mut self, peer: &PeerId, violation: Violation, now: Millis) -> Rejection {
        let rule = violation.rule();
        self.counters.reject(rule);
        self.reputation.penalize(peer, rule.penalty(), now);
        tracing::debug!(%peer, %rule, detail = %violation, "message rejected");
        Rejection::new(peer.clone(), violation)
    }

    fn guard<T>(
        &mut self,
        peer: &PeerId,
        now: Millis,
        result: Result<T, Violation>,
    ) -> Result<T, Rejection> {
        result.map_err(|violation| self.reject(peer, violation, now))
    }

    /// Blacklist / graylist, then size: the checks to run on raw bytes before
    /// decoding them.
    pub fn check_size(
        &mut self,
        peer: &PeerId,
        delivery: Delivery,
        size: usize,
        now: Millis,
    ) -> Result<(), Rejection> {
        let checked = self
            .reputation
            .check_allowed(peer, now)
            .and_then(|()| content::check_size(delivery, size, &self.config));
        self.guard(peer, now, checked)
    }

    /// Whether `peer` may send anything at all now (`Blacklisted` /
    /// `Graylisted` rejections are counted, not penalised).
    pub fn check_allowed(&mut self, peer: &PeerId, now: Millis) -> Result<(), Rejection> {
        let checked = self.reputation.check_allowed(peer, now);
        self.guard(peer, now, checked)
    }

    /// Judges a signer advertisement received from `peer` (its author or DHT
    /// publisher, see [`Delivery`]) as `size` bytes.
    ///
    /// In order: blacklist / graylist; size; version and fields; `created_at`
    /// within the skew (not too old only for live deliveries); not expired;
    /// `peer` is the advertised `peer_id`; rate (one per
    /// `min_advertisement_interval_ms` of `created_at`, exact re-deliveries of
    /// the last accepted advertisement are accepted without further checks);
    /// the signature under the advertised key; the peer's key quota. On
    /// acceptance the advertisement becomes the peer's latest and its key is
    /// counted until `expires_at`.
    pub fn check_signer_advertisement(
        &mut self,
        peer: &PeerId,
        delivery: Delivery,
        size: usize,
        ad: &SignerAdvertisement,
        now: Millis,
    ) -> Result<(), Rejection> {
        self.check_size(peer, delivery, size, now)?;
        let skew = self.config.max_timestamp_skew_ms;
        let checked = ad
            .validate()
            .and_then(|()| content::check_timestamp(ad.created_at, now, skew, delivery.is_live()))
            .and_then(|()| content::check_not_expired(ad.expires_at, now))
            .and_then(|()| check_announcer(peer, &ad.peer_id));
        self.guard(peer, now, checked)?;

        let digest = ad.digest();
        let freshness = self
            .advertisements
            .check(peer, ad.created_at, &digest, &ad.signature);
        if self.guard(peer, now, freshness)? == Freshness::Duplicate {
            self.counters.duplicate_advertisements += 1;
            return Ok(());
        }
        let checked = ad
            .verify_signature()
            .and_then(|()| self.keys.check(peer, &ad.pubkey, now));
        self.guard(peer, now, checked)?;

        self.advertisements
            .record(peer, ad.created_at, digest, ad.signature, now);
        self.keys.record(peer, ad.pubkey, ad.expires_at, now);
        self.counters.accepted_advertisements += 1;
        Ok(())
    }

    /// Judges a session announcement (signing request) received from `peer`
    /// (its author, see [`Delivery`]) as `size` bytes.
    ///
    /// In order: blacklist / graylist; size; version and fields (keys sorted
    /// and distinct, creator among them, at most `max_signers_per_request`,
    /// request id, expiry after creation); `created_at` within the skew; not
    /// expired; `peer` is `creator_peer_id`; the creator's signature; then,
    /// for live deliveries, the request rate per author key and per peer
    /// (after the signature, so that forged requests cannot use up an honest
    /// author's budget); the peer's key quota (the creator key counts until
    /// `expires_at`).
    ///
    /// A DHT record is not its author speaking: judge it with
    /// [`verify_dht_announcement`](Self::verify_dht_announcement) instead.
    pub fn check_session_announcement(
        &mut self,
        peer: &PeerId,
        delivery: Delivery,
        size: usize,
        announcement: &SessionAnnouncement,
        now: Millis,
    ) -> Result<(), Rejection> {
        self.check_session_announcement_copy(peer, delivery, size, announcement, now)?;
        if delivery.is_live() {
            let rate = self.requests.take(peer, &announcement.creator_pubkey, now);
            self.guard(peer, now, rate)?;
        }
        let quota = self.keys.check(peer, &announcement.creator_pubkey, now);
        self.guard(peer, now, quota)?;

        self.keys.record(
            peer,
            announcement.creator_pubkey,
            announcement.expires_at,
            now,
        );
        self.counters.accepted_announcements += 1;
        Ok(())
    }

    /// Judges a second copy of an announcement this node already accepted
    /// (byte for byte): every check of [`Self::check_session_announcement`]
    /// (ban, size, content and times, the deliverer is the creator's peer,
    /// the signature) but the request rate and the key quota, which the
    /// first copy paid. A request comes directly and by gossip; its creator
    /// is not charged twice for one request.
    pub fn check_session_announcement_copy(
        &mut self,
        peer: &PeerId,
        delivery: Delivery,
        size: usize,
        announcement: &SessionAnnouncement,
        now: Millis,
    ) -> Result<(), Rejection> {
        self.check_size(peer, delivery, size, now)?;
        let checked = self
            .announcement_content(announcement, delivery, now)
            .and_then(|()| check_announcer(peer, &announcement.creator_peer_id))
            .and_then(|()| announcement.verify_signature());
        self.guard(peer, now, checked)
    }

    fn announcement_content(
        &self,
        announcement: &SessionAnnouncement,
        delivery: Delivery,
        now: Millis,
    ) -> Result<(), Violation> {
        let skew = self.config.max_timestamp_skew_ms;
        let max = self.config.max_signers_per_request;
        let count = announcement.required_pubkeys.len();
        announcement.validate()?;
        if count > max {
            return Err(Violation::Malformed(Malformation::TooManySigners {
                count,
                max,
            }));
        }
        content::check_timestamp(announcement.created_at, now, skew, delivery.is_live())?;
        content::check_not_expired(announcement.expires_at, now)
    }

    /// Judges a session announcement read from the DHT, which any peer can
    /// write under any key: the record says nothing about who wrote it, so a
    /// bad one is counted but **penalises nobody** (never the peer it names),
    /// uses no key quota and no rate budget. Checks: size, fields, not
    /// expired, not created in the future, the creator's signature.
    pub fn verify_dht_announcement(
        &mut self,
        size: usize,
        announcement: &SessionAnnouncement,
        now: Millis,
    ) -> Result<(), Violation> {
        let checked = content::check_size(Delivery::Dht, size, &self.config)
            .and_then(|()| self.announcement_content(announcement, Delivery::Dht, now))
            .and_then(|()| announcement.verify_signature());
        self.count_unattributed(checked)
    }

    /// Judges a signer advertisement read from the DHT, like
    /// [`verify_dht_announcement`](Self::verify_dht_announcement): counted,
    /// never blamed on anyone, no quota. Checks: size, fields, not expired,
    /// not created in the future, the signature under the advertised key.
    pub fn verify_dht_advertisement(
        &mut self,
        size: usize,
        ad: &SignerAdvertisement,
        now: Millis,
    ) -> Result<(), Violation> {
        let skew = self.config.max_timestamp_skew_ms;
        let checked = content::check_size(Delivery::Dht, size, &self.config)
            .and_then(|()| ad.validate())
            .and_then(|()| content::check_timestamp(ad.created_at, now, skew, false))
            .and_then(|()| content::check_not_expired(ad.expires_at, now))
            .and_then(|()| ad.verify_signature());
        self.count_unattributed(checked)
    }

    fn count_unattributed(&mut self, checked: Result<(), Violation>) -> Result<(), Violation> {
        if let Err(violation) = &checked {
            self.counters.reject(violation.rule());
            tracing::debug!(rule = %violation.rule(), detail = %violation, "DHT record rejected (nobody blamed)");
        }
        checked
    }

    /// Judges a direct session message from `peer`.
    ///
    /// In order: blacklist / graylist; size (`max_message_size`); `sent_at`
    /// within the skew either way; then the session: open and not expired,
    /// sender count, sequence number (replay, gap), role and phase, the
    /// sender's order (see [`SessionRegistry::admit`]). Returns whether to
    /// process the message now or buffer it until the session catches up.
    pub fn check_direct_message(
        &mut self,
        peer: &PeerId,
        message: &DirectMessage,
        now: Millis,
    ) -> Result<Admission, Rejection> {
        self.check_size(peer, Delivery::Direct, message.size, now)?;
        let skew = self.config.max_timestamp_skew_ms;
        let checked = content::check_timestamp(message.sent_at, now, skew, true);
        self.guard(peer, now, checked)?;
        let admitted = self.sessions.admit(peer, message, now);
        let admission = self.guard(peer, now, admitted)?;
        self.counters.accepted_direct_messages += 1;
        if admission == Admission::Buffer {
            self.counters.buffered_direct_messages += 1;
        }
        Ok(admission)
    }

    /// Records a violation the coordinator found itself (an undecodable
    /// message, an unknown election method, a nonce that does not open its
    /// commitment, an invalid partial signature, …): counts it, penalises
    /// the peer like any rejection, and returns the rejection to log.
    pub fn report_violation(
        &mut self,
        peer: &PeerId,
        violation: Violation,
        now: Millis,
    ) -> Rejection {
        self.reject(peer, violation, now)
    }

    /// Shorthand for reporting an invalid signature on `object`.
    pub fn record_invalid_signature(
        &mut self,
        peer: &PeerId,
        object: SignedObject,
        now: Millis,
    ) -> Rejection {
        self.reject(peer, Violation::InvalidSignature { object }, now)
    }

    /// Records that a session completed with `peer` (score +1).
    pub fn record_session_completed(&mut self, peer: &PeerId, now: Millis) {
        self.reputation.record_session_completed(peer, now);
    }

    // --- sessions ---------------------------------------------------------

    /// Opens a session (`max_concurrent_sessions`, `session_timeout_ms`).
    pub fn open_session(&mut self, session: SessionId, now: Millis) -> Result<(), SessionError> {
        self.sessions.open(session, now)
    }

    /// Opens a session that expires at `expires_at` at the latest.
    pub fn open_session_until(
        &mut self,
        session: SessionId,
        now: Millis,
        expires_at: Millis,
    ) -> Result<(), SessionError> {
        self.sessions.open_until(session, now, expires_at)
    }

    /// Records that a session progressed (phase change, failover attempt).
    pub fn record_session_progress(
        &mut self,
        session: SessionId,
        now: Millis,
    ) -> Result<(), SessionError> {
        self.sessions.record_progress(session, now)
    }

    /// Closes a session and forgets its senders' sequence numbers.
    pub fn close_session(&mut self, session: &SessionId) -> bool {
        self.sessions.close(session)
    }

    /// The expired and stuck sessions at `now`; the coordinator aborts and
    /// closes them (its `cleanup_expired_sessions`).
    pub fn stale_sessions(&self, now: Millis) -> StaleSessions {
        self.sessions.stale_sessions(now)
    }

    /// A snapshot of an open session.
    pub fn session_info(&self, session: &SessionId) -> Option<SessionInfo> {
        self.sessions.info(session)
    }

    /// The session registry.
    pub fn sessions(&self) -> &SessionRegistry {
        &self.sessions
    }

    // --- reputation -------------------------------------------------------

    /// Whether `peer` may send anything at `now`.
    pub fn is_allowed(&self, peer: &PeerId, now: Millis) -> bool {
        self.reputation.is_allowed(peer, now)
    }

    /// Whether `peer` is allowed and scores at least `min_score` (0–100).
    pub fn is_reputable(&self, peer: &PeerId, min_score: i32, now: Millis) -> bool {
        self.reputation.is_reputable(peer, min_score, now)
    }

    /// The peer's score and violation counts.
    pub fn peer_score(&self, peer: &PeerId) -> PeerScore {
        self.reputation.score(peer)
    }

    /// Blacklists a peer by hand.
    pub fn blacklist_peer(&mut self, peer: &PeerId, reason: impl Into<String>, now: Millis) {
        self.reputation.blacklist_peer(peer, reason, now);
    }

    /// Lifts a blacklisting (and resets the peer's counts).
    pub fn unblacklist_peer(&mut self, peer: &PeerId) -> bool {
        self.reputation.unblacklist_peer(peer)
    }

    /// Graylists a peer for `duration_ms`.
    pub fn graylist_peer(&mut self, peer: &PeerId, duration_ms: Millis, now: Millis) {
        self.reputation.graylist_peer(peer, duration_ms, now);
    }

    /// Ends a graylisting early.
    pub fn ungraylist_peer(&mut self, peer: &PeerId) -> bool {
        self.reputation.ungraylist_peer(peer)
    }

    /// Every blacklisted peer.
    pub fn blacklisted_peers(&self) -> Vec<(PeerId, BlacklistEntry)> {
        self.reputation.blacklisted_peers()
    }

    /// Every peer graylisted at `now`, with the end of its graylisting.
    pub fn graylisted_peers(&self, now: Millis) -> Vec<(PeerId, Millis)> {
        self.reputation.graylisted_peers(now)
    }

    /// The reputation state.
    pub fn reputation(&self) -> &Reputation {
        &self.reputation
    }

    /// The reputation state, mutably.
    pub fn reputation_mut(&mut self) -> &mut Reputation {
        &mut self.reputation
    }

    // --- keys ---------------------------------------------------------------

    /// The unexpired keys `peer` has claimed.
    pub fn peer_keys(&self, peer: &PeerId, now: Millis) -> Vec<PublicKey> {
        self.keys.keys_of(peer, now)
    }

    /// Forgets a key `peer` withdrew, freeing its quota slot.
    pub fn withdraw_key(&mut self, peer: &PeerId, key: &PublicKey, now: Millis) {
        self.keys.remove_key(peer, key, now);
    }

    // --- events, metrics, housekeeping ------------------------------------

    /// Takes the pending events (`peer:blacklisted`, `peer:graylisted`,
    /// `peer:should-ban`, `peer:unblacklisted`), oldest first. The queue holds
    /// `max_pending_events`; on overflow the oldest is dropped and counted.
    pub fn drain_events(&mut self) -> Vec<SecurityEvent> {
        self.reputation.drain_events()
    }

    /// Every counter and gauge at `now`.
    pub fn metrics(&self, now: Millis) -> MetricsSnapshot {
        use crate::rule::Rule;
        let rejections = self.counters.rejections();
        let stats = self.reputation.stats;
        MetricsSnapshot {
            rejections_total: rejections.values().sum(),
            rejections,
            accepted_advertisements: self.counters.accepted_advertisements,
            duplicate_advertisements: self.counters.duplicate_advertisements,
            accepted_announcements: self.counters.accepted_announcements,
            accepted_direct_messages: self.counters.accepted_direct_messages,
            buffered_direct_messages: self.counters.buffered_direct_messages,
            rate_limit_violations: self.counters.rejected(Rule::RateLimit),
            invalid_signatures: self.counters.rejected(Rule::InvalidSignature),
            blacklisted_peers: self.reputation.blacklist_len(),
            graylisted_peers: self.reputation.graylist_len(now),
            blacklistings_total: stats.blacklistings,
            graylistings_total: stats.graylistings,
            should_ban_total: stats.should_ban,
            blacklist_evictions_total: stats.blacklist_evictions,
            events_dropped_total: self.reputation.events_dropped(),
            tracked_peers: self.reputation.tracked_peers(),
            peers_evicted_total: self.reputation.evictions(),
            open_sessions: self.sessions.len(),
        }
    }

    /// Forgets what is no longer needed at `now`: ended graylistings, expired
    /// keys, and the state of peers not seen for `peer_state_ttl_ms`
    /// (blacklistings stay). Call it now and then, e.g. with
    /// [`stale_sessions`](Self::stale_sessions).
    pub fn prune(&mut self, now: Millis) {
        let ttl = self.config.peer_state_ttl_ms;
        self.reputation.prune(now, ttl);
        self.advertisements.prune(now.saturating_sub(ttl));
        self.keys.prune(now);
        // An untouched bucket refills completely within burst / rate minutes.
        self.requests
            .prune(now.saturating_sub(REQUEST_BUCKET_IDLE_MS));
    }
}

/// Request buckets untouched this long are full again and can be forgotten.
const REQUEST_BUCKET_IDLE_MS: Millis = 10 * 60 * 1000;

fn check_announcer(peer: &PeerId, claimed: &str) -> Result<(), Violation> {
    if peer.as_str() == claimed {
        Ok(())
    } else {
        Err(Violation::PeerMismatch {
            claimed: claimed.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests;
