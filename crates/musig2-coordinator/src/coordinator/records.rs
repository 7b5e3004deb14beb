//! What this node accepts into its DHT store and from DHT lookups: only our
//! three key prefixes, and under each only a value that decodes exactly,
//! verifies, has not expired, and **is the record its key names** (the
//! advertisement of that key, the announcement with that session or request
//! id). A validly signed record under another record's key (an overwrite,
//! or a same-session-id twin under a request key) is refused.

use musig2_core::PublicKey;
use musig2_security::{Millis, SessionAnnouncement, Signed, SignerAdvertisement};

use super::{REQUEST_KEY_PREFIX, SESSION_KEY_PREFIX, SIGNER_KEY_PREFIX, decode_exact};

/// The key prefixes other peers may store records under on this node.
pub(super) fn prefixes() -> Vec<Vec<u8>> {
    [SESSION_KEY_PREFIX, REQUEST_KEY_PREFIX, SIGNER_KEY_PREFIX]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect()
}

/// Whether `value` is a valid record for `key` at `now` (see the module doc).
pub(super) fn is_valid(key: &[u8], value: &[u8], now: Millis) -> bool {
    let Ok(key) = std::str::from_utf8(key) else {
        return false;
    };
    if let Some(hex_key) = key.strip_prefix(SIGNER_KEY_PREFIX) {
        let Ok(pubkey) = hex_key.parse::<PublicKey>() else {
            return false;
        };
        let Some(ad) = decode_exact::<SignerAdvertisement>(value) else {
            return false;
        };
        return ad.pubkey == pubkey
            && ad.expires_at > now
            && ad.validate().is_ok()
            && ad.verify_signature().is_ok();
    }
    let (id, by_session) = if let Some(id) = key.strip_prefix(SESSION_KEY_PREFIX) {
        (id, true)
    } else if let Some(id) = key.strip_prefix(REQUEST_KEY_PREFIX) {
        (id, false)
    } else {
        return false;
    };
    let Some(a) = decode_exact::<SessionAnnouncement>(value) else {
        return false;
    };
    let named = if by_session {
        a.session_id().to_bytes()
    } else {
        a.request_id
    };
    hex::encode(named) == id
        && a.expires_at > now
        && a.validate().is_ok()
        && a.verify_signature().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use musig2_core::Keypair;
    use musig2_security::{SessionRequest, SigningMetadata, TransactionType};

    const NOW: Millis = 1_764_000_000_000;

    fn keypair(seed: u8) -> Keypair {
        use rand::SeedableRng;
        Keypair::random(&mut rand::rngs::StdRng::seed_from_u64(u64::from(seed)))
    }

    fn ad(kp: &Keypair) -> Vec<u8> {
        let ad = SignerAdvertisement::new_signed(
            kp,
            "peer",
            vec![],
            vec![TransactionType::Spend],
            NOW,
            NOW + 1000,
        );
        postcard::to_allocvec(&ad).unwrap_or_default()
    }

    fn announcement(creator: &Keypair, nonce: u8) -> SessionAnnouncement {
        let request = SessionRequest {
            signers: vec![creator.public_key(), keypair(99).public_key()],
            message: [1; 32],
            creator_peer_id: "peer".into(),
            creator_addrs: vec![],
            metadata: SigningMetadata::default(),
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: NOW,
            expires_at: NOW + 1000,
            request_nonce: [nonce; 32],
        };
        match SessionAnnouncement::new_signed(request, creator) {
            Ok(a) => a,
            Err(e) => unreachable!("{e}"),
        }
    }

    #[test]
    fn an_advertisement_is_valid_only_under_its_own_key() {
        let (a, b) = (keypair(1), keypair(2));
        let own = format!("{SIGNER_KEY_PREFIX}{}", a.public_key());
        let other = format!("{SIGNER_KEY_PREFIX}{}", b.public_key());
        assert!(is_valid(own.as_bytes(), &ad(&a), NOW));
        // A valid advertisement of another key cannot overwrite b's record.
        assert!(!is_valid(other.as_bytes(), &ad(&a), NOW));
        // Expired, garbage, foreign prefix.
        assert!(!is_valid(own.as_bytes(), &ad(&a), NOW + 1000));
        assert!(!is_valid(own.as_bytes(), &[0xab; 64], NOW));
        assert!(!is_valid(b"junk:1", &ad(&a), NOW));
        // A flipped byte breaks the signature or the encoding.
        let mut bad = ad(&a);
        if let Some(last) = bad.last_mut() {
            *last ^= 1;
        }
        assert!(!is_valid(own.as_bytes(), &bad, NOW));
    }

    #[test]
    fn an_announcement_is_valid_only_under_its_own_ids() {
        let creator = keypair(3);
        let a = announcement(&creator, 1);
        let twin = announcement(&creator, 2);
        let bytes = postcard::to_allocvec(&a).unwrap_or_default();
        let by_session = format!(
            "{SESSION_KEY_PREFIX}{}",
            hex::encode(a.session_id().to_bytes())
        );
        let by_request = format!("{REQUEST_KEY_PREFIX}{}", hex::encode(a.request_id));
        assert!(is_valid(by_session.as_bytes(), &bytes, NOW));
        assert!(is_valid(by_request.as_bytes(), &bytes, NOW));
        let other = format!("{REQUEST_KEY_PREFIX}{}", hex::encode(twin.request_id));
        assert!(!is_valid(other.as_bytes(), &bytes, NOW));
        assert!(!is_valid(by_request.as_bytes(), &bytes, NOW + 1000));
        assert_eq!(prefixes().len(), 3);
    }
}
