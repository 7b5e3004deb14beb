//! Transaction-aware signing requests: what a co-signer checks before it
//! signs anything, and what its join policy sees.
//!
//! A [`SessionAnnouncement`] may carry a [`TransactionRequest`]: the unsigned
//! transaction, the outputs its inputs spend and the input the session signs.
//! Every co-signer decodes it with `lotus-tx` and recomputes the sighash
//! itself ([`check`]); it never signs a 32-byte message it did not compute.
//! A request is refused ([`RequestRefusal`]) when:
//!
//! * the transaction does not parse, or the spent outputs do not match its
//!   inputs, or the input does not exist;
//! * the input does not spend the group's aggregate key: the spent script
//!   must be the P2TR key path of the Taproot commitment
//!   `Q = P + H_TapTweak(P ‖ 0^32)·G` of the MuSig2 aggregate `P` of the
//!   request's signers (and the request must say `input_script_type = taproot`,
//!   so that the session signs under `Q`);
//! * the sighash type is not a SIGHASH_LOTUS type (lotusd refuses anything
//!   else on a Taproot key path). By default the type follows the spent
//!   script (P2TR → `0x61`); a request may name another allowed type in
//!   `metadata.sighash_type`;
//! * the request's `message` is not the recomputed sighash;
//! * the outputs spend more than the inputs.
//!
//! A request without a transaction (a bare 32-byte message) is "blind
//! signing": allowed for library users by default
//! ([`crate::CoordinatorConfig::allow_blind_signing`]), refused by the CLI
//! node unless its configuration says otherwise.
//!
//! This module does no I/O; `Coordinator` calls [`check`] on every request
//! that names one of its keys, before the join policy and before any join.

use lotus_tx::{
    Address, Destination, KEY_PATH_ONLY, Network, OutPoint, ScriptKind, SighashAlgorithm,
    SighashType, TaprootKey, Transaction, TxOutput,
};
use musig2_core::{KeyAggContext, Lotus, PublicKey};
use musig2_security::{
    InputScriptType, SessionAnnouncement, SigningMetadata, SpentOutput, TransactionRequest,
};

/// Why a co-signer refuses a signing request. The coordinator logs it with
/// the creator's key and peer, counts it and emits
/// [`crate::CoordinatorEvent::SigningRequestRefused`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestRefusal {
    /// A bare 32-byte message, and this node does not sign blind.
    #[error("the request carries no transaction and blind signing is off")]
    BlindSigning,
    /// The transaction does not parse.
    #[error("the transaction does not parse: {0}")]
    Undecodable(String),
    /// Not one spent output per input.
    #[error("{spent} spent outputs for {inputs} inputs")]
    SpentOutputCount {
        /// Inputs of the transaction.
        inputs: usize,
        /// Spent outputs in the request.
        spent: usize,
    },
    /// The input to sign does not exist.
    #[error("input {index} does not exist ({inputs} inputs)")]
    NoSuchInput {
        /// The requested input.
        index: u32,
        /// Inputs of the transaction.
        inputs: usize,
    },
    /// The request does not say `input_script_type = taproot`.
    #[error("a transaction request must have input_script_type = taproot")]
    NotTaproot,
    /// The input does not spend the group's Taproot key path.
    #[error("input {index} spends a {kind} output, not the group's Taproot key {group}")]
    NotGroupInput {
        /// The input.
        index: usize,
        /// What its spent script is (`p2pkh`, `p2tr`, …).
        kind: &'static str,
        /// The group's Taproot commitment key `Q`.
        group: PublicKey,
    },
    /// A sighash type that a Taproot key path cannot use.
    #[error("sighash type 0x{0:02x} is not a SIGHASH_LOTUS type")]
    SighashTypeNotAllowed(u8),
    /// The sighash cannot be computed (e.g. SINGLE without a matching output).
    #[error("the sighash of input {index} cannot be computed: {reason}")]
    Sighash {
        /// The input.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The request's message is not the sighash this node computed.
    #[error("the message {claimed} is not the sighash {computed} of input {index}")]
    MessageMismatch {
        /// The input.
        index: usize,
        /// The request's message, hex.
        claimed: String,
        /// The recomputed sighash, hex.
        computed: String,
    },
    /// The outputs spend more than the inputs (or an amount overflows).
    #[error("the outputs ({outputs} sats) exceed the inputs ({inputs} sats)")]
    Overspend {
        /// Σ spent amounts.
        inputs: u64,
        /// Σ output amounts.
        outputs: u64,
    },
    /// The group's keys cannot be aggregated.
    #[error("the signers cannot be aggregated: {0}")]
    KeyAggregation(String),
    /// The join policy said no.
    #[error("refused by the join policy: {0}")]
    Policy(String),
}

