//! `synthscale data prepare | inspect | mix`.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use synthscale_data::config::SourceKind;
use synthscale_data::{
    prepare, DataDir, DataMeta, Mixture, MixtureReport, MixtureSampler, PrepareEvent,
    PrepareOptions, PrepareOutcome, SamplerConfig,
};

use crate::manifest::LoadedManifest;
use crate::util::{parse_count, plain_logs, spinner, thousands, BadInput};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Tokenize a manifest's [data] sources into a data directory (train and validation
    /// shards per source). Written under a temporary name and renamed when complete; a
    /// directory already prepared from the same config and inputs is left as it is.
    Prepare(PrepareArgs),
    /// Print a data directory's sources, domains, token counts, splits and tokenizer.
    Inspect(InspectArgs),
    /// Show how a mixture would use each source over a token budget: realized shares,
    /// unique tokens and repeats (epochs), with a warning past data.max_repeats.
    Mix(MixArgs),
}

#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// The experiment manifest (TOML with a [data] section).
    pub manifest: PathBuf,
    /// Output directory [default: data.out_dir, else results/<manifest name>/data].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rebuild even if the directory is up to date or was prepared differently. Replaces
    /// only a data directory this command wrote (data.json, tokenizer.json, train/, val/ and
    /// nothing else); any other file or folder is refused (exit 2) and left untouched.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A data directory written by `synthscale data prepare`.
    pub dir: PathBuf,
    /// Print data.json instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct MixArgs {
    /// A data directory written by `synthscale data prepare`.
    pub dir: PathBuf,
    /// Source weights, e.g. `sotu=0.5,kjv=0.5` (must sum to 1).
    #[arg(long, conflicts_with = "shares", required_unless_present = "shares")]
    pub weights: Option<String>,
    /// Shares by kind, e.g. `natural=0.67,rephrased=0.33`, split over each kind's sources
    /// in proportion to their training tokens.
    #[arg(long)]
    pub shares: Option<String>,
    /// Training tokens, e.g. 10M.
    #[arg(long, value_parser = parse_count)]
    pub budget: u64,
    /// Sequences per batch.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Tokens per sequence [default: the data directory's data.seq_len].
    #[arg(long)]
    pub seq_len: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: DataCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DataCommand::Prepare(a) => run_prepare(&a),
        DataCommand::Inspect(a) => run_inspect(&a),
        DataCommand::Mix(a) => run_mix(&a),
    }
}

pub fn run_prepare(a: &PrepareArgs) -> anyhow::Result<ExitCode> {
    prepare_loaded(&LoadedManifest::load(&a.manifest)?, a)
}

/// `data prepare` of a manifest already loaded and checked (`synthscale run` loads it once).
pub fn prepare_loaded(m: &LoadedManifest, a: &PrepareArgs) -> anyhow::Result<ExitCode> {
    let out = a.out.clone().unwrap_or_else(|| m.data_dir());
    let pb = spinner();
    let plain = plain_logs();
    let started = Instant::now();
    let current = Cell::new(String::new());
    let on_event = |e: PrepareEvent| match e {
        PrepareEvent::TrainingTokenizer { bytes } => {
            let msg = format!("training BPE tokenizer on {:.1} MB", bytes as f64 / 1e6);
            if plain {
                eprintln!("{msg}");
            }
            pb.set_message(msg);
        }
        PrepareEvent::SourceStarted { name, index, total } => {
            current.set(format!("[{}/{total}] {name}", index + 1));
            pb.set_message(current_msg(&current, "reading"));
        }
        PrepareEvent::Progress { documents, bytes } => {
            pb.set_message(format!(
                "{}: {} documents, {:.1} MB",
                current_msg(&current, ""),
                thousands(documents),
                bytes as f64 / 1e6
            ));
        }
        PrepareEvent::SourceDone(s) => {
            let line = format!(
                "{}: {} documents, {} train + {} validation tokens ({:.1} s)",
                current_msg(&current, ""),
                thousands(s.train.documents + s.val.documents),
                thousands(s.train.tokens),
                thousands(s.val.tokens),
                started.elapsed().as_secs_f64()
            );
            if plain {
                eprintln!("{line}");
            } else {
                pb.println(line);
            }
        }
    };
    let opts = PrepareOptions {
        force: a.force,
        on_event: Some(&on_event),
    };
    let outcome = prepare(&m.manifest.data, &m.path, &out, &opts)
        .with_context(|| format!("preparing data from {}", m.path.display()))?;
    pb.finish_and_clear();
    let meta = outcome.meta();
    match &outcome {
        PrepareOutcome::Prepared(_) => println!(
            "prepared {} in {:.1} s",
            out.display(),
            started.elapsed().as_secs_f64()
        ),
        PrepareOutcome::UpToDate(_) => println!(
            "{} is up to date with {} (use --force to rebuild)",
            out.display(),
            m.path.display()
        ),
    }
    print_meta(&out, meta);
    Ok(ExitCode::SUCCESS)
}

