//! Every limit the policy enforces, with lotus-sdk's defaults.

use crate::time::Millis;

/// Every configurable limit. [`Default`] gives the reference's values (see
/// the field docs and `docs/SECURITY.md`); change any field to tune it.
///
/// Limits named "max" are inclusive: a value equal to the limit passes and one
/// above it is rejected. Times are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// Largest gossip / DHT message (signer advertisement, session
    /// announcement), in bytes. Reference `MAX_ADVERTISEMENT_SIZE`: 10 000.
    pub max_advertisement_size: usize,
    /// Largest direct (request-response) message, in bytes. Reference
    /// `MAX_MESSAGE_SIZE`: 100 000.
    pub max_message_size: usize,
    /// How far a message's timestamp may be from `now`, either way.
    /// Reference `MAX_TIMESTAMP_SKEW`: 300 000 (5 minutes).
    pub max_timestamp_skew_ms: Millis,
    /// Least spacing between the `created_at` of two signer advertisements of
    /// one peer. Reference `MIN_ADVERTISEMENT_INTERVAL`: 60 000 (1 per minute).
    pub min_advertisement_interval_ms: Millis,
    /// Most distinct, unexpired public keys one peer may claim. Reference
    /// `MAX_KEYS_PER_PEER`: 10.
    pub max_keys_per_peer: usize,
    /// Invalid signatures after which a peer is blacklisted (the one that
    /// reaches this count bans it). Reference
    /// `MAX_INVALID_SIGNATURES_PER_PEER`: 10.
    pub max_invalid_signatures_per_peer: u32,
    /// Rate-limit violations after which a peer is graylisted (lotus-sdk
    /// `PeerReputationManager`: 10).
    pub max_rate_limit_violations: u32,
    /// Other rule violations ("spam") after which a peer is blacklisted
    /// (lotus-sdk `PeerReputationManager`: 50).
    pub max_spam_violations: u32,
    /// How long a graylisting lasts (lotus-sdk: 1 hour).
    pub graylist_duration_ms: Millis,
    /// Largest accepted jump in a sender's sequence numbers within a session.
    /// Reference `maxSequenceGap`: 100.
    pub max_sequence_gap: u64,
    /// Lifetime of a session. Reference `DEFAULT_SESSION_TIMEOUT`: 7 200 000 (2 hours).
    pub session_timeout_ms: Millis,
    /// Time without phase progress after which a session is stuck. Reference
    /// `STUCK_SESSION_TIMEOUT`: 600 000 (10 minutes).
    pub stuck_session_timeout_ms: Millis,
    /// Most sessions open at once (ours: 10).
    pub max_concurrent_sessions: usize,
    /// Most distinct peers whose messages one session tracks (ours: 256; a
    /// session has one sender per signer).
    pub max_senders_per_session: usize,
    /// Most peers with tracked state (scores, rate limits, keys); beyond it the
    /// least recently seen peer's state is forgotten (ours: 10 000).
    pub max_tracked_peers: usize,
    /// Most blacklist entries; beyond it the oldest automatic entry is
    /// forgotten, manual entries last (ours: 10 000).
    pub max_blacklist_size: usize,
    /// Idle time after which [`prune`](crate::SecurityManager::prune) forgets a
    /// peer's state (lotus-sdk cleanup: 24 hours).
    pub peer_state_ttl_ms: Millis,
    /// Capacity of the event queue; when full, the oldest event is dropped
    /// and counted (ours: 1 024).
    pub max_pending_events: usize,
    /// Most signers one signing request may name (ours: 100). Key
    /// aggregation and every round cost O(n) per signer; the reference has
    /// no limit, and about 290 keys fit in a gossip message.
    pub max_signers_per_request: usize,
    /// Signing requests accepted live (gossip, direct) per author key and
    /// per delivering peer, a minute on average (ours: 30).
    pub max_requests_per_minute: u32,
    /// Burst of signing requests above that rate (ours: 20: one request per
    /// input of a 20-input transaction at once).
    pub request_burst: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            max_advertisement_size: 10_000,
            max_message_size: 100_000,
            max_timestamp_skew_ms: 300_000,
            min_advertisement_interval_ms: 60_000,
            max_keys_per_peer: 10,
            max_invalid_signatures_per_peer: 10,
            max_rate_limit_violations: 10,
            max_spam_violations: 50,
            graylist_duration_ms: 3_600_000,
            max_sequence_gap: 100,
            session_timeout_ms: 7_200_000,
            stuck_session_timeout_ms: 600_000,
            max_concurrent_sessions: 10,
            max_senders_per_session: 256,
            max_tracked_peers: 10_000,
            max_blacklist_size: 10_000,
            peer_state_ttl_ms: 86_400_000,
            max_pending_events: 1_024,
            max_signers_per_request: 100,
            max_requests_per_minute: 30,
            request_burst: 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_values() {
        let c = SecurityConfig::default();
        assert_eq!(c.max_advertisement_size, 10_000);
        assert_eq!(c.max_message_size, 100_000);
        assert_eq!(c.max_timestamp_skew_ms, 5 * 60 * 1000);
        assert_eq!(c.min_advertisement_interval_ms, 60 * 1000);
        assert_eq!(c.max_keys_per_peer, 10);
        assert_eq!(c.max_invalid_signatures_per_peer, 10);
        assert_eq!(c.max_sequence_gap, 100);
        assert_eq!(c.session_timeout_ms, 2 * 60 * 60 * 1000);
        assert_eq!(c.stuck_session_timeout_ms, 10 * 60 * 1000);
        assert_eq!(c.max_concurrent_sessions, 10);
    }

    #[test]
    fn partial_json_config_keeps_defaults() {
        let c: SecurityConfig = serde_json::from_str(r#"{"max_sequence_gap": 50}"#).unwrap();
        assert_eq!(c.max_sequence_gap, 50);
        assert_eq!(c.max_message_size, 100_000);
    }
}
