//! The model crate's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A shape or setting that cannot make a model.
    #[error("model config: {0}")]
    Config(String),

    /// A file or directory that could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file or directory that could not be written (or created, removed, renamed).
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Weights that do not fit the config (missing, extra or mis-shaped tensors).
    #[error("{}: {message}", path.display())]
    Weights { path: PathBuf, message: String },

    /// A tokenizer file an export cannot read.
    #[error("{}: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },

    /// An export's output that holds something an export did not write: left untouched.
    #[error(
        "{}: the output (--out) is {reason}; export writes a new directory or replaces only \
         an earlier export, so this was left untouched: choose another output or move it away",
        path.display()
    )]
    NotExportDir { path: PathBuf, reason: String },

    /// `device = "cuda"` in a binary built without the `cuda` feature.
    #[error("\"cuda\" needs a binary built with --features cuda")]
    CudaNotBuilt,

    /// A CUDA device that cannot be opened or does not run this binary's kernels.
    #[error("{message}")]
    Device { message: String },

    /// A failure inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl ModelError {
    /// Whether the user can fix this by changing their input.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ModelError::Config(_)
            | ModelError::Weights { .. }
            | ModelError::Tokenizer { .. }
            | ModelError::NotExportDir { .. } => true,
            // The device the user asked for: a setting to change (as the trainer's `device`
            // field reports it).
            ModelError::CudaNotBuilt | ModelError::Device { .. } => true,
            ModelError::Read { .. } | ModelError::Write { .. } | ModelError::Candle(_) => false,
        }
    }

    /// [`ModelError::Read`] of `path`: `.map_err(|e| ModelError::read(&path, e))`.
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Read {
            path: path.into(),
            source,
        }
    }

    /// [`ModelError::Write`] of `path`: `.map_err(|e| ModelError::write(&path, e))`.
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Write {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;
