//! The handle the application drives the node with: one command per call, answered by the event loop.

use super::*;

impl NetHandle {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    async fn tell(&self, cmd: Command) -> Result<(), NetError> {
        self.commands.send(cmd).await.map_err(|_| NetError::Stopped)
    }

    /// The addresses this node listens on, each with `/p2p/<peer id>`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call(Command::ListenAddrs).await
    }

    /// Dials an address (returns once the dial has started).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|r| Command::Dial(addr, r)).await
    }

    /// Dials a peer by id, at the addresses the node knows for it (returns
    /// once the dial has started; an error if none is known or the peer is
    /// blocked).
    pub async fn dial_peer(&self, peer: PeerId) -> Result<(), NetError> {
        self.call(|r| Command::DialPeer(peer, r)).await
    }

    /// Tells the swarm and the DHT where a peer can be reached; when this
    /// returns, a [`NetHandle::send`] to the peer will use the address.
    pub async fn add_address(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|r| Command::AddAddress(peer, addr, r)).await
    }

    /// Stores a record in the DHT (locally, and on at least one peer if any is known).
    pub async fn put_record(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), NetError> {
        self.call(|r| Command::PutRecord(key, value, r)).await
    }

    /// The first value the DHT returns for `key` (the local store first). It
    /// is unverified: the DHT does not authenticate publishers, so check it
    /// before use and ask again if it does not pass.
    pub async fn get_record(&self, key: Vec<u8>) -> Result<Vec<u8>, NetError> {
        self.call(|r| Command::GetRecord(key, r)).await
    }

    /// Subscribes to a GossipSub topic.
    pub async fn subscribe(&self, topic: impl Into<String>) -> Result<(), NetError> {
        let topic = topic.into();
        self.call(|r| Command::Subscribe(topic, r)).await
    }

    /// Publishes on a GossipSub topic.
    pub async fn publish(&self, topic: impl Into<String>, data: Vec<u8>) -> Result<(), NetError> {
        let topic = topic.into();
        self.call(|r| Command::Publish(topic, data, r)).await
    }

    /// Reports the application's verdict on a gossip message.
    pub async fn report_verdict(
        &self,
        message_id: gossipsub::MessageId,
        source: PeerId,
        verdict: Verdict,
    ) -> Result<(), NetError> {
        self.tell(Command::Verdict(message_id, source, verdict))
            .await
    }

    /// GossipSub's current score of a peer (see [`crate::gossip_score`]):
    /// below [`crate::gossip_score::GRAYLIST_THRESHOLD`] GossipSub ignores
    /// the peer. `None` if scoring is off; 0 for a peer it has no record of.
    pub async fn gossip_score(&self, peer: PeerId) -> Result<Option<f64>, NetError> {
        self.call(|r| Command::GossipScore(peer, r)).await
    }

    /// Sends a direct message and waits for the receiver's acknowledgement
    /// (on this peer's long-lived stream, opening it or dialling if needed).
    pub async fn send(&self, peer: PeerId, payload: Vec<u8>) -> Result<(), NetError> {
        self.direct.send(peer, &payload).await
    }

    /// Closes every connection to a peer.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        self.tell(Command::Disconnect(peer)).await
    }

    /// The event loop's counters (rejections, drops, refusals).
    pub async fn metrics(&self) -> Result<NetMetrics, NetError> {
        self.call(Command::Metrics).await
    }

    /// The peers with an open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(Command::ConnectedPeers).await
    }

    /// Blocks a peer: closes every connection to it now, refuses its future
    /// connections (both ways), drops the direct messages it has waiting
    /// for the application (counted in [`NetMetrics::direct_dropped_blocked`]),
    /// removes it from the DHT routing table and drops gossip it authored,
    /// even when relayed by others. Lasts until [`NetHandle::unblock_peer`];
    /// not persisted (the application re-applies its blacklist on start).
    pub async fn block_peer(&self, peer: PeerId) -> Result<(), NetError> {
        self.direct.block(peer);
        self.call(|r| Command::Block(peer, r)).await
    }

    /// Lifts a block: the peer may connect, and be connected to, again.
    pub async fn unblock_peer(&self, peer: PeerId) -> Result<(), NetError> {
        self.direct.unblock(&peer);
        self.call(|r| Command::Unblock(peer, r)).await
    }

    /// The peers currently blocked.
    pub async fn blocked_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(Command::Blocked).await
    }

    /// The peers in Kademlia's routing table (only peers whose identify
    /// information lists the DHT protocol, and configured bootstrap peers,
    /// are ever added).
    pub async fn dht_routing_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(Command::RoutingPeers).await
    }

    /// Marks peers as session peers (`true`: not counted against the general
    /// connection limit and never closed by it) or releases them (`false`).
    /// A peer is either marked or not (the last call wins, no counting);
    /// calls take effect in the order described on [`NetHandle`], so a
    /// `false` sent after a `true` (after its `await`) is never overtaken by it.
    pub async fn set_session_peers(
        &self,
        peers: Vec<PeerId>,
        in_session: bool,
    ) -> Result<(), NetError> {
        self.tell(Command::SessionPeers(peers, in_session)).await
    }

    /// Starts a Kademlia bootstrap (refreshes the routing table).
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        self.tell(Command::Bootstrap).await
    }

    /// Stops the swarm task and waits until it has stopped.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
