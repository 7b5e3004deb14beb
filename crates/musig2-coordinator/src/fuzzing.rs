//! A harness for the session state machine, for fuzzing (`fuzz/`, target
//! `session_state_machine`) and for the property test beside it: three
//! signers' [`Session`]s fed an arbitrary sequence of inputs decoded from
//! bytes — the local steps (commit, round 1, round 2, failover, broadcast),
//! delivery of the messages they produced in any order, duplicates, copies
//! sent to the wrong signer and garbage contributions — with no security
//! layer in front (so it reaches states the coordinator would refuse).
//!
//! After every input it checks the invariants, and panics (which is what a
//! fuzzer reports) when one breaks:
//!
//! * nothing panics;
//! * a signer produces at most one partial signature per session;
//! * a session's phase only moves forward;
//! * a final signature verifies under the session's aggregate key;
//! * a signer never blames itself, and a fault that claims proof names a
//!   signer that was made to misbehave, with evidence that checks out.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
// Panicking on a broken invariant is this module's job.

use std::collections::{HashMap, VecDeque};

use musig2_core::{
    Keypair, NonceGenInputs, PartialSignature, PublicKey, Signature, SignedContribution, Statement,
    nonce_gen,
};
use musig2_net::PeerId;
use musig2_security::{SessionAnnouncement, SessionPhase, SessionRequest, SigningMetadata};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::session::{Action, Session, SessionOptions};
use crate::wire::Body;

const N: usize = 3;

struct Harness {
    sessions: Vec<Option<Session>>,
    peers: Vec<PeerId>,
    keypairs: Vec<Keypair>,
    /// Signers the input made misbehave (garbage or equivocation).
    byzantine: [bool; N],
    queues: HashMap<(usize, usize), VecDeque<Body>>,
    last: Option<(usize, usize, Body)>,
    partials_sent: [usize; N],
    highest_phase: [SessionPhase; N],
    rng: StdRng,
    now: u64,
}

/// Runs one input sequence through three signers' sessions and checks the
/// invariants (see the module doc). Never returns early on bad input: bad
/// input is the point.
pub fn run(data: &[u8]) {
    let Some((first, ops)) = data.split_first() else {
        return;
    };
    let mut h = Harness::new(first & 1 == 1, u64::from(*first));
    for op in ops.chunks(2) {
        let (code, arg) = (
            op.first().copied().unwrap_or(0),
            op.get(1).copied().unwrap_or(0),
        );
        h.step(code, arg);
        h.check();
    }
}

impl Harness {
    fn new(commitments: bool, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let peers: Vec<PeerId> = (0..N).map(|_| PeerId::random()).collect();
        let mut keypairs: Vec<Keypair> = (0..N).map(|_| Keypair::random(&mut rng)).collect();
        keypairs.sort_by_key(Keypair::public_key);
        let keys: Vec<PublicKey> = keypairs.iter().map(Keypair::public_key).collect();
        let announcement = SessionAnnouncement::new_signed(
            SessionRequest {
                signers: keys,
                message: [9u8; 32],
                creator_peer_id: peers[0].to_string(),
                creator_addrs: vec![],
                metadata: SigningMetadata::default(),
                election_method: "lexicographic".into(),
                nonce_commitments: commitments,
                coordinator_election: true,
                created_at: 0,
                expires_at: u64::MAX / 2,
                request_nonce: [1u8; 32],
            },
            &keypairs[0],
        )
        .expect("a valid announcement");
        let options = SessionOptions {
            commitments,
            election: true,
            failover: true,
        };
        let sessions: Vec<Option<Session>> = keypairs
            .iter()
            .zip(&peers)
            .map(|(kp, peer)| {
                Some(
                    Session::new(announcement.clone(), kp.clone(), *peer, options, 0)
                        .expect("a session"),
                )
            })
            .collect();
        // Everyone joins everyone (joins are verified by the coordinator
        // before they reach a session; that path has its own tests).
        let mut sessions = sessions;
        let joins: Vec<Body> = sessions.iter().flatten().map(Session::my_join).collect();
        for (i, join) in joins.iter().enumerate() {
            let Body::SessionJoin {
                pubkey,
                peer_id,
                announcement_digest,
                signature,
                ..
            } = join
            else {
                panic!("my_join is a join");
            };
            for (j, s) in sessions.iter_mut().enumerate() {
                if let (true, Some(s)) = (i != j, s.as_mut()) {
                    s.on_join(
                        i,
                        pubkey,
                        peer_id,
                        announcement_digest,
                        signature,
                        &peers[i],
                        1,
                    )
                    .expect("a real join verifies");
                }
            }
        }
        for s in sessions.iter_mut().flatten() {
            s.check_ready();
        }
        Self {
            sessions,
            peers,
            keypairs,
            byzantine: [false; N],
            queues: HashMap::new(),
            last: None,
            partials_sent: [0; N],
            highest_phase: [SessionPhase::SessionReady; N],
            rng,
            now: 2,
        }
    }

