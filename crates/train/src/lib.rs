//! synthscale's trainer: one run of one model on one mixture.
//!
//! - [`config`]: the run config and its resolution against the data;
//! - [`memory`]: the memory model — a step's peak bytes from the tensors its graph keeps;
//! - [`bounds`]: that peak against what the device has;
//! - [`device`]: the device a run computes on, its compute dtype and peak FLOP/s;
//! - [`optim`]: AdamW with fp32 state, gradient clipping;
//! - [`dist`]: data-parallel training — the ranks, and the collectives of NCCL (`nccl`) and
//!   MPI (`mpi`);
//! - [`zero`]: ZeRO-1 — the optimizer state sharded over a data-parallel run's ranks;
//! - [`files`]: the run directory's file names, and files written whole and synced;
//! - [`state`]: what a checkpoint's `state.json` records (`TrainState`, `InitRecord`);
//! - [`checkpoint`]: atomic, checksummed checkpoints and exact resume;
//! - [`init`]: `init_from` — a run that starts from another run's or an export's weights;
//! - [`ladder`]: budget ladders — a trunk's kept checkpoints and the branches they start;
//! - [`metrics`]: the `metrics.jsonl` log;
//! - [`tensorboard`]: the same scalars as TensorBoard event files (opt-in);
//! - [`run_lock`]: one OS lock per run directory, held by the one process training it;
//! - [`trainer`]: the training loop.

pub mod bounds;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod dist;
pub mod error;
pub mod files;
pub mod init;
pub mod ladder;
pub mod memory;
pub mod metrics;
pub mod optim;
pub mod run_lock;
pub mod state;
pub mod tensorboard;
pub mod trainer;
pub mod zero;

pub use config::{ResolvedConfig, RunConfig};
pub use error::{Result, TrainError};
pub use trainer::{train, Event, Outcome, TrainOptions, DONE, EXIT_LOCKED, EXIT_REQUEUE};
