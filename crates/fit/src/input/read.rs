//! One input into a `Part`: long tables (CSV or JSON lines, with tokens counted from steps
//! on request), wide per-step logs (one curve per loss column), and run directories.

use std::path::{Path, PathBuf};

use super::options::InputOptions;
use super::records::{csv_records, is_jsonl, jsonl_records};
use super::source::{read_bytes, sha256_hex, stem, Format, SourceFile};
use super::table::{ColumnNames, Part};
use crate::error::{FitError, Result};

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

/// A long table, or a wide per-step log, from a CSV or JSON-lines file.
pub(super) fn read_csv(path: &Path, opts: &InputOptions) -> Result<Part> {
    let bytes = read_bytes(path)?;
    let sha256 = sha256_hex(&bytes);
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
    Ok(standard_part(
        path,
        sha256,
        Format::WideLog,
        &["file", "curve", "step", "tokens", "loss", "params", "flops"],
        rows,
        flops.map(|_| flops_scale),
    ))
}

/// A part whose columns synthscale named (`tokens`, `loss`, `params`, `flops`): the wide
/// logs and run directories; `flops_scale` is the factor to FLOPs when there is a FLOP
/// column.
fn standard_part(
    path: &Path,
    sha256: String,
    format: Format,
    columns: &[&str],
    rows: Vec<(u64, Vec<String>)>,
    flops_scale: Option<f64>,
) -> Part {
    Part {
        source: SourceFile {
            path: path.display().to_string(),
            sha256,
            format,
        },
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
        names: ColumnNames {
            tokens: "tokens".into(),
            loss: "loss".into(),
            params: "params".into(),
            flops: flops_scale.map(|scale| ("flops".to_string(), scale)),
            flops_give_tokens: false,
        },
    }
}

/// Run directories: `dir/metrics.jsonl`, or `dir/*/metrics.jsonl`, or the file itself.
pub(super) fn read_run_dirs(path: &Path) -> Result<Vec<Part>> {
    let direct = if path.is_dir() {
        path.join("metrics.jsonl")
    } else {
        path.to_path_buf()
    };
    if direct.is_file() {
        return Ok(vec![read_metrics(&direct)?]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| FitError::read(path, e))?;
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

/// One run's `metrics.jsonl`: its evaluation lines, one point each.
fn read_metrics(path: &Path) -> Result<Part> {
    let bytes = read_bytes(path)?;
    let sha256 = sha256_hex(&bytes);
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
    Ok(standard_part(
        path,
        sha256,
        Format::Metrics,
        &[
            "file",
            "run",
            "eval_domain",
            "step",
            "tokens",
            "loss",
            "params",
            "flops",
        ],
        rows,
        Some(1.0),
    ))
}
