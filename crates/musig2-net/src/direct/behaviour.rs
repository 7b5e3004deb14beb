//! The `NetworkBehaviour` that hands out raw streams of the direct-message
//! protocol: outbound ones on request (dialling the peer if needed), inbound
//! ones into a bounded queue.
//!
//! (`libp2p-stream` does the same, but its inbound queue holds a single
//! stream and drops the rest of a burst; a new session opens a stream to every
//! co-signer at once.)

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, DialError,
    FromSwarm, NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::DirectCounters;

/// Peers with stream requests waiting for a connection. When the map is
/// full, requests whose callers have given up are dropped; if it is still
/// full, a request for yet another peer fails at once.
pub(crate) const MAX_WAITING_PEERS: usize = 1024;

/// The answer to a request for an outbound stream.
pub(crate) type StreamReply = oneshot::Sender<Result<Stream, String>>;

/// A request for an outbound stream to a peer.
#[derive(Debug)]
pub(crate) struct OpenRequest {
    pub(crate) peer: PeerId,
    pub(crate) reply: StreamReply,
}

/// Streams of one protocol, without any framing of their own.
pub(crate) struct StreamBehaviour {
    protocol: StreamProtocol,
    inbound: mpsc::Sender<(PeerId, Stream)>,
    counters: Arc<DirectCounters>,
    requests: mpsc::Receiver<OpenRequest>,
    /// Open connections per peer.
    connections: HashMap<PeerId, usize>,
    /// Requests waiting for a connection to their peer.
    waiting: HashMap<PeerId, Vec<StreamReply>>,
    to_swarm: VecDeque<ToSwarm<Infallible, StreamReply>>,
    waker: Option<Waker>,
}

impl StreamBehaviour {
    /// The behaviour, the sender for outbound requests and the receiver of
    /// inbound streams (at most `inbound_capacity` waiting; more are dropped
    /// and counted).
    pub(crate) fn new(
        protocol: StreamProtocol,
        inbound_capacity: usize,
        counters: Arc<DirectCounters>,
    ) -> (
        Self,
        mpsc::Sender<OpenRequest>,
        mpsc::Receiver<(PeerId, Stream)>,
    ) {
        let (request_tx, request_rx) = mpsc::channel(inbound_capacity.max(1));
        let (inbound_tx, inbound_rx) = mpsc::channel(inbound_capacity.max(1));
        (
            Self {
                protocol,
                inbound: inbound_tx,
                counters,
                requests: request_rx,
                connections: HashMap::new(),
                waiting: HashMap::new(),
                to_swarm: VecDeque::new(),
                waker: None,
            },
            request_tx,
            inbound_rx,
        )
    }

