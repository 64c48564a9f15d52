//! The `synthscale` binary: argument parsing and glue between the stage crates.

mod bench;
mod bench_fit;
mod data_cmd;
mod fit_cmd;
mod manifest;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Scaling-law studies of synthetic pre-training data.
///
/// Exit codes: 0 success, 2 bad input (the message names the file, field and bound),
/// 1 internal failure.
#[derive(Parser, Debug)]
#[command(name = "synthscale", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prepare and inspect tokenized data: corpora → token shards → mixtures.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Fit a scaling law (rectified, power, chinchilla) to logged losses, with intervals,
    /// a held-out check and derived answers.
    Fit(Box<fit_cmd::FitArgs>),
    /// Measure throughput; prints one JSON line of figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(util::exit_code(&err))
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Data(cmd) => data_cmd::run(cmd),
        Command::Fit(args) => fit_cmd::run(*args),
        Command::Bench(cmd) => bench::run(cmd),
    }
}
