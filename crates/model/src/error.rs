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

    /// A failure inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl ModelError {
    /// Whether the user can fix this by changing their input.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ModelError::Config(_) | ModelError::Weights { .. })
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;
