//! The coordinator's mutable state and the bounds on everything in it that
//! the network can feed. Every collection here has a cap and a stated
//! overflow policy; the sweep prunes what has aged out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

use musig2_core::{Keypair, PublicKey};
use musig2_net::{Multiaddr, PeerId};
use musig2_security::{Millis, SessionAnnouncement};
use tokio::sync::mpsc;

use crate::events::{RequestId, SessionId};
use crate::session::Session;
use crate::wire::WireMessage;

/// Verified requests naming our key that we have not joined (oldest
/// dropped), at least; a node allowed more concurrent sessions keeps one
/// for each (`State::with_capacity`), so a creator's burst that it may
/// sign at once is not forgotten while it waits its turn.
pub(super) const PENDING_CAPACITY: usize = 256;
/// Messages for sessions we do not know yet, in all.
pub(super) const ORPHAN_CAPACITY: usize = 1024;
/// Messages for sessions we do not know yet, per sending peer.
pub(super) const ORPHANS_PER_PEER: usize = 64;
/// Messages buffered for a later phase, per session (one session has at most
/// a few messages per co-signer in flight).
pub(super) const BUFFERED_PER_SESSION: usize = 1024;
/// Signer keys whose peer we remember (oldest dropped).
pub(super) const DIRECTORY_CAPACITY: usize = 4096;
/// Peers whose addresses we remember, and addresses per peer.
pub(super) const ADDRESS_BOOK_CAPACITY: usize = 4096;
pub(super) const ADDRESSES_PER_PEER: usize = 8;
/// Session ids that ended recently: late messages for them are dropped, not
/// kept as orphans that could be replayed into a new run.
pub(super) const ENDED_CAPACITY: usize = 4096;
/// Sessions in which we drew a nonce, remembered until their announcement
/// expires (beyond it, the one that expires first is forgotten).
pub(super) const SIGNED_CAPACITY: usize = 65_536;
/// Disconnection times are forgotten after this long.
pub(super) const DISCONNECTED_TTL_MS: Millis = 60 * 60 * 1000;

/// A map with at most `cap` entries; inserting a new key into a full map
/// drops the oldest inserted key.
#[derive(Debug)]
pub(crate) struct Capped<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
    pub evicted: u64,
}

impl<K: Eq + Hash + Clone, V> Capped<K, V> {
    pub fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            evicted: 0,
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(old) = self.map.get_mut(&key) {
            return Some(std::mem::replace(old, value));
        }
        while self.map.len() >= self.cap {
            match self.order.pop_front() {
                Some(oldest) => {
                    if self.map.remove(&oldest).is_some() {
                        self.evicted += 1;
                    }
                }
                None => break,
            }
        }
        self.order.push_back(key.clone());
        self.map.insert(key, value);
        // Removed keys linger in `order` until popped; keep it near the map's size.
        if self.order.len() > 2 * self.cap {
            let map = &self.map;
            self.order.retain(|k| map.contains_key(k));
        }
        None
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.map.retain(|k, v| keep(k, v));
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// A message for a session we do not know yet.
#[derive(Debug)]
pub(super) struct Orphan {
    pub peer: PeerId,
    pub message: WireMessage,
    pub size: usize,
    /// Its timestamp is judged as of its arrival.
    pub arrived: Millis,
}

/// Orphaned messages, fair per peer: a peer over its share drops its own
/// new messages; when the whole store is full, the peer holding the most
/// loses its oldest. A flooder therefore evicts only itself, never an
/// honest signer's early join.
#[derive(Debug)]
pub(super) struct Orphans {
    queue: VecDeque<Orphan>,
    per_peer: HashMap<PeerId, usize>,
    capacity: usize,
    per_peer_capacity: usize,
    pub dropped: u64,
}

impl Default for Orphans {
    fn default() -> Self {
        Self::with_capacity(ORPHAN_CAPACITY, ORPHANS_PER_PEER)
    }
}

impl Orphans {
    /// At most `capacity` orphans in all, `per_peer` from one peer.
    pub fn with_capacity(capacity: usize, per_peer: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            per_peer: HashMap::new(),
            capacity: capacity.max(1),
            per_peer_capacity: per_peer.max(1),
            dropped: 0,
        }
    }

