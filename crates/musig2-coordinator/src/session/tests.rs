//! Unit tests of the session state machine.

#![allow(clippy::panic)]

use super::*;
use musig2_security::{SessionRequest, SigningMetadata};
use rand::SeedableRng;

/// I1: the same session driven twice with a generator that repeats its
/// stream (a cloned process, a restored snapshot) still draws different
/// nonces, because the extra input carries a per-process salt and a
/// counter.
#[test]
fn a_repeated_random_stream_still_gives_fresh_nonces() {
    let (mut first, _) = sessions(false);
    let (mut second, _) = sessions(false);
    let (Some(a), Some(b)) = (first.get_mut(0), second.get_mut(0)) else {
        panic!("no session");
    };
    let n1 = a.generate_nonce(&mut rand::rngs::StdRng::seed_from_u64(5));
    let n2 = b.generate_nonce(&mut rand::rngs::StdRng::seed_from_u64(5));
    assert_ne!(n1, n2);
    let id = [7u8; 32];
    assert_ne!(
        nonce_extra_input(&id, &[1; 32]),
        nonce_extra_input(&id, &[1; 32])
    );
}

pub(super) fn request(peer: &PeerId, keys: &[PublicKey]) -> SessionRequest {
    SessionRequest {
        signers: keys.to_vec(),
        message: [9u8; 32],
        creator_peer_id: peer.to_string(),
        creator_addrs: vec![],
        metadata: SigningMetadata::default(),
        election_method: "lexicographic".into(),
        nonce_commitments: true,
        coordinator_election: true,
        created_at: 0,
        expires_at: 1_000_000,
        request_nonce: [1u8; 32],
    }
}

/// Three sessions, one per signer (in sorted key order), wired together
/// by hand; their keypairs and peers in the same order.
fn sessions(commitments: bool) -> (Vec<Session>, Vec<Keypair>) {
    let (s, k, _) = sessions_with_peers(commitments);
    (s, k)
}

fn sessions_with_peers(commitments: bool) -> (Vec<Session>, Vec<Keypair>, Vec<PeerId>) {
    let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut keypairs: Vec<Keypair> = (0..3).map(|_| Keypair::random(&mut rng)).collect();
    keypairs.sort_by_key(Keypair::public_key);
    let keys: Vec<PublicKey> = keypairs.iter().map(Keypair::public_key).collect();
    let announcement =
        SessionAnnouncement::new_signed(request(&peers[0], &keys), &keypairs[0]).unwrap();
    let options = SessionOptions {
        commitments,
        election: true,
        failover: true,
    };
    let mut out: Vec<Session> = keypairs
        .iter()
        .zip(&peers)
        .map(|(kp, peer)| {
            Session::new(announcement.clone(), kp.clone(), *peer, options, 0).unwrap()
        })
        .collect();
    // Everyone joins everyone.
    for i in 0..3 {
        let join = out[i].my_join();
        for (j, s) in out.iter_mut().enumerate() {
            if i != j {
                feed(s, i, &join, &peers[i]).unwrap();
            }
        }
    }
    for s in &mut out {
        s.check_ready();
        assert_eq!(s.phase, SessionPhase::SessionReady);
    }
    (out, keypairs, peers)
}

/// `body` from signer `from` (peer `peer`) reaches `s`.
pub(super) fn feed(
    s: &mut Session,
    from: usize,
    body: &Body,
    peer: &PeerId,
) -> Result<Vec<Action>, Fault> {
    match body.clone() {
        Body::SessionJoin {
            pubkey,
            peer_id,
            announcement_digest,
            signature,
            ..
        } => s.on_join(
            from,
            &pubkey,
            &peer_id,
            &announcement_digest,
            &signature,
            peer,
            1,
        ),
        Body::NonceCommit {
            commitment,
            signature,
            ..
        } => s.on_commitment(from, commitment, signature, 3),
        Body::NonceShare {
            nonce, signature, ..
        } => s.on_nonce(from, nonce, signature, 5),
        Body::PartialSigShare {
            partial_sig,
            transcript,
            signature,
            ..
        } => s.on_partial_sig(from, partial_sig, transcript, signature, 7),
        Body::TranscriptView { contributions } => s.on_view(from, &contributions),
        Body::RoundBatch {
            contributions,
            signature,
            want,
        } => s.on_batch(from, &contributions, signature, want, 9),
        other => panic!("not fed in these tests: {other:?}"),
    }
}

fn sent(actions: &[Action]) -> Body {
    actions
        .iter()
        .find_map(|a| match a {
            Action::SendToAll(b) | Action::SendTo(_, b) => Some(b.clone()),
            _ => None,
        })
        .unwrap()
}

