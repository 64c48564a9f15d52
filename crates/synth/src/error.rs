//! The synth crate's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A file that must exist does not (the model, a template, a source).
    #[error("{}: file not found ({what})", path.display())]
    Missing { path: PathBuf, what: String },

    /// A model this generator cannot run.
    #[error("{}: unsupported model: {message}", path.display())]
    Unsupported { path: PathBuf, message: String },

    /// A config or template field out of its bounds.
    #[error("{}: {field}: {message}", path.display())]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },

    /// A source with nothing to generate from.
    #[error("{}: empty source: {what}", path.display())]
    Empty { path: PathBuf, what: String },

    /// Weights or metadata that do not make a model.
    #[error("{}: {message}", path.display())]
    Weights { path: PathBuf, message: String },

    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file or folder could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An inference server refused a request (a 4xx other than 429): a wrong key, model or
    /// parameter, which retrying cannot fix.
    #[error("{url}: request {request} refused with HTTP {status}: {message}")]
    Server {
        url: String,
        request: String,
        status: u16,
        message: String,
    },

    /// An inference server that did not answer after every retry.
    #[error("{url}: request {request} failed {tries} times; the last: {last} (every finished record is kept; rerun to continue)")]
    Unreachable {
        url: String,
        request: String,
        tries: u32,
        last: String,
    },

    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// The data crate failed reading a source.
    #[error(transparent)]
    Data(#[from] synthscale_data::DataError),

    /// A failure inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl SynthError {
    /// Whether the user can fix this by changing their input (exit code 2) rather than it
    /// being a failure of the machine, a server or synthscale (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            SynthError::Data(e) => e.is_bad_input(),
            SynthError::Missing { .. }
            | SynthError::Unsupported { .. }
            | SynthError::Field { .. }
            | SynthError::Empty { .. }
            | SynthError::Weights { .. }
            | SynthError::Server { .. } => true,
            SynthError::Read { .. }
            | SynthError::Write { .. }
            | SynthError::Unreachable { .. }
            | SynthError::Tokenizer(_)
            | SynthError::Candle(_) => false,
        }
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SynthError::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SynthError::Write {
            path: path.into(),
            source,
        }
    }

    /// A file that could not be read: [`SynthError::Missing`] (`what` it was) when it does
    /// not exist, else [`SynthError::Read`].
    pub(crate) fn missing_or_read(
        path: impl Into<PathBuf>,
        source: std::io::Error,
        what: &str,
    ) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            SynthError::Missing {
                path: path.into(),
                what: what.to_string(),
            }
        } else {
            SynthError::read(path, source)
        }
    }

    pub(crate) fn field(path: &std::path::Path, field: &str, message: impl Into<String>) -> Self {
        SynthError::Field {
            path: path.to_path_buf(),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, SynthError>;
