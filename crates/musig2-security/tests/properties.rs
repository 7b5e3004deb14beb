//! Properties of the security manager under random input:
//!
//! * `random_message_streams_never_panic`: any stream of messages, time jumps
//!   and operator actions, with extreme values, leaves the manager consistent
//!   (every result is counted exactly once, every rejection names its rule).
//! * `a_sequence_accepted_once_is_never_accepted_again`.
//! * `honest_peer_is_never_penalised`: a peer that follows every rule, mixed
//!   with attackers doing anything, is never blamed, listed or refused for a
//!   blamable reason.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use musig2_core::{Keypair, SecretKey, Signature};
use musig2_security::{
    Delivery, DirectMessage, MessageKind, Millis, PeerId, Penalty, Rejection, SecurityConfig,
    SecurityManager, SenderRole, SessionAnnouncement, SessionId, SessionPhase, SessionRequest,
    SignerAdvertisement, SigningMetadata, TransactionType, Violation,
};
use proptest::prelude::*;

const T0: Millis = 1_764_000_000_000;

fn keypairs() -> &'static [Keypair] {
    static KEYS: OnceLock<Vec<Keypair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (1..=6u8)
            .filter_map(|i| SecretKey::from_bytes(&[i; 32]).ok())
            .map(Keypair::new)
            .collect()
    })
}

fn peer(i: u8) -> PeerId {
    PeerId::from(format!("12D3KooWpeer{i}"))
}

fn session(i: u8) -> SessionId {
    SessionId::from_bytes([i; 32])
}

/// A time: usually near `now`, sometimes anything.
fn time_offset() -> impl Strategy<Value = i128> {
    prop_oneof![
        8 => -700_000i128..700_000,
        1 => Just(i128::from(u64::MAX)),
        1 => any::<u64>().prop_map(i128::from),
        1 => Just(-i128::from(u64::MAX)),
    ]
}

fn at(now: Millis, offset: i128) -> Millis {
    (i128::from(now) + offset).clamp(0, i128::from(u64::MAX)) as Millis
}

fn kind() -> impl Strategy<Value = MessageKind> {
    prop::sample::select(MessageKind::ALL.to_vec())
}

fn phase() -> impl Strategy<Value = SessionPhase> {
    prop::sample::select(SessionPhase::ALL.to_vec())
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop::sample::select(vec![Delivery::Gossip, Delivery::Dht, Delivery::Direct])
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0usize..12_000, 1 => 0usize..200_000, 1 => Just(usize::MAX)]
}

fn sequence() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..250, 1 => any::<u64>(), 1 => Just(u64::MAX)]
}

#[derive(Debug, Clone)]
enum Op {
    Direct {
        from: u8,
        session: u8,
        kind: MessageKind,
        sequence: u64,
        sent_at: i128,
        phase: SessionPhase,
        coordinator: bool,
        size: usize,
    },
    Advertisement {
        from: u8,
        key: u8,
        claimed: u8,
        created_at: i128,
        lifetime: i128,
        size: usize,
        delivery: Delivery,
        version: u8,
        forge: bool,
        types: Vec<TransactionType>,
    },
    Announcement {
        from: u8,
        key: u8,
        claimed: u8,
        created_at: i128,
        lifetime: i128,
        size: usize,
        delivery: Delivery,
        nonce: u8,
        forge: bool,
        reverse_keys: bool,
    },
    Open(u8),
    Close(u8),
    Progress(u8),
    Advance(u64),
    Blacklist(u8),
    Unblacklist(u8),
    Graylist(u8, u64),
    Report(u8),
    Prune,
    Stale,
}

