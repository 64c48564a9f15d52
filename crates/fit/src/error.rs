//! The fitter's one error type: every variant names the file, column, group or bound.

use std::path::PathBuf;

/// Errors of the fit stage. All but [`FitError::Write`] and [`FitError::Internal`] are bad
/// input (exit code 2 in the CLI); see [`FitError::is_bad_input`].
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Output could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A column the law or an option needs is not in the file.
    #[error("{}: no column `{column}` ({why}); columns: {available}", path.display())]
    MissingColumn {
        path: PathBuf,
        column: String,
        why: String,
        available: String,
    },

    /// A cell that is not a number, or a malformed line.
    #[error("{}:{line}: column `{column}`: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: u64,
        column: String,
        message: String,
    },

    /// A loss, token count, parameter count or FLOP count that is zero or negative.
    #[error(
        "{}:{line}: column `{column}` is {value}, but it must be > 0 (the laws are fitted in log space)",
        path.display()
    )]
    NonPositive {
        path: PathBuf,
        line: u64,
        column: String,
        value: f64,
    },

    /// A group with fewer points than the law can be fitted to.
    #[error(
        "group {group}: {n} points, but the {law} law needs at least {min} \
         (one more than its {free} free parameters)"
    )]
    TooFewPoints {
        group: String,
        law: &'static str,
        n: usize,
        min: usize,
        free: usize,
    },

    /// A group whose points hold too few distinct token counts or model sizes to determine
    /// the law's parameters.
    #[error(
        "group {group}: {n} distinct values of `{axis}`, but the {law} law needs at least {min} \
         to determine its parameters"
    )]
    TooFewSizes {
        group: String,
        law: &'static str,
        axis: &'static str,
        n: usize,
        min: usize,
    },

    /// A group whose losses do not change over its data: no law's parameters are determined.
    #[error(
        "group {group}: the loss is flat over the data (it varies by {spread:.2e} in ln L, less \
         than {bound:e}): no scaling law can be fitted to a curve that does not fall"
    )]
    FlatData {
        group: String,
        spread: f64,
        bound: f64,
    },

    /// No start of the grid reached a finite fit inside the law's bounds.
    #[error("group {group}: the {law} fit did not converge: {detail}")]
    NotConverged {
        group: String,
        law: &'static str,
        detail: String,
    },

    /// An option or argument out of its bounds.
    #[error("option `{option}`: {message}")]
    Option { option: String, message: String },

    /// The input holds no usable rows.
    #[error("{}: {message}", path.display())]
    Empty { path: PathBuf, message: String },

    /// A bug or an unexpected library failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl FitError {
    /// Whether the user can fix this by changing their input (exit code 2) rather than it
    /// being a failure of the machine or of synthscale (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            FitError::Read { .. }
            | FitError::MissingColumn { .. }
            | FitError::Parse { .. }
            | FitError::NonPositive { .. }
            | FitError::TooFewPoints { .. }
            | FitError::TooFewSizes { .. }
            | FitError::FlatData { .. }
            | FitError::NotConverged { .. }
            | FitError::Option { .. }
            | FitError::Empty { .. } => true,
            FitError::Write { .. } | FitError::Internal(_) => false,
        }
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FitError::Read {
            path: path.into(),
            source,
        }
    }

    // The fit stage writes nothing itself (the CLI writes fit.json); the helper completes
    // the crate's one error shape.
    #[allow(dead_code)]
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FitError::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn option(option: impl Into<String>, message: impl Into<String>) -> Self {
        FitError::Option {
            option: option.into(),
            message: message.into(),
        }
    }
}

/// Result type of the fit stage.
pub type Result<T> = std::result::Result<T, FitError>;
