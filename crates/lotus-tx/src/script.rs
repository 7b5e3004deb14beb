//! The script templates a Lotus wallet needs, and a push-only script reader.
//!
//! | template | bytes | lotus-sdk |
//! | --- | --- | --- |
//! | P2PKH | `76 a9 14 <HASH160(pubkey33)> 88 ac` | `script.ts:304` |
//! | P2SH | `a9 14 <HASH160(script)> 87` | (address type 0 only) |
//! | P2TR key path | `62 51 21 <commitment33>` (36 bytes) | `taproot.ts:474-500` |
//! | P2TR with state | `62 51 21 <commitment33> 20 <state32>` (69 bytes) | `taproot.ts:404-431` |
//! | OP_RETURN | `6a <push of the payload>` (`6a 00` when empty) | `script.ts:553` |

use alloc::vec::Vec;

use musig2_core::PublicKey;

use crate::encode::write_compact_size;
use crate::hash::hash160;

/// `OP_0`, also the push of an empty byte string.
pub const OP_0: u8 = 0x00;
/// `OP_PUSHDATA1`: a one-byte length follows.
pub const OP_PUSHDATA1: u8 = 0x4c;
/// `OP_PUSHDATA2`: a two-byte little-endian length follows.
pub const OP_PUSHDATA2: u8 = 0x4d;
/// `OP_PUSHDATA4`: a four-byte little-endian length follows.
pub const OP_PUSHDATA4: u8 = 0x4e;
/// `OP_1`, the Taproot version in a P2TR script.
pub const OP_1: u8 = 0x51;
/// `OP_SCRIPTTYPE` (Lotus): marks a typed script such as P2TR.
pub const OP_SCRIPTTYPE: u8 = 0x62;
/// `OP_RETURN`.
pub const OP_RETURN: u8 = 0x6a;
/// `OP_DUP`.
pub const OP_DUP: u8 = 0x76;
/// `OP_EQUAL`.
pub const OP_EQUAL: u8 = 0x87;
/// `OP_EQUALVERIFY`.
pub const OP_EQUALVERIFY: u8 = 0x88;
/// `OP_HASH160`.
pub const OP_HASH160: u8 = 0xa9;
/// `OP_CHECKSIG`.
pub const OP_CHECKSIG: u8 = 0xac;

/// What a locking script is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScriptKind {
    /// Pay to public-key hash.
    P2pkh {
        /// `HASH160` of the 33-byte public key.
        hash: [u8; 20],
    },
    /// Pay to script hash.
    P2sh {
        /// `HASH160` of the redeem script.
        hash: [u8; 20],
    },
    /// Lotus Taproot (`OP_SCRIPTTYPE OP_1 <commitment>` with an optional state).
    P2tr {
        /// The 33-byte commitment key `Q` (not checked to be on the curve).
        commitment: [u8; 33],
        /// The 32-byte state, when present (it does not enter the commitment).
        state: Option<[u8; 32]>,
    },
    /// An `OP_RETURN` data carrier.
    OpReturn,
    /// Anything else.
    Other,
}

impl ScriptKind {
    /// Classifies a locking script by exact template match.
    pub fn of(script: &[u8]) -> Self {
        match script {
            [
                OP_DUP,
                OP_HASH160,
                20,
                hash @ ..,
                OP_EQUALVERIFY,
                OP_CHECKSIG,
            ] => <[u8; 20]>::try_from(hash).map_or(Self::Other, |hash| Self::P2pkh { hash }),
            [OP_HASH160, 20, hash @ .., OP_EQUAL] => {
                <[u8; 20]>::try_from(hash).map_or(Self::Other, |hash| Self::P2sh { hash })
            }
            [OP_SCRIPTTYPE, OP_1, 33, rest @ ..] => p2tr_parts(rest).unwrap_or(Self::Other),
            [OP_RETURN, ..] => Self::OpReturn,
            _ => Self::Other,
        }
    }

    /// A short lowercase name: `p2pkh`, `p2sh`, `p2tr`, `op_return`, `other`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::P2pkh { .. } => "p2pkh",
            Self::P2sh { .. } => "p2sh",
            Self::P2tr { .. } => "p2tr",
            Self::OpReturn => "op_return",
            Self::Other => "other",
        }
    }
}

fn p2tr_parts(rest: &[u8]) -> Option<ScriptKind> {
    let (commitment, tail) = rest.split_first_chunk::<33>()?;
    if !matches!(commitment.first(), Some(0x02 | 0x03)) {
        return None;
    }
    let state = match tail {
        [] => None,
        [32, state @ ..] => Some(<[u8; 32]>::try_from(state).ok()?),
        _ => return None,
    };
    Some(ScriptKind::P2tr {
        commitment: *commitment,
        state,
    })
}