/// Every signer publishes its nonce commitment and receives the others'.
fn exchange_commitments(s: &mut [Session], rng: &mut rand::rngs::ThreadRng) {
    let commits: Vec<Body> = s
        .iter_mut()
        .map(|x| sent(&x.publish_nonce_commitment(rng, 2).unwrap()))
        .collect();
    exchange(s, &commits);
}

/// Every signer gets every other signer's `bodies[i]`.
fn exchange(s: &mut [Session], bodies: &[Body]) {
    let peer = PeerId::random();
    for (i, b) in bodies.iter().enumerate() {
        for (j, x) in s.iter_mut().enumerate() {
            if i != j {
                feed(x, i, b, &peer).unwrap();
            }
        }
    }
}

fn round1(s: &mut [Session], rng: &mut rand::rngs::ThreadRng) -> Vec<Body> {
    let nonces: Vec<Body> = s
        .iter_mut()
        .map(|x| sent(&x.start_round1(rng, 4).unwrap()))
        .collect();
    exchange(s, &nonces);
    nonces
}

#[test]
fn a_forged_partial_signature_is_blamed_on_its_signer_with_proof() {
    let (mut s, kps) = sessions(true);
    let mut rng = rand::rng();
    exchange_commitments(&mut s, &mut rng);
    round1(&mut s, &mut rng);
    let psigs: Vec<Body> = s
        .iter_mut()
        .map(|x| sent(&x.start_round2(6).unwrap()))
        .collect();
    let Body::PartialSigShare {
        partial_sig,
        transcript,
        ..
    } = &psigs[2]
    else {
        panic!()
    };
    let mut bytes = partial_sig.to_bytes();
    bytes[31] ^= 1;
    let forged = PartialSignature::from_bytes(&bytes).unwrap();
    let statement = Statement::PartialSignature {
        partial_sig: forged,
        transcript: *transcript,
    };
    let signature =
        SignedContribution::sign(s[0].session_id, 2, statement, kps[2].secret_key()).signature;
    // Aggregate first: held unchecked while signer 1's is missing…
    assert!(
        s[0].on_partial_sig(2, forged, *transcript, signature, 7)
            .is_ok()
    );
    // …found when the round times out…
    let timed_out = s[0].invalid_partial().unwrap();
    assert_eq!(timed_out.signer, Some(2));
    // …or when the last one makes the aggregate fail.
    let peer = PeerId::random();
    let fault = feed(&mut s[0], 1, &psigs[1], &peer).unwrap_err();
    assert_eq!(
        (fault.code, fault.signer),
        (ErrorCode::InvalidPartialSignature, Some(2))
    );
    // The proof checks out at another signer, and names signer 2.
    let evidence = fault.blame.evidence().unwrap();
    assert_eq!(evidence.verify(&s[1].facts()), Ok(2));
    // The same psig signed by someone else proves nothing.
    let mut forged_evidence = evidence.clone();
    if let Evidence::InvalidPartialSignature { share, .. } = &mut forged_evidence {
        share.signature =
            SignedContribution::sign(s[0].session_id, 2, statement, kps[1].secret_key()).signature;
    }
    assert!(forged_evidence.verify(&s[1].facts()).is_err());
    // The honest one completes signer 1's view once all are in.
    feed(&mut s[1], 0, &psigs[0], &peer).unwrap();
    let actions = feed(&mut s[1], 2, &psigs[2], &peer).unwrap();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Emit(CoordinatorEvent::SessionComplete { .. })))
    );
    let sig = s[1].final_signature.unwrap();
    schnorr::verify(&s[1].aggregate_pubkey(), &[9u8; 32], &sig).unwrap();
}

#[test]
fn a_nonce_that_breaks_its_commitment_is_blamed_on_its_signer_with_proof() {
    let (mut s, kps) = sessions(true);
    let mut rng = rand::rng();
    exchange_commitments(&mut s, &mut rng);
    // Signer 1 reveals, signed, a different nonce than it committed to.
    let (_, other) = nonce_gen(&mut rng, kps[1].public_key(), NonceGenInputs::default());
    let signature = SignedContribution::sign(
        s[2].session_id,
        1,
        Statement::PublicNonce(other),
        kps[1].secret_key(),
    )
    .signature;
    let fault = s[2].on_nonce(1, other, signature, 5).unwrap_err();
    assert_eq!(
        (fault.code, fault.signer),
        (ErrorCode::NonceCommitmentMismatch, Some(1))
    );
    assert_eq!(fault.blame.evidence().unwrap().verify(&s[0].facts()), Ok(1));
}

