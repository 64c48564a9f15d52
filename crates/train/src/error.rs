//! The trainer's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A run-config field broke a bound (checked before training starts).
    #[error("{}: field `{field}`: {message}", file.display())]
    Field {
        file: PathBuf,
        field: String,
        message: String,
    },

    /// The run config is not valid TOML for the schema.
    #[error("{}: {message}", file.display())]
    Config { file: PathBuf, message: String },

    /// The run directory holds a run of another config.
    #[error("{}: {message}", path.display())]
    RunDir { path: PathBuf, message: String },

    /// Another live process holds the run directory's lock (`run.lock`); exit code
    /// `EXIT_LOCKED` (73).
    #[error(
        "{}: run directory in use by {holder}; a run directory is trained by one process at a \
         time (wait for it to finish, or stop it first)",
        path.display()
    )]
    Locked { path: PathBuf, holder: String },

    /// Loss or gradient norm not finite; the last good checkpoint is kept.
    #[error(
        "non-finite {what} ({value}) at step {step}; the run stopped, its last good checkpoint \
         (step {last_checkpoint}) is kept — lower the learning rate or check the data"
    )]
    NonFinite {
        what: &'static str,
        value: f64,
        step: u64,
        last_checkpoint: u64,
    },

    /// A ladder branch whose trunk has not yet kept the checkpoint it starts from.
    #[error(
        "{}: the trunk has not reached the branch step {step} yet; train the trunk first \
         (`sweep launch` orders them)",
        path.display()
    )]
    TrunkNotReady { path: PathBuf, step: u64 },

    /// A data-parallel launch that cannot run: the environment's ranks, the engine, or a
    /// world size that does not fit the run.
    #[error("data-parallel run: {message}")]
    World { message: String },

    /// A checkpoint that cannot be read back.
    #[error("{}: corrupt checkpoint: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },

    /// A checkpoint that failed verification before anything was trained from it: a file
    /// whose sha256 is not the one recorded when it was written, a `state.json` field that
    /// disagrees with the run's config, or tensors that cannot be read. The previous
    /// checkpoint is kept where one exists; `recovery` says how to resume from it.
    #[error("{}: {}{}; {}", .path.display(), field_prefix(.field), .message, .recovery)]
    CheckpointInvalid {
        path: PathBuf,
        /// The field that disagrees (`step`, `sha256`, ...); empty for a whole file.
        field: String,
        message: String,
        recovery: String,
    },

    /// A file or directory that could not be read (or opened, or listed).
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file or directory that could not be written (or created, renamed, removed, synced).
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A value that cannot be written as the text of a file (TOML), named by the file.
    #[error("{}: cannot be written as TOML: {message}", path.display())]
    Serialize { path: PathBuf, message: String },

    #[error(transparent)]
    Data(#[from] synthscale_data::DataError),

    #[error(transparent)]
    Model(#[from] synthscale_model::ModelError),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl TrainError {
    /// Whether the user can fix this by changing their input.
    pub fn is_bad_input(&self) -> bool {
        match self {
            TrainError::Field { .. }
            | TrainError::Config { .. }
            | TrainError::RunDir { .. }
            | TrainError::World { .. } => true,
            // Not the input's fault, and not a failure: its own exit code says "busy".
            TrainError::Locked { .. } => false,
            TrainError::Data(e) => e.is_bad_input(),
            TrainError::Model(e) => e.is_bad_input(),
            // A damaged checkpoint is the run's own state, not the user's input: exit 1.
            // A branch started before its trunk's checkpoint: an ordering failure the sweep
            // prevents, retried on relaunch, not bad input.
            TrainError::NonFinite { .. }
            | TrainError::TrunkNotReady { .. }
            | TrainError::Checkpoint { .. }
            | TrainError::CheckpointInvalid { .. }
            | TrainError::Read { .. }
            | TrainError::Write { .. }
            | TrainError::Serialize { .. }
            | TrainError::Candle(_) => false,
        }
    }

    /// [`TrainError::Read`] of `path`: `.map_err(|e| TrainError::read(&path, e))`.
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Read {
            path: path.into(),
            source,
        }
    }

    /// [`TrainError::Write`] of `path`: `.map_err(|e| TrainError::write(&path, e))`.
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Write {
            path: path.into(),
            source,
        }
    }
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field `{field}`: ")
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;
