//! Scalar and point arithmetic shared by every algorithm in the crate.
//!
//! Points are `secp256k1::PublicKey` (libsecp256k1); `Option<Point>` stands for
//! "a point or the point at infinity". Scalars modulo the group order `n` are
//! `k256::Scalar` (constant-time arithmetic); libsecp256k1 does not expose scalar
//! arithmetic, and writing it by hand is exactly what an auditor should not have
//! to review.
//!
//! Two operations deserve a note:
//!
//! * [`jacobi_is_one`] computes the Jacobi symbol of a point's `y` coordinate,
//!   which Lotus Schnorr uses instead of BIP340's "even y". `y` is public, so the
//!   variable-time binary algorithm is fine.
//! * [`lincomb`] computes `u·P + v·G` for **public** scalars with a single
//!   Strauss multi-scalar multiplication inside libsecp256k1, reached through
//!   ECDSA public-key recovery (the well-known "ecrecover" trick): recovery
//!   computes `r⁻¹·(s·X − z·G)` for the point `X` with x-coordinate `r` and the
//!   parity given by the recovery id. Choosing `X = P`, `s = u·r` and `z = −v·r`
//!   yields `u·P + v·G`. libsecp256k1 exposes no other way to run one ecmult over
//!   two bases; doing it with two separate multiplications costs about 1.6×.

use core::cmp::Ordering;

use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::ops::Reduce;
use k256::{FieldBytes, U256};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey as Point};

pub(crate) use k256::Scalar;

/// The group order `n`, big-endian.
pub(crate) const ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41,
];

/// The field size `p`, as little-endian 64-bit limbs.
const FIELD_P: [u64; 4] = [
    0xFFFF_FFFE_FFFF_FC2F,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_FFFF_FFFF,
];

/// `int(bytes) mod n`.
pub(crate) fn scalar_reduce(bytes: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(*bytes))
}

/// `int(bytes)` if it is below `n` (zero allowed).
pub(crate) fn scalar_checked(bytes: &[u8; 32]) -> Option<Scalar> {
    Option::from(Scalar::from_repr(FieldBytes::from(*bytes)))
}

/// Big-endian encoding of a scalar.
pub(crate) fn scalar_bytes(s: &Scalar) -> [u8; 32] {
    s.to_bytes().into()
}

pub(crate) fn is_zero(s: &Scalar) -> bool {
    bool::from(s.is_zero())
}

/// Whether `bytes`, read as a big-endian integer, is below the field size `p`.
pub(crate) fn is_below_field_size(bytes: &[u8; 32]) -> bool {
    let limbs = limbs_from_be(bytes);
    cmp_limbs(&limbs, &FIELD_P) == Ordering::Less
}

/// The x-coordinate of a point.
pub(crate) fn x_bytes(p: &Point) -> [u8; 32] {
    let ser = p.serialize();
    let mut x = [0u8; 32];
    x.copy_from_slice(ser.get(1..33).unwrap_or(&[0u8; 32]));
    x
}

/// The y-coordinate of a point.
pub(crate) fn y_bytes(p: &Point) -> [u8; 32] {
    let ser = p.serialize_uncompressed();
    let mut y = [0u8; 32];
    y.copy_from_slice(ser.get(33..65).unwrap_or(&[0u8; 32]));
    y
}

pub(crate) fn has_even_y(p: &Point) -> bool {
    p.serialize().first() == Some(&0x02)
}

/// Jacobi symbol of `y(P)` modulo `p` is 1, i.e. `y` is a quadratic residue.
pub(crate) fn jacobi_is_one(p: &Point) -> bool {
    jacobi(&y_bytes(p)) == 1
}

/// `a + b`, with `None` as the point at infinity.
pub(crate) fn add(a: Option<Point>, b: Option<Point>) -> Option<Point> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => a.combine(&b).ok(),
    }
}

/// `Σ points`; `None` when the sum is the point at infinity or the list is empty.
pub(crate) fn sum(points: &[&Point]) -> Option<Point> {
    // libsecp256k1 sums in Jacobian coordinates and fails only when the final
    // result is infinity (or the list is empty).
    Point::combine_keys(points).ok()
}