#[test]
fn an_unsigned_contribution_is_refused_without_proof() {
    let (mut s, _) = sessions(false);
    let Body::NonceShare { nonce, .. } = sent(&s[1].start_round1(&mut rand::rng(), 2).unwrap())
    else {
        panic!()
    };
    let fault = s[0]
        .on_nonce(1, nonce, Signature::from_bytes(&[1; 64]), 3)
        .unwrap_err();
    assert_eq!(fault.signer, Some(1));
    assert!(!fault.blame.is_proof());
}

/// H5: signer 2 shows signers 0 and 1 different nonces. Their round-2
/// transcripts differ, so neither verifies (nor blames) the other's
/// partial signature; they exchange views, and each then holds signer
/// 2's two signed nonces: a proof anyone can check.
#[test]
fn nonce_equivocation_is_proven_from_the_exchanged_views() {
    let (mut s, kps) = sessions(false);
    let mut rng = rand::rng();
    let n0 = sent(&s[0].start_round1(&mut rng, 4).unwrap());
    let n1 = sent(&s[1].start_round1(&mut rng, 4).unwrap());
    let honest2 = sent(&s[2].start_round1(&mut rng, 4).unwrap());
    let (_, twin) = nonce_gen(&mut rng, kps[2].public_key(), NonceGenInputs::default());
    let signature = SignedContribution::sign(
        s[0].session_id,
        2,
        Statement::PublicNonce(twin),
        kps[2].secret_key(),
    )
    .signature;
    let equivocal2 = Body::NonceShare {
        signer_index: 2,
        nonce: twin,
        signature,
    };
    let peer = PeerId::random();
    feed(&mut s[0], 1, &n1, &peer).unwrap();
    feed(&mut s[0], 2, &honest2, &peer).unwrap();
    feed(&mut s[1], 0, &n0, &peer).unwrap();
    feed(&mut s[1], 2, &equivocal2, &peer).unwrap();
    let p0 = sent(&s[0].start_round2(6).unwrap());
    let p1 = sent(&s[1].start_round2(6).unwrap());
    let view0 = sent(&feed(&mut s[0], 1, &p1, &peer).unwrap());
    let view1 = sent(&feed(&mut s[1], 0, &p0, &peer).unwrap());
    assert_eq!(s[0].view_mismatch, vec![1]);
    assert!(matches!(view0, Body::TranscriptView { .. }));
    for (me, theirs, from) in [(0usize, &view1, 1usize), (1, &view0, 0)] {
        let fault = feed(&mut s[me], from, theirs, &peer).unwrap_err();
        assert_eq!(
            (fault.code, fault.signer),
            (ErrorCode::Equivocation, Some(2))
        );
        let Some(Evidence::Equivocation(proof)) = fault.blame.evidence() else {
            panic!("no proof: {fault:?}")
        };
        // A third party checks it with musig2-core alone.
        assert_eq!(proof.verify(), Ok(()));
        assert_eq!(proof.signer, kps[2].public_key());
    }
}

#[test]
fn a_join_for_another_announcement_is_answered_with_ours() {
    let (mut s, kps, peers) = sessions_with_peers(false);
    let mut other = s[0].announcement.clone();
    other.metadata.input_script_type = Some(InputScriptType::Taproot);
    let other = other.sign(&kps[0]);
    assert_eq!(other.session_id(), s[0].announcement.session_id());
    let theirs = Session::new(
        other.clone(),
        kps[1].clone(),
        peers[1],
        SessionOptions {
            commitments: false,
            election: true,
            failover: true,
        },
        0,
    )
    .unwrap();
    let join = theirs.my_join();
    let answer = feed(&mut s[2], 1, &join, &peers[1]).unwrap();
    assert!(matches!(
        answer.as_slice(),
        [Action::SendTo(1, Body::SigningRequest(a))] if **a == s[2].announcement
    ));
    assert_eq!(s[2].other_announcement, vec![1]);
    // The joiner, holding both, proves the creator equivocated.
    let fault = theirs
        .on_other_announcement(&s[2].announcement)
        .unwrap_err();
    assert_eq!(
        (fault.code, fault.signer),
        (ErrorCode::Equivocation, Some(0))
    );
    assert_eq!(fault.blame.evidence().unwrap().verify(&s[2].facts()), Ok(0));
    // The same announcement again proves nothing.
    assert!(
        s[2].on_other_announcement(&s[2].announcement.clone())
            .is_ok()
    );
}

