//! `mancard`: one binary for every party of ManCard.
//!
//! Each party's subcommands live in their own module; this file only wires them.

mod backend;
mod bench;
mod demo;
mod gateway_sandbox;
mod inspect;
mod lang;
mod load;
mod phone;
mod providers;
mod validator;
mod wallet;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mancard",
    version,
    about = "ManCard: a city transit card on the rider's phone (wallet, validator, backend)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Narrate a rider's whole day against an in-process backend and validator, checking the books.
    Demo(demo::DemoArgs),
    /// Measure every headline figure beside its physical limit, in one run.
    Bench(bench::BenchArgs),
    /// Drive a sandbox backend with signed batch uploads, syncs and top-ups (goose), report
    /// throughput and latency per request kind, and check the books (exit 1 if lost or doubled).
    Load(load::LoadArgs),
    /// Decode any ManCard message (hex or pass text) and print its fields.
    Inspect(inspect::InspectArgs),
    /// The rider's wallet: status, history, QR pass, APDU debugging.
    Wallet(wallet::WalletArgs),
    /// The validator on the bus or gate.
    Validator(validator::ValidatorArgs),
    /// The issuer's reference backend.
    Backend(backend::BackendArgs),
    /// Present a wallet as a contactless card on a vsmartcard virtual reader (PC/SC).
    Phone(phone::PhoneArgs),
    /// The sandbox payment gateway (Shaparak-style, with failure switches) as its own process.
    GatewaySandbox(gateway_sandbox::GatewaySandboxArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Load(a) => load::run(a),
        Command::Wallet(a) => wallet::run(a),
        Command::Validator(a) => validator::run(a),
        Command::Backend(a) => backend::run(a),
        Command::Phone(a) => phone::run(a),
        Command::GatewaySandbox(a) => gateway_sandbox::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Errors of the command line: a human message, exit status 2.
pub type CliResult = Result<ExitCode, Box<dyn std::error::Error>>;
