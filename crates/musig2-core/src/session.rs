//! BIP327 signing: the session context, `Sign`, `PartialSigVerify`,
//! `PartialSigAgg`, and final verification.

use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use secp256k1::PublicKey as Point;

use crate::arith::{self, Scalar};
use crate::error::{Contribution, Error};
use crate::flavor::{Flavor, Lotus};
use crate::hexfmt;
use crate::key_agg::KeyAggContext;
use crate::keys::{Keypair, PublicKey};
use crate::nonce::{AggNonce, PublicNonce, SecretNonce};
use crate::signature::Signature;

/// A partial signature `s_i`: a scalar below `n`, 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PartialSignature(Scalar);

impl PartialSignature {
    /// The length of the encoding.
    pub const LEN: usize = 32;

    /// Parses 32 bytes; rejects values `≥ n`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: &[u8; 32] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "partial signature",
            expected: 32,
            got: bytes.len(),
        })?;
        Self::from_bytes(array)
    }

    /// Parses 32 bytes; rejects values `≥ n`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        arith::scalar_checked(bytes)
            .map(Self)
            .ok_or(Error::InvalidScalar {
                what: "partial signature",
            })
    }

    /// The 32-byte big-endian encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        arith::scalar_bytes(&self.0)
    }
}

impl core::hash::Hash for PartialSignature {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.to_bytes().hash(state);
    }
}

crate::nonce::hex_display!(PartialSignature, 32, "partial signature");

/// Parses a list of partial signatures; a bad one is blamed on its index.
pub fn parse_partial_sigs<B: AsRef<[u8]>>(sigs: &[B]) -> Result<Vec<PartialSignature>, Error> {
    sigs.iter()
        .enumerate()
        .map(|(signer, bytes)| {
            PartialSignature::from_slice(bytes.as_ref()).map_err(|_| Error::InvalidContribution {
                signer,
                contribution: Contribution::PartialSignature,
            })
        })
        .collect()
}

/// Everything a signer or verifier derives from the key-aggregation context,
/// the aggregate nonce and the message (BIP327 `GetSessionValues`): the nonce
/// coefficient `b`, the final nonce `R` with its sign, and the challenge `e`.
#[derive(Clone)]
pub struct SessionContext<F: Flavor = Lotus> {
    key_agg: KeyAggContext<F>,
    aggnonce: AggNonce,
    msg: Vec<u8>,
    b: Scalar,
    r: Point,
    negate_nonce: bool,
    e: Scalar,
}

impl<F: Flavor> fmt::Debug for SessionContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionContext")
            .field("flavor", &F::NAME)
            .field("aggregate_pubkey", &self.key_agg.aggregate_pubkey())
            .field("aggnonce", &self.aggnonce)
            .field("final_nonce", &PublicKey(self.r))
            .finish_non_exhaustive()
    }
}

impl<F: Flavor> SessionContext<F> {
    /// Derives the session values. If `R1 + b·R2` is the point at infinity,
    /// `R = G` (BIP327; lotus-sdk leaves this case undefined).
    ///
    /// Every input is already validated by its type, so this does not fail in
    /// practice; the `Result` only carries the (unreachable) failure to decode
    /// the generator in that infinity case, instead of a panic.
    pub fn new(key_agg: &KeyAggContext<F>, aggnonce: &AggNonce, msg: &[u8]) -> Result<Self, Error> {
        let q = key_agg.q();
        let b = F::nonce_coefficient(q, &aggnonce.to_bytes(), msg);
        let (r1, r2) = aggnonce.points();
        let b_r2 = r2.and_then(|r2| arith::mul_public(r2, &b));
        let r = match arith::add(r1.copied(), b_r2) {
            Some(r) => r,
            None => generator()?,
        };
        let negate_nonce = F::negate_nonce(&r);
        let r_x = arith::x_bytes(&r);
        let e = F::challenge(&r_x, q, msg);
        Ok(Self {
            key_agg: key_agg.clone(),
            aggnonce: *aggnonce,
            msg: msg.to_vec(),
            b,
            r,
            negate_nonce,
            e,
        })
    }

