//! Announcing: this node's signer advertisement (DHT and GossipSub, with
//! its identity claim) and its own signing requests.

use super::*;

impl Coordinator {
    /// Registers `keypair` and advertises it: a signed [`SignerAdvertisement`]
    /// stored in the DHT under `musig2-signer:<key>` and published on the
    /// GossipSub topic of each transaction type. With burn identities on and
    /// an own burn configured, it carries this node's identity claim.
    pub async fn advertise_signer(
        &self,
        keypair: &Keypair,
        transaction_types: Vec<TransactionType>,
        ttl: Duration,
    ) -> Result<SignerAdvertisement, CoordinatorError> {
        self.advertise(keypair, transaction_types, ttl, true).await
    }

    /// [`advertise_signer`](Self::advertise_signer), to the DHT only. Peers
    /// accept one gossiped advertisement per peer a minute
    /// (`min_advertisement_interval_ms`) and count a faster one against the
    /// sender, while DHT records are not rate-limited: a node that restarts
    /// within a minute of its last gossiped advertisement updates its record
    /// with this and gossips once the minute is over.
    pub async fn advertise_signer_in_dht(
        &self,
        keypair: &Keypair,
        transaction_types: Vec<TransactionType>,
        ttl: Duration,
    ) -> Result<SignerAdvertisement, CoordinatorError> {
        self.advertise(keypair, transaction_types, ttl, false).await
    }

    async fn advertise(
        &self,
        keypair: &Keypair,
        transaction_types: Vec<TransactionType>,
        ttl: Duration,
        gossip: bool,
    ) -> Result<SignerAdvertisement, CoordinatorError> {
        self.register_key(keypair);
        let now = self.inner.clock.now_ms();
        let addrs = self
            .multiaddrs()
            .await?
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut ad = SignerAdvertisement::new_signed(
            keypair,
            self.inner.peer_id.clone(),
            addrs,
            transaction_types,
            now,
            now + ttl.as_millis() as Millis,
        );
        if let Some(claim) = self
            .inner
            .config
            .identity
            .as_ref()
            .and_then(|gate| gate.own_claim(keypair))
        {
            ad = ad.with_identity(claim, keypair);
        }
        let bytes =
            postcard::to_allocvec(&ad).map_err(|e| CoordinatorError::Encoding(e.to_string()))?;
        let key = format!("{SIGNER_KEY_PREFIX}{}", keypair.public_key());
        self.inner
            .net
            .put_record(key.into_bytes(), bytes.clone())
            .await?;
        for topic in ad.topics().filter(|_| gossip) {
            // Best effort: with no subscriber yet, the DHT record still serves.
            if let Err(e) = self.inner.net.publish(topic, bytes.clone()).await {
                tracing::debug!(%topic, error = %e, "advertisement not gossiped");
            }
        }
        Ok(ad)
    }

    /// `announceSigningRequest`: creates, signs and announces a signing
    /// request for `required` keys (ours included). The announcement goes to
    /// the DHT, to GossipSub and directly to every co-signer (found through
    /// the DHT). The session starts once every key has joined.
    pub async fn announce_signing_request(
        &self,
        required: &[PublicKey],
        message: [u8; 32],
        keypair: &Keypair,
        metadata: SigningMetadata,
    ) -> Result<RequestId, CoordinatorError> {
        self.announce(required, message, keypair, metadata, None)
            .await
            .map(|(request_id, _)| request_id)
    }

    /// [`announce_signing_request`](Self::announce_signing_request), also
    /// returning the session's id: a session can end (a co-signer
    /// unreachable) before [`get_session_by_request`](Self::get_session_by_request)
    /// would find it.
    pub async fn announce_signing_request_session(
        &self,
        required: &[PublicKey],
        message: [u8; 32],
        keypair: &Keypair,
        metadata: SigningMetadata,
    ) -> Result<(RequestId, SessionId), CoordinatorError> {
        self.announce(required, message, keypair, metadata, None)
            .await
    }

