//! Burn proofs: the `MSg2` OP_RETURN output, its amount and its maturation.
//!
//! A burn output is
//!
//! ```text
//! OP_RETURN <push 4: "MSg2"> <push 1: 0x01> <payload push> [<payload push> …]
//! ```
//!
//! with the value of the output (the satoshis destroyed) as the burn amount.
//! The payload pushes, concatenated, start with the 33-byte compressed public
//! key; anything after it is kept as [`BurnPayload::extra`] and not
//! interpreted. Pushes must use the shortest encoding (direct push for up to 75
//! bytes, then `OP_PUSHDATA1/2/4`); `OP_0` is an empty push. Any other opcode
//! after `OP_RETURN` is rejected.
//!
//! Registration needs [`REGISTRATION_BURN_SATS`] (1000 XPI) matured for
//! [`REGISTRATION_MATURATION`] (144) confirmations; a key rotation needs
//! [`ROTATION_BURN_SATS`] (500 XPI) matured for [`ROTATION_MATURATION`] (100).
//! Confirmations are `tip_height − block_height + 1`, as lotus-sdk computes them.

use musig2_core::PublicKey;

use crate::indexer::IndexedTx;
use crate::tx::OutPoint;

/// The LOKAD prefix of MuSig2 identity burns.
pub const LOKAD_PREFIX: [u8; 4] = *b"MSg2";
/// The only payload version understood.
pub const LOKAD_VERSION: u8 = 1;
/// Satoshis per XPI.
pub const SATS_PER_XPI: u64 = 1_000_000;
/// Minimum registration burn: 1000 XPI.
pub const REGISTRATION_BURN_SATS: u64 = 1_000 * SATS_PER_XPI;
/// Minimum key-rotation burn: 500 XPI.
pub const ROTATION_BURN_SATS: u64 = 500 * SATS_PER_XPI;
/// Confirmations a registration burn needs (≈ 4.8 hours at 2 minutes a block).
pub const REGISTRATION_MATURATION: u32 = 144;
/// Confirmations a rotation burn needs (≈ 3.3 hours).
pub const ROTATION_MATURATION: u32 = 100;

const OP_0: u8 = 0x00;
const OP_PUSHDATA1: u8 = 0x4c;
const OP_PUSHDATA2: u8 = 0x4d;
const OP_PUSHDATA4: u8 = 0x4e;
const OP_RETURN: u8 = 0x6a;

/// Why an output is not an acceptable burn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BurnError {
    /// The script does not start with `OP_RETURN`.
    #[error("not an OP_RETURN script (first byte {first_byte:?})")]
    NotOpReturn {
        /// The first byte, if any.
        first_byte: Option<u8>,
    },
    /// An opcode other than a data push after `OP_RETURN`.
    #[error("opcode {opcode:#04x} at byte {offset} is not a data push")]
    NonPushOpcode {
        /// The opcode.
        opcode: u8,
        /// Its offset in the script.
        offset: usize,
    },
    /// A push that runs past the end of the script.
    #[error("push at byte {offset} runs past the end of the script")]
    TruncatedPush {
        /// Offset of the push opcode.
        offset: usize,
    },
    /// A push that does not use the shortest encoding.
    #[error("push at byte {offset} is not minimally encoded")]
    NonMinimalPush {
        /// Offset of the push opcode.
        offset: usize,
    },
    /// No LOKAD prefix push after `OP_RETURN`.
    #[error("no LOKAD prefix")]
    MissingLokad,
    /// The LOKAD prefix push is not 4 bytes.
    #[error("LOKAD prefix push has {len} bytes, expected 4")]
    LokadLength {
        /// Its length.
        len: usize,
    },
    /// Another protocol's LOKAD prefix.
    #[error("LOKAD prefix {found:02x?} is not \"MSg2\"")]
    WrongLokad {
        /// The prefix found.
        found: [u8; 4],
    },
    /// No version push.
    #[error("no version after the LOKAD prefix")]
    MissingVersion,
    /// The version push is not a single byte.
    #[error("version push has {len} bytes, expected 1")]
    VersionLength {
        /// Its length.
        len: usize,
    },
    /// A version other than 1.
    #[error("unsupported burn payload version {found}")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// The payload is shorter than a 33-byte public key.
    #[error("payload has {len} bytes, a 33-byte public key is required")]
    PayloadTooShort {
        /// The payload length.
        len: usize,
    },
    /// The payload's first 33 bytes are not a compressed secp256k1 point.
    #[error("payload public key is invalid: {0}")]
    InvalidPublicKey(musig2_core::Error),
    /// The transaction has no such output.
    #[error("output {vout} does not exist (the transaction has {outputs})")]
    NoSuchOutput {
        /// The index asked for.
        vout: u32,
        /// The number of outputs.
        outputs: usize,
    },
    /// The transaction is not in a block yet.
    #[error("burn transaction is not mined")]
    NotMined,
    /// Not enough confirmations yet.
    #[error("burn has {confirmations} confirmations, needs {required}")]
    Immature {
        /// Confirmations now.
        confirmations: u32,
        /// Confirmations needed.
        required: u32,
    },
    /// The burned amount is below the minimum.
    #[error("burn of {amount_sats} sats is below the {required_sats} sats required")]
    TooSmall {
        /// The amount burned.
        amount_sats: u64,
        /// The minimum.
        required_sats: u64,
    },
    /// The burn commits to another public key than the one presented.
    #[error("burn commits to key {found}, not to the key presented")]
    KeyMismatch {
        /// The key in the burn payload.
        found: PublicKey,
    },
}

