//! The manifest's `[sweep]` and `[slurm]` sections: the grid (sizes × budgets × mixtures ×
//! seeds), the run rule that turns a size and a budget into optimizer settings, and the
//! Slurm resources. Static checks only; `plan` checks the rest against the data.
//!
//! - `sweep`: `[sweep]` itself: the sizes, budgets, mixtures and seeds, and the labels they
//!   give run ids;
//! - `run_rule`: how a size and a budget become optimizer settings;
//! - `validate`: the static checks of `[sweep]`;
//! - `slurm`: `[slurm]`, its checks and sbatch's time limits.

mod run_rule;
mod slurm;
mod sweep;
mod validate;

pub use run_rule::{MicroBatch, RunRule};
pub use slurm::{slurm_time_seconds, SlurmConfig};
pub use sweep::{short_count, BudgetSpec, SizeSpec, SweepConfig, DEFAULT_MAX_RUNS_PER_GPU};
