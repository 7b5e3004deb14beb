//! Direct messages: request/acknowledgement exchanges on one long-lived
//! stream per peer and direction.
//!
//! A signing session is a full mesh in which every round sends one message to
//! every co-signer. Opening a new muxer stream per message (libp2p
//! request-response) costs a stream set-up, a protocol negotiation, a timer
//! and a close for every few dozen bytes; measured on 10 signers that was most
//! of the session's time. Here each sender keeps one stream per peer and sends
//! one [`FrameCodec`] frame per request; the receiver answers each with an
//! [`Ack`] frame on the same stream before it reads the next. The frames, the
//! limits and the acknowledgement are the same as before; only the stream is
//! reused.
//!
//! Resources: a sender opens at most one stream per peer (sends to a peer are
//! serialised on it); a receiver serves at most [`MAX_STREAMS_PER_PEER`]
//! streams per peer and [`MAX_INBOUND_STREAMS`] in all, and closes a stream
//! that stays silent for the idle timeout, as the sender does, so an idle
//! stream does not keep a connection open.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};
use tracing::debug;

use crate::NetError;
use crate::codec::{Ack, FrameCodec};

mod behaviour;
mod inbox;

pub(crate) use behaviour::{OpenRequest, StreamBehaviour};
pub(crate) use inbox::{Admit, Inbox, forward};

/// Inbound direct-message streams served at once, from all peers (also the
/// capacity of the queue of new streams).
pub const MAX_INBOUND_STREAMS: usize = 1024;
/// Inbound direct-message streams served at once from one peer.
pub const MAX_STREAMS_PER_PEER: usize = 4;

/// Counters of the direct-message layer.
#[derive(Debug, Default)]
pub(crate) struct DirectCounters {
    /// Every `Busy` answer (the sum of the two below).
    pub(crate) busy: AtomicU64,
    /// `Busy` because the sender's own queue was full.
    pub(crate) busy_peer: AtomicU64,
    /// `Busy` because all queues together were full.
    pub(crate) busy_global: AtomicU64,
    /// Messages of blocked peers dropped from the queue or refused.
    pub(crate) dropped_blocked: AtomicU64,
    pub(crate) inbound_failures: AtomicU64,
    pub(crate) streams_refused: AtomicU64,
    /// When a direct message last went out or came in (ms since the epoch):
    /// the node is signing, and DHT upkeep waits (see `quiet_for`).
    pub(crate) last_activity_ms: AtomicU64,
}

