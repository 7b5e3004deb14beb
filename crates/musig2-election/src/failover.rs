//! A timer-free coordinator failover state machine.

use musig2_core::PublicKey;

use crate::backup::coordinator_priority_list;
use crate::error::ElectionError;
use crate::method::ElectionMethod;

/// What [`Failover::coordinator_failed`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FailoverStep {
    /// The next backup takes over: `coordinator` is its sorted index and
    /// `attempt` the 1-based attempt number it starts (2 for the first backup).
    Next {
        /// Sorted index of the new coordinator.
        coordinator: usize,
        /// 1-based number of the attempt now under way.
        attempt: usize,
    },
    /// Every coordinator in the priority list has failed; `attempts` is how
    /// many were tried (the list's length). Manual intervention is needed.
    Exhausted {
        /// How many coordinators were tried.
        attempts: usize,
    },
    /// The broadcast was already confirmed; the failure report (typically a
    /// timeout that raced with the confirmation) is ignored.
    AlreadyConfirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
enum State {
    Active,
    Confirmed,
    Exhausted,
}

/// Who is responsible for broadcasting, after how many failures.
///
/// It holds the priority list (sorted signer indexes, from
/// [`coordinator_priority_list`]) and the current attempt. It has no timers:
/// the coordinator layer decides when a coordinator has failed (for example
/// after lotus-sdk's 5-minute broadcast timeout) and calls
/// [`coordinator_failed`](Self::coordinator_failed). With `N` entries there are
/// `N` attempts in all, so up to `N − 1` coordinator failures are survived.
///
/// Every participant that builds it from the same signer set and method
/// computes the same coordinator for every attempt, whatever order it received
/// the keys in (proven by the `failover_agrees_across_input_orders` proptest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Failover {
    priority: Vec<usize>,
    position: usize,
    state: State,
}

impl Failover {
    /// A failover over `priority_list` (sorted signer indexes, primary first).
    /// An empty list is exhausted from the start, after 0 attempts.
    pub fn new(priority_list: Vec<usize>) -> Self {
        let state = if priority_list.is_empty() {
            State::Exhausted
        } else {
            State::Active
        };
        Self {
            priority: priority_list,
            position: 0,
            state,
        }
    }

    /// The failover of an election: `Failover::new(coordinator_priority_list(signers, method))`.
    pub fn for_signers(
        signers: &[PublicKey],
        method: ElectionMethod,
    ) -> Result<Self, ElectionError> {
        if signers.is_empty() {
            return Err(ElectionError::NoSigners);
        }
        Ok(Self::new(coordinator_priority_list(signers, method)))
    }

    /// The priority list, primary first.
    pub fn priority_list(&self) -> &[usize] {
        &self.priority
    }

    /// Sorted index of the coordinator now responsible for broadcasting
    /// (after confirmation: the one that broadcast); `None` once exhausted.
    pub fn current(&self) -> Option<usize> {
        match self.state {
            State::Exhausted => None,
            State::Active | State::Confirmed => self.priority.get(self.position).copied(),
        }
    }

    /// Whether the signer at `sorted_index` is the current coordinator.
    pub fn is_current(&self, sorted_index: usize) -> bool {
        self.current() == Some(sorted_index)
    }

    /// The 1-based number of the current attempt; once exhausted, the number
    /// of attempts made (the list's length).
    pub fn attempt(&self) -> usize {
        match self.state {
            State::Exhausted => self.priority.len(),
            State::Active | State::Confirmed => self.position.saturating_add(1),
        }
    }

    /// How many attempts there are in all (the priority list's length).
    pub fn max_attempts(&self) -> usize {
        self.priority.len()
    }

    /// The position of `sorted_index` in the priority list (0 = primary,
    /// 1 = first backup, …), or `None` if it is not in the list.
    pub fn priority_of(&self, sorted_index: usize) -> Option<usize> {
        self.priority.iter().position(|&i| i == sorted_index)
    }

    /// Records that the current coordinator failed to broadcast and moves to
    /// the next backup.
    ///
    /// Repeated calls after exhaustion keep returning
    /// [`FailoverStep::Exhausted`]; calls after
    /// [`broadcast_confirmed`](Self::broadcast_confirmed) return
    /// [`FailoverStep::AlreadyConfirmed`] and change nothing.
    pub fn coordinator_failed(&mut self) -> FailoverStep {
        match self.state {
            State::Confirmed => FailoverStep::AlreadyConfirmed,
            State::Exhausted => FailoverStep::Exhausted {
                attempts: self.priority.len(),
            },
            State::Active => {
                let next = self.position.saturating_add(1);
                match self.priority.get(next) {
                    Some(&coordinator) => {
                        self.position = next;
                        FailoverStep::Next {
                            coordinator,
                            attempt: next.saturating_add(1),
                        }
                    }
                    None => {
                        self.state = State::Exhausted;
                        FailoverStep::Exhausted {
                            attempts: self.priority.len(),
                        }
                    }
                }
            }
        }
    }