/// `s·P` for a scalar that may be secret (constant time inside libsecp256k1).
pub(crate) fn mul(p: &Point, s: &Scalar) -> Option<Point> {
    if is_zero(s) {
        return None;
    }
    let tweak = secp256k1::Scalar::from_be_bytes(scalar_bytes(s)).ok()?;
    p.mul_tweak(&tweak).ok()
}

/// `s·P` for a **public** scalar: variable time, one libsecp256k1 Strauss
/// ecmult (through [`lincomb`]), about 1.5× faster than [`mul`].
pub(crate) fn mul_public(p: &Point, s: &Scalar) -> Option<Point> {
    lincomb(p, s, &Scalar::ZERO)
}

/// `s·G` for a secret scalar. The global context is re-randomized afterwards,
/// seeded with the scalar, as libsecp256k1 recommends for secret operations.
pub(crate) fn mul_base_secret(s: &Scalar) -> Option<Point> {
    let sk = secp256k1::SecretKey::from_secret_bytes(scalar_bytes(s)).ok()?;
    Some(Point::from_secret_key(&sk))
}

/// `(a·G, b·G)` for two secret scalars (a nonce pair), with **one** context
/// re-randomization afterwards instead of two: this is what libsecp256k1's own
/// `musig_nonce_gen` does, and it halves the cost of that step.
#[allow(unsafe_code)]
pub(crate) fn mul_base_secret_pair(a: &Scalar, b: &Scalar) -> Option<(Point, Point)> {
    use secp256k1::ffi;
    let (a_bytes, b_bytes) = (
        zeroize::Zeroizing::new(scalar_bytes(a)),
        zeroize::Zeroizing::new(scalar_bytes(b)),
    );
    let create = |ctx: core::ptr::NonNull<ffi::Context>, sk: &[u8; 32]| {
        // SAFETY: `PublicKey::new` only creates a zeroed 64-byte buffer (it is
        // `unsafe` because that buffer is not yet a valid key). `ctx` is the live
        // global context lent by `with_raw_global_context` for the duration of
        // the closure; `pk` is a valid, writable `ffi::PublicKey`; `sk` points to
        // 32 readable bytes. The call only reads `sk` and writes `pk`, and
        // returns 0 (leaving `pk` unused) if `sk` is zero or not below `n`.
        let (ok, pk) = unsafe {
            let mut pk = ffi::PublicKey::new();
            let ok = ffi::secp256k1_ec_pubkey_create(ctx.as_ptr(), &mut pk, sk.as_ptr());
            (ok, pk)
        };
        (ok == 1).then(|| Point::from(pk))
    };
    let pair = secp256k1::with_raw_global_context(
        |ctx| Some((create(ctx, &a_bytes)?, create(ctx, &b_bytes)?)),
        None,
    );
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    for ((s, x), y) in seed.iter_mut().zip(a_bytes.iter()).zip(b_bytes.iter()) {
        *s = x ^ y.rotate_left(3);
    }
    secp256k1::rerandomize_global_context(&seed);
    pair
}

/// `u·P + v·G` for **public** scalars, in one libsecp256k1 ecmult (see the module
/// documentation). `None` is the point at infinity.
pub(crate) fn lincomb(p: &Point, u: &Scalar, v: &Scalar) -> Option<Point> {
    if is_zero(u) {
        return mul_base_secret(v);
    }
    let ser = p.serialize();
    let parity = u8::from(ser.first() == Some(&0x03));
    let x = x_bytes(p);
    // ECDSA's r is the x-coordinate reduced mod n; recovery id bit 1 says that
    // the real x-coordinate is r + n.
    let (r_bytes, high) = match x.cmp(&ORDER) {
        Ordering::Less => (x, 0u8),
        _ => (sub_be(&x, &ORDER), 2u8),
    };
    let r = scalar_reduce(&r_bytes);
    if is_zero(&r) {
        return lincomb_slow(p, u, v);
    }
    let s = u * &r;
    let z = -(v * &r);
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&r_bytes);
    compact[32..].copy_from_slice(&scalar_bytes(&s));
    let recid = RecoveryId::from_u8_masked(parity | high);
    let sig = RecoverableSignature::from_compact(&compact, recid).ok()?;
    // Recovery fails only when the result is the point at infinity: every input
    // above is well formed by construction.
    sig.recover_ecdsa(Message::from_digest(scalar_bytes(&z)))
        .ok()
}

