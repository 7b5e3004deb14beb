//! Transactions: screening the requests that name our keys (the glue to
//! [`crate::txrequest`]), announcing a transaction request, and signing a
//! whole transaction with one MuSig2 session per input the group controls.

use std::time::Duration;

use lotus_tx::{ScriptKind, SighashType, Transaction, TxOutput};
use musig2_core::{Keypair, PublicKey};
use musig2_security::{
    InputScriptType, SessionAnnouncement, SigningMetadata, TransactionRequest, TransactionType,
};
use tokio::sync::broadcast::{self, error::RecvError};
use tracing::{info, warn};

use super::{Coordinator, Inner, lock};
use crate::CoordinatorError;
use crate::events::{CoordinatorEvent, RequestId, SessionId};
use crate::txrequest::{self, RequestRefusal, TransactionView};

/// How [`Coordinator::sign_transaction`] signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSigning {
    /// The sighash type of every signature (a SIGHASH_LOTUS type; default
    /// `0x61`, SIGHASH_ALL|SIGHASH_LOTUS).
    pub sighash_type: SighashType,
    /// What kind of transaction this is, for the co-signers' policies.
    pub transaction_type: Option<TransactionType>,
    /// Free text for the co-signers' operators.
    pub purpose: Option<String>,
    /// How long each input's session may take, from announcement to signature.
    pub session_timeout: Duration,
}

impl Default for TransactionSigning {
    fn default() -> Self {
        Self {
            sighash_type: SighashType::ALL_LOTUS,
            transaction_type: Some(TransactionType::Spend),
            purpose: None,
            session_timeout: Duration::from_secs(120),
        }
    }
}

/// The result of [`Coordinator::sign_transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTransaction {
    /// The transaction with every group input signed, verified against its
    /// spent outputs.
    pub transaction: Transaction,
    /// The session that signed each group input: `(input index, session)`.
    /// After broadcasting, the coordinator of a session may call
    /// [`Coordinator::notify_broadcast_complete`] on it.
    pub sessions: Vec<(usize, SessionId)>,
}

impl Inner {
    /// Checks a request that names one of our keys ([`txrequest::check`]):
    /// counts a verified transaction, or refuses (logged with the creator's
    /// key and peer, counted, `SigningRequestRefused`).
    pub(super) fn screen_request(
        &self,
        announcement: &SessionAnnouncement,
    ) -> Result<Option<TransactionView>, RequestRefusal> {
        match txrequest::check(announcement, self.config.allow_blind_signing) {
            Ok(view) => {
                if let Some(view) = &view {
                    lock(&self.state).counters.transaction_requests_verified += 1;
                    info!(
                        request = %hex::encode(announcement.request_id),
                        input = view.input_index,
                        sighash = %hex::encode(view.sighash),
                        fee = view.fee,
                        "transaction request checked: the sighash is ours"
                    );
                }
                Ok(view)
            }
            Err(reason) => {
                // Never signable: forgotten before anyone hears of the refusal.
                lock(&self.state).pending.remove(&announcement.request_id);
                self.refuse(announcement, reason.clone());
                Err(reason)
            }
        }
    }

    /// Reports a refused request, naming its creator.
    pub(super) fn refuse(&self, announcement: &SessionAnnouncement, reason: RequestRefusal) {
        warn!(
            request = %hex::encode(announcement.request_id),
            creator = %announcement.creator_pubkey,
            creator_peer = %announcement.creator_peer_id,
            %reason,
            "signing request refused"
        );
        lock(&self.state).counters.requests_refused += 1;
        self.emit(CoordinatorEvent::SigningRequestRefused {
            request_id: announcement.request_id,
            creator_pubkey: announcement.creator_pubkey,
            creator_peer_id: announcement.creator_peer_id.clone(),
            reason,
        });
    }
}

impl Coordinator {
    /// Announces a request to sign input `input_index` of `transaction` for
    /// the group of `required` keys (ours included). The message is computed
    /// here: the input's sighash of type `metadata.sighash_type` (default
    /// `0x61`); `metadata.input_script_type` is set to Taproot. The request
    /// is checked as a co-signer will check it ([`txrequest::check`]) before
    /// it is announced, so an honest creator never sends one that is refused.
    pub async fn announce_transaction_request(
        &self,
        required: &[PublicKey],
        keypair: &Keypair,
        metadata: SigningMetadata,
        transaction: &Transaction,
        spent_outputs: &[TxOutput],
        input_index: usize,
    ) -> Result<RequestId, CoordinatorError> {
        let mut metadata = metadata;
        metadata.input_script_type = Some(InputScriptType::Taproot);
        let spent_script = spent_outputs
            .get(input_index)
            .map(|o| o.script.as_slice())
            .unwrap_or_default();
        let sighash_type = txrequest::sighash_type_for(metadata.sighash_type, spent_script);
        let message = transaction
            .sighash(input_index, spent_outputs, sighash_type)
            .map_err(|e| CoordinatorError::Transaction(format!("input {input_index}: {e}")))?
            .to_bytes();
        if metadata.amount.is_none() {
            metadata.amount = spent_outputs.get(input_index).map(|o| o.value);
        }
        let request = TransactionRequest {
            tx: transaction.serialize(),
            spent_outputs: txrequest::to_spent(spent_outputs),
            input_index: u32::try_from(input_index).map_err(|_| RequestRefusal::NoSuchInput {
                index: u32::MAX,
                inputs: transaction.inputs.len(),
            })?,
        };
        // What every co-signer will check, checked here first.
        let mut sorted = required.to_vec();
        sorted.sort();
        txrequest::check_request(&sorted, &message, &metadata, &request)?;
        self.announce(required, message, keypair, metadata, Some(request))
            .await
            .map(|(request_id, _)| request_id)
    }

