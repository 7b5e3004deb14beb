//! SHA-256, BIP340 tagged hashes and the HMAC-SHA256 DRBG of RFC 6979.

use bitcoin_hashes::HashEngine as _;
use bitcoin_hashes::hmac::HmacEngine;
use bitcoin_hashes::sha256::{self, Midstate};

/// `SHA256(SHA256(tag) || SHA256(tag))` midstates, computed at compile time.
pub(crate) mod tag {
    use super::Midstate;
    pub(crate) const KEYAGG_LIST: Midstate = Midstate::hash_tag(b"KeyAgg list");
    pub(crate) const KEYAGG_COEFF: Midstate = Midstate::hash_tag(b"KeyAgg coefficient");
    pub(crate) const NONCE_COEF: Midstate = Midstate::hash_tag(b"MuSig/noncecoef");
    pub(crate) const AUX: Midstate = Midstate::hash_tag(b"MuSig/aux");
    pub(crate) const NONCE: Midstate = Midstate::hash_tag(b"MuSig/nonce");
    pub(crate) const BIP340_CHALLENGE: Midstate = Midstate::hash_tag(b"BIP0340/challenge");
    pub(crate) const TAP_TWEAK: Midstate = Midstate::hash_tag(b"TapTweak");
    /// Ours: the nonce commitment of Phase 0 (see `commitment`).
    pub(crate) const NONCE_COMMITMENT: Midstate =
        Midstate::hash_tag(b"lotus-musig2/nonce-commitment/v1");
    /// Ours: a signed session contribution (see `evidence`).
    pub(crate) const CONTRIBUTION: Midstate = Midstate::hash_tag(b"lotus-musig2/contribution/v1");
    /// Ours: a signer's transcript of a session (see `evidence`).
    pub(crate) const TRANSCRIPT: Midstate = Midstate::hash_tag(b"lotus-musig2/transcript/v1");
}

/// An incremental SHA-256, either plain or started from a tag midstate.
#[derive(Clone)]
pub(crate) struct Hasher(sha256::HashEngine);

impl Hasher {
    pub(crate) fn plain() -> Self {
        Self(sha256::HashEngine::new())
    }

    pub(crate) fn tagged(tag: Midstate) -> Self {
        Self(tag.to_engine())
    }

    pub(crate) fn chain(mut self, data: &[u8]) -> Self {
        self.0.input(data);
        self
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        sha256::Hash::from_engine(self.0).to_byte_array()
    }
}

/// Plain SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Hasher::plain().chain(data).finish()
}

/// BIP340 tagged hash `SHA256(SHA256(tag) || SHA256(tag) || data)` with any tag.
pub fn tagged_hash(tag: &str, data: &[u8]) -> [u8; 32] {
    Hasher::tagged(Midstate::hash_tag(tag.as_bytes()))
        .chain(data)
        .finish()
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut engine = HmacEngine::<sha256::HashEngine>::new(key);
    for part in parts {
        engine.input(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(engine.finalize().as_ref());
    out
}

/// The HMAC-SHA256 DRBG of RFC 6979 section 3.2, as libsecp256k1 implements it
/// (`secp256k1_rfc6979_hmac_sha256`).
pub(crate) struct Rfc6979 {
    k: [u8; 32],
    v: [u8; 32],
    retry: bool,
}

impl Rfc6979 {
    pub(crate) fn new(seed: &[&[u8]]) -> Self {
        let seed = concat_seed(seed);
        let mut k = [0u8; 32];
        let mut v = [1u8; 32];
        // K = HMAC_K(V || 0x00 || seed); V = HMAC_K(V)
        k = hmac(&k, &[&v, &[0x00], &seed]);
        v = hmac(&k, &[&v]);
        // K = HMAC_K(V || 0x01 || seed); V = HMAC_K(V)
        k = hmac(&k, &[&v, &[0x01], &seed]);
        v = hmac(&k, &[&v]);
        Self { k, v, retry: false }
    }

    pub(crate) fn generate(&mut self) -> [u8; 32] {
        if self.retry {
            self.k = hmac(&self.k, &[&self.v, &[0x00]]);
            self.v = hmac(&self.k, &[&self.v]);
        }
        self.v = hmac(&self.k, &[&self.v]);
        self.retry = true;
        self.v
    }
}

impl Drop for Rfc6979 {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.k.zeroize();
        self.v.zeroize();
    }
}

fn concat_seed(seed: &[&[u8]]) -> zeroize::Zeroizing<alloc::vec::Vec<u8>> {
    let mut out = zeroize::Zeroizing::new(alloc::vec::Vec::with_capacity(128));
    for part in seed {
        out.extend_from_slice(part);
    }
    out
}
