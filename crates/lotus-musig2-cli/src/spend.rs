//! `spend`: build a spend from a MuSig2 group's Taproot address, sign every
//! input (one MuSig2 session per input) either in this process (`--local`)
//! or through the running `lotus-musig2 node` processes of the co-signers
//! (`--config`, each co-signer recomputing every sighash from the
//! transaction), verify it, and print it (or broadcast it through Chronik).
//! Any `Err` is bad input (exit 2), except a broadcast refused by the
//! indexer or a signing that fails over the network, which are reported the
//! same way.
//!
//! The data flow is described in `docs/TRANSACTIONS.md` ("Spending from a
//! group").

use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;

use lotus_musig2::coordinator::TransactionSigning;
use lotus_musig2::core::{KeyAggContext, Keypair, Lotus, PublicKey};
use lotus_musig2::identity::{ChronikClient, ChronikConfig};
use lotus_musig2::tx::{
    Address, Destination, KEY_PATH_ONLY, Network, OutPoint, SighashType, TaprootKey, Transaction,
    TxId, TxInput, TxOutput,
};
use serde_json::json;

use crate::commands::{Outcome, parse_seckey, sign_with_context};
use crate::node::{self, NodeConfig};

/// Outputs below this many satoshis are dust: lotusd does not relay them
/// (lotus-sdk's `Transaction.DUST_AMOUNT`). Change below it goes to the fee.
pub const DUST_SATS: u64 = 546;

/// The scriptSig of a P2TR key-path input: one push of a 65-byte signature.
const KEY_PATH_SCRIPT_SIG_LEN: usize = 1 + 65;

#[derive(Debug, Args)]
pub struct SpendArgs {
    /// Sign in this process with these secret keys (32-byte hex each): the
    /// group is their N-of-N MuSig2 aggregate (Lotus flavor, keys sorted).
    #[arg(
        long,
        required_unless_present = "config",
        conflicts_with = "config",
        num_args = 1..,
        value_name = "SECKEY"
    )]
    local: Vec<String>,
    /// Sign through the co-signers' running `lotus-musig2 node` processes:
    /// start a node from this configuration (the `node --config` format; its
    /// key is ours, its `bootstrap` reaches the co-signers, its `chronik_url`
    /// broadcasts) and announce one transaction request per input.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With `--config`: a co-signer's public key (33-byte hex). Repeat for
    /// each; the group is the configured key and these.
    #[arg(long, requires = "config", value_name = "PUBKEY")]
    cosigner: Vec<String>,
    /// An output of the group's Taproot address to spend, `TXID:VOUT:AMOUNT`
    /// (txid in display hex, amount in satoshis). Repeat for several.
    #[arg(long, required = true, value_name = "TXID:VOUT:AMOUNT")]
    utxo: Vec<String>,
    /// A payment, `ADDR:AMOUNT` (XAddress, satoshis). Repeat for several.
    #[arg(long, required = true, value_name = "ADDR:AMOUNT")]
    to: Vec<String>,
    /// Fee rate in satoshis per byte of the signed transaction.
    #[arg(long, value_name = "SAT_PER_BYTE")]
    fee_rate: u64,
    /// livenet, testnet or regtest: the group's address and every `--to` must be on it.
    #[arg(long, default_value = "livenet")]
    network: String,
    /// Broadcast the signed transaction through this Chronik indexer
    /// (`POST /broadcast-tx`) instead of only printing it.
    #[arg(long, value_name = "URL")]
    chronik: Option<String>,
}

/// `TXID:VOUT:AMOUNT`.
fn parse_utxo(item: &str, n: usize) -> Result<(OutPoint, u64)> {
    let what = format!("--utxo #{n} ({item:?})");
    let mut parts = item.split(':');
    let (Some(txid), Some(vout), Some(amount), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("{what}: expected TXID:VOUT:AMOUNT");
    };
    let txid: TxId = txid
        .trim()
        .parse()
        .with_context(|| format!("{what}: txid"))?;
    let vout: u32 = vout
        .trim()
        .parse()
        .with_context(|| format!("{what}: output index is not a number"))?;
    let amount: u64 = amount
        .trim()
        .parse()
        .with_context(|| format!("{what}: amount is not a number of satoshis"))?;
    if amount == 0 {
        bail!("{what}: amount is zero");
    }
    Ok((OutPoint::new(txid, vout), amount))
}

