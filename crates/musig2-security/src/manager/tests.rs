//! Every rule through the manager, at, just below and just above its limit,
//! with an injected clock.

use musig2_core::{Keypair, SecretKey, Signature};

use super::*;
use crate::announcement::{
    SESSION_ANNOUNCEMENT_VERSION, SessionRequest, Signed, SigningMetadata, TransactionType,
};
use crate::phase::{MessageKind, SenderRole, SessionPhase};
use crate::reputation::BlacklistReason;
use crate::rule::Rule;
use crate::time::{Clock, ManualClock};

const T0: Millis = 1_764_000_000_000;
const HOUR: Millis = 3_600_000;

fn keypair(i: u32) -> Keypair {
    let mut b = [0x24u8; 32];
    b[28..].copy_from_slice(&i.to_be_bytes());
    Keypair::new(SecretKey::from_bytes(&b).unwrap())
}

fn peer(name: &str) -> PeerId {
    PeerId::from(name)
}

fn ad(kp: &Keypair, peer: &str, created_at: Millis) -> SignerAdvertisement {
    SignerAdvertisement::new_signed(
        kp,
        peer,
        vec!["/ip4/127.0.0.1/tcp/4001".into()],
        vec![TransactionType::Spend],
        created_at,
        created_at + HOUR,
    )
}

fn announcement(
    creator: &Keypair,
    peer: &str,
    created_at: Millis,
    nonce: u8,
) -> SessionAnnouncement {
    SessionAnnouncement::new_signed(
        SessionRequest {
            signers: vec![creator.public_key(), keypair(1_000).public_key()],
            message: [9; 32],
            creator_peer_id: peer.into(),
            creator_addrs: vec![],
            metadata: SigningMetadata::default(),
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at,
            expires_at: created_at + HOUR,
            request_nonce: [nonce; 32],
        },
        creator,
    )
    .unwrap()
}

fn rule_of<T: core::fmt::Debug>(r: Result<T, Rejection>) -> Rule {
    r.expect_err("expected a rejection").rule
}

fn direct(
    session: SessionId,
    kind: MessageKind,
    sequence: u64,
    phase: SessionPhase,
    now: Millis,
) -> DirectMessage {
    DirectMessage {
        session_id: session,
        kind,
        sequence,
        sent_at: now,
        phase,
        sender_role: SenderRole::Participant,
        size: 200,
    }
}

#[test]
fn manager_is_send() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<SecurityManager>();
    assert_send::<Rejection>();
    assert_send::<SecurityEvent>();
}

#[test]
fn advertisement_size_at_below_above() {
    let mut m = SecurityManager::default();
    let kp = keypair(1);
    let a = ad(&kp, "p", T0);
    for (delivery, max) in [
        (Delivery::Gossip, 10_000),
        (Delivery::Dht, 10_000),
        (Delivery::Direct, 100_000),
    ] {
        assert_eq!(m.check_size(&peer("p"), delivery, max - 1, T0), Ok(()));
        assert_eq!(m.check_size(&peer("p"), delivery, max, T0), Ok(()));
        let expected = if delivery == Delivery::Direct {
            Rule::MessageSize
        } else {
            Rule::AdvertisementSize
        };
        assert_eq!(
            rule_of(m.check_size(&peer("p"), delivery, max + 1, T0)),
            expected
        );
    }
    assert_eq!(
        rule_of(m.check_signer_advertisement(&peer("p"), Delivery::Gossip, 10_001, &a, T0)),
        Rule::AdvertisementSize
    );
    assert_eq!(
        m.check_signer_advertisement(&peer("p"), Delivery::Gossip, 10_000, &a, T0),
        Ok(())
    );
    // Oversize is spam: three size violations, three spam counts.
    assert_eq!(m.peer_score(&peer("p")).spam_count, 4);
}

#[test]
fn direct_message_size_at_below_above() {
    let mut m = SecurityManager::default();
    let s = SessionId::from_bytes([1; 32]);
    m.open_session(s, T0).unwrap();
    let mut msg = direct(
        s,
        MessageKind::SessionJoin,
        1,
        SessionPhase::SigningRequest,
        T0,
    );
    msg.size = 100_001;
    assert_eq!(
        rule_of(m.check_direct_message(&peer("p"), &msg, T0)),
        Rule::MessageSize
    );
    msg.size = 100_000;
    assert_eq!(
        m.check_direct_message(&peer("p"), &msg, T0),
        Ok(Admission::Process)
    );
    msg.size = 99_999;
    msg.sequence = 2;
    msg.kind = MessageKind::ValidationError;
    assert_eq!(
        m.check_direct_message(&peer("p"), &msg, T0),
        Ok(Admission::Process)
    );
}

