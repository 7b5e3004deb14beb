//! Kademlia in the event loop: inbound records (`FilterBoth`) and query results.

use super::*;

impl EventLoop {
    /// A record a peer asked us to store (`FilterBoth`): checked, then
    /// stored within the quotas, or dropped and counted.
    pub(super) fn on_inbound_record(&mut self, source: PeerId, record: kad::Record) {
        let local = *self.swarm.local_peer_id();
        let outcome = if record.publisher == Some(local) {
            Err(Refusal::OwnKey)
        } else {
            self.rules
                .check(record.key.as_ref(), &record.value)
                .and_then(|()| {
                    self.swarm.behaviour_mut().kad.store_mut().put_remote(
                        record,
                        source,
                        Instant::now(),
                    )
                })
        };
        let m = &mut self.metrics;
        match outcome {
            Ok(stored) => {
                m.dht_records_stored += 1;
                if stored.evicted {
                    m.dht_records_evicted += 1;
                }
            }
            Err(refusal) => {
                debug!(%source, ?refusal, "DHT record from a peer not stored");
                match refusal {
                    Refusal::TooLarge => m.dht_rejected_too_large += 1,
                    Refusal::Prefix => m.dht_rejected_prefix += 1,
                    Refusal::Invalid => m.dht_rejected_invalid += 1,
                    Refusal::Quota => m.dht_rejected_quota += 1,
                    Refusal::Full => m.dht_rejected_full += 1,
                    Refusal::OwnKey => m.dht_rejected_own_key += 1,
                }
            }
        }
    }

    pub(super) fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_inbound_record(source, record),
            kad::Event::RoutingUpdated {
                peer,
                addresses,
                is_new_peer,
                ..
            } => {
                if is_new_peer {
                    self.dht_changed_at = Instant::now();
                }
                self.learn_addrs(peer, addresses.into_vec());
            }
            kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::Bootstrap(_),
                ..
            } => self.dht_changed_at = Instant::now(),
            kad::Event::OutboundQueryProgressed { id, result, .. } => match result {
                kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                    let record = found.record;
                    if !self.rules.is_valid(record.key.as_ref(), &record.value) {
                        // Skip it and let the lookup go on; a copy in our
                        // store (a peer put it there before the rules
                        // changed) is dropped.
                        self.metrics.dht_invalid_results += 1;
                        if found.peer.is_none() {
                            self.swarm
                                .behaviour_mut()
                                .kad
                                .store_mut()
                                .drop_remote(&record.key);
                        }
                        return;
                    }
                    // The first valid record answers; stop asking further peers.
                    self.finish_get(id, Ok(record.value));
                }
                kad::QueryResult::GetRecord(Ok(_)) => {
                    self.finish_get(
                        id,
                        Err(NetError::NotFound {
                            detail: "no record".into(),
                        }),
                    );
                }
                kad::QueryResult::GetRecord(Err(e)) => {
                    self.finish_get(
                        id,
                        Err(NetError::NotFound {
                            detail: e.to_string(),
                        }),
                    );
                }
                kad::QueryResult::PutRecord(result) => {
                    if let Some(reply) = self.pending_puts.remove(&id) {
                        if let Err(e) = &result {
                            // The record is in our own store; peers that ask us
                            // will find it. Report success, log the shortfall.
                            debug!(error = %e, "DHT put reached no other peer");
                        }
                        let _ = reply.send(Ok(()));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    pub(super) fn finish_get(&mut self, id: kad::QueryId, result: Result<Vec<u8>, NetError>) {
        if let Some(reply) = self.pending_gets.remove(&id) {
            let _ = reply.send(result);
        }
        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            query.finish();
        }
    }
}
