//! Bounded address books: which addresses we know for which peer.
//!
//! Peers announce their own addresses (identify), the DHT reports more, and
//! the application adds those it learns from advertisements. All of that is
//! peer input, so a book keeps at most `per_peer` addresses per peer (the
//! first ones win) and at most `max_peers` peers. When it is full, the peer
//! disconnected longest ago is forgotten (if every peer is connected, the one
//! seen longest ago); the periodic [`AddressBook::prune`] forgets peers that
//! have not been connected for `ttl`. Time is passed in.
//!
//! Two books are used: the event loop's, which decides when to report
//! `PeerEvent::Discovered`/`Updated`, and the one [`Behaviour`] hands to the
//! swarm when it dials a peer by id.

use std::collections::HashMap;
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};

/// What [`AddressBook::set`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// The peer was not known.
    New(Vec<Multiaddr>),
    /// The peer's addresses changed.
    Updated(Vec<Multiaddr>),
}

#[derive(Debug)]
struct Entry {
    addrs: Vec<Multiaddr>,
    /// Open connections.
    connections: usize,
    /// When it was last added to, connected or disconnected.
    last_seen: Instant,
}

/// Addresses per peer, bounded per peer and in all.
#[derive(Debug)]
pub(crate) struct AddressBook {
    per_peer: usize,
    max_peers: usize,
    ttl: Duration,
    peers: HashMap<PeerId, Entry>,
    evicted: u64,
}

impl AddressBook {
    pub(crate) fn new(per_peer: usize, max_peers: usize, ttl: Duration) -> Self {
        Self {
            per_peer: per_peer.max(1),
            max_peers: max_peers.max(1),
            ttl,
            peers: HashMap::new(),
            evicted: 0,
        }
    }

    /// The entry of `peer`, made room for and created if needed.
    fn entry(&mut self, peer: PeerId, now: Instant) -> &mut Entry {
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.max_peers {
            self.evict_one();
        }
        let entry = self.peers.entry(peer).or_insert_with(|| Entry {
            addrs: Vec::new(),
            connections: 0,
            last_seen: now,
        });
        entry.last_seen = now;
        entry
    }

    fn evict_one(&mut self) {
        let victim = self
            .peers
            .iter()
            .min_by_key(|(_, e)| (e.connections > 0, e.last_seen))
            .map(|(p, _)| *p);
        if let Some(victim) = victim {
            self.peers.remove(&victim);
            self.evicted += 1;
        }
    }

    /// Replaces `peer`'s addresses with (the first `per_peer` of) `addrs`;
    /// returns what changed, if anything.
    pub(crate) fn set(
        &mut self,
        peer: PeerId,
        mut addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Option<Change> {
        addrs.dedup();
        addrs.truncate(self.per_peer);
        let known = self.peers.get(&peer).is_some_and(|e| !e.addrs.is_empty());
        let entry = self.entry(peer, now);
        if known && entry.addrs == addrs {
            return None;
        }
        entry.addrs.clone_from(&addrs);
        Some(if known {
            Change::Updated(addrs)
        } else {
            Change::New(addrs)
        })
    }

    /// Adds one address of `peer` (kept if there is room for it).
    pub(crate) fn add(&mut self, peer: PeerId, addr: Multiaddr, now: Instant) {
        let per_peer = self.per_peer;
        let entry = self.entry(peer, now);
        if entry.addrs.len() < per_peer && !entry.addrs.contains(&addr) {
            entry.addrs.push(addr);
        }
    }

    /// `peer`'s addresses.
    pub(crate) fn get(&self, peer: &PeerId) -> &[Multiaddr] {
        self.peers.get(peer).map_or(&[], |e| e.addrs.as_slice())
    }

    /// A connection to `peer` opened (the peer is then kept while it is
    /// connected, unless the book fills with connected peers).
    pub(crate) fn connected(&mut self, peer: &PeerId, now: Instant) {
        self.entry(*peer, now).connections += 1;
    }

    /// A connection to `peer` closed.
    pub(crate) fn disconnected(&mut self, peer: &PeerId, now: Instant) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.connections = entry.connections.saturating_sub(1);
            entry.last_seen = now;
        }
    }

    /// Forgets peers not connected for the time to live; returns how many.
    pub(crate) fn prune(&mut self, now: Instant) -> usize {
        let before = self.peers.len();
        let ttl = self.ttl;
        self.peers
            .retain(|_, e| e.connections > 0 || now.saturating_duration_since(e.last_seen) < ttl);
        before - self.peers.len()
    }

    /// Peers known.
    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Peers forgotten to make room, since the start.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// Hands the swarm the addresses the application gave