#[test]
fn timestamp_skew_at_below_above() {
    let clock = ManualClock::new(T0);
    let now = clock.now_ms();
    let skew = 300_000;
    let mut m = SecurityManager::default();
    // Each case from a fresh key and peer so the rate limit does not interfere.
    let mut case = 0u32;
    let mut check = |m: &mut SecurityManager, created_at: Millis, delivery: Delivery| {
        case += 1;
        let name = format!("p{case}");
        m.check_signer_advertisement(
            &peer(&name),
            delivery,
            500,
            &ad(&keypair(case), &name, created_at),
            now,
        )
    };
    assert_eq!(check(&mut m, now + skew - 1, Delivery::Gossip), Ok(()));
    assert_eq!(check(&mut m, now + skew, Delivery::Gossip), Ok(()));
    assert_eq!(
        rule_of(check(&mut m, now + skew + 1, Delivery::Gossip)),
        Rule::TimestampSkew
    );
    assert_eq!(
        rule_of(check(&mut m, now + skew + 1, Delivery::Dht)),
        Rule::TimestampSkew
    );
    assert_eq!(check(&mut m, now - skew + 1, Delivery::Gossip), Ok(()));
    assert_eq!(check(&mut m, now - skew, Delivery::Gossip), Ok(()));
    assert_eq!(
        rule_of(check(&mut m, now - skew - 1, Delivery::Gossip)),
        Rule::TimestampSkew
    );
    // A stored DHT record may be old.
    assert_eq!(check(&mut m, now - skew - 1, Delivery::Dht), Ok(()));

    // Direct messages: sent_at either way.
    let s = SessionId::from_bytes([2; 32]);
    m.open_session(s, now).unwrap();
    let mut seq = 0;
    let mut send = |m: &mut SecurityManager, sent_at: Millis| {
        seq += 1;
        let mut msg = direct(
            s,
            MessageKind::ValidationError,
            seq,
            SessionPhase::SigningRequest,
            now,
        );
        msg.sent_at = sent_at;
        m.check_direct_message(&peer("d"), &msg, now)
    };
    assert!(send(&mut m, now + skew).is_ok());
    assert_eq!(rule_of(send(&mut m, now + skew + 1)), Rule::TimestampSkew);
    assert!(send(&mut m, now - skew).is_ok());
    assert_eq!(rule_of(send(&mut m, now - skew - 1)), Rule::TimestampSkew);
}

#[test]
fn expiry_at_below_above() {
    let mut m = SecurityManager::default();
    let kp = keypair(1);
    let mut a = ad(&kp, "p", T0);
    a.expires_at = T0 + 1_000;
    let a = a.sign(&kp);
    assert_eq!(
        m.check_signer_advertisement(&peer("p"), Delivery::Gossip, 500, &a, T0 + 999),
        Ok(())
    );
    let mut m = SecurityManager::default();
    assert_eq!(
        m.check_signer_advertisement(&peer("p"), Delivery::Gossip, 500, &a, T0 + 1_000)
            .map_err(|r| r.detail),
        Err(Violation::Expired {
            expires_at: T0 + 1_000,
            now: T0 + 1_000
        })
    );
    assert_eq!(
        rule_of(m.check_signer_advertisement(&peer("p"), Delivery::Gossip, 500, &a, T0 + 1_001)),
        Rule::Expired
    );
    // Expired copies (stale DHT records) are not blamed.
    assert!(m.peer_score(&peer("p")).is_clean());

    let ann = announcement(&kp, "p", T0, 1);
    assert_eq!(
        rule_of(m.check_session_announcement(&peer("p"), Delivery::Dht, 500, &ann, T0 + HOUR)),
        Rule::Expired
    );
    assert_eq!(
        m.check_session_announcement(&peer("p"), Delivery::Dht, 500, &ann, T0 + HOUR - 1),
        Ok(())
    );
}