fn op(max_peer: u8) -> impl Strategy<Value = Op> {
    let direct = (
        0..max_peer,
        0u8..4,
        kind(),
        sequence(),
        time_offset(),
        phase(),
        any::<bool>(),
        size(),
    )
        .prop_map(
            |(from, session, kind, sequence, sent_at, phase, coordinator, size)| Op::Direct {
                from,
                session,
                kind,
                sequence,
                sent_at,
                phase,
                coordinator,
                size,
            },
        );
    let advertisement = (
        (0..max_peer, 0u8..6, 0..max_peer),
        (time_offset(), time_offset(), size(), delivery()),
        (
            prop_oneof![9 => Just(1u8), 1 => any::<u8>()],
            prop::bool::weighted(0.2),
            prop::collection::vec(prop::sample::select(TransactionType::ALL.to_vec()), 0..3),
        ),
    )
        .prop_map(
            |(
                (from, key, claimed),
                (created_at, lifetime, size, delivery),
                (version, forge, types),
            )| {
                Op::Advertisement {
                    from,
                    key,
                    claimed,
                    created_at,
                    lifetime,
                    size,
                    delivery,
                    version,
                    forge,
                    types,
                }
            },
        );
    let announcement = (
        (0..max_peer, 0u8..6, 0..max_peer),
        (time_offset(), time_offset(), size(), delivery()),
        (
            any::<u8>(),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.1),
        ),
    )
        .prop_map(
            |(
                (from, key, claimed),
                (created_at, lifetime, size, delivery),
                (nonce, forge, reverse_keys),
            )| {
                Op::Announcement {
                    from,
                    key,
                    claimed,
                    created_at,
                    lifetime,
                    size,
                    delivery,
                    nonce,
                    forge,
                    reverse_keys,
                }
            },
        );
    prop_oneof![
        10 => direct,
        4 => advertisement,
        3 => announcement,
        2 => (0u8..4).prop_map(Op::Open),
        1 => (0u8..4).prop_map(Op::Close),
        1 => (0u8..4).prop_map(Op::Progress),
        2 => prop_oneof![0u64..120_000, 0u64..10_000_000, Just(u64::MAX)].prop_map(Op::Advance),
        1 => (0..max_peer).prop_map(Op::Blacklist),
        1 => (0..max_peer).prop_map(Op::Unblacklist),
        1 => (0..max_peer, any::<u64>()).prop_map(|(p, d)| Op::Graylist(p, d)),
        1 => (0..max_peer).prop_map(Op::Report),
        1 => Just(Op::Prune),
        1 => Just(Op::Stale),
    ]
}

fn build_advertisement(
    key: u8,
    claimed: u8,
    created_at: Millis,
    expires_at: Millis,
    version: u8,
    forge: bool,
    types: Vec<TransactionType>,
) -> SignerAdvertisement {
    let kp = &keypairs()[usize::from(key) % keypairs().len()];
    let mut ad = SignerAdvertisement::new_signed(
        kp,
        peer(claimed).into_string(),
        vec!["/ip4/127.0.0.1/tcp/1".into()],
        types,
        created_at,
        expires_at,
    );
    ad.version = version;
    if forge {
        ad.signature = Signature::from_bytes(&[3; 64]);
    }
    ad
}

fn build_announcement(
    key: u8,
    claimed: u8,
    created_at: Millis,
    expires_at: Millis,
    nonce: u8,
    forge: bool,
    reverse_keys: bool,
) -> Option<SessionAnnouncement> {
    let keys = keypairs();
    let creator = &keys[usize::from(key) % keys.len()];
    let other = &keys[(usize::from(key) + 1) % keys.len()];
    let mut a = SessionAnnouncement::new_signed(
        SessionRequest {
            signers: vec![creator.public_key(), other.public_key()],
            message: [nonce; 32],
            creator_peer_id: peer(claimed).into_string(),
            creator_addrs: vec![],
            metadata: SigningMetadata::default(),
            election_method: "hash-based".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at,
            expires_at,
            request_nonce: [nonce; 32],
        },
        creator,
    )
    .ok()?;
    if forge {
        a.signature = Signature::from_bytes(&[5; 64]);
    }
    if reverse_keys {
        a.required_pubkeys.reverse();
    }
    Some(a)
}

