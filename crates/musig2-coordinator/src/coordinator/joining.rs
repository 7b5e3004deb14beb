//! Joining: a received (or DHT-fetched) request, screened by the join
//! policy and opened as a session.

use super::*;

impl Coordinator {
    /// `joinSigningRequest`: joins a received (or DHT-discoverable) request.
    pub async fn join_signing_request(
        &self,
        request_id: RequestId,
        keypair: &Keypair,
    ) -> Result<SessionId, CoordinatorError> {
        let known = {
            let state = lock(&self.inner.state);
            if state.requests.contains_key(&request_id) {
                return Err(CoordinatorError::AlreadyJoined);
            }
            state.pending.get(&request_id).cloned()
        };
        let announcement = match known {
            Some(a) => a,
            None => {
                let key = format!("{REQUEST_KEY_PREFIX}{}", hex::encode(request_id));
                self.inner.fetch_announcement(key).await?
            }
        };
        if announcement.request_id != request_id {
            return Err(CoordinatorError::UnknownRequest);
        }
        self.join(announcement, keypair)
    }

    /// `joinSession` (legacy): joins by session id, fetching the announcement
    /// from the DHT if it did not arrive otherwise.
    pub async fn join_session(
        &self,
        session_id: SessionId,
        keypair: &Keypair,
    ) -> Result<(), CoordinatorError> {
        // Several requests may claim one session id (a co-signer can copy
        // the creator's fields under its own signature); prefer the one
        // whose creator key signed it first here, deterministically.
        let known = lock(&self.inner.state)
            .pending
            .values()
            .filter(|a| a.session_id().to_bytes() == session_id)
            .min_by_key(|a| (a.created_at, a.request_id))
            .cloned();
        let announcement = match known {
            Some(a) => a,
            None => {
                let key = format!("{SESSION_KEY_PREFIX}{}", hex::encode(session_id));
                self.inner.fetch_announcement(key).await?
            }
        };
        // The DHT does not authenticate keys: the record must be the session asked for.
        if announcement.session_id().to_bytes() != session_id {
            return Err(CoordinatorError::UnknownRequest);
        }
        self.join(announcement, keypair).map(|_| ())
    }

    pub(super) fn join(
        &self,
        announcement: SessionAnnouncement,
        keypair: &Keypair,
    ) -> Result<SessionId, CoordinatorError> {
        // Never sign a message this node did not compute (txrequest).
        self.inner.screen_request(&announcement)?;
        self.join_screened(announcement, keypair)
    }

    /// [`Coordinator::join`] of a request `screen_request` accepted.
    pub(super) fn join_screened(
        &self,
        announcement: SessionAnnouncement,
        keypair: &Keypair,
    ) -> Result<SessionId, CoordinatorError> {
        self.register_key(keypair);
        let now = self.inner.clock.now_ms();
        let request_id = announcement.request_id;
        let session_id = self.open(announcement, keypair, now)?;
        lock(&self.inner.state).pending.remove(&request_id);
        let join = {
            let state = lock(&self.inner.state);
            state.sessions.get(&session_id).map(|s| s.my_join())
        };
        let mut actions: Vec<Action> = join.into_iter().map(Action::SendToAll).collect();
        if let Some(session) = lock(&self.inner.state).sessions.get_mut(&session_id) {
            actions.extend(session.check_ready());
        }
        self.inner.apply(session_id, actions);
        self.inner.replay_orphans(session_id);
        Ok(session_id)
    }

    pub(super) fn open(
        &self,
        announcement: SessionAnnouncement,
        keypair: &Keypair,
        now: Millis,
    ) -> Result<SessionId, CoordinatorError> {
        let expires_at = announcement.expires_at;
        let max = self.inner.config.security.max_signers_per_request;
        if announcement.required_pubkeys.len() > max {
            return Err(CoordinatorError::InvalidRequest(format!(
                "{} signers, more than the limit of {max}",
                announcement.required_pubkeys.len()
            )));
        }
        // Cheap checks first: building the session aggregates every key.
        {
            let mut state = lock(&self.inner.state);
            let id = announcement.session_id().to_bytes();
            if state.sessions.contains_key(&id) {
                return Err(CoordinatorError::AlreadyJoined);
            }
            if state.signed_sessions.get(&id).is_some_and(|e| *e > now) {
                // A second run would sign a second nonce for this (session,
                // index): the proof of equivocation, against ourselves.
                state.counters.reruns_refused += 1;
                return Err(CoordinatorError::WrongState(
                    "this node already signed in this session; a new run needs a new request"
                        .into(),
                ));
            }
        }
        // The creator's choices bind every signer; failover is local (it has
        // no message).
        let options = SessionOptions {
            commitments: announcement.nonce_commitments,
            election: announcement.coordinator_election,
            failover: self.inner.config.enable_coordinator_failover,
        };
        let session = Session::new(
            announcement,
            keypair.clone(),
            self.inner.net.local_peer_id(),
            options,
            now,
        )
        .map_err(|m| CoordinatorError::InvalidRequest(m.0))?;
        let session_id = session.session_id;
        let known_peers = {
            // Lock order: state, then security.
            let mut state = lock(&self.inner.state);
            if state.sessions.contains_key(&session_id) {
                return Err(CoordinatorError::AlreadyJoined);
            }
            lock(&self.inner.security)
                .open_session_until(SecSessionId::from_bytes(session_id), now, expires_at)
                .map_err(|e| CoordinatorError::InvalidRequest(e.to_string()))?;
            state.requests.insert(session.request_id, session_id);
            state.sessions.insert(session_id, Box::new(session));
            state.ended.remove(&session_id);
            state.session_peers(&session_id)
        };
        // Peers of a pending session keep their connection slots (the
        // creator is known now; the others as they join).
        self.inner.exempt_peers(known_peers, true);
        Ok(session_id)
    }
}
