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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{FitError, Result};
use crate::law::{Law, Point};

/// How columns are found and rows chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct InputOptions {
    /// Token-count column.
    pub tokens_col: String,
    /// Loss column.
    pub loss_col: String,
    /// Parameter-count column (joint law).
    pub params_col: String,
    /// FLOP column: tokens become `C/(6N)`.
    pub flops_col: Option<String>,
    /// Wide logs: a column whose name contains this (any case) is one curve.
    pub curves: String,
    /// `--where col=value` filters, all of which a row must pass.
    pub filters: Vec<(String, String)>,
    /// Columns that split the rows into groups; `None`: the format's default (long CSV: one
    /// group; wide logs: `curve`, and `file` for one-variable laws; run directories:
    /// `eval_domain`, and `run` for one-variable laws).
    pub group_by: Option<Vec<String>>,
    /// Drop this many highest-loss points of each group (Epoch AI drops the 5 highest-loss
    /// points of Chinchilla's data as outliers from the first steps of training).
    pub drop_highest_loss: usize,
    /// Step-indexed logs (a W&B panel export): tokens are the step column × this.
    pub tokens_per_step: Option<f64>,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            tokens_col: "tokens".into(),
            loss_col: "loss".into(),
            params_col: "params".into(),
            flops_col: None,
            curves: "loss".into(),
            filters: Vec::new(),
            group_by: None,
            drop_highest_loss: 0,
            tokens_per_step: None,
        }
    }
}

/// What kind of input a table came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One point per row.
    LongCsv,
    /// One point per JSON line (any tool's metrics log), read as a long table.
    Jsonl,
    /// One curve per evaluation column.
    WideLog,
    /// synthscale run directories.
    Metrics,
}

/// One input file and its hash, recorded with every fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceFile {
    /// Path as given.
    pub path: String,
    /// sha256 of its bytes.
    pub sha256: String,
    /// How it was read.
    pub format: Format,
}

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

/// A group of points to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// `(column, value)` pairs that define it (empty: all rows).
    pub keys: Vec<(String, String)>,
    /// Its points, in input order.
    pub points: Vec<Point>,
}

impl Group {
    /// `col=value,…`, or `all`.
    pub fn name(&self) -> String {
        group_name(&self.keys)
    }
}

/// `col=value,…`, or `all` for no keys.
pub fn group_name(keys: &[(String, String)]) -> String {
    if keys.is_empty() {
        "all".into()
    } else {
        keys.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| FitError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// One input read on its own, before tables are merged.
struct Part {
    source: SourceFile,
    columns: Vec<String>,
    rows: Vec<(u64, Vec<String>)>,
    names: ColumnNames,
}

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

/// Whether `path` is a JSON-lines file of another tool (by its extension, or a first
/// non-blank byte `{`); synthscale's own `metrics.jsonl` is read as a run instead.
fn is_jsonl(path: &Path, bytes: &[u8]) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    ext == "jsonl"
        || ext == "ndjson"
        || bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{')
}

/// The separator of a delimited text file: of `,`, `;` and tab, the one its header line
/// holds most of (outside quotes); `,` when it holds none.
pub fn sniff_delimiter(bytes: &[u8]) -> u8 {
    let header = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for c in counts.iter_mut() {
                if c.0 == b {
                    c.1 += 1;
                }
            }
        }
    }
    // Ties keep the earlier (`,` first).
    let best = counts
        .iter()
        .fold((b',', 0), |best, &c| if c.1 > best.1 { c } else { best });
    best.0
}

/// A header, and records of (line number, cells).
type Records = (Vec<String>, Vec<(u64, Vec<String>)>);

/// A header and its records from a delimited text file.
fn csv_records(path: &Path, bytes: &[u8]) -> Result<Records> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .delimiter(sniff_delimiter(bytes))
        .from_reader(bytes);
    let parse_err = |line: u64, e: csv::Error| FitError::Parse {
        path: path.to_path_buf(),
        line,
        column: "-".into(),
        message: e.to_string(),
    };
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| parse_err(1, e))?
        .iter()
        // A byte-order mark (spreadsheet exports) is no part of the first column's name.
        .map(|s| s.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    if header.is_empty() || header.iter().all(|h| h.is_empty()) {
        return Err(FitError::Empty {
            path: path.to_path_buf(),
            message: "no header line".into(),
        });
    }
    let mut records = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            parse_err(line, e)
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        records.push((
            line,
            rec.iter().map(|s| s.trim().to_string()).collect::<Vec<_>>(),
        ));
    }
    Ok((header, records))
}

