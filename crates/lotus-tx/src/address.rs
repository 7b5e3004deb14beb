//! Lotus XAddresses (`xaddress.ts`, `address.ts:727-772`; lotusd
//! `src/addresses/xaddress.cpp`):
//!
//! ```text
//! address  = "lotus" ‖ network_char ‖ base58(type_byte ‖ payload ‖ checksum)
//! network_char = '_' livenet, 'T' testnet, 'R' regtest
//! type_byte = 0: payload is a whole P2PKH (25 bytes) or P2SH (23 bytes) scriptPubKey
//!             2: payload is a 33-byte Taproot commitment (a state is not encoded)
//! checksum = SHA256("lotus" ‖ network_char ‖ type_byte ‖ payload)[0..4]
//! base58   = Bitcoin alphabet, each leading 0x00 byte is a '1', no Base58Check
//! ```
//!
//! Decoding is strict: the token must be `lotus`, the checksum must be the one
//! above (lotus-sdk 0.2.0 no longer accepts the legacy checksum that lotusd
//! still does), type 0 payloads must be P2PKH or P2SH scripts and type 2
//! payloads valid compressed points.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use musig2_core::PublicKey;
use musig2_core::hash::sha256;

use crate::error::AddressError;
use crate::script::{self, ScriptKind};

const TOKEN: &str = "lotus";
const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// Longer than any XAddress (the longest payload is 33 bytes): bounds the
/// quadratic base58 decoding of hostile input.
const MAX_ADDRESS_LEN: usize = 128;
const TYPE_SCRIPT: u8 = 0;
const TYPE_TAPROOT: u8 = 2;

/// A Lotus network, as XAddresses name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Network {
    /// The main network (`_`).
    Livenet,
    /// The test network (`T`).
    Testnet,
    /// Regression-test networks (`R`).
    Regtest,
}

impl Network {
    /// The character after the token.
    pub const fn to_char(self) -> char {
        match self {
            Self::Livenet => '_',
            Self::Testnet => 'T',
            Self::Regtest => 'R',
        }
    }

    /// The network of a network character.
    pub const fn from_char(c: char) -> Option<Self> {
        match c {
            '_' => Some(Self::Livenet),
            'T' => Some(Self::Testnet),
            'R' => Some(Self::Regtest),
            _ => None,
        }
    }

    /// `livenet`, `testnet` or `regtest`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Livenet => "livenet",
            Self::Testnet => "testnet",
            Self::Regtest => "regtest",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Network {
    type Err = AddressError;
    /// `livenet` (or `mainnet`), `testnet`, `regtest`.
    fn from_str(s: &str) -> Result<Self, AddressError> {
        match s {
            "livenet" | "mainnet" => Ok(Self::Livenet),
            "testnet" => Ok(Self::Testnet),
            "regtest" => Ok(Self::Regtest),
            other => Err(AddressError::UnknownNetworkName(other.to_string())),
        }
    }
}

/// What an address pays to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Destination {
    /// Pay to public-key hash.
    P2pkh([u8; 20]),
    /// Pay to script hash.
    P2sh([u8; 20]),
    /// Lotus Taproot, by its commitment key (without a state).
    P2tr(PublicKey),
}

impl Destination {
    /// `p2pkh`, `p2sh` or `p2tr`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::P2pkh(_) => "p2pkh",
            Self::P2sh(_) => "p2sh",
            Self::P2tr(_) => "p2tr",
        }
    }

    /// The scriptPubKey (a P2TR destination without state).
    pub fn script_pubkey(&self) -> Vec<u8> {
        match self {
            Self::P2pkh(hash) => script::p2pkh(hash),
            Self::P2sh(hash) => script::p2sh(hash),
            Self::P2tr(commitment) => script::p2tr(commitment, None),
        }
    }

    fn type_and_payload(&self) -> (u8, Vec<u8>) {
        match self {
            Self::P2tr(commitment) => (TYPE_TAPROOT, commitment.to_bytes().to_vec()),
            _ => (TYPE_SCRIPT, self.script_pubkey()),
        }
    }
}

/// A Lotus XAddress: a network and a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    /// The network.
    pub network: Network,
    /// What it pays to.
    pub destination: Destination,
}

impl Address {
    /// An address for `destination` on `network`.
    pub const fn new(network: Network, destination: Destination) -> Self {
        Self {
            network,
            destination,
        }
    }

    /// The P2PKH address of a 33-byte public key.
    pub fn p2pkh(network: Network, key: &PublicKey) -> Self {
        Self::new(
            network,
            Destination::P2pkh(crate::hash::hash160(&key.to_bytes())),
        )
    }

    /// The address of a scriptPubKey: P2PKH, P2SH or P2TR (with or without
    /// state; the state is not in the address).
    pub fn from_script(network: Network, script_pubkey: &[u8]) -> Result<Self, AddressError> {
        let destination = match ScriptKind::of(script_pubkey) {
            ScriptKind::P2pkh { hash } => Destination::P2pkh(hash),
            ScriptKind::P2sh { hash } => Destination::P2sh(hash),
            ScriptKind::P2tr { commitment, .. } => Destination::P2tr(
                PublicKey::from_bytes(&commitment).map_err(|_| AddressError::UnsupportedScript)?,
            ),
            _ => return Err(AddressError::UnsupportedScript),
        };
        Ok(Self::new(network, destination))
    }

