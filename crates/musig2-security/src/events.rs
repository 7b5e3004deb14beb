//! Security events, queued for the coordinator to act on.

use std::collections::VecDeque;

use crate::ids::PeerId;
use crate::reputation::BlacklistReason;
use crate::time::Millis;

/// Something the layer above should act on (disconnect, ban, alert). Names
/// follow lotus-sdk's `SecurityManager` events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum SecurityEvent {
    /// `peer:blacklisted`: the peer is refused from now on.
    PeerBlacklisted {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: BlacklistReason,
    },
    /// `peer:graylisted`: the peer is refused for `duration_ms`.
    PeerGraylisted {
        /// The peer.
        peer: PeerId,
        /// How long.
        duration_ms: Millis,
        /// Until when.
        until: Millis,
    },
    /// `peer:should-ban`: the transport should disconnect and ban the peer
    /// (emitted with every automatic blacklisting).
    PeerShouldBan {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: BlacklistReason,
    },
    /// `peer:unblacklisted`: an operator lifted a blacklisting.
    PeerUnblacklisted {
        /// The peer.
        peer: PeerId,
    },
}

impl SecurityEvent {
    /// lotus-sdk's event name (`peer:blacklisted`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::PeerBlacklisted { .. } => "peer:blacklisted",
            Self::PeerGraylisted { .. } => "peer:graylisted",
            Self::PeerShouldBan { .. } => "peer:should-ban",
            Self::PeerUnblacklisted { .. } => "peer:unblacklisted",
        }
    }

    /// The peer concerned.
    pub fn peer(&self) -> &PeerId {
        match self {
            Self::PeerBlacklisted { peer, .. }
            | Self::PeerGraylisted { peer, .. }
            | Self::PeerShouldBan { peer, .. }
            | Self::PeerUnblacklisted { peer } => peer,
        }
    }
}

/// A bounded FIFO of events. When full, pushing drops the **oldest** event and
/// counts it: the blacklist and graylist themselves stay authoritative (every
/// check consults them), so a lost event delays a disconnect but never lets a
/// banned peer through.
#[derive(Debug, Clone)]
pub(crate) struct EventQueue {
    queue: VecDeque<SecurityEvent>,
    cap: usize,
    dropped: u64,
}

impl EventQueue {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, event: SecurityEvent) {
        if self.queue.len() >= self.cap {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(event);
    }

    pub(crate) fn drain(&mut self) -> Vec<SecurityEvent> {
        self.queue.drain(..).collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u32) -> SecurityEvent {
        SecurityEvent::PeerUnblacklisted {
            peer: PeerId::from(format!("p{i}")),
        }
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts() {
        let mut q = EventQueue::new(3);
        for i in 0..5 {
            q.push(ev(i));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.drain(), vec![ev(2), ev(3), ev(4)]);
        assert_eq!(q.len(), 0);
        assert_eq!(ev(0).name(), "peer:unblacklisted");
        assert_eq!(ev(0).peer(), "p0");
    }
}