#[test]
fn failover_follows_the_clock_alone() {
    let (mut s, _) = sessions(false);
    let mut rng = rand::rng();
    round1(&mut s, &mut rng);
    let psigs: Vec<Body> = s
        .iter_mut()
        .map(|x| sent(&x.start_round2(6).unwrap()))
        .collect();
    exchange(&mut s, &psigs);
    for x in &mut s {
        x.completed_at = Some(1_000);
    }
    let first = s[0].coordinator_index();
    // Before the timeout nothing moves; after k timeouts every node is
    // at attempt k + 1, whenever and however often it looks.
    assert!(s[0].failover_due(1_000 + 299, 300).is_empty());
    s[0].failover_due(1_000 + 300, 300);
    s[1].failover_due(1_000 + 450, 300);
    s[2].failover_due(1_000 + 599, 300);
    let backups: Vec<Option<usize>> = s.iter().map(Session::coordinator_index).collect();
    assert!(backups.iter().all(|b| *b == backups[0]));
    assert_ne!(backups[0], first);
    assert_eq!(s[0].failover.as_ref().unwrap().attempt(), 2);
    s[0].failover_due(1_000 + 900, 300);
    assert_eq!(s[0].failover.as_ref().unwrap().attempt(), 3);
    // A confirmation stops it.
    s[1].broadcast_complete(None).unwrap();
    assert!(s[1].failover_due(1_000 + 10_000, 300).is_empty());
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let (mut s, _) = sessions(false);
    assert!(s[0].start_round2(1).is_err(), "round 2 before round 1");
    assert!(
        s[0].publish_nonce_commitment(&mut rand::rng(), 1).is_err(),
        "commitments are off"
    );
    assert!(
        s[0].coordinator_failed().is_err(),
        "failover before completion"
    );
    assert!(
        s[0].broadcast_complete(None).is_err(),
        "broadcast before completion"
    );
    // The same nonce again (it may come directly and in a batch) costs
    // nothing; a second, different nonce from the same signer is refused.
    let n = sent(&s[1].start_round1(&mut rand::rng(), 2).unwrap());
    let peer = PeerId::random();
    feed(&mut s[0], 1, &n, &peer).unwrap();
    assert!(feed(&mut s[0], 1, &n, &peer).unwrap().is_empty());
    let other = sent(&s[2].start_round1(&mut rand::rng(), 2).unwrap());
    let Body::NonceShare { nonce, .. } = other else {
        panic!("not a nonce")
    };
    let second = Body::NonceShare {
        signer_index: 1,
        nonce,
        signature: s[1].sign_statement(Statement::PublicNonce(nonce)).signature,
    };
    assert_eq!(
        feed(&mut s[0], 1, &second, &peer).unwrap_err().signer,
        Some(1)
    );
}

#[test]
fn an_unknown_election_method_is_refused() {
    let (s, kps) = sessions(false);
    let mut announcement = s[0].announcement.clone();
    announcement.election_method = "random".into();
    let options = SessionOptions {
        commitments: false,
        election: true,
        failover: true,
    };
    assert!(Session::new(announcement, kps[0].clone(), PeerId::random(), options, 0).is_err());
}

/// M-2: a view is taken only from a co-signer whose transcript differed,
/// once, and no longer than 2·n statements; anything else is that
/// co-signer's fault (observed), never an equivocation of anyone else.
#[test]
fn views_are_bounded_solicited_and_taken_once() {
    let (mut s, _) = sessions(false);
    let mut rng = rand::rng();
    let nonces = round1(&mut s, &mut rng);
    let Body::NonceShare { .. } = &nonces[1] else {
        panic!()
    };
    // Unsolicited: signer 1's transcript never differed from ours.
    let view = s[1].view_body();
    let fault = feed(&mut s[0], 1, &view, &PeerId::random()).unwrap_err();
    assert_eq!(
        (fault.code, fault.signer),
        (ErrorCode::InvalidContribution, Some(1))
    );
    assert!(!fault.blame.is_proof());
    // Solicited once: accepted (no conflict, nothing happens); a repeat or
    // an oversized one is refused.
    s[2].view_mismatch.push(1);
    assert!(
        feed(&mut s[2], 1, &view, &PeerId::random())
            .unwrap()
            .is_empty()
    );
    assert!(feed(&mut s[2], 1, &view, &PeerId::random()).is_err());
    s[2].view_mismatch.push(0);
    let Body::TranscriptView { contributions } = s[0].view_body() else {
        panic!()
    };
    let oversized = Body::TranscriptView {
        contributions: contributions.iter().cycle().take(7).copied().collect(),
    };
    assert!(feed(&mut s[2], 0, &oversized, &PeerId::random()).is_err());
}
