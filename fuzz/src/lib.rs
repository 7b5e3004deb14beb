//! Shared pieces of the fuzz targets: the decoders exactly as the network
//! and disk paths call them, the checks every target asserts, and the real
//! encodings the seed corpus is made of ([`seeds`]).
//!
//! A target fails (libFuzzer reports a crash) when a decoder panics, or when
//! one of these invariants does not hold for an input it accepted.

use musig2_security::announcement::{SESSION_ANNOUNCEMENT_TAG, SIGNER_ADVERTISEMENT_TAG};
use musig2_security::{SecurityConfig, SessionAnnouncement, Signed, SignerAdvertisement};

pub mod seeds;

/// The clock every target judges messages at (ms since the epoch). The seeds
/// are created shortly before it and expire after it, so they pass the time
/// checks and the fuzzer starts from accepted messages.
pub const NOW: u64 = 1_764_000_100_000;

/// Decodes a whole postcard value, trailing bytes being an error: what the
/// coordinator does with every DHT record value and gossip payload (its
/// private `decode_exact`) and, through `wire::decode`, with direct messages.
pub fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// The security layer's default limits (what a node runs with).
pub fn config() -> SecurityConfig {
    SecurityConfig::default()
}

/// Postcard accepts over-long varints, so the input bytes of an accepted value
/// need not be its canonical encoding. What must hold: the value survives
/// encode → decode, the canonical encoding is never longer than the accepted
/// input, and re-encoding is stable.
pub fn assert_value_round_trip<T>(value: &T, input: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + core::fmt::Debug,
{
    let encoded = match postcard::to_allocvec(value) {
        Ok(bytes) => bytes,
        Err(e) => panic!("a decoded value does not encode: {e}"),
    };
    assert!(
        encoded.len() <= input.len(),
        "canonical encoding ({} bytes) longer than the accepted input ({} bytes)",
        encoded.len(),
        input.len()
    );
    let again: Option<T> = decode_exact(&encoded);
    assert_eq!(again.as_ref(), Some(value), "decode(encode(x)) != x");
    assert_eq!(
        postcard::to_allocvec(value).ok(),
        Some(encoded),
        "encoding is not stable"
    );
}

/// The signed bytes of a [`Signed`] object are its domain tag, then its
/// postcard encoding without the signature; the signature is the last field.
/// The hand-written canonical encoder (`musig2-security`'s `Writer`) must
/// agree with postcard on every value a peer can make us decode.
pub fn assert_signing_bytes_are_postcard<T>(value: &T, tag: &[u8])
where
    T: Signed + serde::Serialize,
{
    let mut expected = value.signing_bytes();
    assert!(
        expected.starts_with(tag),
        "signing bytes lack the domain tag"
    );
    expected.drain(..tag.len());
    expected.extend_from_slice(&value.signature().to_bytes());
    let encoded = postcard::to_allocvec(value).ok();
    assert_eq!(
        encoded.as_deref(),
        Some(expected.as_slice()),
        "signing bytes disagree with the postcard encoding"
    );
}

/// Every check a decoded session announcement gets, whatever path it came by.
pub fn check_announcement(a: &SessionAnnouncement, input: &[u8]) {
    assert_value_round_trip(a, input);
    assert_signing_bytes_are_postcard(a, SESSION_ANNOUNCEMENT_TAG);
    let valid = a.validate().is_ok();
    let signed = a.verify_signature().is_ok();
    // The owner check is the peer check plus the signature check.
    let owner = musig2_security::PeerId::new(a.creator_peer_id.clone());
    assert_eq!(a.verify_owner(&owner).is_ok(), signed);
    let _ = (a.session_id(), a.expected_request_id());
    if valid {
        assert_eq!(a.request_id, a.expected_request_id());
        assert!(a.signer_index(&a.creator_pubkey).is_some());
        assert!(a.expires_at > a.created_at);
    }
}

/// Every check a decoded signer advertisement gets, whatever path it came by.
pub fn check_advertisement(ad: &SignerAdvertisement, input: &[u8]) {
    assert_value_round_trip(ad, input);
    assert_signing_bytes_are_postcard(ad, SIGNER_ADVERTISEMENT_TAG);
    let signed = ad.verify_signature().is_ok();
    let owner = musig2_security::PeerId::new(ad.peer_id.clone());
    assert_eq!(ad.verify_owner(&owner).is_ok(), signed);
    if ad.validate().is_ok() {
        assert!(!ad.transaction_types.is_empty());
        assert!(ad.expires_at > ad.created_at);
        assert_eq!(ad.topics().count(), ad.transaction_types.len());
    }
}

/// The libp2p peer id the coordinator parses out of an advertisement
/// (`PeerId::from_str(&ad.peer_id)`): if it parses, its canonical string
/// parses back to the same id.
pub fn check_peer_id(text: &str) -> Option<musig2_net::PeerId> {
    let peer: musig2_net::PeerId = text.parse().ok()?;
    let again: Option<musig2_net::PeerId> = peer.to_string().parse().ok();
    assert_eq!(
        again,
        Some(peer),
        "peer id does not survive to_string/parse"
    );
    Some(peer)
}