#[test]
fn advertisement_rate_at_below_above() {
    let clock = ManualClock::new(T0);
    let mut m = SecurityManager::default();
    let kp = keypair(1);
    let p = peer("p");
    let first = ad(&kp, "p", T0);
    assert_eq!(
        m.check_signer_advertisement(&p, Delivery::Gossip, 500, &first, clock.now_ms()),
        Ok(())
    );
    // The same advertisement again (GossipSub + DHT): accepted, not blamed.
    let later = clock.advance(30_000);
    assert_eq!(
        m.check_signer_advertisement(&p, Delivery::Dht, 500, &first, later),
        Ok(())
    );
    // 59 999 ms after the previous one: too fast.
    let now = clock.advance(29_999);
    let fast = ad(&kp, "p", T0 + 59_999);
    let r = m.check_signer_advertisement(&p, Delivery::Gossip, 500, &fast, now);
    assert_eq!(
        r.map_err(|r| r.detail),
        Err(Violation::RateLimited {
            created_at: T0 + 59_999,
            previous: T0,
            min_interval_ms: 60_000
        })
    );
    // Exactly 60 000 ms: fine; and delivery jitter does not matter (it arrives "early").
    let on_time = ad(&kp, "p", T0 + 60_000);
    assert_eq!(
        m.check_signer_advertisement(&p, Delivery::Gossip, 500, &on_time, now),
        Ok(())
    );
    let next = ad(&kp, "p", T0 + 120_001);
    assert_eq!(
        m.check_signer_advertisement(&p, Delivery::Gossip, 500, &next, clock.advance(60_002)),
        Ok(())
    );
    // An older one arriving late is superseded, not blamed.
    assert_eq!(
        rule_of(m.check_signer_advertisement(&p, Delivery::Dht, 500, &on_time, clock.now_ms())),
        Rule::Superseded
    );
    let score = m.peer_score(&p);
    assert_eq!(score.rate_limit_violations, 1);
    assert_eq!(score.spam_count, 0);
    let metrics = m.metrics(clock.now_ms());
    assert_eq!(metrics.accepted_advertisements, 3);
    assert_eq!(metrics.duplicate_advertisements, 1);
    assert_eq!(metrics.rate_limit_violations, 1);
    assert_eq!(metrics.rejected(Rule::Superseded), 1);
}

#[test]
fn rate_limit_violations_graylist_at_threshold() {
    let mut m = SecurityManager::default();
    let kp = keypair(1);
    let p = peer("p");
    m.check_signer_advertisement(&p, Delivery::Gossip, 500, &ad(&kp, "p", T0), T0)
        .unwrap();
    for i in 1..=9 {
        let r = m.check_signer_advertisement(&p, Delivery::Gossip, 500, &ad(&kp, "p", T0 + i), T0);
        assert_eq!(rule_of(r), Rule::RateLimit);
    }
    assert!(m.is_allowed(&p, T0));
    assert!(m.drain_events().is_empty());
    // The 10th violation graylists for an hour.
    let r = m.check_signer_advertisement(&p, Delivery::Gossip, 500, &ad(&kp, "p", T0 + 10), T0);
    assert_eq!(rule_of(r), Rule::RateLimit);
    assert_eq!(
        m.drain_events(),
        vec![SecurityEvent::PeerGraylisted {
            peer: p.clone(),
            duration_ms: HOUR,
            until: T0 + HOUR
        }]
    );
    let later = ad(&kp, "p", T0 + HOUR - 1);
    assert_eq!(
        m.check_signer_advertisement(&p, Delivery::Gossip, 500, &later, T0 + HOUR - 1)
            .map_err(|r| r.detail),
        Err(Violation::Graylisted { until: T0 + HOUR })
    );
    let after = ad(&kp, "p", T0 + HOUR);
    assert_eq!(
        m.check_signer_advertisement(&p, Delivery::Gossip, 500, &after, T0 + HOUR),
        Ok(())
    );
    assert_eq!(m.metrics(T0).graylisted_peers, 1);
    assert_eq!(m.metrics(T0 + HOUR).graylisted_peers, 0);
    assert_eq!(m.metrics(T0).graylistings_total, 1);
}

