//! The subcommands. Each returns what to print and the exit code; any `Err` is
//! bad input (exit code 2).

use anyhow::{Context, Result, bail};
use clap::Args;
use lotus_musig2::core::{
    KeyAggContext, Keypair, Lotus, NonceGenInputs, PublicKey, SecretKey, SessionContext, Signature,
    key_sort, nonce_agg, nonce_gen, schnorr, sign, verify_all_and_aggregate,
};
use serde_json::json;

/// What a command prints on stdout, and its exit code.
pub struct Outcome {
    pub output: String,
    pub code: u8,
}

impl Outcome {
    fn ok(output: impl Into<String>) -> Self {
        Self {
            output: output.into(),
            code: 0,
        }
    }
}

fn hex_array<const N: usize>(s: &str, what: &str) -> Result<[u8; N]> {
    let bytes = hex::decode(s).with_context(|| format!("{what}: not hex: {s:?}"))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{what}: expected {N} bytes, got {len}"))
}

fn parse_pubkeys(keys: &[String]) -> Result<Vec<PublicKey>> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let bytes: [u8; 33] = hex_array(k, &format!("public key #{}", i + 1))?;
            PublicKey::from_bytes(&bytes).with_context(|| format!("public key #{}", i + 1))
        })
        .collect()
}

pub fn parse_seckey(s: &str, what: &str) -> Result<SecretKey> {
    let bytes = zeroize::Zeroizing::new(hex_array::<32>(s, what)?);
    SecretKey::from_bytes(&bytes).with_context(|| what.to_string())
}

#[derive(Debug, Args)]
pub struct KeyAggArgs {
    /// Print the Taproot commitment key `Q + H_TapTweak(Q ‖ merkle_root)·G` instead.
    #[arg(long)]
    taproot: bool,
    /// Taproot merkle root (32-byte hex); 32 zero bytes for a key-only output.
    #[arg(long, requires = "taproot", value_name = "HEX32")]
    merkle_root: Option<String>,
    /// Public keys, 33-byte compressed hex, any order (they are sorted, as lotus-sdk does).
    #[arg(required = true, value_name = "PUBKEY")]
    pubkeys: Vec<String>,
}

pub fn key_agg(args: &KeyAggArgs) -> Result<Outcome> {
    let keys = parse_pubkeys(&args.pubkeys)?;
    let mut ctx = KeyAggContext::<Lotus>::new_sorted(&keys)?;
    if args.taproot {
        let root = match &args.merkle_root {
            Some(r) => hex_array::<32>(r, "merkle root")?,
            None => [0u8; 32],
        };
        ctx = ctx.with_taproot_tweak(&root)?;
    }
    Ok(Outcome::ok(ctx.aggregate_pubkey().to_string()))
}

#[derive(Debug, Args)]
pub struct SignLocalArgs {
    /// The 32-byte message (a Lotus sighash), hex.
    #[arg(long, value_name = "HEX32")]
    message: String,
    /// The signers' secret keys, 32-byte hex each.
    #[arg(required = true, value_name = "SECKEY")]
    seckeys: Vec<String>,
}

pub fn sign_local(args: &SignLocalArgs) -> Result<Outcome> {
    let message: [u8; 32] = hex_array(&args.message, "message")?;
    let signers: Vec<Keypair> = args
        .seckeys
        .iter()
        .enumerate()
        .map(|(i, s)| parse_seckey(s, &format!("secret key #{}", i + 1)).map(Keypair::new))
        .collect::<Result<_>>()?;
    let (aggregate, signature) = sign_in_process(&signers, &message)?;
    let out = json!({
        "aggregate_pubkey": aggregate.to_string(),
        "message": hex::encode(message),
        "signature": signature.to_string(),
    });
    Ok(Outcome::ok(out.to_string()))
}

/// A complete N-of-N Lotus MuSig2 session in this process: fresh random
/// nonces, every partial signature verified, then the aggregate.
pub fn sign_in_process(signers: &[Keypair], message: &[u8; 32]) -> Result<(PublicKey, Signature)> {
    let keys = key_sort(&signers.iter().map(Keypair::public_key).collect::<Vec<_>>());
    let ctx = KeyAggContext::<Lotus>::new(&keys)?;
    let signature = sign_with_context(&ctx, signers, message)?;
    Ok((ctx.aggregate_pubkey(), signature))
}