/// The parsed payload of a burn output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnPayload {
    /// The public key the burn commits to.
    pub public_key: PublicKey,
    /// Payload bytes after the key (not interpreted).
    pub extra: Vec<u8>,
}

/// Parses a burn output script (see the module documentation).
pub fn parse_burn_script(script: &[u8]) -> Result<BurnPayload, BurnError> {
    match script.first() {
        Some(&OP_RETURN) => {}
        first => {
            return Err(BurnError::NotOpReturn {
                first_byte: first.copied(),
            });
        }
    }
    let mut pushes = Pushes { script, pos: 1 };

    let prefix = pushes.next().ok_or(BurnError::MissingLokad)??;
    let found: [u8; 4] = prefix
        .try_into()
        .map_err(|_| BurnError::LokadLength { len: prefix.len() })?;
    if found != LOKAD_PREFIX {
        return Err(BurnError::WrongLokad { found });
    }

    let version = pushes.next().ok_or(BurnError::MissingVersion)??;
    let [version] = <[u8; 1]>::try_from(version)
        .map_err(|_| BurnError::VersionLength { len: version.len() })?;
    if version != LOKAD_VERSION {
        return Err(BurnError::UnsupportedVersion { found: version });
    }

    let mut payload = Vec::new();
    for push in pushes {
        payload.extend_from_slice(push?);
    }
    let (key, extra) = payload
        .split_at_checked(PublicKey::LEN)
        .ok_or(BurnError::PayloadTooShort { len: payload.len() })?;
    let public_key = PublicKey::from_slice(key).map_err(BurnError::InvalidPublicKey)?;
    Ok(BurnPayload {
        public_key,
        extra: extra.to_vec(),
    })
}

/// The canonical burn script for `public_key`:
/// `OP_RETURN 04 "MSg2" 01 01 21 <33-byte key>`.
pub fn burn_script(public_key: &PublicKey) -> Vec<u8> {
    let mut script = Vec::with_capacity(1 + 5 + 2 + 34);
    script.push(OP_RETURN);
    script.push(4);
    script.extend_from_slice(&LOKAD_PREFIX);
    script.push(1);
    script.push(LOKAD_VERSION);
    script.push(PublicKey::LEN as u8);
    script.extend_from_slice(&public_key.to_bytes());
    script
}

/// Iterator over the data pushes of a script, from `pos`.
struct Pushes<'a> {
    script: &'a [u8],
    pos: usize,
}

impl<'a> Pushes<'a> {
    fn read(&mut self, offset: usize, len_bytes: usize) -> Result<usize, BurnError> {
        let start = offset + 1;
        let field = self
            .script
            .get(start..start + len_bytes)
            .ok_or(BurnError::TruncatedPush { offset })?;
        let mut le = [0u8; 8];
        for (dst, src) in le.iter_mut().zip(field) {
            *dst = *src;
        }
        self.pos = start + len_bytes;
        usize::try_from(u64::from_le_bytes(le)).map_err(|_| BurnError::TruncatedPush { offset })
    }

    fn push(&mut self) -> Result<&'a [u8], BurnError> {
        let offset = self.pos;
        let Some(&opcode) = self.script.get(offset) else {
            return Err(BurnError::TruncatedPush { offset });
        };
        let len = match opcode {
            OP_0 => {
                self.pos = offset + 1;
                0
            }
            0x01..=0x4b => {
                self.pos = offset + 1;
                usize::from(opcode)
            }
            OP_PUSHDATA1 => {
                let len = self.read(offset, 1)?;
                if len < usize::from(OP_PUSHDATA1) {
                    return Err(BurnError::NonMinimalPush { offset });
                }
                len
            }
            OP_PUSHDATA2 => {
                let len = self.read(offset, 2)?;
                if len <= 0xff {
                    return Err(BurnError::NonMinimalPush { offset });
                }
                len
            }
            OP_PUSHDATA4 => {
                let len = self.read(offset, 4)?;
                if len <= 0xffff {
                    return Err(BurnError::NonMinimalPush { offset });
                }
                len
            }
            _ => return Err(BurnError::NonPushOpcode { opcode, offset }),
        };
        let start = self.pos;
        let data = start
            .checked_add(len)
            .and_then(|end| self.script.get(start..end))
            .ok_or(BurnError::TruncatedPush { offset })?;
        self.pos = start + len;
        Ok(data)
    }
}

