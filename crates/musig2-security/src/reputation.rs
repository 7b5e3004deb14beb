//! Peer reputation: scores, violation counts, blacklist and graylist.

use core::fmt;
use std::collections::HashMap;

use crate::events::{EventQueue, SecurityEvent};
use crate::ids::PeerId;
use crate::limits::SecurityConfig;
use crate::peer_map::BoundedPeerMap;
use crate::rule::{Penalty, Violation};
use crate::time::Millis;

/// A new peer's score.
pub const INITIAL_SCORE: i32 = 50;
/// The highest score.
pub const MAX_SCORE: i32 = 100;
/// The lowest score.
pub const MIN_SCORE: i32 = 0;

impl Penalty {
    /// The score change of one such penalty.
    pub const fn score_delta(self) -> i32 {
        match self {
            Self::None => 0,
            Self::Spam => -1,
            Self::RateLimit => -5,
            Self::InvalidSignature => -10,
        }
    }
}

/// Score change for a completed session.
pub const COMPLETED_SESSION_REWARD: i32 = 1;

/// What is known about a peer's behaviour.
///
/// `score` (0–100, new peers 50) is advisory, for choices such as whom to
/// auto-connect to; bans are decided by the counts against the configured
/// thresholds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerScore {
    /// 0–100.
    pub score: i32,
    /// Invalid signatures (announcements, advertisements, MuSig2 contributions).
    pub invalid_signatures: u32,
    /// Other rule violations.
    pub spam_count: u32,
    /// Rate-limit violations.
    pub rate_limit_violations: u32,
    /// Sessions completed with this peer (reported by the coordinator).
    pub completed_sessions: u32,
    /// When the last penalised violation happened.
    pub last_violation_at: Option<Millis>,
}

impl Default for PeerScore {
    fn default() -> Self {
        Self {
            score: INITIAL_SCORE,
            invalid_signatures: 0,
            spam_count: 0,
            rate_limit_violations: 0,
            completed_sessions: 0,
            last_violation_at: None,
        }
    }
}

impl PeerScore {
    /// Whether the peer was never penalised.
    pub fn is_clean(&self) -> bool {
        self.invalid_signatures == 0
            && self.spam_count == 0
            && self.rate_limit_violations == 0
            && self.last_violation_at.is_none()
    }
}

/// A peer's score and graylisting as a node saves them across restarts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedPeer {
    /// The peer.
    pub peer: PeerId,
    /// Its score and counts.
    pub score: PeerScore,
    /// The end of its graylisting, if one was running.
    pub graylisted_until: Option<Millis>,
}

/// Why a peer is blacklisted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum BlacklistReason {
    /// It reached `max_invalid_signatures_per_peer` (`invalid-signatures`).
    InvalidSignatures,
    /// It reached `max_spam_violations` (`spam`).
    Spam,
    /// An operator blacklisted it, with this reason.
    Manual(String),
}

impl fmt::Display for BlacklistReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSignatures => f.write_str("invalid-signatures"),
            Self::Spam => f.write_str("spam"),
            Self::Manual(reason) => f.write_str(reason),
        }
    }
}

/// A blacklisting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlacklistEntry {
    /// Why.
    pub reason: BlacklistReason,
    /// Since when.
    pub since: Millis,
}

