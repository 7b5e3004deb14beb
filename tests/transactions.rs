//! Transaction-aware signing over real libp2p swarms on 127.0.0.1: a group
//! spends from its Taproot address with one MuSig2 session per input, every
//! co-signer recomputing the sighash from the transaction; a creator whose
//! message does not match its transaction is refused and named; a join
//! policy that dislikes the outputs refuses. No mocks, no sleeps: every wait
//! is for an event (or a counter) with a deadline that fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod byzantine;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use byzantine::Byzantine;
use lotus_tx::{
    Address, Destination, Network, OutPoint, SighashType, Transaction, TxId, TxInput, TxOutput,
};
use musig2_coordinator::cluster::{ClusterNode, LocalCluster, drive_rounds};
use musig2_coordinator::coordinator::TransactionSigning;
use musig2_coordinator::txrequest::{self, RequestRefusal};
use musig2_coordinator::wire::Body;
use musig2_coordinator::{CoordinatorConfig, CoordinatorEvent, JoinDecision, JoinPolicy};
use musig2_core::{Keypair, PublicKey};
use musig2_security::{
    InputScriptType, SessionAnnouncement, SessionRequest, SigningMetadata, TransactionRequest,
};

const WAIT: Duration = Duration::from_secs(60);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Transaction requests only: blind signing off, as the CLI node runs.
fn config() -> CoordinatorConfig {
    init_logs();
    CoordinatorConfig {
        auto_join: true,
        allow_blind_signing: false,
        ..CoordinatorConfig::default()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The group's Taproot script (key path of the MuSig2 aggregate of `keys`).
fn group_script(keys: &[PublicKey]) -> Vec<u8> {
    lotus_tx::script::p2tr(&txrequest::group_key(keys).unwrap(), None)
}

/// A spend of two UTXOs of the group (100 000 and 80 000 sats) paying
/// `payee` 150 000 sats, change back to the group, fee 5 000.
fn two_input_spend(keys: &[PublicKey], payee: &PublicKey) -> (Transaction, Vec<TxOutput>) {
    let script = group_script(keys);
    let input = |b: u8| TxInput {
        prev_out: OutPoint::new(TxId::from_internal_bytes([b; 32]), 1),
        script_sig: Vec::new(),
        sequence: 0xffff_ffff,
    };
    let tx = Transaction {
        version: 2,
        inputs: vec![input(0xa1), input(0xa2)],
        outputs: vec![
            TxOutput::new(150_000, lotus_tx::script::p2pkh_for_key(payee)),
            TxOutput::new(25_000, script.clone()),
        ],
        lock_time: 0,
    };
    let spent = vec![
        TxOutput::new(100_000, script.clone()),
        TxOutput::new(80_000, script),
    ];
    (tx, spent)
}

/// The first `SigningRequestRefused` at `node`: (creator key, creator peer, reason).
async fn refused(node: &mut ClusterNode) -> (PublicKey, String, RequestRefusal) {
    node.wait_for(WAIT, |e| match e {
        CoordinatorEvent::SigningRequestRefused {
            creator_pubkey,
            creator_peer_id,
            reason,
            ..
        } => Some((*creator_pubkey, creator_peer_id.clone(), reason.clone())),
        _ => None,
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_of_three_group_spends_a_two_input_transaction() {
    let cluster = LocalCluster::start(3, config()).await.unwrap();
    let keys = cluster.pubkeys();
    let payee = Keypair::random(&mut rand::rng()).public_key();
    let (tx, spent) = two_input_spend(&keys, &payee);
    let drivers: Vec<_> = cluster.nodes[1..]
        .iter()
        .map(|n| drive_rounds(n.coordinator.clone()))
        .collect();

    let creator = &cluster.nodes[0];
    let signed = creator
        .coordinator
        .sign_transaction(
            &tx,
            &spent,
            &keys,
            &creator.keypair,
            &TransactionSigning::default(),
        )
        .await
        .unwrap();

    // One session per input, both signed; the whole transaction verifies
    // under lotus-tx and keeps its txid.
    assert_eq!(
        signed.sessions.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_ne!(signed.sessions[0].1, signed.sessions[1].1);
    signed.transaction.verify(&spent).unwrap();
    assert_eq!(signed.transaction.txid(), tx.txid());
    let reparsed = Transaction::parse(&signed.transaction.serialize()).unwrap();
    reparsed.verify(&spent).unwrap();
    // A flipped signature bit fails at that input.
    let mut broken = signed.transaction.clone();
    if let Some(byte) = broken.inputs[1].script_sig.get_mut(10) {
        *byte ^= 1;
    }
    assert!(broken.verify(&spent).is_err());

    // Every co-signer recomputed both sighashes itself (the creator built them).
    for node in &cluster.nodes[1..] {
        let counters = node.coordinator.counters();
        assert_eq!(counters.transaction_requests_verified, 2, "{counters:?}");
        assert_eq!(counters.requests_refused, 0);
        for (_, session) in &signed.sessions {
            // The creator may finish before the co-signers' last partial
            // signatures arrive: wait (bounded) for each to complete too.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while node
                .coordinator
                .get_session(*session)
                .unwrap()
                .final_signature
                .is_none()
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a co-signer never completed"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert!(
                node.coordinator
                    .get_session(*session)
                    .unwrap()
                    .final_signature
                    .is_some()
            );
        }
    }
    for d in drivers {
        d.abort();
    }
    cluster.shutdown().await;
}

/// A signed request from `creator` (peer `peer`) for `keys`, whose message
/// and transaction are given as they are (nothing is checked here).
fn forged(
    creator: &Keypair,
    peer: String,
    keys: &[PublicKey],
    message: [u8; 32],
    transaction: TransactionRequest,
    nonce: u8,
) -> SessionAnnouncement {
    SessionAnnouncement::new_signed_with_transaction(
        SessionRequest {
            signers: keys.to_vec(),
            message,
            creator_peer_id: peer,
            creator_addrs: vec![],
            metadata: SigningMetadata {
                input_script_type: Some(InputScriptType::Taproot),
                ..SigningMetadata::default()
            },
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: now_ms(),
            expires_at: now_ms() + 3_600_000,
            request_nonce: [nonce; 32],
        },
        Some(transaction),
        creator,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creator_whose_message_is_not_the_sighash_is_refused_and_named() {
    let mut cluster = LocalCluster::start(2, config()).await.unwrap();
    let mut byz = Byzantine::near(&cluster.nodes[1]).await;
    let liar = Keypair::random(&mut rand::rng());
    let mut keys = cluster.pubkeys();
    keys.push(liar.public_key());
    keys.sort();
    let payee = Keypair::random(&mut rand::rng()).public_key();
    let (tx, spent) = two_input_spend(&keys, &payee);
    let request = |input_index| TransactionRequest {
        tx: tx.serialize(),
        spent_outputs: txrequest::to_spent(&spent),
        input_index,
    };
    let real = tx.sighash(0, &spent, SighashType::ALL_LOTUS).unwrap();
    let other = tx.sighash(1, &spent, SighashType::ALL_LOTUS).unwrap();
    let peer = byz.peer_id().to_string();

    // 1. The message is input 1's sighash, the request says input 0: the
    //    co-signer would sign a hash it did not compute for this input.
    let a = forged(&liar, peer.clone(), &keys, other.to_bytes(), request(0), 1);
    let lie = a.request_id;
    byz.send_body(
        &cluster.nodes[1],
        [0; 32],
        Body::SigningRequest(Box::new(a)),
    )
    .await;
    let (key, named_peer, reason) = refused(&mut cluster.nodes[1]).await;
    assert_eq!(
        (key, named_peer.as_str()),
        (liar.public_key(), peer.as_str())
    );
    assert!(
        matches!(reason, RequestRefusal::MessageMismatch { index: 0, ref computed, .. } if *computed == hex::encode(real.to_bytes())),
        "{reason:?}"
    );

    // 2. A transaction that does not parse.
    let mut bad = request(0);
    bad.tx.truncate(10);
    let a = forged(&liar, peer.clone(), &keys, real.to_bytes(), bad, 2);
    byz.send_body(
        &cluster.nodes[1],
        [0; 32],
        Body::SigningRequest(Box::new(a)),
    )
    .await;
    let (key, _, reason) = refused(&mut cluster.nodes[1]).await;
    assert_eq!(key, liar.public_key());
    assert!(
        matches!(reason, RequestRefusal::Undecodable(_)),
        "{reason:?}"
    );

    // 3. A correct sighash of an input that is not the group's: the spent
    //    outputs belong to another group.
    let strangers: Vec<PublicKey> = (0..3)
        .map(|_| Keypair::random(&mut rand::rng()).public_key())
        .collect();
    let (tx2, spent2) = two_input_spend(&strangers, &payee);
    let m2 = tx2.sighash(0, &spent2, SighashType::ALL_LOTUS).unwrap();
    let a = forged(
        &liar,
        peer.clone(),
        &keys,
        m2.to_bytes(),
        TransactionRequest {
            tx: tx2.serialize(),
            spent_outputs: txrequest::to_spent(&spent2),
            input_index: 0,
        },
        3,
    );
    byz.send_body(
        &cluster.nodes[1],
        [0; 32],
        Body::SigningRequest(Box::new(a)),
    )
    .await;
    let (key, _, reason) = refused(&mut cluster.nodes[1]).await;
    assert_eq!(key, liar.public_key());
    assert!(
        matches!(reason, RequestRefusal::NotGroupInput { index: 0, .. }),
        "{reason:?}"
    );

    // 4. A bare 32-byte message: blind signing is off.
    let blind = SessionAnnouncement::new_signed(
        SessionRequest {
            signers: keys.clone(),
            message: real.to_bytes(),
            creator_peer_id: peer.clone(),
            creator_addrs: vec![],
            metadata: SigningMetadata::default(),
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: now_ms(),
            expires_at: now_ms() + 3_600_000,
            request_nonce: [4; 32],
        },
        &liar,
    )
    .unwrap();
    byz.send_body(
        &cluster.nodes[1],
        [0; 32],
        Body::SigningRequest(Box::new(blind)),
    )
    .await;
    let (key, _, reason) = refused(&mut cluster.nodes[1]).await;
    assert_eq!(key, liar.public_key());
    assert_eq!(reason, RequestRefusal::BlindSigning);

    // Counted, never joined, and the node still works.
    let node = &cluster.nodes[1];
    assert_eq!(node.coordinator.counters().requests_refused, 4);
    assert_eq!(node.coordinator.counters().transaction_requests_verified, 0);
    assert_eq!(node.coordinator.get_session_by_request(lie), None);
    assert_eq!(node.coordinator.state_sizes().pending, 0);
    cluster.shutdown().await;
}

/// What the policy saw of a request: (fee, group inputs, output addresses).
type PolicySaw = (u64, Vec<usize>, Vec<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_outputs_the_policy_rejects_is_refused() {
    init_logs();
    let allowed = Keypair::random(&mut rand::rng()).public_key();
    let seen: Arc<Mutex<Vec<PolicySaw>>> = Arc::default();
    let policy: JoinPolicy = {
        let seen = Arc::clone(&seen);
        Arc::new(move |request| {
            // Only transactions, and only paying `allowed` or the group.
            let Some(tx) = request.transaction else {
                return JoinDecision::Refuse("not a transaction".into());
            };
            let addresses = tx
                .outputs
                .iter()
                .filter_map(|o| o.address(Network::Livenet).map(|a| a.to_string()))
                .collect();
            seen.lock()
                .unwrap()
                .push((tx.fee, tx.group_inputs().collect(), addresses));
            let unknown = tx.outputs.iter().find(|o| {
                !o.to_group
                    && o.destination != Some(Address::p2pkh(Network::Livenet, &allowed).destination)
            });
            match unknown {
                Some(o) => JoinDecision::Refuse(format!(
                    "output {} pays {} sats to an address not on the list",
                    o.index, o.amount
                )),
                None => JoinDecision::Join,
            }
        })
    };
    let cfg = CoordinatorConfig {
        join_policy: policy,
        ..config()
    };
    let mut cluster = LocalCluster::start(3, cfg).await.unwrap();
    let keys = cluster.pubkeys();
    let stranger = Keypair::random(&mut rand::rng()).public_key();
    let (tx, spent) = two_input_spend(&keys, &stranger);
    let creator = cluster.nodes[0].coordinator.clone();
    let creator_key = cluster.nodes[0].keypair.clone();
    let signing = {
        let (keys, tx, spent) = (keys.clone(), tx.clone(), spent.clone());
        tokio::spawn(async move {
            let options = TransactionSigning {
                session_timeout: Duration::from_secs(5),
                ..TransactionSigning::default()
            };
            creator
                .sign_transaction(&tx, &spent, &keys, &creator_key, &options)
                .await
        })
    };
    let creator_peer = cluster.nodes[0].coordinator.local_peer_id().to_string();
    let creator_pubkey = cluster.nodes[0].keypair.public_key();
    for node in cluster.nodes[1..].iter_mut() {
        let (key, peer, reason) = refused(node).await;
        assert_eq!((key, peer), (creator_pubkey, creator_peer.clone()));
        assert!(
            matches!(&reason, RequestRefusal::Policy(r) if r.contains("output 0 pays 150000 sats")),
            "{reason:?}"
        );
        assert_eq!(node.coordinator.counters().requests_refused, 1);
        // The policy saw the decoded transaction: fee, group inputs, addresses.
        // (Its sighash had been recomputed before it was asked.)
        assert_eq!(node.coordinator.counters().transaction_requests_verified, 1);
    }
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let group_address = Address::new(
            Network::Livenet,
            Destination::P2tr(txrequest::group_key(&keys).unwrap()),
        );
        for (fee, inputs, addresses) in seen.iter() {
            assert_eq!(*fee, 5_000);
            assert_eq!(inputs, &[0, 1]);
            assert_eq!(
                addresses,
                &[
                    Address::p2pkh(Network::Livenet, &stranger).to_string(),
                    group_address.to_string()
                ]
            );
        }
    }
    // Nobody joined: the creator's spend fails instead of signing anything.
    let result = signing.await.unwrap();
    assert!(result.is_err(), "{result:?}");
    cluster.shutdown().await;
}