    /// The key-aggregation context.
    pub fn key_agg(&self) -> &KeyAggContext<F> {
        &self.key_agg
    }

    /// The aggregate nonce.
    pub fn aggnonce(&self) -> &AggNonce {
        &self.aggnonce
    }

    /// The message being signed.
    pub fn message(&self) -> &[u8] {
        &self.msg
    }

    /// The nonce coefficient `b`.
    pub fn nonce_coefficient(&self) -> [u8; 32] {
        arith::scalar_bytes(&self.b)
    }

    /// The final nonce point `R = R1 + b·R2` before the sign rule.
    pub fn final_nonce(&self) -> PublicKey {
        PublicKey(self.r)
    }

    /// Whether signers negate their nonces (Lotus: `jacobi(R.y) ≠ 1`; BIP340: odd `R.y`).
    pub fn nonce_negated(&self) -> bool {
        self.negate_nonce
    }

    /// The challenge `e`.
    pub fn challenge(&self) -> [u8; 32] {
        arith::scalar_bytes(&self.e)
    }

    /// `g·gacc` as a sign: whether secret keys and public keys are negated.
    fn key_negated(&self) -> bool {
        F::negate_for_key(self.key_agg.q()) ^ self.key_agg.gacc_negated()
    }

    fn signer(&self, index: usize) -> Result<(&PublicKey, &Scalar), Error> {
        let len = self.key_agg.keys().len();
        let out_of_range = Error::SignerIndexOutOfRange { index, len };
        let key = self.key_agg.keys().get(index).ok_or(out_of_range.clone())?;
        let a = self.key_agg.coefficient_scalar(index).ok_or(out_of_range)?;
        Ok((key, a))
    }
}

fn generator() -> Result<Point, Error> {
    // The compressed encoding of G; a constant, valid point (see `generator_parses`).
    const G: [u8; 33] = [
        0x02, 0x79, 0xBE, 0x66, 0x7E, 0xF9, 0xDC, 0xBB, 0xAC, 0x55, 0xA0, 0x62, 0x95, 0xCE, 0x87,
        0x0B, 0x07, 0x02, 0x9B, 0xFC, 0xDB, 0x2D, 0xCE, 0x28, 0xD9, 0x59, 0xF2, 0x81, 0x5B, 0x16,
        0xF8, 0x17, 0x98,
    ];
    Point::from_byte_array_compressed(G).map_err(|_| Error::InvalidPoint { what: "generator" })
}

/// BIP327 `Sign`: the partial signature of the signer at `signer_index`.
///
/// The secret nonce is consumed whatever the outcome, so it can never be used
/// again; on error, start over with a fresh nonce.
pub fn sign<F: Flavor>(
    secnonce: SecretNonce,
    keypair: &Keypair,
    signer_index: usize,
    session: &SessionContext<F>,
) -> Result<PartialSignature, Error> {
    let (k1, k2, nonce_pk) = secnonce.into_parts();
    if arith::is_zero(&k1) || arith::is_zero(&k2) {
        return Err(Error::InvalidSecretNonce);
    }
    if nonce_pk != keypair.public_key() {
        return Err(Error::SecretNonceKeyMismatch);
    }
    let (key, a) = session.signer(signer_index)?;
    if *key != keypair.public_key() {
        return Err(Error::SignerKeyMismatch {
            index: signer_index,
        });
    }
    let mut k = zeroize::Zeroizing::new(*k1 + session.b * *k2);
    if session.negate_nonce {
        *k = -*k;
    }
    let mut d = keypair.secret_key().scalar();
    if session.key_negated() {
        *d = -*d;
    }
    let s = *k + session.e * a * *d;
    Ok(PartialSignature(s))
}