#[test]
fn key_quota_at_below_above() {
    let clock = ManualClock::new(T0);
    let mut m = SecurityManager::default();
    let p = peer("p");
    // Ten keys, each advertised a minute apart: all accepted.
    for i in 0..10 {
        let now = clock.advance(60_000);
        let a = ad(&keypair(i), "p", now);
        assert_eq!(
            m.check_signer_advertisement(&p, Delivery::Gossip, 500, &a, now),
            Ok(()),
            "key {i}"
        );
    }
    assert_eq!(m.peer_keys(&p, clock.now_ms()).len(), 10);
    // An eleventh key is refused, as spam.
    let now = clock.advance(60_000);
    let eleventh = ad(&keypair(10), "p", now);
    assert_eq!(
        m.check_signer_advertisement(&p, Delivery::Gossip, 500, &eleventh, now)
            .map_err(|r| r.detail),
        Err(Violation::TooManyKeys { max: 10 })
    );
    assert_eq!(m.peer_score(&p).spam_count, 1);
    // Re-advertising a counted key is fine.
    let again = ad(&keypair(3), "p", now);
    assert_eq!(
        m.check_signer_advertisement(&p, Delivery::Gossip, 500, &again, now),
        Ok(())
    );
    // A withdrawn key frees its slot (a minute later, for the rate limit).
    m.withdraw_key(&p, &keypair(0).public_key(), now);
    let now = clock.advance(60_000);
    let eleventh = ad(&keypair(10), "p", now);
    assert_eq!(
        m.check_signer_advertisement(&p, Delivery::Gossip, 500, &eleventh, now),
        Ok(())
    );
    // Session announcements count their creator key too.
    let now = clock.advance(1);
    let ann = announcement(&keypair(11), "p", now, 1);
    assert_eq!(
        rule_of(m.check_session_announcement(&p, Delivery::Gossip, 500, &ann, now)),
        Rule::KeyQuota
    );
}

#[test]
fn owner_check() {
    let mut m = SecurityManager::default();
    let kp = keypair(1);
    let a = ad(&kp, "alice", T0);
    // Bob relays (or forges the source of) Alice's advertisement.
    assert_eq!(
        m.check_signer_advertisement(&peer("bob"), Delivery::Gossip, 500, &a, T0)
            .map_err(|r| (r.peer, r.detail)),
        Err((
            peer("bob"),
            Violation::PeerMismatch {
                claimed: "alice".into()
            }
        ))
    );
    // Bob claims Alice's key under his own peer id: the signature fails.
    let mut stolen = a.clone();
    stolen.peer_id = "bob".into();
    assert_eq!(
        rule_of(m.check_signer_advertisement(&peer("bob"), Delivery::Gossip, 500, &stolen, T0)),
        Rule::InvalidSignature
    );
    assert_eq!(
        m.check_signer_advertisement(&peer("alice"), Delivery::Gossip, 500, &a, T0),
        Ok(())
    );
    let ann = announcement(&kp, "alice", T0, 1);
    assert_eq!(
        rule_of(m.check_session_announcement(&peer("bob"), Delivery::Dht, 500, &ann, T0)),
        Rule::PeerMismatch
    );
    assert_eq!(
        m.check_session_announcement(&peer("alice"), Delivery::Dht, 500, &ann, T0),
        Ok(())
    );
}

#[test]
fn invalid_signatures_ban_at_threshold() {
    let mut m = SecurityManager::default();
    let kp = keypair(1);
    let p = peer("p");
    let forged = |i: u64| {
        let mut a = ad(&kp, "p", T0 + i);
        a.signature = Signature::from_bytes(&[7; 64]);
        a
    };
    for i in 0..9 {
        assert_eq!(
            rule_of(m.check_signer_advertisement(&p, Delivery::Gossip, 500, &forged(i), T0)),
            Rule::InvalidSignature
        );
    }
    assert!(m.is_allowed(&p, T0));
    assert_eq!(m.peer_score(&p).invalid_signatures, 9);
    // The 10th bans.
    assert_eq!(
        rule_of(m.check_signer_advertisement(&p, Delivery::Gossip, 500, &forged(9), T0)),
        Rule::InvalidSignature
    );
    assert_eq!(
        m.drain_events(),
        vec![
            SecurityEvent::PeerBlacklisted {
                peer: p.clone(),
                reason: BlacklistReason::InvalidSignatures
            },
            SecurityEvent::PeerShouldBan {
                peer: p.clone(),
                reason: BlacklistReason::InvalidSignatures
            },
        ]
    );
    // The 11th message, even a valid one, meets the blacklist.
    let valid = ad(&kp, "p", T0 + 100);
    assert_eq!(
        m.check_signer_advertisement(&p, Delivery::Gossip, 500, &valid, T0)
            .map_err(|r| r.detail),
        Err(Violation::Blacklisted {
            reason: "invalid-signatures".into()
        })
    );
    // Invalid MuSig2 contributions found by the coordinator count the same way.
    let q = peer("q");
    for _ in 0..10 {
        let r = m.record_invalid_signature(&q, SignedObject::PartialSignature, T0);
        assert_eq!(r.rule, Rule::InvalidSignature);
    }
    assert!(!m.is_allowed(&q, T0));
    let metrics = m.metrics(T0);
    assert_eq!(metrics.invalid_signatures, 20);
    assert_eq!(metrics.blacklisted_peers, 2);
    assert_eq!(metrics.should_ban_total, 2);
    assert_eq!(metrics.rejected(Rule::Blacklisted), 1);
}