impl<'a> Iterator for Pushes<'a> {
    type Item = Result<&'a [u8], BurnError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.script.len() {
            return None;
        }
        let item = self.push();
        if item.is_err() {
            // Stop after the first error.
            self.pos = self.script.len();
        }
        Some(item)
    }
}

/// What a burn is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BurnPurpose {
    /// Registering a new identity.
    Registration,
    /// Rotating an identity's key.
    KeyRotation,
}

/// Minimum amounts and maturation periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurnPolicy {
    /// Minimum registration burn in satoshis.
    pub registration_min_sats: u64,
    /// Minimum rotation burn in satoshis.
    pub rotation_min_sats: u64,
    /// Confirmations a registration burn needs.
    pub registration_maturation: u32,
    /// Confirmations a rotation burn needs.
    pub rotation_maturation: u32,
}

impl Default for BurnPolicy {
    /// lotus-sdk's constants: 1000 XPI / 144 blocks, 500 XPI / 100 blocks.
    fn default() -> Self {
        Self {
            registration_min_sats: REGISTRATION_BURN_SATS,
            rotation_min_sats: ROTATION_BURN_SATS,
            registration_maturation: REGISTRATION_MATURATION,
            rotation_maturation: ROTATION_MATURATION,
        }
    }
}

impl BurnPolicy {
    /// The minimum amount for `purpose`.
    pub fn min_sats(&self, purpose: BurnPurpose) -> u64 {
        match purpose {
            BurnPurpose::Registration => self.registration_min_sats,
            BurnPurpose::KeyRotation => self.rotation_min_sats,
        }
    }

    /// The confirmations needed for `purpose`.
    pub fn maturation(&self, purpose: BurnPurpose) -> u32 {
        match purpose {
            BurnPurpose::Registration => self.registration_maturation,
            BurnPurpose::KeyRotation => self.rotation_maturation,
        }
    }
}

/// A burn that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBurn {
    /// The burn output.
    pub outpoint: OutPoint,
    /// Satoshis burned.
    pub amount_sats: u64,
    /// The height of the block that holds it.
    pub block_height: u32,
    /// Confirmations when verified.
    pub confirmations: u32,
    /// The parsed payload.
    pub payload: BurnPayload,
}

/// Confirmations of a transaction mined at `block_height` with the chain tip
/// at `tip_height`: `tip − height + 1`, or 0 if the tip is below the block.
pub fn confirmations(block_height: u32, tip_height: u32) -> u32 {
    tip_height
        .checked_sub(block_height)
        .map_or(0, |d| d.saturating_add(1))
}

