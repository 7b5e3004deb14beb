//! Secret keys, public keys and key pairs.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;

use crate::arith::{self, Scalar};
use crate::error::Error;
use crate::hexfmt;

/// A secp256k1 secret key: a scalar in `[1, n)`.
///
/// It is erased on drop, never printed (`Debug` shows `SecretKey(..)`, there is
/// no `Display`) and never serialized. It is `Clone` (a wallet may need two
/// handles) but not `Copy`, so every copy is explicit.
pub struct SecretKey(secp256k1::SecretKey);

impl SecretKey {
    /// Parses 32 big-endian bytes; rejects zero and values `≥ n`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: &[u8; 32] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "secret key",
            expected: 32,
            got: bytes.len(),
        })?;
        Self::from_bytes(array)
    }

    /// Parses 32 big-endian bytes; rejects zero and values `≥ n`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        secp256k1::SecretKey::from_secret_bytes(*bytes)
            .map(Self)
            .map_err(|_| Error::InvalidScalar { what: "secret key" })
    }

    /// A uniformly random secret key from a cryptographic RNG.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        loop {
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            rng.fill_bytes(bytes.as_mut());
            if let Ok(sk) = Self::from_bytes(&bytes) {
                return sk;
            }
        }
    }

    /// The 32-byte big-endian encoding, in a buffer that is zeroized on drop.
    pub fn to_secret_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_secret_bytes())
    }

    /// The public key `d·G`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(secp256k1::PublicKey::from_secret_key(&self.0))
    }

    /// The key as a scalar, for arithmetic. The caller zeroizes it.
    pub(crate) fn scalar(&self) -> zeroize::Zeroizing<Scalar> {
        zeroize::Zeroizing::new(arith::scalar_reduce(&self.to_secret_bytes()))
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        Self(self.0)
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.non_secure_erase();
    }
}

impl zeroize::ZeroizeOnDrop for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A secp256k1 public key, always handled as its 33-byte compressed encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub(crate) secp256k1::PublicKey);

impl PublicKey {
    /// The length of the compressed encoding.
    pub const LEN: usize = 33;

    /// Parses a 33-byte compressed point.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: &[u8; 33] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "public key",
            expected: 33,
            got: bytes.len(),
        })?;
        Self::from_bytes(array)
    }

    /// Parses a 33-byte compressed point.
    pub fn from_bytes(bytes: &[u8; 33]) -> Result<Self, Error> {
        secp256k1::PublicKey::from_byte_array_compressed(*bytes)
            .map(Self)
            .map_err(|_| Error::InvalidPoint { what: "public key" })
    }

    /// The 33-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; 33] {
        self.0.serialize()
    }

    /// The 32-byte x-coordinate (BIP340 "x-only" encoding).
    pub fn x_only(&self) -> [u8; 32] {
        arith::x_bytes(&self.0)
    }

    /// Whether the y-coordinate is even.
    pub fn has_even_y(&self) -> bool {
        arith::has_even_y(&self.0)
    }
}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    /// Bytewise order of the compressed encodings (BIP327 `KeySort`).
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.to_bytes().cmp(&other.to_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hexfmt::write(f, &self.to_bytes())
    }
}

impl FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bytes: [u8; 33] = hexfmt::decode_array(s, "public key")?;
        Self::from_bytes(&bytes)
    }
}

/// A secret key with its public key computed once.
#[derive(Clone)]
pub struct Keypair {
    secret: SecretKey,
    public: PublicKey,
}

impl Keypair {
    /// Computes the public key of `secret`.
    pub fn new(secret: SecretKey) -> Self {
        let public = secret.public_key();
        Self { secret, public }
    }

    /// A random key pair.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::new(SecretKey::random(rng))
    }

    /// The secret key.
    pub fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::PublicKey;
    use serde::de::Error as _;

    impl serde::Serialize for PublicKey {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                s.collect_str(self)
            } else {
                s.serialize_bytes(&self.to_bytes())
            }
        }
    }

    impl<'de> serde::Deserialize<'de> for PublicKey {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            if d.is_human_readable() {
                let s = <alloc::string::String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(D::Error::custom)
            } else {
                let bytes = <alloc::vec::Vec<u8> as serde::Deserialize>::deserialize(d)?;
                PublicKey::from_slice(&bytes).map_err(D::Error::custom)
            }
        }
    }
}