#[test]
fn spam_bans_at_threshold() {
    let mut m = SecurityManager::default();
    let p = peer("p");
    for _ in 0..49 {
        let _ = m.check_size(&p, Delivery::Gossip, 10_001, T0);
    }
    assert!(m.is_allowed(&p, T0));
    let _ = m.check_size(&p, Delivery::Gossip, 10_001, T0);
    assert!(!m.is_allowed(&p, T0));
    assert_eq!(
        m.blacklisted_peers()
            .first()
            .map(|(p, e)| (p.clone(), e.reason.clone())),
        Some((peer("p"), BlacklistReason::Spam))
    );
}

#[test]
fn announcement_rules() {
    let mut m = SecurityManager::default();
    let kp = keypair(1);
    let good = announcement(&kp, "p", T0, 1);
    assert_eq!(
        m.check_session_announcement(&peer("p"), Delivery::Gossip, 900, &good, T0),
        Ok(())
    );
    // Several requests at once are fine (no rate limit on signing requests).
    let second = announcement(&kp, "p", T0, 2);
    assert_eq!(
        m.check_session_announcement(&peer("p"), Delivery::Gossip, 900, &second, T0),
        Ok(())
    );
    assert_ne!(good.session_id(), second.session_id());

    let mut tampered = good.clone();
    tampered.message[0] ^= 1;
    tampered.request_id = tampered.expected_request_id();
    assert_eq!(
        rule_of(m.check_session_announcement(&peer("p"), Delivery::Gossip, 900, &tampered, T0)),
        Rule::InvalidSignature
    );
    let mut malformed = good.clone();
    malformed.required_pubkeys.reverse();
    assert_eq!(
        m.check_session_announcement(&peer("p"), Delivery::Gossip, 900, &malformed, T0)
            .map_err(|r| r.detail),
        Err(Violation::Malformed(crate::Malformation::UnsortedSigners))
    );
    let mut future = good.clone();
    future.version = SESSION_ANNOUNCEMENT_VERSION + 1;
    assert_eq!(
        rule_of(m.check_session_announcement(&peer("p"), Delivery::Gossip, 900, &future, T0)),
        Rule::UnsupportedVersion
    );
    assert_eq!(m.metrics(T0).accepted_announcements, 2);
}

