//! synthscale's fit stage: scaling laws fitted to logged losses, with intervals and the
//! answers the studies ask for.
//!
//! - [`law`]: the forms (rectified, power, Chinchilla), bounds, start grids, gradients;
//! - [`fit`]: the Huber objective on log residuals and the multi-start L-BFGS fit (options,
//!   objective, one L-BFGS run, checks on data and end points);
//! - [`bootstrap`]: resampling points for 95% intervals;
//! - [`derived`]: plateaus, tokens to a loss, speed-ups, optimal ratio, compute-optimal size;
//! - [`effective`]: effective-data multipliers and speed-ups at each observed budget, marked
//!   where they read a curve past its data;
//! - [`input`]: long CSV tables, run directories and wide per-step logs → grouped points
//!   (options, records, readers, provenance and hashes, the merged table, validated groups);
//! - [`study`]: a whole fit job → one serializable report (options, held-out check, one
//!   module per derived answer).

pub mod bootstrap;
pub mod derived;
pub mod effective;
pub mod error;
pub mod fit;
pub mod input;
pub mod law;
pub mod study;

pub use bootstrap::BootstrapOptions;
pub use error::{FitError, Result};
pub use fit::{fit, fit_starts, Fit, FitOptions};
pub use input::{read_inputs, Group, InputOptions, Table};
pub use law::{Law, Point};
pub use study::{run_study, Holdout, StudyOptions, StudyReport};