    fn step(&mut self, code: u8, arg: u8) {
        self.now += 1;
        let now = self.now;
        let i = usize::from(arg) % N;
        let j = (i + 1 + usize::from(arg / 3) % (N - 1)) % N;
        match code % 10 {
            0 => self.local(i, |s, rng| s.publish_nonce_commitment(rng, now)),
            1 => self.local(i, |s, rng| s.start_round1(rng, now)),
            2 => self.local(i, |s, _| s.start_round2(now)),
            3 | 4 => {
                // Deliver the oldest message from i to j.
                if let Some(body) = self.queues.get_mut(&(i, j)).and_then(VecDeque::pop_front) {
                    self.deliver(i, j, body);
                }
            }
            5 => {
                // Deliver again what was delivered last (a duplicate).
                if let Some((from, to, body)) = self.last.clone() {
                    self.deliver(from, to, body);
                }
            }
            6 => {
                // A message i queued for j, delivered to the third signer
                // instead (a copy to the wrong recipient).
                let k = (0..N).find(|k| *k != i && *k != j).unwrap_or(j);
                if let Some(body) = self.queues.get(&(i, j)).and_then(|q| q.front()).cloned() {
                    self.deliver(i, k, body);
                }
            }
            7 => {
                // A garbage partial signature from i, signed by i, over a
                // garbage transcript or (odd arg) over j's own transcript.
                let mut bytes = [arg; 32];
                bytes[0] = 0;
                let transcript = match self.sessions.get(j) {
                    Some(Some(s)) if arg & 1 == 1 => s.transcript_digest().unwrap_or([arg; 32]),
                    _ => [arg; 32],
                };
                if let Ok(psig) = PartialSignature::from_slice(&bytes) {
                    self.byzantine[i] = true;
                    let statement = Statement::PartialSignature {
                        partial_sig: psig,
                        transcript,
                    };
                    let body = Body::PartialSigShare {
                        signer_index: i as u32,
                        partial_sig: psig,
                        transcript,
                        signature: self.sign(i, statement),
                    };
                    self.deliver(i, j, body);
                }
            }
            8 => self.local(i, |s, _| s.coordinator_failed()),
            9 if arg & 2 == 2 => {
                // Equivocation: i sends j a second, fresh nonce, signed.
                let key = self.keypairs[i].public_key();
                let (_, nonce) = nonce_gen(&mut self.rng, key, NonceGenInputs::default());
                self.byzantine[i] = true;
                let body = Body::NonceShare {
                    signer_index: i as u32,
                    nonce,
                    signature: self.sign(i, Statement::PublicNonce(nonce)),
                };
                self.deliver(i, j, body);
            }
            _ => {
                if arg & 1 == 0 {
                    self.local(i, |s, _| s.broadcast_complete(None));
                } else {
                    let signature = Signature::from_bytes(&[arg; 64]);
                    let digest = crate::wire::finalized_digest(&signature, None);
                    let attestation = self.sign(i, Statement::Finalized(digest));
                    self.deliver(
                        i,
                        j,
                        Body::SignatureFinalized {
                            signature,
                            txid: None,
                            attestation,
                        },
                    );
                }
            }
        }
    }

    /// `statement` signed by signer `i` for the session.
    fn sign(&self, i: usize, statement: Statement) -> Signature {
        let session_id = self
            .sessions
            .iter()
            .flatten()
            .map(|s| s.session_id)
            .next()
            .unwrap_or([0; 32]);
        SignedContribution::sign(
            session_id,
            i as u32,
            statement,
            self.keypairs[i].secret_key(),
        )
        .signature
    }

