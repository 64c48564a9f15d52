//! Reading losses to fit: long CSV tables, synthscale run directories (`metrics.jsonl`) and
//! wide per-step CSV logs of other trainers, into one table; then `--where` filters,
//! grouping, and validated points.
//!
//! - **Long CSV** (the results table of `sweep collect`, or any table): one point per row,
//!   with `tokens` and `loss` columns (names configurable), `params` for the joint law.
//!   The separator is the header's most frequent of `,`, `;` and tab.
//! - **JSON lines** of any tool (`.jsonl`, `.ndjson`, or a file starting with `{`): one
//!   object a line, read as a long table whose columns are the objects' keys.
//! - **Step-indexed logs** (a W&B panel export: `Step` and one column per curve, each with
//!   `__MIN`/`__MAX` band columns, which are skipped): `--tokens-per-step` turns the step
//!   column into tokens.
//!   With `--flops-col`, tokens are `D = C/(6N)` (Epoch AI's reading of Chinchilla's data).
//! - **Wide per-step log**: a CSV with no loss column but a token column (`tokens`, or any
//!   column whose name ends in `tokens`, such as `throughput/total_tokens`) and several
//!   evaluation columns (and no column named `loss`): each column whose name contains the curve pattern (default `loss`,
//!   any case, e.g. `eval/c4_en-validation/CrossEntropyLoss`) is one curve, named in the
//!   `curve` column. Empty cells (steps without that evaluation) and rows at 0 tokens
//!   (the evaluation before training) are skipped. A column whose name ends in `flops`
//!   (`Gflops`: ×1e9) gives N = C/(6D) when the joint law needs model sizes.
//! - **Run directories**: a folder with `metrics.jsonl`, or a folder of such folders. Each
//!   evaluation line (`eval_domain`, `val_loss`) is a point, with its `tokens`, `flops` and
//!   `step`; `run` is the run folder's name; N is the line's `params` if present, else
//!   `flops/(6·tokens)` (the trainer counts 6N FLOPs per token). Lines at 0 tokens are
//!   skipped.
//!
//! Every table also has a `file` column (the file's stem, or the run's name).
//!
//! - `options`: how columns are found and rows chosen;
//! - `records`: a header and string records from CSV (separator sniffed) or JSON lines;
//! - `read`: one input per format (long table, wide log, run directories);
//! - `source`: each input's format, path and sha256;
//! - `table`: the merged table of every input;
//! - `groups`: columns checked, cells validated, filters, groups of points.

mod groups;
mod options;
mod read;
mod records;
mod source;
mod table;

use std::path::PathBuf;

use crate::error::{FitError, Result};

pub use groups::{group_name, parse_filter, Group};
pub use options::InputOptions;
use read::{read_csv, read_run_dirs};
pub use records::sniff_delimiter;
pub use source::{Format, SourceFile};
pub use table::{ColumnNames, Row, Table};

/// Reads every input into one table.
pub fn read_inputs(paths: &[PathBuf], opts: &InputOptions) -> Result<Table> {
    if paths.is_empty() {
        return Err(FitError::option("input", "no input file given"));
    }
    let mut parts = Vec::new();
    for p in paths {
        if p.is_dir() || p.file_name().is_some_and(|n| n == "metrics.jsonl") {
            parts.extend(read_run_dirs(p)?);
        } else {
            parts.push(read_csv(p, opts)?);
        }
    }
    let format = parts[0].source.format;
    let names = parts[0].names.clone();
    let mut columns: Vec<String> = Vec::new();
    for part in &parts {
        for c in &part.columns {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
    }
    let mut table = Table {
        sources: Vec::new(),
        columns,
        rows: Vec::new(),
        format,
        names,
    };
    for (i, part) in parts.into_iter().enumerate() {
        let idx: Vec<usize> = part
            .columns
            .iter()
            .map(|c| table.columns.iter().position(|t| t == c).expect("in union"))
            .collect();
        for (line, cells) in part.rows {
            let mut full = vec![String::new(); table.columns.len()];
            for (j, cell) in cells.into_iter().enumerate() {
                full[idx[j]] = cell;
            }
            table.rows.push(Row {
                source: i,
                line,
                cells: full,
            });
        }
        table.sources.push(part.source);
    }
    Ok(table)
}
