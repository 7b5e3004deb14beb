//! Time as milliseconds since the Unix epoch, and clocks that supply it.
//!
//! Every check in this crate takes `now` as an argument; nothing here reads
//! the system clock on its own. [`Clock`] is for the layer above, which reads
//! one clock and passes its value down; [`ManualClock`] drives tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (what lotus-sdk's `Date.now()` returns).
pub type Millis = u64;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> Millis;
}

/// The system wall clock. A clock set before 1970 reads 0; one beyond
/// `u64::MAX` milliseconds reads `u64::MAX`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to. Clones share the same time, so a
/// test can hold one handle and give another to the code under test.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Millis) -> Self {
        Self(Arc::new(AtomicU64::new(start)))
    }

    /// Sets the time.
    pub fn set(&self, now: Millis) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `by` (saturating) and returns the new time.
    pub fn advance(&self, by: Millis) -> Millis {
        let mut current = self.0.load(Ordering::SeqCst);
        loop {
            let next = current.saturating_add(by);
            match self
                .0
                .compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(actual) => current = actual,
            }
        }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_ms(&self) -> Millis {
        (**self).now_ms()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now_ms(&self) -> Millis {
        (**self).now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_and_saturates() {
        let clock = ManualClock::new(1_000);
        let handle = clock.clone();
        assert_eq!(handle.advance(500), 1_500);
        assert_eq!(clock.now_ms(), 1_500);
        clock.set(u64::MAX - 1);
        assert_eq!(handle.advance(10), u64::MAX);
        let shared: Arc<dyn Clock> = Arc::new(clock);
        assert_eq!(shared.now_ms(), u64::MAX);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }
}
