//! `synthscale sweep plan | launch | status | collect` (and the hidden `task` that Slurm
//! array tasks run).
//!
//! - `load`: the manifest's sweep, expanded against the prepared data (`Common`);
//! - `plan`: `sweep plan`, the table of runs and totals before anything launches;
//! - `launch`: `sweep launch` (local pool or Slurm array) and the Slurm array `task`;
//! - `status`: `sweep status` and `sweep collect`;
//! - `format`: numbers and durations as the tables print them.

mod format;
mod launch;
mod load;
mod plan;
mod status;

use std::process::ExitCode;

use clap::Subcommand;

pub use launch::run_local;
pub use load::{plan_loaded, Common};

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Print every run of the manifest's grid (N, non-embedding N, D, D/N, 6ND FLOPs,
    /// batch, accumulation, learning rate, mixture, estimated time) and the totals;
    /// launches nothing.
    Plan(plan::PlanArgs),
    /// Train every run that is not DONE: locally (a pool of `synthscale train` processes)
    /// or as one Slurm job array. Relaunching skips DONE runs, resumes partial ones, and
    /// leaves runs held by another live launch alone.
    Launch(launch::LaunchArgs),
    /// A table of the runs: state, step of total, last train and validation loss, elapsed.
    Status(status::StatusArgs),
    /// Write the results table (one row per run, validation domain and evaluation step)
    /// that `synthscale fit` reads.
    Collect(status::CollectArgs),
    /// Run one Slurm array task (called by the sbatch script `launch` writes).
    #[command(hide = true)]
    Task(launch::TaskArgs),
}

pub fn run(cmd: SweepCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SweepCommand::Plan(a) => plan::run(&a),
        SweepCommand::Launch(a) => launch::run(&a),
        SweepCommand::Status(a) => status::run_status(&a),
        SweepCommand::Collect(a) => status::run_collect(&a),
        SweepCommand::Task(a) => launch::run_task_cmd(&a),
    }
}
