//! Properties of Lotus and BIP340 MuSig2 over random signer sets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use musig2_core::{
    Bip340, Contribution, Error, Flavor, KeyAggContext, Keypair, Lotus, NonceCommitment,
    NonceGenInputs, PartialSignature, PublicNonce, SessionContext, aggregate_and_verify, key_sort,
    nonce_agg, nonce_gen, partial_sig_verify, schnorr, sign, verify, verify_all_and_aggregate,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

struct Run<F: Flavor> {
    session: SessionContext<F>,
    psigs: Vec<PartialSignature>,
    nonces: Vec<PublicNonce>,
}

/// A tweak applied to the aggregate key before signing.
#[derive(Clone, Copy)]
enum Tweak {
    Plain([u8; 32]),
    XOnly([u8; 32]),
}

/// A complete n-of-n session over sorted keys, optionally tweaked.
fn run<F: Flavor>(seed: u64, n: usize, msg: &[u8], tweak: Option<Tweak>) -> Run<F> {
    let mut rng = StdRng::seed_from_u64(seed);
    let signers: Vec<Keypair> = (0..n).map(|_| Keypair::random(&mut rng)).collect();
    let keys = key_sort(&signers.iter().map(Keypair::public_key).collect::<Vec<_>>());
    let mut ctx = KeyAggContext::<F>::new(&keys).unwrap();
    match tweak {
        Some(Tweak::Plain(t)) => ctx = ctx.with_plain_tweak(&t).unwrap(),
        Some(Tweak::XOnly(t)) => ctx = ctx.with_xonly_tweak(&t).unwrap(),
        None => {}
    }
    let agg_pk = ctx.nonce_gen_agg_pk();
    // Each signer's position in the sorted list.
    let mut by_index: Vec<&Keypair> = Vec::new();
    for key in &keys {
        by_index.push(signers.iter().find(|s| s.public_key() == *key).unwrap());
    }
    let (secnonces, nonces): (Vec<_>, Vec<_>) = by_index
        .iter()
        .map(|kp| {
            nonce_gen(
                &mut rng,
                kp.public_key(),
                NonceGenInputs {
                    secret_key: Some(kp.secret_key()),
                    aggregate_pubkey: Some(&agg_pk),
                    message: Some(msg),
                    extra_input: None,
                },
            )
        })
        .unzip();
    let session = SessionContext::new(&ctx, &nonce_agg(&nonces), msg).unwrap();
    let psigs = secnonces
        .into_iter()
        .zip(&by_index)
        .enumerate()
        .map(|(i, (sec, kp))| sign(sec, kp, i, &session).unwrap())
        .collect();
    Run {
        session,
        psigs,
        nonces,
    }
}