/// One N-of-N Lotus MuSig2 session over `message` under `ctx` (which may
/// carry a tweak, e.g. the Taproot commitment): one signer per key of `ctx`.
pub fn sign_with_context(
    ctx: &KeyAggContext<Lotus>,
    signers: &[Keypair],
    message: &[u8; 32],
) -> Result<Signature> {
    let keys = ctx.keys();
    let agg_pk = ctx.nonce_gen_agg_pk();
    let mut rng = rand::rng();
    let mut ordered = Vec::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        let Some(keypair) = signers.iter().find(|s| s.public_key() == *key) else {
            bail!("internal: key {index} has no signer");
        };
        let (secnonce, pubnonce) = nonce_gen(
            &mut rng,
            *key,
            NonceGenInputs {
                secret_key: Some(keypair.secret_key()),
                aggregate_pubkey: Some(&agg_pk),
                message: Some(message),
                extra_input: None,
            },
        );
        ordered.push((keypair, secnonce, pubnonce));
    }
    let pubnonces: Vec<_> = ordered.iter().map(|(_, _, n)| *n).collect();
    let session = SessionContext::new(ctx, &nonce_agg(&pubnonces), message)?;
    let psigs = ordered
        .into_iter()
        .enumerate()
        .map(|(index, (keypair, secnonce, _))| sign(secnonce, keypair, index, &session))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(verify_all_and_aggregate(&session, &psigs, &pubnonces)?)
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The public (aggregate) key, 33-byte compressed hex.
    #[arg(long, value_name = "HEX33")]
    pubkey: String,
    /// The 32-byte message, hex.
    #[arg(long, value_name = "HEX32")]
    message: String,
    /// The 64-byte signature `r ‖ s`, hex.
    #[arg(long, value_name = "HEX64")]
    signature: String,
}

pub fn verify(args: &VerifyArgs) -> Result<Outcome> {
    let pubkey = PublicKey::from_bytes(&hex_array::<33>(&args.pubkey, "public key")?)?;
    let message: [u8; 32] = hex_array(&args.message, "message")?;
    let signature = Signature::from_bytes(&hex_array::<64>(&args.signature, "signature")?);
    Ok(match schnorr::verify(&pubkey, &message, &signature) {
        Ok(()) => Outcome::ok("valid"),
        Err(_) => Outcome {
            output: "invalid".into(),
            code: 1,
        },
    })
}

#[derive(Debug, Args)]
pub struct SchnorrSignArgs {
    /// The 32-byte message, hex.
    #[arg(long, value_name = "HEX32")]
    message: String,
    /// The secret key, 32-byte hex.
    #[arg(value_name = "SECKEY")]
    seckey: String,
}

pub fn schnorr_sign(args: &SchnorrSignArgs) -> Result<Outcome> {
    let message: [u8; 32] = hex_array(&args.message, "message")?;
    let secret = parse_seckey(&args.seckey, "secret key")?;
    Ok(Outcome::ok(schnorr::sign(&secret, &message).to_string()))
}

#[derive(Debug, Args)]
pub struct ElectArgs {
    /// Election method: lexicographic, hash-based, first-signer, last-signer.
    #[arg(long, default_value = "lexicographic")]
    method: String,
    /// The signers' public keys, 33-byte compressed hex, any order.
    #[arg(required = true, value_name = "PUBKEY")]
    pubkeys: Vec<String>,
}

/// `elect`: lotus-sdk's coordinator election, as one JSON object (indexes are
/// positions in the sorted key list).
pub fn elect(args: &ElectArgs) -> Result<Outcome> {
    use lotus_musig2::election::{ElectionMethod, coordinator_priority_list, elect_coordinator};
    let method: ElectionMethod = args
        .method
        .parse()
        .map_err(|e| anyhow::anyhow!("--method: {e}"))?;
    let keys = parse_pubkeys(&args.pubkeys)?;
    let result = elect_coordinator(&keys, method)?;
    let out = json!({
        "coordinator_index": result.coordinator_index,
        "coordinator_pubkey": result.coordinator_pubkey.to_string(),
        "sorted_signers": result.sorted_signers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "election_proof": result.election_proof,
        "priority_list": coordinator_priority_list(&keys, method),
    });
    Ok(Outcome::ok(out.to_string()))
}
