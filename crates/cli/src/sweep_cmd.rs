//! `synthscale sweep plan | launch | status | collect` (and the hidden `task` that Slurm
//! array tasks run).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use synthscale_data::config::SourceKind;
use synthscale_sweep::data_check::check_data_matches;
use synthscale_sweep::{
    collect, launch_local, launch_slurm, run_task, status, LocalOptions, RunOutcome, State, Sweep,
    SweepEvent,
};

use crate::manifest::LoadedManifest;
use crate::util::{plain_logs, stop_on_signals, thousands, BadInput};

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Print every run of the manifest's grid (N, non-embedding N, D, D/N, 6ND FLOPs,
    /// batch, accumulation, learning rate, mixture, estimated time) and the totals;
    /// launches nothing.
    Plan(PlanArgs),
    /// Train every run that is not DONE: locally (a pool of `synthscale train` processes)
    /// or as one Slurm job array. Relaunching skips DONE runs, resumes partial ones, and
    /// leaves runs held by another live launch alone.
    Launch(LaunchArgs),
    /// A table of the runs: state, step of total, last train and validation loss, elapsed.
    Status(StatusArgs),
    /// Write the results table (one row per run, validation domain and evaluation step)
    /// that `synthscale fit` reads.
    Collect(CollectArgs),
    /// Run one Slurm array task (called by the sbatch script `launch` writes).
    #[command(hide = true)]
    Task(TaskArgs),
}

#[derive(Args, Debug)]
pub struct Common {
    /// The experiment manifest (TOML with [data], [sweep] and optionally [slurm]).
    pub manifest: PathBuf,
    /// The sweep's folder [default: sweep.out_dir, else results/<manifest name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The prepared data directory [default: data.out_dir, else results/<manifest name>/data].
    #[arg(long)]
    pub data: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: Common,
    /// Measured training throughput in FLOP/s for the time estimates [default:
    /// sweep.flops_per_second, else the runs of this sweep measured so far].
    #[arg(long)]
    pub flops_per_s: Option<f64>,
    /// Runs at once, for the total time.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// One JSON object per run (id, size, budget, mixture, shares, seed, params, tokens,
    /// FLOPs, memory, steps, batch, micro-batch, accumulation, lr, ranks, runs per GPU,
    /// ladder role, estimated seconds or null) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Executor {
    Local,
    Slurm,
}

#[derive(Args, Debug)]
pub struct LaunchArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    /// Local: runs at once [default: 1 on CPU; on CUDA, as many as the GPUs of
    /// CUDA_VISIBLE_DEVICES (else nvidia-smi's) hold, small runs packed up to
    /// sweep.max_runs_per_gpu to a GPU, a data-parallel run a GPU per rank]. CPU threads
    /// are split between them.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub jobs: Option<usize>,
    /// Local: restarts of a failed run, each resuming from its last checkpoint.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Slurm: write the sbatch script and runs file, do not submit.
    #[arg(long)]
    pub no_submit: bool,
    /// Local: seconds to wait for a run directory that a trainer outside this launch holds
    /// (the orphan of a killed launch checkpoints and exits on its SIGTERM) before leaving
    /// that run alone; a second trainer is never started beside it.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub lock_wait: f64,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub common: Common,
    /// Refresh every this many seconds until every run is done or failed.
    #[arg(long, num_args = 0..=1, default_missing_value = "5")]
    pub watch: Option<f64>,
    /// One JSON object per run (id, state, step, steps, train_loss, val_loss, elapsed_s,
    /// owner) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CollectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Output CSV [default: <sweep folder>/results.csv].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TaskArgs {
    #[arg(long)]
    pub runs_file: PathBuf,
    #[arg(long)]
    pub index: usize,
}

pub fn run(cmd: SweepCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SweepCommand::Plan(a) => plan(&a),
        SweepCommand::Launch(a) => launch(&a),
        SweepCommand::Status(a) => status_cmd(&a),
        SweepCommand::Collect(a) => collect_cmd(&a),
        SweepCommand::Task(a) => task(&a),
    }
}

