//! BIP327 `NonceGen` and `NonceAgg`, and the nonce types.
//!
//! A [`SecretNonce`] is the one secret that must never be used twice: two
//! partial signatures with the same nonce and different challenges reveal the
//! secret key. So it is not `Clone`, `Copy` or serializable, it prints as
//! `SecretNonce(..)`, it is zeroized on drop, and [`crate::sign`] takes it by
//! value. Reuse does not compile, for the reason each example names (the
//! error code after `compile_fail` is checked by rustdoc on a nightly
//! toolchain only; `cargo xtask ci` runs these doc tests on nightly too):
//!
//! ```compile_fail,E0382
//! # use musig2_core::*;
//! # fn f(keypair: Keypair, ctx: SessionContext, secnonce: SecretNonce) {
//! let first = sign(secnonce, &keypair, 0, &ctx);
//! let second = sign(secnonce, &keypair, 0, &ctx); // error: use of moved value
//! # }
//! ```
//!
//! ```compile_fail,E0599
//! # use musig2_core::*;
//! # fn f(secnonce: SecretNonce) {
//! let copy = secnonce.clone(); // error: no method `clone`
//! # }
//! ```
//!
//! ```compile_fail,E0277
//! # use musig2_core::*;
//! fn needs_copy<T: Copy>() {}
//! needs_copy::<SecretNonce>(); // error: `Copy` is not implemented
//! ```
//!
//! ```compile_fail,E0277
//! # use musig2_core::*;
//! fn needs_serialize<T: serde::Serialize>() {}
//! needs_serialize::<SecretNonce>(); // error: `Serialize` is not implemented
//! ```
//!
//! ```
//! # use musig2_core::*;
//! # let mut rng = rand::rng();
//! # let keypair = Keypair::random(&mut rng);
//! let (secnonce, _pubnonce) = nonce_gen(&mut rng, keypair.public_key(), NonceGenInputs::default());
//! assert_eq!(format!("{secnonce:?}"), "SecretNonce(..)");
//! ```

use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;
use secp256k1::PublicKey as Point;
use zeroize::Zeroize;

use crate::arith::{self, Scalar};
use crate::error::{Contribution, Error};
use crate::hash::{Hasher, tag};
use crate::hexfmt;
use crate::keys::{PublicKey, SecretKey};

/// A signer's secret nonce `(k1, k2)` and the public key it was made for.
pub struct SecretNonce {
    k1: Scalar,
    k2: Scalar,
    pk: PublicKey,
}

impl SecretNonce {
    /// The public key this nonce was generated for.
    pub fn public_key(&self) -> PublicKey {
        self.pk
    }

    pub(crate) fn into_parts(
        self,
    ) -> (
        zeroize::Zeroizing<Scalar>,
        zeroize::Zeroizing<Scalar>,
        PublicKey,
    ) {
        let parts = (
            zeroize::Zeroizing::new(self.k1),
            zeroize::Zeroizing::new(self.k2),
            self.pk,
        );
        // `self` drops here and zeroizes its own copy.
        parts
    }

    /// **Test vectors only.** Builds a secret nonce from the 97-byte BIP327
    /// encoding `k1 ‖ k2 ‖ pk`. Zero scalars are accepted (signing then fails
    /// with [`Error::InvalidSecretNonce`], as BIP327's vectors require).
    #[cfg(feature = "danger-test-vectors")]
    pub fn dangerous_from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let array: &[u8; 97] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "secret nonce",
            expected: 97,
            got: bytes.len(),
        })?;
        let mut k1 = [0u8; 32];
        let mut k2 = [0u8; 32];
        let mut pk = [0u8; 33];
        k1.copy_from_slice(&array[..32]);
        k2.copy_from_slice(&array[32..64]);
        pk.copy_from_slice(&array[64..]);
        let scalar = |b: &[u8; 32]| arith::scalar_checked(b).ok_or(Error::InvalidSecretNonce);
        Ok(Self {
            k1: scalar(&k1)?,
            k2: scalar(&k2)?,
            pk: PublicKey::from_bytes(&pk)?,
        })
    }

    /// **Test vectors only.** The 97-byte BIP327 encoding `k1 ‖ k2 ‖ pk`.
    #[cfg(feature = "danger-test-vectors")]
    pub fn dangerous_to_bytes(&self) -> [u8; 97] {
        let mut out = [0u8; 97];
        out[..32].copy_from_slice(&arith::scalar_bytes(&self.k1));
        out[32..64].copy_from_slice(&arith::scalar_bytes(&self.k2));
        out[64..].copy_from_slice(&self.pk.to_bytes());
        out
    }
}

