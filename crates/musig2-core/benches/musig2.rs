//! Lotus MuSig2 (this crate) against libsecp256k1's own BIP327 `musig` module
//! and its BIP340 verification, in the same run.
//!
//! Every group has two functions, `ours` and `baseline`; `cargo xtask bench core`
//! reads criterion's estimates, prints the ratios and rewrites
//! `docs/PERFORMANCE.md`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use musig2_core::{
    KeyAggContext, Keypair, Lotus, NonceGenInputs, PublicNonce, SecretNonce, SessionContext,
    aggregate_and_verify, nonce_agg, nonce_gen, partial_sig_agg, partial_sig_verify, schnorr, sign,
    verify_all_and_aggregate,
};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use secp256k1::musig;

const MSG: [u8; 32] = [0x42; 32];

/// n signers, as key pairs of both libraries, sorted by public key.
struct Signers {
    ours: Vec<Keypair>,
    theirs: Vec<secp256k1::Keypair>,
}

fn signers(n: usize, rng: &mut StdRng) -> Signers {
    let mut ours: Vec<Keypair> = (0..n).map(|_| Keypair::random(rng)).collect();
    ours.sort_by_key(Keypair::public_key);
    let theirs = ours
        .iter()
        .map(|k| secp256k1::Keypair::from_secret_bytes(*k.secret_key().to_secret_bytes()).unwrap())
        .collect();
    Signers { ours, theirs }
}

fn our_nonce(
    rng: &mut StdRng,
    kp: &Keypair,
    ctx: &KeyAggContext<Lotus>,
) -> (SecretNonce, PublicNonce) {
    let agg_pk = ctx.nonce_gen_agg_pk();
    nonce_gen(
        rng,
        kp.public_key(),
        NonceGenInputs {
            secret_key: Some(kp.secret_key()),
            aggregate_pubkey: Some(&agg_pk),
            message: Some(&MSG),
            extra_input: None,
        },
    )
}

fn their_nonce(
    rng: &mut StdRng,
    kp: &secp256k1::Keypair,
    cache: &musig::KeyAggCache,
) -> (musig::SecretNonce, musig::PublicNonce) {
    let mut rand = [0u8; 32];
    rng.fill_bytes(&mut rand);
    musig::new_nonce_pair(
        musig::SessionSecretRand::assume_uniformly_random(rand),
        Some(cache),
        Some(kp.secret_key()),
        kp.public_key(),
        Some(&MSG),
        None,
    )
}

/// Everything needed to benchmark one step of a session, for both libraries.
struct Fixture {
    signers: Signers,
    ctx: KeyAggContext<Lotus>,
    session: SessionContext<Lotus>,
    nonces: Vec<PublicNonce>,
    psigs: Vec<musig2_core::PartialSignature>,
    cache: musig::KeyAggCache,
    their_session: musig::Session,
    their_nonces: Vec<musig::PublicNonce>,
    their_psigs: Vec<musig::PartialSignature>,
}