impl DirectCounters {
    fn note_activity(&self) {
        self.last_activity_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// How long no direct message went out or came in.
    pub(crate) fn quiet_for(&self) -> Duration {
        Duration::from_millis(
            now_ms().saturating_sub(self.last_activity_ms.load(Ordering::Relaxed)),
        )
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One peer's outbound stream and when it was last used.
#[derive(Default)]
struct Outbound {
    stream: Option<(Stream, Instant)>,
}

/// The sending side, shared by every [`crate::NetHandle`] clone.
pub(crate) struct Direct {
    opener: mpsc::Sender<OpenRequest>,
    codec: FrameCodec,
    request_timeout: Duration,
    idle_timeout: Duration,
    outbound: Mutex<HashMap<PeerId, Arc<tokio::sync::Mutex<Outbound>>>>,
    pub(crate) counters: Arc<DirectCounters>,
    /// Inbound messages waiting for the application.
    pub(crate) inbox: Arc<Inbox>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Direct {
    pub(crate) fn new(
        opener: mpsc::Sender<OpenRequest>,
        codec: FrameCodec,
        request_timeout: Duration,
        idle_timeout: Duration,
        counters: Arc<DirectCounters>,
        inbox: Arc<Inbox>,
    ) -> Self {
        Self {
            opener,
            codec,
            request_timeout,
            idle_timeout,
            outbound: Mutex::new(HashMap::new()),
            counters,
            inbox,
        }
    }

    /// Whether this node is sending to `peer` (a send is under way, or its
    /// outbound stream is open).
    pub(crate) fn is_sending(&self, peer: &PeerId) -> bool {
        lock(&self.outbound).contains_key(peer)
    }

    /// Drops `peer`'s waiting inbound messages and refuses its later ones.
    pub(crate) fn block(&self, peer: PeerId) {
        let dropped = self.inbox.block(peer);
        self.counters
            .dropped_blocked
            .fetch_add(dropped as u64, Ordering::Relaxed);
        lock(&self.outbound).remove(&peer);
    }

    /// Accepts `peer`'s inbound messages again.
    pub(crate) fn unblock(&self, peer: &PeerId) {
        self.inbox.unblock(peer);
    }

    /// Sends one message and waits for its acknowledgement. A stream that was
    /// already open may have died with its connection since it was last used;
    /// then the message is sent once more on a fresh stream.
    pub(crate) async fn send(&self, peer: PeerId, payload: &[u8]) -> Result<(), NetError> {
        self.counters.note_activity();
        if payload.len() > self.codec.max_frame() {
            return Err(NetError::TooLarge {
                size: payload.len(),
                limit: self.codec.max_frame(),
            });
        }
        if self.inbox.is_blocked(&peer) {
            return Err(NetError::Send {
                peer: peer.to_string(),
                detail: "the peer is blocked".into(),
            });
        }
        let slot = lock(&self.outbound).entry(peer).or_default().clone();
        let mut slot = slot.lock().await;
        let failed = |detail: String| NetError::Send {
            peer: peer.to_string(),
            detail,
        };
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let reused = match slot.stream.take() {
                Some((stream, used)) if used.elapsed() < self.idle_timeout => Some(stream),
                _ => None,
            };
            let fresh = reused.is_none();
            let mut stream = match reused {
                Some(stream) => stream,
                None => match tokio::time::timeout_at(deadline, self.open(peer)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return Err(failed(e)),
                    Err(_) => return Err(failed("timed out opening a stream".into())),
                },
            };
            match tokio::time::timeout_at(deadline, self.exchange(&mut stream, payload)).await {
                Ok(Ok(ack)) => {
                    slot.stream = Some((stream, Instant::now()));
                    return match ack {
                        Ack::Accepted => Ok(()),
                        Ack::Busy => Err(NetError::PeerBusy),
                    };
                }
                // The old stream was dead: try once on a new one.
                Ok(Err(_)) if !fresh => continue,
                Ok(Err(e)) => return Err(failed(e.to_string())),
                Err(_) => {
                    return Err(NetError::Unacknowledged {
                        peer: peer.to_string(),
                    });
                }
            }
        }
    }

    /// A new outbound stream to `peer` (dialling it if not connected).
    async fn open(&self, peer: PeerId) -> Result<Stream, String> {
        let (reply, answer) = oneshot::channel();
        self.opener
            .send(OpenRequest { peer, reply })
            .await
            .map_err(|_| "the network task has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the connection closed before the stream opened".to_string())?
    }

    async fn exchange(&self, stream: &mut Stream, payload: &[u8]) -> io::Result<Ack> {
        self.codec.write_frame(stream, payload).await?;
        let answer = self.codec.read_frame(stream).await?;
        postcard::from_bytes(&answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Forgets a peer whose last connection closed (its stream died with it).
    pub(crate) fn forget(&self, peer: &PeerId) {
        lock(&self.outbound).remove(peer);
    }

    /// Closes outbound streams that were not used for the idle timeout, so
    /// that they do not keep their connections open, and forgets peers with
    /// no stream and no send under way (e.g. a peer that was never reached),
    /// so the map holds only peers this node is talking to.
    pub(crate) fn close_idle(&self) {
        lock(&self.outbound).retain(|_, slot| {
            // A slot in use is neither idle nor forgotten.
            let Ok(mut slot) = slot.try_lock() else {
                return true;
            };
            if slot
                .stream
                .as_ref()
                .is_some_and(|(_, used)| used.elapsed() >= self.idle_timeout)
            {
                slot.stream = None;
            }
            slot.stream.is_some()
        });
    }
}

/// Serves inbound streams until `incoming` ends (the swarm stopped).
pub(crate) async fn serve<S>(
    mut incoming: mpsc::Receiver<(PeerId, S)>,
    codec: FrameCodec,
    idle_timeout: Duration,
    inbox: Arc<Inbox>,
    counters: Arc<DirectCounters>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let open = Arc::new(AtomicUsize::new(0));
    let per_peer: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
    while let Some((peer, stream)) = incoming.recv().await {
        let admitted = {
            let mut per_peer = lock(&per_peer);
            let mine = per_peer.entry(peer).or_default();
            if *mine >= MAX_STREAMS_PER_PEER || open.load(Ordering::Acquire) >= MAX_INBOUND_STREAMS
            {
                false
            } else {
                *mine += 1;
                open.fetch_add(1, Ordering::AcqRel);
                true
            }
        };
        if !admitted {
            counters.streams_refused.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "direct stream refused: too many open");
            continue;
        }
        let (codec, inbox, counters) = (codec.clone(), inbox.clone(), counters.clone());
        let (open, per_peer) = (open.clone(), per_peer.clone());
        tokio::spawn(async move {
            serve_stream(peer, stream, &codec, idle_timeout, &inbox, &counters).await;
            open.fetch_sub(1, Ordering::AcqRel);
            let mut per_peer = lock(&per_peer);
            if let Some(n) = per_peer.get_mut(&peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_peer.remove(&peer);
                }
            }
        });
    }
    inbox.close();
}

/// Reads requests from one stream and acknowledges each, until the stream
/// ends, fails, or stays idle.
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    peer: PeerId,
    mut stream: S,
    codec: &FrameCodec,
    idle_timeout: Duration,
    inbox: &Inbox,
    counters: &DirectCounters,
) {
    loop {
        let payload = match timeout(idle_timeout, codec.read_frame(&mut stream)).await {
            Err(_) => break,
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Ok(Err(e)) => {
                counters.inbound_failures.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, error = %e, "bad direct frame; closing the stream");
                break;
            }
            Ok(Ok(payload)) => payload,
        };
        let ack = match inbox.push(peer, payload) {
            Admit::Queued => {
                counters.note_activity();
                Ack::Accepted
            }
            Admit::PeerFull => {
                counters.busy.fetch_add(1, Ordering::Relaxed);
                counters.busy_peer.fetch_add(1, Ordering::Relaxed);
                Ack::Busy
            }
            Admit::Full => {
                counters.busy.fetch_add(1, Ordering::Relaxed);
                counters.busy_global.fetch_add(1, Ordering::Relaxed);
                Ack::Busy
            }
            Admit::Blocked => {
                counters.dropped_blocked.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, "direct message from a blocked peer; closing the stream");
                break;
            }
            Admit::Closed => break,
        };
        let Ok(answer) = postcard::to_allocvec(&ack) else {
            break;
        };
        if codec.write_frame(&mut stream, &answer).await.is_err() {
            break;
        }
    }
    let _ = stream.close().await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::codec::WIRE_VERSION;
    use crate::node::NetEvent;
    use futures::AsyncReadExt;
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    const IDLE: Duration = Duration::from_secs(60);

