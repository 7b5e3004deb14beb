//! The event loop's handling of the handle's commands.

use super::*;

impl EventLoop {
    pub(super) fn on_command(&mut self, cmd: Command) {
        let local = *self.swarm.local_peer_id();
        match cmd {
            Command::ListenAddrs(reply) => {
                let addrs = self
                    .listen_addrs
                    .iter()
                    .map(|a| a.clone().with(Protocol::P2p(local)))
                    .collect();
                let _ = reply.send(Ok(addrs));
            }
            Command::Dial(addr, reply) => {
                if let Some(peer) = peer_of(&addr) {
                    self.swarm.behaviour_mut().addresses.book.add(
                        peer,
                        addr.clone(),
                        Instant::now(),
                    );
                }
                let result = self.swarm.dial(addr).map_err(|e| NetError::Dial {
                    detail: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::DialPeer(peer, reply) => {
                let result = self.swarm.dial(peer).map_err(|e| NetError::Dial {
                    detail: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::AddAddress(peer, addr, reply) => {
                // Into the dial address book (and any behaviour that listens);
                // Kademlia's routing table waits for identify.
                self.swarm.add_peer_address(peer, addr);
                let _ = reply.send(Ok(()));
            }
            Command::PutRecord(key, value, reply) => {
                let record = kad::Record::new(key, value);
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .put_record(record, kad::Quorum::One)
                {
                    Ok(id) => {
                        self.pending_puts.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht {
                            detail: e.to_string(),
                        }));
                    }
                }
            }
            Command::GetRecord(key, reply) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_record(kad::RecordKey::new(&key));
                self.pending_gets.insert(id, reply);
            }
            Command::Subscribe(topic, reply) => {
                let topic = gossipsub::IdentTopic::new(topic);
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .subscribe(&topic)
                    .map(|_| ())
                    .map_err(|e| NetError::Gossip {
                        detail: e.to_string(),
                    });
                let _ = reply.send(result);
            }
            Command::Publish(topic, data, reply) => {
                let topic = gossipsub::IdentTopic::new(topic);
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic, data)
                    .map(|_| ())
                    .map_err(|e| NetError::Gossip {
                        detail: e.to_string(),
                    });
                let _ = reply.send(result);
            }
            Command::Verdict(id, source, verdict) => {
                if verdict == Verdict::Accept {
                    // It relayed something the application found valid.
                    self.touch(&source);
                }
                let acceptance = match verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Reject => gossipsub::MessageAcceptance::Reject,
                    Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
            }
            Command::GossipScore(peer, reply) => {
                let score = self.swarm.behaviour().gossipsub.peer_score(&peer);
                let _ = reply.send(Ok(score));
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Block(peer, reply) => {
                let behaviour = self.swarm.behaviour_mut();
                // Closes its connections and denies new ones.
                behaviour.blocked.block_peer(peer);
                behaviour.kad.remove_peer(&peer);
                self.kad_waiting.remove(&peer);
                // Gossip it authored is dropped even when others relay it.
                behaviour.gossipsub.blacklist_peer(&peer);
                let _ = reply.send(Ok(()));
            }
            Command::Unblock(peer, reply) => {
                let behaviour = self.swarm.behaviour_mut();
                behaviour.blocked.unblock_peer(peer);
                behaviour.gossipsub.remove_blacklisted_peer(&peer);
                let _ = reply.send(Ok(()));
            }
            Command::Blocked(reply) => {
                let peers = self
                    .swarm
                    .behaviour()
                    .blocked
                    .blocked_peers()
                    .iter()
                    .copied()
                    .collect();
                let _ = reply.send(Ok(peers));
            }
            Command::RoutingPeers(reply) => {
                let mut peers = Vec::new();
                for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
                    peers.extend(bucket.iter().map(|e| *e.node.key.preimage()));
                }
                let _ = reply.send(Ok(peers));
            }
            Command::Metrics(reply) => {
                let _ = reply.send(Ok(self.snapshot()));
            }
            Command::ConnectedPeers(reply) => {
                let peers = self
                    .connected
                    .iter()
                    .filter(|(_, c)| !c.closing)
                    .map(|(p, _)| *p)
                    .collect();
                let _ = reply.send(Ok(peers));
            }
            Command::SessionPeers(peers, in_session) => {
                for peer in peers {
                    if in_session {
                        self.session_peers.insert(peer);
                    } else {
                        self.session_peers.remove(&peer);
                    }
                }
            }
            Command::Bootstrap => {
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
            Command::Shutdown(_) => {}
        }
    }
}