fn fixture(n: usize, rng: &mut StdRng) -> Fixture {
    let signers = signers(n, rng);
    let keys: Vec<_> = signers.ours.iter().map(Keypair::public_key).collect();
    let ctx = KeyAggContext::<Lotus>::new(&keys).unwrap();
    let (secs, nonces): (Vec<_>, Vec<_>) = signers
        .ours
        .iter()
        .map(|kp| our_nonce(rng, kp, &ctx))
        .unzip();
    let session = SessionContext::new(&ctx, &nonce_agg(&nonces), &MSG).unwrap();
    let psigs = secs
        .into_iter()
        .enumerate()
        .map(|(i, s)| sign(s, &signers.ours[i], i, &session).unwrap())
        .collect();

    let pks: Vec<_> = signers.theirs.iter().map(|k| k.public_key()).collect();
    let cache = musig::KeyAggCache::new(&pks.iter().collect::<Vec<_>>());
    let (their_secs, their_nonces): (Vec<_>, Vec<_>) = signers
        .theirs
        .iter()
        .map(|kp| their_nonce(rng, kp, &cache))
        .unzip();
    let agg = musig::AggregatedNonce::new(&their_nonces.iter().collect::<Vec<_>>());
    let their_session = musig::Session::new(&cache, agg, &MSG);
    let their_psigs = their_secs
        .into_iter()
        .zip(&signers.theirs)
        .map(|(s, kp)| their_session.partial_sign(s, kp, &cache))
        .collect();
    Fixture {
        signers,
        ctx,
        session,
        nonces,
        psigs,
        cache,
        their_session,
        their_nonces,
        their_psigs,
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

fn key_agg(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    for n in [2usize, 10, 100] {
        let s = signers(n, &mut rng);
        let keys: Vec<_> = s.ours.iter().map(Keypair::public_key).collect();
        let pks: Vec<_> = s.theirs.iter().map(|k| k.public_key()).collect();
        let refs: Vec<_> = pks.iter().collect();
        let mut g = c.benchmark_group(format!("key_agg_n{n}"));
        g.bench_function("ours", |b| {
            b.iter(|| KeyAggContext::<Lotus>::new(black_box(&keys)).unwrap())
        });
        g.bench_function("baseline", |b| {
            b.iter(|| musig::KeyAggCache::new(black_box(&refs)))
        });
        g.finish();
    }
}

fn steps(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2);
    let f = fixture(2, &mut rng);
    let (kp, tkp) = (&f.signers.ours[0], &f.signers.theirs[0]);

    let mut g = c.benchmark_group("nonce_gen");
    g.bench_function("ours", |b| b.iter(|| our_nonce(&mut rng, kp, &f.ctx)));
    g.bench_function("baseline", |b| {
        b.iter(|| their_nonce(&mut rng, tkp, &f.cache))
    });
    g.finish();

    let mut g = c.benchmark_group("nonce_agg");
    let refs: Vec<_> = f.their_nonces.iter().collect();
    g.bench_function("ours", |b| b.iter(|| nonce_agg(black_box(&f.nonces))));
    g.bench_function("baseline", |b| {
        b.iter(|| musig::AggregatedNonce::new(black_box(&refs)))
    });
    g.finish();

    let mut g = c.benchmark_group("session_context");
    let aggnonce = nonce_agg(&f.nonces);
    let their_agg = musig::AggregatedNonce::new(&refs);
    g.bench_function("ours", |b| {
        b.iter(|| SessionContext::new(&f.ctx, black_box(&aggnonce), &MSG).unwrap())
    });
    g.bench_function("baseline", |b| {
        b.iter(|| musig::Session::new(&f.cache, black_box(their_agg), &MSG))
    });
    g.finish();

    let mut g = c.benchmark_group("partial_sign");
    g.bench_function("ours", |b| {
        b.iter_batched(
            || our_nonce(&mut StdRng::seed_from_u64(9), kp, &f.ctx).0,
            |sec| sign(sec, kp, 0, &f.session).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("baseline", |b| {
        b.iter_batched(
            || their_nonce(&mut StdRng::seed_from_u64(9), tkp, &f.cache).0,
            |sec| f.their_session.partial_sign(sec, tkp, &f.cache),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("partial_verify");
    g.bench_function("ours", |b| {
        b.iter(|| partial_sig_verify(&f.session, &f.psigs[0], &f.nonces[0], 0).unwrap())
    });
    let pk0 = tkp.public_key();
    g.bench_function("baseline", |b| {
        b.iter(|| {
            assert!(f.their_session.partial_verify(
                &f.cache,
                &f.their_psigs[0],
                &f.their_nonces[0],
                pk0
            ))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("partial_sig_agg");
    let their_refs: Vec<_> = f.their_psigs.iter().collect();
    g.bench_function("ours", |b| {
        b.iter(|| partial_sig_agg(&f.session, black_box(&f.psigs)))
    });
    g.bench_function("baseline", |b| {
        b.iter(|| f.their_session.partial_sig_agg(black_box(&their_refs)))
    });
    g.finish();

    let mut g = c.benchmark_group("final_verify");
    let sig = partial_sig_agg(&f.session, &f.psigs);
    let q = f.ctx.aggregate_pubkey();
    let their_sig = f.their_session.partial_sig_agg(&their_refs).assume_valid();
    let xq = f.cache.agg_pk();
    g.bench_function("ours", |b| {
        b.iter(|| schnorr::verify(&q, &MSG, black_box(&sig)).unwrap())
    });
    g.bench_function("baseline", |b| {
        b.iter(|| secp256k1::schnorr::verify(black_box(&their_sig), &MSG, &xq).unwrap())
    });
    g.finish();
}

/// A whole n-of-n session in one process: key aggregation, n nonces, nonce
/// aggregation, session values, n partial signatures, verification of the
/// result, and the final signature.
fn sessions(c: &mut Criterion) {
    for n in [2usize, 10] {
        let mut rng = StdRng::seed_from_u64(3);
        let s = signers(n, &mut rng);
        let keys: Vec<_> = s.ours.iter().map(Keypair::public_key).collect();
        let pks: Vec<_> = s.theirs.iter().map(|k| k.public_key()).collect();

        let ours = |rng: &mut StdRng, aggregate_first: bool| {
            let ctx = KeyAggContext::<Lotus>::new(&keys).unwrap();
            let (secs, nonces): (Vec<_>, Vec<_>) =
                s.ours.iter().map(|kp| our_nonce(rng, kp, &ctx)).unzip();
            let session = SessionContext::new(&ctx, &nonce_agg(&nonces), &MSG).unwrap();
            let psigs: Vec<_> = secs
                .into_iter()
                .enumerate()
                .map(|(i, sec)| sign(sec, &s.ours[i], i, &session).unwrap())
                .collect();
            if aggregate_first {
                aggregate_and_verify(&session, &psigs, &nonces).unwrap()
            } else {
                verify_all_and_aggregate(&session, &psigs, &nonces).unwrap()
            }
        };
        let theirs = |rng: &mut StdRng| {
            let cache = musig::KeyAggCache::new(&pks.iter().collect::<Vec<_>>());
            let (secs, nonces): (Vec<_>, Vec<_>) = s
                .theirs
                .iter()
                .map(|kp| their_nonce(rng, kp, &cache))
                .unzip();
            let session = musig::Session::new(
                &cache,
                musig::AggregatedNonce::new(&nonces.iter().collect::<Vec<_>>()),
                &MSG,
            );
            let psigs: Vec<_> = secs
                .into_iter()
                .zip(&s.theirs)
                .map(|(sec, kp)| session.partial_sign(sec, kp, &cache))
                .collect();
            for ((p, r), kp) in psigs.iter().zip(&nonces).zip(&s.theirs) {
                assert!(session.partial_verify(&cache, p, r, kp.public_key()));
            }
            session
                .partial_sig_agg(&psigs.iter().collect::<Vec<_>>())
                .verify(&cache.agg_pk(), &MSG)
                .unwrap()
        };

        let mut g = c.benchmark_group(format!("session_n{n}"));
        g.bench_function("ours", |b| b.iter(|| ours(&mut rng, false)));
        g.bench_function("baseline", |b| b.iter(|| theirs(&mut rng)));
        g.finish();
        let mut g = c.benchmark_group(format!("session_n{n}_aggregate_first"));
        g.bench_function("ours", |b| b.iter(|| ours(&mut rng, true)));
        g.bench_function("baseline", |b| b.iter(|| theirs(&mut rng)));
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = key_agg, steps, sessions
}
criterion_main!(benches);
