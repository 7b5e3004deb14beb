//! The byzantine node of the adversarial suite: a raw `musig2-net` handle
//! (no coordinator) that can send any direct frame, DHT record or gossip
//! message, plus helpers that make real cluster nodes send messages they
//! would not send themselves.

use std::collections::HashMap;
use std::time::Duration;

use musig2_coordinator::cluster::ClusterNode;
use musig2_coordinator::wire::{AbortReport, Body, WireMessage, encode, finalized_digest};
use musig2_coordinator::{REQUEST_KEY_PREFIX, SIGNER_KEY_PREFIX};
use musig2_core::{
    Keypair, NonceCommitment, PublicKey, PublicNonce, Signature, SignedContribution, Statement,
};
use musig2_net::{NetConfig, NetHandle, NodeKeypair, PeerId};
use musig2_security::{
    PeerScore, SessionAnnouncement, SessionRequest, SignerAdvertisement, SigningMetadata,
    TransactionType,
};

pub struct Byzantine {
    pub net: NetHandle,
    sequences: HashMap<(PeerId, [u8; 32]), u64>,
}

/// A signed request by `creator` for `signers`, claiming `creator_peer_id`.
fn signed_request(
    creator: &Keypair,
    signers: Vec<PublicKey>,
    creator_peer_id: String,
    message: [u8; 32],
    request_nonce: [u8; 32],
) -> SessionAnnouncement {
    SessionAnnouncement::new_signed(
        SessionRequest {
            signers,
            message,
            creator_peer_id,
            creator_addrs: vec![],
            metadata: SigningMetadata::default(),
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: now_ms(),
            expires_at: now_ms() + 3_600_000,
            request_nonce,
        },
        creator,
    )
    .unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sends until the target's swarm accepts the frame (the first dial may race).
async fn deliver(net: &NetHandle, target: PeerId, bytes: Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while net.send(target, bytes.clone()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the target never accepted the frame");
}

impl Byzantine {
    /// A fresh identity that knows `node`'s addresses.
    pub async fn near(node: &ClusterNode) -> Self {
        let (net, events) =
            musig2_net::start(NodeKeypair::generate_ed25519(), NetConfig::loopback())
                .await
                .unwrap();
        tokio::spawn(async move {
            let mut events = events;
            while events.recv().await.is_some() {}
        });
        let target = node.coordinator.local_peer_id();
        for addr in node.coordinator.multiaddrs().await.unwrap() {
            net.add_address(target, addr).await.unwrap();
        }
        Self {
            net,
            sequences: HashMap::new(),
        }
    }

    pub fn peer_id(&self) -> PeerId {
        self.net.local_peer_id()
    }

    /// Sends `body` about `session` to `target` with our next sequence number.
    pub async fn send_body(&mut self, target: &ClusterNode, session: [u8; 32], body: Body) {
        let to = target.coordinator.local_peer_id();
        let seq = self.sequences.entry((to, session)).or_default();
        *seq += 1;
        let message = WireMessage {
            session_id: session,
            sequence: *seq,
            sent_at: now_ms(),
            body,
        };
        deliver(&self.net, to, encode(&message).unwrap()).await;
    }

    /// A join claiming signer `index` (key `key`) that its signer never signed.
    pub async fn forged_join(
        &mut self,
        target: &ClusterNode,
        session: [u8; 32],
        index: usize,
        key: PublicKey,
    ) {
        let body = Body::SessionJoin {
            signer_index: index as u32,
            pubkey: key,
            peer_id: self.peer_id().to_string(),
            announcement_digest: [0; 32],
            signature: Signature::from_bytes(&[1; 64]),
        };
        self.send_body(target, session, body).await;
    }

    /// Waits until `observer` holds our peer to a penalty `pred` accepts.
    pub async fn wait_until_penalised(
        &self,
        observer: &ClusterNode,
        pred: impl Fn(&PeerScore) -> bool,
    ) {
        let me = musig2_security::PeerId::new(self.peer_id().to_string());
        tokio::time::timeout(Duration::from_secs(30), async {
            while !pred(&observer.coordinator.with_security(|s| s.peer_score(&me))) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the byzantine peer was never penalised");
    }

    /// Makes a real participant `from` send `to` a message it would not send.
    pub async fn send_as(
        from: &ClusterNode,
        to: &ClusterNode,
        session: [u8; 32],
        sequence: u64,
        body: Body,
    ) {
        Self::send_stamped(from, to, session, sequence, now_ms(), body).await;
    }

    /// [`send_as`](Self::send_as) with a chosen timestamp.
    pub async fn send_stamped(
        from: &ClusterNode,
        to: &ClusterNode,
        session: [u8; 32],
        sequence: u64,
        sent_at: u64,
        body: Body,
    ) {
        let message = WireMessage {
            session_id: session,
            sequence,
            sent_at,
            body,
        };
        deliver(
            from.coordinator.net(),
            to.coordinator.local_peer_id(),
            encode(&message).unwrap(),
        )
        .await;
    }

    /// Stores a `musig2-signer:<key>` record that names `framed` as the
    /// key's peer but is not signed by the key.
    pub async fn put_forged_advertisement(&self, key: &PublicKey, framed: &PeerId) {
        let mut ad = SignerAdvertisement::new_signed(
            &Keypair::random(&mut rand::rng()),
            framed.to_string(),
            vec!["/ip4/127.0.0.1/tcp/9".into()],
            vec![TransactionType::Spend],
            now_ms(),
            now_ms() + 3_600_000,
        );
        ad.pubkey = *key;
        let record = format!("{SIGNER_KEY_PREFIX}{key}").into_bytes();
        // Best effort: the record may or may not be stored by the victim.
        let _ = self
            .net
            .put_record(record, postcard::to_allocvec(&ad).unwrap())
            .await;
    }

    /// Stores a `musig2-request:` record that claims `creator` made a request
    /// naming `victim`, without `creator`'s signature. Returns its request id.
    pub async fn put_forged_request(&self, creator: &ClusterNode, victim: &PublicKey) -> [u8; 32] {
        let imposter = Keypair::random(&mut rand::rng());
        let mut a = signed_request(
            &imposter,
            vec![*victim, imposter.public_key()],
            creator.coordinator.local_peer_id().to_string(),
            [0xee; 32],
            [3; 32],
        );
        // Claim the honest creator's key: the signature no longer verifies.
        a.signature = Signature::from_bytes(&[2; 64]);
        let record = format!("{REQUEST_KEY_PREFIX}{}", hex(&a.request_id)).into_bytes();
        let _ = self
            .net
            .put_record(record, postcard::to_allocvec(&a).unwrap())
            .await;
        a.request_id
    }

    /// Puts `n` junk records into the DHT near us (under foreign prefixes
    /// and under ours, with garbage values).
    pub async fn stuff_dht(&self, n: usize) {
        for i in 0..n {
            let key = if i % 2 == 0 {
                format!("junk:{i}")
            } else {
                format!("{SIGNER_KEY_PREFIX}{i:066}")
            };
            let _ = self.net.put_record(key.into_bytes(), vec![0xab; 64]).await;
        }
    }

    /// Sends `n` distinct, validly signed requests naming `victim` and keys
    /// that will never join, from one creator key. Returns how many were sent.
    pub async fn flood_requests(
        &mut self,
        target: &ClusterNode,
        victim: PublicKey,
        n: usize,
    ) -> usize {
        let creator = Keypair::random(&mut rand::rng());
        let mut sent = 0;
        for i in 0..n {
            let mut nonce = [0u8; 32];
            nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let mut signers = vec![victim, creator.public_key()];
            signers.extend((0..3).map(|_| Keypair::random(&mut rand::rng()).public_key()));
            let a = signed_request(
                &creator,
                signers,
                self.peer_id().to_string(),
                [0xdd; 32],
                nonce,
            );
            self.send_body(target, [0; 32], Body::SigningRequest(Box::new(a)))
                .await;
            sent += 1;
        }
        sent
    }
}

impl Byzantine {
    /// Connects to `node` (GossipSub needs a connection to publish).
    pub async fn connect(&self, node: &ClusterNode) {
        let target = node.coordinator.local_peer_id();
        self.net.dial_peer(target).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), async {
            while !self.net.connected_peers().await.unwrap().contains(&target) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("never connected");
    }

    /// Publishes `bytes` on `topic` once, retrying until GossipSub has a
    /// subscribed peer to send it to (the subscription exchange may race).
    pub async fn gossip(&self, topic: &str, bytes: Vec<u8>) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while self.net.publish(topic, bytes.clone()).await.is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("GossipSub never had a subscribed peer");
    }

    /// A request signed by `creator` for `signers`, naming our peer as its
    /// creator's (so it passes the owner check when we gossip it).
    pub fn request_by(
        &self,
        creator: &Keypair,
        signers: Vec<PublicKey>,
        nonce: u64,
    ) -> SessionAnnouncement {
        let mut request_nonce = [0u8; 32];
        request_nonce[..8].copy_from_slice(&nonce.to_be_bytes());
        signed_request(
            creator,
            signers,
            self.peer_id().to_string(),
            [0xd7; 32],
            request_nonce,
        )
    }

    /// A valid advertisement of `key` at our peer, at `addr`, made at `created_at`.
    pub fn advertisement(&self, key: &Keypair, addr: String, created_at: u64) -> Vec<u8> {
        let ad = SignerAdvertisement::new_signed(
            key,
            self.peer_id().to_string(),
            vec![addr],
            vec![TransactionType::Spend],
            created_at,
            created_at + 3_600_000,
        );
        postcard::to_allocvec(&ad).unwrap()
    }

    /// Sends a validly signed request naming `victim` and `n - 1` other keys.
    pub async fn oversized_request(&mut self, target: &ClusterNode, victim: PublicKey, n: usize) {
        let creator = Keypair::random(&mut rand::rng());
        let mut signers = vec![victim, creator.public_key()];
        signers.extend((2..n).map(|_| Keypair::random(&mut rand::rng()).public_key()));
        let a = signed_request(
            &creator,
            signers,
            self.peer_id().to_string(),
            [0xcc; 32],
            [9; 32],
        );
        self.send_body(target, [0; 32], Body::SigningRequest(Box::new(a)))
            .await;
    }

    /// Puts garbage, and a validly signed announcement of another session,
    /// under `musig2-session:<session>`.
    pub async fn overwrite_session_record(&self, session: [u8; 32]) {
        let key = format!("musig2-session:{}", hex(&session)).into_bytes();
        let _ = self.net.put_record(key.clone(), vec![0xab; 200]).await;
        let creator = Keypair::random(&mut rand::rng());
        let other = signed_request(
            &creator,
            vec![creator.public_key()],
            self.peer_id().to_string(),
            [0xbb; 32],
            [8; 32],
        );
        let _ = self
            .net
            .put_record(key, postcard::to_allocvec(&other).unwrap())
            .await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `statement` signed by `signer` as signer `index` of `session`.
pub fn signed(
    signer: &Keypair,
    session: [u8; 32],
    index: usize,
    statement: Statement,
) -> SignedContribution {
    SignedContribution::sign(session, index as u32, statement, signer.secret_key())
}

/// A signed abort, as signer `index` of `session` would send it.
pub fn abort_body(signer: &Keypair, session: [u8; 32], index: usize, report: AbortReport) -> Body {
    let signature = signed(signer, session, index, Statement::Abort(report.digest())).signature;
    Body::SessionAbort {
        report: Box::new(report),
        signature,
    }
}

/// A plain abort report naming nobody.
pub fn plain_abort(reason: &str) -> AbortReport {
    AbortReport {
        code: "SESSION_ABORTED".into(),
        culprits: vec![],
        evidence: None,
        reason: reason.into(),
        relayed: None,
    }
}

/// An unsigned abort (from a peer that is not a signer).
pub fn unsigned_abort(reason: &str) -> Body {
    Body::SessionAbort {
        report: Box::new(plain_abort(reason)),
        signature: Signature::from_bytes(&[1; 64]),
    }
}

/// A signed finalization, as signer `index` of `session` would send it.
pub fn finalized_body(
    signer: &Keypair,
    session: [u8; 32],
    index: usize,
    signature: Signature,
    txid: Option<[u8; 32]>,
) -> Body {
    let digest = finalized_digest(&signature, txid.as_ref());
    Body::SignatureFinalized {
        signature,
        txid,
        attestation: signed(signer, session, index, Statement::Finalized(digest)).signature,
    }
}

/// A signed nonce commitment.
pub fn commit_body(
    signer: &Keypair,
    session: [u8; 32],
    index: usize,
    commitment: NonceCommitment,
) -> Body {
    Body::NonceCommit {
        signer_index: index as u32,
        commitment,
        signature: signed(
            signer,
            session,
            index,
            Statement::NonceCommitment(commitment),
        )
        .signature,
    }
}

/// A signed public nonce.
pub fn nonce_body(signer: &Keypair, session: [u8; 32], index: usize, nonce: PublicNonce) -> Body {
    Body::NonceShare {
        signer_index: index as u32,
        nonce,
        signature: signed(signer, session, index, Statement::PublicNonce(nonce)).signature,
    }
}
