//! Every DHT record value the coordinator reads: a `SessionAnnouncement`
//! under `musig2-session:<session id>` and `musig2-request:<request id>`, a
//! `SignerAdvertisement` under `musig2-signer:<key>`. Each is decoded exactly
//! (postcard, no trailing bytes); an advertisement's peer id is parsed as a
//! libp2p `PeerId` (the coordinator drops it otherwise); then the security
//! layer judges it as a DHT record (`verify_dht_announcement` /
//! `verify_dht_advertisement`: nobody is blamed).
//!
//! Input: one byte choosing the key prefix (0 session, 1 request, 2 signer,
//! anything else: not one of ours, ignored), then the record value.
//!
//! Asserts: every decoded value gets the announcement / advertisement checks;
//! an accepted record is structurally valid, correctly signed, within the
//! size limit, not expired and not created in the future; a record accepted
//! once is accepted again (the DHT check keeps no per-peer state).

#![no_main]

use libfuzzer_sys::fuzz_target;
use lotus_musig2_fuzz::{
    NOW, check_advertisement, check_announcement, check_peer_id, config, decode_exact,
};
use musig2_security::{SecurityManager, SessionAnnouncement, Signed, SignerAdvertisement};

fuzz_target!(|data: &[u8]| {
    let Some((&prefix, value)) = data.split_first() else {
        return;
    };
    let config = config();
    let mut security = SecurityManager::new(config.clone());
    let (accepted, created_at, expires_at) = match prefix {
        0 | 1 => {
            let Some(a) = decode_exact::<SessionAnnouncement>(value) else {
                return;
            };
            check_announcement(&a, value);
            let verdict = security.verify_dht_announcement(value.len(), &a, NOW);
            if verdict.is_ok() {
                assert!(a.validate().is_ok() && a.verify_signature().is_ok());
                assert!(
                    security
                        .verify_dht_announcement(value.len(), &a, NOW)
                        .is_ok()
                );
            }
            (verdict.is_ok(), a.created_at, a.expires_at)
        }
        2 => {
            let Some(ad) = decode_exact::<SignerAdvertisement>(value) else {
                return;
            };
            check_advertisement(&ad, value);
            if check_peer_id(&ad.peer_id).is_none() {
                return;
            }
            let verdict = security.verify_dht_advertisement(value.len(), &ad, NOW);
            if verdict.is_ok() {
                assert!(ad.validate().is_ok() && ad.verify_signature().is_ok());
                assert!(
                    security
                        .verify_dht_advertisement(value.len(), &ad, NOW)
                        .is_ok()
                );
            }
            (verdict.is_ok(), ad.created_at, ad.expires_at)
        }
        _ => return,
    };
    if accepted {
        assert!(value.len() <= config.max_advertisement_size);
        assert!(expires_at > NOW, "expired record accepted");
        assert!(
            created_at <= NOW + config.max_timestamp_skew_ms,
            "future record accepted"
        );
    }
});
