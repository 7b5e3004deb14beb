//! The two signature flavors that share one MuSig2 implementation.
//!
//! | rule | [`Lotus`] (lotus-sdk) | [`Bip340`] (BIP327) |
//! | --- | --- | --- |
//! | aggregate key | `ser33(Q)`, real parity | x-only `Q`, even y |
//! | coefficient 1 | key 1 if it equals key 0 | every copy of the second distinct key |
//! | nonce coefficient input | `ser33(Q) ‖ R1 ‖ R2 ‖ m` | `R1 ‖ R2 ‖ xbytes(Q) ‖ m` |
//! | sign of `R` | negate unless `jacobi(R.y) = 1` | negate unless `R.y` even |
//! | challenge | `SHA256(R.x ‖ ser33(Q) ‖ m)` | `H_BIP0340/challenge(R.x ‖ xbytes(Q) ‖ m)` |

use alloc::vec::Vec;
use core::fmt::Debug;

use secp256k1::PublicKey as Point;

use crate::arith::{self, Scalar};
use crate::error::Error;
use crate::hash::{Hasher, tag};
use crate::keys::PublicKey;
use crate::schnorr;
use crate::signature::Signature;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Lotus {}
    impl Sealed for super::Bip340 {}
}

/// The rules that differ between Lotus MuSig2 and BIP327. Sealed: the crate
/// implements exactly [`Lotus`] and [`Bip340`].
pub trait Flavor: sealed::Sealed + Copy + Default + Debug + Send + Sync + 'static {
    /// A short name for logs and benchmarks.
    const NAME: &'static str;

    /// Whether key `index` of the key list gets key-aggregation coefficient 1.
    /// `second` is BIP327's "second distinct key" (`None` if all keys are equal).
    #[doc(hidden)]
    fn coefficient_is_one(keys: &[PublicKey], index: usize, second: Option<&PublicKey>) -> bool;

    /// Whether the final key's encoding makes signers negate their secret key
    /// (BIP340: `Q` has odd y; Lotus: never).
    #[doc(hidden)]
    fn negate_for_key(q: &Point) -> bool;

    /// The aggregate-key input to nonce generation (BIP327 `aggpk`).
    #[doc(hidden)]
    fn nonce_gen_agg_pk(q: &Point) -> Vec<u8>;

    /// The nonce coefficient `b`.
    #[doc(hidden)]
    fn nonce_coefficient(q: &Point, aggnonce: &[u8; 66], msg: &[u8]) -> Scalar;

    /// Whether every signer negates its nonce for the final nonce point `R`.
    #[doc(hidden)]
    fn negate_nonce(r: &Point) -> bool;

    /// The signature challenge `e`.
    #[doc(hidden)]
    fn challenge(r_x: &[u8; 32], q: &Point, msg: &[u8]) -> Scalar;

    /// Verifies a final signature under the aggregate key.
    fn verify(q: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), Error>;
}

/// Lotus MuSig2, byte-compatible with lotus-sdk; signatures verify under Lotus
/// (Bitcoin Cash 2019) Schnorr. The default flavor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Lotus;

/// Standard BIP327 over BIP340 (x-only keys, even-y nonces).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bip340;

impl Flavor for Lotus {
    const NAME: &'static str = "lotus";

    fn coefficient_is_one(keys: &[PublicKey], index: usize, _second: Option<&PublicKey>) -> bool {
        // lotus-sdk: only the key at index 1, and only when it equals key 0.
        index == 1 && keys.get(1).is_some() && keys.get(1) == keys.first()
    }

    fn negate_for_key(_q: &Point) -> bool {
        false
    }

    fn nonce_gen_agg_pk(q: &Point) -> Vec<u8> {
        q.serialize().to_vec()
    }

    fn nonce_coefficient(q: &Point, aggnonce: &[u8; 66], msg: &[u8]) -> Scalar {
        let digest = Hasher::tagged(tag::NONCE_COEF)
            .chain(&q.serialize())
            .chain(aggnonce)
            .chain(msg)
            .finish();
        arith::scalar_reduce(&digest)
    }

    fn negate_nonce(r: &Point) -> bool {
        !arith::jacobi_is_one(r)
    }

    fn challenge(r_x: &[u8; 32], q: &Point, msg: &[u8]) -> Scalar {
        schnorr::challenge_scalar(r_x, &PublicKey(*q), msg)
    }

    fn verify(q: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), Error> {
        schnorr::verify(q, msg, sig)
    }
}

impl Flavor for Bip340 {
    const NAME: &'static str = "bip340";

    fn coefficient_is_one(keys: &[PublicKey], index: usize, second: Option<&PublicKey>) -> bool {
        second.is_some() && keys.get(index) == second
    }

    fn negate_for_key(q: &Point) -> bool {
        !arith::has_even_y(q)
    }

    fn nonce_gen_agg_pk(q: &Point) -> Vec<u8> {
        arith::x_bytes(q).to_vec()
    }

    fn nonce_coefficient(q: &Point, aggnonce: &[u8; 66], msg: &[u8]) -> Scalar {
        let digest = Hasher::tagged(tag::NONCE_COEF)
            .chain(aggnonce)
            .chain(&arith::x_bytes(q))
            .chain(msg)
            .finish();
        arith::scalar_reduce(&digest)
    }

    fn negate_nonce(r: &Point) -> bool {
        !arith::has_even_y(r)
    }

    fn challenge(r_x: &[u8; 32], q: &Point, msg: &[u8]) -> Scalar {
        let digest = Hasher::tagged(tag::BIP340_CHALLENGE)
            .chain(r_x)
            .chain(&arith::x_bytes(q))
            .chain(msg)
            .finish();
        arith::scalar_reduce(&digest)
    }

    fn verify(q: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), Error> {
        let xonly = secp256k1::XOnlyPublicKey::from_byte_array(q.x_only()).map_err(|_| {
            Error::InvalidPoint {
                what: "aggregate key",
            }
        })?;
        let sig = secp256k1::schnorr::Signature::from_byte_array(sig.to_bytes());
        xonly.verify(msg, &sig).map_err(|_| Error::InvalidSignature)
    }
}
