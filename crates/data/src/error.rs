//! The data stage's one error type: every variant names the file or field and the bound it broke.

use std::path::PathBuf;

/// Errors of the data stage. All but [`DataError::Write`] and [`DataError::Internal`] are bad
/// input (exit code 2 in the CLI); see [`DataError::is_bad_input`].
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Output could not be written (disk full, permissions changed mid-run, ...).
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A config field broke a bound; `file` is the manifest or `<api>` for programmatic use.
    #[error("{}: field `{field}`: {message}", file.display())]
    Field {
        file: PathBuf,
        field: String,
        message: String,
    },

    /// The manifest is not valid TOML for the schema (unknown field, wrong type, ...).
    #[error("{}: {message}", file.display())]
    Manifest { file: PathBuf, message: String },

    /// A corpus file or folder holds no text.
    #[error("{}: empty: {what}", path.display())]
    Empty { path: PathBuf, what: String },

    /// Bytes that are not UTF-8.
    #[error("{}: invalid UTF-8 at line {line}, byte offset {offset} of the file", path.display())]
    Utf8 {
        path: PathBuf,
        line: u64,
        offset: u64,
    },

    /// A JSONL line that is not a JSON object with a string text field.
    #[error("{}:{line}: {message}", path.display())]
    Jsonl {
        path: PathBuf,
        line: u64,
        message: String,
    },

    /// A tokenizer that cannot be loaded, trained or used as configured.
    #[error("{}: tokenizer: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },

    /// Token shards or a data directory built with a different tokenizer.
    #[error(
        "{}: built with tokenizer {found}, but tokenizer {expected} was asked for; \
         prepare the data again with this tokenizer (or into another directory)",
        path.display()
    )]
    TokenizerMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// A token shard or data directory that is malformed or incomplete.
    #[error("{}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },

    /// An output path that holds something `data prepare` did not write: it is left
    /// untouched, `--force` included.
    #[error(
        "{}: the output (--out or data.out_dir) is {reason}; data prepare writes a new \
         directory or, with --force, replaces only a data directory it wrote, so this was \
         left untouched: choose another output or move it away",
        path.display()
    )]
    NotDataDir { path: PathBuf, reason: String },

    /// A bug or an unexpected library failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DataError {
    /// Whether the user can fix this by changing their input (exit code 2) rather than it
    /// being a failure of the machine or of synthscale (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            DataError::Read { .. }
            | DataError::Field { .. }
            | DataError::Manifest { .. }
            | DataError::Empty { .. }
            | DataError::Utf8 { .. }
            | DataError::Jsonl { .. }
            | DataError::Tokenizer { .. }
            | DataError::TokenizerMismatch { .. }
            | DataError::Corrupt { .. }
            | DataError::NotDataDir { .. } => true,
            DataError::Write { .. } | DataError::Internal(_) => false,
        }
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn field(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DataError::Field {
            file: file.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Result type of the data stage.
pub type Result<T> = std::result::Result<T, DataError>;