    /// Signs every input of `transaction` that spends the Taproot key path
    /// of the group of `signers` (our key included): one MuSig2 session per
    /// such input, one after the other, each announced as a transaction
    /// request that every co-signer checks by recomputing its sighash. The
    /// whole spend succeeds only if every session does; the result is
    /// verified against `spent_outputs` (one per input, in order) and its
    /// txid is unchanged.
    ///
    /// This node drives its own sessions (rounds as soon as the previous one
    /// completes); the co-signers must drive theirs (the CLI `node` does, and
    /// so does [`crate::cluster::drive_rounds`]). Inputs that do not spend
    /// the group's key are left as they are (and then the final verification
    /// fails unless they were signed before).
    pub async fn sign_transaction(
        &self,
        transaction: &Transaction,
        spent_outputs: &[TxOutput],
        signers: &[PublicKey],
        keypair: &Keypair,
        options: &TransactionSigning,
    ) -> Result<SignedTransaction, CoordinatorError> {
        if spent_outputs.len() != transaction.inputs.len() {
            return Err(RequestRefusal::SpentOutputCount {
                inputs: transaction.inputs.len(),
                spent: spent_outputs.len(),
            }
            .into());
        }
        if !signers.contains(&keypair.public_key()) {
            return Err(CoordinatorError::InvalidRequest(
                "our key is not one of the signers".into(),
            ));
        }
        let group = txrequest::group_key(signers)?;
        let ours: Vec<usize> = spent_outputs
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                matches!(ScriptKind::of(&o.script), ScriptKind::P2tr { commitment, .. } if commitment == group.to_bytes())
            })
            .map(|(i, _)| i)
            .collect();
        if ours.is_empty() {
            return Err(CoordinatorError::Transaction(format!(
                "no input spends the group's Taproot key {group}"
            )));
        }
        let txid = transaction.txid();
        let mut signed = transaction.clone();
        let mut sessions = Vec::with_capacity(ours.len());
        for index in ours {
            let metadata = SigningMetadata {
                input_script_type: Some(InputScriptType::Taproot),
                sighash_type: Some(options.sighash_type.to_u8()),
                transaction_type: options.transaction_type,
                amount: spent_outputs.get(index).map(|o| o.value),
                purpose: options.purpose.clone(),
            };
            // Subscribe before announcing: no event of the session is missed.
            let mut events = self.subscribe();
            let request_id = self
                .announce_transaction_request(
                    signers,
                    keypair,
                    metadata,
                    transaction,
                    spent_outputs,
                    index,
                )
                .await?;
            let session_id = self
                .get_session_by_request(request_id)
                .ok_or(CoordinatorError::UnknownRequest)?;
            let signature = self
                .drive_own_session(session_id, &mut events, options.session_timeout)
                .await
                .map_err(|e| match e {
                    CoordinatorError::WrongState(m) => {
                        CoordinatorError::WrongState(format!("input {index}: {m}"))
                    }
                    other => other,
                })?;
            signed
                .set_taproot_key_path_signature(
                    index,
                    spent_outputs,
                    options.sighash_type,
                    &signature,
                )
                .map_err(|e| CoordinatorError::Transaction(format!("input {index}: {e}")))?;
            sessions.push((index, session_id));
        }
        signed
            .verify(spent_outputs)
            .map_err(|e| CoordinatorError::Transaction(format!("the signed transaction: {e}")))?;
        if signed.txid() != txid {
            return Err(CoordinatorError::Transaction(
                "signing changed the txid".into(),
            ));
        }
        Ok(SignedTransaction {
            transaction: signed,
            sessions,
        })
    }

    /// Runs one of our sessions to its signature: commitments (if on),
    /// round 1, round 2, each as soon as the previous completes.
    async fn drive_own_session(
        &self,
        session_id: SessionId,
        events: &mut broadcast::Receiver<CoordinatorEvent>,
        timeout: Duration,
    ) -> Result<musig2_core::Signature, CoordinatorError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => {
                    return Err(CoordinatorError::WrongState(
                        "the session did not complete in time".into(),
                    ));
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    // Missed events: the session's state says where it is.
                    if let Some(signature) =
                        self.get_session(session_id).and_then(|i| i.final_signature)
                    {
                        return Ok(signature);
                    }
                    continue;
                }
                Ok(Err(RecvError::Closed)) => {
                    return Err(CoordinatorError::WrongState("event channel closed".into()));
                }
                Ok(Ok(event)) => event,
            };
            match event {
                CoordinatorEvent::SessionReady { session_id: id, .. } if id == session_id => {
                    self.start_first_round(session_id)?;
                }
                CoordinatorEvent::NonceCommitmentsComplete(id) if id == session_id => {
                    self.start_round1(session_id)?;
                }
                CoordinatorEvent::Round1Complete(id) if id == session_id => {
                    self.start_round2(session_id)?;
                }
                CoordinatorEvent::SessionComplete {
                    session_id: id,
                    signature,
                } if id == session_id => return Ok(signature),
                CoordinatorEvent::SessionError {
                    session_id: id,
                    code,
                    signer,
                    message,
                    ..
                } if id == session_id => {
                    return Err(CoordinatorError::WrongState(format!(
                        "{}: {message} (signer {signer:?})",
                        code.as_str()
                    )));
                }
                _ => {}
            }
        }
    }

    fn start_first_round(&self, session_id: SessionId) -> Result<(), CoordinatorError> {
        let commitments = self
            .get_session(session_id)
            .is_some_and(|i| i.nonce_commitments);
        if commitments {
            self.publish_nonce_commitments(session_id)
        } else {
            self.start_round1(session_id)
        }
    }
}
