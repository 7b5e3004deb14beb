//! BIP327 `KeySort`, `KeyAgg` and tweaking (`ApplyTweak`), for both flavors.

use alloc::vec::Vec;
use core::marker::PhantomData;

use secp256k1::PublicKey as Point;

use crate::arith::{self, Scalar};
use crate::error::{Contribution, Error};
use crate::flavor::{Flavor, Lotus};
use crate::hash::{Hasher, tag};
use crate::keys::PublicKey;

/// BIP327 `KeySort`: the keys in bytewise order of their compressed encodings.
/// Duplicates are kept. lotus-sdk always sorts before aggregating; signer
/// indexes everywhere in this project are positions in the sorted list.
pub fn key_sort(keys: &[PublicKey]) -> Vec<PublicKey> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    sorted
}

/// Parses a list of 33-byte keys; a bad key is blamed on its index.
pub fn parse_pubkeys<B: AsRef<[u8]>>(keys: &[B]) -> Result<Vec<PublicKey>, Error> {
    keys.iter()
        .enumerate()
        .map(|(signer, bytes)| {
            PublicKey::from_slice(bytes.as_ref()).map_err(|_| Error::InvalidContribution {
                signer,
                contribution: Contribution::PublicKey,
            })
        })
        .collect()
}

/// BIP327 `KeyAgg` over the keys **in the order given** (call [`key_sort`]
/// first, or use [`KeyAggContext::new_sorted`]).
pub fn key_agg<F: Flavor>(keys: &[PublicKey]) -> Result<KeyAggContext<F>, Error> {
    KeyAggContext::new(keys)
}

/// The result of key aggregation, with the tweaks applied so far
/// (BIP327 `KeyAggContext`: `Q`, `gacc`, `tacc`, plus the key list and
/// each key's coefficient).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyAggContext<F: Flavor = Lotus> {
    keys: Vec<PublicKey>,
    coefficients: Vec<Scalar>,
    untweaked: Point,
    q: Point,
    /// `gacc = −1` (BIP327) when true.
    gacc_negated: bool,
    tacc: Scalar,
    flavor: PhantomData<F>,
}

impl<F: Flavor> core::fmt::Debug for KeyAggContext<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyAggContext")
            .field("flavor", &F::NAME)
            .field("keys", &self.keys.len())
            .field("aggregate_pubkey", &PublicKey(self.q))
            .finish()
    }
}

impl<F: Flavor> KeyAggContext<F> {
    /// Aggregates the keys in the order given.
    pub fn new(keys: &[PublicKey]) -> Result<Self, Error> {
        let first = keys.first().ok_or(Error::EmptyKeyList)?;
        let mut list = Hasher::tagged(tag::KEYAGG_LIST);
        for key in keys {
            list = list.chain(&key.to_bytes());
        }
        let list_hash = list.finish();
        let second = keys.iter().find(|k| *k != first);

        let mut coefficients = Vec::with_capacity(keys.len());
        let mut terms = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            let a = if F::coefficient_is_one(keys, index, second) {
                Scalar::ONE
            } else {
                let digest = Hasher::tagged(tag::KEYAGG_COEFF)
                    .chain(&list_hash)
                    .chain(&key.to_bytes())
                    .finish();
                arith::scalar_reduce(&digest)
            };
            if a == Scalar::ONE {
                terms.push(key.0);
            } else if let Some(term) = arith::mul_public(&key.0, &a) {
                terms.push(term);
            }
            coefficients.push(a);
        }
        let refs: Vec<&Point> = terms.iter().collect();
        let q = arith::sum(&refs).ok_or(Error::AggregateKeyInfinity)?;
        Ok(Self {
            keys: keys.to_vec(),
            coefficients,
            untweaked: q,
            q,
            gacc_negated: false,
            tacc: Scalar::ZERO,
            flavor: PhantomData,
        })
    }

    /// [`key_sort`] then [`KeyAggContext::new`]: what lotus-sdk does.
    pub fn new_sorted(keys: &[PublicKey]) -> Result<Self, Error> {
        Self::new(&key_sort(keys))
    }

    /// The key list, in aggregation order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The aggregate key with every tweak applied (Lotus: serialize it with
    /// [`PublicKey::to_bytes`]).
    pub fn aggregate_pubkey(&self) -> PublicKey {
        PublicKey(self.q)
    }

    /// The aggregate key before any tweak.
    pub fn untweaked_aggregate_pubkey(&self) -> PublicKey {
        PublicKey(self.untweaked)
    }

    /// The x-only aggregate key (BIP340 `GetXonlyPubkey`).
    pub fn x_only_aggregate_pubkey(&self) -> [u8; 32] {
        arith::x_bytes(&self.q)
    }

    /// The key-aggregation coefficient of key `index`, big-endian, reduced mod n.
    pub fn coefficient(&self, index: usize) -> Option<[u8; 32]> {
        self.coefficients.get(index).map(arith::scalar_bytes)
    }

    /// The first index at which `key` appears.
    pub fn signer_index(&self, key: &PublicKey) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// BIP327 `ApplyTweak` with a plain tweak: `Q' = Q + t·G`.
    pub fn with_plain_tweak(self, tweak: &[u8; 32]) -> Result<Self, Error> {
        self.apply_tweak(tweak, false)
    }

    /// BIP327 `ApplyTweak` with an x-only tweak: `Q' = g·Q + t·G`, `g = −1` if
    /// `Q` has odd y.
    pub fn with_xonly_tweak(self, tweak: &[u8; 32]) -> Result<Self, Error> {
        self.apply_tweak(tweak, true)
    }

    /// The Lotus Taproot tweak `int(H_TapTweak(ser33(Q) ‖ merkle_root))` of the
    /// current key (lotus-sdk; `merkle_root` is 32 zero bytes for a key-only output).
    pub fn taproot_tweak(&self, merkle_root: &[u8; 32]) -> [u8; 32] {
        Hasher::tagged(tag::TAP_TWEAK)
            .chain(&self.q.serialize())
            .chain(merkle_root)
            .finish()
    }

    /// Applies the Lotus Taproot tweak as a plain tweak: the result's aggregate
    /// key is the commitment key `Q + t·G` of `OP_SCRIPTTYPE OP_1 <ser33(Q')>`.
    pub fn with_taproot_tweak(self, merkle_root: &[u8; 32]) -> Result<Self, Error> {
        let tweak = self.taproot_tweak(merkle_root);
        self.with_plain_tweak(&tweak)
    }

    fn apply_tweak(mut self, tweak: &[u8; 32], xonly: bool) -> Result<Self, Error> {
        let t = arith::scalar_checked(tweak).ok_or(Error::TweakOutOfRange)?;
        let negate = xonly && !arith::has_even_y(&self.q);
        let g = if negate { -Scalar::ONE } else { Scalar::ONE };
        self.q = arith::lincomb(&self.q, &g, &t).ok_or(Error::TweakInfinity)?;
        self.gacc_negated ^= negate;
        self.tacc = t + g * self.tacc;
        Ok(self)
    }

    pub(crate) fn q(&self) -> &Point {
        &self.q
    }

    pub(crate) fn coefficient_scalar(&self, index: usize) -> Option<&Scalar> {
        self.coefficients.get(index)
    }

    pub(crate) fn gacc_negated(&self) -> bool {
        self.gacc_negated
    }

    pub(crate) fn tacc(&self) -> &Scalar {
        &self.tacc
    }
}