/// One output of the decoded transaction, for the join policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputView {
    /// Its index.
    pub index: usize,
    /// Its amount, in satoshis.
    pub amount: u64,
    /// Its scriptPubKey.
    pub script_pubkey: Vec<u8>,
    /// What the script pays to, when an address can express it (P2PKH,
    /// P2SH, P2TR without state).
    pub destination: Option<Destination>,
    /// Whether it pays back to the group's Taproot key (change).
    pub to_group: bool,
}

impl OutputView {
    /// Its XAddress on `network`, when it has one.
    pub fn address(&self, network: Network) -> Option<Address> {
        self.destination.map(|d| Address::new(network, d))
    }
}

/// One input of the decoded transaction, for the join policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputView {
    /// Its index.
    pub index: usize,
    /// The output it spends.
    pub prev_out: OutPoint,
    /// The amount of that output, in satoshis.
    pub amount: u64,
    /// Whether it spends the group's aggregate key (P2TR key path of `Q`).
    pub spends_group: bool,
}

/// A transaction request, decoded and checked: what the join policy sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionView {
    /// The unsigned transaction.
    pub transaction: Transaction,
    /// The outputs its inputs spend, in input order.
    pub spent_outputs: Vec<TxOutput>,
    /// The input this request signs.
    pub input_index: usize,
    /// The sighash type of its signature.
    pub sighash_type: SighashType,
    /// The sighash this node computed (equal to the request's message).
    pub sighash: [u8; 32],
    /// The group's Taproot commitment key `Q` (the key the signature verifies under).
    pub group_key: PublicKey,
    /// Every input.
    pub inputs: Vec<InputView>,
    /// Every output.
    pub outputs: Vec<OutputView>,
    /// Σ spent amounts.
    pub total_in: u64,
    /// Σ output amounts.
    pub total_out: u64,
    /// `total_in − total_out`, in satoshis.
    pub fee: u64,
}

impl TransactionView {
    /// The inputs that spend the group's aggregate key (each needs its own
    /// MuSig2 session).
    pub fn group_inputs(&self) -> impl Iterator<Item = usize> + '_ {
        self.inputs
            .iter()
            .filter(|i| i.spends_group)
            .map(|i| i.index)
    }
}

/// The group's Taproot commitment key `Q` for `signers` (MuSig2 aggregate of
/// the sorted keys, key-path-only Taproot tweak): the key a Taproot request's
/// session signs under.
pub fn group_key(signers: &[PublicKey]) -> Result<PublicKey, RequestRefusal> {
    let ctx = KeyAggContext::<Lotus>::new_sorted(signers)
        .map_err(|e| RequestRefusal::KeyAggregation(e.to_string()))?;
    TaprootKey::new(&ctx.aggregate_pubkey(), &KEY_PATH_ONLY)
        .map(|t| t.commitment())
        .map_err(|e| RequestRefusal::KeyAggregation(e.to_string()))
}

/// The request's spent outputs in `lotus-tx` form.
pub fn spent_outputs(request: &TransactionRequest) -> Vec<TxOutput> {
    request
        .spent_outputs
        .iter()
        .map(|o| TxOutput::new(o.amount, o.script_pubkey.clone()))
        .collect()
}

/// `lotus-tx` spent outputs in the announcement's form.
pub fn to_spent(outputs: &[TxOutput]) -> Vec<SpentOutput> {
    outputs
        .iter()
        .map(|o| SpentOutput {
            amount: o.value,
            script_pubkey: o.script.clone(),
        })
        .collect()
}

