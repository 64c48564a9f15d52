//! `synthscale train` and `synthscale export`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use synthscale_data::datadir::{read_meta, tokenizer_file};
use synthscale_data::DataError;
use synthscale_model::export::{not_an_export_dir, ExportFiles};
use synthscale_model::{export_hf, ModelError};
use synthscale_train::dist::{self, World};
use synthscale_train::trainer::CONFIG;
use synthscale_train::{
    train, Event, Outcome, ResolvedConfig, RunConfig, TrainError, TrainOptions, EXIT_REQUEUE,
};

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
///
/// Data-parallel (a binary built with `--features mpi`): `--nproc N` starts N ranks on this
/// machine through `mpirun`; `mpirun -np N synthscale train …` and `srun --mpi=pmix` do the
/// same across machines. Each step's micro-batches are split over the ranks and their
/// gradients summed, so the run is the single-process run with the same global batch. Rank
/// 0 logs and checkpoints; a signal to any rank stops all of them at the same step.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The run config (TOML: [model], [data], [optim], [eval], [checkpoint]).
    #[arg(long)]
    pub config: PathBuf,
    /// The run directory.
    #[arg(long)]
    pub run_dir: PathBuf,
    /// Data-parallel ranks to start on this machine (NCCL ranks directly, MPI ranks
    /// through mpirun); 1: this process.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub nproc: u32,
    /// Write TensorBoard event files of the run's metrics into DIR (a run config's
    /// `tensorboard = true` writes them into `<run dir>/tensorboard`).
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
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
    let world = World::from_env().map_err(|message| TrainError::World { message })?;
    if a.nproc > 1 {
        if world.size > 1 {
            return Err(TrainError::World {
                message: format!(
                    "--nproc {} given to rank {} of {} already started by a launcher; give                      --nproc or start the ranks with mpirun/srun, not both",
                    a.nproc, world.rank, world.size
                ),
            }
            .into());
        }
        return launch_ranks(a);
    }
    let device = RunConfig::load(&a.config)?.device;
    let comm = dist::connect(world, device, &a.run_dir)?;
    let stop = stop_on_signals()?;
    let plain = plain_logs() || !world.is_root();
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
        dist: Some(&*comm),
        tensorboard: a.tensorboard.as_deref(),
    };
    let outcome = train(&a.config, &a.run_dir, &opts).with_context(|| {
        if world.size > 1 {
            format!(
                "training {} (rank {} of {})",
                a.run_dir.display(),
                world.rank,
                world.size
            )
        } else {
            format!("training {}", a.run_dir.display())
        }
    })?;
    pb.finish_and_clear();
    if !world.is_root() {
        return Ok(match outcome {
            Outcome::Stopped { .. } => ExitCode::from(EXIT_REQUEUE),
            _ => ExitCode::SUCCESS,
        });
    }
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

/// `--nproc N`: this command again as N ranks on this machine, through the engine the
/// run's device uses ([`dist::engine_for`]): NCCL ranks are started here
/// ([`spawn_ranks`]), MPI ranks under `mpirun`.
fn launch_ranks(a: &TrainArgs) -> anyhow::Result<ExitCode> {
    let device = RunConfig::load(&a.config)?.device;
    match dist::engine_for(device) {
        Some("nccl") => spawn_ranks(a),
        Some(_) => mpirun_ranks(a),
        None => Err(TrainError::World {
            message: format!(
                "--nproc {} needs a binary built with --features {}",
                a.nproc,
                match device {
                    synthscale_train::config::DeviceSpec::Cuda =>
                        "cuda,nccl (libnccl from \
                         scripts/setup-cuda.sh)",
                    synthscale_train::config::DeviceSpec::Cpu =>
                        "mpi (OpenMPI: apt-get install \
                         libopenmpi-dev openmpi-bin libclang-dev)",
                }
            ),
        }
        .into()),
    }
}

/// The variables by which a launcher outside this one would give a child another rank
/// than the one [`spawn_ranks`] gives it (they are read before `RANK`).
const OTHER_LAUNCHERS: [&str; 6] = [
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "SLURM_PROCID",
    "SLURM_STEP_NUM_TASKS",
    "SLURM_LOCALID",
];

/// `--tensorboard DIR` again for the ranks a launcher starts.
fn tensorboard_args(a: &TrainArgs) -> Vec<std::ffi::OsString> {
    match &a.tensorboard {
        Some(dir) => vec!["--tensorboard".into(), dir.clone().into_os_string()],
        None => Vec::new(),
    }
}

/// The exit code of a launch from its ranks' codes (None: killed by a signal): the first
/// failure's, else 75 when any rank stopped to be resumed, else 0.
fn launch_exit(codes: &[Option<i32>]) -> u8 {
    if let Some(c) = codes.iter().find(|c| !matches!(c, Some(0) | Some(75))) {
        return c.map_or(1, |c| c.clamp(1, 255) as u8);
    }
    if codes.contains(&Some(75)) {
        EXIT_REQUEUE
    } else {
        0
    }
}