    pub fn push(&mut self, orphan: Orphan) {
        let held = self.per_peer.get(&orphan.peer).copied().unwrap_or(0);
        if held >= self.per_peer_capacity {
            self.dropped += 1;
            return;
        }
        if self.queue.len() >= self.capacity {
            let greediest = self
                .per_peer
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(p, _)| *p);
            if let Some(p) = greediest
                && let Some(pos) = self.queue.iter().position(|o| o.peer == p)
            {
                self.take_at(pos);
                self.dropped += 1;
            }
        }
        *self.per_peer.entry(orphan.peer).or_default() += 1;
        self.queue.push_back(orphan);
    }

    fn take_at(&mut self, pos: usize) -> Option<Orphan> {
        let orphan = self.queue.remove(pos)?;
        if let Some(n) = self.per_peer.get_mut(&orphan.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&orphan.peer);
            }
        }
        Some(orphan)
    }

    /// Removes and returns the orphans of `session_id`, oldest first.
    pub fn take_session(&mut self, session_id: &SessionId) -> Vec<Orphan> {
        let mut mine = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            if self
                .queue
                .get(i)
                .is_some_and(|o| o.message.session_id == *session_id)
            {
                mine.extend(self.take_at(i));
            } else {
                i += 1;
            }
        }
        mine
    }

    /// Drops orphans that arrived before `before`.
    pub fn prune(&mut self, before: Millis) {
        while self.queue.front().is_some_and(|o| o.arrived < before) {
            self.take_at(0);
            self.dropped += 1;
        }
    }

    /// Drops everything from `peer` (blacklisted).
    pub fn drop_peer(&mut self, peer: &PeerId) {
        let mut i = 0;
        while i < self.queue.len() {
            if self.queue.get(i).is_some_and(|o| o.peer == *peer) {
                self.take_at(i);
                self.dropped += 1;
            } else {
                i += 1;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

/// What the outbound queue of one co-signer carries.
pub(super) struct Outgoing {
    pub session_id: SessionId,
    pub bytes: Vec<u8>,
    pub peer_hint: Option<PeerId>,
}

/// Counters of the coordinator's own drops (the security layer counts rejections).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoordinatorCounters {
    /// Orphaned messages dropped (over a peer's share, full store, too old).
    pub orphans_dropped: u64,
    /// Pending requests dropped (full, or expired before a join).
    pub pending_dropped: u64,
    /// Messages for a completed or recently ended session, ignored.
    pub late_messages: u64,
    /// `SessionAbort`s received after completion, ignored (the signature stays).
    pub aborts_after_completion: u64,
    /// `SignatureFinalized` with another signature than ours, ignored.
    pub finalize_mismatches: u64,
    /// Requests refused because we already drew a nonce under their
    /// session id (a second run would sign a second nonce for it).
    pub reruns_refused: u64,
    /// Signed-session entries forgotten early because the set was full.
    pub signed_sessions_forgotten: u64,
    /// Broadcasts the coordinator reported that this node's Chronik client
    /// did not find (or that named no txid): failover goes on.
    pub broadcasts_unconfirmed: u64,
    /// Joins whose signature did not verify (dropped before taking any slot).
    pub forged_joins: u64,
    /// Messages buffered for a later phase dropped because the session's buffer was full.
    pub buffered_dropped: u64,
    /// Completed sessions forgotten to keep the completed cache bounded.
    pub completed_evicted: u64,
    /// Transaction requests whose sighash this node recomputed and found equal
    /// to the request's message.
    pub transaction_requests_verified: u64,
    /// Requests refused: a transaction that does not check out, a blind
    /// request with blind signing off, or the join policy
    /// (`SigningRequestRefused`).
    pub requests_refused: u64,
    /// Auto-connect dials made to a newly advertised signer's address.
    pub auto_dials: u64,
    /// Auto-connect dials skipped because the budget (10 a minute) was spent.
    pub auto_dials_over_budget: u64,
    /// Signer advertisements refused for their burn identity
    /// (`IdentityRefused`).
    pub identities_refused: u64,
    /// Requests not joined automatically because too many already waited
    /// for their creator's turn.
    pub deferred_joins_dropped: u64,
    /// Rounds in which this node stopped waiting for the session's relay
    /// and exchanged directly (a relay late, gone, or withholding).
    pub relay_fallbacks: u64,
}

/// Sizes of the bounded collections, for tests and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateSizes {
    /// Sessions held (live and completed).
    pub sessions: usize,
    /// Completed sessions held in the bounded cache.
    pub completed: usize,
    /// Pending (verified, not joined) requests.
    pub pending: usize,
    /// Orphaned messages.
    pub orphans: usize,
    /// Outbound queues (one per co-signer key in use).
    pub outbound: usize,
    /// Directory entries (signer key → peer).
    pub directory: usize,
    /// Address-book entries.
    pub peer_addrs: usize,
}

pub(super) struct State {
    /// Boxed: a session is a few KiB, and the map reserves room for more
    /// entries than it holds.
    pub sessions: HashMap<SessionId, Box<Session>>,
    pub requests: HashMap<RequestId, SessionId>,
    /// Verified requests naming one of our keys, not joined yet.
    pub pending: Capped<RequestId, SessionAnnouncement>,
    /// Our signing keys.
    pub keys: Vec<Keypair>,
    /// Where each known signer key can be reached.
    pub directory: Capped<PublicKey, PeerId>,
    /// Addresses learned from signed announcements and advertisements.
    pub peer_addrs: Capped<PeerId, Vec<Multiaddr>>,
    pub orphans: Orphans,
    /// Messages admitted early, per session, replayed when the phase allows.
    pub buffered: HashMap<SessionId, Vec<(PeerId, usize, WireMessage)>>,
    /// One ordered outbound queue per co-signer key; a queue idle for a while
    /// closes itself.
    pub outbound: HashMap<PublicKey, mpsc::Sender<Outgoing>>,
    /// When each peer disconnected (cleared on reconnect, forgotten after an hour).
    pub disconnected: HashMap<PeerId, Millis>,
    /// (session, peer) pairs we already sent a `ValidationError`.
    pub validation_replied: HashSet<(SessionId, PeerId)>,
    /// Completed sessions, oldest first (the bounded completed cache).
    pub completed: VecDeque<SessionId>,
    /// Sessions that ended (failed or closed) recently.
    pub ended: Capped<SessionId, ()>,
    /// Sessions in which this node drew a nonce, with their announcement's
    /// expiry: never opened again before it, because a second run under the
    /// same session id would make us sign a second commitment or nonce for
    /// the same (session, index), which is exactly an equivocation proof
    /// against us. Kept in memory: a restart forgets it (see
    /// `docs/PROTOCOL.md` §11.7).
    pub signed_sessions: HashMap<SessionId, Millis>,
    /// Finalizations that waited in a session's buffer when it completed,
    /// handed to the late-message path right after (drained at once).
    pub late_finalizations: Vec<(PeerId, WireMessage)>,
    /// Auto-connect dial budget: (window start, dials in the window).
    pub auto_dials: (Millis, u32),
    /// Pending requests whose automatic join waits for their creator's
    /// turn (oldest first).
    pub deferred_joins: VecDeque<RequestId>,
    pub counters: CoordinatorCounters,
}

impl State {
    /// A state sized for `max_concurrent_sessions`: its pending set holds
    /// that many requests (at least [`PENDING_CAPACITY`]), its orphan store
    /// four messages per session in all and two per session from one peer
    /// (at least [`ORPHAN_CAPACITY`] and [`ORPHANS_PER_PEER`]).
    pub fn with_capacity(max_concurrent_sessions: usize) -> Self {
        // A co-signer's join (and first contribution) may arrive before
        // our own join of each session we may run at once.
        let per_peer = ORPHANS_PER_PEER.max(2 * max_concurrent_sessions);
        Self {
            pending: Capped::new(PENDING_CAPACITY.max(max_concurrent_sessions)),
            orphans: Orphans::with_capacity(
                ORPHAN_CAPACITY.max(4 * max_concurrent_sessions),
                per_peer,
            ),
            ..Self::default()
        }
    }
}

impl Default for State {
    fn default() -> Self {
        Self {
            sessions: HashMap::new(),
            requests: HashMap::new(),
            pending: Capped::new(PENDING_CAPACITY),
            keys: Vec::new(),
            directory: Capped::new(DIRECTORY_CAPACITY),
            peer_addrs: Capped::new(ADDRESS_BOOK_CAPACITY),
            orphans: Orphans::default(),
            buffered: HashMap::new(),
            outbound: HashMap::new(),
            disconnected: HashMap::new(),
            validation_replied: HashSet::new(),
            completed: VecDeque::new(),
            deferred_joins: VecDeque::new(),
            ended: Capped::new(ENDED_CAPACITY),
            signed_sessions: HashMap::new(),
            late_finalizations: Vec::new(),
            auto_dials: (0, 0),
            counters: CoordinatorCounters::default(),
        }
    }
}

impl State {
    /// Remembers that we drew a nonce in `session_id`, until `expires_at`.
    /// Full: the entry that expires first goes (counted).
    pub fn remember_signed(&mut self, session_id: SessionId, expires_at: Millis) {
        if self.signed_sessions.len() >= SIGNED_CAPACITY
            && !self.signed_sessions.contains_key(&session_id)
        {
            let first = self
                .signed_sessions
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(id, _)| *id);
            if let Some(id) = first {
                self.signed_sessions.remove(&id);
                self.counters.signed_sessions_forgotten += 1;
            }
        }
        self.signed_sessions.insert(session_id, expires_at);
    }

    /// Remembers a peer's addresses (at most [`ADDRESSES_PER_PEER`]).
    pub fn remember_addrs(&mut self, peer: PeerId, mut addrs: Vec<Multiaddr>) {
        addrs.truncate(ADDRESSES_PER_PEER);
        self.peer_addrs.insert(peer, addrs);
    }

    /// The co-signers' peers of a session (not ours).
    pub fn session_peers(&self, session_id: &SessionId) -> Vec<PeerId> {
        self.sessions
            .get(session_id)
            .map(|s| {
                s.peers
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != s.me)
                    .filter_map(|(_, p)| *p)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn sizes(&self) -> StateSizes {
        StateSizes {
            sessions: self.sessions.len(),
            completed: self.completed.len(),
            pending: self.pending.len(),
            orphans: self.orphans.len(),
            outbound: self.outbound.len(),
            directory: self.directory.len(),
            peer_addrs: self.peer_addrs.len(),
        }
    }

    pub fn counters(&self) -> CoordinatorCounters {
        CoordinatorCounters {
            orphans_dropped: self.orphans.dropped,
            pending_dropped: self.counters.pending_dropped + self.pending.evicted,
            ..self.counters
        }
    }

    /// Forgets what has aged out at `now`.
    pub fn prune(&mut self, now: Millis, orphan_max_age: Millis) {
        self.orphans.prune(now.saturating_sub(orphan_max_age));
        let before = self.pending.len();
        self.pending.retain(|_, a| a.expires_at > now);
        self.counters.pending_dropped += (before - self.pending.len()) as u64;
        let in_use: HashSet<PeerId> = self
            .sessions
            .values()
            .flat_map(|s| s.peers.iter().flatten().copied())
            .collect();
        self.disconnected.retain(|peer, since| {
            in_use.contains(peer) || now.saturating_sub(*since) < DISCONNECTED_TTL_MS
        });
        self.signed_sessions
            .retain(|_, expires_at| *expires_at > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(session: u8) -> WireMessage {
        WireMessage {
            session_id: [session; 32],
            sequence: 1,
            sent_at: 0,
            body: crate::wire::Body::ValidationError {
                code: String::new(),
                detail: String::new(),
            },
        }
    }

    fn orphan(peer: PeerId, session: u8, arrived: Millis) -> Orphan {
        Orphan {
            peer,
            message: message(session),
            size: 10,
            arrived,
        }
    }

    #[test]
    fn capped_map_drops_the_oldest_insert() {
        let mut m = Capped::new(3);
        for i in 0..5 {
            m.insert(i, i * 10);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(&0), None);
        assert_eq!(m.get(&1), None);
        assert_eq!(m.get(&4), Some(&40));
        assert_eq!(m.evicted, 2);
        // Replacing does not evict.
        assert_eq!(m.insert(4, 41), Some(40));
        assert_eq!(m.len(), 3);
        // Many removals and inserts keep the order queue bounded.
        for i in 100..10_000 {
            m.insert(i, i);
            m.remove(&i);
        }
        assert!(m.order.len() <= 6);
    }

    #[test]
    fn a_flooder_cannot_evict_an_honest_orphan() {
        let honest = PeerId::random();
        let mut orphans = Orphans::default();
        orphans.push(orphan(honest, 7, 0));
        // One flooder: capped at its share.
        let flooder = PeerId::random();
        for _ in 0..10_000 {
            orphans.push(orphan(flooder, 1, 1));
        }
        assert_eq!(orphans.len(), 1 + ORPHANS_PER_PEER);
        // Many flooders: the store fills, and the greediest peers lose their own.
        for _ in 0..100 {
            let sybil = PeerId::random();
            for _ in 0..ORPHANS_PER_PEER {
                orphans.push(orphan(sybil, 2, 2));
            }
        }
        assert_eq!(orphans.len(), ORPHAN_CAPACITY);
        let mine = orphans.take_session(&[7; 32]);
        assert_eq!(mine.len(), 1);
        assert_eq!(mine.first().map(|o| o.peer), Some(honest));
        assert!(orphans.dropped > 0);
    }

    #[test]
    fn old_orphans_and_a_blocked_peers_orphans_are_dropped() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut orphans = Orphans::default();
        orphans.push(orphan(a, 1, 10));
        orphans.push(orphan(b, 1, 20));
        orphans.push(orphan(a, 1, 30));
        orphans.prune(15);
        assert_eq!(orphans.len(), 2);
        orphans.drop_peer(&a);
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans.take_session(&[1; 32]).len(), 1);
        assert_eq!(orphans.dropped, 2);
    }
}