/// `u·P + v·G` with two separate multiplications. Reference for [`lincomb`]
/// and fallback for its one degenerate input (x(P) = n).
pub(crate) fn lincomb_slow(p: &Point, u: &Scalar, v: &Scalar) -> Option<Point> {
    let up = mul(p, u);
    let vg = if is_zero(v) { None } else { mul_base_secret(v) };
    add(up, vg)
}

/// The Jacobi symbol `(a / p)` of a 256-bit big-endian integer modulo the
/// field prime, by the binary algorithm (variable time; for public data only).
/// Returns 1, −1 or 0. The 256-bit loop hands over to a `u128` loop as soon
/// as both operands fit, which roughly halves the cost.
pub(crate) fn jacobi(a_be: &[u8; 32]) -> i8 {
    let mut a = limbs_from_be(a_be);
    let mut n = FIELD_P;
    if cmp_limbs(&a, &n) != Ordering::Less {
        a = sub_limbs(&a, &n);
    }
    let mut t: i8 = 1;
    loop {
        if a[2] == 0 && a[3] == 0 && n[2] == 0 && n[3] == 0 {
            let a128 = (u128::from(a[1]) << 64) | u128::from(a[0]);
            let n128 = (u128::from(n[1]) << 64) | u128::from(n[0]);
            return t * jacobi_u128(a128, n128);
        }
        if a == [0u64; 4] {
            return if n == [1, 0, 0, 0] { t } else { 0 };
        }
        let tz = trailing_zeros(&a);
        a = shr(&a, tz);
        let n_mod_8 = n[0] & 7;
        if tz & 1 == 1 && (n_mod_8 == 3 || n_mod_8 == 5) {
            t = -t;
        }
        // a and n are odd here.
        if cmp_limbs(&a, &n) == Ordering::Less {
            core::mem::swap(&mut a, &mut n);
            if a[0] & 3 == 3 && n[0] & 3 == 3 {
                t = -t;
            }
        }
        a = sub_limbs(&a, &n);
    }
}

/// The binary Jacobi algorithm on `u128` (`n` odd).
fn jacobi_u128(mut a: u128, mut n: u128) -> i8 {
    let mut t: i8 = 1;
    loop {
        if a == 0 {
            return if n == 1 { t } else { 0 };
        }
        let tz = a.trailing_zeros();
        a >>= tz;
        let n_mod_8 = n & 7;
        if tz & 1 == 1 && (n_mod_8 == 3 || n_mod_8 == 5) {
            t = -t;
        }
        if a < n {
            core::mem::swap(&mut a, &mut n);
            if a & 3 == 3 && n & 3 == 3 {
                t = -t;
            }
        }
        a -= n;
    }
}

fn limbs_from_be(b: &[u8; 32]) -> [u64; 4] {
    let mut limbs = [0u64; 4];
    for (i, chunk) in b.rchunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if let Some(l) = limbs.get_mut(i) {
            *l = u64::from_be_bytes(word);
        }
    }
    limbs
}

fn cmp_limbs(a: &[u64; 4], b: &[u64; 4]) -> Ordering {
    a.iter().rev().cmp(b.iter().rev())
}

fn sub_limbs(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        let (d1, b1) = x.overflowing_sub(*y);
        let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
        *o = d2;
        borrow = b1 || b2;
    }
    out
}

fn trailing_zeros(a: &[u64; 4]) -> u32 {
    let mut tz = 0;
    for limb in a {
        if *limb == 0 {
            tz += 64;
        } else {
            return tz + limb.trailing_zeros();
        }
    }
    tz
}

fn shr(a: &[u64; 4], bits: u32) -> [u64; 4] {
    let words = (bits / 64) as usize;
    let rem = bits % 64;
    let mut out = [0u64; 4];
    for (i, o) in out.iter_mut().enumerate() {
        let lo = a.get(i + words).copied().unwrap_or(0);
        let hi = a.get(i + words + 1).copied().unwrap_or(0);
        *o = if rem == 0 {
            lo
        } else {
            (lo >> rem) | (hi << (64 - rem))
        };
    }
    out
}

