//! Outbound delivery: one ordered, bounded queue and task per co-signer key
//! (a queue idle for [`IDLE_CLOSE`] closes itself), and the ordered stream
//! of connection-limit exemptions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use musig2_core::PublicKey;
use musig2_net::{NetHandle, PeerId};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::state::Outgoing;
use super::{Inner, lock};
use crate::events::{ErrorCode, SessionId};
use crate::evidence::Blame;
use crate::session::Fault;
use crate::wire::{self, Body, WireMessage};

/// Messages queued per co-signer at least; a full queue fails the session
/// (our side cannot keep up; nobody else is blamed).
const OUTBOUND_CAPACITY: usize = 256;
/// Messages one session may have queued to one co-signer at once (its
/// join, commitment, nonce, partial signature, finalization, an abort, a
/// view and a timeout report): the queue holds this many for every session
/// the node may run at once (`max_concurrent_sessions`), so a node busy
/// with as many sessions as it allows never fails one for its own queue.
/// The queue's memory grows only with what is queued.
const OUTBOUND_PER_SESSION: usize = 8;
/// Attempts per message before the co-signer counts as unreachable.
const SEND_ATTEMPTS: u32 = 5;
/// A co-signer's queue with nothing to send for this long closes its task.
const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// Pending connection-limit exemption updates (oldest kept, newest dropped
/// and logged when full: a dropped exemption only means a co-signer's
/// connection counts against the general limit).
const SESSION_PEER_UPDATES: usize = 1024;

/// Starts the task that applies connection-limit exemptions one at a time,
/// in the order they were decided (a `false` can never overtake the `true`
/// it undoes).
pub(super) fn spawn_session_peer_updates(net: NetHandle) -> mpsc::Sender<(Vec<PeerId>, bool)> {
    let (tx, mut rx) = mpsc::channel::<(Vec<PeerId>, bool)>(SESSION_PEER_UPDATES);
    tokio::spawn(async move {
        while let Some((peers, exempt)) = rx.recv().await {
            if net.set_session_peers(peers, exempt).await.is_err() {
                return;
            }
        }
    });
    tx
}

impl Inner {
    /// Marks peers as session peers (exempt from the general connection
    /// limit) or releases them, in order.
    pub(super) fn exempt_peers(&self, peers: Vec<PeerId>, exempt: bool) {
        if peers.is_empty() {
            return;
        }
        if self.session_peers.try_send((peers, exempt)).is_err() {
            warn!(
                exempt,
                "connection-limit exemption queue full; update dropped"
            );
        }
    }

