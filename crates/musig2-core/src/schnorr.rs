//! Lotus Schnorr: the Bitcoin Cash 2019-05-15 Schnorr scheme that Lotus uses.
//!
//! * challenge `e = int(SHA256(r || ser33(P) || m)) mod n` (plain SHA-256, full
//!   33-byte key);
//! * `R = k·G` with `k` negated when `jacobi(R.y) ≠ 1`; `s = k + e·d`;
//! * verification rejects `r ≥ p`, `s ≥ n`, `R = ∞`, `jacobi(R.y) ≠ 1`, `R.x ≠ r`.
//!
//! [`sign`] uses lotus-sdk's (and libsecp256k1-abc's) deterministic RFC 6979
//! nonce with the algorithm tag `"Schnorr+SHA256  "`, so its signatures are
//! byte-identical to lotus-sdk's. Deterministic nonces are safe here because a
//! single signer alone chooses them; MuSig2 nonces are never deterministic.

use crate::arith::{self, Scalar};
use crate::error::Error;
use crate::hash::{Hasher, Rfc6979};
use crate::keys::{PublicKey, SecretKey};
use crate::signature::Signature;

/// The 16-byte algorithm tag appended to the RFC 6979 seed.
const ALGO16: &[u8; 16] = b"Schnorr+SHA256  ";

/// The Lotus Schnorr challenge `int(SHA256(r || ser33(P) || m)) mod n`.
pub fn challenge(r: &[u8; 32], pubkey: &PublicKey, msg: &[u8]) -> [u8; 32] {
    arith::scalar_bytes(&challenge_scalar(r, pubkey, msg))
}

pub(crate) fn challenge_scalar(r: &[u8; 32], pubkey: &PublicKey, msg: &[u8]) -> Scalar {
    let digest = Hasher::plain()
        .chain(r)
        .chain(&pubkey.to_bytes())
        .chain(msg)
        .finish();
    arith::scalar_reduce(&digest)
}

/// lotus-sdk's deterministic nonce: the first RFC 6979 candidate in `[1, n)`,
/// seeded with `d || m || "Schnorr+SHA256  "`.
pub(crate) fn deterministic_nonce(
    secret: &SecretKey,
    msg: &[u8; 32],
) -> zeroize::Zeroizing<Scalar> {
    let seed = secret.to_secret_bytes();
    let mut drbg = Rfc6979::new(&[seed.as_ref(), msg, ALGO16]);
    loop {
        let candidate = zeroize::Zeroizing::new(drbg.generate());
        if let Some(k) = arith::scalar_checked(&candidate)
            && !arith::is_zero(&k)
        {
            return zeroize::Zeroizing::new(k);
        }
    }
}

/// Signs a 32-byte message (for a transaction, the SIGHASH_FORKID or
/// SIGHASH_LOTUS digest `SHA256d(preimage)` in natural byte order, exactly as
/// lotus-sdk's `sighash()` returns it; see `lotus-tx`) with lotus-sdk's
/// deterministic nonce.
pub fn sign(secret: &SecretKey, msg: &[u8; 32]) -> Signature {
    let k = deterministic_nonce(secret, msg);
    sign_with_nonce(secret, &secret.public_key(), msg, k)
}

fn sign_with_nonce(
    secret: &SecretKey,
    pubkey: &PublicKey,
    msg: &[u8],
    mut k: zeroize::Zeroizing<Scalar>,
) -> Signature {
    let Some(r_point) = arith::mul_base_secret(&k) else {
        // k is in [1, n) so k·G is never infinity; keep the signer total anyway.
        return Signature::from_bytes(&[0u8; 64]);
    };
    if !arith::jacobi_is_one(&r_point) {
        *k = -*k;
    }
    let r = arith::x_bytes(&r_point);
    let e = challenge_scalar(&r, pubkey, msg);
    let d = secret.scalar();
    let s = *k + e * *d;
    Signature::from_parts(r, &s)
}

/// Verifies a Lotus Schnorr signature over `msg` (32 bytes in Lotus consensus;
/// any length is accepted, as lotus-sdk does).
pub fn verify(pubkey: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), Error> {
    let r = sig.r();
    if !arith::is_below_field_size(r) {
        return Err(Error::InvalidSignature);
    }
    let s = arith::scalar_checked(sig.s()).ok_or(Error::InvalidSignature)?;
    let e = challenge_scalar(r, pubkey, msg);
    verify_with_challenge(&pubkey.0, r, &s, &e)
}

/// `R = s·G − e·P`; valid iff `R ≠ ∞`, `jacobi(R.y) = 1` and `R.x = r`.
pub(crate) fn verify_with_challenge(
    pubkey: &secp256k1::PublicKey,
    r: &[u8; 32],
    s: &Scalar,
    e: &Scalar,
) -> Result<(), Error> {
    let point = arith::lincomb(pubkey, &-*e, s).ok_or(Error::InvalidSignature)?;
    if arith::x_bytes(&point) == *r && arith::jacobi_is_one(&point) {
        Ok(())
    } else {
        Err(Error::InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn bch_reference_signature_of_key_one() {
        // sign(000102…1f, seckey = 1), the RFC 6979 signature that BCH libraries test.
        let mut one = [0u8; 32];
        one[31] = 1;
        let sk = SecretKey::from_bytes(&one).unwrap();
        let mut msg = [0u8; 32];
        for (i, b) in msg.iter_mut().enumerate() {
            *b = i as u8;
        }
        let sig = sign(&sk, &msg);
        assert_eq!(
            sig.to_string(),
            "d83f906d53ae57bb1a6a5e1e85a7c6b5ce93eb7dc57caeb06093ce9fa4788502\
             eb6feff7daac0b348ddd05d077a3ebc3fe3299042288c42c1be5b219a4e63f33"
        );
        assert_eq!(verify(&sk.public_key(), &msg, &sig), Ok(()));
        let mut other = msg;
        other[0] ^= 1;
        assert_eq!(
            verify(&sk.public_key(), &other, &sig),
            Err(Error::InvalidSignature)
        );
    }
}
