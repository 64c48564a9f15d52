//! The model crate's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A shape or setting that cannot make a model.
    #[error("model config: {0}")]
    Config(String),

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
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
            ModelError::Io { .. } | ModelError::Candle(_) => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;