    /// Queues `body` for one co-signer or all of them, in order.
    pub(super) fn send(self: &Arc<Self>, session_id: SessionId, only: Option<usize>, body: Body) {
        let now = self.clock.now_ms();
        let mut state = lock(&self.state);
        let Some(session) = state.sessions.get_mut(&session_id) else {
            return;
        };
        let recipients: Vec<usize> = (0..session.len())
            .filter(|i| *i != session.me && only.is_none_or(|o| o == *i))
            .collect();
        // Each co-signer gets its own sequence numbers.
        let mut outgoing = Vec::with_capacity(recipients.len());
        for index in recipients {
            let message = WireMessage {
                session_id,
                sequence: session.next_sequence(index),
                sent_at: now,
                body: body.clone(),
            };
            let bytes = match wire::encode(&message) {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "cannot encode a message");
                    return;
                }
            };
            let key = session.keys.get(index).copied();
            let peer_hint = session.peers.get(index).copied().flatten();
            if let Some(key) = key {
                outgoing.push((
                    key,
                    Outgoing {
                        session_id,
                        bytes,
                        peer_hint,
                    },
                ));
            }
        }
        for (key, item) in outgoing {
            let queue = state
                .outbound
                .entry(key)
                .or_insert_with(|| {
                    let capacity = OUTBOUND_CAPACITY.max(
                        OUTBOUND_PER_SESSION
                            .saturating_mul(self.config.security.max_concurrent_sessions),
                    );
                    spawn_outbound(Arc::downgrade(self), key, capacity)
                })
                .clone();
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            if queue.try_send(item).is_err() {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                if matches!(body, Body::SessionAbort { .. }) {
                    // Best effort: a full queue drops the abort (never recurse into fault).
                    continue;
                }
                drop(state);
                self.fault(
                    session_id,
                    Fault::nobody(
                        ErrorCode::DeliveryFailed,
                        format!("outbound queue to {key} is full"),
                    ),
                );
                return;
            }
        }
    }

    /// Sends one queued item to `peer`, retrying transient failures.
    async fn deliver(&self, peer: PeerId, bytes: &[u8]) -> Result<(), String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.net.send(peer, bytes.to_vec()).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= SEND_ATTEMPTS => return Err(e.to_string()),
                Err(musig2_net::NetError::Unacknowledged { .. }) => {
                    // Written, never acknowledged: the connection may have
                    // died quietly (an outage). Close it, so that the retry
                    // dials a fresh one instead of waiting on the old one.
                    debug!(%peer, "no acknowledgement in time; reconnecting");
                    let _ = self.net.disconnect(peer).await;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await,
            }
        }
    }

    /// An item could not be delivered: only a live session fails (an abort
    /// that cannot be delivered after the session ended is not a second error).
    fn on_undeliverable(self: &Arc<Self>, key: PublicKey, session_id: SessionId, detail: String) {
        let live = lock(&self.state)
            .sessions
            .get(&session_id)
            .filter(|s| !s.is_done())
            .map(|s| s.keys.iter().position(|k| *k == key));
        let Some(index) = live else {
            debug!(%key, %detail, "undeliverable message for an ended or completed session");
            return;
        };
        self.fault(
            session_id,
            Fault {
                signer: index,
                // Seen from here: the signer may be fine and the path broken.
                blame: if index.is_some() {
                    Blame::Observed
                } else {
                    Blame::Unproven
                },
                ..Fault::nobody(
                    ErrorCode::DeliveryFailed,
                    match index {
                        Some(i) => format!("cannot reach signer {i} ({key}): {detail}"),
                        None => format!("cannot reach signer {key}: {detail}"),
                    },
                )
            },
        );
    }
}

/// The outbound queue of one co-signer: resolves its peer once, then sends
/// in order, retrying transient failures. Closes after [`IDLE_CLOSE`] with
/// nothing queued (the map entry is removed under the state lock, and every
/// send queues under that lock, so no message can be lost in between).
fn spawn_outbound(
    inner: std::sync::Weak<Inner>,
    key: PublicKey,
    capacity: usize,
) -> mpsc::Sender<Outgoing> {
    let (tx, mut rx) = mpsc::channel::<Outgoing>(capacity);
    tokio::spawn(async move {
        let mut registered: Option<PeerId> = None;
        loop {
            let item = match tokio::time::timeout(IDLE_CLOSE, rx.recv()).await {
                Ok(Some(item)) => item,
                Ok(None) => return,
                Err(_idle) => {
                    let Some(inner) = inner.upgrade() else { return };
                    let mut state = lock(&inner.state);
                    if rx.is_empty() {
                        state.outbound.remove(&key);
                        return;
                    }
                    continue;
                }
            };
            let Some(inner) = inner.upgrade() else { return };
            let peer = match item.peer_hint {
                Some(p) => Ok(p),
                None => inner.resolve(key).await.map_err(|e| e.to_string()),
            };
            let result = match peer {
                Ok(peer) => {
                    // Tell the swarm where the peer is before the first send
                    // (in this task, so it cannot race the send).
                    if registered != Some(peer) {
                        let addrs = lock(&inner.state)
                            .peer_addrs
                            .get(&peer)
                            .cloned()
                            .unwrap_or_default();
                        for addr in addrs {
                            let _ = inner.net.add_address(peer, addr).await;
                        }
                        registered = Some(peer);
                    }
                    inner.deliver(peer, &item.bytes).await
                }
                Err(e) => Err(e),
            };
            inner.in_flight.fetch_sub(1, Ordering::AcqRel);
            if let Err(detail) = result {
                inner.on_undeliverable(key, item.session_id, detail);
            }
        }
    });
    tx
}