#[test]
fn direct_message_rules() {
    let mut m = SecurityManager::default();
    let s = SessionId::from_bytes([3; 32]);
    let p = peer("p");
    let msg = |kind, seq, phase| direct(s, kind, seq, phase, T0);
    use MessageKind as K;
    use SessionPhase as P;

    assert_eq!(
        m.check_direct_message(&p, &msg(K::SessionJoin, 1, P::SigningRequest), T0)
            .map_err(|r| r.detail),
        Err(Violation::UnknownSession { session: s })
    );
    m.open_session(s, T0).unwrap();
    assert_eq!(
        m.check_direct_message(&p, &msg(K::SessionJoin, 1, P::SigningRequest), T0),
        Ok(Admission::Process)
    );
    // Replay: the same sequence again.
    assert_eq!(
        rule_of(m.check_direct_message(&p, &msg(K::NonceCommit, 1, P::NonceCommit), T0)),
        Rule::Replay
    );
    // Gap: last = 1, so 101 is a gap of 100 (fine) and 102 is not.
    assert_eq!(
        rule_of(m.check_direct_message(&p, &msg(K::NonceCommit, 102, P::NonceCommit), T0)),
        Rule::SequenceGap
    );
    assert_eq!(
        m.check_direct_message(&p, &msg(K::NonceCommit, 101, P::NonceCommit), T0),
        Ok(Admission::Process)
    );
    // Early nonce while we still collect commitments: buffer.
    assert_eq!(
        m.check_direct_message(&p, &msg(K::NonceShare, 102, P::NonceCommit), T0),
        Ok(Admission::Buffer)
    );
    // Wrong phase: a partial signature two phases early.
    let q = peer("q");
    assert_eq!(
        m.check_direct_message(&q, &msg(K::PartialSigShare, 1, P::NonceCommit), T0)
            .map_err(|r| r.detail),
        Err(Violation::WrongPhase {
            kind: K::PartialSigShare,
            phase: P::NonceCommit
        })
    );
    // Wrong role: only the coordinator finalizes.
    assert_eq!(
        rule_of(m.check_direct_message(&q, &msg(K::SignatureFinalized, 1, P::Complete), T0)),
        Rule::WrongRole
    );
    let mut fin = msg(K::SignatureFinalized, 1, P::Complete);
    fin.sender_role = SenderRole::Coordinator;
    assert_eq!(m.check_direct_message(&q, &fin, T0), Ok(Admission::Process));
    // Out of order and duplicate.
    assert_eq!(
        rule_of(m.check_direct_message(&p, &msg(K::NonceCommit, 103, P::NonceCommit), T0)),
        Rule::DuplicateMessage
    );
    assert_eq!(
        rule_of(m.check_direct_message(&p, &msg(K::SessionReady, 103, P::SessionReady), T0)),
        Rule::OutOfOrder
    );
    // Closed session: refused without blame.
    assert_eq!(
        rule_of(m.check_direct_message(&p, &msg(K::SessionAbort, 103, P::Closed), T0)),
        Rule::SessionClosed
    );
    assert_eq!(
        m.check_direct_message(&p, &msg(K::SessionAbort, 103, P::PartialSigExchange), T0),
        Ok(Admission::Process)
    );

    let score = m.peer_score(&p);
    // Gap, duplicate, out-of-order: three spam counts; replay and closed: none.
    assert_eq!(score.spam_count, 3);
    let metrics = m.metrics(T0);
    assert_eq!(metrics.accepted_direct_messages, 5);
    assert_eq!(metrics.buffered_direct_messages, 1);
    assert_eq!(metrics.rejected(Rule::Replay), 1);
    assert_eq!(metrics.rejected(Rule::UnknownSession), 1);
    // Closing forgets the sequence numbers.
    assert!(m.close_session(&s));
    assert_eq!(
        rule_of(m.check_direct_message(&p, &msg(K::SessionAbort, 104, P::Init), T0)),
        Rule::UnknownSession
    );
}

#[test]
fn sessions_through_the_manager() {
    let mut m = SecurityManager::default();
    for i in 0..10u8 {
        m.open_session(SessionId::from_bytes([i; 32]), T0).unwrap();
    }
    assert_eq!(
        m.open_session(SessionId::from_bytes([10; 32]), T0),
        Err(SessionError::TooManySessions { max: 10 })
    );
    let s0 = SessionId::from_bytes([0; 32]);
    m.record_session_progress(s0, T0 + 500_000).unwrap();
    let stale = m.stale_sessions(T0 + 600_000);
    assert_eq!(stale.stuck.len(), 9);
    assert!(!stale.stuck.contains(&s0));
    assert!(stale.expired.is_empty());
    let stale = m.stale_sessions(T0 + 2 * HOUR);
    assert_eq!(stale.expired.len(), 10);
    for id in stale.all() {
        m.close_session(id);
    }
    assert_eq!(m.metrics(T0).open_sessions, 0);
    assert_eq!(m.session_info(&s0), None);
}