    /// Records that the broadcast succeeded; failover ends. Returns `true` if
    /// this call ended it (`false` if it was already confirmed). A confirmation
    /// after exhaustion (a late broadcast seen on chain) is accepted too.
    pub fn broadcast_confirmed(&mut self) -> bool {
        let changed = self.state != State::Confirmed;
        self.state = State::Confirmed;
        changed
    }

    /// Whether the broadcast was confirmed.
    pub fn is_confirmed(&self) -> bool {
        self.state == State::Confirmed
    }

    /// Whether every coordinator failed.
    pub fn is_exhausted(&self) -> bool {
        self.state == State::Exhausted
    }

    /// Whether failover is still running (neither confirmed nor exhausted).
    pub fn is_active(&self) -> bool {
        self.state == State::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_the_list_then_exhausts() {
        let mut f = Failover::new(vec![2, 0, 1]);
        assert_eq!(
            (f.current(), f.attempt(), f.max_attempts()),
            (Some(2), 1, 3)
        );
        assert!(f.is_active() && f.is_current(2) && !f.is_current(0));
        assert_eq!(
            f.coordinator_failed(),
            FailoverStep::Next {
                coordinator: 0,
                attempt: 2
            }
        );
        assert_eq!(
            f.coordinator_failed(),
            FailoverStep::Next {
                coordinator: 1,
                attempt: 3
            }
        );
        assert_eq!((f.current(), f.attempt()), (Some(1), 3));
        // N − 1 = 2 failures survived; the third exhausts.
        assert_eq!(
            f.coordinator_failed(),
            FailoverStep::Exhausted { attempts: 3 }
        );
        assert!(f.is_exhausted() && !f.is_active());
        assert_eq!((f.current(), f.attempt()), (None, 3));
        assert_eq!(
            f.coordinator_failed(),
            FailoverStep::Exhausted { attempts: 3 }
        );
        assert_eq!(f.priority_of(0), Some(1));
        assert_eq!(f.priority_of(7), None);
    }

    #[test]
    fn confirmation_ends_failover() {
        let mut f = Failover::new(vec![0, 1, 2]);
        assert!(matches!(f.coordinator_failed(), FailoverStep::Next { .. }));
        assert!(f.broadcast_confirmed());
        assert!(!f.broadcast_confirmed());
        assert!(f.is_confirmed());
        assert_eq!(f.coordinator_failed(), FailoverStep::AlreadyConfirmed);
        assert_eq!((f.current(), f.attempt()), (Some(1), 2));
    }

    #[test]
    fn confirmation_after_exhaustion_is_recorded() {
        let mut f = Failover::new(vec![0]);
        assert_eq!(
            f.coordinator_failed(),
            FailoverStep::Exhausted { attempts: 1 }
        );
        assert!(f.broadcast_confirmed());
        assert!(f.is_confirmed() && !f.is_exhausted());
    }

    #[test]
    fn empty_list_is_exhausted_at_once() {
        let mut f = Failover::new(Vec::new());
        assert!(f.is_exhausted());
        assert_eq!((f.current(), f.attempt()), (None, 0));
        assert_eq!(
            f.coordinator_failed(),
            FailoverStep::Exhausted { attempts: 0 }
        );
        assert_eq!(
            Failover::for_signers(&[], ElectionMethod::Lexicographic),
            Err(ElectionError::NoSigners)
        );
    }

    #[test]
    fn deserialized_garbage_does_not_panic() {
        let f: Failover =
            serde_json::from_str(r#"{"priority":[1],"position":9,"state":"Active"}"#).unwrap();
        let mut max: Failover = serde_json::from_str(&format!(
            r#"{{"priority":[1],"position":{},"state":"Active"}}"#,
            usize::MAX
        ))
        .unwrap();
        assert_eq!(max.attempt(), usize::MAX);
        assert_eq!(
            max.coordinator_failed(),
            FailoverStep::Exhausted { attempts: 1 }
        );
        let mut f2 = f.clone();
        assert_eq!(f.current(), None);
        assert_eq!(
            f2.coordinator_failed(),
            FailoverStep::Exhausted { attempts: 1 }
        );
    }
}
