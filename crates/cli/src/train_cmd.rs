//! `synthscale train` and `synthscale export`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use synthscale_data::datadir::{read_meta, tokenizer_file};
use synthscale_data::DataError;
use synthscale_model::export::not_an_export_dir;
use synthscale_model::{export_hf, ModelError};
use synthscale_train::trainer::CONFIG;
use synthscale_train::{train, Event, Outcome, ResolvedConfig, TrainOptions, EXIT_REQUEUE};

use crate::util::{plain_logs, stop_on_signals, thousands};

/// Train one model on one mixture: `config.toml` (resolved), `metrics.jsonl`,
/// `checkpoint/` and `DONE` in the run directory.
///
/// Relaunching resumes from the last checkpoint with exactly the metrics an uninterrupted
/// run logs; a run marked DONE is left alone. SIGTERM, SIGUSR1 or SIGINT make it write a
/// checkpoint at the next step boundary and exit with code 75 (EX_TEMPFAIL), on which a
/// scheduler can requeue. A checkpoint is verified before the run resumes from it (every
/// file against its sha256, state.json against the config); the one before is kept as
/// checkpoint.prev/. One process trains a run directory at a time: it holds an OS lock on
/// `run.lock` there for as long as it lives, and a second `train` of the same directory
/// exits 73 naming the holder. Exit codes: 0 done, 75 stopped to be resumed, 73 the run
/// directory is in use by another live process (nothing was done), 2 bad config or data,
/// 1 failure (a non-finite loss keeps the last good checkpoint; a damaged checkpoint is
/// refused, naming the file and field and how to resume from checkpoint.prev/).
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The run config (TOML: [model], [data], [optim], [eval], [checkpoint]).
    #[arg(long)]
    pub config: PathBuf,
    /// The run directory.
    #[arg(long)]
    pub run_dir: PathBuf,
}

/// Export a run's latest checkpoint in Hugging Face's Llama layout (model.safetensors,
/// config.json, tokenizer.json), which transformers and candle-transformers load. The
/// checkpoint is verified against its checksums, and the tokenizer against the hash the
/// data was prepared with.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run directory written by `synthscale train`.
    pub run_dir: PathBuf,
    /// Output directory: new, empty, or an earlier export, which is replaced; anything else
    /// is refused (exit 2) and left untouched.
    #[arg(short, long)]
    pub out: PathBuf,
}

pub fn run_train(a: &TrainArgs) -> anyhow::Result<ExitCode> {
    let stop = stop_on_signals()?;
    let plain = plain_logs();
    let pb = if plain {
        ProgressBar::hidden()
    } else {
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .expect("valid template"),
        );
        pb.enable_steady_tick(Duration::from_millis(250));
        pb
    };
    let steps = std::cell::Cell::new(0u64);
    let on_event = |e: Event| match e {
        Event::Start {
            config,
            step,
            steps: n,
            params,
            init_from,
        } => {
            steps.set(n);
            pb.set_length(n);
            pb.set_position(step);
            let line = format!(
                "training {} parameters ({} non-embedding) on {} tokens: {n} steps of {} tokens{}",
                thousands(params),
                thousands(config.model.non_embedding_params()),
                thousands(config.token_budget),
                config.optim.batch_tokens,
                match &config.branch {
                    // A ladder branch starts where its trunk's checkpoint stands.
                    Some(b) if step == b.step => format!(
                        ", from its trunk's checkpoint at step {step} ({})",
                        b.trunk.display()
                    ),
                    _ if step > 0 => format!(", resuming at step {step}"),
                    _ => match init_from {
                        // Continued pre-training: the source's weights, a fresh optimizer.
                        Some(r) => format!(
                            ", from the weights of {}{} (sha256 {})",
                            r.weights.display(),
                            r.step.map_or(String::new(), |s| format!(" at step {s}")),
                            r.sha256
                        ),
                        None => String::new(),
                    },
                }
            );
            if plain {
                eprintln!("{line}");
            } else {
                pb.println(line);
            }
        }
        Event::Step(m) => {
            pb.set_position(m.step);
            let msg = format!(
                "loss {:.4}  lr {:.2e}  {:.0} tok/s",
                m.train_loss.unwrap_or(f64::NAN),
                m.lr.unwrap_or(f64::NAN),
                m.tokens_per_s.unwrap_or(0.0)
            );
            // Plain logs: about twenty lines per run, and the last step.
            let every = (steps.get() / 20).max(1);
            if plain && (m.step % every == 0 || m.step == steps.get()) {
                eprintln!("step {}/{}  {msg}", m.step, steps.get());
            }
            pb.set_message(msg);
        }
        Event::Eval(m) => {
            let line = format!(
                "step {}: val_loss[{}] = {:.4}",
                m.step,
                m.eval_domain.as_deref().unwrap_or("?"),
                m.val_loss.unwrap_or(f64::NAN)
            );
            if plain {
                eprintln!("{line}");
            } else {
                pb.println(line);
            }
        }
        Event::Checkpoint { step } => {
            if plain {
                eprintln!("checkpoint at step {step}");
            }
        }
    };
    let opts = TrainOptions {
        on_event: Some(&on_event),
        stop: Some(&stop),
    };
    let outcome = train(&a.config, &a.run_dir, &opts)
        .with_context(|| format!("training {}", a.run_dir.display()))?;
    pb.finish_and_clear();
    match outcome {
        Outcome::Done { steps } => {
            println!("{}: done after {steps} steps", a.run_dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Outcome::AlreadyDone => {
            println!("{}: already done", a.run_dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Stopped { step } => {
            eprintln!(
                "{}: stopped by a signal; checkpoint at step {step}; run the same command to resume",
                a.run_dir.display()
            );
            Ok(ExitCode::from(EXIT_REQUEUE))
        }
    }
}

pub fn run_export(a: &ExportArgs) -> anyhow::Result<ExitCode> {
    let cfg_path = a.run_dir.join(CONFIG);
    let text = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("{}: not a run directory", a.run_dir.display()))?;
    let cfg: ResolvedConfig =
        toml::from_str(&text).with_context(|| format!("reading {}", cfg_path.display()))?;
    let ck = synthscale_train::checkpoint::find(&a.run_dir)
        .with_context(|| format!("{}: no checkpoint yet", a.run_dir.display()))?;
    // The output first: refused before any work when it holds anything but an export.
    if a.out.symlink_metadata().is_ok() {
        if let Some(reason) = not_an_export_dir(&a.out) {
            return Err(ModelError::NotExportDir {
                path: a.out.clone(),
                reason,
            }
            .into());
        }
    }
    // The tokenizer the run was trained with, unchanged since (its sha256 is the hash that
    // data.json and the run's config record); the shards are not needed.
    let meta = read_meta(&cfg.data_dir)?;
    if meta.tokenizer.hash != cfg.tokenizer_hash {
        return Err(DataError::TokenizerMismatch {
            path: cfg.data_dir.clone(),
            expected: cfg.tokenizer_hash.clone(),
            found: meta.tokenizer.hash,
        }
        .into());
    }
    let tok = tokenizer_file(&cfg.data_dir, &meta)?;
    let (model, _, state) =
        synthscale_train::checkpoint::load(&ck, &cfg, &candle_core::Device::Cpu)?;
    export_hf(&model, &a.out, Some(&tok), Some(meta.tokenizer.eot_id))?;
    println!(
        "exported step {} of {} to {}",
        state.step,
        a.run_dir.display(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
