//! The fair queue of inbound direct messages waiting for the application.
//!
//! Each peer has its own queue, bounded by `per_peer`; all queues together
//! are bounded by `capacity`. A message that does not fit is refused (the
//! sender gets `Busy`) and counted by reason; a peer over its share is refused
//! while the others are still served. Messages leave in round-robin order
//! across peers, one at a time, so a peer that floods waits behind everybody
//! else instead of in front of them. A blocked peer's waiting messages are
//! dropped and its later ones refused.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use libp2p::PeerId;
use tokio::sync::{Notify, mpsc};

use crate::node::NetEvent;

/// What became of a message offered to the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Queued for the application.
    Queued,
    /// The sender already has `per_peer` messages waiting.
    PeerFull,
    /// All peers together have `capacity` messages waiting.
    Full,
    /// The sender is blocked.
    Blocked,
    /// The inbox is closed (the node is stopping).
    Closed,
}

#[derive(Default)]
struct State {
    queues: HashMap<PeerId, VecDeque<Vec<u8>>>,
    /// Peers with a non-empty queue, in serving order.
    ring: VecDeque<PeerId>,
    len: usize,
    blocked: HashSet<PeerId>,
    closed: bool,
}

/// Per-peer queues of inbound direct messages.
pub(crate) struct Inbox {
    state: Mutex<State>,
    ready: Notify,
    per_peer: usize,
    capacity: usize,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("per_peer", &self.per_peer)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// An inbox holding at most `per_peer` messages of one peer and
    /// `capacity` in all (each at least 1).
    pub(crate) fn new(per_peer: usize, capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            ready: Notify::new(),
            per_peer: per_peer.max(1),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Offers one message from `peer`.
    pub(crate) fn push(&self, peer: PeerId, payload: Vec<u8>) -> Admit {
        let mut state = self.lock();
        if state.closed {
            return Admit::Closed;
        }
        if state.blocked.contains(&peer) {
            return Admit::Blocked;
        }
        let waiting = state.queues.get(&peer).map_or(0, VecDeque::len);
        if waiting >= self.per_peer {
            return Admit::PeerFull;
        }
        if state.len >= self.capacity {
            return Admit::Full;
        }
        if waiting == 0 {
            state.ring.push_back(peer);
        }
        state.queues.entry(peer).or_default().push_back(payload);
        state.len += 1;
        drop(state);
        self.ready.notify_one();
        Admit::Queued
    }

    /// The next message, taking peers in turn; `None` when nothing waits.
    pub(crate) fn pop(&self) -> Option<(PeerId, Vec<u8>)> {
        let mut state = self.lock();
        while let Some(peer) = state.ring.pop_front() {
            let Some(queue) = state.queues.get_mut(&peer) else {
                continue;
            };
            let Some(payload) = queue.pop_front() else {
                state.queues.remove(&peer);
                continue;
            };
            if queue.is_empty() {
                state.queues.remove(&peer);
            } else {
                state.ring.push_back(peer);
            }
            state.len = state.len.saturating_sub(1);
            return Some((peer, payload));
        }
        None
    }

    /// Waits for the next message; `None` once the inbox is closed and empty.
    pub(crate) async fn next(&self) -> Option<(PeerId, Vec<u8>)> {
        loop {
            if let Some(message) = self.pop() {
                return Some(message);
            }
            if self.lock().closed {
                return None;
            }
            self.ready.notified().await;
        }
    }

    /// Refuses `peer`'s messages from now on and drops those waiting;
    /// returns how many were dropped.
    pub(crate) fn block(&self, peer: PeerId) -> usize {
        let mut state = self.lock();
        state.blocked.insert(peer);
        let dropped = state.queues.remove(&peer).map_or(0, |q| q.len());
        state.ring.retain(|p| *p != peer);
        state.len = state.len.saturating_sub(dropped);
        dropped
    }

    /// Whether `peer` is blocked.
    pub(crate) fn is_blocked(&self, peer: &PeerId) -> bool {
        self.lock().blocked.contains(peer)
    }

    /// Accepts `peer`'s messages again.
    pub(crate) fn unblock(&self, peer: &PeerId) {
        self.lock().blocked.remove(peer);
    }

    /// Stops accepting messages; [`Inbox::next`] returns the rest, then `None`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Messages waiting, in all.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len
    }
}

/// Moves messages from the inbox to the application's event queue, taking a
/// slot in the queue first and choosing the message only then, so that the
/// peers' turns are decided when there is room. Ends when either side closes.
pub(crate) async fn forward(inbox: std::sync::Arc<Inbox>, events: mpsc::Sender<NetEvent>) {
    loop {
        let Ok(permit) = events.reserve().await else {
            inbox.close();
            return;
        };
        let Some((peer, payload)) = inbox.next().await else {
            return;
        };
        permit.send(NetEvent::Direct { peer, payload });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_over_its_share_is_refused_and_others_are_served() {
        let inbox = Inbox::new(2, 5);
        let (flooder, honest, third) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert_eq!(inbox.push(flooder, vec![1]), Admit::Queued);
        assert_eq!(inbox.push(flooder, vec![2]), Admit::Queued);
        assert_eq!(inbox.push(flooder, vec![3]), Admit::PeerFull);
        assert_eq!(inbox.push(honest, vec![10]), Admit::Queued);
        assert_eq!(inbox.push(honest, vec![11]), Admit::Queued);
        assert_eq!(inbox.push(third, vec![20]), Admit::Queued);
        // Five waiting: the global cap refuses the next, whoever sends it.
        assert_eq!(inbox.push(third, vec![21]), Admit::Full);
        // Peers take turns.
        let order: Vec<_> = std::iter::from_fn(|| inbox.pop()).collect();
        assert_eq!(
            order,
            vec![
                (flooder, vec![1]),
                (honest, vec![10]),
                (third, vec![20]),
                (flooder, vec![2]),
                (honest, vec![11]),
            ]
        );
        assert_eq!(inbox.len(), 0);
    }

    #[test]
    fn blocking_drops_the_waiting_messages_and_refuses_new_ones() {
        let inbox = Inbox::new(4, 16);
        let (bad, good) = (PeerId::random(), PeerId::random());
        for i in 0..3u8 {
            assert_eq!(inbox.push(bad, vec![i]), Admit::Queued);
        }
        assert_eq!(inbox.push(good, vec![9]), Admit::Queued);
        assert_eq!(inbox.block(bad), 3);
        assert_eq!(inbox.push(bad, vec![4]), Admit::Blocked);
        assert_eq!(inbox.pop(), Some((good, vec![9])));
        assert_eq!(inbox.pop(), None);
        inbox.unblock(&bad);
        assert_eq!(inbox.push(bad, vec![5]), Admit::Queued);
        assert_eq!(inbox.len(), 1);
    }

    #[tokio::test]
    async fn close_ends_the_forwarder_after_the_rest() {
        let inbox = std::sync::Arc::new(Inbox::new(4, 16));
        let (events, mut app) = mpsc::channel(16);
        let peer = PeerId::random();
        assert_eq!(inbox.push(peer, vec![1]), Admit::Queued);
        let task = tokio::spawn(forward(inbox.clone(), events));
        inbox.close();
        assert_eq!(inbox.push(peer, vec![2]), Admit::Closed);
        task.await.unwrap();
        assert!(
            matches!(app.recv().await, Some(NetEvent::Direct { payload, .. }) if payload == [1])
        );
        assert!(app.recv().await.is_none());
    }
}