#[test]
fn manual_lists_and_prune() {
    let mut m = SecurityManager::default();
    let p = peer("12D3KooWmanual");
    m.blacklist_peer(&p, "manual-ban", T0);
    assert_eq!(rule_of(m.check_allowed(&p, T0)), Rule::Blacklisted);
    assert!(m.unblacklist_peer(&p));
    assert!(m.is_allowed(&p, T0));
    m.graylist_peer(&p, 1_000, T0);
    assert_eq!(m.graylisted_peers(T0), vec![(p.clone(), T0 + 1_000)]);
    assert!(!m.is_allowed(&p, T0 + 999));
    assert!(m.is_allowed(&p, T0 + 1_000));
    assert!(m.ungraylist_peer(&p));
    let names: Vec<_> = m.drain_events().iter().map(SecurityEvent::name).collect();
    assert_eq!(
        names,
        ["peer:blacklisted", "peer:unblacklisted", "peer:graylisted"]
    );

    // Prune forgets idle peers' scores and expired keys, but not blacklistings.
    let kp = keypair(1);
    m.check_signer_advertisement(&peer("a"), Delivery::Gossip, 500, &ad(&kp, "a", T0), T0)
        .unwrap();
    let _ = m.check_size(&peer("a"), Delivery::Gossip, 10_001, T0);
    m.blacklist_peer(&peer("b"), "x", T0);
    assert_eq!(m.metrics(T0).tracked_peers, 1);
    m.prune(T0 + 86_400_001);
    assert_eq!(m.metrics(T0).tracked_peers, 0);
    assert!(m.peer_keys(&peer("a"), T0).is_empty());
    assert!(!m.is_allowed(&peer("b"), T0 + 86_400_001));
    assert!(m.peer_score(&peer("a")).is_clean());
}

#[test]
fn event_queue_is_bounded() {
    let mut m = SecurityManager::new(SecurityConfig {
        max_pending_events: 4,
        ..SecurityConfig::default()
    });
    for i in 0..6 {
        m.blacklist_peer(&peer(&format!("p{i}")), "x", T0);
    }
    let events = m.drain_events();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].peer(), "p2");
    assert_eq!(m.metrics(T0).events_dropped_total, 2);
}

#[test]
fn tracked_peers_are_bounded() {
    let mut m = SecurityManager::new(SecurityConfig {
        max_tracked_peers: 3,
        ..SecurityConfig::default()
    });
    for i in 0..5u64 {
        let _ = m.check_size(&peer(&format!("p{i}")), Delivery::Gossip, 10_001, T0 + i);
    }
    let metrics = m.metrics(T0);
    assert_eq!(metrics.tracked_peers, 3);
    assert_eq!(metrics.peers_evicted_total, 2);
    // The least recently seen were forgotten.
    assert!(m.peer_score(&peer("p0")).is_clean());
    assert_eq!(m.peer_score(&peer("p4")).spam_count, 1);
}

#[test]
fn metrics_count_every_rule_and_serialize() {
    let mut m = SecurityManager::default();
    let _ = m.check_size(&peer("p"), Delivery::Direct, 100_001, T0);
    let _ = m.report_violation(
        &peer("p"),
        Violation::Malformed(crate::Malformation::Undecodable("eof".into())),
        T0,
    );
    let snapshot = m.metrics(T0);
    assert_eq!(snapshot.rejections.len(), Rule::COUNT);
    assert_eq!(snapshot.rejected(Rule::MessageSize), 1);
    assert_eq!(snapshot.rejected(Rule::Malformed), 1);
    assert_eq!(snapshot.rejections_total, 2);
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(json["rejections"]["message_size"], 1);
    assert_eq!(json["rejections"]["replay"], 0);
}

#[test]
fn a_bad_dht_record_penalises_nobody_and_uses_no_quota() {
    let mut m = SecurityManager::default();
    let honest = keypair(1);
    let mut forged = ad(&honest, "honest-peer", T0);
    forged.signature = Signature::from_bytes(&[1; 64]);
    for _ in 0..100 {
        let r = m.verify_dht_advertisement(100, &forged, T0);
        assert_eq!(r.map_err(|v| v.rule()), Err(Rule::InvalidSignature));
    }
    // Counted, but the peer the record names is untouched and still allowed.
    assert_eq!(m.metrics(T0).invalid_signatures, 100);
    assert!(m.peer_score(&peer("honest-peer")).is_clean());
    assert!(m.is_allowed(&peer("honest-peer"), T0));
    // Valid records are accepted without charging anyone's key quota.
    for i in 0..20 {
        let kp = keypair(100 + i);
        assert_eq!(
            m.verify_dht_advertisement(100, &ad(&kp, "honest-peer", T0), T0),
            Ok(())
        );
    }
    assert!(m.peer_keys(&peer("honest-peer"), T0).is_empty());
    let a = announcement(&honest, "honest-peer", T0, 1);
    assert_eq!(m.verify_dht_announcement(100, &a, T0), Ok(()));
    let mut bad = a.clone();
    bad.message = [8; 32];
    assert!(m.verify_dht_announcement(100, &bad, T0).is_err());
    assert!(m.peer_score(&peer("honest-peer")).is_clean());
}

