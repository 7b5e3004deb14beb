//! When to look for more peers.
//!
//! A node with fewer connections than `min_connections` runs a DHT bootstrap
//! (which dials the closest peers it learns of). Every open connection counts
//! towards the minimum, co-signers' session connections included: they are
//! peers too. On a network smaller than the minimum a bootstrap cannot help,
//! and repeating it every few seconds floods every peer with `FIND_NODE`
//! requests (measured: it slowed 10-signer sessions by a third). So while
//! bootstraps find nobody new, the wait between them doubles up to a cap; it
//! starts again from the base when a bootstrap helped or a peer left.

use std::time::{Duration, Instant};

/// The bootstrap schedule of one node. Time is passed in.
#[derive(Debug, Clone)]
pub(crate) struct Refill {
    base: Duration,
    cap: Duration,
    backoff: Duration,
    next_at: Instant,
    /// Connections when the last bootstrap started (`None`: none since the
    /// schedule was last reset).
    before_last: Option<usize>,
}

impl Refill {
    /// A schedule whose first bootstrap may run at once.
    pub(crate) fn new(base: Duration, cap: Duration, now: Instant) -> Self {
        Self {
            base,
            cap: cap.max(base),
            backoff: base,
            next_at: now,
            before_last: None,
        }
    }

    /// Called on every maintenance tick: whether to bootstrap now.
    pub(crate) fn due(&mut self, connections: usize, min_connections: usize, now: Instant) -> bool {
        if connections >= min_connections {
            self.reset(now);
            return false;
        }
        if now < self.next_at {
            return false;
        }
        self.backoff = match self.before_last {
            // The last bootstrap brought nobody new: wait longer.
            Some(before) if connections <= before => self.backoff.saturating_mul(2).min(self.cap),
            _ => self.base,
        };
        self.before_last = Some(connections);
        self.next_at = now + self.backoff;
        true
    }

    /// A peer left: the next tick may bootstrap again.
    pub(crate) fn on_disconnect(&mut self, now: Instant) {
        self.reset(now);
    }

    /// The current wait between two bootstraps.
    #[cfg(test)]
    pub(crate) fn backoff(&self) -> Duration {
        self.backoff
    }

    fn reset(&mut self, now: Instant) {
        self.backoff = self.base;
        self.next_at = now;
        self.before_last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(5);
    const CAP: Duration = Duration::from_secs(300);

    /// Runs ticks every `BASE` with a constant connection count; returns the
    /// ticks (0-based) at which a bootstrap ran.
    fn bootstrap_ticks(
        refill: &mut Refill,
        start: Instant,
        connections: usize,
        ticks: u32,
    ) -> Vec<u32> {
        (0..ticks)
            .filter(|t| refill.due(connections, 10, start + BASE * *t))
            .collect()
    }

    #[test]
    fn enough_connections_never_bootstrap() {
        let start = Instant::now();
        let mut refill = Refill::new(BASE, CAP, start);
        assert!(bootstrap_ticks(&mut refill, start, 10, 100).is_empty());
        assert!(bootstrap_ticks(&mut refill, start, 50, 100).is_empty());
    }

    #[test]
    fn fruitless_bootstraps_back_off_exponentially_up_to_the_cap() {
        let start = Instant::now();
        let mut refill = Refill::new(BASE, CAP, start);
        // Waits 5, 10, 20, 40, 80, 160, 300, 300 s: ticks 0, 1, 3, 7, 15, 31, 63, 123.
        let ticks = bootstrap_ticks(&mut refill, start, 3, 124);
        assert_eq!(ticks, vec![0, 1, 3, 7, 15, 31, 63, 123]);
        assert_eq!(refill.backoff(), CAP);
    }

    #[test]
    fn a_bootstrap_that_found_peers_keeps_the_base_interval() {
        let start = Instant::now();
        let mut refill = Refill::new(BASE, CAP, start);
        for (tick, connections) in (0u32..).zip([1, 2, 3, 4, 5]) {
            assert!(
                refill.due(connections, 10, start + BASE * tick),
                "tick {tick}"
            );
            assert_eq!(refill.backoff(), BASE);
        }
    }

    #[test]
    fn a_disconnect_or_reaching_the_minimum_resets_the_backoff() {
        let start = Instant::now();
        let mut refill = Refill::new(BASE, CAP, start);
        let _ = bootstrap_ticks(&mut refill, start, 3, 40);
        assert!(refill.backoff() > BASE);
        let later = start + BASE * 41;
        assert!(!refill.due(3, 10, later), "still backing off");
        refill.on_disconnect(later);
        assert!(refill.due(2, 10, later), "a peer left: look again at once");
        assert_eq!(refill.backoff(), BASE);

        let _ = bootstrap_ticks(&mut refill, later, 2, 40);
        assert!(refill.backoff() > BASE);
        assert!(!refill.due(10, 10, later + BASE * 41));
        assert!(
            refill.due(9, 10, later + BASE * 42),
            "fell below the minimum again"
        );
        assert_eq!(refill.backoff(), BASE);
    }
}
