//! The sweep's one error type.

use std::path::PathBuf;

/// Errors of the sweep. Field and data errors are bad input (exit code 2 in the CLI), as are
/// the trainer's and the data stage's own bad-input errors; see [`SweepError::is_bad_input`].
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A manifest field broke a bound (checked before anything launches).
    #[error("{}: field `{field}`: {message}", file.display())]
    Field {
        file: PathBuf,
        field: String,
        message: String,
    },

    /// The data stage has not run yet, or its directory is unusable.
    #[error("{}: {message}", path.display())]
    Data { path: PathBuf, message: String },

    /// A runs file or lock that cannot be read back.
    #[error("{}: {message}", path.display())]
    State { path: PathBuf, message: String },

    /// `sbatch` or `squeue` failed.
    #[error("slurm: {0}")]
    Slurm(String),

    /// A file, folder or program that could not be read, opened or started.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Output that could not be written (a run's folder, lock, log, script or table).
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The trainer's error (a run config or run directory).
    #[error(transparent)]
    Train(#[from] synthscale_train::TrainError),

    /// The data stage's error (the prepared data or the manifest's `[data]`).
    #[error(transparent)]
    DataStage(#[from] synthscale_data::DataError),
}

impl SweepError {
    /// Whether the user can fix this by changing their input (exit code 2) rather than it
    /// being a failure of the machine, of a run or of synthscale (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            SweepError::Field { .. } | SweepError::Data { .. } => true,
            SweepError::State { .. }
            | SweepError::Slurm(_)
            | SweepError::Read { .. }
            | SweepError::Write { .. } => false,
            SweepError::Train(e) => e.is_bad_input(),
            SweepError::DataStage(e) => e.is_bad_input(),
        }
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SweepError::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SweepError::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn field(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        SweepError::Field {
            file: file.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Result type of the sweep.
pub type Result<T> = std::result::Result<T, SweepError>;
