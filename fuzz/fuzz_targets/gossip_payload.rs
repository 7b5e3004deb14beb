//! Every GossipSub payload, routed as the coordinator's `on_gossip` does:
//! `musig2:requests` carries a `SessionAnnouncement`, each transaction-type
//! topic (`musig2:signers:<type>`) a `SignerAdvertisement` (whose peer id
//! must parse as a libp2p `PeerId`), any other topic is ignored, and a
//! message without an author is rejected. Decoding is exact (postcard, no
//! trailing bytes); the security layer judges what decodes
//! (`check_session_announcement` / `check_signer_advertisement`, live gossip).
//!
//! Input: one byte choosing the topic (0 requests, 1–6 the transaction
//! types in wire order, anything else an unknown topic), one byte choosing
//! the author (0 the peer the message claims, 1 another peer, anything else
//! none), then the payload.
//!
//! Asserts: the verdict is `Accept` only for a valid, correctly signed,
//! fresh message within the gossip size limit whose author is the peer it
//! names; unknown topics are ignored; anonymous messages are rejected; a
//! refusal is `Reject` (which costs the forwarder GossipSub score) only when
//! the message is invalid in itself (malformed, badly signed, or not its
//! author's), as the coordinator's `refusal_verdict` decides, and `Ignore`
//! when it depends on the receiver's own state (rate, quota, clock, lists).

#![no_main]

use libfuzzer_sys::fuzz_target;
use lotus_musig2_fuzz::{
    NOW, check_advertisement, check_announcement, check_peer_id, config, decode_exact,
};
use musig2_security::{
    Delivery, PeerId, Rule, SecurityManager, SessionAnnouncement, Signed, SignerAdvertisement,
    TransactionType,
};

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accept,
    Reject,
    Ignore,
}

/// The coordinator's rule (`coordinator/inbound.rs`, `refusal_verdict`).
fn refusal_verdict(rule: Rule) -> Verdict {
    match rule {
        Rule::Malformed | Rule::InvalidSignature | Rule::PeerMismatch => Verdict::Reject,
        _ => Verdict::Ignore,
    }
}

const STRANGER: &str = "12D3KooWStrangerStrangerStrangerStrangerStrangerStr";

/// The author GossipSub reports: the claimed peer (as a real `PeerId` prints
/// it), a stranger, or nobody.
fn author(selector: u8, claimed: &str) -> Option<PeerId> {
    match selector {
        0 => Some(PeerId::new(
            check_peer_id(claimed).map_or_else(|| STRANGER.to_owned(), |p| p.to_string()),
        )),
        1 => Some(PeerId::new(STRANGER)),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let [topic, who, payload @ ..] = data else {
        return;
    };
    let config = config();
    let mut security = SecurityManager::new(config.clone());
    let skew = config.max_timestamp_skew_ms;
    let fresh = |created_at: u64, expires_at: u64| {
        created_at.saturating_add(skew) >= NOW && created_at <= NOW + skew && expires_at > NOW
    };
    let verdict = match *topic {
        0 => match decode_exact::<SessionAnnouncement>(payload) {
            None => Verdict::Reject,
            Some(a) => {
                check_announcement(&a, payload);
                match author(*who, &a.creator_peer_id) {
                    None => Verdict::Reject,
                    Some(author) => {
                        let checked = security.check_session_announcement(
                            &author,
                            Delivery::Gossip,
                            payload.len(),
                            &a,
                            NOW,
                        );
                        if checked.is_ok() {
                            assert_eq!(author.as_str(), a.creator_peer_id);
                            assert!(a.validate().is_ok() && a.verify_signature().is_ok());
                            assert!(fresh(a.created_at, a.expires_at));
                            assert!(payload.len() <= config.max_advertisement_size);
                            Verdict::Accept
                        } else {
                            checked.map_or_else(|r| refusal_verdict(r.rule), |()| Verdict::Accept)
                        }
                    }
                }
            }
        },
        t @ 1..=6 => {
            let topic = TransactionType::ALL[usize::from(t) - 1].topic();
            assert!(TransactionType::from_topic(topic).is_some());
            match decode_exact::<SignerAdvertisement>(payload) {
                None => Verdict::Reject,
                Some(ad) => {
                    check_advertisement(&ad, payload);
                    match (check_peer_id(&ad.peer_id), author(*who, &ad.peer_id)) {
                        (None, _) | (_, None) => Verdict::Reject,
                        (Some(_), Some(author)) => {
                            let checked = security.check_signer_advertisement(
                                &author,
                                Delivery::Gossip,
                                payload.len(),
                                &ad,
                                NOW,
                            );
                            if checked.is_ok() {
                                assert_eq!(author.as_str(), ad.peer_id);
                                assert!(ad.validate().is_ok() && ad.verify_signature().is_ok());
                                assert!(fresh(ad.created_at, ad.expires_at));
                                assert!(payload.len() <= config.max_advertisement_size);
                                // An exact re-delivery is accepted again.
                                assert!(
                                    security
                                        .check_signer_advertisement(
                                            &author,
                                            Delivery::Gossip,
                                            payload.len(),
                                            &ad,
                                            NOW,
                                        )
                                        .is_ok()
                                );
                                Verdict::Accept
                            } else {
                                checked
                                    .map_or_else(|r| refusal_verdict(r.rule), |()| Verdict::Accept)
                            }
                        }
                    }
                }
            }
        }
        _ => Verdict::Ignore,
    };
    if *who > 1 {
        assert_ne!(verdict, Verdict::Accept, "anonymous gossip accepted");
    }
    if *topic > 6 {
        assert_eq!(verdict, Verdict::Ignore);
    }
});