/// BIP327 `PartialSigVerify` for the signer at `signer_index`. A failure is
/// [`Error::InvalidContribution`] naming that signer.
pub fn partial_sig_verify<F: Flavor>(
    session: &SessionContext<F>,
    psig: &PartialSignature,
    pubnonce: &PublicNonce,
    signer_index: usize,
) -> Result<(), Error> {
    let (key, a) = session.signer(signer_index)?;
    let blame = Error::InvalidContribution {
        signer: signer_index,
        contribution: Contribution::PartialSignature,
    };
    // Re = ±(R1 + b·R2)
    let (r1, r2) = pubnonce.points();
    let mut expected = arith::add(Some(*r1), arith::mul_public(r2, &session.b));
    if session.negate_nonce {
        expected = expected.map(|p| p.negate());
    }
    // s·G − e·a·g·gacc·P must equal Re.
    let mut c = session.e * a;
    if session.key_negated() {
        c = -c;
    }
    let actual = arith::lincomb(&key.0, &-c, &psig.0);
    if actual == expected {
        Ok(())
    } else {
        Err(blame)
    }
}

/// BIP327 `PartialSigAgg`: `s = Σ s_i + e·g·tacc`, signature `(R.x, s)`.
///
/// It does not check the partial signatures; see [`aggregate_and_verify`].
pub fn partial_sig_agg<F: Flavor>(
    session: &SessionContext<F>,
    psigs: &[PartialSignature],
) -> Signature {
    let mut s = psigs.iter().fold(Scalar::ZERO, |acc, p| acc + p.0);
    let mut tweak_term = session.e * session.key_agg.tacc();
    if F::negate_for_key(session.key_agg.q()) {
        tweak_term = -tweak_term;
    }
    s += tweak_term;
    Signature::from_parts(arith::x_bytes(&session.r), &s)
}

/// Verifies a final signature under the session's aggregate key and message.
pub fn verify<F: Flavor>(session: &SessionContext<F>, sig: &Signature) -> Result<(), Error> {
    F::verify(&session.key_agg.aggregate_pubkey(), &session.msg, sig)
}

/// Aggregates, verifies the result, and only if it is invalid verifies each
/// partial signature to name the culprit (identifiable abort).
///
/// One final verification replaces `n` partial verifications in the common
/// case. If the aggregate is valid every signer's contribution is accepted
/// (a valid signature is all a session needs); if not, the first signer whose
/// partial signature fails is returned as [`Error::InvalidContribution`].
pub fn aggregate_and_verify<F: Flavor>(
    session: &SessionContext<F>,
    psigs: &[PartialSignature],
    pubnonces: &[PublicNonce],
) -> Result<Signature, Error> {
    let expected = session.key_agg.keys().len();
    for got in [psigs.len(), pubnonces.len()] {
        if got != expected {
            return Err(Error::ContributionCount { expected, got });
        }
    }
    let sig = partial_sig_agg(session, psigs);
    if verify(session, &sig).is_ok() {
        return Ok(sig);
    }
    blame(session, psigs, pubnonces)?;
    // Every partial signature verifies but the aggregate does not: only
    // possible if the public nonces given are not those aggregated.
    Err(Error::InvalidSignature)
}

/// Verifies every partial signature first, then aggregates and verifies the
/// result (the strict order; slower than [`aggregate_and_verify`]).
pub fn verify_all_and_aggregate<F: Flavor>(
    session: &SessionContext<F>,
    psigs: &[PartialSignature],
    pubnonces: &[PublicNonce],
) -> Result<Signature, Error> {
    let expected = session.key_agg.keys().len();
    for got in [psigs.len(), pubnonces.len()] {
        if got != expected {
            return Err(Error::ContributionCount { expected, got });
        }
    }
    blame(session, psigs, pubnonces)?;
    let sig = partial_sig_agg(session, psigs);
    verify(session, &sig)?;
    Ok(sig)
}

fn blame<F: Flavor>(
    session: &SessionContext<F>,
    psigs: &[PartialSignature],
    pubnonces: &[PublicNonce],
) -> Result<(), Error> {
    for (index, (psig, pubnonce)) in psigs.iter().zip(pubnonces).enumerate() {
        partial_sig_verify(session, psig, pubnonce, index)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_parses() {
        let one = crate::SecretKey::from_bytes(&{
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        })
        .unwrap();
        assert_eq!(PublicKey(generator().unwrap()), one.public_key());
    }
}
