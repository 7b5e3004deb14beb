//! The coordinator's direct message, `musig2_coordinator::wire::decode`
//! (postcard, trailing bytes refused), as it is applied to every frame
//! payload a peer sends.
//!
//! Asserts: an accepted message survives encode → decode, its canonical
//! encoding is no longer than the input, the input with a byte more or a byte
//! less is refused; a carried signing request gets every announcement check.

#![no_main]

use libfuzzer_sys::fuzz_target;
use musig2_coordinator::wire::{self, Body};
use musig2_security::MessageKind;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = wire::decode(data) else {
        return;
    };
    let encoded =
        wire::encode(&message).unwrap_or_else(|e| panic!("a decoded message does not encode: {e}"));
    assert!(encoded.len() <= data.len());
    assert_eq!(wire::decode(&encoded).ok().as_ref(), Some(&message));
    assert_eq!(wire::encode(&message).ok().as_ref(), Some(&encoded));
    assert!(
        wire::decode(&[data, &[0][..]].concat()).is_err(),
        "trailing byte accepted"
    );
    assert!(
        wire::decode(&data[..data.len() - 1]).is_err(),
        "truncation accepted"
    );

    let (kind, index) = (message.body.kind(), message.body.claimed_index());
    match &message.body {
        Body::SigningRequest(a) => {
            assert_eq!(kind, MessageKind::SigningRequest);
            assert_eq!(index, None);
            let bytes = postcard::to_allocvec(a.as_ref()).unwrap_or_default();
            lotus_musig2_fuzz::check_announcement(a, &bytes);
        }
        Body::SessionJoin { signer_index, .. }
        | Body::NonceCommit { signer_index, .. }
        | Body::NonceShare { signer_index, .. }
        | Body::PartialSigShare { signer_index, .. } => {
            assert_eq!(index, Some(*signer_index as usize));
        }
        Body::SessionAbort { .. }
        | Body::SignatureFinalized { .. }
        | Body::ValidationError { .. }
        | Body::TranscriptView { .. }
        | Body::RoundBatch { .. } => {
            assert_eq!(index, None);
        }
    }
});