/// `a − b` for big-endian 256-bit integers with `a ≥ b`.
fn sub_be(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let d = sub_limbs(&limbs_from_be(a), &limbs_from_be(b));
    let mut out = [0u8; 32];
    for (chunk, limb) in out.rchunks_exact_mut(8).zip(d) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_bigint::{JacobiSymbol, Odd, U256 as Big};
    use proptest::prelude::*;

    fn point(seed: &[u8; 32]) -> Option<Point> {
        let s = scalar_reduce(seed);
        mul_base_secret(&s)
    }

    fn field_p() -> Odd<Big> {
        Odd::new(Big::from_be_hex(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F",
        ))
        .unwrap()
    }

    proptest! {
        #[test]
        fn jacobi_matches_crypto_bigint(bytes in any::<[u8; 32]>()) {
            let a = Big::from_be_slice(&bytes);
            let expected = a.jacobi_symbol_vartime(&field_p());
            let expected = match expected {
                JacobiSymbol::One => 1,
                JacobiSymbol::MinusOne => -1,
                JacobiSymbol::Zero => 0,
            };
            prop_assert_eq!(jacobi(&bytes), expected);
        }

        #[test]
        fn exactly_one_of_y_and_minus_y_is_a_residue(seed in any::<[u8; 32]>()) {
            prop_assume!(!is_zero(&scalar_reduce(&seed)));
            let p = point(&seed).unwrap();
            prop_assert_ne!(jacobi_is_one(&p), jacobi_is_one(&p.negate()));
        }

        #[test]
        fn lincomb_matches_two_multiplications(
            seed in any::<[u8; 32]>(), u in any::<[u8; 32]>(), v in any::<[u8; 32]>()
        ) {
            prop_assume!(!is_zero(&scalar_reduce(&seed)));
            let p = point(&seed).unwrap();
            let (u, v) = (scalar_reduce(&u), scalar_reduce(&v));
            prop_assert_eq!(lincomb(&p, &u, &v), lincomb_slow(&p, &u, &v));
            prop_assert_eq!(lincomb(&p, &u, &Scalar::ZERO), lincomb_slow(&p, &u, &Scalar::ZERO));
            prop_assert_eq!(lincomb(&p, &Scalar::ZERO, &v), lincomb_slow(&p, &Scalar::ZERO, &v));
        }
    }

    #[test]
    fn lincomb_yields_infinity() {
        let p = point(&[7u8; 32]).unwrap();
        let d = scalar_reduce(&[7u8; 32]);
        // 1·P − d·G = 0
        assert_eq!(lincomb(&p, &Scalar::ONE, &(-d)), None);
    }

    #[test]
    fn lincomb_handles_x_above_the_order() {
        // x = n + 1 is below p; find a point with x ≥ n by trying x = n + k.
        let mut x = ORDER;
        let mut found = None;
        for k in 1u8..=255 {
            x[31] = ORDER[31].wrapping_add(k);
            if x[31] < ORDER[31] {
                break;
            }
            let mut ser = [0x02u8; 33];
            ser[1..].copy_from_slice(&x);
            if let Ok(p) = Point::from_slice(&ser) {
                found = Some(p);
                break;
            }
        }
        let p = found.expect("some x in [n, n + 255] is on the curve");
        for (u, v) in [(3u8, 5u8), (1, 0), (200, 17)] {
            let (u, v) = (Scalar::from(u64::from(u)), Scalar::from(u64::from(v)));
            assert_eq!(lincomb(&p, &u, &v), lincomb_slow(&p, &u, &v));
            let q = p.negate();
            assert_eq!(lincomb(&q, &u, &v), lincomb_slow(&q, &u, &v));
        }
    }

    #[test]
    fn field_size_bound() {
        let mut p = [0xFFu8; 32];
        p[27] = 0xFE;
        p[28..].copy_from_slice(&[0xFF, 0xFF, 0xFC, 0x2F]);
        assert!(!is_below_field_size(&p));
        p[31] = 0x2E;
        assert!(is_below_field_size(&p));
    }
}