impl Drop for SecretNonce {
    fn drop(&mut self) {
        self.k1.zeroize();
        self.k2.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for SecretNonce {}

impl fmt::Debug for SecretNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretNonce(..)")
    }
}

/// A signer's public nonce `(R1, R2)`: 66 bytes, two compressed points.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicNonce {
    r1: Point,
    r2: Point,
}

impl PublicNonce {
    /// The length of the encoding.
    pub const LEN: usize = 66;

    /// Parses 66 bytes; both halves must be valid points.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: &[u8; 66] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "public nonce",
            expected: 66,
            got: bytes.len(),
        })?;
        Self::from_bytes(array)
    }

    /// Parses 66 bytes; both halves must be valid points.
    pub fn from_bytes(bytes: &[u8; 66]) -> Result<Self, Error> {
        let (a, b) = split_66(bytes);
        let parse = |half: [u8; 33]| {
            Point::from_byte_array_compressed(half).map_err(|_| Error::InvalidPoint {
                what: "public nonce",
            })
        };
        Ok(Self {
            r1: parse(a)?,
            r2: parse(b)?,
        })
    }

    /// The 66-byte encoding `ser33(R1) ‖ ser33(R2)`.
    pub fn to_bytes(&self) -> [u8; 66] {
        join_66(&self.r1.serialize(), &self.r2.serialize())
    }

    pub(crate) fn points(&self) -> (&Point, &Point) {
        (&self.r1, &self.r2)
    }
}

/// Parses a list of public nonces; a bad nonce is blamed on its index.
pub fn parse_pubnonces<B: AsRef<[u8]>>(nonces: &[B]) -> Result<Vec<PublicNonce>, Error> {
    nonces
        .iter()
        .enumerate()
        .map(|(signer, bytes)| {
            PublicNonce::from_slice(bytes.as_ref()).map_err(|_| Error::InvalidContribution {
                signer,
                contribution: Contribution::PublicNonce,
            })
        })
        .collect()
}

/// The aggregate nonce `(R1, R2) = (Σ R_{i,1}, Σ R_{i,2})`. Either half may be
/// the point at infinity, encoded as 33 zero bytes (BIP327).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AggNonce {
    r1: Option<Point>,
    r2: Option<Point>,
}

impl AggNonce {
    /// The length of the encoding.
    pub const LEN: usize = 66;

    /// Parses 66 bytes; each half is a compressed point or 33 zero bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: &[u8; 66] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "aggregate nonce",
            expected: 66,
            got: bytes.len(),
        })?;
        Self::from_bytes(array)
    }

    /// Parses 66 bytes; each half is a compressed point or 33 zero bytes.
    pub fn from_bytes(bytes: &[u8; 66]) -> Result<Self, Error> {
        let (a, b) = split_66(bytes);
        let parse = |half: [u8; 33]| {
            if half == [0u8; 33] {
                Ok(None)
            } else {
                Point::from_byte_array_compressed(half)
                    .map(Some)
                    .map_err(|_| Error::InvalidPoint {
                        what: "aggregate nonce",
                    })
            }
        };
        Ok(Self {
            r1: parse(a)?,
            r2: parse(b)?,
        })
    }

    /// The 66-byte encoding.
    pub fn to_bytes(&self) -> [u8; 66] {
        let enc = |p: &Option<Point>| p.map(|p| p.serialize()).unwrap_or([0u8; 33]);
        join_66(&enc(&self.r1), &enc(&self.r2))
    }

    pub(crate) fn points(&self) -> (Option<&Point>, Option<&Point>) {
        (self.r1.as_ref(), self.r2.as_ref())
    }
}

/// BIP327 `NonceAgg`.
pub fn nonce_agg(pubnonces: &[PublicNonce]) -> AggNonce {
    let r1: Vec<&Point> = pubnonces.iter().map(|n| &n.r1).collect();
    let r2: Vec<&Point> = pubnonces.iter().map(|n| &n.r2).collect();
    AggNonce {
        r1: arith::sum(&r1),
        r2: arith::sum(&r2),
    }
}

/// The optional inputs of BIP327 `NonceGen`. Each one that is present makes
/// the nonce more robust against a weak RNG; none is required.
#[derive(Clone, Copy, Default)]
pub struct NonceGenInputs<'a> {
    /// The signer's secret key.
    pub secret_key: Option<&'a SecretKey>,
    /// The aggregate key (Lotus: 33 bytes `ser33(Q)`; BIP340: 32 bytes x-only).
    /// [`crate::KeyAggContext::nonce_gen_agg_pk`] gives the right bytes.
    pub aggregate_pubkey: Option<&'a [u8]>,
    /// The message, if known already.
    pub message: Option<&'a [u8]>,
    /// Any extra input, e.g. a session id or a counter.
    pub extra_input: Option<&'a [u8]>,
}