/// A header and records from JSON lines: one object a line, the columns the union of their
/// keys in order of first appearance; numbers and booleans as written, null as empty.
fn jsonl_records(path: &Path, bytes: &[u8]) -> Result<Records> {
    let text = String::from_utf8_lossy(bytes);
    let mut header: Vec<String> = Vec::new();
    let mut objects = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| FitError::Parse {
            path: path.to_path_buf(),
            line: line_no,
            column: "-".into(),
            message: format!("not a JSON object: {e}"),
        })?;
        let serde_json::Value::Object(map) = v else {
            return Err(FitError::Parse {
                path: path.to_path_buf(),
                line: line_no,
                column: "-".into(),
                message: "a JSON value, but not an object of named fields".into(),
            });
        };
        for k in map.keys() {
            if !header.contains(k) {
                header.push(k.clone());
            }
        }
        objects.push((line_no, map));
    }
    let cell = |x: Option<&serde_json::Value>| match x {
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    };
    let records = objects
        .into_iter()
        .map(|(line, map)| (line, header.iter().map(|k| cell(map.get(k))).collect()))
        .collect();
    Ok((header, records))
}

/// W&B panel exports carry each curve's band beside it (`<name>__MIN`, `<name>__MAX`): not
/// curves of their own.
fn is_band(column: &str) -> bool {
    column.ends_with("__MIN") || column.ends_with("__MAX")
}

/// With `--tokens-per-step` and no token column: a `tokens_col` column of step × tokens per
/// step, from the step column (`step`, `_step`, `Step`, or a name ending in `step`).
fn add_tokens_from_steps(
    path: &Path,
    header: &mut Vec<String>,
    records: &mut [(u64, Vec<String>)],
    opts: &InputOptions,
) -> Result<()> {
    let Some(per_step) = opts.tokens_per_step else {
        return Ok(());
    };
    if header.contains(&opts.tokens_col) {
        return Err(FitError::option(
            "--tokens-per-step",
            format!(
                "{} already has a `{}` column; give --tokens-per-step only for step-indexed logs",
                path.display(),
                opts.tokens_col
            ),
        ));
    }
    let step = header
        .iter()
        .position(|h| matches!(h.as_str(), "step" | "_step" | "Step"))
        .or_else(|| {
            header
                .iter()
                .position(|h| h.to_lowercase().ends_with("step"))
        })
        .ok_or_else(|| FitError::MissingColumn {
            path: path.to_path_buf(),
            column: "step".into(),
            why: "--tokens-per-step counts tokens from a step column".into(),
            available: header.join(", "),
        })?;
    for (line, cells) in records.iter_mut() {
        let s = cells.get(step).map(String::as_str).unwrap_or("");
        let tokens = if s.is_empty() {
            String::new()
        } else {
            let n: f64 = s.parse().map_err(|_| FitError::Parse {
                path: path.to_path_buf(),
                line: *line,
                column: header[step].clone(),
                message: format!("step {s:?} is not a number"),
            })?;
            format!("{}", n * per_step)
        };
        cells.push(tokens);
    }
    header.push(opts.tokens_col.clone());
    Ok(())
}

