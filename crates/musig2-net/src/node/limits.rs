//! The connection limit: which connections count, which are protected, which one to close.

use super::*;

impl EventLoop {
    /// Connections (peers) counted against `max_connections`: all but session
    /// peers' and those being closed.
    pub(super) fn general_connections(&self) -> usize {
        self.connected
            .iter()
            .filter(|(p, c)| !c.closing && !self.session_peers.contains(p))
            .count()
    }

    /// A peer the connection limit never closes: a session peer, a peer we
    /// dialled, or one we are sending direct messages to.
    pub(super) fn is_protected(&self, peer: &PeerId, conns: &PeerConns) -> bool {
        conns.dialed > 0 || self.session_peers.contains(peer) || self.direct.is_sending(peer)
    }

    /// Over the limit after `peer` connected: keep `peer` if it is ours and
    /// close the least active unprotected inbound peer instead; refuse
    /// `peer` if it is an unprotected inbound peer. Returns whether `peer`
    /// stays.
    pub(super) fn enforce_limit(&mut self, peer: PeerId) -> bool {
        if self.general_connections() <= self.config.max_connections {
            return true;
        }
        let Some(conns) = self.connected.get(&peer).copied() else {
            return true;
        };
        if !self.is_protected(&peer, &conns) {
            self.metrics.connections_refused += 1;
            self.close_for_limit(peer);
            return false;
        }
        let victim =
            least_active_unprotected_inbound(&self.connected, peer, |p, c| self.is_protected(p, c));
        match victim {
            Some(victim) => {
                self.metrics.connections_evicted += 1;
                debug!(%victim, for_peer = %peer, "closing an idle inbound connection: over the limit");
                self.close_for_limit(victim);
            }
            None => debug!(%peer, "over the connection limit, but nothing can be closed"),
        }
        true
    }

    pub(super) fn close_for_limit(&mut self, peer: PeerId) {
        if let Some(conns) = self.connected.get_mut(&peer) {
            conns.closing = true;
        }
        let _ = self.swarm.disconnect_peer_id(peer);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn conns(dialed: usize, inbound: usize, active_secs_ago: u64, now: Instant) -> PeerConns {
        PeerConns {
            dialed,
            inbound,
            last_active: now - Duration::from_secs(active_secs_ago),
            closing: false,
            announced: true,
        }
    }

    #[test]
    fn the_limit_closes_the_least_active_unprotected_inbound_peer_only() {
        let now = Instant::now();
        let ids: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        let mut connected = HashMap::new();
        connected.insert(ids[0], conns(1, 0, 900, now)); // we dialled it
        connected.insert(ids[1], conns(0, 1, 800, now)); // session peer (protected below)
        connected.insert(ids[2], conns(1, 1, 700, now)); // both ways: ours
        connected.insert(ids[3], conns(0, 1, 100, now)); // inbound, active lately
        connected.insert(ids[4], conns(0, 1, 500, now)); // inbound, idle longest
        connected.insert(ids[5], conns(0, 1, 0, now)); // the newcomer to keep
        let protected = |p: &PeerId, c: &PeerConns| c.dialed > 0 || *p == ids[1];
        assert_eq!(
            least_active_unprotected_inbound(&connected, ids[5], protected),
            Some(ids[4])
        );
        // One already being closed is not chosen twice.
        connected.get_mut(&ids[4]).unwrap().closing = true;
        assert_eq!(
            least_active_unprotected_inbound(&connected, ids[5], protected),
            Some(ids[3])
        );
        // Nothing closable: none.
        connected.get_mut(&ids[3]).unwrap().closing = true;
        assert_eq!(
            least_active_unprotected_inbound(&connected, ids[5], protected),
            None
        );
    }
}