/// NCCL ranks on this machine, torchrun-style: N children with `RANK`, `WORLD_SIZE`,
/// `LOCAL_RANK` (rank r takes GPU r of those visible) and one `SYNTHSCALE_LAUNCH_ID`, each
/// with an equal share of the cores. SIGTERM, SIGUSR1 or SIGINT here go to every rank as
/// SIGUSR1 (each checkpoints at the same step and exits 75). A rank that fails makes the
/// others get SIGTERM, and SIGKILL 30 s later (a rank blocked in a collective whose peer is
/// gone never reaches a step boundary); if this process dies, every rank gets SIGTERM.
fn spawn_ranks(a: &TrainArgs) -> anyhow::Result<ExitCode> {
    use std::sync::atomic::Ordering;
    let n = a.nproc as usize;
    let exe = std::env::current_exe().context("locating this synthscale binary")?;
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let token = format!("nproc-{}-{}", std::process::id(), since_epoch.as_nanos());
    let threads = std::env::var_os("RAYON_NUM_THREADS").is_none().then(|| {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        (cores / n).max(1).to_string()
    });
    let stop = stop_on_signals()?;
    let mut children = Vec::with_capacity(n);
    for r in 0..n {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("train")
            .arg("--config")
            .arg(&a.config)
            .arg("--run-dir")
            .arg(&a.run_dir)
            .args(tensorboard_args(a))
            .env("RANK", r.to_string())
            .env("WORLD_SIZE", n.to_string())
            .env("LOCAL_RANK", r.to_string())
            .env("SYNTHSCALE_LAUNCH_ID", &token);
        for v in OTHER_LAUNCHERS {
            cmd.env_remove(v);
        }
        if let Some(t) = &threads {
            cmd.env("RAYON_NUM_THREADS", t);
        }
        synthscale_sweep::child::die_with_parent(&mut cmd);
        children.push(
            cmd.spawn()
                .with_context(|| format!("starting rank {r} of {n}"))?,
        );
    }
    let mut codes: Vec<Option<Option<i32>>> = vec![None; n];
    let (mut signalled, mut kill_at) = (false, None);
    while codes.iter().any(Option::is_none) {
        for (child, code) in children.iter_mut().zip(codes.iter_mut()) {
            if code.is_none() {
                if let Some(st) = child.try_wait().context("waiting for a rank")? {
                    *code = Some(st.code());
                }
            }
        }
        let live = || {
            children
                .iter()
                .zip(&codes)
                .filter(|(_, c)| c.is_none())
                .map(|(ch, _)| ch.id() as libc::pid_t)
        };
        let failed = codes
            .iter()
            .flatten()
            .any(|c| !matches!(c, Some(0) | Some(75)));
        if failed && kill_at.is_none() {
            for pid in live() {
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            kill_at = Some(std::time::Instant::now() + Duration::from_secs(30));
        } else if !signalled && stop.load(Ordering::SeqCst) {
            for pid in live() {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGUSR1) };
            }
            signalled = true;
        }
        if kill_at.is_some_and(|t| std::time::Instant::now() > t) {
            for pid in live() {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let codes: Vec<Option<i32>> = codes.into_iter().flatten().collect();
    Ok(ExitCode::from(launch_exit(&codes)))
}

/// MPI ranks under `mpirun` on this machine, each with an equal share of the cores;
/// returns mpirun's exit code (75 when the ranks stopped to be resumed). SIGTERM, SIGUSR1
/// or SIGINT here become SIGUSR1 to mpirun, which passes it to every rank (each checkpoints
/// at the same step and exits 75); if this process dies, mpirun gets SIGTERM.
fn mpirun_ranks(a: &TrainArgs) -> anyhow::Result<ExitCode> {
    let n = a.nproc as usize;
    let exe = std::env::current_exe().context("locating this synthscale binary")?;
    let mut cmd = std::process::Command::new("mpirun");
    cmd.args([
        "-np",
        &n.to_string(),
        "--bind-to",
        "none",
        "--oversubscribe",
    ]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // OpenMPI refuses root unless told (containers and CI run as root).
        cmd.arg("--allow-run-as-root");
    }
    cmd.arg(exe)
        .arg("train")
        .arg("--config")
        .arg(&a.config)
        .arg("--run-dir")
        .arg(&a.run_dir)
        .args(tensorboard_args(a));
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        cmd.env("RAYON_NUM_THREADS", (cores / n).max(1).to_string());
    }
    // Single-copy shared memory through ptrace is refused in most containers.
    if std::env::var_os("OMPI_MCA_btl_vader_single_copy_mechanism").is_none() {
        cmd.env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    }
    synthscale_sweep::child::die_with_parent(&mut cmd);
    let stop = stop_on_signals()?;
    let mut child = cmd.spawn().map_err(|e| TrainError::World {
        message: format!(
            "cannot start mpirun for --nproc {n}: {e} (is OpenMPI's openmpi-bin installed?)"
        ),
    })?;
    let status =
        synthscale_sweep::child::wait_forwarding_stop(&mut child, Some(&*stop), libc::SIGUSR1)
            .context("waiting for mpirun")?;
    Ok(ExitCode::from(
        status.code().map_or(1, |c| c.clamp(0, 255) as u8),
    ))
}

pub fn run_export(a: &ExportArgs) -> anyhow::Result<ExitCode> {
    let cfg_path = a.run_dir.join(CONFIG);
    if !cfg_path.is_file() {
        return Err(crate::util::BadInput(format!(
            "{}: not a run directory (no {CONFIG}; `synthscale train` writes one)",
            a.run_dir.display()
        ))
        .into());
    }
    let text = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("reading {}", cfg_path.display()))?;
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
    let metrics = synthscale_train::metrics::read(&a.run_dir)?;
    let card = model_card(
        &a.run_dir,
        &cfg,
        &metrics,
        state.step,
        &meta.tokenizer.eot_token,
    );
    let files = ExportFiles {
        tokenizer: Some(&tok),
        eot: Some((meta.tokenizer.eot_id, &meta.tokenizer.eot_token)),
        model_card: Some(&card),
        tokenizer_sha256: Some(&meta.tokenizer.hash),
    };
    export_hf(&model, &a.out, &files)?;
    println!(
        "exported step {} of {} to {}",
        state.step,
        a.run_dir.display(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The export's `README.md`: what the model is, what it was trained on and to which
/// losses, and where it came from (the synthscale version and the run).
fn model_card(
    run_dir: &std::path::Path,
    cfg: &ResolvedConfig,
    metrics: &[synthscale_train::metrics::Metric],
    step: u64,
    eot: &str,
) -> String {
    let run = run_dir.file_name().map_or_else(
        || run_dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let m = &cfg.model;
    let steps = cfg.steps();
    let mut card = format!(
        "---\nlibrary_name: transformers\ntags:\n- synthscale\n- llama\n---\n\n# {run}\n\n\
         A Llama-architecture decoder of {} parameters ({} without embeddings), trained by \
         synthscale {} as run `{run}` and exported at step {step} of {steps} ({} of its {} \
         training tokens).\n\n## Data\n\n| source | share of the tokens |\n|---|---:|\n",
        thousands(m.params()),
        thousands(m.non_embedding_params()),
        env!("CARGO_PKG_VERSION"),
        thousands(step * cfg.optim.batch_tokens),
        thousands(cfg.token_budget),
    );
    for (source, w) in &cfg.mixture {
        card.push_str(&format!("| {source} | {:.4} |\n", w));
    }
    card.push_str(&format!(
        "\nSequences of {} tokens. Every training document started with `{eot}`, and this \
         export's tokenizer adds it in front of every text it encodes (its post-processor; \
         `add_special_tokens=False` leaves it out). `{eot}` is also the end-of-sequence and \
         padding token.\n\n## Model\n\n| d_model | layers | heads | kv heads | d_ff | \
         vocabulary | tied embeddings |\n|---:|---:|---:|---:|---:|---:|---|\n| {} | {} | {} \
         | {} | {} | {} | {} |\n\n## Losses (nats per token)\n\n",
        cfg.seq_len,
        m.d_model,
        m.n_layers,
        m.n_heads,
        m.n_kv_heads,
        m.d_ff,
        m.vocab_size,
        m.tie_embeddings
    ));
    let kept: Vec<_> = metrics.iter().filter(|x| x.step <= step).collect();
    let mut last_val = std::collections::BTreeMap::new();
    for x in &kept {
        if let (Some(d), Some(v)) = (&x.eval_domain, x.val_loss) {
            last_val.insert(d.clone(), (x.step, v));
        }
    }
    if last_val.is_empty() {
        card.push_str("No validation loss was logged up to this step.\n");
    } else {
        card.push_str("| validation domain | step | loss |\n|---|---:|---:|\n");
        for (d, (s, v)) in &last_val {
            card.push_str(&format!("| {d} | {s} | {v:.4} |\n"));
        }
    }
    if let Some(x) = kept.iter().rev().find(|x| x.train_loss.is_some()) {
        card.push_str(&format!(
            "\nTraining loss at step {}: {:.4}.\n",
            x.step,
            x.train_loss.unwrap_or(f64::NAN)
        ));
    }
    card.push_str(&format!(
        "\n## Training\n\nAdamW, peak learning rate {:e}, {} schedule, {} tokens a step, \
         weight decay {}, seed {}. The run's own `config.toml` holds every setting.\n",
        cfg.optim.lr,
        serde_json::to_value(cfg.optim.schedule)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        thousands(cfg.optim.batch_tokens),
        cfg.optim.weight_decay,
        cfg.seed
    ));
    card
}

#[cfg(test)]
mod tests {
    use super::launch_exit;

    #[test]
    fn a_launch_exits_with_its_first_failure_else_requeue_else_success() {
        assert_eq!(launch_exit(&[Some(0), Some(0)]), 0);
        assert_eq!(launch_exit(&[Some(75), Some(0)]), 75);
        assert_eq!(launch_exit(&[Some(75), Some(2)]), 2);
        assert_eq!(launch_exit(&[None, Some(0)]), 1); // killed by a signal
        assert_eq!(launch_exit(&[Some(0), Some(101)]), 101);
    }
}