impl BlacklistEntry {
    /// Whether an operator made it.
    pub fn is_manual(&self) -> bool {
        matches!(self.reason, BlacklistReason::Manual(_))
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReputationStats {
    pub(crate) blacklistings: u64,
    pub(crate) graylistings: u64,
    pub(crate) should_ban: u64,
    pub(crate) blacklist_evictions: u64,
}

/// Scores, blacklist (permanent until lifted) and graylist (temporary), and
/// the events they raise.
///
/// Thresholds (each configurable in [`SecurityConfig`]): the invalid
/// signature that brings a peer's count to `max_invalid_signatures_per_peer`
/// blacklists it; the violation that brings its rate-limit count to
/// `max_rate_limit_violations` graylists it for `graylist_duration_ms` (and
/// every further one re-graylists it, as in lotus-sdk); the one that brings its
/// spam count to `max_spam_violations` blacklists it. Automatic blacklisting
/// raises `peer:blacklisted` and `peer:should-ban`.
#[derive(Debug, Clone)]
pub struct Reputation {
    max_invalid_signatures: u32,
    max_rate_limit_violations: u32,
    max_spam: u32,
    graylist_duration_ms: Millis,
    max_blacklist: usize,
    scores: BoundedPeerMap<PeerScore>,
    blacklist: HashMap<PeerId, BlacklistEntry>,
    graylist: BoundedPeerMap<Millis>,
    events: EventQueue,
    pub(crate) stats: ReputationStats,
}

impl Reputation {
    /// Reputation with `config`'s thresholds and bounds.
    pub fn new(config: &SecurityConfig) -> Self {
        Self {
            max_invalid_signatures: config.max_invalid_signatures_per_peer,
            max_rate_limit_violations: config.max_rate_limit_violations,
            max_spam: config.max_spam_violations,
            graylist_duration_ms: config.graylist_duration_ms,
            max_blacklist: config.max_blacklist_size.max(1),
            scores: BoundedPeerMap::new(config.max_tracked_peers),
            blacklist: HashMap::new(),
            graylist: BoundedPeerMap::new(config.max_tracked_peers),
            events: EventQueue::new(config.max_pending_events),
            stats: ReputationStats::default(),
        }
    }

    /// `Ok` unless the peer is blacklisted, or graylisted at `now`.
    pub fn check_allowed(&self, peer: &PeerId, now: Millis) -> Result<(), Violation> {
        if let Some(entry) = self.blacklist.get(peer) {
            return Err(Violation::Blacklisted {
                reason: entry.reason.to_string(),
            });
        }
        match self.graylist.get(peer) {
            Some(&until) if until > now => Err(Violation::Graylisted { until }),
            _ => Ok(()),
        }
    }

    /// Whether the peer may send anything at `now`.
    pub fn is_allowed(&self, peer: &PeerId, now: Millis) -> bool {
        self.check_allowed(peer, now).is_ok()
    }

    /// Whether the peer is allowed and its score is at least `min_score`.
    pub fn is_reputable(&self, peer: &PeerId, min_score: i32, now: Millis) -> bool {
        self.is_allowed(peer, now) && self.score(peer).score >= min_score
    }

    /// Whether the peer is blacklisted.
    pub fn is_blacklisted(&self, peer: &PeerId) -> bool {
        self.blacklist.contains_key(peer)
    }

    /// Whether the peer is graylisted at `now` (a graylisting ends at its
    /// `until`: at `until` the peer is allowed again).
    pub fn is_graylisted(&self, peer: &PeerId, now: Millis) -> bool {
        self.graylist.get(peer).is_some_and(|&until| until > now)
    }

    /// The peer's blacklisting, if any.
    pub fn blacklist_entry(&self, peer: &PeerId) -> Option<&BlacklistEntry> {
        self.blacklist.get(peer)
    }

    /// The peer's score (the initial one for a peer never seen).
    pub fn score(&self, peer: &PeerId) -> PeerScore {
        self.scores.get(peer).cloned().unwrap_or_default()
    }

    /// Applies one penalty and any threshold it crosses.
    pub fn penalize(&mut self, peer: &PeerId, penalty: Penalty, now: Millis) {
        if penalty == Penalty::None {
            return;
        }
        let score = self.scores.entry(peer, now, PeerScore::default);
        score.score = (score.score + penalty.score_delta()).clamp(MIN_SCORE, MAX_SCORE);
        score.last_violation_at = Some(now);
        match penalty {
            Penalty::None => {}
            Penalty::InvalidSignature => {
                score.invalid_signatures = score.invalid_signatures.saturating_add(1);
                if score.invalid_signatures >= self.max_invalid_signatures {
                    self.auto_blacklist(peer, BlacklistReason::InvalidSignatures, now);
                }
            }
            Penalty::Spam => {
                score.spam_count = score.spam_count.saturating_add(1);
                if score.spam_count >= self.max_spam {
                    self.auto_blacklist(peer, BlacklistReason::Spam, now);
                }
            }
            Penalty::RateLimit => {
                score.rate_limit_violations = score.rate_limit_violations.saturating_add(1);
                if score.rate_limit_violations >= self.max_rate_limit_violations {
                    self.graylist_peer(peer, self.graylist_duration_ms, now);
                }
            }
        }
    }

    /// Records an invalid signature (see [`Self::penalize`]).
    pub fn record_invalid_signature(&mut self, peer: &PeerId, now: Millis) {
        self.penalize(peer, Penalty::InvalidSignature, now);
    }

    /// Records a completed session: score +1 (up to 100).
    pub fn record_session_completed(&mut self, peer: &PeerId, now: Millis) {
        let score = self.scores.entry(peer, now, PeerScore::default);
        score.completed_sessions = score.completed_sessions.saturating_add(1);
        score.score = (score.score + COMPLETED_SESSION_REWARD).clamp(MIN_SCORE, MAX_SCORE);
    }

    fn auto_blacklist(&mut self, peer: &PeerId, reason: BlacklistReason, now: Millis) {
        if self.blacklist.contains_key(peer) {
            return;
        }
        tracing::warn!(%peer, %reason, "blacklisting peer");
        self.insert_blacklist(
            peer,
            BlacklistEntry {
                reason: reason.clone(),
                since: now,
            },
        );
        self.stats.blacklistings += 1;
        self.stats.should_ban += 1;
        self.events.push(SecurityEvent::PeerBlacklisted {
            peer: peer.clone(),
            reason: reason.clone(),
        });
        self.events.push(SecurityEvent::PeerShouldBan {
            peer: peer.clone(),
            reason,
        });
    }

    fn insert_blacklist(&mut self, peer: &PeerId, entry: BlacklistEntry) {
        if !self.blacklist.contains_key(peer) && self.blacklist.len() >= self.max_blacklist {
            let oldest = |manual: bool| {
                self.blacklist
                    .iter()
                    .filter(|(_, e)| e.is_manual() == manual)
                    .min_by_key(|(_, e)| e.since)
                    .map(|(p, _)| p.clone())
            };
            let victim = oldest(false).or_else(|| {
                if entry.is_manual() {
                    oldest(true)
                } else {
                    None
                }
            });
            match victim {
                Some(victim) => {
                    self.blacklist.remove(&victim);
                    self.stats.blacklist_evictions += 1;
                }
                // Full of manual entries: an automatic one is not recorded (its
                // events are still raised so the transport can ban the peer).
                None => return,
            }
        }
        self.blacklist.insert(peer.clone(), entry);
    }

    /// Blacklists a peer by hand (lotus-sdk `blacklistPeer(peerId, reason)`);
    /// raises `peer:blacklisted`.
    pub fn blacklist_peer(&mut self, peer: &PeerId, reason: impl Into<String>, now: Millis) {
        let reason = BlacklistReason::Manual(reason.into());
        tracing::warn!(%peer, %reason, "blacklisting peer by hand");
        self.insert_blacklist(
            peer,
            BlacklistEntry {
                reason: reason.clone(),
                since: now,
            },
        );
        self.stats.blacklistings += 1;
        self.events.push(SecurityEvent::PeerBlacklisted {
            peer: peer.clone(),
            reason,
        });
    }

    /// Lifts a blacklisting (lotus-sdk `unblacklistPeer`) and resets the
    /// peer's violation counts and score, so that it is not banned again by
    /// its next mistake. Returns whether it was blacklisted.
    pub fn unblacklist_peer(&mut self, peer: &PeerId) -> bool {
        if self.blacklist.remove(peer).is_none() {
            return false;
        }
        tracing::info!(%peer, "blacklisting lifted");
        if let Some(score) = self.scores.get_mut(peer, 0) {
            *score = PeerScore {
                completed_sessions: score.completed_sessions,
                ..PeerScore::default()
            };
        }
        self.events
            .push(SecurityEvent::PeerUnblacklisted { peer: peer.clone() });
        true
    }

    /// Graylists a peer until `now + duration_ms`; raises `peer:graylisted`.
    pub fn graylist_peer(&mut self, peer: &PeerId, duration_ms: Millis, now: Millis) {
        let until = now.saturating_add(duration_ms);
        tracing::warn!(%peer, duration_ms, "graylisting peer");
        *self.graylist.entry(peer, now, || until) = until;
        self.stats.graylistings += 1;
        self.events.push(SecurityEvent::PeerGraylisted {
            peer: peer.clone(),
            duration_ms,
            until,
        });
    }

    /// Ends a graylisting early. Returns whether there was one.
    pub fn ungraylist_peer(&mut self, peer: &PeerId) -> bool {
        self.graylist.remove(peer).is_some()
    }

    /// Every blacklisted peer, by peer id.
    pub fn blacklisted_peers(&self) -> Vec<(PeerId, BlacklistEntry)> {
        let mut out: Vec<_> = self
            .blacklist
            .iter()
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every peer graylisted at `now`, with the end of its graylisting.
    pub fn graylisted_peers(&self, now: Millis) -> Vec<(PeerId, Millis)> {
        let mut out: Vec<_> = self
            .graylist
            .iter()
            .filter(|&(_, &until)| until > now)
            .map(|(peer, &until)| (peer.clone(), until))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// How many peers are blacklisted.
    pub fn blacklist_len(&self) -> usize {
        self.blacklist.len()
    }

    /// How many peers are graylisted at `now`.
    pub fn graylist_len(&self, now: Millis) -> usize {
        self.graylist
            .iter()
            .filter(|&(_, &until)| until > now)
            .count()
    }

    /// What a node keeps across restarts (besides the blacklist, which it
    /// saves as it changes): every score that differs from a new peer's,
    /// and every graylisting still running at `now`, sorted by peer.
    pub fn snapshot(&self, now: Millis) -> Vec<SavedPeer> {
        let mut out: Vec<SavedPeer> = self
            .scores
            .iter()
            .filter(|(_, score)| **score != PeerScore::default())
            .map(|(peer, score)| SavedPeer {
                peer: peer.clone(),
                score: score.clone(),
                graylisted_until: None,
            })
            .collect();
        for (peer, until) in self.graylisted_peers(now) {
            match out.iter_mut().find(|s| s.peer == peer) {
                Some(saved) => saved.graylisted_until = Some(until),
                None => out.push(SavedPeer {
                    peer,
                    score: PeerScore::default(),
                    graylisted_until: Some(until),
                }),
            }
        }
        out.sort_by(|a, b| a.peer.cmp(&b.peer));
        out
    }

    /// Restores what [`Self::snapshot`] saved (at start, before any peer
    /// is heard); a graylisting that ended by `now` is not restored. Raises
    /// no event: nothing new happened.
    pub fn restore(&mut self, saved: &SavedPeer, now: Millis) {
        let score = saved.score.clone();
        *self.scores.entry(&saved.peer, now, PeerScore::default) = PeerScore {
            score: score.score.clamp(MIN_SCORE, MAX_SCORE),
            ..score
        };
        if let Some(until) = saved.graylisted_until.filter(|until| *until > now) {
            *self.graylist.entry(&saved.peer, now, || until) = until;
        }
    }

    /// How many peers have a score.
    pub fn tracked_peers(&self) -> usize {
        self.scores.len()
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.scores.evictions()
    }

    /// Takes the pending events, oldest first.
    pub fn drain_events(&mut self) -> Vec<SecurityEvent> {
        self.events.drain()
    }

    /// Events dropped because the queue was full.
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped()
    }

    /// Forgets ended graylistings, and the scores of peers not seen for `ttl_ms`.
    pub fn prune(&mut self, now: Millis, ttl_ms: Millis) {
        self.graylist.retain(|_, until, _| *until > now);
        let cutoff = now.saturating_sub(ttl_ms);
        self.scores.retain(|_, _, touched| touched >= cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep() -> Reputation {
        Reputation::new(&SecurityConfig::default())
    }

    #[test]
    fn a_snapshot_restores_scores_and_running_graylistings_only() {
        let mut r = rep();
        let (good, bad, gray) = (
            PeerId::from("good"),
            PeerId::from("bad"),
            PeerId::from("gray"),
        );
        r.record_session_completed(&good, 1);
        r.record_invalid_signature(&bad, 1);
        r.graylist_peer(&gray, 100, 1);
        let saved = r.snapshot(1);
        // A graylisted peer with a default score is saved for its graylisting.
        assert_eq!(
            saved.iter().map(|s| s.peer.as_str()).collect::<Vec<_>>(),
            ["bad", "good", "gray"]
        );

        let mut after = rep();
        for s in &saved {
            after.restore(s, 50);
        }
        assert_eq!(after.score(&good), r.score(&good));
        assert_eq!(after.score(&bad), r.score(&bad));
        assert!(after.is_graylisted(&gray, 60));
        assert!(after.drain_events().is_empty(), "a restore raises nothing");
        // Restored past its end, a graylisting is gone.
        let mut late = rep();
        for s in &saved {
            late.restore(s, 200);
        }
        assert!(!late.is_graylisted(&gray, 200));
        assert_eq!(late.score(&bad).invalid_signatures, 1);
    }

    #[test]
    fn invalid_signatures_at_below_above_the_ban_threshold() {
        let mut r = rep();
        let p = PeerId::from("p");
        for _ in 0..9 {
            r.record_invalid_signature(&p, 5);
        }
        assert!(r.is_allowed(&p, 5));
        assert_eq!(r.score(&p).invalid_signatures, 9);
        assert!(r.drain_events().is_empty());
        // The 10th bans.
        r.record_invalid_signature(&p, 6);
        assert!(r.is_blacklisted(&p));
        assert_eq!(
            r.check_allowed(&p, 6),
            Err(Violation::Blacklisted {
                reason: "invalid-signatures".into()
            })
        );
        assert_eq!(
            r.drain_events(),
            vec![
                SecurityEvent::PeerBlacklisted {
                    peer: p.clone(),
                    reason: BlacklistReason::InvalidSignatures
                },
                SecurityEvent::PeerShouldBan {
                    peer: p.clone(),
                    reason: BlacklistReason::InvalidSignatures
                },
            ]
        );
        // The 11th changes nothing more.
        r.record_invalid_signature(&p, 7);
        assert!(r.drain_events().is_empty());
        assert_eq!(r.score(&p).score, MIN_SCORE);
    }

    #[test]
    fn rate_limit_violations_graylist_at_threshold() {
        let mut r = rep();
        let p = PeerId::from("p");
        for _ in 0..9 {
            r.penalize(&p, Penalty::RateLimit, 100);
        }
        assert!(!r.is_graylisted(&p, 100));
        r.penalize(&p, Penalty::RateLimit, 100);
        let until = 100 + 3_600_000;
        assert_eq!(
            r.drain_events(),
            vec![SecurityEvent::PeerGraylisted {
                peer: p.clone(),
                duration_ms: 3_600_000,
                until
            }]
        );
        // Graylisting ends exactly at `until`.
        assert_eq!(
            r.check_allowed(&p, until - 1),
            Err(Violation::Graylisted { until })
        );
        assert!(r.is_graylisted(&p, until - 1));
        assert!(!r.is_graylisted(&p, until));
        assert!(r.is_allowed(&p, until + 1));
        assert_eq!(r.graylisted_peers(until - 1), vec![(p.clone(), until)]);
        assert_eq!(r.graylist_len(until), 0);
        // The next violation re-graylists.
        r.penalize(&p, Penalty::RateLimit, until + 1);
        assert!(r.is_graylisted(&p, until + 2));
        r.prune(until + 2 + 3_600_000, 86_400_000);
        assert_eq!(r.graylist_len(0), 0);
    }

    #[test]
    fn spam_blacklists_at_threshold() {
        let mut r = rep();
        let p = PeerId::from("p");
        for _ in 0..49 {
            r.penalize(&p, Penalty::Spam, 1);
        }
        assert!(r.is_allowed(&p, 1));
        r.penalize(&p, Penalty::Spam, 1);
        assert_eq!(
            r.blacklist_entry(&p).map(|e| e.reason.clone()),
            Some(BlacklistReason::Spam)
        );
    }

    #[test]
    fn manual_blacklist_and_unblacklist() {
        let mut r = rep();
        let p = PeerId::from("12D3KooW");
        r.penalize(&p, Penalty::InvalidSignature, 1);
        r.blacklist_peer(&p, "manual-ban", 2);
        assert_eq!(
            r.check_allowed(&p, 2),
            Err(Violation::Blacklisted {
                reason: "manual-ban".into()
            })
        );
        assert!(r.blacklist_entry(&p).is_some_and(BlacklistEntry::is_manual));
        assert!(r.unblacklist_peer(&p));
        assert!(!r.unblacklist_peer(&p));
        assert!(r.is_allowed(&p, 3));
        assert!(r.score(&p).is_clean());
        let names: Vec<_> = r.drain_events().iter().map(SecurityEvent::name).collect();
        assert_eq!(names, ["peer:blacklisted", "peer:unblacklisted"]);
    }

    #[test]
    fn score_is_clamped_and_rewarded() {
        let mut r = rep();
        let p = PeerId::from("p");
        assert_eq!(r.score(&p).score, INITIAL_SCORE);
        for _ in 0..80 {
            r.record_session_completed(&p, 1);
        }
        assert_eq!(r.score(&p).score, MAX_SCORE);
        assert!(r.is_reputable(&p, 100, 1));
        r.penalize(&p, Penalty::RateLimit, 2);
        assert_eq!(r.score(&p).score, 95);
        assert!(!r.is_reputable(&p, 100, 2));
    }

    #[test]
    fn blacklist_is_bounded_and_keeps_manual_entries() {
        let mut r = Reputation::new(&SecurityConfig {
            max_blacklist_size: 2,
            max_invalid_signatures_per_peer: 1,
            ..SecurityConfig::default()
        });
        r.blacklist_peer(&PeerId::from("m"), "operator", 0);
        r.record_invalid_signature(&PeerId::from("a"), 1);
        r.record_invalid_signature(&PeerId::from("b"), 2);
        // "a" (oldest automatic) made room for "b"; "m" stays.
        assert!(r.is_blacklisted(&PeerId::from("m")));
        assert!(!r.is_blacklisted(&PeerId::from("a")));
        assert!(r.is_blacklisted(&PeerId::from("b")));
        r.blacklist_peer(&PeerId::from("n"), "operator", 3);
        r.blacklist_peer(&PeerId::from("o"), "operator", 4);
        assert_eq!(r.blacklist_len(), 2);
        // Full of manual entries: an automatic one is not stored, but still
        // raises should-ban.
        r.drain_events();
        r.record_invalid_signature(&PeerId::from("c"), 5);
        assert!(!r.is_blacklisted(&PeerId::from("c")));
        assert!(
            r.drain_events()
                .iter()
                .any(|e| e.name() == "peer:should-ban")
        );
    }
}
