//! Reputation: a score from 0 to 100 with signing statistics.
//!
//! * a new identity starts at [`INITIAL_SCORE`] (50);
//! * a completed signing adds [`SUCCESS_REWARD`] (2), capped at [`MAX_SCORE`] (100);
//! * a failed signing subtracts [`FAILURE_PENALTY`] (5), floored at 0;
//! * reaching 0 bans the identity (the manager records the ban).
//!
//! Counters saturate instead of overflowing. The average response time is kept
//! exactly, as a sum over completed signings divided by their number.

use serde::{Deserialize, Serialize};

/// Score of a new identity.
pub const INITIAL_SCORE: u8 = 50;
/// Highest score.
pub const MAX_SCORE: u8 = 100;
/// Points for a completed signing.
pub const SUCCESS_REWARD: u8 = 2;
/// Points lost for a failed signing.
pub const FAILURE_PENALTY: u8 = 5;

/// An identity's reputation and statistics. Survives key rotation: it belongs
/// to the identity (the burn), not to a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reputation {
    score: u8,
    completed_signings: u64,
    failed_signings: u64,
    total_signings: u64,
    total_response_time_ms: u64,
    total_burned_sats: u64,
    first_seen_ms: u64,
    last_updated_ms: u64,
}

impl Reputation {
    /// A new reputation for an identity that burned `burned_sats`, first seen at `now_ms`.
    pub fn new(burned_sats: u64, now_ms: u64) -> Self {
        Self {
            score: INITIAL_SCORE,
            completed_signings: 0,
            failed_signings: 0,
            total_signings: 0,
            total_response_time_ms: 0,
            total_burned_sats: burned_sats,
            first_seen_ms: now_ms,
            last_updated_ms: now_ms,
        }
    }

    /// The score, 0 to 100.
    pub fn score(&self) -> u8 {
        self.score
    }

    /// Completed signings.
    pub fn completed_signings(&self) -> u64 {
        self.completed_signings
    }

    /// Failed signings.
    pub fn failed_signings(&self) -> u64 {
        self.failed_signings
    }

    /// All signings (completed + failed).
    pub fn total_signings(&self) -> u64 {
        self.total_signings
    }

    /// Mean response time of completed signings in ms (0 before the first).
    pub fn average_response_time_ms(&self) -> f64 {
        if self.completed_signings == 0 {
            0.0
        } else {
            self.total_response_time_ms as f64 / self.completed_signings as f64
        }
    }

    /// Satoshis burned for this identity (registration plus rotations).
    pub fn total_burned_sats(&self) -> u64 {
        self.total_burned_sats
    }

    /// When the identity was registered (ms since the epoch).
    pub fn first_seen_ms(&self) -> u64 {
        self.first_seen_ms
    }

    /// Last change (ms since the epoch).
    pub fn last_updated_ms(&self) -> u64 {
        self.last_updated_ms
    }

    /// Records a completed signing that took `response_time_ms`.
    pub fn record_success(&mut self, response_time_ms: u64, now_ms: u64) {
        self.score = self.score.saturating_add(SUCCESS_REWARD).min(MAX_SCORE);
        self.completed_signings = self.completed_signings.saturating_add(1);
        self.total_signings = self.total_signings.saturating_add(1);
        self.total_response_time_ms = self.total_response_time_ms.saturating_add(response_time_ms);
        self.last_updated_ms = now_ms;
    }

    /// Records a failed signing; returns `true` if the score is now 0.
    pub fn record_failure(&mut self, now_ms: u64) -> bool {
        self.score = self.score.saturating_sub(FAILURE_PENALTY);
        self.failed_signings = self.failed_signings.saturating_add(1);
        self.total_signings = self.total_signings.saturating_add(1);
        self.last_updated_ms = now_ms;
        self.score == 0
    }

    /// Adds a further burn (a key rotation).
    pub fn add_burn(&mut self, sats: u64, now_ms: u64) {
        self.total_burned_sats = self.total_burned_sats.saturating_add(sats);
        self.last_updated_ms = now_ms;
    }

    /// Invariants of a stored record.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        if self.score > MAX_SCORE {
            return Err("score above 100");
        }
        if self.completed_signings.saturating_add(self.failed_signings) != self.total_signings
            && self.total_signings != u64::MAX
        {
            return Err("signing counters disagree");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_fifty() {
        let r = Reputation::new(7, 100);
        assert_eq!(r.score(), 50);
        assert_eq!(r.total_burned_sats(), 7);
        assert_eq!(r.first_seen_ms(), 100);
        assert_eq!(r.last_updated_ms(), 100);
        assert_eq!(r.average_response_time_ms(), 0.0);
    }

    #[test]
    fn success_caps_at_100() {
        let mut r = Reputation::new(0, 0);
        for i in 0..24 {
            r.record_success(10, i);
        }
        assert_eq!(r.score(), 98);
        r.record_success(10, 24);
        assert_eq!(r.score(), 100);
        r.record_success(40, 25);
        assert_eq!(r.score(), 100);
        assert_eq!(r.completed_signings(), 26);
        assert_eq!(r.total_signings(), 26);
        assert_eq!(r.last_updated_ms(), 25);
        assert!((r.average_response_time_ms() - (25.0 * 10.0 + 40.0) / 26.0).abs() < 1e-9);
    }

    #[test]
    fn failure_floors_at_zero_and_reports_it() {
        let mut r = Reputation::new(0, 0);
        for _ in 0..9 {
            assert!(!r.record_failure(1));
        }
        assert_eq!(r.score(), 5);
        assert!(r.record_failure(2));
        assert_eq!(r.score(), 0);
        assert!(r.record_failure(3));
        assert_eq!(r.score(), 0);
        assert_eq!(r.failed_signings(), 11);
        assert_eq!(r.total_signings(), 11);
    }

    #[test]
    fn odd_steps_reach_zero_exactly() {
        // 50 + 2 = 52 → 47, 42, …, 7, 2, 0 (floored).
        let mut r = Reputation::new(0, 0);
        r.record_success(1, 0);
        let mut failures = 0;
        while !r.record_failure(0) {
            failures += 1;
        }
        assert_eq!(failures, 10);
        assert_eq!(r.score(), 0);
        assert!(r.check().is_ok());
    }

    #[test]
    fn saturating_counters() {
        let mut r = Reputation::new(u64::MAX, 0);
        r.add_burn(1, 1);
        assert_eq!(r.total_burned_sats(), u64::MAX);
        r.record_success(u64::MAX, 1);
        r.record_success(u64::MAX, 1);
        assert_eq!(r.average_response_time_ms(), u64::MAX as f64 / 2.0);
    }
}
