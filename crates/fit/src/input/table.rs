//! The merged table of every input: string cells under the union of the inputs' columns,
//! each row with its source and line, and the columns that carry each quantity.

use super::source::Format;
use super::source::SourceFile;

/// Rows from every input, as strings, with the columns' names.
#[derive(Debug, Clone)]
pub struct Table {
    /// Input files, in the order read.
    pub sources: Vec<SourceFile>,
    /// Column names (the union over inputs).
    pub columns: Vec<String>,
    /// Rows: index of the source, line number, cells (aligned with `columns`, "" if absent).
    pub rows: Vec<Row>,
    /// The format of the inputs (the first's, when mixed).
    pub format: Format,
    /// Tokens/loss/params/flops column names in this table.
    pub names: ColumnNames,
}

/// The columns that carry each quantity in a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnNames {
    /// Tokens.
    pub tokens: String,
    /// Loss.
    pub loss: String,
    /// Parameters.
    pub params: String,
    /// FLOPs, if any, and the factor to FLOPs (1e9 for a `Gflops` column).
    pub flops: Option<(String, f64)>,
    /// Whether FLOPs give tokens (D = C/6N, `--flops-col`) or, lacking a params column,
    /// parameters (N = C/6D, logs).
    pub flops_give_tokens: bool,
}

/// One row of a [`Table`].
#[derive(Debug, Clone)]
pub struct Row {
    /// Index into [`Table::sources`].
    pub source: usize,
    /// Line in that file (1-based).
    pub line: u64,
    /// Cells.
    pub cells: Vec<String>,
}

/// One input read on its own, before tables are merged.
pub(super) struct Part {
    pub(super) source: SourceFile,
    pub(super) columns: Vec<String>,
    pub(super) rows: Vec<(u64, Vec<String>)>,
    pub(super) names: ColumnNames,
}