/// The sighash type a request's signature uses: `metadata.sighash_type` if
/// set, else the spent script's default (P2TR → `0x61` SIGHASH_ALL|LOTUS,
/// P2PKH → `0x41` SIGHASH_ALL|FORKID, as `Session::sighash_type`).
pub fn sighash_type_for(explicit: Option<u8>, spent_script: &[u8]) -> SighashType {
    match (explicit, ScriptKind::of(spent_script)) {
        (Some(t), _) => SighashType::from_u8(t),
        (None, ScriptKind::P2pkh { .. }) => SighashType::ALL_FORKID,
        (None, _) => SighashType::ALL_LOTUS,
    }
}

/// Checks a request: `Ok(None)` for a bare-message request when
/// `allow_blind` is set, `Ok(Some(view))` for a transaction request whose
/// message is the sighash this function recomputed, otherwise why not.
pub fn check(
    announcement: &SessionAnnouncement,
    allow_blind: bool,
) -> Result<Option<TransactionView>, RequestRefusal> {
    match &announcement.transaction {
        None if allow_blind => Ok(None),
        None => Err(RequestRefusal::BlindSigning),
        Some(request) => check_request(
            &announcement.required_pubkeys,
            &announcement.message,
            &announcement.metadata,
            request,
        )
        .map(Some),
    }
}

