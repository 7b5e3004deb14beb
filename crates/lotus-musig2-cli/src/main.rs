//! `lotus-musig2`: Lotus MuSig2 from the command line.
//!
//! Exit codes: 0 success, 1 a negative answer (`verify` says `invalid`),
//! 2 bad input (unparseable hex, wrong lengths, invalid keys).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::KeyAgg(args) => commands::key_agg(&args),
        Command::SignLocal(args) => commands::sign_local(&args),
        Command::Verify(args) => commands::verify(&args),
        Command::SchnorrSign(args) => commands::schnorr_sign(&args),
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
