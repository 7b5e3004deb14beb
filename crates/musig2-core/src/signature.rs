//! The 64-byte Schnorr signature `r || s` shared by Lotus Schnorr and BIP340.

use core::fmt;
use core::str::FromStr;

use crate::arith::{self, Scalar};
use crate::error::Error;
use crate::hexfmt;

/// A 64-byte Schnorr signature `r || s` (big-endian). In a Lotus transaction it
/// is followed by one sighash byte; see [`Signature::to_tx_bytes`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature {
    r: [u8; 32],
    s: [u8; 32],
}

impl Signature {
    /// The length of the encoding.
    pub const LEN: usize = 64;

    /// Parses 64 bytes. Range checks (`r < p`, `s < n`) happen in verification,
    /// so that an out-of-range signature is a verification failure, as the
    /// specifications require.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: &[u8; 64] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "signature",
            expected: 64,
            got: bytes.len(),
        })?;
        Ok(Self::from_bytes(array))
    }

    /// From 64 bytes.
    pub fn from_bytes(bytes: &[u8; 64]) -> Self {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        Self { r, s }
    }

    pub(crate) fn from_parts(r: [u8; 32], s: &Scalar) -> Self {
        Self {
            r,
            s: arith::scalar_bytes(s),
        }
    }

    /// The 64-byte encoding `r || s`.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }

    /// The 65-byte transaction encoding: `r || s || sighash_type`.
    pub fn to_tx_bytes(&self, sighash_type: u8) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&self.to_bytes());
        out[64] = sighash_type;
        out
    }

    /// `r`, the x-coordinate of the nonce point.
    pub fn r(&self) -> &[u8; 32] {
        &self.r
    }

    /// `s`, big-endian.
    pub fn s(&self) -> &[u8; 32] {
        &self.s
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hexfmt::write(f, &self.to_bytes())
    }
}

impl FromStr for Signature {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(Self::from_bytes(&hexfmt::decode_array(s, "signature")?))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            serde::Serialize::serialize(&(self.r, self.s), s)
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        if d.is_human_readable() {
            let s = <alloc::string::String as serde::Deserialize>::deserialize(d)?;
            s.parse().map_err(D::Error::custom)
        } else {
            let (r, s) = <([u8; 32], [u8; 32]) as serde::Deserialize>::deserialize(d)?;
            Ok(Self { r, s })
        }
    }
}