/// Loads the manifest and expands its grid against the prepared data.
pub fn load(c: &Common) -> anyhow::Result<Sweep> {
    plan_loaded(&LoadedManifest::load(&c.manifest)?, c)
}

/// The manifest's `[sweep]` section, or the error that it has none.
fn sweep_section(m: &LoadedManifest) -> anyhow::Result<&synthscale_sweep::SweepConfig> {
    m.manifest.sweep.as_ref().ok_or_else(|| {
        BadInput(format!(
            "{}: no [sweep] section (sizes, budgets, mixtures, seeds)",
            m.path.display()
        ))
        .into()
    })
}

/// [`load`] of a manifest already loaded and checked (`synthscale run` loads it once).
pub fn plan_loaded(m: &LoadedManifest, c: &Common) -> anyhow::Result<Sweep> {
    let cfg = sweep_section(m)?;
    let data = c.data.clone().unwrap_or_else(|| m.data_dir());
    let sweep = Sweep::plan(
        &c.manifest,
        &data,
        cfg,
        m.manifest.slurm.as_ref(),
        c.out.as_deref(),
    )?;
    // The data trained on is the data the manifest describes, --data or not.
    check_data_matches(&c.manifest, &m.manifest.data, &sweep.data_dir)?;
    Ok(sweep)
}

/// The sweep `sweep plan` shows: against the prepared data where there is some, else
/// against what the manifest's `[data]` fixes (true in the second place: planned before
/// `data prepare`, the corpora need not be here).
fn load_for_plan(c: &Common) -> anyhow::Result<(Sweep, bool)> {
    let m = LoadedManifest::load_with(&c.manifest, false)?;
    let cfg = sweep_section(&m)?;
    let data = c.data.clone().unwrap_or_else(|| m.data_dir());
    if data.join(synthscale_data::datadir::META_FILE).exists() {
        return Ok((plan_loaded(&m, c)?, false));
    }
    let meta = synthscale_data::DataMeta::provisional(&m.manifest.data)?;
    let sweep = Sweep::plan_with_meta(
        &c.manifest,
        &data,
        &meta,
        cfg,
        m.manifest.slurm.as_ref(),
        c.out.as_deref(),
    )?;
    Ok((sweep, true))
}

fn binary() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding the synthscale binary")
}

fn sci(x: f64) -> String {
    format!("{x:.2e}")
}