/// Appends a data push of `data`: a length byte up to 75 bytes, then
/// `OP_PUSHDATA1/2/4`; an empty push is `OP_0`.
pub fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    let len = data.len();
    match len {
        0 => out.push(OP_0),
        1..=75 => out.push(len as u8),
        76..=0xff => {
            out.push(OP_PUSHDATA1);
            out.push(len as u8);
        }
        0x100..=0xffff => {
            out.push(OP_PUSHDATA2);
            out.extend_from_slice(&(len as u16).to_le_bytes());
        }
        _ => {
            out.push(OP_PUSHDATA4);
            out.extend_from_slice(&(len as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(data);
}

/// `OP_DUP OP_HASH160 <hash> OP_EQUALVERIFY OP_CHECKSIG`.
pub fn p2pkh(hash: &[u8; 20]) -> Vec<u8> {
    let mut out = Vec::with_capacity(25);
    out.extend_from_slice(&[OP_DUP, OP_HASH160, 20]);
    out.extend_from_slice(hash);
    out.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
    out
}

/// The P2PKH script of a 33-byte public key.
pub fn p2pkh_for_key(key: &PublicKey) -> Vec<u8> {
    p2pkh(&hash160(&key.to_bytes()))
}

/// `OP_HASH160 <hash> OP_EQUAL`.
pub fn p2sh(hash: &[u8; 20]) -> Vec<u8> {
    let mut out = Vec::with_capacity(23);
    out.extend_from_slice(&[OP_HASH160, 20]);
    out.extend_from_slice(hash);
    out.push(OP_EQUAL);
    out
}

/// `OP_SCRIPTTYPE OP_1 <commitment33>` (36 bytes), followed by `<state32>`
/// (69 bytes) when a state is given.
pub fn p2tr(commitment: &PublicKey, state: Option<&[u8; 32]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(69);
    out.extend_from_slice(&[OP_SCRIPTTYPE, OP_1, 33]);
    out.extend_from_slice(&commitment.to_bytes());
    if let Some(state) = state {
        out.push(32);
        out.extend_from_slice(state);
    }
    out
}

/// `OP_RETURN <push of data>`.
pub fn op_return(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 6);
    out.push(OP_RETURN);
    push_data(&mut out, data);
    out
}

/// The P2PKH scriptSig `<sig> <pubkey33>`.
pub fn p2pkh_script_sig(signature: &[u8], key: &PublicKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(signature.len() + 36);
    push_data(&mut out, signature);
    push_data(&mut out, &key.to_bytes());
    out
}

/// The P2TR key-path scriptSig: one push of the 65-byte signature.
pub fn p2tr_key_path_script_sig(signature: &[u8; 65]) -> Vec<u8> {
    let mut out = Vec::with_capacity(66);
    push_data(&mut out, signature);
    out
}

/// The data pushes of a push-only script, or `None` if it holds any other
/// opcode or a push that runs past its end. `OP_0` yields an empty push;
/// `OP_1NEGATE` and `OP_1`…`OP_16` count as non-push here.
pub fn pushes(script: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = script;
    while let Some((&op, tail)) = rest.split_first() {
        let (len, tail) = match op {
            OP_0 => (0, tail),
            1..=75 => (usize::from(op), tail),
            OP_PUSHDATA1 => {
                let (n, t) = tail.split_first_chunk::<1>()?;
                (usize::from(u8::from_le_bytes(*n)), t)
            }
            OP_PUSHDATA2 => {
                let (n, t) = tail.split_first_chunk::<2>()?;
                (usize::from(u16::from_le_bytes(*n)), t)
            }
            OP_PUSHDATA4 => {
                let (n, t) = tail.split_first_chunk::<4>()?;
                (usize::try_from(u32::from_le_bytes(*n)).ok()?, t)
            }
            _ => return None,
        };
        if len > tail.len() {
            return None;
        }
        let (data, next) = tail.split_at(len);
        out.push(data);
        rest = next;
    }
    Some(out)
}

/// The payload of `OP_RETURN <one push>`, if the script is exactly that.
pub fn op_return_data(script: &[u8]) -> Option<&[u8]> {
    let (&first, rest) = script.split_first()?;
    if first != OP_RETURN {
        return None;
    }
    match pushes(rest)?.as_slice() {
        [data] => Some(data),
        _ => None,
    }
}

/// `CompactSize(len) ‖ script`, as scripts are serialized in transactions.
pub(crate) fn write_script(out: &mut Vec<u8>, script: &[u8]) {
    write_compact_size(out, script.len() as u64);
    out.extend_from_slice(script);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn op_return_pushes() {
        assert_eq!(op_return(&[]), vec![0x6a, 0x00]);
        assert_eq!(op_return(&[7]), vec![0x6a, 0x01, 7]);
        let big = vec![1u8; 80];
        let s = op_return(&big);
        assert_eq!(&s[..3], &[0x6a, 0x4c, 80]);
        assert_eq!(op_return_data(&s), Some(&big[..]));
        assert_eq!(ScriptKind::of(&s), ScriptKind::OpReturn);
    }

    #[test]
    fn pushes_reject_truncation_and_opcodes() {
        assert_eq!(pushes(&[0x02, 1]), None);
        assert_eq!(pushes(&[0x4c]), None);
        assert_eq!(pushes(&[0x4d, 5]), None);
        assert_eq!(pushes(&[0x51]), None);
        assert_eq!(pushes(&[0x00, 0x01, 9]), Some(vec![&[][..], &[9][..]]));
    }

    #[test]
    fn classify_templates() {
        let h = [3u8; 20];
        assert_eq!(ScriptKind::of(&p2pkh(&h)), ScriptKind::P2pkh { hash: h });
        assert_eq!(ScriptKind::of(&p2sh(&h)), ScriptKind::P2sh { hash: h });
        let mut tr = vec![0x62, 0x51, 33, 2];
        tr.extend_from_slice(&[9u8; 32]);
        assert!(matches!(
            ScriptKind::of(&tr),
            ScriptKind::P2tr { state: None, .. }
        ));
        tr.push(32);
        assert_eq!(ScriptKind::of(&tr), ScriptKind::Other);
        tr.extend_from_slice(&[5u8; 32]);
        assert!(matches!(
            ScriptKind::of(&tr),
            ScriptKind::P2tr {
                state: Some(state),
                ..
            } if state == [5u8; 32]
        ));
        tr[3] = 4;
        assert_eq!(ScriptKind::of(&tr), ScriptKind::Other);
    }
}
