//! `SignerAdvertisement` (musig2-security) from bytes: postcard, decoded
//! exactly (no trailing bytes), then its validation, signature verification
//! and the libp2p peer id it names.
//!
//! Asserts: value round trip; the hand-written signing encoding equals
//! postcard's; the owner check equals the signature check for the claimed
//! peer; a parsed peer id survives `to_string`/`parse`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lotus_musig2_fuzz::{check_advertisement, check_peer_id, decode_exact};
use musig2_security::SignerAdvertisement;

fuzz_target!(|data: &[u8]| {
    if let Some(ad) = decode_exact::<SignerAdvertisement>(data) {
        check_advertisement(&ad, data);
        let _ = check_peer_id(&ad.peer_id);
    }
});