    /// A local API call on signer `i`; a misuse changes nothing.
    fn local(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Session, &mut StdRng) -> Result<Vec<Action>, crate::session::Misuse>,
    ) {
        let Some(Some(session)) = self.sessions.get_mut(i) else {
            return;
        };
        if let Ok(actions) = f(session, &mut self.rng) {
            self.apply(i, actions);
        }
    }

    /// `from`'s message reaches `to`; a fault ends `to`'s session (as the
    /// coordinator would).
    fn deliver(&mut self, from: usize, to: usize, body: Body) {
        if from == to {
            return;
        }
        self.last = Some((from, to, body.clone()));
        let now = self.now;
        let peer = self.peers[from];
        let Some(Some(session)) = self.sessions.get_mut(to) else {
            return;
        };
        let result = match body {
            Body::SessionJoin {
                pubkey,
                peer_id,
                announcement_digest,
                signature,
                ..
            } => session.on_join(
                from,
                &pubkey,
                &peer_id,
                &announcement_digest,
                &signature,
                &peer,
                now,
            ),
            Body::NonceCommit {
                commitment,
                signature,
                ..
            } => session.on_commitment(from, commitment, signature, now),
            Body::NonceShare {
                nonce, signature, ..
            } => session.on_nonce(from, nonce, signature, now),
            Body::PartialSigShare {
                partial_sig,
                transcript,
                signature,
                ..
            } => session.on_partial_sig(from, partial_sig, transcript, signature, now),
            Body::TranscriptView { contributions } => session.on_view(from, &contributions),
            Body::RoundBatch {
                contributions,
                signature,
                want,
            } => session.on_batch(from, &contributions, signature, want, now),
            Body::SignatureFinalized {
                signature,
                txid,
                attestation,
            } => session.on_finalized(from, &signature, txid, attestation),
            Body::SessionAbort { report, signature } if !session.is_done() => Err(
                crate::coordinator::judge_abort(session, from, &report, signature),
            ),
            _ => Ok(Vec::new()),
        };
        match result {
            Ok(actions) => self.apply(to, actions),
            Err(fault) => {
                // The culprit named is never the receiver itself.
                assert_ne!(fault.signer, Some(to), "a signer blamed itself: {fault:?}");
                if let crate::evidence::Blame::Proof(evidence) = &fault.blame {
                    let named = evidence.verify(&session.facts());
                    assert_eq!(
                        named.ok(),
                        fault.signer,
                        "evidence does not hold: {fault:?}"
                    );
                    let culprit = fault.signer.unwrap_or(usize::MAX);
                    assert!(
                        self.byzantine.get(culprit).copied().unwrap_or(false),
                        "an honest signer was proven guilty: {fault:?}"
                    );
                }
                let done = session.is_done();
                if !done {
                    self.sessions[to] = None;
                }
            }
        }
    }

    fn apply(&mut self, from: usize, actions: Vec<Action>) {
        for action in actions {
            let (targets, body): (Vec<usize>, Body) = match action {
                Action::SendToAll(body) => ((0..N).filter(|k| *k != from).collect(), body),
                Action::SendTo(k, body) => (vec![k], body),
                Action::Emit(_) => continue,
            };
            if matches!(body, Body::PartialSigShare { .. }) {
                self.partials_sent[from] += 1;
            }
            for k in targets {
                self.queues
                    .entry((from, k))
                    .or_default()
                    .push_back(body.clone());
            }
        }
    }

    fn check(&mut self) {
        for (i, slot) in self.sessions.iter().enumerate() {
            assert!(
                self.partials_sent[i] <= 1,
                "signer {i} produced {} partial signatures",
                self.partials_sent[i]
            );
            let Some(session) = slot else { continue };
            assert!(
                session.phase >= self.highest_phase[i],
                "signer {i}'s phase went back from {} to {}",
                self.highest_phase[i],
                session.phase
            );
            self.highest_phase[i] = session.phase;
            if let Some(signature) = session.final_signature {
                musig2_core::schnorr::verify(
                    &session.aggregate_pubkey(),
                    &session.announcement.message,
                    &signature,
                )
                .expect("a final signature verifies under the aggregate key");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary input sequences never break the invariants.
        #[test]
        fn any_input_sequence_keeps_the_invariants(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            super::run(&data);
        }
    }

    /// A well-ordered sequence completes everywhere (so the harness reaches
    /// the end states, not only the early ones).
    #[test]
    fn an_honest_sequence_completes() {
        let mut data = vec![1u8];
        for phase in [0u8, 1, 2] {
            for i in 0..3u8 {
                data.extend([phase, i]);
            }
            for _ in 0..4 {
                for arg in 0..6u8 {
                    data.extend([3, arg]);
                }
            }
        }
        super::run(&data);
        let mut h = super::Harness::new(true, 1);
        for pair in data[1..].chunks(2) {
            h.step(pair[0], pair[1]);
            h.check();
        }
        assert!(
            h.sessions
                .iter()
                .flatten()
                .all(|s| s.final_signature.is_some())
        );
    }
}
