//! `tx` (sighash, txid, decode, verify) and `address`: Lotus transactions and
//! XAddresses through `lotus-tx`. Any `Err` is bad input (exit code 2).

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args, Subcommand};
use lotus_musig2::core::PublicKey;
use lotus_musig2::tx::script::{self, ScriptKind};
use lotus_musig2::tx::{
    Address, Destination, Network, SighashType, TaprootKey, Transaction, TxOutput, VerifyError,
};
use serde_json::{Value, json};

use crate::commands::Outcome;

fn ok(output: impl Into<String>) -> Outcome {
    Outcome {
        output: output.into(),
        code: 0,
    }
}

fn hex_bytes(s: &str, what: &str) -> Result<Vec<u8>> {
    hex::decode(s.trim()).with_context(|| format!("{what}: not hex: {s:?}"))
}

fn hex_array<const N: usize>(s: &str, what: &str) -> Result<[u8; N]> {
    let bytes = hex_bytes(s, what)?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{what}: expected {N} bytes, got {len}"))
}

fn parse_tx(s: &str) -> Result<Transaction> {
    let raw = hex_bytes(s, "transaction")?;
    Transaction::parse(&raw).context("transaction")
}

/// `SCRIPT_HEX:AMOUNT` (amount in satoshis).
fn parse_spent(items: &[String]) -> Result<Vec<TxOutput>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let what = format!("--spent #{} ({item:?})", i + 1);
            let (script, amount) = item
                .rsplit_once(':')
                .with_context(|| format!("{what}: expected SCRIPT_HEX:AMOUNT"))?;
            let script = hex_bytes(script, &what)?;
            let amount: u64 = amount
                .trim()
                .parse()
                .with_context(|| format!("{what}: amount is not a number of satoshis"))?;
            Ok(TxOutput::new(amount, script))
        })
        .collect()
}

fn check_spent_count(tx: &Transaction, spent: &[TxOutput]) -> Result<()> {
    if spent.len() != tx.inputs.len() {
        bail!(
            "{} --spent given for {} inputs (one per input, in input order)",
            spent.len(),
            tx.inputs.len()
        );
    }
    Ok(())
}

/// Decimal or `0x` hex, one byte.
fn parse_sighash_type(s: &str) -> Result<SighashType> {
    let s = s.trim();
    let value = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => s.parse::<u8>(),
    }
    .with_context(|| format!("--sighash-type: not a byte (decimal or 0x hex): {s:?}"))?;
    Ok(SighashType::from_u8(value))
}

/// Lotus transactions.
#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Print the 32-byte signature hash of one input (lowercase hex, the bytes that are signed).
    Sighash(SighashArgs),
    /// Print the txid (display order).
    Txid(TxidArgs),
    /// Print the transaction as JSON.
    Decode(DecodeArgs),
    /// Verify every input's signature: prints `valid` (exit 0) or `invalid: input I: why` (exit 1).
    Verify(TxVerifyArgs),
}

#[derive(Debug, Args)]
pub struct SighashArgs {
    /// The transaction, hex.
    #[arg(long, value_name = "HEX")]
    tx: String,
    /// The output each input spends, `SCRIPT_HEX:AMOUNT` (satoshis), one per input, in order.
    #[arg(long, required = true, value_name = "SCRIPT_HEX:AMOUNT")]
    spent: Vec<String>,
    /// The input index.
    #[arg(long, value_name = "I")]
    input: usize,
    /// The hash type, decimal or 0x hex (e.g. 0x41 ALL|FORKID, 0x61 ALL|LOTUS).
    #[arg(long, value_name = "T")]
    sighash_type: String,
}

#[derive(Debug, Args)]
pub struct TxidArgs {
    /// The transaction, hex.
    #[arg(value_name = "HEX")]
    tx: String,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The transaction, hex.
    #[arg(value_name = "HEX")]
    tx: String,
}

#[derive(Debug, Args)]
pub struct TxVerifyArgs {
    /// The transaction, hex.
    #[arg(long, value_name = "HEX")]
    tx: String,
    /// The output each input spends, `SCRIPT_HEX:AMOUNT` (satoshis), one per input, in order.
    #[arg(long, required = true, value_name = "SCRIPT_HEX:AMOUNT")]
    spent: Vec<String>,
}

pub fn tx(command: &TxCommand) -> Result<Outcome> {
    match command {
        TxCommand::Sighash(args) => sighash(args),
        TxCommand::Txid(args) => Ok(ok(parse_tx(&args.tx)?.txid().to_string())),
        TxCommand::Decode(args) => Ok(ok(decode(&parse_tx(&args.tx)?).to_string())),
        TxCommand::Verify(args) => verify(args),
    }
}

fn sighash(args: &SighashArgs) -> Result<Outcome> {
    let tx = parse_tx(&args.tx)?;
    let spent = parse_spent(&args.spent)?;
    check_spent_count(&tx, &spent)?;
    let sighash_type = parse_sighash_type(&args.sighash_type)?;
    let sighash = tx
        .sighash(args.input, &spent, sighash_type)
        .with_context(|| format!("input {}", args.input))?;
    Ok(ok(sighash.to_string()))
}