fn current_msg(c: &Cell<String>, suffix: &str) -> String {
    let s = c.take();
    let msg = if suffix.is_empty() {
        s.clone()
    } else {
        format!("{s}: {suffix}")
    };
    c.set(s);
    msg
}

fn run_inspect(a: &InspectArgs) -> anyhow::Result<ExitCode> {
    let data = DataDir::open(&a.dir)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(data.meta())?);
    } else {
        print_meta(&a.dir, data.meta());
    }
    Ok(ExitCode::SUCCESS)
}

/// The tables `prepare` and `inspect` print.
fn print_meta(dir: &Path, meta: &DataMeta) {
    let t = &meta.tokenizer;
    println!();
    println!("data directory  {}", dir.display());
    println!(
        "tokenizer       {} (sha256 {}), vocabulary {}, end of text {:?} = {}, shards {}",
        t.origin,
        &t.hash[..16],
        thousands(t.vocab_size as u64),
        t.eot_token,
        t.eot_id,
        t.dtype
    );
    println!("seq_len         {}", meta.seq_len);
    println!();
    println!(
        "{:<16} {:<10} {:<14} {:>13} {:>13} {:>14} {:>12} {:>9}",
        "source",
        "kind",
        "domain",
        "train docs",
        "val docs",
        "train tokens",
        "val tokens",
        "text MB"
    );
    let (mut tt, mut tv, mut tb) = (0u64, 0u64, 0u64);
    for s in &meta.sources {
        let bytes = s.train.bytes + s.val.bytes;
        println!(
            "{:<16} {:<10} {:<14} {:>13} {:>13} {:>14} {:>12} {:>9.2}",
            s.name,
            s.kind.as_str(),
            s.domain,
            thousands(s.train.documents),
            thousands(s.val.documents),
            thousands(s.train.tokens),
            thousands(s.val.tokens),
            bytes as f64 / 1e6
        );
        tt += s.train.tokens;
        tv += s.val.tokens;
        tb += bytes;
    }
    println!(
        "{:<16} {:<10} {:<14} {:>13} {:>13} {:>14} {:>12} {:>9.2}",
        "total",
        "",
        "",
        "",
        "",
        thousands(tt),
        thousands(tv),
        tb as f64 / 1e6
    );
    println!();
    println!("validation domains:");
    for (domain, idx) in meta.domains() {
        let tokens: u64 = idx.iter().map(|&i| meta.sources[i].val.tokens).sum();
        let names: Vec<_> = idx.iter().map(|&i| meta.sources[i].name.as_str()).collect();
        println!(
            "  {:<14} {:>12} tokens  from {}",
            domain,
            thousands(tokens),
            names.join(", ")
        );
    }
}

/// Parses `a=0.5,b=0.5`.
fn parse_pairs(s: &str, flag: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            BadInput(format!(
                "--{flag}: {part:?} is not name=number (e.g. sotu=0.5)"
            ))
        })?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| BadInput(format!("--{flag}: {v:?} in {part:?} is not a number")))?;
        out.push((k.trim().to_string(), v));
    }
    Ok(out)
}

fn run_mix(a: &MixArgs) -> anyhow::Result<ExitCode> {
    let data = DataDir::open(&a.dir)?;
    let mixture = if let Some(w) = &a.weights {
        Mixture {
            weights: parse_pairs(w, "weights")?,
        }
    } else {
        let shares = a.shares.as_deref().unwrap_or_default();
        let mut by_kind = Vec::new();
        for (k, v) in parse_pairs(shares, "shares")? {
            let kind = SourceKind::ALL
                .into_iter()
                .find(|s| s.as_str() == k)
                .ok_or_else(|| {
                    BadInput(format!(
                        "--shares: {k:?} is not a kind (natural, rephrased, textbook)"
                    ))
                })?;
            by_kind.push((kind, v));
        }
        Mixture::from_kind_shares(data.meta(), &by_kind)?
    };
    let cfg = SamplerConfig {
        seq_len: a.seq_len.unwrap_or(data.meta().seq_len),
        batch_size: a.batch_size,
        token_budget: a.budget,
        seed: a.seed,
    };
    let sampler = MixtureSampler::new(&data, &mixture, cfg, Path::new("<command line>"))?;
    let report = sampler.report(data.meta().max_repeats);
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_mix(&report);
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_mix(r: &MixtureReport) {
    println!(
        "{} steps, {} sequences, {} tokens",
        thousands(r.steps),
        thousands(r.sequences),
        thousands(r.tokens)
    );
    println!(
        "{:<16} {:<10} {:>8} {:>8} {:>12} {:>14} {:>14} {:>8}",
        "source", "kind", "weight", "share", "sequences", "tokens", "unique tokens", "epochs"
    );
    for s in &r.sources {
        println!(
            "{:<16} {:<10} {:>8.4} {:>8.4} {:>12} {:>14} {:>14} {:>8.3}",
            s.name,
            s.kind.as_str(),
            s.weight,
            s.share,
            thousands(s.sequences),
            thousands(s.tokens),
            thousands(s.unique_tokens),
            s.epochs
        );
    }
}
