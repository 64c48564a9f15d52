//! synthscale's sweep runner: one manifest → many runs, locally or as Slurm job arrays.
//!
//! - [`config`]: the `[sweep]` and `[slurm]` sections and their static checks;
//! - [`plan`]: grid expansion into runs with stable ids, resolved against the data;
//! - [`grid`]: one size's runs: model, batch, learning rate, run config and id;
//! - [`ladder`]: budget ladders, a constant-LR trunk and one cooldown branch per budget;
//! - [`gpu_pool`]: how many runs share a GPU, and the local executor's GPUs;
//! - [`child`]: one run's `synthscale train` process (log, signals, waiting for its
//!   run directory), as the local executor and the Slurm task start it;
//! - [`local`]: the local executor (a pool of `synthscale train` processes);
//! - [`slurm`]: the sbatch script, the runs file and submission;
//! - [`task`]: one array task, its runs trained under their locks;
//! - [`lock`]: one lock per run, so two launches never race for one run (the trainer's own
//!   run-directory lock keeps any run from being trained twice), and squeue's view of a
//!   Slurm job that holds one;
//! - [`data_check`]: the prepared data against the manifest's `[data]`;
//! - [`results`]: `status` and the results table of `collect`.
//!
//! A relaunch skips DONE runs and resumes partial ones (the trainer resumes exactly).

pub mod child;
pub mod config;
pub mod data_check;
pub mod error;
pub mod gpu_pool;
pub mod grid;
pub mod ladder;
pub mod local;
pub mod lock;
pub mod plan;
pub mod results;
pub mod slurm;
pub mod task;

pub use config::{BudgetSpec, RunRule, SizeSpec, SlurmConfig, SweepConfig};
pub use error::{Result, SweepError};
pub use local::{launch_local, LocalOptions, RunOutcome, SweepEvent};
pub use plan::{LadderRole, PlannedRun, Sweep};
pub use results::{collect, status, RunStatus, State};
pub use slurm::{launch_slurm, SlurmArray, SlurmLaunch};
pub use task::{run_task, TaskEvent};
