//! Replay protection: per (peer, session), strictly increasing sequence
//! numbers with a bounded gap (lotus-sdk `_validateMessageSequence`).
//!
//! A sender starts at 0 ("nothing seen"), so its first message may carry any
//! sequence number in `1..=max_gap`. Each accepted number `s` must satisfy
//! `last < s ≤ last + max_gap`; repeats and older numbers are replays, and a
//! jump beyond `max_gap` is rejected as suspicious (it would let a peer burn
//! the sequence space or hide a gap of dropped messages).

use crate::rule::Violation;

/// One sender's last accepted sequence number in one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SequenceState {
    last: u64,
}

impl SequenceState {
    /// The last accepted sequence number (0 before any).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Checks `sequence` without recording it.
    pub fn check(&self, sequence: u64, max_gap: u64) -> Result<(), Violation> {
        if sequence <= self.last {
            return Err(Violation::Replay {
                sequence,
                last: self.last,
            });
        }
        if sequence - self.last > max_gap {
            return Err(Violation::SequenceGap {
                sequence,
                last: self.last,
                max_gap,
            });
        }
        Ok(())
    }

    /// Checks `sequence` and records it if it passes.
    pub fn accept(&mut self, sequence: u64, max_gap: u64) -> Result<(), Violation> {
        self.check(sequence, max_gap)?;
        self.last = sequence;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_at_below_and_above_the_limit() {
        // From the start (last = 0): 100 is a gap of exactly 100.
        assert_eq!(SequenceState::default().check(99, 100), Ok(()));
        assert_eq!(SequenceState::default().check(100, 100), Ok(()));
        assert_eq!(
            SequenceState::default().check(101, 100),
            Err(Violation::SequenceGap {
                sequence: 101,
                last: 0,
                max_gap: 100
            })
        );
        let mut s = SequenceState::default();
        s.accept(7, 100).unwrap();
        assert_eq!(s.check(107, 100), Ok(()));
        assert!(s.check(108, 100).is_err());
        assert_eq!(
            s.check(u64::MAX, 100).map_err(|v| v.rule()),
            Err(crate::Rule::SequenceGap)
        );
    }

    #[test]
    fn repeats_and_older_numbers_are_replays() {
        let mut s = SequenceState::default();
        assert_eq!(
            s.check(0, 100),
            Err(Violation::Replay {
                sequence: 0,
                last: 0
            })
        );
        s.accept(5, 100).unwrap();
        assert_eq!(
            s.accept(5, 100),
            Err(Violation::Replay {
                sequence: 5,
                last: 5
            })
        );
        assert!(s.accept(4, 100).is_err());
        assert_eq!(s.accept(6, 100), Ok(()));
        assert_eq!(s.last(), 6);
    }
}