/// ([`crate::NetHandle::add_address`], [`crate::NetHandle::dial`]) and those
/// reported by other behaviours, when it dials a peer by id.
pub(crate) struct Behaviour {
    pub(crate) book: AddressBook,
}

impl Behaviour {
    pub(crate) fn new(book: AddressBook) -> Self {
        Self { book }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(peer.map_or_else(Vec::new, |p| self.book.get(&p).to_vec()))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        let now = Instant::now();
        match event {
            FromSwarm::NewExternalAddrOfPeer(new) => {
                self.book.add(new.peer_id, new.addr.clone(), now);
            }
            FromSwarm::ConnectionEstablished(c) => self.book.connected(&c.peer_id, now),
            FromSwarm::ConnectionClosed(c) => self.book.disconnected(&c.peer_id, now),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn addresses_per_peer_are_capped_and_changes_reported() {
        let now = Instant::now();
        let mut book = AddressBook::new(3, 10, Duration::from_secs(60));
        let peer = PeerId::random();
        let many: Vec<_> = (1..=100).map(addr).collect();
        assert_eq!(
            book.set(peer, many.clone(), now),
            Some(Change::New(many[..3].to_vec()))
        );
        assert_eq!(book.set(peer, many.clone(), now), None, "unchanged");
        assert_eq!(
            book.set(peer, vec![addr(7)], now),
            Some(Change::Updated(vec![addr(7)]))
        );
        for port in 200..300 {
            book.add(peer, addr(port), now);
        }
        assert_eq!(book.get(&peer), &[addr(7), addr(200), addr(201)]);
    }

    #[test]
    fn a_full_book_forgets_the_peer_disconnected_longest_ago() {
        let start = Instant::now();
        let mut book = AddressBook::new(2, 3, Duration::from_secs(3600));
        let peers: Vec<_> = (0..3).map(|_| PeerId::random()).collect();
        for (i, peer) in peers.iter().enumerate() {
            book.add(*peer, addr(1), start + Duration::from_secs(i as u64));
        }
        // The oldest is connected: it stays; the next oldest goes.
        book.connected(&peers[0], start + Duration::from_secs(5));
        let newcomer = PeerId::random();
        book.add(newcomer, addr(2), start + Duration::from_secs(10));
        assert_eq!(book.len(), 3);
        assert!(!book.get(&peers[0]).is_empty());
        assert!(book.get(&peers[1]).is_empty(), "disconnected longest ago");
        assert!(!book.get(&peers[2]).is_empty());
        assert!(!book.get(&newcomer).is_empty());
        assert_eq!(book.evicted(), 1);
        // A flood of new identities never grows the book.
        for i in 0..1000 {
            book.add(
                PeerId::random(),
                addr(3),
                start + Duration::from_secs(20 + i),
            );
        }
        assert_eq!(book.len(), 3);
        assert!(!book.get(&peers[0]).is_empty(), "connected peers are kept");
    }

    #[test]
    fn peers_disconnected_for_the_ttl_are_pruned() {
        let start = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut book = AddressBook::new(2, 10, ttl);
        let (gone, online, recent) = (PeerId::random(), PeerId::random(), PeerId::random());
        for peer in [gone, online, recent] {
            book.add(peer, addr(1), start);
            book.connected(&peer, start);
        }
        book.disconnected(&gone, start + Duration::from_secs(1));
        book.disconnected(&recent, start + Duration::from_secs(50));
        assert_eq!(book.prune(start + Duration::from_secs(60)), 0);
        assert_eq!(book.prune(start + Duration::from_secs(61)), 1);
        assert!(book.get(&gone).is_empty());
        assert_eq!(book.prune(start + Duration::from_secs(10_000)), 1);
        assert!(
            !book.get(&online).is_empty(),
            "a connected peer is never pruned"
        );
        assert_eq!(book.len(), 1);
    }
}