/// [`check`] of a transaction request's parts: the sorted signer keys, the
/// message to sign, the signed metadata and the transaction.
pub fn check_request(
    signers: &[PublicKey],
    message: &[u8; 32],
    metadata: &SigningMetadata,
    request: &TransactionRequest,
) -> Result<TransactionView, RequestRefusal> {
    let transaction =
        Transaction::parse(&request.tx).map_err(|e| RequestRefusal::Undecodable(e.to_string()))?;
    let spent = spent_outputs(request);
    if spent.len() != transaction.inputs.len() {
        return Err(RequestRefusal::SpentOutputCount {
            inputs: transaction.inputs.len(),
            spent: spent.len(),
        });
    }
    let index = usize::try_from(request.input_index)
        .ok()
        .filter(|i| *i < transaction.inputs.len())
        .ok_or(RequestRefusal::NoSuchInput {
            index: request.input_index,
            inputs: transaction.inputs.len(),
        })?;
    if metadata.input_script_type != Some(InputScriptType::Taproot) {
        return Err(RequestRefusal::NotTaproot);
    }
    let group = group_key(signers)?;
    let is_group = |script: &[u8]| matches!(ScriptKind::of(script), ScriptKind::P2tr { commitment, .. } if commitment == group.to_bytes());
    let signed_script = spent
        .get(index)
        .map(|o| o.script.as_slice())
        .unwrap_or_default();
    if !is_group(signed_script) {
        return Err(RequestRefusal::NotGroupInput {
            index,
            kind: ScriptKind::of(signed_script).name(),
            group,
        });
    }
    let sighash_type = sighash_type_for(metadata.sighash_type, signed_script);
    match sighash_type.decode() {
        Ok((SighashAlgorithm::Lotus, _)) => {}
        _ => return Err(RequestRefusal::SighashTypeNotAllowed(sighash_type.to_u8())),
    }
    let sighash = transaction
        .sighash(index, &spent, sighash_type)
        .map_err(|e| RequestRefusal::Sighash {
            index,
            reason: e.to_string(),
        })?
        .to_bytes();
    if sighash != *message {
        return Err(RequestRefusal::MessageMismatch {
            index,
            claimed: hex::encode(message),
            computed: hex::encode(sighash),
        });
    }
    let total_in = spent
        .iter()
        .try_fold(0u64, |sum, o| sum.checked_add(o.value));
    let total_out = transaction.total_output_value();
    let (total_in, total_out) = match (total_in, total_out) {
        (Some(i), Some(o)) if o <= i => (i, o),
        (i, o) => {
            return Err(RequestRefusal::Overspend {
                inputs: i.unwrap_or(u64::MAX),
                outputs: o.unwrap_or(u64::MAX),
            });
        }
    };
    let inputs = transaction
        .inputs
        .iter()
        .zip(&spent)
        .enumerate()
        .map(|(i, (input, out))| InputView {
            index: i,
            prev_out: input.prev_out,
            amount: out.value,
            spends_group: is_group(&out.script),
        })
        .collect();
    let outputs = transaction
        .outputs
        .iter()
        .enumerate()
        .map(|(i, out)| OutputView {
            index: i,
            amount: out.value,
            script_pubkey: out.script.clone(),
            destination: Address::from_script(Network::Livenet, &out.script)
                .ok()
                .map(|a| a.destination),
            to_group: is_group(&out.script),
        })
        .collect();
    Ok(TransactionView {
        transaction,
        spent_outputs: spent,
        input_index: index,
        sighash_type,
        sighash,
        group_key: group,
        inputs,
        outputs,
        total_in,
        total_out,
        fee: total_in - total_out,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use lotus_tx::{TxId, TxInput};
    use musig2_core::{Keypair, SecretKey};
    use musig2_security::{SessionRequest, TransactionType};

    fn keypair(byte: u8) -> Keypair {
        Keypair::new(SecretKey::from_bytes(&[byte; 32]).unwrap())
    }

    struct Case {
        signers: Vec<Keypair>,
        tx: Transaction,
        spent: Vec<TxOutput>,
    }

    /// A 3-key group spending two outputs of its Taproot address (and one
    /// P2PKH output of someone else), paying a P2PKH address and change.
    fn case() -> Case {
        let signers = vec![keypair(1), keypair(2), keypair(3)];
        let keys: Vec<_> = signers.iter().map(Keypair::public_key).collect();
        let group = group_key(&keys).unwrap();
        let group_script = lotus_tx::script::p2tr(&group, None);
        let other = lotus_tx::script::p2pkh_for_key(&keypair(9).public_key());
        let input = |b: u8| TxInput {
            prev_out: OutPoint::new(TxId::from_internal_bytes([b; 32]), u32::from(b)),
            script_sig: Vec::new(),
            sequence: 0xffff_ffff,
        };
        let tx = Transaction {
            version: 2,
            inputs: vec![input(1), input(2), input(3)],
            outputs: vec![
                TxOutput::new(150_000, other.clone()),
                TxOutput::new(40_000, group_script.clone()),
            ],
            lock_time: 0,
        };
        let spent = vec![
            TxOutput::new(100_000, group_script.clone()),
            TxOutput::new(80_000, group_script),
            TxOutput::new(20_000, other),
        ];
        Case { signers, tx, spent }
    }

    fn announcement(
        case: &Case,
        input: u32,
        message: [u8; 32],
        metadata: SigningMetadata,
        tx: Vec<u8>,
    ) -> SessionAnnouncement {
        let creator = &case.signers[0];
        SessionAnnouncement::new_signed_with_transaction(
            SessionRequest {
                signers: case.signers.iter().map(Keypair::public_key).collect(),
                message,
                creator_peer_id: "12D3KooWCreator".into(),
                creator_addrs: vec![],
                metadata,
                election_method: "lexicographic".into(),
                nonce_commitments: true,
                coordinator_election: true,
                created_at: 1,
                expires_at: 2,
                request_nonce: [7; 32],
            },
            Some(TransactionRequest {
                tx,
                spent_outputs: to_spent(&case.spent),
                input_index: input,
            }),
            creator,
        )
        .unwrap()
    }

    fn taproot() -> SigningMetadata {
        SigningMetadata {
            input_script_type: Some(InputScriptType::Taproot),
            transaction_type: Some(TransactionType::Spend),
            ..SigningMetadata::default()
        }
    }

    fn sighash(case: &Case, input: usize, t: SighashType) -> [u8; 32] {
        case.tx.sighash(input, &case.spent, t).unwrap().to_bytes()
    }

    #[test]
    fn a_matching_request_is_decoded_for_the_policy() {
        let c = case();
        for input in [0usize, 1] {
            let a = announcement(
                &c,
                input as u32,
                sighash(&c, input, SighashType::ALL_LOTUS),
                taproot(),
                c.tx.serialize(),
            );
            let view = check(&a, false).unwrap().unwrap();
            assert_eq!(view.input_index, input);
            assert_eq!(view.sighash_type, SighashType::ALL_LOTUS);
            assert_eq!(view.total_in, 200_000);
            assert_eq!(view.total_out, 190_000);
            assert_eq!(view.fee, 10_000);
            assert_eq!(view.group_inputs().collect::<Vec<_>>(), [0, 1]);
            assert!(!view.outputs[0].to_group && view.outputs[1].to_group);
            assert_eq!(
                view.outputs[0].address(Network::Regtest).unwrap(),
                Address::p2pkh(Network::Regtest, &keypair(9).public_key())
            );
        }
        // Another allowed type, named in the metadata.
        let meta = SigningMetadata {
            sighash_type: Some(0xe1),
            ..taproot()
        };
        let a = announcement(
            &c,
            1,
            sighash(&c, 1, SighashType::ALL_LOTUS_ANYONECANPAY),
            meta,
            c.tx.serialize(),
        );
        assert_eq!(
            check(&a, false).unwrap().unwrap().sighash_type.to_u8(),
            0xe1
        );
    }

    #[test]
    fn every_bad_request_is_refused_with_its_reason() {
        let c = case();
        let good = sighash(&c, 0, SighashType::ALL_LOTUS);
        // A message that is not the sighash (here: input 1's).
        let a = announcement(
            &c,
            0,
            sighash(&c, 1, SighashType::ALL_LOTUS),
            taproot(),
            c.tx.serialize(),
        );
        assert!(matches!(
            check(&a, true),
            Err(RequestRefusal::MessageMismatch { index: 0, .. })
        ));
        // A transaction that does not parse.
        let mut bytes = c.tx.serialize();
        bytes.push(0);
        let a = announcement(&c, 0, good, taproot(), bytes);
        assert!(matches!(
            check(&a, true),
            Err(RequestRefusal::Undecodable(_))
        ));
        // An input that is not the group's (P2PKH of someone else).
        let a = announcement(
            &c,
            2,
            sighash(&c, 2, SighashType::ALL_FORKID),
            taproot(),
            c.tx.serialize(),
        );
        assert!(matches!(
            check(&a, true),
            Err(RequestRefusal::NotGroupInput {
                index: 2,
                kind: "p2pkh",
                ..
            })
        ));
        // No such input.
        let a = announcement(&c, 3, good, taproot(), c.tx.serialize());
        assert!(matches!(
            check(&a, true),
            Err(RequestRefusal::NoSuchInput { index: 3, .. })
        ));
        // Not marked Taproot: the session would not sign under Q.
        let a = announcement(&c, 0, good, SigningMetadata::default(), c.tx.serialize());
        assert_eq!(check(&a, true), Err(RequestRefusal::NotTaproot));
        // A FORKID type on a Taproot key path.
        let meta = SigningMetadata {
            sighash_type: Some(0x41),
            ..taproot()
        };
        let a = announcement(&c, 0, good, meta, c.tx.serialize());
        assert_eq!(
            check(&a, true),
            Err(RequestRefusal::SighashTypeNotAllowed(0x41))
        );
        // Another group: the same transaction is not theirs.
        let mut other = case();
        other.signers[2] = keypair(4);
        let a = announcement(&other, 0, good, taproot(), c.tx.serialize());
        assert!(matches!(
            check(&a, true),
            Err(RequestRefusal::NotGroupInput { kind: "p2tr", .. })
        ));
        // Outputs above the inputs.
        let mut rich = case();
        rich.tx.outputs[0].value = 1_000_000;
        let m = sighash(&rich, 0, SighashType::ALL_LOTUS);
        let a = announcement(&rich, 0, m, taproot(), rich.tx.serialize());
        assert!(matches!(
            check(&a, true),
            Err(RequestRefusal::Overspend { .. })
        ));
    }

    #[test]
    fn a_blind_request_is_signed_only_when_allowed() {
        let c = case();
        let mut a = announcement(&c, 0, [5; 32], taproot(), c.tx.serialize());
        a.transaction = None;
        assert_eq!(check(&a, true), Ok(None));
        assert_eq!(check(&a, false), Err(RequestRefusal::BlindSigning));
    }
}