impl fmt::Debug for NonceGenInputs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceGenInputs").finish_non_exhaustive()
    }
}

/// BIP327 `NonceGen` with 32 fresh bytes from `rng`.
///
/// Unlike lotus-sdk, whose nonces are a hash of the key and the message, this
/// nonce is random: deterministic MuSig2 nonces leak the secret key when a
/// signer is driven twice through the same message with different co-signer
/// nonces.
pub fn nonce_gen<R: CryptoRng + ?Sized>(
    rng: &mut R,
    pubkey: PublicKey,
    inputs: NonceGenInputs<'_>,
) -> (SecretNonce, PublicNonce) {
    loop {
        let mut rand = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(rand.as_mut());
        // A zero k has probability 2^-256 per try; draw again rather than fail.
        if let Ok(pair) = nonce_gen_internal(&rand, pubkey, inputs) {
            return pair;
        }
    }
}

/// **Test vectors only.** `NonceGen` with caller-chosen `rand'`.
#[cfg(feature = "danger-test-vectors")]
pub fn dangerous_nonce_gen_with_rand(
    rand: &[u8; 32],
    pubkey: PublicKey,
    inputs: NonceGenInputs<'_>,
) -> Result<(SecretNonce, PublicNonce), Error> {
    nonce_gen_internal(rand, pubkey, inputs)
}

fn nonce_gen_internal(
    rand_prime: &[u8; 32],
    pubkey: PublicKey,
    inputs: NonceGenInputs<'_>,
) -> Result<(SecretNonce, PublicNonce), Error> {
    let mut rand = zeroize::Zeroizing::new(*rand_prime);
    if let Some(sk) = inputs.secret_key {
        let aux = Hasher::tagged(tag::AUX).chain(rand_prime).finish();
        let sk_bytes = sk.to_secret_bytes();
        for ((r, s), a) in rand.iter_mut().zip(sk_bytes.iter()).zip(aux.iter()) {
            *r = s ^ a;
        }
    }
    let pk = pubkey.to_bytes();
    let agg_pk = inputs.aggregate_pubkey.unwrap_or(&[]);
    let extra = inputs.extra_input.unwrap_or(&[]);

    let mut base = Hasher::tagged(tag::NONCE)
        .chain(rand.as_ref())
        .chain(&[len_u8(pk.len())])
        .chain(&pk)
        .chain(&[len_u8(agg_pk.len())])
        .chain(agg_pk);
    base = match inputs.message {
        None => base.chain(&[0]),
        Some(m) => base
            .chain(&[1])
            .chain(&(m.len() as u64).to_be_bytes())
            .chain(m),
    };
    base = base.chain(&(extra.len() as u32).to_be_bytes()).chain(extra);

    let k = |i: u8| arith::scalar_reduce(&base.clone().chain(&[i]).finish());
    let k1 = k(0);
    let k2 = k(1);
    let Some((r1, r2)) = arith::mul_base_secret_pair(&k1, &k2) else {
        return Err(Error::InvalidSecretNonce);
    };
    Ok((SecretNonce { k1, k2, pk: pubkey }, PublicNonce { r1, r2 }))
}

fn len_u8(len: usize) -> u8 {
    u8::try_from(len).unwrap_or(u8::MAX)
}

fn split_66(bytes: &[u8; 66]) -> ([u8; 33], [u8; 33]) {
    let mut a = [0u8; 33];
    let mut b = [0u8; 33];
    a.copy_from_slice(&bytes[..33]);
    b.copy_from_slice(&bytes[33..]);
    (a, b)
}

fn join_66(a: &[u8; 33], b: &[u8; 33]) -> [u8; 66] {
    let mut out = [0u8; 66];
    out[..33].copy_from_slice(a);
    out[33..].copy_from_slice(b);
    out
}

macro_rules! hex_display {
    ($ty:ty, $len:expr, $what:expr) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self)
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                hexfmt::write(f, &self.to_bytes())
            }
        }
        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::from_bytes(&hexfmt::decode_array::<$len>(s, $what)?)
            }
        }
        #[cfg(feature = "serde")]
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    s.serialize_bytes(&self.to_bytes())
                }
            }
        }
        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                if d.is_human_readable() {
                    let s = <alloc::string::String as serde::Deserialize>::deserialize(d)?;
                    s.parse().map_err(D::Error::custom)
                } else {
                    let bytes = <alloc::vec::Vec<u8> as serde::Deserialize>::deserialize(d)?;
                    Self::from_slice(&bytes).map_err(D::Error::custom)
                }
            }
        }
    };
}
pub(crate) use hex_display;

hex_display!(PublicNonce, 66, "public nonce");
hex_display!(AggNonce, 66, "aggregate nonce");
