//! `SessionAnnouncement` (musig2-security) from bytes: postcard, decoded
//! exactly (no trailing bytes), then its structural validation and signature
//! verification.
//!
//! Asserts: value round trip; the hand-written signing encoding equals
//! postcard's; the owner check equals the signature check for the claimed
//! peer; a valid announcement's request id, creator index and expiry hold.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lotus_musig2_fuzz::{check_announcement, decode_exact};
use musig2_security::SessionAnnouncement;

fuzz_target!(|data: &[u8]| {
    if let Some(a) = decode_exact::<SessionAnnouncement>(data) {
        check_announcement(&a, data);
    }
});