fn verify(args: &TxVerifyArgs) -> Result<Outcome> {
    let tx = parse_tx(&args.tx)?;
    let spent = parse_spent(&args.spent)?;
    check_spent_count(&tx, &spent)?;
    Ok(match tx.verify(&spent) {
        Ok(()) => ok("valid"),
        Err(VerifyError::Input { index, reason }) => Outcome {
            output: format!("invalid: input {index}: {reason}"),
            code: 1,
        },
        Err(other) => bail!("{other}"),
    })
}

/// The fields of the vectors' JSON: `prevout_txid`, `script_pubkey_hex`, …
fn decode(tx: &Transaction) -> Value {
    let inputs: Vec<Value> = tx
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            json!({
                "index": index,
                "prevout_txid": input.prev_out.txid.to_string(),
                "prevout_index": input.prev_out.vout,
                "script_sig_hex": hex::encode(&input.script_sig),
                "sequence": input.sequence,
            })
        })
        .collect();
    let outputs: Vec<Value> = tx
        .outputs
        .iter()
        .enumerate()
        .map(|(index, output)| {
            let kind = ScriptKind::of(&output.script);
            let mut out = json!({
                "index": index,
                "amount": output.value,
                "script_pubkey_hex": hex::encode(&output.script),
                "type": kind.name(),
            });
            if let ScriptKind::P2tr {
                state: Some(state), ..
            } = kind
            {
                out["state"] = json!(hex::encode(state));
            }
            if let Some(data) = script::op_return_data(&output.script) {
                out["data_hex"] = json!(hex::encode(data));
            }
            if let Ok(address) = Address::from_script(Network::Livenet, &output.script) {
                out["address"] = json!(address.to_string());
            }
            out
        })
        .collect();
    json!({
        "txid": tx.txid().to_string(),
        "hash": tx.hash().to_string(),
        "version": tx.version,
        "locktime": tx.lock_time,
        "size": tx.serialize().len(),
        "inputs": inputs,
        "outputs": outputs,
    })
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["p2pkh", "p2tr", "decode"])))]
pub struct AddressArgs {
    /// The P2PKH address of a 33-byte compressed public key (hex).
    #[arg(long, value_name = "PUBKEY33")]
    p2pkh: Option<String>,
    /// The Taproot address of an internal key (33-byte hex; a MuSig2 aggregate key from `key-agg`).
    #[arg(long, value_name = "INTERNAL_PUBKEY33")]
    p2tr: Option<String>,
    /// Taproot merkle root (32-byte hex); 32 zero bytes (key path only) if absent.
    #[arg(long, requires = "p2tr", value_name = "HEX32")]
    merkle_root: Option<String>,
    /// Taproot state (32-byte hex). It is in the script, not in the address.
    #[arg(long, requires = "p2tr", value_name = "HEX32")]
    state: Option<String>,
    /// livenet, testnet or regtest.
    #[arg(long, default_value = "livenet", conflicts_with = "decode")]
    network: String,
    /// Decode an XAddress: prints JSON with `network`, `type` and `script_pubkey`.
    #[arg(long, value_name = "ADDR")]
    decode: Option<String>,
}

pub fn address(args: &AddressArgs) -> Result<Outcome> {
    if let Some(text) = &args.decode {
        let address: Address = text
            .trim()
            .parse()
            .with_context(|| format!("address {text:?}"))?;
        let mut out = json!({
            "network": address.network.name(),
            "type": address.destination.name(),
            "script_pubkey": hex::encode(address.script_pubkey()),
        });
        match address.destination {
            Destination::P2pkh(hash) | Destination::P2sh(hash) => {
                out["hash160"] = json!(hex::encode(hash));
            }
            Destination::P2tr(commitment) => {
                out["commitment"] = json!(commitment.to_string());
            }
            _ => {}
        }
        return Ok(ok(out.to_string()));
    }
    let network: Network = args.network.parse().context("--network")?;
    let pubkey = |s: &str, what: &str| -> Result<PublicKey> {
        PublicKey::from_bytes(&hex_array::<33>(s, what)?).with_context(|| what.to_string())
    };
    let address = match (&args.p2pkh, &args.p2tr) {
        (Some(key), None) => Address::p2pkh(network, &pubkey(key, "--p2pkh")?),
        (None, Some(key)) => {
            let root = match &args.merkle_root {
                Some(r) => hex_array::<32>(r, "--merkle-root")?,
                None => [0u8; 32],
            };
            if let Some(state) = &args.state {
                hex_array::<32>(state, "--state")?;
            }
            let tap = TaprootKey::new(&pubkey(key, "--p2tr")?, &root).context("--p2tr")?;
            Address::new(network, Destination::P2tr(tap.commitment()))
        }
        _ => bail!("give exactly one of --p2pkh, --p2tr, --decode"),
    };
    Ok(ok(address.to_string()))
}
