//! The seed corpus: real encodings made by the project's own encoders
//! (signed announcements and advertisements, every direct-message body, the
//! frames around them, Chronik protobuf answers, a raw transaction).
//!
//! `cargo xtask fuzz-seeds` writes them to `fuzz/seeds/<target>/<name>`
//! (checked in); `cargo xtask fuzz` runs each target on a working corpus
//! outside the clone, reading these as a second, read-only corpus.

use lotus_tx::{OutPoint, Transaction, TxId, TxInput, TxOutput};
use musig2_coordinator::Evidence;
use musig2_coordinator::wire::{self, AbortReport, Body, WireMessage};
use musig2_core::{
    EquivocationProof, Keypair, NonceCommitment, NonceGenInputs, PartialSignature, SecretKey,
    SignedContribution, Statement, nonce_gen, schnorr,
};
use musig2_identity::chronik::proto;
use musig2_net::NodeKeypair;
use musig2_net::codec::WIRE_VERSION;
use musig2_security::{
    InputScriptType, SessionAnnouncement, SessionRequest, Signed, SignerAdvertisement,
    SigningMetadata, TransactionType,
};
use prost::Message as _;
use rand::SeedableRng;

use crate::NOW;

/// One seed file: the target it belongs to, its file name, its bytes.
pub struct Seed {
    /// The fuzz target.
    pub target: &'static str,
    /// The file name.
    pub name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

type Result<T> = core::result::Result<T, Box<dyn std::error::Error>>;

fn keypair(seed: u8) -> Result<Keypair> {
    let mut bytes = [0x42u8; 32];
    bytes[31] = seed;
    Ok(Keypair::new(SecretKey::from_bytes(&bytes)?))
}

/// A real libp2p peer id string (ed25519 key from a fixed seed).
fn peer_id(seed: u8) -> Result<String> {
    let mut secret = [seed; 32];
    let key = NodeKeypair::ed25519_from_bytes(&mut secret)?;
    Ok(key.public().to_peer_id().to_string())
}

/// A signed three-signer announcement and a second, minimal one.
pub fn announcements() -> Result<Vec<(String, SessionAnnouncement)>> {
    let creator = keypair(1)?;
    let full = SessionAnnouncement::new_signed(
        SessionRequest {
            signers: vec![
                keypair(3)?.public_key(),
                creator.public_key(),
                keypair(2)?.public_key(),
            ],
            message: [0x5a; 32],
            creator_peer_id: peer_id(1)?,
            creator_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            metadata: SigningMetadata {
                input_script_type: Some(InputScriptType::Taproot),
                sighash_type: Some(0x61),
                transaction_type: Some(TransactionType::Custody),
                amount: Some(1_000_000),
                purpose: Some("rent".into()),
            },
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: NOW - 100_000,
            expires_at: NOW + 500_000,
            request_nonce: [7; 32],
        },
        &creator,
    )?;
    let minimal = SessionAnnouncement::new_signed(
        SessionRequest {
            signers: vec![creator.public_key(), keypair(4)?.public_key()],
            message: [0; 32],
            creator_peer_id: peer_id(1)?,
            creator_addrs: vec![],
            metadata: SigningMetadata::default(),
            election_method: "hash-based".into(),
            nonce_commitments: false,
            coordinator_election: false,
            created_at: NOW - 1,
            expires_at: NOW + 1,
            request_nonce: [9; 32],
        },
        &creator,
    )?;
    // A transaction request: input 0 of a spend from the group's Taproot
    // address, its message the recomputed sighash (what co-signers accept).
    let signers = vec![creator.public_key(), keypair(4)?.public_key()];
    let group = musig2_coordinator::txrequest::group_key(&signers)?;
    let group_script = lotus_tx::script::p2tr(&group, None);
    let tx = Transaction {
        version: 2,
        inputs: vec![TxInput {
            prev_out: OutPoint::new(TxId::from_internal_bytes([0x11; 32]), 0),
            script_sig: Vec::new(),
            sequence: 0xffff_ffff,
        }],
        outputs: vec![TxOutput::new(90_000, group_script.clone())],
        lock_time: 0,
    };
    let spent = vec![TxOutput::new(100_000, group_script)];
    let message = tx
        .sighash(0, &spent, lotus_tx::SighashType::ALL_LOTUS)?
        .to_bytes();
    let transaction = SessionAnnouncement::new_signed_with_transaction(
        SessionRequest {
            signers,
            message,
            creator_peer_id: peer_id(1)?,
            creator_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            metadata: SigningMetadata {
                input_script_type: Some(InputScriptType::Taproot),
                ..SigningMetadata::default()
            },
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: NOW - 1_000,
            expires_at: NOW + 500_000,
            request_nonce: [5; 32],
        },
        Some(musig2_security::TransactionRequest {
            tx: tx.serialize(),
            spent_outputs: musig2_coordinator::txrequest::to_spent(&spent),
            input_index: 0,
        }),
        &creator,
    )?;
    Ok(vec![
        ("full".into(), full),
        ("minimal".into(), minimal),
        ("transaction".into(), transaction),
    ])
}

/// Signed advertisements: several transaction types, and one.
pub fn advertisements() -> Result<Vec<(String, SignerAdvertisement)>> {
    let kp = keypair(9)?;
    let many = SignerAdvertisement::new_signed(
        &kp,
        peer_id(9)?,
        vec![
            "/ip4/10.0.0.1/tcp/4001".into(),
            "/dns4/x.example/tcp/443/wss".into(),
        ],
        vec![TransactionType::Spend, TransactionType::Channel],
        NOW - 100_000,
        NOW + 3_600_000,
    );
    let one = SignerAdvertisement::new_signed(
        &keypair(10)?,
        peer_id(10)?,
        vec![],
        vec![TransactionType::Swap],
        NOW,
        NOW + 1,
    );
    Ok(vec![("many".into(), many), ("one".into(), one)])
}

/// One direct message per body variant.
pub fn wire_messages() -> Result<Vec<(String, WireMessage)>> {
    let announcement = announcements()?
        .into_iter()
        .next()
        .map(|(_, a)| a)
        .ok_or("no announcement")?;
    let session_id = announcement.session_id().to_bytes();
    let signer = keypair(2)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (_secret, nonce) = nonce_gen(&mut rng, signer.public_key(), NonceGenInputs::default());
    let peer = peer_id(2)?;
    let announcement_digest = announcement.digest();
    let digest = wire::join_digest(
        &announcement.request_id,
        &announcement_digest,
        &signer.public_key(),
        &peer,
    );
    let signed = |statement: Statement| {
        SignedContribution::sign(session_id, 1, statement, signer.secret_key())
    };
    let commitment = NonceCommitment::commit(&session_id, &signer.public_key(), &nonce);
    let partial_sig = PartialSignature::from_bytes(&[0x11; 32])?;
    let (_, other_nonce) = nonce_gen(&mut rng, signer.public_key(), NonceGenInputs::default());
    let report = AbortReport {
        code: "EQUIVOCATION".into(),
        culprits: vec![1],
        evidence: Some(Evidence::Equivocation(EquivocationProof {
            signer: signer.public_key(),
            first: signed(Statement::PublicNonce(nonce)),
            second: signed(Statement::PublicNonce(other_nonce)),
        })),
        reason: "signer 1 sent different nonces".into(),
        relayed: None,
    };
    let final_signature = schnorr::sign(signer.secret_key(), &[3; 32]);
    let finalized = wire::finalized_digest(&final_signature, Some(&[4; 32]));
    let bodies = vec![
        (
            "signing_request",
            Body::SigningRequest(Box::new(announcement)),
        ),
        (
            "session_join",
            Body::SessionJoin {
                signer_index: 1,
                pubkey: signer.public_key(),
                peer_id: peer,
                announcement_digest,
                signature: schnorr::sign(signer.secret_key(), &digest),
            },
        ),
        (
            "nonce_commit",
            Body::NonceCommit {
                signer_index: 1,
                commitment,
                signature: signed(Statement::NonceCommitment(commitment)).signature,
            },
        ),
        (
            "nonce_share",
            Body::NonceShare {
                signer_index: 1,
                nonce,
                signature: signed(Statement::PublicNonce(nonce)).signature,
            },
        ),
        (
            "partial_sig_share",
            Body::PartialSigShare {
                signer_index: 1,
                partial_sig,
                transcript: [5; 32],
                signature: signed(Statement::PartialSignature {
                    partial_sig,
                    transcript: [5; 32],
                })
                .signature,
            },
        ),
        (
            "session_abort",
            Body::SessionAbort {
                signature: signed(Statement::Abort(report.digest())).signature,
                report: Box::new(report),
            },
        ),
        (
            "signature_finalized",
            Body::SignatureFinalized {
                signature: final_signature,
                txid: Some([4; 32]),
                attestation: signed(Statement::Finalized(finalized)).signature,
            },
        ),
        (
            "validation_error",
            Body::ValidationError {
                code: "INVALID_NONCE".into(),
                detail: "signer 1".into(),
            },
        ),
        (
            "transcript_view",
            Body::TranscriptView {
                contributions: vec![
                    signed(Statement::NonceCommitment(commitment)),
                    signed(Statement::PublicNonce(nonce)),
                ],
            },
        ),
        (
            "round_batch",
            Body::RoundBatch {
                contributions: vec![
                    signed(Statement::NonceCommitment(commitment)),
                    signed(Statement::PublicNonce(nonce)),
                ],
                signature: None,
                want: true,
            },
        ),
    ];
    Ok(bodies
        .into_iter()
        .enumerate()
        .map(|(i, (name, body))| {
            (
                name.to_owned(),
                WireMessage {
                    session_id,
                    sequence: i as u64 + 1,
                    sent_at: NOW,
                    body,
                },
            )
        })
        .collect())
}

/// A frame as `FrameCodec::write_frame` writes it.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len() + 1).unwrap_or(u32::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.push(WIRE_VERSION);
    out.extend_from_slice(payload);
    out
}

