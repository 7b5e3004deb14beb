//! Unit tests of coordinator-relayed rounds: the sessions of n signers wired
//! through a router that can drop or alter what the relay sends.

#![allow(clippy::panic)]

use std::collections::VecDeque;

use super::tests::{feed, request};
use super::*;
use rand::SeedableRng;

/// What the router does to one message (from, to, body).
type Tamper = Box<dyn FnMut(usize, usize, &mut Body) -> bool>;

struct Router {
    s: Vec<Session>,
    peers: Vec<PeerId>,
    queue: VecDeque<(usize, usize, Body)>,
    /// Returns false to drop the message; may alter it.
    tamper: Tamper,
    /// Messages delivered, per sender.
    sent: Vec<usize>,
    faults: Vec<(usize, Fault)>,
    /// Partial signatures that came before round 1 was complete: the
    /// security layer buffers them (`PARTIAL_SIG_SHARE` is early in
    /// `NONCE_EXCHANGE`); re-delivered at the next step.
    early: Vec<(usize, usize, Body)>,
}

impl Router {
    fn new(n: usize) -> Self {
        let peers: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let mut keypairs: Vec<Keypair> = (0..n).map(|_| Keypair::random(&mut rng)).collect();
        keypairs.sort_by_key(Keypair::public_key);
        let keys: Vec<PublicKey> = keypairs.iter().map(Keypair::public_key).collect();
        let announcement =
            SessionAnnouncement::new_signed(request(&peers[0], &keys), &keypairs[0]).unwrap();
        let options = SessionOptions {
            commitments: true,
            election: true,
            failover: true,
        };
        let mut s: Vec<Session> = keypairs
            .iter()
            .zip(&peers)
            .map(|(kp, peer)| {
                Session::new(announcement.clone(), kp.clone(), *peer, options, 0).unwrap()
            })
            .collect();
        for i in 0..n {
            let join = s[i].my_join();
            for (j, x) in s.iter_mut().enumerate() {
                if i != j {
                    feed(x, i, &join, &peers[i]).unwrap();
                }
            }
        }
        for x in &mut s {
            x.check_ready();
        }
        Self {
            s,
            peers,
            queue: VecDeque::new(),
            tamper: Box::new(|_, _, _| true),
            sent: vec![0; n],
            faults: Vec::new(),
            early: Vec::new(),
        }
    }

    fn relay(&self) -> usize {
        self.s[0].relay_index.unwrap()
    }

    fn post(&mut self, from: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendToAll(body) => {
                    for to in (0..self.s.len()).filter(|t| *t != from) {
                        self.queue.push_back((from, to, body.clone()));
                    }
                }
                Action::SendTo(to, body) => self.queue.push_back((from, to, body)),
                Action::Emit(_) => {}
            }
        }
    }

    /// Delivers until nothing is in flight.
    fn run(&mut self) {
        while let Some((from, to, mut body)) = self.queue.pop_front() {
            if !(self.tamper)(from, to, &mut body) {
                continue;
            }
            self.sent[from] += 1;
            if matches!(body, Body::PartialSigShare { .. }) && self.s[to].context.is_none() {
                self.early.push((from, to, body));
                continue;
            }
            let peer = self.peers[from];
            match feed(&mut self.s[to], from, &body, &peer) {
                Ok(actions) => self.post(to, actions),
                Err(fault) => self.faults.push((to, fault)),
            }
        }
    }

    /// Every live signer takes its step of the round it is in.
    fn step(&mut self, rng: &mut rand::rngs::ThreadRng) {
        for (from, to, body) in std::mem::take(&mut self.early) {
            self.sent[from] -= 1;
            self.queue.push_back((from, to, body));
        }
        self.run();
        for i in 0..self.s.len() {
            let actions = match self.s[i].phase {
                SessionPhase::SessionReady => self.s[i].publish_nonce_commitment(rng, 2),
                SessionPhase::NonceCommit => self.s[i].start_round1(rng, 4),
                SessionPhase::NonceExchange => self.s[i].start_round2(6),
                _ => Ok(Vec::new()),
            };
            if let Ok(actions) = actions {
                self.post(i, actions);
            }
        }
        self.run();
    }

    /// Runs the rounds; each signer's relay timer fires once per round
    /// (after `fallback` steps without progress).
    fn sign(&mut self, fallback: bool) {
        let mut rng = rand::rng();
        for _ in 0..4 {
            self.step(&mut rng);
            if fallback {
                for i in 0..self.s.len() {
                    let actions = self.s[i].relay_fallback(1_000_000, 1);
                    self.post(i, actions);
                }
                self.run();
            }
        }
    }

    fn signatures(&self) -> Vec<Option<Signature>> {
        self.s.iter().map(|x| x.final_signature).collect()
    }
}

