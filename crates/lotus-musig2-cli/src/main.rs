//! `lotus-musig2`: Lotus MuSig2 from the command line.
//!
//! Exit codes: 0 success, 1 a negative answer (`verify` or `tx verify` says `invalid`),
//! 2 bad input (unparseable hex, wrong lengths, invalid keys).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod daemon;
mod demo;
mod node;
mod rpc;
mod spend;
mod tx;

/// Lotus MuSig2: key aggregation, signing and verification, compatible with lotus-sdk.
#[derive(Debug, Parser)]
#[command(name = "lotus-musig2", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the Lotus MuSig2 aggregate key (33-byte compressed hex) of the given keys.
    KeyAgg(commands::KeyAggArgs),
    /// Run a complete N-of-N Lotus MuSig2 signing in this process and print JSON.
    SignLocal(commands::SignLocalArgs),
    /// Verify a Lotus Schnorr signature: prints `valid` (exit 0) or `invalid` (exit 1).
    Verify(commands::VerifyArgs),
    /// Sign a 32-byte message with Lotus Schnorr (lotus-sdk's deterministic nonce).
    SchnorrSign(commands::SchnorrSignArgs),
    /// Run one long-lived node from a TOML configuration (several processes sign together);
    /// with `data_dir` and `[api]`, a signer daemon driven over HTTP (docs/API.md).
    Node(node::NodeArgs),
    /// Talk to a running signer daemon's HTTP API and print its JSON answers.
    Rpc(rpc::RpcArgs),
    /// Elect the coordinator of a signer set (lotus-sdk's four methods), as JSON.
    Elect(commands::ElectArgs),
    /// Start N nodes on 127.0.0.1 that find each other through the DHT and sign one message.
    Demo(demo::DemoArgs),
    /// Lotus transactions: sighash, txid, decode, verify.
    #[command(subcommand)]
    Tx(tx::TxCommand),
    /// Print the XAddress of a P2PKH key or a Taproot internal key, or decode one as JSON.
    Address(tx::AddressArgs),
    /// Spend UTXOs of a MuSig2 group's Taproot address: build, sign in-process
    /// (`--local`), verify, and print (or broadcast with `--chronik`) as JSON.
    Spend(spend::SpendArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs (RUST_LOG, default warn) go to stderr; results go to stdout.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let result = match cli.command {
        Command::KeyAgg(args) => commands::key_agg(&args),
        Command::SignLocal(args) => commands::sign_local(&args),
        Command::Verify(args) => commands::verify(&args),
        Command::SchnorrSign(args) => commands::schnorr_sign(&args),
        Command::Demo(args) => demo::demo(&args),
        Command::Elect(args) => commands::elect(&args),
        Command::Node(args) => node::node(&args),
        Command::Rpc(args) => rpc::rpc(&args),
        Command::Tx(command) => tx::tx(&command),
        Command::Address(args) => tx::address(&args),
        Command::Spend(args) => spend::spend(&args),
    };
    match result {
        Ok(outcome) => {
            println!("{}", outcome.output);
            ExitCode::from(outcome.code)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