    /// [`Coordinator::announce_signing_request`], with the transaction the
    /// message is a sighash of (see [`Coordinator::announce_transaction_request`]).
    pub(super) async fn announce(
        &self,
        required: &[PublicKey],
        message: [u8; 32],
        keypair: &Keypair,
        metadata: SigningMetadata,
        transaction: Option<TransactionRequest>,
    ) -> Result<(RequestId, SessionId), CoordinatorError> {
        self.register_key(keypair);
        let now = self.inner.clock.now_ms();
        let mut request_nonce = [0u8; 32];
        rand::rng().fill_bytes(&mut request_nonce);
        let creator_addrs = self
            .multiaddrs()
            .await?
            .iter()
            .map(ToString::to_string)
            .collect();
        let request = SessionRequest {
            signers: required.to_vec(),
            message,
            creator_peer_id: self.inner.peer_id.clone(),
            creator_addrs,
            metadata,
            election_method: self.inner.config.election_method.to_string(),
            nonce_commitments: self.inner.config.enable_nonce_commitment,
            coordinator_election: self.inner.config.enable_coordinator_election,
            created_at: now,
            expires_at: now + self.inner.config.session_timeout.as_millis() as Millis,
            request_nonce,
        };
        let announcement =
            SessionAnnouncement::new_signed_with_transaction(request, transaction, keypair)
                .map_err(|v| CoordinatorError::InvalidRequest(v.to_string()))?;
        let request_id = announcement.request_id;
        let bytes = postcard::to_allocvec(&announcement)
            .map_err(|e| CoordinatorError::Encoding(e.to_string()))?;
        let session_id = self.open(announcement.clone(), keypair, now)?;
        self.inner.emit(CoordinatorEvent::SigningRequestCreated {
            request_id,
            session_id,
        });
        // Direct delivery to every co-signer is what the session needs; the
        // DHT copies and the gossip are for late joiners and are best effort,
        // so a full or unreachable DHT never leaves a session open and
        // unannounced.
        let mut actions = vec![Action::SendToAll(Body::SigningRequest(Box::new(
            announcement,
        )))];
        // A one-signer request is ready at once.
        if let Some(session) = lock(&self.inner.state).sessions.get_mut(&session_id) {
            actions.extend(session.check_ready());
        }
        self.inner.apply(session_id, actions);
        let net = &self.inner.net;
        for key in [
            format!("{SESSION_KEY_PREFIX}{}", hex::encode(session_id)),
            format!("{REQUEST_KEY_PREFIX}{}", hex::encode(request_id)),
        ] {
            // Waited for a moment only: with a peer gone quiet (a partition)
            // a Kademlia put waits for its query timeout, and the request is
            // already on its way directly. The put goes on in the swarm.
            let put = net.put_record(key.into_bytes(), bytes.clone());
            match tokio::time::timeout(DHT_PUT_WAIT, put).await {
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "signing request not stored in the DHT (direct delivery goes on)");
                }
                Err(_) => tracing::debug!("signing request still being stored in the DHT"),
                Ok(Ok(())) => {}
            }
        }
        if let Err(e) = net.publish(REQUESTS_TOPIC, bytes).await {
            tracing::debug!(error = %e, "signing request not gossiped (no subscriber yet)");
        }
        Ok((request_id, session_id))
    }

    /// `createSession` (legacy): announces a request and returns its session id.
    pub async fn create_session(
        &self,
        signers: &[PublicKey],
        keypair: &Keypair,
        message: [u8; 32],
        metadata: SigningMetadata,
    ) -> Result<SessionId, CoordinatorError> {
        let request_id = self
            .announce_signing_request(signers, message, keypair, metadata)
            .await?;
        lock(&self.inner.state)
            .requests
            .get(&request_id)
            .copied()
            .ok_or(CoordinatorError::UnknownRequest)
    }
}
