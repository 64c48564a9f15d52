//! `synthscale sweep launch`: the runs that are not DONE on a local pool of trainers or as
//! Slurm job arrays; and `sweep task`, one Slurm array task.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use synthscale_sweep::{
    launch_local, launch_slurm, run_task, LocalOptions, RunOutcome, Sweep, SweepEvent,
};

use super::format::duration;
use super::load::{load, Common};
use crate::util::{plain_logs, stop_on_signals, BadInput};

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
pub struct TaskArgs {
    #[arg(long)]
    pub runs_file: PathBuf,
    #[arg(long)]
    pub index: usize,
}

fn binary() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding the synthscale binary")
}

pub fn run(a: &LaunchArgs) -> anyhow::Result<ExitCode> {
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

pub fn run_task_cmd(a: &TaskArgs) -> anyhow::Result<ExitCode> {
    let stop = stop_on_signals()?;
    let code = run_task(&a.runs_file, a.index, &binary()?, &stop, &|e| {
        eprintln!("{e}")
    })?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
