//! `synthscale synth <synth.toml>`: glue to the synth crate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use synthscale_synth::run::run_synth;
use synthscale_synth::SynthConfig;

/// Generate rephrased / textbook corpora with a local generator LM or an inference server.
///
/// Raw generations are appended to `<work_dir>/<task>.raw.jsonl` as they finish; a rerun
/// after a kill resumes where it stopped. The filtered corpus goes to each task's `output`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// The synth config (TOML; see experiments/synth-quickstart.toml).
    pub config: PathBuf,
    /// Generate nothing: filter the records already in the raw files into the outputs
    /// (safe while another run is still generating into them).
    #[arg(long)]
    pub filter_only: bool,
}

pub fn run(a: &SynthArgs) -> anyhow::Result<ExitCode> {
    let cfg = SynthConfig::load(&a.config)?;
    let mut log = |line: &str| eprintln!("[synth] {line}");
    let summaries = run_synth(&cfg, &a.config, !a.filter_only, &mut log)
        .with_context(|| format!("synth {}", a.config.display()))?;
    for s in summaries {
        println!("{}", serde_json::to_string(&s)?);
    }
    Ok(ExitCode::SUCCESS)
}