/// `ADDR:AMOUNT`, on `network`.
fn parse_payment(item: &str, n: usize, network: Network) -> Result<TxOutput> {
    let what = format!("--to #{n} ({item:?})");
    let (address, amount) = item
        .rsplit_once(':')
        .with_context(|| format!("{what}: expected ADDR:AMOUNT"))?;
    let address: Address = address
        .trim()
        .parse()
        .with_context(|| format!("{what}: address"))?;
    if address.network != network {
        bail!(
            "{what}: a {} address, but --network is {}",
            address.network.name(),
            network.name()
        );
    }
    let amount: u64 = amount
        .trim()
        .parse()
        .with_context(|| format!("{what}: amount is not a number of satoshis"))?;
    if amount < DUST_SATS {
        bail!("{what}: {amount} sats is below the dust limit of {DUST_SATS}");
    }
    Ok(TxOutput::new(amount, address.script_pubkey()))
}

/// The size of `tx` once every input carries a key-path signature.
fn signed_size(tx: &Transaction) -> usize {
    let unsigned = tx.serialize().len();
    // Each empty scriptSig already counts its one-byte length.
    unsigned + tx.inputs.len() * KEY_PATH_SCRIPT_SIG_LEN
}

fn fee_for(tx: &Transaction, fee_rate: u64) -> Result<u64> {
    (signed_size(tx) as u64)
        .checked_mul(fee_rate)
        .context("--fee-rate: the fee overflows")
}

/// Who signs: secret keys in this process, or a node and its co-signers.
enum Signers {
    Local(Vec<Keypair>),
    Nodes {
        config: Box<NodeConfig>,
        keys: Vec<PublicKey>,
    },
}

impl Signers {
    fn from_args(args: &SpendArgs) -> Result<Self> {
        match &args.config {
            None => Ok(Self::Local(
                args.local
                    .iter()
                    .enumerate()
                    .map(|(i, s)| parse_seckey(s, &format!("--local #{}", i + 1)).map(Keypair::new))
                    .collect::<Result<_>>()?,
            )),
            Some(path) => {
                let config = node::load_config(path)?;
                let ours = node::read_secret(config.secret_key_file.as_deref())?.public_key();
                let mut keys = vec![ours];
                for key in node::parse_keys(&args.cosigner).context("--cosigner")? {
                    if keys.contains(&key) {
                        bail!("--cosigner {key}: given twice (or our own key)");
                    }
                    keys.push(key);
                }
                Ok(Self::Nodes {
                    config: Box::new(config),
                    keys,
                })
            }
        }
    }

    fn keys(&self) -> Vec<PublicKey> {
        match self {
            Self::Local(signers) => signers.iter().map(Keypair::public_key).collect(),
            Self::Nodes { keys, .. } => keys.clone(),
        }
    }
}