    fn push(&mut self, event: ToSwarm<Infallible, StreamReply>) {
        self.to_swarm.push_back(event);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Whether one more peer may wait for a connection (pruning requests
    /// whose callers have given up when the map is full).
    fn has_room_to_wait(&mut self) -> bool {
        if self.waiting.len() >= MAX_WAITING_PEERS {
            self.waiting.retain(|_, replies| {
                replies.retain(|r| !r.is_closed());
                !replies.is_empty()
            });
        }
        self.waiting.len() < MAX_WAITING_PEERS
    }

    /// Peers waiting for a connection.
    #[cfg(test)]
    pub(crate) fn waiting_peers(&self) -> usize {
        self.waiting.len()
    }

    fn handler(&self, peer: PeerId) -> StreamHandler {
        StreamHandler {
            peer,
            protocol: self.protocol.clone(),
            inbound: self.inbound.clone(),
            counters: self.counters.clone(),
            to_open: VecDeque::new(),
        }
    }
}

impl NetworkBehaviour for StreamBehaviour {
    type ConnectionHandler = StreamHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(established) => {
                let peer = established.peer_id;
                *self.connections.entry(peer).or_default() += 1;
                for reply in self.waiting.remove(&peer).unwrap_or_default() {
                    self.push(ToSwarm::NotifyHandler {
                        peer_id: peer,
                        handler: NotifyHandler::One(established.connection_id),
                        event: reply,
                    });
                }
            }
            FromSwarm::ConnectionClosed(closed) if closed.remaining_established == 0 => {
                self.connections.remove(&closed.peer_id);
            }
            FromSwarm::DialFailure(failure) => {
                let Some(peer) = failure.peer_id else { return };
                // Another dial may still be under way (`DialPeerConditionFalse`):
                // only a failure to reach the peer fails the waiting requests.
                if !matches!(
                    failure.error,
                    DialError::Transport(_)
                        | DialError::NoAddresses
                        | DialError::WrongPeerId { .. }
                        | DialError::Denied { .. }
                ) || self.connections.contains_key(&peer)
                {
                    return;
                }
                let reason = failure.error.to_string();
                for reply in self.waiting.remove(&peer).unwrap_or_default() {
                    let _ = reply.send(Err(format!("dial failed: {reason}")));
                }
            }
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

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, StreamReply>> {
        while let Poll::Ready(Some(OpenRequest { peer, reply })) = self.requests.poll_recv(cx) {
            if self.connections.contains_key(&peer) {
                self.to_swarm.push_back(ToSwarm::NotifyHandler {
                    peer_id: peer,
                    handler: NotifyHandler::Any,
                    event: reply,
                });
            } else {
                if !self.waiting.contains_key(&peer) && !self.has_room_to_wait() {
                    let _ = reply.send(Err("too many peers being dialled".into()));
                    continue;
                }
                let waiting = self.waiting.entry(peer).or_default();
                waiting.retain(|r| !r.is_closed());
                if waiting.is_empty() {
                    self.to_swarm.push_back(ToSwarm::Dial {
                        opts: DialOpts::peer_id(peer)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build(),
                    });
                }
                waiting.push(reply);
            }
        }
        if let Some(event) = self.to_swarm.pop_front() {
            return Poll::Ready(event);
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// One connection's side of [`StreamBehaviour`].
pub(crate) struct StreamHandler {
    peer: PeerId,
    protocol: StreamProtocol,
    inbound: mpsc::Sender<(PeerId, Stream)>,
    counters: Arc<DirectCounters>,
    to_open: VecDeque<StreamReply>,
}

impl StreamHandler {
    /// Queues a new inbound stream; a full queue closes it (counted).
    fn deliver(&self, stream: Stream) {
        if self.inbound.try_send((self.peer, stream)).is_err() {
            self.counters
                .streams_refused
                .fetch_add(1, Ordering::Relaxed);
            debug!(peer = %self.peer, "inbound direct stream dropped: queue full");
        }
    }
}

impl ConnectionHandler for StreamHandler {
    type FromBehaviour = StreamReply;
    type ToBehaviour = Infallible;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = StreamReply;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, ()> {
        SubstreamProtocol::new(ReadyUpgrade::new(self.protocol.clone()), ())
    }

    fn connection_keep_alive(&self) -> bool {
        // Open streams keep the connection alive by themselves.
        !self.to_open.is_empty()
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, StreamReply, Infallible>> {
        match self.to_open.pop_front() {
            Some(reply) => Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(self.protocol.clone()), reply),
            }),
            None => Poll::Pending,
        }
    }

    fn on_behaviour_event(&mut self, reply: StreamReply) {
        self.to_open.push_back(reply);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Self::InboundProtocol, Self::OutboundProtocol, (), StreamReply>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: stream,
                ..
            }) => self.deliver(stream),
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                info: reply,
            }) => {
                let _ = reply.send(Ok(stream));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: reply, error }) => {
                let _ = reply.send(Err(error.to_string()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Hands `n` requests for distinct peers to the behaviour; returns the
    /// answers' receivers.
    fn request(
        behaviour: &mut StreamBehaviour,
        opener: &mpsc::Sender<OpenRequest>,
        n: usize,
    ) -> Vec<oneshot::Receiver<Result<Stream, String>>> {
        let answers = (0..n)
            .map(|_| {
                let (reply, answer) = oneshot::channel();
                opener
                    .try_send(OpenRequest {
                        peer: PeerId::random(),
                        reply,
                    })
                    .unwrap();
                answer
            })
            .collect();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let _ = NetworkBehaviour::poll(behaviour, &mut cx);
        answers
    }

    #[test]
    fn peers_waiting_for_a_dial_are_bounded_and_abandoned_ones_pruned() {
        let counters = Arc::new(DirectCounters::default());
        let protocol = StreamProtocol::new("/test/1");
        let (mut behaviour, opener, _incoming) =
            StreamBehaviour::new(protocol, 4 * MAX_WAITING_PEERS, counters);
        // Requests whose callers stay: the map fills, and one more fails at once.
        let live = request(&mut behaviour, &opener, MAX_WAITING_PEERS);
        assert_eq!(behaviour.waiting_peers(), MAX_WAITING_PEERS);
        let mut refused = request(&mut behaviour, &opener, 1);
        let answer = refused.pop().unwrap().try_recv().unwrap();
        assert!(answer.is_err());
        assert_eq!(behaviour.waiting_peers(), MAX_WAITING_PEERS);
        // The callers give up: their entries make room for new peers.
        drop(live);
        let _new = request(&mut behaviour, &opener, 10);
        assert_eq!(behaviour.waiting_peers(), 10);
    }
}
