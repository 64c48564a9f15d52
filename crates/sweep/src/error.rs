//! The sweep's one error type.

use std::path::PathBuf;

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

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Train(#[from] synthscale_train::TrainError),

    #[error(transparent)]
    DataStage(#[from] synthscale_data::DataError),
}

impl SweepError {
    /// Whether the user can fix this by changing their input.
    pub fn is_bad_input(&self) -> bool {
        match self {
            SweepError::Field { .. } | SweepError::Data { .. } => true,
            SweepError::Train(e) => e.is_bad_input(),
            SweepError::DataStage(e) => e.is_bad_input(),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SweepError {
        let path = path.into();
        move |source| SweepError::Io { path, source }
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

pub type Result<T> = std::result::Result<T, SweepError>;