fn read_csv(path: &Path, opts: &InputOptions) -> Result<Part> {
    let bytes = read_bytes(path)?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    let (mut header, mut records) = if is_jsonl(path, &bytes) {
        jsonl_records(path, &bytes)?
    } else {
        csv_records(path, &bytes)?
    };
    if header.is_empty() {
        return Err(FitError::Empty {
            path: path.to_path_buf(),
            message: "no JSON object".into(),
        });
    }
    add_tokens_from_steps(path, &mut header, &mut records, opts)?;
    let format = if is_jsonl(path, &bytes) {
        Format::Jsonl
    } else {
        Format::LongCsv
    };
    let file = stem(path);
    let has = |c: &str| header.iter().any(|h| h == c);
    let pattern = opts.curves.to_lowercase();
    // A table with a plain `loss` column but another --loss-col is a long table missing a
    // column (reported as such), not a log.
    let is_wide = !has(&opts.loss_col)
        && !has("loss")
        && header
            .iter()
            .any(|h| h.to_lowercase().contains(&pattern) && !is_band(h));
    if !is_wide {
        let mut columns = header.clone();
        columns.push("file".into());
        let rows = records
            .into_iter()
            .map(|(line, mut cells)| {
                cells.push(file.clone());
                (line, cells)
            })
            .collect();
        return Ok(Part {
            source: SourceFile {
                path: path.display().to_string(),
                sha256,
                format,
            },
            columns,
            rows,
            names: ColumnNames {
                tokens: opts.tokens_col.clone(),
                loss: opts.loss_col.clone(),
                params: opts.params_col.clone(),
                flops: opts.flops_col.clone().map(|c| (c, 1.0)),
                flops_give_tokens: opts.flops_col.is_some(),
            },
        });
    }

    // Wide per-step log: one curve per matching column.
    let tokens_idx = header
        .iter()
        .position(|h| *h == opts.tokens_col)
        .or_else(|| header.iter().position(|h| h.to_lowercase().ends_with("tokens")))
        .ok_or_else(|| FitError::MissingColumn {
            path: path.to_path_buf(),
            column: opts.tokens_col.clone(),
            why: format!(
                "read as a per-step log (no `{}` column); needs a token column (`{}` or a name ending in `tokens`)",
                opts.loss_col, opts.tokens_col
            ),
            available: header.join(", "),
        })?;
    let flops = match &opts.flops_col {
        Some(c) => header.iter().position(|h| h == c),
        None => header
            .iter()
            .position(|h| h.to_lowercase().ends_with("flops")),
    };
    let flops_scale = flops.map_or(1.0, |i| {
        if header[i].to_lowercase().ends_with("gflops") {
            1e9
        } else {
            1.0
        }
    });
    let params_idx = header.iter().position(|h| *h == opts.params_col);
    let step_idx = header.iter().position(|h| h == "_step" || h == "step");
    let curves: Vec<usize> = (0..header.len())
        .filter(|&i| {
            i != tokens_idx
                && Some(i) != flops
                && !is_band(&header[i])
                && header[i].to_lowercase().contains(&pattern)
        })
        .collect();
    let mut rows = Vec::new();
    for (line, cells) in &records {
        let tok = cells.get(tokens_idx).map(String::as_str).unwrap_or("");
        // The evaluation before any training is no point of a curve in D.
        if tok.is_empty() || tok.parse::<f64>().is_ok_and(|t| t == 0.0) {
            continue;
        }
        for &c in &curves {
            let loss = cells.get(c).map(String::as_str).unwrap_or("");
            if loss.is_empty() || loss.eq_ignore_ascii_case("nan") {
                continue;
            }
            let get = |i: Option<usize>| i.and_then(|i| cells.get(i)).cloned().unwrap_or_default();
            rows.push((
                *line,
                vec![
                    file.clone(),
                    header[c].clone(),
                    get(step_idx),
                    tok.to_string(),
                    loss.to_string(),
                    get(params_idx),
                    get(flops),
                ],
            ));
        }
    }
    Ok(Part {
        source: SourceFile {
            path: path.display().to_string(),
            sha256,
            format: Format::WideLog,
        },
        columns: ["file", "curve", "step", "tokens", "loss", "params", "flops"]
            .map(String::from)
            .to_vec(),
        rows,
        names: ColumnNames {
            tokens: "tokens".into(),
            loss: "loss".into(),
            params: "params".into(),
            flops: flops.map(|_| ("flops".to_string(), flops_scale)),
            flops_give_tokens: false,
        },
    })
}