/// Checks output `vout` of `tx` as a burn for `purpose` committing to
/// `expected_key`: script, version, key, amount, and maturation at
/// `tip_height`. Checks run in that order, so the error names the first
/// problem.
pub fn verify_burn(
    tx: &IndexedTx,
    vout: u32,
    tip_height: u32,
    purpose: BurnPurpose,
    policy: &BurnPolicy,
    expected_key: &PublicKey,
) -> Result<VerifiedBurn, BurnError> {
    let output = usize::try_from(vout)
        .ok()
        .and_then(|i| tx.tx.outputs.get(i))
        .ok_or(BurnError::NoSuchOutput {
            vout,
            outputs: tx.tx.outputs.len(),
        })?;
    let payload = parse_burn_script(&output.script)?;
    if payload.public_key != *expected_key {
        return Err(BurnError::KeyMismatch {
            found: payload.public_key,
        });
    }
    let required_sats = policy.min_sats(purpose);
    if output.value < required_sats {
        return Err(BurnError::TooSmall {
            amount_sats: output.value,
            required_sats,
        });
    }
    let block_height = tx.block_height.ok_or(BurnError::NotMined)?;
    let confirmations = confirmations(block_height, tip_height);
    let required = policy.maturation(purpose);
    if confirmations < required {
        return Err(BurnError::Immature {
            confirmations,
            required,
        });
    }
    Ok(VerifiedBurn {
        outpoint: OutPoint::new(tx.txid, vout),
        amount_sats: output.value,
        block_height,
        confirmations,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use musig2_core::SecretKey;

    fn key() -> PublicKey {
        SecretKey::from_bytes(&[3u8; 32]).unwrap().public_key()
    }

    #[test]
    fn canonical_script_parses() {
        let script = burn_script(&key());
        assert_eq!(script.len(), 42);
        let payload = parse_burn_script(&script).unwrap();
        assert_eq!(payload.public_key, key());
        assert!(payload.extra.is_empty());
    }

    #[test]
    fn split_payload_and_pushdata_and_extra() {
        let k = key().to_bytes();
        let mut s = vec![OP_RETURN, 4];
        s.extend_from_slice(b"MSg2");
        s.extend_from_slice(&[1, 1]);
        s.push(10);
        s.extend_from_slice(&k[..10]);
        s.push(OP_0);
        s.extend_from_slice(&[OP_PUSHDATA1, 80]);
        s.extend_from_slice(&k[10..]);
        s.extend_from_slice(&[0xee; 57]);
        let payload = parse_burn_script(&s).unwrap();
        assert_eq!(payload.public_key, key());
        assert_eq!(payload.extra, vec![0xee; 57]);
    }

    #[test]
    fn every_malformation_has_its_error() {
        let good = burn_script(&key());
        let cases: Vec<(Vec<u8>, BurnError)> = vec![
            (vec![], BurnError::NotOpReturn { first_byte: None }),
            (
                vec![0x76],
                BurnError::NotOpReturn {
                    first_byte: Some(0x76),
                },
            ),
            (vec![OP_RETURN], BurnError::MissingLokad),
            (
                vec![OP_RETURN, 3, b'M', b'S', b'g'],
                BurnError::LokadLength { len: 3 },
            ),
            (
                [&[OP_RETURN, 4][..], b"MSg3"].concat(),
                BurnError::WrongLokad { found: *b"MSg3" },
            ),
            (
                [&[OP_RETURN, 4][..], b"MSg2"].concat(),
                BurnError::MissingVersion,
            ),
            (
                [&[OP_RETURN, 4][..], b"MSg2", &[2, 1, 0]].concat(),
                BurnError::VersionLength { len: 2 },
            ),
            (
                [&[OP_RETURN, 4][..], b"MSg2", &[0x51]].concat(),
                BurnError::NonPushOpcode {
                    opcode: 0x51,
                    offset: 6,
                },
            ),
            (
                [&[OP_RETURN, 4][..], b"MSg2", &[1, 2]].concat(),
                BurnError::UnsupportedVersion { found: 2 },
            ),
            (
                [&[OP_RETURN, 4][..], b"MSg2", &[1, 1, 2, 2, 2]].concat(),
                BurnError::PayloadTooShort { len: 2 },
            ),
            (
                [&[OP_RETURN, 4][..], b"MSg2", &[1, 1, 33, 5], &[0u8; 32]].concat(),
                BurnError::InvalidPublicKey(musig2_core::Error::InvalidPoint {
                    what: "public key",
                }),
            ),
            (
                good[..good.len() - 1].to_vec(),
                BurnError::TruncatedPush { offset: 8 },
            ),
            (
                [&[OP_RETURN, OP_PUSHDATA1, 4][..], b"MSg2"].concat(),
                BurnError::NonMinimalPush { offset: 1 },
            ),
            (
                vec![OP_RETURN, OP_PUSHDATA2, 0xff],
                BurnError::TruncatedPush { offset: 1 },
            ),
            (
                vec![OP_RETURN, OP_PUSHDATA2, 0x10, 0x00],
                BurnError::NonMinimalPush { offset: 1 },
            ),
            (
                vec![OP_RETURN, OP_PUSHDATA4, 0xff, 0xff, 0xff, 0xff],
                BurnError::TruncatedPush { offset: 1 },
            ),
            (
                vec![OP_RETURN, OP_PUSHDATA4, 0xff, 0xff, 0x00, 0x00],
                BurnError::NonMinimalPush { offset: 1 },
            ),
            (
                [&good[..], &[0x87]].concat(),
                BurnError::NonPushOpcode {
                    opcode: 0x87,
                    offset: 42,
                },
            ),
        ];
        for (script, want) in cases {
            assert_eq!(parse_burn_script(&script), Err(want), "{script:02x?}");
        }
    }

    #[test]
    fn confirmations_follow_lotus_sdk() {
        assert_eq!(confirmations(100, 100), 1);
        assert_eq!(confirmations(100, 243), 144);
        assert_eq!(confirmations(101, 100), 0);
        assert_eq!(confirmations(0, u32::MAX), u32::MAX);
    }
}