#[test]
fn signing_requests_are_rate_limited_per_author_after_their_signature() {
    let config = SecurityConfig {
        max_requests_per_minute: 6,
        request_burst: 3,
        ..SecurityConfig::default()
    };
    let mut m = SecurityManager::new(config);
    let author = keypair(7);
    // Forged copies (bad signature) claiming the author cost its budget nothing.
    for n in 0..10 {
        let mut forged = announcement(&author, "attacker", T0, 100 + n);
        forged.signature = Signature::from_bytes(&[1; 64]);
        assert_eq!(
            rule_of(m.check_session_announcement(
                &peer("attacker"),
                Delivery::Gossip,
                100,
                &forged,
                T0
            )),
            Rule::InvalidSignature
        );
    }
    for n in 0..3 {
        let a = announcement(&author, "author-peer", T0, n);
        assert_eq!(
            m.check_session_announcement(&peer("author-peer"), Delivery::Gossip, 100, &a, T0),
            Ok(())
        );
    }
    let fourth = announcement(&author, "author-peer", T0, 3);
    assert_eq!(
        rule_of(m.check_session_announcement(
            &peer("author-peer"),
            Delivery::Direct,
            100,
            &fourth,
            T0
        )),
        Rule::RateLimit
    );
    // Ten seconds later one token is back (6 a minute).
    assert_eq!(
        m.check_session_announcement(
            &peer("author-peer"),
            Delivery::Direct,
            100,
            &fourth,
            T0 + 10_000
        ),
        Ok(())
    );
}

#[test]
fn a_second_copy_costs_no_request_token_but_is_judged_like_the_first() {
    let config = SecurityConfig {
        max_requests_per_minute: 6,
        request_burst: 1,
        ..SecurityConfig::default()
    };
    let mut m = SecurityManager::new(config);
    let author = keypair(7);
    let a = announcement(&author, "author-peer", T0, 1);
    let from_author = peer("author-peer");
    assert_eq!(
        m.check_session_announcement(&from_author, Delivery::Direct, 100, &a, T0),
        Ok(())
    );
    // Its gossiped copy, many times over: no token taken (the burst is 1).
    for _ in 0..5 {
        assert_eq!(
            m.check_session_announcement_copy(&from_author, Delivery::Gossip, 100, &a, T0),
            Ok(())
        );
    }
    // A peer republishing it under its own name is refused, as the first
    // copy would have been…
    assert_eq!(
        rule_of(m.check_session_announcement_copy(
            &peer("republisher"),
            Delivery::Gossip,
            100,
            &a,
            T0
        )),
        Rule::PeerMismatch
    );
    // …and so is a stale copy replayed hours later (too old to be live).
    assert_eq!(
        rule_of(m.check_session_announcement_copy(
            &from_author,
            Delivery::Gossip,
            100,
            &a,
            T0 + 2 * HOUR
        )),
        Rule::TimestampSkew
    );
    // A new request from the author still finds its one token spent.
    let b = announcement(&author, "author-peer", T0, 2);
    assert_eq!(
        rule_of(m.check_session_announcement(&from_author, Delivery::Direct, 100, &b, T0)),
        Rule::RateLimit
    );
}

#[test]
fn requests_naming_too_many_signers_are_malformed() {
    let config = SecurityConfig {
        max_signers_per_request: 1,
        ..SecurityConfig::default()
    };
    let mut m = SecurityManager::new(config);
    let a = announcement(&keypair(3), "p", T0, 0);
    assert_eq!(
        rule_of(m.check_session_announcement(&peer("p"), Delivery::Gossip, 100, &a, T0)),
        Rule::Malformed
    );
    assert_eq!(
        m.verify_dht_announcement(100, &a, T0).map_err(|v| v.rule()),
        Err(Rule::Malformed)
    );
}