fn flip(psig: &PartialSignature) -> PartialSignature {
    let mut bytes = psig.to_bytes();
    bytes[31] ^= 1;
    PartialSignature::from_bytes(&bytes)
        .unwrap_or(PartialSignature::from_bytes(&[1u8; 32]).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn lotus_sessions_verify_and_blame_the_right_signer(
        seed in any::<u64>(), n in 1usize..=20, msg in any::<[u8; 32]>(),
        tweak in proptest::option::of(any::<[u8; 31]>()), culprit in any::<prop::sample::Index>(),
    ) {
        let tweak = tweak.map(|t| { let mut b = [0u8; 32]; b[1..].copy_from_slice(&t); Tweak::Plain(b) });
        let Run { session, psigs, nonces } = run::<Lotus>(seed, n, &msg, tweak);
        let sig = aggregate_and_verify(&session, &psigs, &nonces).unwrap();
        schnorr::verify(&session.key_agg().aggregate_pubkey(), &msg, &sig).unwrap();
        prop_assert_eq!(verify_all_and_aggregate(&session, &psigs, &nonces).unwrap(), sig);

        let bad = culprit.index(n);
        let mut tampered = psigs.clone();
        tampered[bad] = flip(&psigs[bad]);
        let expected = Error::InvalidContribution { signer: bad, contribution: Contribution::PartialSignature };
        prop_assert_eq!(aggregate_and_verify(&session, &tampered, &nonces), Err(expected.clone()));
        prop_assert_eq!(verify_all_and_aggregate(&session, &tampered, &nonces), Err(expected));
        for (i, (p, r)) in tampered.iter().zip(&nonces).enumerate() {
            prop_assert_eq!(partial_sig_verify(&session, p, r, i).is_ok(), i != bad);
        }
    }

    #[test]
    fn bip340_sessions_verify(seed in any::<u64>(), n in 1usize..=12, msg in proptest::collection::vec(any::<u8>(), 0..64),
        xonly_tweak in proptest::option::of(any::<[u8; 31]>())) {
        let Run { session, psigs, nonces } = run::<Bip340>(seed, n, &msg, None);
        let sig = aggregate_and_verify(&session, &psigs, &nonces).unwrap();
        verify(&session, &sig).unwrap();
        if let Some(t) = xonly_tweak {
            let mut b = [0u8; 32];
            b[1..].copy_from_slice(&t);
            let ctx = session.key_agg().clone().with_xonly_tweak(&b).unwrap();
            let tweaked = SessionContext::new(&ctx, session.aggnonce(), &msg).unwrap();
            // Different challenge, so the old partial signatures no longer fit.
            prop_assert!(aggregate_and_verify(&tweaked, &psigs, &nonces).is_err());

            // A session signed under the x-only tweaked key verifies under
            // that key (as BIP340), and not under the untweaked one.
            let Run { session: t_session, psigs: t_psigs, nonces: t_nonces } =
                run::<Bip340>(seed, n, &msg, Some(Tweak::XOnly(b)));
            prop_assert_eq!(t_session.key_agg().aggregate_pubkey(), ctx.aggregate_pubkey());
            let t_sig = aggregate_and_verify(&t_session, &t_psigs, &t_nonces).unwrap();
            verify(&t_session, &t_sig).unwrap();
            let untweaked = session.key_agg().aggregate_pubkey();
            prop_assert!(<Bip340 as Flavor>::verify(&ctx.aggregate_pubkey(), &msg, &t_sig).is_ok());
            prop_assert!(<Bip340 as Flavor>::verify(&untweaked, &msg, &t_sig).is_err());
        }
    }

    #[test]
    fn aggregate_key_does_not_depend_on_input_order(seed in any::<u64>(), n in 1usize..=20, shuffle in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let keys: Vec<_> = (0..n).map(|_| Keypair::random(&mut rng).public_key()).collect();
        let mut shuffled = keys.clone();
        let mut s = StdRng::seed_from_u64(shuffle);
        rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), &mut s);
        let a = KeyAggContext::<Lotus>::new_sorted(&keys).unwrap();
        let b = KeyAggContext::<Lotus>::new_sorted(&shuffled).unwrap();
        prop_assert_eq!(a.aggregate_pubkey(), b.aggregate_pubkey());
    }

    #[test]
    fn nonce_commitments_bind_session_signer_and_nonce(seed in any::<u64>(), sid in any::<[u8; 32]>(), other in any::<[u8; 32]>()) {
        prop_assume!(sid != other);
        let mut rng = StdRng::seed_from_u64(seed);
        let (a, b) = (Keypair::random(&mut rng), Keypair::random(&mut rng));
        let (_s1, n1) = nonce_gen(&mut rng, a.public_key(), NonceGenInputs::default());
        let (_s2, n2) = nonce_gen(&mut rng, a.public_key(), NonceGenInputs::default());
        let c = NonceCommitment::commit(&sid, &a.public_key(), &n1);
        prop_assert!(c.verify(&sid, &a.public_key(), 3, &n1).is_ok());
        let blamed = Err(Error::InvalidContribution { signer: 3, contribution: Contribution::NonceCommitment });
        prop_assert_eq!(c.verify(&sid, &a.public_key(), 3, &n2), blamed.clone());
        prop_assert_eq!(c.verify(&other, &a.public_key(), 3, &n1), blamed.clone());
        prop_assert_eq!(c.verify(&sid, &b.public_key(), 3, &n1), blamed);
    }

    #[test]
    fn lotus_schnorr_roundtrip(seed in any::<u64>(), msg in any::<[u8; 32]>(), bit in 0usize..512) {
        let mut rng = StdRng::seed_from_u64(seed);
        let kp = Keypair::random(&mut rng);
        let sig = schnorr::sign(kp.secret_key(), &msg);
        schnorr::verify(&kp.public_key(), &msg, &sig).unwrap();
        let mut bytes = sig.to_bytes();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let tampered = musig2_core::Signature::from_bytes(&bytes);
        prop_assert!(schnorr::verify(&kp.public_key(), &msg, &tampered).is_err());
    }

    /// Every parser either refuses the bytes or returns a value whose
    /// encoding is exactly those bytes (each encoding is fixed-length and
    /// canonical); a wrong length is always refused.
    #[test]
    fn parsers_round_trip_or_refuse(bytes in parser_input()) {
        use musig2_core::{AggNonce, PublicKey, SecretKey, Signature};
        let len = bytes.len();
        let check = |accepted: Option<Vec<u8>>, expected_len: usize| -> Result<(), TestCaseError> {
            if let Some(encoded) = accepted {
                prop_assert_eq!(len, expected_len);
                prop_assert_eq!(&encoded, &bytes);
            }
            Ok(())
        };
        check(PublicKey::from_slice(&bytes).ok().map(|k| k.to_bytes().to_vec()), 33)?;
        check(SecretKey::from_slice(&bytes).ok().map(|k| k.to_secret_bytes().to_vec()), 32)?;
        check(PublicNonce::from_slice(&bytes).ok().map(|n| n.to_bytes().to_vec()), 66)?;
        check(AggNonce::from_slice(&bytes).ok().map(|n| n.to_bytes().to_vec()), 66)?;
        check(PartialSignature::from_slice(&bytes).ok().map(|p| p.to_bytes().to_vec()), 32)?;
        check(NonceCommitment::from_slice(&bytes).ok().map(|c| c.to_bytes().to_vec()), 32)?;
        // Every 64 bytes are a signature (its checks come with verification).
        match Signature::from_slice(&bytes) {
            Ok(sig) => prop_assert_eq!(sig.to_bytes().to_vec(), bytes.clone()),
            Err(_) => prop_assert_ne!(len, 64),
        }
        // Hex text: a key parses from its own display, and displays as it parsed.
        let text = hex::encode(&bytes);
        if let Ok(key) = text.parse::<PublicKey>() {
            prop_assert_eq!(key.to_string(), text);
        }
    }
}