fn duration(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn mixture_text(shares: &std::collections::BTreeMap<SourceKind, f64>) -> String {
    shares
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| format!("{}={v}", k.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

fn plan(a: &PlanArgs) -> anyhow::Result<ExitCode> {
    let (sweep, provisional) = load_for_plan(&a.common)?;
    if let Some(t) = a.flops_per_s {
        if !(t.is_finite() && t > 0.0) {
            return Err(BadInput(format!("--flops-per-s {t} must be > 0")).into());
        }
    }
    let (rate, source) = match (a.flops_per_s, sweep.config.flops_per_second) {
        (Some(t), _) => (Some(t), "--flops-per-s".to_string()),
        (None, Some(t)) => (Some(t), "sweep.flops_per_second".to_string()),
        (None, None) => match synthscale_sweep::results::measured_flops_per_second(&sweep) {
            Some(t) => (Some(t), "measured on this sweep's runs".to_string()),
            None => (None, String::new()),
        },
    };
    if a.json {
        for r in &sweep.runs {
            let row = serde_json::json!({
                "id": r.id,
                "size": r.size,
                "budget": r.budget,
                "mixture": r.mixture,
                "shares": r.shares,
                "seed": r.seed,
                "params": r.params,
                "non_embedding_params": r.non_embedding_params,
                "tokens": r.tokens,
                "flops": r.flops,
                "cost_flops": r.cost_flops(),
                "memory_bytes": r.memory_bytes,
                "steps": r.steps(),
                "batch_tokens": r.resolved.optim.batch_tokens,
                "micro_batch_size": r.resolved.optim.micro_batch_size,
                "accumulation": r.resolved.accumulation(),
                "lr": r.resolved.optim.lr,
                "ranks": r.ranks,
                "runs_per_gpu": sweep.runs_per_gpu(r),
                "ladder": match &r.ladder {
                    Some(synthscale_sweep::LadderRole::Trunk { .. }) => Some("trunk"),
                    Some(synthscale_sweep::LadderRole::Branch { .. }) => Some("branch"),
                    None => None,
                },
                "seconds": rate.map(|x| r.cost_flops() / x),
                "data_prepared": !provisional,
            });
            println!("{row}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "sweep {}: {} runs in {}; data {}",
        sweep.name,
        sweep.runs.len(),
        sweep.out_dir.display(),
        sweep.data_dir.display()
    );
    if provisional {
        println!(
            "planned before `synthscale data prepare`: with a tokenizer file every figure is \
             final; a BPE is taken at its vocab_size (a small corpus can train fewer tokens). \
             Checks that count the data's tokens (a batch larger than the data, repeats) run \
             once the data is prepared"
        );
    }
    println!(
        "{:<40} {:>12} {:>12} {:>12} {:>8} {:>10} {:>7} {:>5} {:>6} {:>7} {:>5} {:>9} {:>8}  mixture",
        "run",
        "N",
        "N non-emb",
        "D",
        "D/N",
        "6ND FLOPs",
        "batch",
        "micro",
        "accum",
        "mem GiB",
        "steps",
        "lr",
        "time"
    );
    let (mut total_flops, mut total_6nd, mut total_s) = (0.0, 0.0, 0.0);
    for r in &sweep.runs {
        let six_nd = 6.0 * r.params as f64 * r.tokens as f64;
        // A ladder branch costs only its cooldown; the trunk trained the rest.
        let cost = r.cost_flops();
        let t = rate.map_or(f64::NAN, |x| cost / x);
        total_flops += cost;
        total_6nd += six_nd * cost / r.flops;
        total_s += t;
        println!(
            "{:<40} {:>12} {:>12} {:>12} {:>8.2} {:>10} {:>7} {:>5} {:>6} {:>7.1} {:>5} {:>9.3e} {:>8}  {}{}{}",
            r.id,
            thousands(r.params),
            thousands(r.non_embedding_params),
            thousands(r.tokens),
            r.tokens as f64 / r.params as f64,
            sci(six_nd),
            r.resolved.optim.batch_tokens,
            r.resolved.optim.micro_batch_size,
            r.resolved.accumulation(),
            r.memory_bytes / (1u64 << 30) as f64,
            r.steps(),
            r.resolved.optim.lr,
            duration(t),
            mixture_text(&r.shares),
            match &r.ladder {
                Some(synthscale_sweep::LadderRole::Trunk { branches }) =>
                    format!("  trunk of {} branches", branches.len()),
                Some(synthscale_sweep::LadderRole::Branch { step, .. }) =>
                    format!("  branch from trunk step {step}"),
                None => String::new(),
            },
            // The time column is one device's; mem GiB is per rank.
            if r.ranks > 1 {
                format!("  on {} data-parallel ranks", r.ranks)
            } else {
                String::new()
            }
        );
    }
    println!(
        "total: {} runs, 6ND = {} FLOPs ({} with attention and the output head counted)",
        sweep.runs.len(),
        sci(total_6nd),
        sci(total_flops)
    );
    match rate {
        Some(x) => println!(
            "time: {} of training at {} FLOP/s ({source}); {} with --jobs {}",
            duration(total_s),
            sci(x),
            duration(total_s / a.jobs.max(1) as f64),
            a.jobs.max(1)
        ),
        None => println!(
            "time: unknown; measure FLOP/s with `synthscale bench train` and pass --flops-per-s \
             (or set sweep.flops_per_second)"
        ),
    }
    println!("D/N uses total parameters N; budgets given as tokens_per_param use non-embedding N.");
    for (size, src) in &sweep.init_sources {
        println!(
            "init_from: every {} of size {size} starts from the weights of {} (fresh optimizer, \
             step and data position)",
            if sweep.config.run_rule.ladder {
                "ladder trunk"
            } else {
                "run"
            },
            src.describe()
        );
    }
    print_packing(&sweep);
    print_ladders(&sweep, rate);
    Ok(ExitCode::SUCCESS)
}

/// On CUDA, how the runs of each size share GPUs (the memory model's estimate plus each
/// process's CUDA context against one GPU's memory, up to sweep.max_runs_per_gpu).
fn print_packing(sweep: &Sweep) {
    if sweep.config.device != synthscale_train::config::DeviceSpec::Cuda {
        return;
    }
    let gib = (1u64 << 30) as f64;
    let mut seen = std::collections::BTreeSet::new();
    for r in &sweep.runs {
        if !seen.insert(r.size.clone()) {
            continue;
        }
        let k = sweep.runs_per_gpu(r);
        let how = if r.ranks > 1 {
            format!("{} GPUs per run, one per rank", r.ranks)
        } else if k > 1 {
            format!(
                "{k} runs per GPU ({:.1} GiB each with its CUDA context, of {:.0} GiB; cap \
                 sweep.max_runs_per_gpu = {})",
                (r.memory_bytes + synthscale_sweep::gpu_pool::CUDA_PROCESS_OVERHEAD_BYTES) / gib,
                sweep.gpu_bytes() / gib,
                sweep.config.max_runs_per_gpu
            )
        } else {
            "one run per GPU".into()
        };
        println!("packing: size {}: {how}", r.size);
    }
}

/// Each ladder's cost beside its budgets as separate runs, in FLOPs and, on GPUs,
/// GPU-hours at `rate` FLOP/s per GPU.
fn print_ladders(sweep: &Sweep, rate: Option<f64>) {
    let costs = synthscale_sweep::ladder::costs(&sweep.runs);
    if costs.is_empty() {
        return;
    }
    let r = &sweep.config.run_rule;
    println!(
        "ladders (run_rule.ladder): per size, mixture and seed one constant-LR trunk to the \
         largest budget's cooldown start, and per budget a {} cooldown over the last {} of its \
         steps from the trunk's checkpoint; every budget of a ladder takes the batch, peak lr \
         and warm-up of the run rule at its largest budget",
        match r.decay_shape {
            synthscale_train::config::DecayShape::Linear => "linear",
            synthscale_train::config::DecayShape::OneMinusSqrt => "1-sqrt",
        },
        r.decay_fraction
    );
    let gpus = match sweep.config.device {
        synthscale_train::config::DeviceSpec::Cuda => Some(sweep.slurm.gpus_per_task.max(1) as f64),
        synthscale_train::config::DeviceSpec::Cpu => None,
    };
    let hours = |f: f64| match (gpus, rate) {
        (Some(g), Some(x)) => format!(" = {:.1} GPU-hours", f / x * g / 3600.0),
        _ => String::new(),
    };
    let (mut lad, mut sep) = (0.0, 0.0);
    for c in &costs {
        lad += c.flops;
        sep += c.separate_flops;
        println!(
            "ladder {}: {} FLOPs{} ({:.2}× its largest budget) against {} FLOPs{} as separate \
             runs ({:.2}×)",
            c.trunk,
            sci(c.flops),
            hours(c.flops),
            c.flops / c.largest_flops,
            sci(c.separate_flops),
            hours(c.separate_flops),
            c.separate_flops / c.largest_flops
        );
    }
    println!(
        "ladders in all: {} FLOPs{} against {} FLOPs{} as separate runs ({:.0}% saved)",
        sci(lad),
        hours(lad),
        sci(sep),
        hours(sep),
        100.0 * (1.0 - lad / sep)
    );
}

fn launch(a: &LaunchArgs) -> anyhow::Result<ExitCode> {
    let sweep = load(&a.common)?;
    let bin = binary()?;
    match a.executor {
        Executor::Slurm => {
            let l = launch_slurm(&sweep, &bin, !a.no_submit)?;
            for (id, owner) in &l.held {
                println!("{id}: held by {owner}; not submitted");
            }
            let submitted = l.submitted();
            println!(
                "{} runs: {} already done, {} held elsewhere, {} to run",
                sweep.runs.len(),
                l.already_done.len(),
                l.held.len(),
                submitted.len()
            );
            if submitted.is_empty() {
                println!("nothing to submit");
            }
            for a in &l.arrays {
                match &a.job_id {
                    Some(job) => println!(
                        "submitted job array {job} ({} tasks): {}",
                        a.runs.len(),
                        a.script.display()
                    ),
                    None => println!("wrote {} (not submitted)", a.script.display()),
                }
            }
            if l.arrays.iter().any(|a| a.job_id.is_some()) {
                println!("logs: {}", sweep.out_dir.join("logs").display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Executor::Local => {
            let plain = plain_logs();
            let pb = if plain {
                ProgressBar::hidden()
            } else {
                let pb = ProgressBar::new(sweep.runs.len() as u64);
                pb.set_style(
                    ProgressStyle::with_template(
                        "{bar:30} {pos}/{len} runs [{elapsed_precise}] {msg}",
                    )
                    .expect("valid template"),
                );
                pb.enable_steady_tick(Duration::from_millis(250));
                pb
            };
            if !(a.lock_wait.is_finite() && (0.0..=86_400.0).contains(&a.lock_wait)) {
                return Err(BadInput(format!(
                    "--lock-wait {} must be between 0 and 86400 seconds",
                    a.lock_wait
                ))
                .into());
            }
            let wait = Duration::from_secs_f64(a.lock_wait);
            let summary = run_local(&sweep, a.jobs.unwrap_or(0), a.retries, wait, &pb)?;
            pb.finish_and_clear();
            println!("{}", summary.text);
            Ok(summary.code)
        }
    }
}

/// What a local launch did, in one line, and the exit code it calls for.
pub struct LocalSummary {
    pub text: String,
    pub code: ExitCode,
    /// Every run is DONE.
    pub complete: bool,
}

/// Trains the sweep's runs that are not DONE on a local pool of `jobs` workers, one line
/// per started and finished run (on `pb`, or on stderr without a terminal); SIGTERM,
/// SIGUSR1 and SIGINT stop it after the running runs checkpoint. A run directory held by a
/// trainer outside the launch is waited for up to `lock_wait`, then left alone.
pub fn run_local(
    sweep: &Sweep,
    jobs: usize,
    retries: u32,
    lock_wait: Duration,
    pb: &ProgressBar,
) -> anyhow::Result<LocalSummary> {
    let stop = stop_on_signals()?;
    let plain = plain_logs();
    let say = |line: String| {
        if plain {
            eprintln!("{line}");
        } else {
            pb.println(line);
        }
    };
    let on_event = |e: &SweepEvent| match e {
        SweepEvent::Started {
            id,
            attempt,
            worker,
        } => {
            pb.set_message(id.clone());
            if *attempt > 1 {
                say(format!(
                    "{id}: attempt {attempt} (worker {worker}), resuming"
                ));
            } else {
                say(format!("{id}: started (worker {worker})"));
            }
        }
        SweepEvent::Waiting {
            id,
            holder,
            seconds,
        } => say(format!(
            "{id}: run directory held by {holder}; waiting up to {seconds:.0} s for it to let go"
        )),
        SweepEvent::Finished { id, outcome } => {
            pb.inc(1);
            say(format!("{id}: {}", outcome_text(outcome)));
        }
    };
    let opts = LocalOptions {
        jobs,
        retries,
        stop: Some(&stop),
        on_event: Some(&on_event),
        lock_wait,
        ..LocalOptions::new(binary()?)
    };
    let out = launch_local(sweep, &opts)?;
    let count = |f: fn(&RunOutcome) -> bool| out.iter().filter(|(_, o)| f(o)).count();
    let done = count(|o| matches!(o, RunOutcome::Done { .. }));
    let already = count(|o| matches!(o, RunOutcome::AlreadyDone));
    let held = count(|o| matches!(o, RunOutcome::Held(_)));
    let stopped = count(|o| matches!(o, RunOutcome::Stopped));
    let failed = count(|o| matches!(o, RunOutcome::Failed { .. } | RunOutcome::Blocked(_)));
    let not_started = sweep.runs.len() - out.len();
    let mut text = format!(
        "{} runs: {done} trained, {already} already done, {held} held elsewhere, \
         {stopped} stopped, {failed} failed{}",
        sweep.runs.len(),
        if not_started > 0 {
            format!(", {not_started} not started")
        } else {
            String::new()
        }
    );
    let code = if failed > 0 {
        text.push_str(&format!("\nlogs: {}", sweep.out_dir.join("logs").display()));
        ExitCode::from(1)
    } else if stopped > 0 || not_started > 0 {
        text.push_str("\nstopped; run the same command to resume");
        ExitCode::from(synthscale_train::EXIT_REQUEUE)
    } else {
        ExitCode::SUCCESS
    };
    Ok(LocalSummary {
        text,
        code,
        complete: done + already == sweep.runs.len(),
    })
}

fn outcome_text(o: &RunOutcome) -> String {
    match o {
        RunOutcome::Done { attempts, seconds } => format!(
            "done in {}{}",
            duration(*seconds),
            if *attempts > 1 {
                format!(" ({attempts} attempts)")
            } else {
                String::new()
            }
        ),
        RunOutcome::AlreadyDone => "already done".into(),
        RunOutcome::Blocked(why) => format!("not started: {why}"),
        RunOutcome::Held(o) => format!("held by {o}; left alone"),
        RunOutcome::Stopped => "stopped after a checkpoint".into(),
        RunOutcome::Failed { attempts, code } => format!(
            "failed after {attempts} attempt(s), exit code {}",
            code.map_or("none (signal)".into(), |c| c.to_string())
        ),
    }
}

/// Prints the status table (columns as wide as their longest entry), or with `json` one
/// JSON object per run; returns whether every run is done or failed.
fn print_status(sweep: &Sweep, json: bool) -> anyhow::Result<bool> {
    let rows = status(sweep)?;
    let finished = rows
        .iter()
        .all(|r| matches!(r.state, State::Done | State::Failed));
    if json {
        for r in &rows {
            println!(
                "{}",
                serde_json::to_string(r).context("serializing a status row")?
            );
        }
        return Ok(finished);
    }
    let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.state.as_str().to_string(),
                format!("{}/{}", r.step, r.steps),
                fmt(r.train_loss),
                fmt(r.val_loss),
                duration(r.elapsed_s),
                r.owner.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let head = ["run", "state", "step", "train", "val", "elapsed", "owner"];
    let width: Vec<usize> = (0..6)
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .chain([head[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |c: [&str; 7]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            c[6],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
            w4 = width[4],
            w5 = width[5]
        )
        .trim_end()
        .to_string()
    };
    println!("{}", line(head));
    let mut counts = std::collections::BTreeMap::new();
    for (r, c) in rows.iter().zip(&cells) {
        *counts.entry(r.state.as_str()).or_insert(0) += 1;
        println!("{}", line(c.each_ref().map(String::as_str)));
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("{} runs: {}", rows.len(), summary.join(", "));
    Ok(finished)
}

fn status_cmd(a: &StatusArgs) -> anyhow::Result<ExitCode> {
    let sweep = load(&a.common)?;
    let Some(every) = a.watch else {
        print_status(&sweep, a.json)?;
        return Ok(ExitCode::SUCCESS);
    };
    if !(every.is_finite() && every > 0.0) {
        return Err(BadInput(format!("--watch {every} must be > 0 seconds")).into());
    }
    loop {
        if std::io::stdout().is_terminal() {
            // Clear the screen and home the cursor.
            print!("\x1b[2J\x1b[H");
        }
        let finished = print_status(&sweep, a.json)?;
        if finished {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs_f64(every));
    }
}

fn collect_cmd(a: &CollectArgs) -> anyhow::Result<ExitCode> {
    let sweep = load(&a.common)?;
    let (path, rows) = collect(&sweep, a.output.as_deref())?;
    let done = status(&sweep)?
        .iter()
        .filter(|r| r.state == State::Done)
        .count();
    println!(
        "wrote {} rows from {} runs ({done} done) to {}",
        rows,
        sweep.runs.len(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn task(a: &TaskArgs) -> anyhow::Result<ExitCode> {
    let stop = stop_on_signals()?;
    let code = run_task(&a.runs_file, a.index, &binary()?, &stop, &|e| {
        eprintln!("{e}")
    })?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