/// Run directories: `dir/metrics.jsonl`, or `dir/*/metrics.jsonl`, or the file itself.
fn read_run_dirs(path: &Path) -> Result<Vec<Part>> {
    let direct = if path.is_dir() {
        path.join("metrics.jsonl")
    } else {
        path.to_path_buf()
    };
    if direct.is_file() {
        return Ok(vec![read_metrics(&direct)?]);
    }
    let entries = std::fs::read_dir(path).map_err(|source| FitError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("metrics.jsonl"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(FitError::Empty {
            path: path.to_path_buf(),
            message: "a folder, but neither it nor any folder in it holds metrics.jsonl".into(),
        });
    }
    files.iter().map(|f| read_metrics(f)).collect()
}

fn read_metrics(path: &Path) -> Result<Part> {
    let bytes = read_bytes(path)?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    let run = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    // Its lines as a table (the same reader as any tool's JSON lines); evaluation lines are
    // the points, training lines (no `eval_domain`) are skipped.
    let (header, records) = jsonl_records(path, &bytes)?;
    let at = |name: &str| header.iter().position(|h| h == name);
    let (domain, loss) = (at("eval_domain"), at("val_loss"));
    let (step, tokens_at, params, flops) = (at("step"), at("tokens"), at("params"), at("flops"));
    let mut rows = Vec::new();
    for (line_no, cells) in records {
        let get = |i: Option<usize>| i.map(|i| cells[i].clone()).unwrap_or_default();
        let (d, l) = (get(domain), get(loss));
        if d.is_empty() || l.is_empty() {
            continue; // a training line
        }
        let tokens = get(tokens_at);
        if tokens.parse::<f64>().is_ok_and(|t| t == 0.0) {
            continue; // the evaluation before training
        }
        rows.push((
            line_no,
            vec![
                run.clone(),
                run.clone(),
                d,
                get(step),
                tokens,
                l,
                get(params),
                get(flops),
            ],
        ));
    }
    Ok(Part {
        source: SourceFile {
            path: path.display().to_string(),
            sha256,
            format: Format::Metrics,
        },
        columns: [
            "file",
            "run",
            "eval_domain",
            "step",
            "tokens",
            "loss",
            "params",
            "flops",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        names: ColumnNames {
            tokens: "tokens".into(),
            loss: "loss".into(),
            params: "params".into(),
            flops: Some(("flops".into(), 1.0)),
            flops_give_tokens: false,
        },
    })
}

impl Table {
    fn col(&self, name: &str, why: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| FitError::MissingColumn {
                path: PathBuf::from(self.paths()),
                column: name.to_string(),
                why: why.to_string(),
                available: self.columns.join(", "),
            })
    }

    /// The input paths, joined for messages.
    pub fn paths(&self) -> String {
        self.sources
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn path_of(&self, row: &Row) -> PathBuf {
        PathBuf::from(&self.sources[row.source].path)
    }

    fn number(&self, row: &Row, col: usize, scale: f64) -> Result<f64> {
        let cell = &row.cells[col];
        let v: f64 = cell.parse().map_err(|_| FitError::Parse {
            path: self.path_of(row),
            line: row.line,
            column: self.columns[col].clone(),
            message: if cell.is_empty() {
                "empty cell".into()
            } else {
                format!("{cell:?} is not a number")
            },
        })?;
        let v = v * scale;
        if !v.is_finite() || v <= 0.0 {
            return Err(FitError::NonPositive {
                path: self.path_of(row),
                line: row.line,
                column: self.columns[col].clone(),
                value: v,
            });
        }
        Ok(v)
    }

    /// The default grouping columns of this table's format, for `law`.
    pub fn default_group_by(&self, law: Law) -> Vec<String> {
        let many = |col: &str| {
            let i = self.columns.iter().position(|c| c == col);
            i.is_some_and(|i| {
                let mut v: Vec<&str> = self.rows.iter().map(|r| r.cells[i].as_str()).collect();
                v.sort_unstable();
                v.dedup();
                v.len() > 1
            })
        };
        match self.format {
            Format::LongCsv | Format::Jsonl => Vec::new(),
            Format::WideLog => {
                let mut g = Vec::new();
                if !law.uses_params() && many("file") {
                    g.push("file".to_string());
                }
                g.push("curve".to_string());
                g
            }
            Format::Metrics => {
                let mut g = Vec::new();
                if !law.uses_params() && many("run") {
                    g.push("run".to_string());
                }
                g.push("eval_domain".to_string());
                g
            }
        }
    }

    /// Filters, groups and converts rows to points for `law`. Groups come in order of first
    /// appearance.
    pub fn groups(&self, law: Law, opts: &InputOptions) -> Result<Vec<Group>> {
        let filters: Vec<(usize, &str)> = opts
            .filters
            .iter()
            .map(|(c, v)| Ok((self.col(c, "named in --where")?, v.as_str())))
            .collect::<Result<_>>()?;
        let group_by = opts
            .group_by
            .clone()
            .unwrap_or_else(|| self.default_group_by(law));
        let group_idx: Vec<usize> = group_by
            .iter()
            .map(|c| self.col(c, "named in --group-by"))
            .collect::<Result<_>>()?;
        let names = &self.names;
        let loss = self.col(&names.loss, "the loss to fit; map another with --loss-col")?;
        let flops = match &names.flops {
            Some((c, scale)) if self.columns.contains(c) => Some((self.col(c, "")?, *scale)),
            Some((c, _)) if names.flops_give_tokens => {
                return Err(FitError::MissingColumn {
                    path: PathBuf::from(self.paths()),
                    column: c.clone(),
                    why: "named by --flops-col".into(),
                    available: self.columns.join(", "),
                })
            }
            _ => None,
        };
        let params = self.columns.iter().position(|c| *c == names.params);
        let tokens = self.columns.iter().position(|c| *c == names.tokens);

        let mut order: Vec<Vec<(String, String)>> = Vec::new();
        let mut by_key: BTreeMap<Vec<(String, String)>, Vec<Point>> = BTreeMap::new();
        for row in &self.rows {
            if !filters.iter().all(|&(i, v)| cell_matches(&row.cells[i], v)) {
                continue;
            }
            let l = self.number(row, loss, 1.0)?;
            // N first: D may be derived from it.
            let n_cell = |row: &Row| -> Result<Option<f64>> {
                match params {
                    Some(p) if !row.cells[p].is_empty() => Ok(Some(self.number(row, p, 1.0)?)),
                    _ => Ok(None),
                }
            };
            let (d, n) = if names.flops_give_tokens {
                let (fc, scale) = flops.expect("checked above");
                let n = n_cell(row)?.ok_or_else(|| FitError::MissingColumn {
                    path: PathBuf::from(self.paths()),
                    column: names.params.clone(),
                    why: "tokens come from FLOPs as D = C/(6N), which needs N; map it with --params-col".into(),
                    available: self.columns.join(", "),
                })?;
                (self.number(row, fc, scale)? / (6.0 * n), n)
            } else {
                let t = tokens.ok_or_else(|| FitError::MissingColumn {
                    path: PathBuf::from(self.paths()),
                    column: names.tokens.clone(),
                    why: "the token counts; map another with --tokens-col, or give --flops-col (D = C/6N)".into(),
                    available: self.columns.join(", "),
                })?;
                let d = self.number(row, t, 1.0)?;
                let n = if law.uses_params() {
                    match (n_cell(row)?, flops) {
                        (Some(n), _) => n,
                        (None, Some((fc, scale))) if !row.cells[fc].is_empty() => {
                            self.number(row, fc, scale)? / (6.0 * d)
                        }
                        _ => return Err(FitError::MissingColumn {
                            path: PathBuf::from(self.paths()),
                            column: names.params.clone(),
                            why: "the chinchilla law needs model sizes; map them with --params-col"
                                .into(),
                            available: self.columns.join(", "),
                        }),
                    }
                } else {
                    1.0
                };
                (d, n)
            };
            let key: Vec<(String, String)> = group_by
                .iter()
                .zip(&group_idx)
                .map(|(c, &i)| (c.clone(), row.cells[i].clone()))
                .collect();
            let entry = by_key.entry(key.clone()).or_default();
            if entry.is_empty() {
                order.push(key);
            }
            entry.push(Point { d, n, loss: l });
        }
        if order.is_empty() {
            return Err(FitError::Empty {
                path: PathBuf::from(self.paths()),
                message: if opts.filters.is_empty() {
                    "no data rows".into()
                } else {
                    "no row passes the --where filters".into()
                },
            });
        }
        Ok(order
            .into_iter()
            .map(|k| {
                let mut points = by_key.remove(&k).expect("present");
                if opts.drop_highest_loss > 0 {
                    // Stable: ties keep input order; the rest stay in input order.
                    let mut order: Vec<usize> = (0..points.len()).collect();
                    order.sort_by(|&a, &b| points[b].loss.total_cmp(&points[a].loss));
                    let mut drop = vec![false; points.len()];
                    for &i in order.iter().take(opts.drop_highest_loss) {
                        drop[i] = true;
                    }
                    let mut i = 0;
                    points.retain(|_| {
                        i += 1;
                        !drop[i - 1]
                    });
                }
                Group { keys: k, points }
            })
            .collect())
    }
}

/// Equal as strings, or as numbers (`0.5` matches `0.50`).
fn cell_matches(cell: &str, want: &str) -> bool {
    cell == want || matches!((cell.parse::<f64>(), want.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

/// Parses `col=value`.
pub fn parse_filter(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((c, v)) if !c.trim().is_empty() => Ok((c.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("{s:?} is not col=value")),
    }
}
