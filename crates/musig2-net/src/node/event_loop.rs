//! The event loop: commands and swarm events in, application events out, periodic maintenance.

use super::*;

impl EventLoop {
    pub(super) async fn run(mut self) {
        // The first check waits one interval: Kademlia bootstraps by itself when
        // the bootstrap peers enter its routing table.
        let mut maintenance = tokio::time::interval_at(
            tokio::time::Instant::now() + MAINTENANCE_INTERVAL,
            MAINTENANCE_INTERVAL,
        );
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        let _ = done.send(());
                        break;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = maintenance.tick() => self.maintain(),
            }
        }
        debug!(metrics = ?self.snapshot(), "network event loop stopped");
    }

    /// The event loop's counters with the direct-message layer's.
    pub(super) fn snapshot(&mut self) -> NetMetrics {
        let counters = &self.direct.counters;
        let behaviour = self.swarm.behaviour_mut();
        let store = behaviour.kad.store_mut();
        let (remote_records, own_evicted) = (store.remote_len(), store.own_evicted);
        let book_evicted = behaviour.addresses.book.evicted();
        NetMetrics {
            direct_busy: counters.busy.load(Ordering::Relaxed),
            direct_busy_peer_queue: counters.busy_peer.load(Ordering::Relaxed),
            direct_busy_global_queue: counters.busy_global.load(Ordering::Relaxed),
            direct_dropped_blocked: counters.dropped_blocked.load(Ordering::Relaxed),
            inbound_failures: counters.inbound_failures.load(Ordering::Relaxed),
            direct_streams_refused: counters.streams_refused.load(Ordering::Relaxed),
            dht_remote_records: remote_records as u64,
            dht_own_evicted: own_evicted,
            known_peers: self.known_addrs.len() as u64,
            known_peers_evicted: self.known_addrs.evicted() + book_evicted,
            dht_quiet_ms: self.dht_changed_at.elapsed().as_millis() as u64,
            ..self.metrics
        }
    }

    /// Queues an event for the application; on overflow the event is dropped
    /// and counted (the application is too slow, the network must not stall).
    pub(super) fn emit(&mut self, event: NetEvent) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(_) => {
                self.metrics.events_dropped += 1;
                false
            }
        }
    }

    pub(super) fn touch(&mut self, peer: &PeerId) {
        if let Some(conns) = self.connected.get_mut(peer) {
            conns.last_active = Instant::now();
        }
    }

    /// Puts an identified peer in Kademlia's routing table (a DHT server)
    /// or takes it out (not one). Kademlia keeps every address it is given:
    /// a peer's list is replaced rather than added to, so repeated identify
    /// pushes cannot grow it past `max_addrs_per_peer`. A peer already in
    /// the table is updated in place. A peer new to the table schedules a
    /// DHT bootstrap half a second later (hundreds of requests on a network
    /// of 50; not configurable in libp2p-kad), so while direct messages flow
    /// (a signing session: its co-signers connect to each other just then)
    /// a new entry waits in `kad_waiting` for a quiet moment ([`KAD_QUIET`]),
    /// or [`KAD_WAIT_MAX`] at most; its addresses go to the dial book at
    /// once, so that dialling it never waits.
    pub(super) fn route(&mut self, peer: PeerId, addrs: &[Multiaddr], serves_dht: bool) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        if !serves_dht {
            self.forget_waiting(&peer);
            self.swarm.behaviour_mut().kad.remove_peer(&peer);
            return;
        }
        match kad_addrs(kad, &peer) {
            Some(held) => {
                // In place: the new addresses first (an entry whose last
                // address goes is removed), then the stale ones.
                for addr in addrs {
                    kad.add_address(&peer, addr.clone());
                }
                for stale in held.iter().filter(|h| {
                    !addrs
                        .iter()
                        .any(|a| a.clone().with_p2p(peer).is_ok_and(|a| a == **h))
                }) {
                    kad.remove_address(&peer, stale);
                }
                self.forget_waiting(&peer);
            }
            None if self.direct.counters.quiet_for() < KAD_QUIET => {
                let now = Instant::now();
                let book = &mut self.swarm.behaviour_mut().addresses.book;
                for addr in addrs {
                    book.add(peer, addr.clone(), now);
                }
                if self.kad_waiting.len() < KAD_WAITING_MAX || self.kad_waiting.contains_key(&peer)
                {
                    self.kad_waiting.insert(peer, addrs.to_vec());
                    self.kad_waiting_since.get_or_insert(now);
                }
            }
            None => {
                self.forget_waiting(&peer);
                for addr in addrs {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                }
            }
        }
    }

    fn forget_waiting(&mut self, peer: &PeerId) {
        self.kad_waiting.remove(peer);
        if self.kad_waiting.is_empty() {
            self.kad_waiting_since = None;
        }
    }

    /// Routes the peers that waited for a quiet moment (or too long).
    fn route_waiting(&mut self) {
        let due = self.direct.counters.quiet_for() >= KAD_QUIET
            || self
                .kad_waiting_since
                .is_some_and(|since| since.elapsed() >= KAD_WAIT_MAX);
        if !due || self.kad_waiting.is_empty() {
            return;
        }
        self.kad_waiting_since = None;
        let kad = &mut self.swarm.behaviour_mut().kad;
        for (peer, addrs) in std::mem::take(&mut self.kad_waiting) {
            kad.remove_peer(&peer);
            for addr in addrs {
                kad.add_address(&peer, addr);
            }
        }
    }

    pub(super) fn maintain(&mut self) {
        self.direct.close_idle();
        self.route_waiting();
        let now = Instant::now();
        let pruned =
            self.known_addrs.prune(now) + self.swarm.behaviour_mut().addresses.book.prune(now);
        if pruned > 0 {
            debug!(pruned, "forgot the addresses of peers gone for long");
        }
        // Too few peers: look for more (fails harmlessly with no known peers).
        // Every connection counts here; only the maximum exempts session peers.
        if self
            .refill
            .due(self.connected.len(), self.config.min_connections, now)
        {
            self.metrics.bootstraps += 1;
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }

    pub(super) fn learn_addrs(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id() || addrs.is_empty() {
            return;
        }
        match self.known_addrs.set(peer, addrs, Instant::now()) {
            Some(Change::New(addrs)) => {
                self.emit(NetEvent::Peer(PeerEvent::Discovered { peer, addrs }));
            }
            Some(Change::Updated(addrs)) => {
                self.emit(NetEvent::Peer(PeerEvent::Updated { peer, addrs }));
            }
            None => {}
        }
    }

    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        if let Some(metrics) = &self.config.swarm_metrics {
            record(&metrics.0, &event);
        }
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let now = Instant::now();
                self.known_addrs.connected(&peer_id, now);
                let first = !self.connected.contains_key(&peer_id);
                let conns = self.connected.entry(peer_id).or_insert(PeerConns {
                    dialed: 0,
                    inbound: 0,
                    last_active: now,
                    closing: false,
                    announced: false,
                });
                if endpoint.is_dialer() {
                    conns.dialed += 1;
                } else {
                    conns.inbound += 1;
                }
                // A new peer, or a new connection from a peer the limit is
                // closing (it raced the close): judged now. Without the
                // second case, a reconnect would hold a slot nobody counts.
                let judge = first || conns.closing;
                conns.closing = false;
                if judge
                    && self.enforce_limit(peer_id)
                    && let Some(conns) = self.connected.get_mut(&peer_id)
                    && !conns.announced
                {
                    conns.announced = true;
                    self.emit(NetEvent::Peer(PeerEvent::Connected(peer_id)));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                self.known_addrs.disconnected(&peer_id, Instant::now());
                if let Some(conns) = self.connected.get_mut(&peer_id) {
                    if endpoint.is_dialer() {
                        conns.dialed = conns.dialed.saturating_sub(1);
                    } else {
                        conns.inbound = conns.inbound.saturating_sub(1);
                    }
                }
                if num_established == 0
                    && let Some(conns) = self.connected.remove(&peer_id)
                {
                    self.refill.on_disconnect(Instant::now());
                    self.direct.forget(&peer_id);
                    if conns.announced {
                        self.emit(NetEvent::Peer(PeerEvent::Disconnected(peer_id)));
                    }
                }
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                ..
            } if cause.downcast_ref::<allow_block_list::Blocked>().is_some() => {
                self.metrics.connections_denied_blocked += 1;
            }
            SwarmEvent::OutgoingConnectionError {
                error: DialError::Denied { cause },
                ..
            } if cause.downcast_ref::<allow_block_list::Blocked>().is_some() => {
                self.metrics.connections_denied_blocked += 1;
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    pub(super) fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let mut addrs = info.listen_addrs;
                addrs.truncate(self.config.max_addrs_per_peer.max(1));
                self.route(peer_id, &addrs, info.protocols.contains(&self.kad_protocol));
                self.learn_addrs(peer_id, addrs);
            }
            BehaviourEvent::Kad(event) => self.on_kad_event(event),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let event = NetEvent::Gossip {
                    message_id: message_id.clone(),
                    propagation_source,
                    author: message.source,
                    topic: message.topic.into_string(),
                    data: message.data,
                };
                if !self.emit(event) {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            gossipsub::MessageAcceptance::Ignore,
                        );
                }
            }
            BehaviourEvent::Relay(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                ..
            }) => {
                self.emit(NetEvent::Peer(PeerEvent::RelayAddressesAvailable {
                    relay: relay_peer_id,
                }));
            }
            _ => {}
        }
    }
}

/// Hands a swarm event, and the behaviour event inside it, to libp2p's metrics.
fn record(metrics: &libp2p::metrics::Metrics, event: &SwarmEvent<BehaviourEvent>) {
    use libp2p::metrics::Recorder;
    metrics.record(event);
    match event {
        SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => metrics.record(e),
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => metrics.record(e),
        SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => metrics.record(e),
        SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => metrics.record(e),
        SwarmEvent::Behaviour(BehaviourEvent::Dcutr(e)) => metrics.record(e),
        _ => {}
    }
}

/// The addresses Kademlia's routing table holds for `peer` (with their
/// `/p2p` suffix), if it holds the peer.
fn kad_addrs(
    kad: &mut libp2p::kad::Behaviour<crate::dht::DhtStore>,
    peer: &PeerId,
) -> Option<Vec<Multiaddr>> {
    let bucket = kad.kbucket(*peer)?;
    bucket
        .iter()
        .find(|entry| entry.node.key.preimage() == peer)
        .map(|entry| entry.node.value.iter().cloned().collect())
}