pub fn spend(args: &SpendArgs) -> Result<Outcome> {
    let network: Network = args.network.parse().context("--network")?;
    let signers = Signers::from_args(args)?;

    // The group: MuSig2 aggregate key P (Lotus flavor, sorted keys), its
    // key-path-only Taproot commitment Q, the script and address of Q.
    let keys = signers.keys();
    let what = if args.config.is_some() {
        "--config and --cosigner"
    } else {
        "--local"
    };
    let ctx = KeyAggContext::<Lotus>::new_sorted(&keys).context(what)?;
    let internal = ctx.aggregate_pubkey();
    let taproot = TaprootKey::new(&internal, &KEY_PATH_ONLY).context("Taproot commitment")?;
    let group_script = taproot.script_pubkey(None);
    let group_address = Address::new(network, Destination::P2tr(taproot.commitment()));
    let signing_ctx = ctx
        .with_taproot_tweak(&KEY_PATH_ONLY)
        .context("Taproot tweak")?;
    if signing_ctx.aggregate_pubkey() != taproot.commitment() {
        bail!("internal: the tweaked aggregate key is not the Taproot commitment");
    }

    let mut inputs = Vec::with_capacity(args.utxo.len());
    let mut spent = Vec::with_capacity(args.utxo.len());
    for (i, item) in args.utxo.iter().enumerate() {
        let (prev_out, amount) = parse_utxo(item, i + 1)?;
        if inputs.iter().any(|x: &TxInput| x.prev_out == prev_out) {
            bail!("--utxo #{}: {prev_out} is given twice", i + 1);
        }
        inputs.push(TxInput {
            prev_out,
            script_sig: Vec::new(),
            sequence: 0xffff_ffff,
        });
        spent.push(TxOutput::new(amount, group_script.clone()));
    }
    let outputs = args
        .to
        .iter()
        .enumerate()
        .map(|(i, item)| parse_payment(item, i + 1, network))
        .collect::<Result<Vec<_>>>()?;

    let total_in = spent
        .iter()
        .try_fold(0u64, |sum, o| sum.checked_add(o.value))
        .context("--utxo: the amounts overflow")?;
    let total_out = outputs
        .iter()
        .try_fold(0u64, |sum, o| sum.checked_add(o.value))
        .context("--to: the amounts overflow")?;
    let mut tx = Transaction {
        version: 2,
        inputs,
        outputs,
        lock_time: 0,
    };

    // Fee without change; then with a change output back to the group, kept
    // only if what is left is not dust.
    let fee = fee_for(&tx, args.fee_rate)?;
    if total_in
        .checked_sub(total_out)
        .and_then(|x| x.checked_sub(fee))
        .is_none()
    {
        bail!(
            "insufficient funds: the UTXOs hold {total_in} sats, the payments need {total_out} and the fee {fee}"
        );
    }
    let mut with_change = tx.clone();
    with_change
        .outputs
        .push(TxOutput::new(0, group_script.clone()));
    let fee_with_change = fee_for(&with_change, args.fee_rate)?;
    let change = total_in
        .checked_sub(total_out)
        .and_then(|x| x.checked_sub(fee_with_change))
        .filter(|&c| c >= DUST_SATS);
    if let Some(change) = change {
        if let Some(output) = with_change.outputs.last_mut() {
            output.value = change;
        }
        tx = with_change;
    }
    let fee_paid = match change {
        Some(change) => total_in - total_out - change,
        None => total_in - total_out,
    };

    // One MuSig2 session per input, over that input's SIGHASH_LOTUS digest,
    // under the tweaked key aggregation context (aggregate key = Q).
    let sighash_type = SighashType::ALL_LOTUS;
    let txid = tx.txid();
    let mut chronik = args.chronik.clone();
    match &signers {
        Signers::Local(signers) => {
            for index in 0..tx.inputs.len() {
                let sighash = tx
                    .sighash(index, &spent, sighash_type)
                    .with_context(|| format!("sighash of input {index}"))?;
                let signature = sign_with_context(&signing_ctx, signers, &sighash.to_bytes())
                    .with_context(|| format!("MuSig2 session of input {index}"))?;
                tx.set_taproot_key_path_signature(index, &spent, sighash_type, &signature)
                    .with_context(|| format!("input {index}"))?;
            }
        }
        Signers::Nodes { config, keys } => {
            tx = sign_through_nodes(config, keys, &tx, &spent)?;
            if chronik.is_none() {
                chronik.clone_from(&config.chronik_url);
            }
        }
    }
    tx.verify(&spent)
        .context("the signed transaction does not verify")?;
    if tx.txid() != txid {
        bail!("internal: signing changed the txid");
    }
    let raw = tx.serialize();

    // A failed broadcast still reports the signed transaction, so that it can
    // be broadcast another way.
    let broadcast = match &chronik {
        None => None,
        Some(url) => Some(
            broadcast(url, &raw)
                .with_context(|| format!("signed transaction {txid}: {}", hex::encode(&raw)))?,
        ),
    };
    if let Some(answered) = broadcast
        && answered != txid
    {
        bail!("the indexer answered txid {answered}, expected {txid}");
    }

    let out = json!({
        "txid": txid.to_string(),
        "hex": hex::encode(&raw),
        "size": raw.len(),
        "fee": fee_paid,
        "fee_rate": args.fee_rate,
        "change": change,
        "network": network.name(),
        "group_address": group_address.to_string(),
        "aggregate_pubkey": internal.to_string(),
        "taproot_commitment": taproot.commitment().to_string(),
        "spent": spent
            .iter()
            .map(|o| format!("{}:{}", hex::encode(&o.script), o.value))
            .collect::<Vec<_>>(),
        "broadcast": broadcast.is_some(),
    });
    Ok(Outcome {
        output: out.to_string(),
        code: 0,
    })
}

/// Starts a node from `config` (joining nothing) and signs every input of
/// `tx` with the co-signers' running nodes: one transaction request and one
/// MuSig2 session per input (`Coordinator::sign_transaction`).
fn sign_through_nodes(
    config: &NodeConfig,
    keys: &[PublicKey],
    tx: &Transaction,
    spent: &[TxOutput],
) -> Result<Transaction> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let (coordinator, keypair, _) = node::start(config, false).await?;
        node::listen_addrs(&coordinator).await?;
        let options = TransactionSigning {
            purpose: Some("lotus-musig2 spend".into()),
            ..TransactionSigning::default()
        };
        let signed = coordinator
            .sign_transaction(tx, spent, keys, &keypair, &options)
            .await;
        coordinator.shutdown().await;
        Ok(signed
            .context("signing through the co-signers' nodes")?
            .transaction)
    })
}

fn broadcast(url: &str, raw: &[u8]) -> Result<TxId> {
    let client = ChronikClient::new(ChronikConfig::new(url)).context("--chronik")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(client.broadcast_tx(raw))
        .with_context(|| format!("broadcast through {url}"))
}
