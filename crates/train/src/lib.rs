//! synthscale's trainer: one run of one model on one mixture.
//!
//! - [`config`]: the run config and its resolution against the data;
//! - [`optim`]: AdamW with fp32 state, gradient clipping;
//! - [`checkpoint`]: atomic checkpoints and exact resume;
//! - [`ladder`]: budget ladders — a trunk's kept checkpoints and the branches they start;
//! - [`metrics`]: the `metrics.jsonl` log;
//! - [`trainer`]: the training loop.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod ladder;
pub mod metrics;
pub mod optim;
pub mod trainer;

pub use config::{ResolvedConfig, RunConfig};
pub use error::{Result, TrainError};
pub use trainer::{train, Event, Outcome, TrainOptions, DONE, EXIT_REQUEUE};
