//! Counters, and the snapshot the coordinator exports (later to Prometheus).

use std::collections::BTreeMap;

use crate::rule::Rule;

#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    rejections: [u64; Rule::COUNT],
    pub(crate) accepted_advertisements: u64,
    pub(crate) duplicate_advertisements: u64,
    pub(crate) accepted_announcements: u64,
    pub(crate) accepted_direct_messages: u64,
    pub(crate) buffered_direct_messages: u64,
}

impl Counters {
    pub(crate) fn reject(&mut self, rule: Rule) {
        if let Some(count) = self.rejections.get_mut(rule.index()) {
            *count += 1;
        }
    }

    pub(crate) fn rejected(&self, rule: Rule) -> u64 {
        self.rejections.get(rule.index()).copied().unwrap_or(0)
    }

    pub(crate) fn rejections(&self) -> BTreeMap<Rule, u64> {
        Rule::ALL.iter().map(|&r| (r, self.rejected(r))).collect()
    }
}

/// A point-in-time copy of every counter and gauge.
///
/// Counters (`*_total`, `rejections`, `accepted_*`) only grow; gauges
/// (`blacklisted_peers`, `graylisted_peers`, `tracked_peers`, `open_sessions`)
/// are the state at the snapshot's `now`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Rejections per rule; every rule is present, zero or not.
    pub rejections: BTreeMap<Rule, u64>,
    /// All rejections.
    pub rejections_total: u64,
    /// Signer advertisements accepted.
    pub accepted_advertisements: u64,
    /// Signer advertisements received again after acceptance (not blamed).
    pub duplicate_advertisements: u64,
    /// Session announcements accepted.
    pub accepted_announcements: u64,
    /// Direct messages accepted (processed or buffered).
    pub accepted_direct_messages: u64,
    /// Of those, early ones the coordinator was told to buffer.
    pub buffered_direct_messages: u64,
    /// Rate-limit violations (the `rate_limit` rejections).
    pub rate_limit_violations: u64,
    /// Invalid signatures (the `invalid_signature` rejections).
    pub invalid_signatures: u64,
    /// Peers blacklisted now.
    pub blacklisted_peers: usize,
    /// Peers graylisted now.
    pub graylisted_peers: usize,
    /// Blacklistings ever made (automatic and manual).
    pub blacklistings_total: u64,
    /// Graylistings ever made.
    pub graylistings_total: u64,
    /// `peer:should-ban` events raised.
    pub should_ban_total: u64,
    /// Blacklist entries forgotten because the blacklist was full.
    pub blacklist_evictions_total: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped_total: u64,
    /// Peers with a reputation score now.
    pub tracked_peers: usize,
    /// Peer scores forgotten because `max_tracked_peers` was reached.
    pub peers_evicted_total: u64,
    /// Sessions open now.
    pub open_sessions: usize,
}

impl MetricsSnapshot {
    /// Rejections under `rule`.
    pub fn rejected(&self, rule: Rule) -> u64 {
        self.rejections.get(&rule).copied().unwrap_or(0)
    }
}