/// Counts what the manager returned, to compare with its metrics.
#[derive(Default, Debug)]
struct Tally {
    ok_ads: u64,
    ok_announcements: u64,
    ok_direct: u64,
    rejected: u64,
}

fn check_rejection(r: &Rejection) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.rule, r.detail.rule());
    prop_assert!(!r.to_string().is_empty());
    Ok(())
}

/// Applies one op; returns the result of a message check, if it was one.
fn apply(
    m: &mut SecurityManager,
    now: &mut Millis,
    op: &Op,
    tally: &mut Tally,
) -> Result<(), TestCaseError> {
    match op.clone() {
        Op::Direct {
            from,
            session: s,
            kind,
            sequence,
            sent_at,
            phase,
            coordinator,
            size,
        } => {
            let msg = DirectMessage {
                session_id: session(s),
                kind,
                sequence,
                sent_at: at(*now, sent_at),
                phase,
                sender_role: if coordinator {
                    SenderRole::Coordinator
                } else {
                    SenderRole::Participant
                },
                size,
            };
            match m.check_direct_message(&peer(from), &msg, *now) {
                Ok(_) => tally.ok_direct += 1,
                Err(r) => {
                    check_rejection(&r)?;
                    tally.rejected += 1;
                }
            }
        }
        Op::Advertisement {
            from,
            key,
            claimed,
            created_at,
            lifetime,
            size,
            delivery,
            version,
            forge,
            types,
        } => {
            let created = at(*now, created_at);
            let ad = build_advertisement(
                key,
                claimed,
                created,
                at(created, lifetime),
                version,
                forge,
                types,
            );
            match m.check_signer_advertisement(&peer(from), delivery, size, &ad, *now) {
                Ok(()) => tally.ok_ads += 1,
                Err(r) => {
                    check_rejection(&r)?;
                    tally.rejected += 1;
                }
            }
        }
        Op::Announcement {
            from,
            key,
            claimed,
            created_at,
            lifetime,
            size,
            delivery,
            nonce,
            forge,
            reverse_keys,
        } => {
            let created = at(*now, created_at);
            if let Some(a) = build_announcement(
                key,
                claimed,
                created,
                at(created, lifetime),
                nonce,
                forge,
                reverse_keys,
            ) {
                match m.check_session_announcement(&peer(from), delivery, size, &a, *now) {
                    Ok(()) => tally.ok_announcements += 1,
                    Err(r) => {
                        check_rejection(&r)?;
                        tally.rejected += 1;
                    }
                }
            }
        }
        Op::Open(s) => {
            let _ = m.open_session(session(s), *now);
        }
        Op::Close(s) => {
            m.close_session(&session(s));
        }
        Op::Progress(s) => {
            let _ = m.record_session_progress(session(s), *now);
        }
        Op::Advance(by) => *now = now.saturating_add(by),
        Op::Blacklist(p) => m.blacklist_peer(&peer(p), "test", *now),
        Op::Unblacklist(p) => {
            m.unblacklist_peer(&peer(p));
        }
        Op::Graylist(p, d) => m.graylist_peer(&peer(p), d, *now),
        Op::Report(p) => {
            let r = m.report_violation(
                &peer(p),
                Violation::Protocol {
                    reason: "test".into(),
                },
                *now,
            );
            check_rejection(&r)?;
            tally.rejected += 1;
        }
        Op::Prune => m.prune(*now),
        Op::Stale => {
            let stale = m.stale_sessions(*now);
            for id in stale.all() {
                prop_assert!(m.session_info(id).is_some());
            }
        }
    }
    Ok(())
}

fn small_config() -> SecurityConfig {
    let mut c = SecurityConfig::default();
    c.max_tracked_peers = 4;
    c.max_blacklist_size = 3;
    c.max_pending_events = 5;
    c.max_senders_per_session = 3;
    c.max_concurrent_sessions = 3;
    c
}

