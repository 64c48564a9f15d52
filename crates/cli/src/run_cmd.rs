//! `synthscale run`: the main job. Prepare the data, train the sweep on a local pool,
//! collect the results, fit the laws and write the report; a stage whose output is
//! complete and newer than its inputs is skipped.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use synthscale_report::{build_report, ReportInput};
use synthscale_sweep::{collect, Sweep};
use synthscale_train::config::DeviceSpec;

use crate::data_cmd::{self, PrepareArgs};
use crate::manifest::LoadedManifest;
use crate::sweep_cmd::{self, Common};
use crate::util::{plain_logs, BadInput};

/// Run a whole study from its manifest: data prepare → sweep launch (local) → collect →
/// fit → report. Each stage is skipped when its output is already complete: prepared data
/// is reused, DONE runs are not trained again, and the results table and report are only
/// rewritten when something they are made from changed. The report's path is printed last.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The experiment manifest (TOML with [data], [sweep] and optionally [report]).
    pub manifest: PathBuf,
    /// Runs trained at once [default: one per CPU core on CPU; on CUDA, as many as the
    /// GPUs hold, small runs packed up to sweep.max_runs_per_gpu to a GPU]; CPU threads are
    /// split between them.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Restarts of a failed run, each resuming from its last checkpoint.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The newest modification time among the files that a results table is made from: each
/// run's metrics log and DONE marker.
fn newest_run_output(sweep: &Sweep) -> Option<SystemTime> {
    sweep
        .runs
        .iter()
        .flat_map(|r| {
            let dir = sweep.run_dir(&r.id);
            [dir.join("metrics.jsonl"), dir.join("DONE")]
        })
        .filter_map(|p| modified(&p))
        .max()
}

/// Whether `out` exists and is at least as new as every input that exists.
fn up_to_date(out: &Path, inputs: &[Option<SystemTime>]) -> bool {
    match modified(out) {
        None => false,
        Some(t) => inputs.iter().flatten().all(|i| *i <= t),
    }
}

fn default_jobs(sweep: &Sweep) -> usize {
    let cuda = sweep
        .runs
        .first()
        .is_some_and(|r| r.resolved.device == DeviceSpec::Cuda);
    let n = if cuda {
        // Each GPU holds as many runs as the memory model packs on it, up to
        // sweep.max_runs_per_gpu; the executor's GPU pool keeps to that.
        synthscale_sweep::local::cuda_gpus().len().max(1) * sweep.config.max_runs_per_gpu as usize
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    n.clamp(1, sweep.runs.len().max(1))
}

pub fn run(a: &RunArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // Every section is read and checked before any work starts.
    let m = LoadedManifest::load(&a.manifest)?;
    if m.manifest.sweep.is_none() {
        return Err(BadInput(format!(
            "{}: no [sweep] section (sizes, budgets, mixtures, seeds); `synthscale run` needs \
             one",
            a.manifest.display()
        ))
        .into());
    }
    if a.jobs == Some(0) {
        return Err(BadInput("--jobs 0: at least one run at a time".into()).into());
    }
    let plain = plain_logs();
    let stage = |i: usize, text: &str| {
        if plain {
            eprintln!("[{i}/4] {text}");
        }
    };

    // 1. Data: `prepare` itself leaves a directory prepared from the same inputs alone.
    stage(1, "data");
    let code = data_cmd::prepare_loaded(
        &m,
        &PrepareArgs {
            manifest: a.manifest.clone(),
            out: None,
            force: false,
        },
    )?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }

    // 2. Sweep: DONE runs are skipped, partial ones resume.
    let sweep = sweep_cmd::plan_loaded(
        &m,
        &Common {
            manifest: a.manifest.clone(),
            out: None,
            data: None,
        },
    )?;
    let total = sweep.runs.len() as u64;
    let pb = if plain {
        ProgressBar::hidden()
    } else {
        let pb = ProgressBar::new(total + 2);
        pb.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise}, about {eta} left] {msg}",
            )
            .expect("valid template"),
        );
        pb.enable_steady_tick(Duration::from_millis(250));
        pb
    };
    let jobs = a.jobs.unwrap_or_else(|| default_jobs(&sweep));
    stage(
        2,
        &format!(
            "sweep: {total} runs, {jobs} at a time, in {}",
            sweep.out_dir.display()
        ),
    );
    pb.set_message(format!("[2/4] sweep: {total} runs, {jobs} at a time"));
    let wait = synthscale_sweep::child::DEFAULT_LOCK_WAIT;
    let summary = sweep_cmd::run_local(&sweep, jobs, a.retries, wait, &pb)?;
    pb.suspend(|| println!("{}", summary.text));
    if !summary.complete {
        pb.finish_and_clear();
        println!("not every run finished; the results and report wait for them");
        return Ok(summary.code);
    }

    // 3. Results table: rewritten when a run's log is newer than it.
    let results = sweep.results_path();
    if up_to_date(&results, &[newest_run_output(&sweep)]) {
        stage(3, &format!("results: {} is up to date", results.display()));
    } else {
        stage(3, "results: collecting");
        pb.set_message("[3/4] collecting the results table");
        let (path, rows) = collect(&sweep, None)?;
        pb.suspend(|| println!("results: {} rows in {}", rows, path.display()));
    }
    pb.inc(1);

    // 4. Fits and report: rewritten when the results table or the manifest changed.
    let out_dir = sweep.out_dir.join("report");
    let html = out_dir.join("report.html");
    let config = m.manifest.report.clone().unwrap_or_default();
    if up_to_date(
        &html,
        &[
            modified(&results),
            modified(&a.manifest),
            modified(&std::env::current_exe()?),
        ],
    ) {
        stage(4, &format!("report: {} is up to date", html.display()));
    } else {
        stage(4, "report: fitting the laws and drawing the figures");
        pb.set_message("[4/4] fitting the laws and drawing the figures");
        let out = build_report(&ReportInput {
            results_dir: sweep.out_dir.clone(),
            manifest: Some(a.manifest.clone()),
            config,
            out_dir: Some(out_dir.clone()),
        })
        .context("writing the report")?;
        pb.suspend(|| {
            for w in &out.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "fits {:.1} s, figures and files {:.2} s; markdown {}",
                out.fit_seconds,
                out.render_seconds,
                out.markdown.display()
            );
        });
    }
    pb.inc(1);
    pb.finish_and_clear();
    println!(
        "done in {:.0} s; report: {}",
        started.elapsed().as_secs_f64(),
        html.display()
    );
    Ok(ExitCode::SUCCESS)
}