    /// The scriptPubKey it pays to.
    pub fn script_pubkey(&self) -> Vec<u8> {
        self.destination.script_pubkey()
    }

    /// Parses an XAddress (see the module documentation).
    pub fn decode(s: &str) -> Result<Self, AddressError> {
        if s.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong(s.len()));
        }
        let rest = s
            .strip_prefix(TOKEN)
            .ok_or_else(|| AddressError::UnknownToken(s.chars().take(16).collect()))?;
        let mut chars = rest.chars();
        let net_char = chars
            .next()
            .ok_or_else(|| AddressError::UnknownToken(s.to_string()))?;
        let network = Network::from_char(net_char).ok_or(AddressError::UnknownNetwork(net_char))?;
        let bytes = base58_decode(chars.as_str())?;
        let len = bytes.len();
        if len < 1 + 4 + 1 {
            return Err(AddressError::TooShort(len));
        }
        let (body, checksum) = bytes.split_at(len - 4);
        let (&type_byte, payload) = body.split_first().ok_or(AddressError::TooShort(len))?;
        let expected = checksum_of(network, type_byte, payload);
        if expected != checksum {
            return Err(AddressError::BadChecksum {
                expected: hex::encode(expected),
                got: hex::encode(checksum),
            });
        }
        let destination = match type_byte {
            TYPE_SCRIPT => match ScriptKind::of(payload) {
                ScriptKind::P2pkh { hash } => Destination::P2pkh(hash),
                ScriptKind::P2sh { hash } => Destination::P2sh(hash),
                _ => {
                    return Err(AddressError::BadPayload {
                        expected: "P2PKH or P2SH script",
                    });
                }
            },
            TYPE_TAPROOT => Destination::P2tr(PublicKey::from_slice(payload).map_err(|_| {
                AddressError::BadPayload {
                    expected: "33-byte Taproot commitment key",
                }
            })?),
            other => return Err(AddressError::UnknownType(other)),
        };
        Ok(Self::new(network, destination))
    }
}

fn checksum_of(network: Network, type_byte: u8, payload: &[u8]) -> [u8; 4] {
    let mut data = Vec::with_capacity(TOKEN.len() + 2 + payload.len());
    data.extend_from_slice(TOKEN.as_bytes());
    data.push(network.to_char() as u8);
    data.push(type_byte);
    data.extend_from_slice(payload);
    let digest = sha256(&data);
    let mut out = [0u8; 4];
    out.copy_from_slice(digest.get(..4).unwrap_or(&[0u8; 4]));
    out
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (type_byte, payload) = self.destination.type_and_payload();
        let mut data = Vec::with_capacity(1 + payload.len() + 4);
        data.push(type_byte);
        data.extend_from_slice(&payload);
        data.extend_from_slice(&checksum_of(self.network, type_byte, &payload));
        write!(
            f,
            "{TOKEN}{}{}",
            self.network.to_char(),
            base58_encode(&data)
        )
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        Self::decode(s)
    }
}

/// Base58 (Bitcoin alphabet) of `data`.
fn base58_encode(data: &[u8]) -> String {
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    // Little-endian base-58 digits.
    let mut digits: Vec<u8> = Vec::with_capacity(data.len() * 138 / 100 + 1);
    for &byte in data.iter().skip(zeros) {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    for _ in 0..zeros {
        out.push('1');
    }
    for &d in digits.iter().rev() {
        out.push(char::from(
            ALPHABET.get(usize::from(d)).copied().unwrap_or(b'1'),
        ));
    }
    out
}

/// Bytes of a base58 string (Bitcoin alphabet).
fn base58_decode(s: &str) -> Result<Vec<u8>, AddressError> {
    let mut bytes: Vec<u8> = Vec::with_capacity(s.len());
    let mut zeros = 0usize;
    let mut leading = true;
    for (position, character) in s.chars().enumerate() {
        let value = ALPHABET
            .iter()
            .position(|&a| char::from(a) == character)
            .ok_or(AddressError::InvalidBase58 {
                character,
                position,
            })?;
        if leading && value == 0 {
            zeros += 1;
            continue;
        }
        leading = false;
        // Little-endian base-256 digits.
        let mut carry = value as u32;
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let mut out = Vec::with_capacity(zeros + bytes.len());
    out.resize(zeros, 0u8);
    out.extend(bytes.iter().rev());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn base58_round_trip() {
        for data in [
            vec![],
            vec![0],
            vec![0, 0, 1],
            vec![0xff; 40],
            vec![0, 0x76, 0xa9, 0x14, 1, 2, 3],
        ] {
            let s = base58_encode(&data);
            assert_eq!(base58_decode(&s), Ok(data));
        }
        // Bitcoin's known value.
        assert_eq!(base58_encode(b"hello world"), "StV1DL6CwTryKyV");
        assert!(matches!(
            base58_decode("0OIl"),
            Err(AddressError::InvalidBase58 { position: 0, .. })
        ));
    }
}