proptest! {

    #[test]
    fn random_message_streams_never_panic(
        ops in prop::collection::vec(op(6), 1..60),
        small in any::<bool>(),
        start in prop_oneof![Just(T0), any::<u64>()],
    ) {
        let mut m = SecurityManager::new(if small { small_config() } else { SecurityConfig::default() });
        let mut now = start;
        let mut tally = Tally::default();
        for op in &ops {
            apply(&mut m, &mut now, op, &mut tally)?;
            let _ = m.drain_events();
        }
        let metrics = m.metrics(now);
        prop_assert_eq!(metrics.rejections_total, tally.rejected);
        prop_assert_eq!(
            metrics.accepted_advertisements + metrics.duplicate_advertisements,
            tally.ok_ads
        );
        prop_assert_eq!(metrics.accepted_announcements, tally.ok_announcements);
        prop_assert_eq!(metrics.accepted_direct_messages, tally.ok_direct);
        prop_assert!(metrics.buffered_direct_messages <= metrics.accepted_direct_messages);
        if small {
            prop_assert!(metrics.tracked_peers <= 4);
            prop_assert!(metrics.blacklisted_peers <= 3);
            prop_assert!(metrics.open_sessions <= 3);
        }
    }

    #[test]
    fn a_sequence_accepted_once_is_never_accepted_again(
        messages in prop::collection::vec(
            (0u8..3, 0u8..2, kind(), prop_oneof![4 => 0u64..150, 1 => any::<u64>()], phase(), any::<bool>()),
            1..200,
        ),
    ) {
        let mut m = SecurityManager::default();
        m.open_session(session(0), T0).unwrap();
        m.open_session(session(1), T0).unwrap();
        let mut accepted: HashSet<(u8, u8, u64)> = HashSet::new();
        let mut last: HashMap<(u8, u8), u64> = HashMap::new();
        for (from, s, kind, sequence, phase, coordinator) in messages {
            let msg = DirectMessage {
                session_id: session(s),
                kind,
                sequence,
                sent_at: T0,
                phase,
                sender_role: if coordinator { SenderRole::Coordinator } else { SenderRole::Participant },
                size: 100,
            };
            // Operators may lift bans; that must not reopen old sequence numbers.
            m.unblacklist_peer(&peer(from));
            if m.check_direct_message(&peer(from), &msg, T0).is_ok() {
                prop_assert!(accepted.insert((from, s, sequence)), "accepted twice: {:?}", (from, s, sequence));
                let previous = last.insert((from, s), sequence).unwrap_or(0);
                prop_assert!(sequence > previous && sequence - previous <= 100);
            }
        }
    }

    #[test]
    fn honest_peer_is_never_penalised(
        attacker_ops in prop::collection::vec(op(5), 0..40),
        steps in prop::collection::vec((0u64..200_000, 1u64..=100, 0u8..6, any::<prop::sample::Index>(), 0u64..300_000), 1..40),
        honest_is_coordinator in any::<bool>(),
    ) {
        // The honest peer is peer 9; attackers are peers 0..5.
        let honest = peer(9);
        let honest_key = Keypair::new(SecretKey::from_bytes(&[0x77; 32]).unwrap());
        let mut m = SecurityManager::new(small_config());
        let mut now = T0;
        let mut tally = Tally::default();
        let s = session(0);
        m.open_session(s, now).unwrap();

        // The honest peer's protocol script in session 0, in order.
        let mut script: Vec<MessageKind> = vec![
            MessageKind::SessionJoin,
            MessageKind::NonceCommit,
            MessageKind::NonceShare,
            MessageKind::PartialSigShare,
        ];
        if honest_is_coordinator {
            script.push(MessageKind::SignatureFinalized);
        }
        let mut script = script.into_iter();
        let mut sequence = 0u64;
        let mut last_ad: Option<SignerAdvertisement> = None;
        let mut attacker = attacker_ops.iter();
        let mut honest_results: Vec<Result<(), Rejection>> = Vec::new();

        for (advance, gap, action, pick, delay) in steps {
            now = now.saturating_add(advance);
            // Some attacker traffic first.
            // Attackers never speak as the honest peer (peer ids come from the
            // transport) and control neither our clock nor our sessions.
            for op in attacker.by_ref().take(2) {
                if !matches!(op, Op::Advance(_) | Op::Open(_) | Op::Close(_)) {
                    apply(&mut m, &mut now, op, &mut tally)?;
                }
            }
            let result = match action {
                // A fresh advertisement, at most one per minute, arriving late by up to the skew.
                0 | 1 => {
                    let due = last_ad.as_ref().is_none_or(|a| now >= a.created_at + 60_000);
                    if due {
                        let ad = SignerAdvertisement::new_signed(
                            &honest_key,
                            honest.as_str(),
                            vec!["/ip4/10.0.0.9/tcp/4001".into()],
                            vec![TransactionType::Spend],
                            now,
                            now + 3_600_000,
                        );
                        let arrival = now + delay;
                        let r = m.check_signer_advertisement(&honest, Delivery::Gossip, 400, &ad, arrival);
                        last_ad = Some(ad);
                        Some(r)
                    } else {
                        None
                    }
                }
                // The last advertisement again, from the DHT.
                2 => last_ad
                    .as_ref()
                    .map(|ad| m.check_signer_advertisement(&honest, Delivery::Dht, 400, ad, now)),
                // A signing request.
                3 => {
                    let a = SessionAnnouncement::new_signed(
                        SessionRequest {
                            signers: vec![honest_key.public_key(), keypairs()[0].public_key()],
                            message: [advance as u8; 32],
                            creator_peer_id: honest.as_str().into(),
                            creator_addrs: vec![],
                            metadata: SigningMetadata::default(),
                            election_method: "lexicographic".into(),
                            nonce_commitments: true,
                            coordinator_election: true,
                            created_at: now,
                            expires_at: now + 600_000,
                            request_nonce: [gap as u8; 32],
                        },
                        &honest_key,
                    )
                    .unwrap();
                    Some(m.check_session_announcement(&honest, Delivery::Gossip, 700, &a, now + delay))
                }
                // The next protocol message, in a phase where it is legitimate for us to be.
                _ => script.next().map(|kind| {
                    let rule = kind.rule();
                    let phases: Vec<SessionPhase> = rule.home.iter().chain(rule.early).copied().collect();
                    let phase = phases[pick.index(phases.len())];
                    sequence += gap;
                    let msg = DirectMessage {
                        session_id: s,
                        kind,
                        sequence,
                        sent_at: now,
                        phase,
                        sender_role: if honest_is_coordinator { SenderRole::Coordinator } else { SenderRole::Participant },
                        size: 300,
                    };
                    m.check_direct_message(&honest, &msg, now.saturating_add(delay)).map(|_| ())
                }),
            };
            if let Some(r) = result {
                honest_results.push(r);
            }
        }

        for r in &honest_results {
            if let Err(rejection) = r {
                // Only blameless refusals: a duplicate that lost to a newer
                // advertisement, an expired copy or session, senders slots
                // filled by others.
                prop_assert!(rejection.rule.penalty() == Penalty::None, "blamed: {}", rejection);
                let listed = matches!(
                    rejection.detail,
                    Violation::Blacklisted { .. } | Violation::Graylisted { .. }
                );
                prop_assert!(!listed, "refused as listed: {}", rejection);
            }
        }
        let score = m.peer_score(&honest);
        prop_assert!(score.is_clean(), "{:?}", score);
        prop_assert!(m.is_allowed(&honest, now));
        prop_assert!(m.drain_events().iter().all(|e| e.peer() != &honest));
    }
}