/// A small Lotus transaction spending one output into a burn-like script.
pub fn transaction() -> Transaction {
    Transaction {
        version: 2,
        inputs: vec![TxInput {
            prev_out: OutPoint {
                txid: TxId::from_internal_bytes([0xab; 32]),
                vout: 1,
            },
            script_sig: vec![0x51],
            sequence: 0xffff_ffff,
        }],
        outputs: vec![
            TxOutput {
                value: 1_000_000_000,
                script: b"\x6a\x04MSg2\x01".to_vec(),
            },
            TxOutput {
                value: 546,
                script: vec![0x76, 0xa9, 0x14, 0, 0, 0, 0, 0x88, 0xac],
            },
        ],
        lock_time: 0,
    }
}

/// Every seed of every target.
pub fn all() -> Result<Vec<Seed>> {
    let mut seeds = Vec::new();
    let mut push = |target: &'static str, name: String, bytes: Vec<u8>| {
        seeds.push(Seed {
            target,
            name,
            bytes,
        })
    };

    for (name, a) in announcements()? {
        let bytes = postcard::to_allocvec(&a)?;
        push("session_announcement", name.clone(), bytes.clone());
        for (selector, prefix) in [(0u8, "session"), (1, "request")] {
            push(
                "dht_record",
                format!("{prefix}_{name}"),
                [&[selector], &bytes[..]].concat(),
            );
        }
        for (author, who) in [(0u8, "author"), (1, "stranger"), (2, "anonymous")] {
            push(
                "gossip_payload",
                format!("requests_{name}_{who}"),
                [&[0, author], &bytes[..]].concat(),
            );
        }
    }
    for (name, ad) in advertisements()? {
        let bytes = postcard::to_allocvec(&ad)?;
        push("signer_advertisement", name.clone(), bytes.clone());
        push(
            "dht_record",
            format!("signer_{name}"),
            [&[2], &bytes[..]].concat(),
        );
        for t in &ad.transaction_types {
            let topic = 1 + TransactionType::ALL
                .iter()
                .position(|x| x == t)
                .unwrap_or(0) as u8;
            push(
                "gossip_payload",
                format!("{t}_{name}_author"),
                [&[topic, 0], &bytes[..]].concat(),
            );
        }
    }
    let mut stream = Vec::new();
    for (name, m) in wire_messages()? {
        let bytes = wire::encode(&m)?;
        push("wire_message", name.clone(), bytes.clone());
        // Selector 0: the production frame limit (100 000 bytes).
        push("direct_frame", name, [&[0], &frame(&bytes)[..]].concat());
        stream.extend_from_slice(&frame(&bytes));
    }
    push(
        "direct_frame",
        "stream_of_every_body".into(),
        [&[0], &stream[..]].concat(),
    );
    // Selector 1: a 16-byte limit, and a frame exactly at it.
    push(
        "direct_frame",
        "at_limit".into(),
        [&[1], &frame(&[0x55; 16])[..]].concat(),
    );

    let tx = transaction();
    push("lotus_tx", "burn_spend".into(), tx.serialize());
    let info = proto::BlockchainInfo {
        tip_hash: vec![0x11; 32],
        tip_height: 1_000_000,
    };
    push(
        "chronik_response",
        "blockchain_info".into(),
        [&[0], &info.encode_to_vec()[..]].concat(),
    );
    let block = proto::BlockMetadata {
        height: 999_000,
        hash: vec![0x22; 32],
        timestamp: 1_764_000_000,
    };
    let msg = proto::Tx::from_transaction(&tx, Some(block), proto::Network::Xpi);
    push(
        "chronik_response",
        "tx".into(),
        [&[1], &msg.encode_to_vec()[..]].concat(),
    );
    let error = proto::Error {
        error_code: "tx-not-found".into(),
        msg: "Transaction not found in the index".into(),
        is_user_error: true,
    };
    push(
        "chronik_response",
        "error".into(),
        [&[2], &error.encode_to_vec()[..]].concat(),
    );
    let broadcast = proto::BroadcastTxResponse {
        txid: [0x5a; 32].to_vec(),
    };
    push(
        "chronik_response",
        "broadcast_tx".into(),
        [&[3], &broadcast.encode_to_vec()[..]].concat(),
    );
    Ok(seeds)
}
