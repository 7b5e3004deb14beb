//! Phase 0 nonce commitments (ours; lotus-sdk's optional Phase 0).
//!
//! Before any nonce is revealed, each signer publishes
//! `H_tag(session_id ‖ ser33(signer key) ‖ pubnonce)` with the tag
//! `"lotus-musig2/nonce-commitment/v1"`. Once every commitment is in, nonces
//! are revealed and each is checked against its commitment, so no signer can
//! choose its nonce after seeing the others'. The commitment is bound to the
//! session id and the signer's key, so it cannot be replayed into another
//! session or claimed by another signer.

use core::fmt;
use core::str::FromStr;

use crate::error::{Contribution, Error};
use crate::hash::{Hasher, tag};
use crate::hexfmt;
use crate::keys::PublicKey;
use crate::nonce::PublicNonce;

/// A 32-byte commitment to a public nonce.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NonceCommitment([u8; 32]);

impl NonceCommitment {
    /// The length of the encoding.
    pub const LEN: usize = 32;

    /// Commits to `pubnonce` for `signer` in the session `session_id`.
    pub fn commit(session_id: &[u8; 32], signer: &PublicKey, pubnonce: &PublicNonce) -> Self {
        Self(
            Hasher::tagged(tag::NONCE_COMMITMENT)
                .chain(session_id)
                .chain(&signer.to_bytes())
                .chain(&pubnonce.to_bytes())
                .finish(),
        )
    }

    /// Checks that `pubnonce` opens this commitment; otherwise blames
    /// `signer_index` with [`Contribution::NonceCommitment`].
    pub fn verify(
        &self,
        session_id: &[u8; 32],
        signer: &PublicKey,
        signer_index: usize,
        pubnonce: &PublicNonce,
    ) -> Result<(), Error> {
        if Self::commit(session_id, signer, pubnonce) == *self {
            Ok(())
        } else {
            Err(Error::InvalidContribution {
                signer: signer_index,
                contribution: Contribution::NonceCommitment,
            })
        }
    }

    /// Parses 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: &[u8; 32] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "nonce commitment",
            expected: 32,
            got: bytes.len(),
        })?;
        Self::from_bytes(array)
    }

    /// From 32 bytes (any value is a syntactically valid commitment).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        Ok(Self(*bytes))
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

crate::nonce::hex_display!(NonceCommitment, 32, "nonce commitment");