/// Byte strings of the lengths the parsers expect (and one byte off), half
/// of them starting like a compressed point, plus any short string.
fn parser_input() -> impl Strategy<Value = Vec<u8>> {
    let sized = (
        prop::sample::select(vec![31usize, 32, 33, 34, 63, 64, 65, 66, 67]),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(len, point, seed)| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut bytes = vec![0u8; len];
            rand::RngCore::fill_bytes(&mut rng, &mut bytes);
            if point && len > 33 {
                bytes[0] = 2 + (bytes[0] & 1);
                bytes[33] = 2 + (bytes[33] & 1);
            } else if point && !bytes.is_empty() {
                bytes[0] = 2 + (bytes[0] & 1);
            }
            bytes
        });
    prop_oneof![sized, proptest::collection::vec(any::<u8>(), 0..100)]
}

#[test]
fn wrong_signer_index_and_foreign_nonce_are_typed_errors() {
    let mut rng = StdRng::seed_from_u64(7);
    let (a, b) = (Keypair::random(&mut rng), Keypair::random(&mut rng));
    let keys = key_sort(&[a.public_key(), b.public_key()]);
    let ctx = KeyAggContext::<Lotus>::new(&keys).unwrap();
    let (sa, na) = nonce_gen(&mut rng, a.public_key(), NonceGenInputs::default());
    let (_sb, nb) = nonce_gen(&mut rng, b.public_key(), NonceGenInputs::default());
    let session = SessionContext::new(&ctx, &nonce_agg(&[na, nb]), &[0u8; 32]).unwrap();
    let a_index = ctx.signer_index(&a.public_key()).unwrap();
    assert_eq!(
        sign(sa, &a, 5, &session),
        Err(Error::SignerIndexOutOfRange { index: 5, len: 2 })
    );
    let (sa, _) = nonce_gen(&mut rng, a.public_key(), NonceGenInputs::default());
    assert_eq!(
        sign(sa, &a, 1 - a_index, &session),
        Err(Error::SignerKeyMismatch { index: 1 - a_index })
    );
    let (sb, _) = nonce_gen(&mut rng, b.public_key(), NonceGenInputs::default());
    assert_eq!(
        sign(sb, &a, a_index, &session),
        Err(Error::SecretNonceKeyMismatch)
    );
    assert_eq!(
        aggregate_and_verify(&session, &[], &[]),
        Err(Error::ContributionCount {
            expected: 2,
            got: 0
        })
    );
    assert_eq!(
        KeyAggContext::<Lotus>::new(&[]).unwrap_err(),
        Error::EmptyKeyList
    );
}