/// A session of 6: each signer sends each contribution to the relay alone
/// and gets each round in one batch; everyone ends with one valid signature.
#[test]
fn a_relayed_round_costs_two_messages_per_co_signer() {
    let mut r = Router::new(6);
    assert_eq!(r.relay(), r.s[1].relay_index.unwrap());
    let relay = r.relay();
    r.sign(false);
    assert!(r.faults.is_empty(), "{:?}", r.faults);
    let signatures = r.signatures();
    assert!(
        signatures
            .iter()
            .all(|s| s.is_some() && *s == signatures[0])
    );
    let key = r.s[0].aggregate_pubkey();
    schnorr::verify(&key, &r.s[0].announcement.message, &signatures[0].unwrap()).unwrap();
    // Co-signers: one message per round (commitment, nonce, partial
    // signature) to the relay. The relay: one batch per round to each of
    // the 5 others, plus its partial signature to each.
    for (i, sent) in r.sent.iter().enumerate() {
        if i == relay {
            assert_eq!(*sent, 5 * 4, "relay");
        } else {
            assert_eq!(*sent, 3, "signer {i}");
        }
    }
}

/// Below four signers the session exchanges directly.
#[test]
fn small_sessions_have_no_relay() {
    let r = Router::new(3);
    assert_eq!(r.s[0].relay_index, None);
}

/// A relay that relays nothing (no round, no final signature) but answers
/// when asked: each signer's relay timer fires, the holdings are exchanged
/// directly, and the session completes with nobody blamed. (A relay that
/// does not even answer withholds its own contributions: a silent signer,
/// named by the round timeout like any other.)
#[test]
fn a_relay_that_relays_nothing_is_bypassed_and_nobody_is_blamed() {
    let mut r = Router::new(5);
    let relay = r.relay();
    r.tamper = Box::new(move |from, _, body| {
        let relayed = matches!(
            body,
            Body::RoundBatch { want: false, contributions, signature }
                if contributions.len() >= 5 || signature.is_some()
        );
        !(from == relay && relayed)
    });
    r.sign(true);
    assert!(r.faults.is_empty(), "{:?}", r.faults);
    let signatures = r.signatures();
    assert!(
        signatures
            .iter()
            .all(|s| s.is_some() && *s == signatures[0])
    );
}

/// A relay that withholds from one signer only: that signer asks the
/// others (`want`), they answer, and it completes too.
#[test]
fn a_signer_the_relay_leaves_out_catches_up_from_the_others() {
    let mut r = Router::new(5);
    let relay = r.relay();
    let victim = (relay + 2) % 5;
    r.tamper = Box::new(move |from, to, body| {
        !(from == relay && to == victim && matches!(body, Body::RoundBatch { want: false, .. }))
    });
    r.sign(true);
    assert!(r.faults.is_empty(), "{:?}", r.faults);
    assert!(r.signatures().iter().all(Option::is_some));
}

/// A relay that alters a co-signer's contribution (its signature no longer
/// verifies) is named; the co-signer is not.
#[test]
fn a_relay_that_alters_a_contribution_is_named_not_its_signer() {
    let mut r = Router::new(4);
    let relay = r.relay();
    r.tamper = Box::new(move |from, _, body| {
        if let (true, Body::RoundBatch { contributions, .. }) = (from == relay, body)
            && let Some(c) = contributions
                .iter_mut()
                .find(|c| c.signer_index as usize != relay)
        {
            let mut bytes = c.signature.to_bytes();
            bytes[40] ^= 1;
            c.signature = Signature::from_bytes(&bytes);
        }
        true
    });
    r.sign(false);
    assert!(!r.faults.is_empty());
    for (at, fault) in &r.faults {
        assert_ne!(*at, relay);
        assert_eq!(fault.signer, Some(relay), "{fault:?}");
        assert!(!fault.blame.is_proof());
    }
}

/// A final signature that does not verify names the relay.
#[test]
fn a_bad_final_signature_names_the_relay() {
    let mut r = Router::new(4);
    let relay = r.relay();
    r.tamper = Box::new(move |from, _, body| {
        if let (
            true,
            Body::RoundBatch {
                signature: Some(sig),
                ..
            },
        ) = (from == relay, body)
        {
            let mut bytes = sig.to_bytes();
            bytes[63] ^= 1;
            *sig = Signature::from_bytes(&bytes);
        }
        true
    });
    r.sign(false);
    assert_eq!(r.faults.len(), 3, "{:?}", r.faults);
    assert!(r.faults.iter().all(|(_, f)| f.signer == Some(relay)));
    assert!(r.s[relay].final_signature.is_some());
}

