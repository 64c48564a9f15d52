//! The report stage's one error type: every variant names the file, column or bound.

use std::path::PathBuf;

use plotters::drawing::DrawingAreaErrorKind;

/// Errors of the report stage. All but [`ReportError::Write`], [`ReportError::Plot`] and
/// [`ReportError::Internal`] are bad input (exit code 2 in the CLI).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
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

    /// A column of the results contract is not in the table.
    #[error("{}: no column `{column}` (the results table of `synthscale sweep collect` has it); columns: {available}", path.display())]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },

    /// A cell that does not parse, or is out of its bounds.
    #[error("{}:{line}: column `{column}`: {message}", path.display())]
    Cell {
        path: PathBuf,
        line: u64,
        column: String,
        message: String,
    },

    /// The table holds no usable rows.
    #[error("{}: {message}", path.display())]
    Empty { path: PathBuf, message: String },

    /// An output folder the report may not write into: a file, or a folder holding
    /// something other than an earlier report.
    #[error("{}: {message}", path.display())]
    Output { path: PathBuf, message: String },

    /// A `[report]` setting out of its bounds, or a manifest that does not parse.
    #[error("{}: {message}", file.display())]
    Config { file: PathBuf, message: String },

    /// A fit failed in a way the eligibility checks did not foresee.
    #[error("fitting: {0}")]
    Fit(#[from] synthscale_fit::FitError),

    /// A figure could not be drawn or encoded.
    #[error("figure {figure}: {source}")]
    Plot {
        figure: String,
        #[source]
        source: PlotError,
    },

    /// A bug or an unexpected library failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ReportError {
    /// Whether the user can fix this by changing their input (exit code 2) rather than it
    /// being a failure of the machine or of synthscale (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            ReportError::Read { .. }
            | ReportError::MissingColumn { .. }
            | ReportError::Cell { .. }
            | ReportError::Empty { .. }
            | ReportError::Output { .. }
            | ReportError::Config { .. } => true,
            ReportError::Fit(f) => f.is_bad_input(),
            ReportError::Write { .. } | ReportError::Plot { .. } | ReportError::Internal(_) => {
                false
            }
        }
    }

    /// A file or folder at `path` that could not be read.
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReportError::Read {
            path: path.into(),
            source,
        }
    }

    /// Output at `path` that could not be written.
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReportError::Write {
            path: path.into(),
            source,
        }
    }
}

/// Why a figure could not be drawn; [`ReportError::Plot`] adds which figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// `plotters` failed to draw or to encode the image (its error as it prints it).
    #[error("{0}")]
    Backend(String),
    /// The bundled font does not parse.
    #[error("the bundled font does not parse")]
    Font,
    /// A figure with nothing to put on its axes.
    #[error("no {0}")]
    Nothing(&'static str),
    /// A one-variable fit whose key has no model size.
    #[error("a one-variable fit without its model size")]
    NoModelSize,
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError::Backend(format!("{e:?}"))
    }
}

/// Result type of the report stage.
pub type Result<T> = std::result::Result<T, ReportError>;