    /// A served in-memory stream: the client end, the application's queue
    /// (fed by the forwarder from an inbox holding `queue` messages per peer
    /// and in all) and the counters.
    fn served(
        queue: usize,
    ) -> (
        Compat<tokio::io::DuplexStream>,
        mpsc::Receiver<NetEvent>,
        Arc<DirectCounters>,
        tokio::task::JoinHandle<()>,
    ) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (events, app) = mpsc::channel(queue);
        let inbox = Arc::new(Inbox::new(queue, queue));
        tokio::spawn(forward(inbox.clone(), events));
        let counters = Arc::new(DirectCounters::default());
        let peer = PeerId::random();
        let codec = FrameCodec::new(1000);
        let c = counters.clone();
        let task = tokio::spawn(async move {
            serve_stream(peer, server.compat(), &codec, IDLE, &inbox, &c).await;
        });
        (client.compat(), app, counters, task)
    }

    async fn request(client: &mut Compat<tokio::io::DuplexStream>, payload: &[u8]) -> Ack {
        let codec = FrameCodec::new(1000);
        codec.write_frame(client, payload).await.unwrap();
        let answer = codec.read_frame(client).await.unwrap();
        postcard::from_bytes(&answer).unwrap()
    }

    #[tokio::test]
    async fn one_stream_carries_many_requests_in_order() {
        let (mut client, mut app, _, _) = served(16);
        for i in 0..10u8 {
            assert_eq!(request(&mut client, &[i; 3]).await, Ack::Accepted);
        }
        for i in 0..10u8 {
            match app.recv().await.unwrap() {
                NetEvent::Direct { payload, .. } => assert_eq!(payload, vec![i; 3]),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_and_counts_it() {
        // No forwarder: nothing leaves the inbox.
        let inbox = Inbox::new(1, 8);
        let counters = DirectCounters::default();
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut client = client.compat();
        let codec = FrameCodec::new(1000);
        let served = serve_stream(
            PeerId::random(),
            server.compat(),
            &codec,
            IDLE,
            &inbox,
            &counters,
        );
        let asks = async {
            assert_eq!(request(&mut client, b"first").await, Ack::Accepted);
            assert_eq!(request(&mut client, b"second").await, Ack::Busy);
            // The stream stays usable.
            assert_eq!(request(&mut client, b"third").await, Ack::Busy);
            client.close().await.unwrap();
        };
        futures::join!(served, asks);
        assert_eq!(counters.busy.load(Ordering::Relaxed), 2);
        assert_eq!(counters.busy_peer.load(Ordering::Relaxed), 2);
        assert_eq!(counters.busy_global.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_flooding_peer_gets_busy_and_another_peer_gets_through() {
        const PER_PEER: usize = 8;
        let (incoming, streams) = mpsc::channel(16);
        let inbox = Arc::new(Inbox::new(PER_PEER, 64));
        let counters = Arc::new(DirectCounters::default());
        tokio::spawn(serve(
            streams,
            FrameCodec::new(1000),
            IDLE,
            inbox.clone(),
            counters.clone(),
        ));
        let open = |peer: PeerId| {
            let incoming = incoming.clone();
            async move {
                let (client, server) = tokio::io::duplex(1 << 16);
                incoming.send((peer, server.compat())).await.unwrap();
                client.compat()
            }
        };
        let (flooder, honest) = (PeerId::random(), PeerId::random());
        // The application is slow (reads nothing yet); the flooder sends 200.
        let mut flood = open(flooder).await;
        let mut busy = 0;
        for i in 0..200u32 {
            if request(&mut flood, &i.to_be_bytes()).await == Ack::Busy {
                busy += 1;
            }
        }
        assert_eq!(busy, 200 - PER_PEER);
        // The honest peer's messages are all accepted.
        let mut other = open(honest).await;
        for i in 0..PER_PEER as u8 {
            assert_eq!(request(&mut other, &[i]).await, Ack::Accepted);
        }
        assert_eq!(
            counters.busy_peer.load(Ordering::Relaxed),
            (200 - PER_PEER) as u64
        );
        assert_eq!(counters.busy_global.load(Ordering::Relaxed), 0);
        // When the application reads, the peers take turns: every honest
        // message arrives within the first 2 × PER_PEER.
        let (events, mut app) = mpsc::channel(4);
        tokio::spawn(forward(inbox, events));
        let mut honest_seen = Vec::new();
        for _ in 0..2 * PER_PEER {
            match timeout(Duration::from_secs(10), app.recv())
                .await
                .unwrap()
                .unwrap()
            {
                NetEvent::Direct { peer, payload } if peer == honest => honest_seen.push(payload),
                NetEvent::Direct { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            honest_seen,
            (0..PER_PEER as u8).map(|i| vec![i]).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn an_unknown_version_closes_the_stream_and_is_counted() {
        let (mut client, mut app, counters, task) = served(16);
        let mut frame = 3u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[WIRE_VERSION + 1, 1, 2]);
        client.write_all(&frame).await.unwrap();
        client.flush().await.unwrap();
        task.await.unwrap();
        assert_eq!(counters.inbound_failures.load(Ordering::Relaxed), 1);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "no acknowledgement for a bad frame");
        assert!(app.try_recv().is_err(), "nothing reached the application");
    }

    #[tokio::test]
    async fn an_oversize_frame_is_refused_before_its_body_arrives() {
        let (mut client, _app, counters, task) = served(16);
        // Only the header: the server must give up without waiting for 1 MB.
        let mut header = 1_000_000u32.to_be_bytes().to_vec();
        header.push(WIRE_VERSION);
        client.write_all(&header).await.unwrap();
        client.flush().await.unwrap();
        task.await.unwrap();
        assert_eq!(counters.inbound_failures.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn streams_beyond_the_per_peer_limit_are_refused_and_counted() {
        let (incoming, streams) = mpsc::channel(16);
        let inbox = Arc::new(Inbox::new(64, 64));
        let counters = Arc::new(DirectCounters::default());
        tokio::spawn(serve(
            streams,
            FrameCodec::new(1000),
            IDLE,
            inbox,
            counters.clone(),
        ));
        let open = |peer: PeerId| {
            let incoming = incoming.clone();
            async move {
                let (client, server) = tokio::io::duplex(1 << 16);
                incoming.send((peer, server.compat())).await.unwrap();
                client.compat()
            }
        };
        let peer = PeerId::random();
        let mut clients = Vec::new();
        for _ in 0..MAX_STREAMS_PER_PEER {
            clients.push(open(peer).await);
        }
        // One more from the same peer is closed unread, and counted.
        let mut refused = open(peer).await;
        let mut rest = Vec::new();
        timeout(Duration::from_secs(10), refused.read_to_end(&mut rest))
            .await
            .expect("the fifth stream was not closed")
            .unwrap();
        assert!(rest.is_empty());
        assert_eq!(counters.streams_refused.load(Ordering::Relaxed), 1);
        // The admitted streams work, and another peer is not affected.
        for client in &mut clients {
            assert_eq!(request(client, b"hi").await, Ack::Accepted);
        }
        let mut other = open(PeerId::random()).await;
        assert_eq!(request(&mut other, b"hi").await, Ack::Accepted);
        assert_eq!(counters.streams_refused.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_peer_that_was_never_reached_is_forgotten_and_a_blocked_one_not_dialled() {
        let (opener, mut requests) = mpsc::channel(4);
        let direct = Direct::new(
            opener,
            FrameCodec::new(1000),
            Duration::from_secs(5),
            IDLE,
            Arc::default(),
            Arc::new(Inbox::new(4, 4)),
        );
        // Nobody can open a stream: the request's answer is dropped.
        tokio::spawn(async move { while requests.recv().await.is_some() {} });
        let peer = PeerId::random();
        assert!(direct.send(peer, b"x").await.is_err());
        assert!(
            direct.is_sending(&peer),
            "the slot outlives the failed send"
        );
        direct.close_idle();
        assert!(
            !direct.is_sending(&peer),
            "and is forgotten by the next sweep"
        );
        let blocked = PeerId::random();
        direct.block(blocked);
        let err = direct.send(blocked, b"x").await.unwrap_err();
        assert!(matches!(&err, NetError::Send { detail, .. } if detail.contains("blocked")));
        assert!(!direct.is_sending(&blocked));
    }

    #[tokio::test]
    async fn a_clean_close_is_not_a_failure() {
        let (mut client, _app, counters, task) = served(16);
        assert_eq!(request(&mut client, b"x").await, Ack::Accepted);
        client.close().await.unwrap();
        drop(client);
        task.await.unwrap();
        assert_eq!(counters.inbound_failures.load(Ordering::Relaxed), 0);
    }
}