/// A contribution that arrives both directly and in a batch costs nothing,
/// and a batch cannot make us take our own contribution or another
/// session's.
#[test]
fn a_contribution_twice_costs_nothing_and_foreign_ones_are_the_carriers_fault() {
    let mut r = Router::new(4);
    let relay = r.relay();
    let other = (relay + 1) % 4;
    let third = (relay + 2) % 4;
    let mut rng = rand::rng();
    let body = sent_body(r.s[other].publish_nonce_commitment(&mut rng, 2).unwrap());
    // Directly first, then the same in a batch from a third signer.
    let peer = r.peers[other];
    feed(&mut r.s[third], other, &body, &peer).unwrap();
    let Some(held) = r.s[third].signed_commitments[other] else {
        panic!("not held")
    };
    let batch = Body::RoundBatch {
        contributions: vec![held],
        signature: None,
        want: false,
    };
    let carrier = r.peers[relay];
    assert!(
        feed(&mut r.s[third], relay, &batch, &carrier)
            .unwrap()
            .is_empty()
    );
    // Another session's contribution in a batch: the carrier's fault.
    let mut foreign = held;
    foreign.session_id = [0xee; 32];
    let batch = Body::RoundBatch {
        contributions: vec![foreign],
        signature: None,
        want: false,
    };
    let fault = feed(&mut r.s[third], relay, &batch, &carrier).unwrap_err();
    assert_eq!(fault.signer, Some(relay));
    // An oversized batch: the carrier's fault too.
    let batch = Body::RoundBatch {
        contributions: vec![held; 13],
        signature: None,
        want: false,
    };
    let fault = feed(&mut r.s[third], relay, &batch, &carrier).unwrap_err();
    assert_eq!(fault.signer, Some(relay));
}

/// A signer that equivocates, one commitment to the relay and another
/// directly to a co-signer, is proven by the co-signer that gets both.
#[test]
fn two_commitments_one_relayed_one_direct_prove_equivocation() {
    let mut r = Router::new(4);
    let relay = r.relay();
    let liar = (relay + 1) % 4;
    let victim = (relay + 2) % 4;
    let mut rng = rand::rng();
    let first = sent_body(r.s[liar].publish_nonce_commitment(&mut rng, 2).unwrap());
    let Body::NonceCommit { commitment, .. } = first else {
        panic!("not a commitment")
    };
    // A second commitment, signed by the liar's key.
    let mut other = commitment;
    let mut bytes = postcard::to_allocvec(&other).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    other = postcard::from_bytes(&bytes).unwrap_or(other);
    assert_ne!(other, commitment);
    let second = r.s[liar].sign_statement(Statement::NonceCommitment(other));
    let peer = r.peers[liar];
    feed(&mut r.s[victim], liar, &first, &peer).unwrap();
    let batch = Body::RoundBatch {
        contributions: vec![second],
        signature: None,
        want: false,
    };
    let carrier = r.peers[relay];
    let fault = feed(&mut r.s[victim], relay, &batch, &carrier).unwrap_err();
    assert_eq!(fault.signer, Some(liar));
    assert_eq!(fault.code, ErrorCode::Equivocation);
    let Blame::Proof(evidence) = &fault.blame else {
        panic!("no proof")
    };
    assert_eq!(evidence.verify(&r.s[victim].facts()), Ok(liar));
}

fn sent_body(actions: Vec<Action>) -> Body {
    actions
        .into_iter()
        .find_map(|a| match a {
            Action::SendToAll(b) | Action::SendTo(_, b) => Some(b),
            Action::Emit(_) => None,
        })
        .unwrap()
}

/// A slow signer asked by co-signers that gave up on the relay before it
/// signed: its partial signature then goes to everyone, not to the relay
/// alone, and once complete it tells every asker the final signature, so a
/// relay that tells only that signer the result cannot leave the askers
/// waiting (and naming it). Fails if either is undone.
#[test]
fn a_slow_signer_that_was_asked_sends_its_partial_signature_to_everyone() {
    let mut r = Router::new(5);
    let relay = r.relay();
    let slow = (relay + 3) % 5;
    r.tamper = Box::new(move |from, to, body| {
        let result = matches!(
            body,
            Body::RoundBatch {
                signature: Some(_),
                ..
            }
        );
        !(from == relay && result && to != slow)
    });
    let mut rng = rand::rng();
    r.step(&mut rng); // commitments
    r.step(&mut rng); // nonces
    for i in (0..5).filter(|i| *i != slow) {
        let actions = r.s[i].start_round2(6).unwrap();
        r.post(i, actions);
    }
    r.run();
    for i in 0..5 {
        let actions = r.s[i].relay_fallback(1_000_000, 1);
        r.post(i, actions);
    }
    r.run();
    assert!(r.s.iter().all(|s| s.final_signature.is_none()));
    let actions = r.s[slow].start_round2(8).unwrap();
    r.post(slow, actions);
    r.run();
    assert!(r.faults.is_empty(), "{:?}", r.faults);
    let signatures = r.signatures();
    assert!(
        signatures
            .iter()
            .all(|s| s.is_some() && *s == signatures[0])
    );
}
